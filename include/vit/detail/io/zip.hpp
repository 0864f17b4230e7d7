// A reader for the zip archives that torch.save writes: stored (uncompressed)
// entries, found through the central directory, zip64 or not. It never
// decompresses, so it never allocates more than the directory itself; every
// size and offset is checked against the bytes that are really there.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "../../error.hpp"
#include "../escape.hpp"

namespace vit::detail {

inline std::uint16_t zip_le16(const unsigned char* p) { return std::uint16_t(p[0] | (p[1] << 8)); }
inline std::uint32_t zip_le32(const unsigned char* p) {
    return std::uint32_t(p[0]) | (std::uint32_t(p[1]) << 8) | (std::uint32_t(p[2]) << 16) | (std::uint32_t(p[3]) << 24);
}
inline std::uint64_t zip_le64(const unsigned char* p) {
    return std::uint64_t(zip_le32(p)) | (std::uint64_t(zip_le32(p + 4)) << 32);
}

// CRC-32 (ISO 3309, the zip one).
inline std::uint32_t zip_crc32(const unsigned char* p, std::size_t n, std::uint32_t crc = 0) {
    struct table_t {
        std::uint32_t v[256];
        constexpr table_t() : v() {
            for (std::uint32_t i = 0; i < 256; ++i) {
                std::uint32_t c = i;
                for (int k = 0; k < 8; ++k) c = (c & 1u) ? 0xedb88320u ^ (c >> 1) : c >> 1;
                v[i] = c;
            }
        }
    };
    static constexpr table_t table;
    crc = ~crc;
    for (std::size_t i = 0; i < n; ++i) crc = table.v[(crc ^ p[i]) & 0xffu] ^ (crc >> 8);
    return ~crc;
}

struct zip_entry {
    std::string name;
    std::uint16_t flags = 0;
    std::uint16_t method = 0;
    std::uint32_t crc = 0;
    std::uint64_t compressed_size = 0;
    std::uint64_t size = 0;
    std::uint64_t header_offset = 0;
    std::uint64_t data_offset = 0;  // resolved from the local header
};

inline const char* zip_method_name(std::uint16_t m) {
    switch (m) {
        case 0: return "stored";
        case 8: return "deflate";
        case 9: return "deflate64";
        case 12: return "bzip2";
        case 14: return "lzma";
        case 93: return "zstd";
        case 95: return "xz";
        default: return "unknown";
    }
}

// A zip archive in memory (usually a mapping). Construction reads and checks
// the whole directory, so a damaged archive fails before any entry is used.
class zip_archive {
public:
    zip_archive(const unsigned char* data, std::size_t size, std::string name)
        : data_(data), size_(size), name_(std::move(name)) {
        read_directory();
    }

    const std::vector<zip_entry>& entries() const { return entries_; }
    const std::string& name() const { return name_; }

    const zip_entry* find(const std::string& entry_name) const {
        auto it = index_.find(entry_name);
        return it == index_.end() ? nullptr : &entries_[it->second];
    }

    // The bytes of a stored entry, straight from the archive. Compressed or
    // encrypted entries are refused: torch.save never writes them, and
    // inflating would defeat reading weights in place.
    const unsigned char* stored_data(const zip_entry& e) const {
        if (e.flags & 1u) throw fail("entry '" + escape_for_message(e.name) + "' is encrypted");
        if (e.method != 0)
            throw fail("entry '" + escape_for_message(e.name) + "' is compressed (method " + std::to_string(e.method) + ", " +
                       zip_method_name(e.method) + "); only stored entries are supported, as torch.save writes them");
        return data_ + e.data_offset;
    }

    // Weights are not checksummed (that would read every page of a large
    // checkpoint up front); small metadata entries are.
    void verify_crc(const zip_entry& e) const {
        const unsigned char* p = stored_data(e);
        const std::uint32_t got = zip_crc32(p, static_cast<std::size_t>(e.size));
        if (got != e.crc)
            throw fail("entry '" + escape_for_message(e.name) + "' is corrupt (CRC-32 " + hex32(got) + ", the directory says " +
                       hex32(e.crc) + ")");
    }

private:
    static constexpr std::uint32_t sig_local = 0x04034b50u;
    static constexpr std::uint32_t sig_central = 0x02014b50u;
    static constexpr std::uint32_t sig_eocd = 0x06054b50u;
    static constexpr std::uint32_t sig_eocd64 = 0x06064b50u;
    static constexpr std::uint32_t sig_locator64 = 0x07064b50u;
    static constexpr std::uint32_t sig_descriptor = 0x08074b50u;

    error fail(const std::string& what) const { return error(name_ + ": " + what); }

    static std::string hex32(std::uint32_t v) {
        static constexpr char hex[] = "0123456789abcdef";
        std::string s = "0x";
        for (int i = 7; i >= 0; --i) s += hex[(v >> (4 * i)) & 15u];
        return s;
    }

    // true when [off, off+len) lies within [0, limit)
    static bool fits(std::uint64_t off, std::uint64_t len, std::uint64_t limit) {
        return off <= limit && len <= limit - off;
    }

    void read_directory() {
        constexpr std::size_t eocd_size = 22;
        if (size_ < eocd_size)
            throw fail("not a zip archive (" + std::to_string(size_) + " bytes, too short for a zip directory)");

        // The end record sits at the very end, after a comment of at most
        // 65535 bytes; a signature inside the comment would not end exactly
        // at the end of the file, so the comment length must match.
        std::size_t eocd = 0;
        bool found = false;
        const std::size_t last = size_ - eocd_size;
        const std::size_t first = last > 0xffff ? last - 0xffff : 0;
        for (std::size_t pos = last + 1; pos-- > first;) {
            if (zip_le32(data_ + pos) == sig_eocd && pos + eocd_size + zip_le16(data_ + pos + 20) == size_) {
                eocd = pos;
                found = true;
                break;
            }
        }
        if (!found)
            throw fail("no zip end-of-central-directory record (not a zip archive, or truncated)");

        const unsigned char* e = data_ + eocd;
        std::uint64_t disk = zip_le16(e + 4), cd_disk = zip_le16(e + 6);
        std::uint64_t disk_entries = zip_le16(e + 8), total_entries = zip_le16(e + 10);
        std::uint64_t cd_size = zip_le32(e + 12), cd_offset = zip_le32(e + 16);
        std::uint64_t cd_limit = eocd;  // the directory ends before this

        const bool locator = eocd >= 20 && zip_le32(data_ + eocd - 20) == sig_locator64;
        if (locator) {
            const unsigned char* l = data_ + eocd - 20;
            const std::uint64_t rec = zip_le64(l + 8);
            if (zip_le32(l + 4) != 0 || zip_le32(l + 16) > 1) throw fail("multi-disk zip archives are not supported");
            if (!fits(rec, 56, eocd - 20) || zip_le32(data_ + rec) != sig_eocd64)
                throw fail("zip64 end-of-central-directory record missing at offset " + std::to_string(rec));
            const unsigned char* z = data_ + rec;
            const std::uint64_t rec_size = zip_le64(z + 4);
            if (rec_size < 44 || !fits(rec + 12, rec_size, eocd - 20))
                throw fail("zip64 end-of-central-directory record has a bad size (" + std::to_string(rec_size) + ")");
            // Fields the classic record holds for real (not as 0xffff...
            // sentinels) must agree with zip64: a disagreement means one lies.
            auto agree = [&](std::uint64_t classic, std::uint64_t sentinel, std::uint64_t z64, const char* what) {
                if (classic != sentinel && classic != z64)
                    throw fail(std::string("zip64 and classic end records disagree on the ") + what + " (" +
                               std::to_string(z64) + " vs " + std::to_string(classic) + ")");
                return z64;
            };
            disk = agree(disk, 0xffff, zip_le32(z + 16), "disk number");
            cd_disk = agree(cd_disk, 0xffff, zip_le32(z + 20), "directory disk");
            disk_entries = agree(disk_entries, 0xffff, zip_le64(z + 24), "entry count on this disk");
            total_entries = agree(total_entries, 0xffff, zip_le64(z + 32), "entry count");
            cd_size = agree(cd_size, 0xffffffff, zip_le64(z + 40), "directory size");
            cd_offset = agree(cd_offset, 0xffffffff, zip_le64(z + 48), "directory offset");
            cd_limit = rec;
        } else if (disk_entries == 0xffff || total_entries == 0xffff || cd_size == 0xffffffff ||
                   cd_offset == 0xffffffff) {
            throw fail("zip end record defers to a zip64 record that is missing");
        }
        if (disk != 0 || cd_disk != 0 || disk_entries != total_entries)
            throw fail("multi-disk zip archives are not supported");
        if (!fits(cd_offset, cd_size, cd_limit))
            throw fail("zip central directory (offset " + std::to_string(cd_offset) + ", " + std::to_string(cd_size) +
                       " bytes) runs past the end of the archive (" + std::to_string(size_) +
                       " bytes; truncated?)");
        if (total_entries > cd_size / 46)
            throw fail("zip directory claims " + std::to_string(total_entries) + " entries in " +
                       std::to_string(cd_size) + " bytes");

        entries_.reserve(static_cast<std::size_t>(total_entries));
        const std::uint64_t cd_end = cd_offset + cd_size;
        std::uint64_t pos = cd_offset;
        for (std::uint64_t i = 0; i < total_entries; ++i) {
            if (!fits(pos, 46, cd_end) || zip_le32(data_ + pos) != sig_central)
                throw fail("zip central directory entry " + std::to_string(i) + " is damaged (offset " +
                           std::to_string(pos) + ")");
            const unsigned char* c = data_ + pos;
            zip_entry ent;
            ent.flags = zip_le16(c + 8);
            ent.method = zip_le16(c + 10);
            ent.crc = zip_le32(c + 16);
            ent.compressed_size = zip_le32(c + 20);
            ent.size = zip_le32(c + 24);
            const std::size_t name_len = zip_le16(c + 28), extra_len = zip_le16(c + 30), comment_len = zip_le16(c + 32);
            std::uint64_t start_disk = zip_le16(c + 34);
            ent.header_offset = zip_le32(c + 42);
            if (!fits(pos + 46, std::uint64_t(name_len) + extra_len + comment_len, cd_end))
                throw fail("zip central directory entry " + std::to_string(i) + " runs past the directory");
            ent.name.assign(reinterpret_cast<const char*>(c + 46), name_len);
            read_zip64_extra(ent, start_disk, c + 46 + name_len, extra_len);
            if (start_disk != 0) throw fail("multi-disk zip archives are not supported");
            pos += 46 + name_len + extra_len + comment_len;

            check_local_header(ent, cd_offset);
            if (!index_.emplace(ent.name, entries_.size()).second)
                throw fail("entry '" + escape_for_message(ent.name) + "' appears twice in the zip directory");
            entries_.push_back(std::move(ent));
        }
        if (pos != cd_end)
            throw fail("zip central directory is " + std::to_string(cd_size) + " bytes but its entries take " +
                       std::to_string(pos - cd_offset));
    }

    // The zip64 extra field holds, in this order, only the fields whose
    // 32-bit slot is the 0xffffffff sentinel.
    void read_zip64_extra(zip_entry& ent, std::uint64_t& start_disk, const unsigned char* x, std::size_t len) const {
        const bool need_size = ent.size == 0xffffffffu, need_csize = ent.compressed_size == 0xffffffffu;
        const bool need_offset = ent.header_offset == 0xffffffffu, need_disk = start_disk == 0xffffu;
        if (!(need_size || need_csize || need_offset || need_disk)) return;
        std::size_t p = 0;
        while (p + 4 <= len) {
            const std::uint16_t id = zip_le16(x + p), n = zip_le16(x + p + 2);
            if (p + 4 + n > len) break;
            if (id == 0x0001) {
                const unsigned char* f = x + p + 4;
                std::size_t q = 0;
                auto take64 = [&](std::uint64_t& v) {
                    if (q + 8 > n) throw fail("entry '" + escape_for_message(ent.name) + "': zip64 extra field is too short");
                    v = zip_le64(f + q);
                    q += 8;
                };
                if (need_size) take64(ent.size);
                if (need_csize) take64(ent.compressed_size);
                if (need_offset) take64(ent.header_offset);
                if (need_disk) {
                    if (q + 4 > n) throw fail("entry '" + escape_for_message(ent.name) + "': zip64 extra field is too short");
                    start_disk = zip_le32(f + q);
                }
                return;
            }
            p += 4 + std::size_t(n);
        }
        throw fail("entry '" + escape_for_message(ent.name) + "' needs a zip64 extra field and has none");
    }

    // The local header must describe the same entry as the directory, and
    // the entry's data must lie between it and the directory.
    void check_local_header(zip_entry& ent, std::uint64_t cd_offset) const {
        const std::string what = "entry '" + escape_for_message(ent.name) + "': ";
        if (!fits(ent.header_offset, 30, cd_offset) || zip_le32(data_ + ent.header_offset) != sig_local)
            throw fail(what + "no local header at offset " + std::to_string(ent.header_offset));
        const unsigned char* h = data_ + ent.header_offset;
        const std::size_t name_len = zip_le16(h + 26), extra_len = zip_le16(h + 28);
        const std::uint64_t after = ent.header_offset + 30;
        if (!fits(after, std::uint64_t(name_len) + extra_len, cd_offset))
            throw fail(what + "local header runs into the zip directory");
        if (name_len != ent.name.size() || ent.name.compare(0, name_len, reinterpret_cast<const char*>(h + 30), name_len) != 0)
            throw fail(what + "local header names a different entry");
        if (zip_le16(h + 8) != ent.method)
            throw fail(what + "local header says method " + std::to_string(zip_le16(h + 8)) + ", the directory " +
                       std::to_string(ent.method));
        ent.data_offset = after + name_len + extra_len;
        if (!fits(ent.data_offset, ent.compressed_size, cd_offset))
            throw fail(what + std::to_string(ent.compressed_size) + " bytes at offset " +
                       std::to_string(ent.data_offset) + " run past the end of the entry data (" +
                       std::to_string(cd_offset) + " bytes; the size lies or the archive is truncated)");
        if (ent.method == 0 && ent.compressed_size != ent.size)
            throw fail(what + "stored entry has " + std::to_string(ent.compressed_size) +
                       " bytes but claims to expand to " + std::to_string(ent.size));

        const std::uint16_t local_flags = zip_le16(h + 6);
        if (local_flags & 8u) {
            check_descriptor(ent, what, cd_offset);
            return;
        }
        std::uint64_t lcsize = zip_le32(h + 18), lsize = zip_le32(h + 22);
        if (lsize == 0xffffffffu || lcsize == 0xffffffffu) {
            // The local zip64 field holds both sizes, uncompressed first.
            const unsigned char* x = h + 30 + name_len;
            std::size_t p = 0;
            bool got = false;
            while (p + 4 <= extra_len && !got) {
                const std::uint16_t id = zip_le16(x + p), n = zip_le16(x + p + 2);
                if (p + 4 + n > extra_len) break;
                if (id == 0x0001 && n >= 16) {
                    lsize = zip_le64(x + p + 4);
                    lcsize = zip_le64(x + p + 12);
                    got = true;
                }
                p += 4 + std::size_t(n);
            }
            if (!got) throw fail(what + "local header needs a zip64 extra field and has none");
        }
        if (lsize != ent.size || lcsize != ent.compressed_size || zip_le32(h + 14) != ent.crc)
            throw fail(what + "local header says " + std::to_string(lsize) + " bytes (CRC " + hex32(zip_le32(h + 14)) +
                       "), the directory " + std::to_string(ent.size) + " bytes (CRC " + hex32(ent.crc) + ")");
    }

    // With flag bit 3 the sizes follow the data, in a descriptor that may or
    // may not start with a signature and has 32- or 64-bit sizes. If the
    // directory's sizes were wrong, no form of it would be found there.
    void check_descriptor(const zip_entry& ent, const std::string& what, std::uint64_t cd_offset) const {
        const std::uint64_t at = ent.data_offset + ent.compressed_size;
        auto matches = [&](std::uint64_t p, bool wide) {
            if (!fits(p, wide ? 20 : 12, cd_offset)) return false;
            const unsigned char* d = data_ + p;
            if (zip_le32(d) != ent.crc) return false;
            if (wide) return zip_le64(d + 4) == ent.compressed_size && zip_le64(d + 12) == ent.size;
            return zip_le32(d + 4) == ent.compressed_size && zip_le32(d + 8) == ent.size;
        };
        const bool signed_form = fits(at, 4, cd_offset) && zip_le32(data_ + at) == sig_descriptor;
        if (signed_form && (matches(at + 4, false) || matches(at + 4, true))) return;
        if (matches(at, false) || matches(at, true)) return;
        throw fail(what + "the data descriptor after its data does not match the directory (" +
                   std::to_string(ent.size) + " bytes, CRC " + hex32(ent.crc) + "): a size lies");
    }

    const unsigned char* data_;
    std::size_t size_;
    std::string name_;
    std::vector<zip_entry> entries_;
    std::unordered_map<std::string, std::size_t> index_;
};

}  // namespace vit::detail
