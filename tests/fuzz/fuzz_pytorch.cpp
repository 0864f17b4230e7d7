// libFuzzer target: torch.save checkpoints (zip directory, restricted
// unpickler, tensor views). The first byte picks what the rest is:
//   even: a whole archive, as found in pytorch_model.bin;
//   odd:  only data.pkl, which this harness wraps in a sound archive with
//         storages "0".."3". Mutating a pickle inside an archive would almost
//         always just fail the CRC check, so the unpickler needs this door.
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <vit/detail/io/pytorch.hpp>
#include <vit/detail/io/zip.hpp>
#include <vit/error.hpp>

namespace {

void put(std::string& o, std::uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) o += static_cast<char>((v >> (8 * i)) & 0xff);
}

// Stored entries, no descriptors: the layout torch.save writes, minus alignment.
std::string make_zip(const std::vector<std::pair<std::string, std::string>>& files) {
    std::string out, dir;
    for (const auto& f : files) {
        const std::uint32_t crc = vit::detail::zip_crc32(reinterpret_cast<const unsigned char*>(f.second.data()), f.second.size());
        const std::uint64_t offset = out.size();
        out += "PK\x03\x04";
        put(out, 20, 2); put(out, 0, 2); put(out, 0, 2); put(out, 0, 4);
        put(out, crc, 4); put(out, f.second.size(), 4); put(out, f.second.size(), 4);
        put(out, f.first.size(), 2); put(out, 0, 2);
        out += f.first;
        out += f.second;
        dir += "PK\x01\x02";
        put(dir, 20, 2); put(dir, 20, 2); put(dir, 0, 2); put(dir, 0, 2); put(dir, 0, 4);
        put(dir, crc, 4); put(dir, f.second.size(), 4); put(dir, f.second.size(), 4);
        put(dir, f.first.size(), 2); put(dir, 0, 2); put(dir, 0, 2); put(dir, 0, 2); put(dir, 0, 2); put(dir, 0, 4);
        put(dir, offset, 4);
        dir += f.first;
    }
    const std::uint64_t cd_offset = out.size();
    out += dir;
    out += "PK\x05\x06";
    put(out, 0, 4); put(out, files.size(), 2); put(out, files.size(), 2);
    put(out, dir.size(), 4); put(out, cd_offset, 4); put(out, 0, 2);
    return out;
}

void load(const unsigned char* p, std::size_t n) {
    try {
        const vit::detail::tensor_store store = vit::detail::read_pytorch_checkpoint(nullptr, p, n, "fuzz.bin");
        unsigned sum = 0;
        for (const auto& kv : store.all())  // every tensor's bytes must be readable
            for (std::size_t i = 0; i < kv.second.tensor.nbytes; ++i) sum += kv.second.tensor.data[i];
        volatile unsigned sink = sum;
        (void)sink;
    } catch (const vit::error&) {
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    if ((data[0] & 1) == 0) {
        load(data + 1, size - 1);
        return 0;
    }
    std::vector<std::pair<std::string, std::string>> files;
    files.emplace_back("archive/data.pkl", std::string(reinterpret_cast<const char*>(data + 1), size - 1));
    files.emplace_back("archive/byteorder", "little");
    for (int k = 0; k < 4; ++k) {
        std::string bytes(64 << k, '\0');
        for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 37 + k);
        files.emplace_back("archive/data/" + std::to_string(k), bytes);
    }
    const std::string zip = make_zip(files);
    // An exact-size heap copy: ASan then catches reads past the archive.
    std::vector<unsigned char> buf(zip.begin(), zip.end());
    load(buf.data(), buf.size());
    return 0;
}
