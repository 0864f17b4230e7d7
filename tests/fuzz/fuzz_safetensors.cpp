// libFuzzer target: safetensors headers and the tensor bytes they point at.
// The only exception allowed out of the parser is vit::error; anything else
// (another exception, a sanitizer report, a leak) is a bug.
#include <cstddef>
#include <cstdint>

#include <vit/detail/io/safetensors.hpp>
#include <vit/error.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    // libFuzzer hands each input in its own allocation of exactly `size`
    // bytes, so ASan reports any read past the end of the "file".
    try {
        const vit::detail::tensor_store store = vit::detail::parse_safetensors(nullptr, data, size, "fuzz.safetensors");
        // Touch every byte the header hands out: offsets that passed the
        // checks must lie inside the input.
        double sum = 0;
        for (const auto& kv : store.all()) {
            const auto& t = kv.second.tensor;
            const std::uint8_t* p = t.data;
            for (std::size_t i = 0; i < t.nbytes; ++i) sum += p[i];
            // The conversion the model loader does reads numel() elements:
            // numel must agree with nbytes whatever the shape says.
            using vit::detail::dtype;
            if (t.type == dtype::f32 || t.type == dtype::f16 || t.type == dtype::bf16 || t.type == dtype::f64) {
                const auto n = static_cast<std::size_t>(t.numel());
                if (n * vit::detail::dtype_size(t.type) != t.nbytes) __builtin_trap();
                for (std::size_t i = 0; i < n; ++i) sum += vit::detail::element_as<double>(t, i);
            }
        }
        volatile double sink = sum;
        (void)sink;
    } catch (const vit::error&) {
    }
    return 0;
}
