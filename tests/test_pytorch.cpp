// torch.save zip checkpoints: the real fixture, and hostile archives and
// pickles built in memory by the small writer below.
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "vit/detail/io/pickle.hpp"
#include "vit/detail/io/pytorch.hpp"
#include "vit/detail/io/safetensors.hpp"
#include "vit/detail/io/zip.hpp"

#include "tmp_dir.hpp"

using namespace vit::detail;
using Catch::Matchers::Contains;

namespace {

void put16(std::string& o, std::uint64_t v) { for (int i = 0; i < 2; ++i) o += static_cast<char>((v >> (8 * i)) & 0xff); }
void put32(std::string& o, std::uint64_t v) { for (int i = 0; i < 4; ++i) o += static_cast<char>((v >> (8 * i)) & 0xff); }
void put64(std::string& o, std::uint64_t v) { for (int i = 0; i < 8; ++i) o += static_cast<char>((v >> (8 * i)) & 0xff); }

// ---- a zip writer with knobs for lying

struct zfile {
    std::string name;
    std::string data;
    std::uint16_t method = 0;
    bool descriptor = false;       // sizes after the data (flag bit 3), as torch writes them
    std::int64_t cd_size_lie = 0;  // added to both sizes in the central directory only
    std::int64_t cd_usize_lie = 0; // added to the uncompressed size in the central directory only
};

std::string make_zip(const std::vector<zfile>& files, bool zip64 = false) {
    std::string out;
    std::vector<std::uint64_t> offsets;
    for (const auto& f : files) {
        offsets.push_back(out.size());
        const auto crc = zip_crc32(reinterpret_cast<const unsigned char*>(f.data.data()), f.data.size());
        out += "PK\x03\x04";
        put16(out, zip64 ? 45 : 20);
        put16(out, f.descriptor ? 8 : 0);
        put16(out, f.method);
        put16(out, 0);
        put16(out, 0);
        put32(out, f.descriptor ? 0 : crc);
        put32(out, f.descriptor ? 0 : f.data.size());
        put32(out, f.descriptor ? 0 : f.data.size());
        put16(out, f.name.size());
        put16(out, 0);
        out += f.name;
        out += f.data;
        if (f.descriptor) {
            out += "PK\x07\x08";
            put32(out, crc);
            put32(out, f.data.size());
            put32(out, f.data.size());
        }
    }
    const std::uint64_t cd_offset = out.size();
    for (std::size_t i = 0; i < files.size(); ++i) {
        const auto& f = files[i];
        const auto crc = zip_crc32(reinterpret_cast<const unsigned char*>(f.data.data()), f.data.size());
        const std::uint64_t csize = f.data.size() + static_cast<std::uint64_t>(f.cd_size_lie);
        const std::uint64_t usize = csize + static_cast<std::uint64_t>(f.cd_usize_lie);
        out += "PK\x01\x02";
        put16(out, zip64 ? 45 : 20);
        put16(out, zip64 ? 45 : 20);
        put16(out, f.descriptor ? 8 : 0);
        put16(out, f.method);
        put16(out, 0);
        put16(out, 0);
        put32(out, crc);
        put32(out, zip64 ? 0xffffffffu : csize);
        put32(out, zip64 ? 0xffffffffu : usize);
        put16(out, f.name.size());
        put16(out, zip64 ? 28 : 0);
        put16(out, 0);
        put16(out, 0);
        put16(out, 0);
        put32(out, 0);
        put32(out, zip64 ? 0xffffffffu : offsets[i]);
        out += f.name;
        if (zip64) {
            put16(out, 1);
            put16(out, 24);
            put64(out, usize);
            put64(out, csize);
            put64(out, offsets[i]);
        }
    }
    const std::uint64_t cd_size = out.size() - cd_offset;
    if (zip64) {
        const std::uint64_t rec = out.size();
        out += "PK\x06\x06";
        put64(out, 44);
        put16(out, 45);
        put16(out, 45);
        put32(out, 0);
        put32(out, 0);
        put64(out, files.size());
        put64(out, files.size());
        put64(out, cd_size);
        put64(out, cd_offset);
        out += "PK\x06\x07";
        put32(out, 0);
        put64(out, rec);
        put32(out, 1);
    }
    out += "PK\x05\x06";
    put16(out, 0);
    put16(out, 0);
    put16(out, zip64 ? 0xffff : files.size());
    put16(out, zip64 ? 0xffff : files.size());
    put32(out, zip64 ? 0xffffffffu : cd_size);
    put32(out, zip64 ? 0xffffffffu : cd_offset);
    put16(out, 0);
    return out;
}

// ---- a pickle writer

struct pk {
    std::string b;
    pk& op(unsigned char c) { b += static_cast<char>(c); return *this; }
    pk& raw(const std::string& s) { b += s; return *this; }
    pk& proto(int v) { return op(0x80).op(static_cast<unsigned char>(v)); }
    pk& global(const std::string& m, const std::string& n) { return op('c').raw(m + "\n" + n + "\n"); }
    pk& str(const std::string& s) { op('X'); put32(b, s.size()); return raw(s); }
    pk& integer(std::int64_t v) {
        if (v >= 0 && v < 256) return op('K').op(static_cast<unsigned char>(v));
        if (v >= 0 && v < 65536) { op('M'); put16(b, static_cast<std::uint64_t>(v)); return *this; }
        op(0x8a).op(8);
        put64(b, static_cast<std::uint64_t>(v));
        return *this;
    }
    pk& ints(const std::vector<std::int64_t>& v) {
        op('(');
        for (auto x : v) integer(x);
        return op('t');
    }
    pk& mark() { return op('('); }
    pk& tuple() { return op('t'); }
    pk& reduce() { return op('R'); }
    pk& stop() { return op('.'); }
};

struct tspec {
    std::string storage_type = "FloatStorage";
    std::string key = "0";
    std::int64_t numel = 0;
    std::int64_t offset = 0;
    std::vector<std::int64_t> size, stride;
    bool parameter = false;
};

// Pushes what torch.save writes for one tensor.
void write_tensor(pk& p, const tspec& t) {
    if (t.parameter) p.global("torch._utils", "_rebuild_parameter").mark();
    p.global("torch._utils", "_rebuild_tensor_v2").mark();
    p.mark().str("storage").global("torch", t.storage_type).str(t.key).str("cpu").integer(t.numel).tuple().op('Q');
    p.integer(t.offset).ints(t.size).ints(t.stride).op(0x89);
    p.global("collections", "OrderedDict").op(')').reduce();
    p.tuple().reduce();
    if (t.parameter) p.op(0x88).global("collections", "OrderedDict").op(')').reduce().tuple().reduce();
}

std::string state_dict_pickle(const std::vector<std::pair<std::string, tspec>>& tensors) {
    pk p;
    p.proto(2).op('}').mark();
    for (const auto& kv : tensors) {
        p.str(kv.first);
        write_tensor(p, kv.second);
    }
    return p.op('u').stop().b;
}

std::string floats(const std::vector<float>& v) {
    std::string s(v.size() * 4, '\0');
    std::memcpy(&s[0], v.data(), s.size());
    return s;
}

std::vector<float> iota(std::size_t n, float start) {
    std::vector<float> v(n);
    for (std::size_t i = 0; i < n; ++i) v[i] = start + static_cast<float>(i);
    return v;
}

std::vector<zfile> checkpoint_files(const std::string& pickle, const std::map<std::string, std::string>& storages,
                                    bool descriptor = true) {
    std::vector<zfile> f;
    f.push_back({"archive/data.pkl", pickle, 0, descriptor, 0, 0});
    f.push_back({"archive/byteorder", "little", 0, descriptor, 0, 0});
    for (const auto& kv : storages) f.push_back({"archive/data/" + kv.first, kv.second, 0, descriptor, 0, 0});
    f.push_back({"archive/version", "3\n", 0, descriptor, 0, 0});
    return f;
}

std::string make_checkpoint(const std::string& pickle, const std::map<std::string, std::string>& storages,
                            bool zip64 = false) {
    return make_zip(checkpoint_files(pickle, storages), zip64);
}

tensor_store load(const std::string& bytes) {
    auto owner = std::make_shared<std::string>(bytes);
    const auto* p = reinterpret_cast<const unsigned char*>(owner->data());
    const std::size_t n = owner->size();
    return read_pytorch_checkpoint(owner, p, n, "test.bin");
}

std::vector<float> values(const tensor_store& s, const std::string& name) {
    const auto* e = s.find(name);
    REQUIRE(e != nullptr);
    REQUIRE(e->tensor.type == dtype::f32);
    std::vector<float> v(e->tensor.nbytes / 4);
    if (!v.empty()) std::memcpy(v.data(), e->tensor.data, e->tensor.nbytes);
    return v;
}

// A checkpoint holding one small float tensor: what most hostile cases perturb.
std::string one_tensor_pickle() {
    tspec t;
    t.numel = 6;
    t.size = {2, 3};
    t.stride = {3, 1};
    return state_dict_pickle({{"w", t}});
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace

TEST_CASE("pytorch: the fixture's pytorch_model.bin equals model.safetensors bit for bit", "[pytorch]") {
    const std::string dir = std::string(VIT_TEST_DATA) + "/vit-tiny-random/";
    const tensor_store pt = read_pytorch_checkpoint(dir + "pytorch_model/pytorch_model.bin");
    const tensor_store st = read_safetensors(dir + "model/model.safetensors");
    REQUIRE(pt.size() == st.size());
    for (const auto& kv : st.all()) {
        INFO(kv.first);
        const auto* e = pt.find(kv.first);
        REQUIRE(e != nullptr);
        CHECK(e->tensor.type == kv.second.tensor.type);
        CHECK(e->tensor.shape == kv.second.tensor.shape);
        REQUIRE(e->tensor.nbytes == kv.second.tensor.nbytes);
        CHECK(std::memcmp(e->tensor.data, kv.second.tensor.data, e->tensor.nbytes) == 0);
        CHECK(e->file == dir + "pytorch_model/pytorch_model.bin");
    }
}

TEST_CASE("pytorch: globals outside the allow-list are refused, with no side effect", "[pytorch]") {
    namespace fs = std::filesystem;
    const std::string victim = test::tmp_dir() + "/pytorch_pwned";
    fs::remove(victim);
    const std::map<std::string, std::string> storage{{"0", floats(iota(6, 0))}};

    SECTION("os.system through GLOBAL and REDUCE") {
        pk p;
        p.proto(2).global("os", "system").str("touch " + victim).op(0x85).reduce().stop();
        CHECK_THROWS_WITH(load(make_checkpoint(p.b, storage)),
                          Contains("test.bin: data.pkl: global 'os.system' is not allowed in a checkpoint"));
    }
    SECTION("os.system through INST") {
        pk p;
        p.proto(0).mark().str("touch " + victim).op('i').raw("os\nsystem\n").stop();
        CHECK_THROWS_WITH(load(make_checkpoint(p.b, storage)), Contains("global 'os.system' is not allowed"));
    }
    SECTION("builtins.eval through STACK_GLOBAL (protocol 4)") {
        pk p;
        p.proto(4).op(0x8c).op(8).raw("builtins").op(0x8c).op(4).raw("eval").op(0x93);
        p.str("__import__('os').system('touch " + victim + "')").op(0x85).reduce().stop();
        CHECK_THROWS_WITH(load(make_checkpoint(p.b, storage)), Contains("global 'builtins.eval' is not allowed"));
    }
    SECTION("__builtin__.getattr") {
        pk p;
        p.proto(2).global("__builtin__", "getattr").stop();
        CHECK_THROWS_WITH(load(make_checkpoint(p.b, storage)), Contains("global '__builtin__.getattr' is not allowed"));
    }
    SECTION("a forbidden global deep inside an otherwise valid state dict") {
        tspec t;
        t.numel = 6;
        t.size = {6};
        t.stride = {1};
        pk p;
        p.proto(2).op('}').mark().str("w");
        write_tensor(p, t);
        p.str("evil").global("subprocess", "check_call").mark().str("touch").str(victim).op('l').op(0x85).reduce();
        p.op('u').stop();
        CHECK_THROWS_WITH(load(make_checkpoint(p.b, storage)), Contains("global 'subprocess.check_call' is not allowed"));
    }
    SECTION("torch globals off the list, and storage classes called as functions") {
        pk p;
        p.proto(2).global("torch._utils", "_rebuild_qtensor").stop();
        CHECK_THROWS_WITH(load(make_checkpoint(p.b, storage)),
                          Contains("global 'torch._utils._rebuild_qtensor' is not allowed"));
        pk q;
        q.proto(2).global("torch", "FloatStorage").op(')').reduce().stop();
        CHECK_THROWS_WITH(load(make_checkpoint(q.b, storage)), Contains("torch.FloatStorage cannot be called"));
    }
    SECTION("control bytes in a global name are escaped in the message") {
        pk p;
        p.proto(2).global("os\x1b[2J", "system").stop();
        CHECK_THROWS_WITH(load(make_checkpoint(p.b, storage)), Contains("global 'os\\x1b[2J.system'"));
    }
    CHECK_FALSE(fs::exists(victim));
}

TEST_CASE("pytorch: damaged zip archives", "[pytorch]") {
    const std::string pickle = one_tensor_pickle();
    const std::map<std::string, std::string> storage{{"0", floats(iota(6, 0))}};
    const std::string good = make_checkpoint(pickle, storage);
    REQUIRE(load(good).size() == 1);

    SECTION("truncated") {
        for (std::size_t n : {std::size_t(0), std::size_t(10), good.size() / 2, good.size() - 1})
            CHECK_THROWS_WITH(load(good.substr(0, n)), Contains("test.bin: ") &&
                              (Contains("too short") || Contains("no zip end-of-central-directory record")));
        const std::string fixture =
            read_file(std::string(VIT_TEST_DATA) + "/vit-tiny-random/pytorch_model/pytorch_model.bin");
        REQUIRE(fixture.size() > 100000);
        CHECK_THROWS_WITH(load(fixture.substr(0, fixture.size() - 30)),
                          Contains("no zip end-of-central-directory record"));
    }
    SECTION("bytes cut out of the middle: the directory points past the end") {
        std::string cut = good;
        cut.erase(40, 64);
        CHECK_THROWS_WITH(load(cut), Contains("zip central directory") && Contains("runs past the end of the archive"));
    }
    SECTION("directory sizes lie (local header has the true sizes)") {
        auto files = checkpoint_files(pickle, storage, false);
        files[2].cd_size_lie = 4;
        CHECK_THROWS_WITH(load(make_zip(files)),
                          Contains("entry 'archive/data/0': local header says 24 bytes") &&
                          Contains("the directory 28 bytes"));
    }
    SECTION("directory sizes lie (sizes in a data descriptor)") {
        auto files = checkpoint_files(pickle, storage, true);
        files[2].cd_size_lie = -4;
        CHECK_THROWS_WITH(load(make_zip(files)),
                          Contains("entry 'archive/data/0': the data descriptor after its data does not match"));
    }
    SECTION("a size far past the end") {
        auto files = checkpoint_files(pickle, storage, true);
        files[2].cd_size_lie = 1000000000;
        CHECK_THROWS_WITH(load(make_zip(files)),
                          Contains("entry 'archive/data/0': 1000000024 bytes") && Contains("run past the end"));
    }
    SECTION("a stored entry that claims to expand") {
        auto files = checkpoint_files(pickle, storage, true);
        files[2].cd_usize_lie = 100;
        CHECK_THROWS_WITH(load(make_zip(files)), Contains("stored entry has 24 bytes but claims to expand to 124"));
    }
    SECTION("compressed entries are refused by name and method") {
        auto files = checkpoint_files(pickle, storage, true);
        files[2].method = 8;
        CHECK_THROWS_WITH(load(make_zip(files)),
                          Contains("test.bin: entry 'archive/data/0' is compressed (method 8, deflate)"));
        files = checkpoint_files(pickle, storage, true);
        files[0].method = 14;
        CHECK_THROWS_WITH(load(make_zip(files)), Contains("entry 'archive/data.pkl' is compressed (method 14, lzma)"));
    }
    SECTION("a corrupt data.pkl fails its CRC") {
        std::string bad = good;
        const auto at = bad.find("\x80\x02}");
        REQUIRE(at != std::string::npos);
        bad[at + 2] = ']';
        CHECK_THROWS_WITH(load(bad), Contains("entry 'archive/data.pkl' is corrupt (CRC-32"));
    }
    SECTION("duplicate entries") {
        auto files = checkpoint_files(pickle, storage, true);
        files.push_back(files[2]);
        CHECK_THROWS_WITH(load(make_zip(files)), Contains("entry 'archive/data/0' appears twice"));
    }
    SECTION("zip64 records that disagree with the classic ones") {
        std::string z = make_checkpoint(pickle, storage, true);
        // the classic end record's entry count (no longer the 0xffff sentinel)
        z[z.size() - 22 + 10] = 3;
        z[z.size() - 22 + 11] = 0;
        CHECK_THROWS_WITH(load(z), Contains("zip64 and classic end records disagree on the entry count"));
    }
    SECTION("not a torch.save archive") {
        CHECK_THROWS_WITH(load(make_zip({{"model/weights.bin", "xx", 0, false, 0, 0}})),
                          Contains("no <archive>/data.pkl entry"));
        CHECK_THROWS_WITH(load(std::string("\x80\x02\x8a\x0alp\xfc\x9c" "F\xf9 j\xa8P\x19.", 16)),
                          Contains("a legacy torch.save file"));
    }
    SECTION("big-endian checkpoints") {
        auto files = checkpoint_files(pickle, storage, true);
        files[1].data = "big";
        CHECK_THROWS_WITH(load(make_zip(files)), Contains("test.bin: byteorder is 'big'"));
    }
    SECTION("a missing storage entry") {
        CHECK_THROWS_WITH(load(make_checkpoint(pickle, {{"1", floats(iota(6, 0))}})),
                          Contains("storage '0': no entry 'archive/data/0' in the archive"));
    }
}

TEST_CASE("pytorch: hostile pickles", "[pytorch]") {
    const std::map<std::string, std::string> storage{{"0", floats(iota(6, 0))}};
    auto refuse = [&](const std::string& pickle, const std::string& what) {
        CHECK_THROWS_WITH(load(make_checkpoint(pickle, storage)), Contains("test.bin: data.pkl: ") && Contains(what));
    };
    SECTION("unknown opcode") { refuse("\x80\x02\xff.", "unknown opcode 0xff at byte 2"); }
    SECTION("out-of-band buffers and the extension registry") {
        refuse("\x80\x05\x97.", "out-of-band buffers are not supported");
        refuse("\x80\x02\x82\x01.", "extension registry codes");
        refuse("\x80\x02P1\n.", "text persistent ids (PERSID) are not supported");
        refuse("\x80\x09N.", "unsupported pickle protocol 9");
    }
    SECTION("deep MARK nesting") { refuse("\x80\x02" + std::string(100000, '(') + ".", "MARKs nested deeper than 256"); }
    SECTION("stack overflow") {
        refuse("\x80\x02" + std::string((std::size_t(1) << 20) + 10, 'N') + ".", "the stack grows past 1048576 values");
    }
    SECTION("memo, object and container growth are capped") {
        pickle_limits lim;
        lim.max_memo = 100;
        lim.max_objects = 1000;
        lim.max_items = 1000;
        auto run = [&](const std::string& p) {
            unpickler u(reinterpret_cast<const unsigned char*>(p.data()), p.size(), "x.pkl", lim);
            u.load();
        };
        CHECK_THROWS_WITH(run("\x80\x04N" + std::string(200, '\x94') + "."), Contains("x.pkl: the memo grows past 100"));
        std::string dup_append = "\x80\x02]";
        for (int i = 0; i < 1200; ++i) dup_append += "2a";
        CHECK_THROWS_WITH(run(dup_append + "."), Contains("containers hold more than 1000 items"));
        CHECK_THROWS_WITH(run("\x80\x02" + std::string(2000, 'N') + "."), Contains("more than 1000 objects"));
        CHECK_NOTHROW(run("\x80\x04N" + std::string(100, '\x94') + std::string(50, 'N') + "."));
    }
    SECTION("a million nested lists load without recursion") {
        tspec t;
        t.numel = 6;
        t.size = {6};
        t.stride = {1};
        pk p;
        p.proto(2).op('}').mark().str("w");
        write_tensor(p, t);
        p.str("deep").op(']').op('q').op(1);
        for (int i = 0; i < 1000000; ++i) p.op(']').op('q').op(0).op('a').op('0').op('h').op(0);
        p.op('0').op('h').op(1).op('u').stop();
        const auto s = load(make_checkpoint(p.b, storage));
        CHECK(s.size() == 1);
        CHECK(values(s, "w") == iota(6, 0));
    }
    SECTION("a dict that contains itself") {
        tspec t;
        t.numel = 6;
        t.size = {6};
        t.stride = {1};
        pk p;
        p.proto(2).op('}').op('q').op(0).mark().str("state_dict").op('h').op(0).str("w");
        write_tensor(p, t);
        p.op('u').stop();
        CHECK(values(load(make_checkpoint(p.b, storage)), "w") == iota(6, 0));
    }
    SECTION("huge length prefixes") {
        refuse(std::string("\x80\x02X\xf0\xff\xff\xff", 7) + "abc.",
               "a string of 4294967280 bytes runs past the end of the pickle (4 bytes left)");
        refuse(std::string("\x80\x04\x8d\x00\x00\x00\x00\x00\x00\x00\x40", 11) + ".",
               "a string of 4611686018427387904 bytes runs past the end");
        refuse(std::string("\x80\x04\x8e\xff\xff\xff\xff\xff\xff\xff\xff", 11) + ".",
               "a bytes object of 18446744073709551615 bytes runs past the end");
        refuse(std::string("\x80\x02\x8b\xff\xff\xff\x7f", 7) + ".", "an integer of 2147483647 bytes runs past");
        refuse(std::string("\x80\x02\x8b\xff\xff\xff\xff", 7) + ".", "LONG4 with a negative length");
        refuse(std::string("\x80\x02T\xfe\xff\xff\xff", 7) + ".", "BINSTRING with a negative length");
        refuse(std::string("\x80\x04\x95\x00\x00\x00\x00\x01\x00\x00\x00", 11) + "N.", "a frame of 4294967296 bytes");
    }
    SECTION("memo, stack and structure errors") {
        refuse("\x80\x02h\x07.", "memo key 7 is not defined");
        refuse("\x80\x02N", "the pickle ends without a STOP opcode");
        refuse("\x80\x02.", "STOP with nothing on the stack");
        refuse("\x80\x02" "0.", "no MARK to pop");
        refuse("\x80\x02Na.", "stack underflow");
        refuse("\x80\x02NNa.", "APPEND on None, expected a list");
        refuse("\x80\x02K\x01)R.", "call of an int, which is not callable");
        refuse("\x80\x02}(Nu.", "SETITEMS with an odd number of items");
        refuse("\x80\x02" "ccollections\nOrderedDict\nK\x01R.", "REDUCE arguments are an int, expected a tuple");
        refuse("\x80\x02" "ccollections\nOrderedDict\nK\x01\x85R.", "collections.OrderedDict called with 1 arguments");
        refuse("\x80\x02I12x\n.", "'12x' is not an integer");
        refuse("\x80\x02" "ccollections\n", "text argument without a terminating newline");
    }
    SECTION("malformed tensor rebuilds and persistent ids") {
        auto with_tensor = [](const std::string& size_expr) {
            pk p;
            p.proto(2).op('}').str("w").global("torch._utils", "_rebuild_tensor_v2").mark();
            p.mark().str("storage").global("torch", "FloatStorage").str("0").str("cpu").integer(6).tuple().op('Q');
            p.integer(0).raw(size_expr).ints({1}).op(0x89).op('N').tuple().reduce().op('s').stop();
            return p.b;
        };
        refuse(with_tensor(pk().str("6").b), "torch._utils._rebuild_tensor_v2: size is a str, expected a tuple of ints");
        refuse(with_tensor(pk().ints({2, 3}).b), "size [2,3] and stride [1] differ in rank");
        refuse(with_tensor(pk().mark().op(0x8a).op(1).op(0xff).tuple().b), "size has a negative entry -1");
        refuse(with_tensor(pk().ints(std::vector<std::int64_t>(40, 1)).b), "size has 40 dimensions, more than 32");
        refuse(pk().proto(2).str("x").op(0x85).op('Q').stop().b,
               "persistent id is not a ('storage', storage type, key, location, numel) tuple");
        refuse(pk().proto(2).mark().str("module").str("a").str("b").str("c").integer(1).tuple().op('Q').stop().b,
               "persistent id of unknown type");
        refuse(pk().proto(2).mark().str("storage").str("a").str("b").str("c").integer(1).tuple().op('Q').stop().b,
               "storage type is not a torch storage class");
        refuse(pk().proto(2).global("torch._utils", "_rebuild_parameter").mark().integer(1).op(0x88).op('N').tuple()
                   .reduce().stop().b,
               "_rebuild_parameter: argument 1 is an int, expected a tensor");
    }
    SECTION("a pickle that is not a dict, or holds no tensors") {
        CHECK_THROWS_WITH(load(make_checkpoint(std::string("\x80\x02]q\x00.", 6), storage)),
                          Contains("test.bin: data.pkl holds a list, expected a dict of tensors"));
        CHECK_THROWS_WITH(load(make_checkpoint(pk().proto(2).op('}').str("epoch").integer(3).op('s').stop().b, storage)),
                          Contains("test.bin: data.pkl holds no tensors"));
    }
}

TEST_CASE("pytorch: tensors must lie inside their storage", "[pytorch]") {
    auto one = [](tspec t, std::size_t floats_stored) {
        return load(make_checkpoint(state_dict_pickle({{"w", t}}), {{t.key, floats(iota(floats_stored, 0))}}));
    };
    tspec t;
    t.numel = 8;
    t.size = {4, 4};
    t.stride = {4, 1};
    CHECK_THROWS_WITH(one(t, 8), Contains("test.bin: tensor 'w': size [4,4] with stride [4,1] at offset 0 reaches "
                                          "element 15, but storage '0' holds only 8 elements"));
    t.size = {4};
    t.stride = {1};
    t.offset = 5;
    CHECK_THROWS_WITH(one(t, 8), Contains("reaches element 8, but storage '0' holds only 8 elements"));
    t.offset = 0;
    t.numel = 16;
    CHECK_THROWS_WITH(one(t, 8), Contains("storage '0': entry holds 32 bytes, fewer than 16 F32 elements need"));
    t.numel = 8;
    t.size = {std::int64_t(1) << 40, std::int64_t(1) << 40};
    t.stride = {1, 1};
    CHECK_THROWS_WITH(one(t, 8), Contains("size [1099511627776,1099511627776] overflows"));
    t.size = {std::int64_t(1) << 20, std::int64_t(1) << 20};
    t.stride = {0, 0};
    CHECK_THROWS_WITH(one(t, 8), Contains("non-contiguous view of 1099511627776 elements would copy more than"));
    t.size = {0, 4};
    t.stride = {4, 1};
    t.offset = 9;
    CHECK_THROWS_WITH(one(t, 8), Contains("storage offset 9 is past the end of storage '0'"));
}

TEST_CASE("pytorch: tensor and storage names are escaped in messages", "[pytorch][escape]") {
    // Pickle strings are not checked to be UTF-8: names may hold any byte.
    tspec t;
    t.key = "0\xff\n";
    t.numel = 8;
    t.size = {4, 4};
    t.stride = {4, 1};
    CHECK_THROWS_WITH(load(make_checkpoint(state_dict_pickle({{"Ägyptische Katze", t}}), {{t.key, floats(iota(8, 0))}})),
                      Contains("test.bin: tensor 'Ägyptische Katze': size [4,4] with stride [4,1] at offset 0 "
                               "reaches element 15, but storage '0\\xff\\n' holds only 8 elements"));
    t.key = "0";
    CHECK_THROWS_WITH(load(make_checkpoint(state_dict_pickle({{"w\xff\n\x1b", t}}), {{t.key, floats(iota(8, 0))}})),
                      Contains("test.bin: tensor 'w\\xff\\n\\x1b': size [4,4]"));
}

TEST_CASE("pytorch: strided, transposed and shared-storage views", "[pytorch]") {
    std::vector<std::pair<std::string, tspec>> ts;
    auto add = [&](const std::string& name, const std::string& key, std::int64_t numel, std::int64_t offset,
                   std::vector<std::int64_t> size, std::vector<std::int64_t> stride) {
        tspec t;
        t.key = key;
        t.numel = numel;
        t.offset = offset;
        t.size = std::move(size);
        t.stride = std::move(stride);
        ts.emplace_back(name, t);
    };
    add("transposed", "0", 6, 0, {3, 2}, {1, 3});  // a 2x3 matrix's .t()
    add("a", "1", 10, 2, {3}, {1});
    add("b", "1", 10, 5, {2, 2}, {2, 1});
    add("c", "1", 10, 1, {2, 2}, {1, 4});
    add("every_other", "1", 10, 1, {3}, {2});
    add("scalar", "1", 10, 3, {}, {});
    add("empty", "1", 10, 0, {0, 4}, {4, 1});
    add("permuted", "2", 24, 0, {2, 3, 4}, {1, 2, 6});  // x.view(4,3,2).permute(2,1,0)
    add("broadcast_row", "0", 6, 3, {2, 3}, {0, 1});
    const std::string bytes = make_checkpoint(state_dict_pickle(ts), {{"0", floats(iota(6, 0))},
                                                                      {"1", floats(iota(10, 10))},
                                                                      {"2", floats(iota(24, 100))}});
    const auto s = load(bytes);
    CHECK(s.size() == ts.size());
    CHECK(values(s, "transposed") == std::vector<float>{0, 3, 1, 4, 2, 5});
    CHECK(values(s, "a") == std::vector<float>{12, 13, 14});
    CHECK(values(s, "b") == std::vector<float>{15, 16, 17, 18});
    CHECK(values(s, "c") == std::vector<float>{11, 15, 12, 16});
    CHECK(values(s, "every_other") == std::vector<float>{11, 13, 15});
    CHECK(values(s, "scalar") == std::vector<float>{13});
    CHECK(s.find("scalar")->tensor.shape.empty());
    CHECK(values(s, "empty").empty());
    CHECK(s.find("empty")->tensor.shape == std::vector<std::int64_t>{0, 4});
    CHECK(values(s, "broadcast_row") == std::vector<float>{3, 4, 5, 3, 4, 5});
    std::vector<float> permuted;
    for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 3; ++j)
            for (int k = 0; k < 4; ++k) permuted.push_back(100.0f + static_cast<float>(i + 2 * j + 6 * k));
    CHECK(values(s, "permuted") == permuted);
    CHECK(s.find("permuted")->tensor.shape == std::vector<std::int64_t>{2, 3, 4});

    // The store keeps the archive alive; contiguous views point into it
    // (no copy), strided ones into buffers of their own.
    auto owner = std::make_shared<std::string>(bytes);
    const auto* begin = reinterpret_cast<const unsigned char*>(owner->data());
    const auto* end = begin + owner->size();
    const tensor_store mapped = read_pytorch_checkpoint(owner, begin, owner->size(), "views.bin");
    owner.reset();  // the store holds it now
    auto inside = [&](const char* name) {
        const auto* e = mapped.find(name);
        REQUIRE(e != nullptr);
        return e->tensor.data >= begin && e->tensor.data + e->tensor.nbytes <= end;
    };
    CHECK(inside("a"));
    CHECK(inside("b"));
    CHECK(inside("scalar"));
    CHECK(mapped.find("b")->tensor.data - mapped.find("a")->tensor.data == 3 * 4);  // one storage, offsets 2 and 5
    CHECK_FALSE(inside("transposed"));
    CHECK_FALSE(inside("c"));
    CHECK_FALSE(inside("permuted"));
    CHECK(values(mapped, "c") == std::vector<float>{11, 15, 12, 16});
}

TEST_CASE("pytorch: dtypes, parameters and wrapped state dicts", "[pytorch]") {
    SECTION("storage types map to dtypes, bytes untouched") {
        std::vector<std::pair<std::string, tspec>> ts;
        std::map<std::string, std::string> st;
        const std::pair<const char*, dtype> kinds[] = {
            {"DoubleStorage", dtype::f64}, {"FloatStorage", dtype::f32}, {"HalfStorage", dtype::f16},
            {"BFloat16Storage", dtype::bf16}, {"LongStorage", dtype::i64}, {"IntStorage", dtype::i32},
            {"ShortStorage", dtype::i16}, {"CharStorage", dtype::i8}, {"ByteStorage", dtype::u8},
            {"BoolStorage", dtype::boolean}};
        int k = 0;
        for (const auto& kd : kinds) {
            tspec t;
            t.storage_type = kd.first;
            t.key = std::to_string(k);
            t.numel = 3;
            t.size = {3};
            t.stride = {1};
            ts.emplace_back(kd.first, t);
            std::string raw;
            for (std::size_t i = 0; i < 3 * dtype_size(kd.second); ++i) raw += static_cast<char>(k * 16 + static_cast<int>(i));
            st[t.key] = raw;
            ++k;
        }
        const auto s = load(make_checkpoint(state_dict_pickle(ts), st));
        k = 0;
        for (const auto& kd : kinds) {
            INFO(kd.first);
            const auto* e = s.find(kd.first);
            REQUIRE(e != nullptr);
            CHECK(e->tensor.type == kd.second);
            CHECK(e->tensor.nbytes == 3 * dtype_size(kd.second));
            CHECK(std::memcmp(e->tensor.data, st[std::to_string(k)].data(), e->tensor.nbytes) == 0);
            ++k;
        }
    }
    SECTION("one storage key used with two dtypes") {
        tspec a, b;
        a.numel = b.numel = 2;
        a.size = b.size = {2};
        a.stride = b.stride = {1};
        b.storage_type = "IntStorage";
        CHECK_THROWS_WITH(load(make_checkpoint(state_dict_pickle({{"a", a}, {"b", b}}), {{"0", floats({1, 2})}})),
                          Contains("storage '0': referenced as both F32 and I32"));
    }
    SECTION("nn.Parameter, OrderedDict with _metadata, {state_dict: ...} and {model: ...}") {
        tspec t;
        t.numel = 4;
        t.size = {2, 2};
        t.stride = {2, 1};
        t.parameter = true;
        const std::map<std::string, std::string> st{{"0", floats({1, 2, 3, 4})}};

        pk od;  // torch.save(model.state_dict()): an OrderedDict with a _metadata attribute
        od.proto(2).global("collections", "OrderedDict").op(')').reduce().op('q').op(0).mark().str("layer.weight");
        write_tensor(od, t);
        od.op('u').op('}').str("_metadata").global("collections", "OrderedDict").op(')').reduce();
        od.op('s').op('b').stop();
        auto s = load(make_checkpoint(od.b, st));
        CHECK(s.size() == 1);
        CHECK(values(s, "layer.weight") == std::vector<float>{1, 2, 3, 4});

        for (const char* wrapper : {"state_dict", "model"}) {
            pk w;  // {"epoch": 3, "<wrapper>": {...}, "lr": 0.1, "stray": tensor}
            w.proto(2).op('}').mark().str("epoch").integer(3).str(wrapper).op('}').str("layer.weight");
            write_tensor(w, t);
            w.op('s').str("lr").op('G').raw(std::string("\x3f\xb9\x99\x99\x99\x99\x99\x9a", 8));
            w.str("stray");
            write_tensor(w, t);
            w.op('u').stop();
            s = load(make_checkpoint(w.b, st));
            CHECK(s.size() == 1);
            CHECK(values(s, "layer.weight") == std::vector<float>{1, 2, 3, 4});
        }
    }
    SECTION("a key set twice keeps its last value, as a Python dict does") {
        tspec a, b;
        a.numel = b.numel = 2;
        a.size = b.size = {2};
        a.stride = b.stride = {1};
        b.key = "1";
        const auto s = load(make_checkpoint(state_dict_pickle({{"w", a}, {"w", b}}),
                                            {{"0", floats({1, 2})}, {"1", floats({3, 4})}}));
        CHECK(values(s, "w") == std::vector<float>{3, 4});
    }
    SECTION("protocol 0/1 text opcodes and protocol 4 framing") {
        const std::map<std::string, std::string> st{{"0", floats({1, 2, 3, 4, 5, 6})}};
        // protocol 0 style (with BINPERSID, which torch needs and protocol 1 has)
        std::string p0 = "(dp0\nVlayer.w\\u00e9ight\np1\nctorch._utils\n_rebuild_tensor_v2\np2\n("
                         "(S'storage'\nctorch\nFloatStorage\nV0\nVcpu\nL6L\ntQI0\n(I3\nI2\ntp3\n(I1\nI3\nt"
                         "I00\n(dtRs(lp4\nF0.5\naI01\na20g3\na0.";
        // ^ after the tensor: a stray list on the stack, exercising PUT/GET/POP/DUP
        auto s = load(make_checkpoint(p0, st));
        CHECK(values(s, "layer.w\xc3\xa9ight") == std::vector<float>{1, 4, 2, 5, 3, 6});

        pk q;  // protocol 4 as the pickle module writes it: FRAME, MEMOIZE, STACK_GLOBAL, SHORT_BINUNICODE
        std::string b;
        {
            pk x;
            x.op('}').op(0x94).op(0x8c).op(1).raw("w").op(0x94);
            x.op(0x8c).op(12).raw("torch._utils").op(0x8c).op(18).raw("_rebuild_tensor_v2").op(0x93).op(0x94);
            x.mark().mark().op(0x8c).op(7).raw("storage").op(0x8c).op(5).raw("torch").op(0x8c).op(12).raw("FloatStorage");
            x.op(0x93).op(0x8c).op(1).raw("0").op(0x8c).op(3).raw("cpu").integer(6).tuple().op('Q');
            x.integer(0).integer(6).op(0x85).integer(1).op(0x85).op(0x89).op(0x8c).op(11).raw("collections");
            x.op(0x8c).op(11).raw("OrderedDict").op(0x93).op(')').op(0x81).tuple().reduce().op('s').stop();
            b = x.b;
        }
        q.proto(4).op(0x95);
        put64(q.b, b.size());
        q.raw(b);
        s = load(make_checkpoint(q.b, st));
        CHECK(values(s, "w") == std::vector<float>{1, 2, 3, 4, 5, 6});
    }
    SECTION("zip64 archives, with and without data descriptors") {
        const std::map<std::string, std::string> st{{"0", floats(iota(6, 0))}};
        CHECK(values(load(make_checkpoint(one_tensor_pickle(), st, true)), "w") == iota(6, 0));
        CHECK(values(load(make_zip(checkpoint_files(one_tensor_pickle(), st, false), true)), "w") == iota(6, 0));
    }
}

TEST_CASE("pytorch: mutated archives and pickles fail cleanly", "[pytorch]") {
    // Whatever the damage, the reader either loads or throws vit::error:
    // no crash, no other exception, no unbounded allocation.
    std::vector<std::pair<std::string, tspec>> ts;
    tspec t;
    t.numel = 6;
    t.size = {3, 2};
    t.stride = {1, 3};
    ts.emplace_back("t", t);
    t.size = {2, 3};
    t.stride = {3, 1};
    t.parameter = true;
    ts.emplace_back("p", t);
    const std::string pickle = state_dict_pickle(ts);
    const std::map<std::string, std::string> st{{"0", floats(iota(6, 0))}};
    const std::string archive = make_checkpoint(pickle, st);
    REQUIRE(load(archive).size() == 2);

    std::mt19937 rng(12345);
    auto mutate = [&](std::string s) {
        const int kind = static_cast<int>(rng() % 4);
        if (kind == 0 && !s.empty()) return s.substr(0, rng() % s.size());
        const int flips = 1 + static_cast<int>(rng() % 4);
        for (int i = 0; i < flips && !s.empty(); ++i) {
            const std::size_t at = rng() % s.size();
            if (kind == 1) s[at] = static_cast<char>(rng() & 0xff);
            else if (kind == 2) s[at] = static_cast<char>(s[at] ^ (1 << (rng() % 8)));
            else s.insert(at, 1, static_cast<char>(rng() & 0xff));
        }
        return s;
    };
    int loaded = 0, refused = 0;
    for (int i = 0; i < 3000; ++i) {
        // the pickle, wrapped in a sound archive so it reaches the unpickler
        try {
            load(make_checkpoint(mutate(pickle), st));
            ++loaded;
        } catch (const vit::error&) {
            ++refused;
        }
        try {
            load(mutate(archive));
            ++loaded;
        } catch (const vit::error&) {
            ++refused;
        }
    }
    CHECK(refused > 0);
    CHECK(loaded + refused == 6000);
}
