// libFuzzer target: the JSON files of a checkpoint folder. Each input is
// written once as config.json, preprocessor_config.json and a shard index,
// and read through the same entry points load_model uses, so that the JSON
// parser's own errors are also checked to come out as vit::error.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

#include <unistd.h>

#include <vit/config.hpp>
#include <vit/detail/io/checkpoint.hpp>
#include <vit/error.hpp>
#include <vit/image.hpp>

namespace {

const std::string& scratch_dir() {
    // One folder per process: run.sh may run several fuzzers at once.
    static const std::string dir = [] {
        char tmpl[] = "/tmp/vit-fuzz-config-XXXXXX";
        const char* d = ::mkdtemp(tmpl);
        if (!d) __builtin_trap();
        return std::string(d);
    }();
    return dir;
}

void write_file(const std::string& path, const std::uint8_t* data, std::size_t size) {
    std::FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) __builtin_trap();
    if (size && std::fwrite(data, 1, size, f) != size) __builtin_trap();
    std::fclose(f);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string& dir = scratch_dir();
    write_file(dir + "/config.json", data, size);
    write_file(dir + "/preprocessor_config.json", data, size);
    write_file(dir + "/model.safetensors.index.json", data, size);

    try {
        const vit::config c = vit::load_config(dir + "/config.json");
        // What the loader derives from a config must not overflow.
        volatile long long sink = static_cast<long long>(c.num_patches()) + c.head_dim() + c.num_labels();
        (void)sink;
    } catch (const vit::error&) {
    }
    try {
        (void)vit::load_preprocess_config(dir);
    } catch (const vit::error&) {
    }
    try {
        // Shards are not read: a stand-in store holds one tensor, so the
        // index's checks (names, paths, membership) are what runs.
        (void)vit::detail::read_sharded(dir, "model.safetensors.index.json", [&](const std::string& path) {
            if (path.compare(0, dir.size() + 1, dir + "/") != 0 || path.find('/', dir.size() + 1) != std::string::npos)
                __builtin_trap();  // a shard name escaped the checkpoint folder
            vit::detail::tensor_store s;
            vit::detail::tensor_ref t;
            t.shape = {1};
            static const float one = 1.0f;
            t.data = reinterpret_cast<const unsigned char*>(&one);
            t.nbytes = 4;
            s.add("vit.layernorm.weight", t, path);
            return s;
        });
    } catch (const vit::error&) {
    }
    return 0;
}
