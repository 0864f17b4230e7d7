// A restricted unpickler for the data.pkl of a torch.save checkpoint.
//
// Python's pickle is a program for a stack machine whose GLOBAL and REDUCE
// opcodes import and call anything, which is how a checkpoint can run
// `os.system`. This machine has no way to import or call: a GLOBAL resolves
// only against a fixed list of the callables a state dict is made of, and is
// refused on the spot otherwise; "calling" one of them (REDUCE and friends)
// builds the known value it stands for (an empty dict, a tensor view of a
// storage) from arguments that must have the expected shape.
//
// Values live in an arena owned by the unpickler and refer to each other by
// index, so shared and even cyclic references (which the memo allows) cost
// nothing and cannot leak; nothing here recurses, so nesting depth cannot
// overflow the C++ stack. Every length is checked against the bytes left and
// every growth (stack, MARK nesting, objects) against a limit.
#pragma once

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "../../error.hpp"
#include "tensor_store.hpp"
#include "../escape.hpp"

namespace vit::detail {

struct pickle_limits {
    std::size_t max_stack = std::size_t(1) << 20;  // torch batches SETITEMS by 1000 pairs
    std::size_t max_marks = 256;                   // a state dict nests 3 deep
    std::size_t max_objects = std::size_t(1) << 22;
    std::size_t max_memo = std::size_t(1) << 22;   // MEMOIZE adds an entry per byte
    std::size_t max_items = std::size_t(1) << 24;  // container slots: DUP+APPEND adds one per 2 bytes
    std::size_t max_rank = 32;
};

enum class pkind : std::uint8_t {
    none, boolean, integer, floating, string, bytes, tuple, list, dict, set,
    other,     // a value we can hold but not represent (an integer beyond 64 bits)
    callable,  // one of the allowed globals
    storage,   // a persistent id resolved to a storage description
    tensor     // the result of _rebuild_tensor(_v2)
};

enum class pcallable : std::uint8_t {
    ordered_dict, rebuild_tensor, rebuild_tensor_v2, rebuild_parameter, rebuild_parameter_with_state, storage_type
};

// Kept small (a hostile pickle makes one per byte): text and container
// contents live in side tables of the unpickler, reached through `i`.
struct pobject {
    pkind kind = pkind::none;
    pcallable fn = pcallable::ordered_dict;  // callable
    dtype type = dtype::f32;                 // callable storage_type
    // boolean, integer: the value; string, bytes, callable ("module.name"):
    // index of its text; tuple, list, set, dict: index of its items (a dict's
    // are key, value, key, value, ...); storage, tensor: index of the description
    std::int64_t i = 0;
    double f = 0;  // floating
};

// ('storage', <dtype>Storage, key, location, numel) from a persistent id
struct pstorage {
    dtype type = dtype::f32;
    std::string key;
    std::string location;
    std::int64_t numel = 0;
};

// A view of a storage, as torch._utils._rebuild_tensor_v2 describes it.
struct ptensor {
    std::size_t storage = 0;  // index into unpickler::storages()
    std::int64_t offset = 0;  // in elements
    std::vector<std::int64_t> shape;
    std::vector<std::int64_t> stride;  // in elements
};

class unpickler {
public:
    using ref = std::uint32_t;

    // `context` starts every error message, e.g. "model.bin: data.pkl".
    unpickler(const unsigned char* data, std::size_t size, std::string context, pickle_limits limits = {})
        : data_(data), size_(size), context_(std::move(context)), limits_(limits) {}

    // Runs the pickle to its STOP and returns the object it produced.
    ref load() {
        for (;;) {
            if (pos_ >= size_) {
                op_pos_ = pos_;
                throw fail("the pickle ends without a STOP opcode");
            }
            op_pos_ = pos_;
            const unsigned char op = data_[pos_++];
            if (op == '.') {
                if (stack_.size() <= base()) throw fail("STOP with nothing on the stack");
                return stack_.back();
            }
            step(op);
        }
    }

    const pobject& at(ref r) const { return objects_[r]; }
    // of a string, bytes or callable
    const std::string& text(ref r) const { return texts_[static_cast<std::size_t>(objects_[r].i)]; }
    // of a tuple, list, set or dict
    const std::vector<ref>& items(ref r) const { return seqs_[static_cast<std::size_t>(objects_[r].i)]; }
    const pstorage& storage_of(ref r) const { return storages_[static_cast<std::size_t>(objects_[r].i)]; }
    const ptensor& tensor_of(ref r) const { return tensors_[static_cast<std::size_t>(objects_[r].i)]; }
    const std::vector<pstorage>& storages() const { return storages_; }

    // The value of the last `key` (a str) in a dict, as Python keeps it.
    bool dict_get(ref dict, const std::string& key, ref& out) const {
        const auto& it = items(dict);
        for (std::size_t k = it.size(); k >= 2; k -= 2) {
            if (objects_[it[k - 2]].kind == pkind::string && text(it[k - 2]) == key) {
                out = it[k - 1];
                return true;
            }
        }
        return false;
    }

    // "an int", "a tensor": for messages.
    static const char* kind_name(pkind k) {
        switch (k) {
            case pkind::none: return "None";
            case pkind::boolean: return "a bool";
            case pkind::integer: return "an int";
            case pkind::floating: return "a float";
            case pkind::string: return "a str";
            case pkind::bytes: return "a bytes object";
            case pkind::tuple: return "a tuple";
            case pkind::list: return "a list";
            case pkind::dict: return "a dict";
            case pkind::set: return "a set";
            case pkind::other: return "an int beyond 64 bits";
            case pkind::callable: return "a global";
            case pkind::storage: return "a storage";
            case pkind::tensor: return "a tensor";
        }
        return "?";
    }

private:
    error fail(const std::string& what) const {
        return error(context_ + ": " + what + " (opcode at byte " + std::to_string(op_pos_) + ")");
    }

    // ---- reading the byte stream

    std::size_t remaining() const { return size_ - pos_; }
    void need(std::uint64_t n, const char* what) {
        if (n > remaining())
            throw fail(std::string(what) + " of " + std::to_string(n) + " bytes runs past the end of the pickle (" +
                       std::to_string(remaining()) + " bytes left)");
    }
    std::uint64_t read_le(unsigned n) {
        need(n, "an argument");
        std::uint64_t v = 0;
        for (unsigned k = 0; k < n; ++k) v |= std::uint64_t(data_[pos_ + k]) << (8 * k);
        pos_ += n;
        return v;
    }
    std::string read_bytes(std::uint64_t n, const char* what) {
        need(n, what);
        std::string s(reinterpret_cast<const char*>(data_ + pos_), static_cast<std::size_t>(n));
        pos_ += static_cast<std::size_t>(n);
        return s;
    }
    // Text opcodes (protocol 0) end their argument with a newline.
    std::string read_line() {
        const void* nl = std::memchr(data_ + pos_, '\n', remaining());
        if (!nl) throw fail("text argument without a terminating newline");
        const std::size_t end = static_cast<std::size_t>(static_cast<const unsigned char*>(nl) - data_);
        std::string s(reinterpret_cast<const char*>(data_ + pos_), end - pos_);
        pos_ = end + 1;
        return s;
    }

    // ---- the stack, the MARKs, the arena

    std::size_t base() const { return marks_.empty() ? 0 : marks_.back(); }
    ref make(pobject o) {
        if (objects_.size() >= limits_.max_objects || objects_.size() >= std::numeric_limits<ref>::max())
            throw fail("more than " + std::to_string(limits_.max_objects) + " objects");
        objects_.push_back(std::move(o));
        return static_cast<ref>(objects_.size() - 1);
    }
    static bool is_container(pkind k) {
        return k == pkind::tuple || k == pkind::list || k == pkind::set || k == pkind::dict;
    }
    ref make(pkind k) {
        if (is_container(k)) return make_seq(k, {});
        pobject o;
        o.kind = k;
        return make(std::move(o));
    }
    std::vector<ref>& seq(ref r) { return seqs_[static_cast<std::size_t>(objects_[r].i)]; }
    void push(ref r) {
        if (stack_.size() >= limits_.max_stack)
            throw fail("the stack grows past " + std::to_string(limits_.max_stack) + " values");
        stack_.push_back(r);
    }
    ref pop() {
        if (stack_.size() <= base()) throw fail("stack underflow");
        const ref r = stack_.back();
        stack_.pop_back();
        return r;
    }
    ref top() const {
        if (stack_.size() <= base()) throw fail("stack underflow");
        return stack_.back();
    }
    std::vector<ref> pop_mark() {
        if (marks_.empty()) throw fail("no MARK to pop");
        const std::size_t b = marks_.back();
        std::vector<ref> items(stack_.begin() + static_cast<std::ptrdiff_t>(b), stack_.end());
        stack_.resize(b);
        marks_.pop_back();
        return items;
    }
    // The items of the container on top of the stack, which must be a `k`.
    std::vector<ref>& top_items(pkind k, const char* op) {
        const ref r = top();
        if (objects_[r].kind != k)
            throw fail(std::string(op) + " on " + kind_name(objects_[r].kind) + ", expected " + kind_name(k));
        return seq(r);
    }
    void count_items(std::size_t n) {
        if (n > limits_.max_items - items_)
            throw fail("containers hold more than " + std::to_string(limits_.max_items) + " items");
        items_ += n;
    }
    void add_items(std::vector<ref>& target, const std::vector<ref>& more) {
        count_items(more.size());
        target.insert(target.end(), more.begin(), more.end());
    }

    ref make_int(std::int64_t v) {
        pobject o;
        o.kind = pkind::integer;
        o.i = v;
        return make(std::move(o));
    }
    ref make_bool(bool v) {
        pobject o;
        o.kind = pkind::boolean;
        o.i = v ? 1 : 0;
        return make(std::move(o));
    }
    ref make_text(pkind k, std::string s) {
        pobject o;
        o.kind = k;
        o.i = static_cast<std::int64_t>(texts_.size());
        const ref r = make(std::move(o));
        texts_.push_back(std::move(s));
        return r;
    }
    ref make_seq(pkind k, std::vector<ref> items) {
        count_items(items.size());
        pobject o;
        o.kind = k;
        o.i = static_cast<std::int64_t>(seqs_.size());
        const ref r = make(std::move(o));
        seqs_.push_back(std::move(items));
        return r;
    }

    // Two's complement little-endian, as LONG1/LONG4 carry it.
    ref make_long(const std::string& bytes) {
        const std::size_t n = bytes.size();
        if (n == 0) return make_int(0);
        if (n > 8) {
            // Fits anyway if the extra bytes are pure sign extension.
            const unsigned char sign = (static_cast<unsigned char>(bytes[n - 1]) & 0x80u) ? 0xffu : 0u;
            for (std::size_t k = 7; k < n; ++k)
                if (static_cast<unsigned char>(bytes[k]) != sign || ((static_cast<unsigned char>(bytes[7]) ^ sign) & 0x80u))
                    return make(pkind::other);
        }
        std::uint64_t v = 0;
        const std::size_t used = n < 8 ? n : 8;
        for (std::size_t k = 0; k < used; ++k) v |= std::uint64_t(static_cast<unsigned char>(bytes[k])) << (8 * k);
        if (used < 8 && (static_cast<unsigned char>(bytes[used - 1]) & 0x80u)) v |= ~std::uint64_t(0) << (8 * used);
        return make_int(static_cast<std::int64_t>(v));
    }

    ref make_decimal(std::string s, bool is_long) {
        if (is_long && !s.empty() && s.back() == 'L') s.pop_back();
        std::int64_t v = 0;
        const char* b = s.data();
        const char* e = s.data() + s.size();
        if (b != e && *b == '+') ++b;
        const auto r = std::from_chars(b, e, v);
        if (r.ec == std::errc::result_out_of_range && r.ptr == e) return make(pkind::other);
        if (r.ec != std::errc() || r.ptr != e || b == e)
            throw fail("'" + escape_for_message(s) + "' is not an integer");
        return make_int(v);
    }

    // Protocol 0 STRING: a Python bytes repr in quotes.
    std::string unquote(const std::string& s) {
        if (s.size() < 2 || (s[0] != '\'' && s[0] != '"') || s.back() != s[0])
            throw fail("STRING argument is not quoted");
        std::string out;
        auto hexval = [](char c) {
            if (c >= '0' && c <= '9') return c - '0';
            if (c >= 'a' && c <= 'f') return c - 'a' + 10;
            if (c >= 'A' && c <= 'F') return c - 'A' + 10;
            return -1;
        };
        for (std::size_t k = 1; k + 1 < s.size(); ++k) {
            char c = s[k];
            if (c != '\\' || k + 2 >= s.size()) {
                out += c;
                continue;
            }
            c = s[++k];
            switch (c) {
                case 'n': out += '\n'; break;
                case 't': out += '\t'; break;
                case 'r': out += '\r'; break;
                case 'a': out += '\a'; break;
                case 'b': out += '\b'; break;
                case 'f': out += '\f'; break;
                case 'v': out += '\v'; break;
                case '\\': case '\'': case '"': out += c; break;
                case 'x': {
                    const bool room = k + 2 < s.size() - 1;  // two digits before the closing quote
                    const int h = room ? hexval(s[k + 1]) : -1;
                    const int l = room ? hexval(s[k + 2]) : -1;
                    if (h < 0 || l < 0) throw fail("bad \\x escape in a STRING argument");
                    out += static_cast<char>(h * 16 + l);
                    k += 2;
                    break;
                }
                default:
                    if (c >= '0' && c <= '7') {
                        int v = c - '0';
                        for (int d = 0; d < 2 && k + 2 < s.size() && s[k + 1] >= '0' && s[k + 1] <= '7'; ++d)
                            v = v * 8 + (s[++k] - '0');
                        out += static_cast<char>(v & 0xff);
                    } else {
                        out += '\\';
                        out += c;
                    }
            }
        }
        return out;
    }

    static void append_utf8(std::string& out, std::uint32_t cp) {
        if (cp < 0x80) {
            out += static_cast<char>(cp);
        } else if (cp < 0x800) {
            out += static_cast<char>(0xc0 | (cp >> 6));
            out += static_cast<char>(0x80 | (cp & 0x3f));
        } else if (cp < 0x10000) {
            out += static_cast<char>(0xe0 | (cp >> 12));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
            out += static_cast<char>(0x80 | (cp & 0x3f));
        } else {
            out += static_cast<char>(0xf0 | (cp >> 18));
            out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
            out += static_cast<char>(0x80 | (cp & 0x3f));
        }
    }

    // Protocol 0 UNICODE: raw-unicode-escape, i.e. latin-1 bytes plus
    // \uXXXX and \UXXXXXXXX escapes; returned as UTF-8 like BINUNICODE.
    std::string raw_unicode_escape(const std::string& s) {
        std::string out;
        for (std::size_t k = 0; k < s.size(); ++k) {
            const unsigned char c = static_cast<unsigned char>(s[k]);
            if (c == '\\' && k + 1 < s.size() && (s[k + 1] == 'u' || s[k + 1] == 'U')) {
                const std::size_t digits = s[k + 1] == 'u' ? 4 : 8;
                if (k + 2 + digits > s.size()) throw fail("truncated \\u escape in a UNICODE argument");
                std::uint32_t cp = 0;
                for (std::size_t d = 0; d < digits; ++d) {
                    const char h = s[k + 2 + d];
                    int v = (h >= '0' && h <= '9') ? h - '0' : (h >= 'a' && h <= 'f') ? h - 'a' + 10
                                                            : (h >= 'A' && h <= 'F') ? h - 'A' + 10 : -1;
                    if (v < 0) throw fail("bad \\u escape in a UNICODE argument");
                    cp = cp * 16 + static_cast<std::uint32_t>(v);
                }
                if (cp > 0x10ffff) throw fail("\\U escape beyond Unicode in a UNICODE argument");
                append_utf8(out, cp);
                k += 1 + digits;
            } else {
                append_utf8(out, c);
            }
        }
        return out;
    }

    // ---- globals and calls

    ref resolve_global(const std::string& module, const std::string& name) {
        struct allowed_t {
            const char* module;
            const char* name;
            pcallable fn;
            dtype type;
        };
        static constexpr allowed_t allowed[] = {
            {"collections", "OrderedDict", pcallable::ordered_dict, dtype::f32},
            {"torch._utils", "_rebuild_tensor", pcallable::rebuild_tensor, dtype::f32},
            {"torch._utils", "_rebuild_tensor_v2", pcallable::rebuild_tensor_v2, dtype::f32},
            {"torch._utils", "_rebuild_parameter", pcallable::rebuild_parameter, dtype::f32},
            {"torch._utils", "_rebuild_parameter_with_state", pcallable::rebuild_parameter_with_state, dtype::f32},
            {"torch", "DoubleStorage", pcallable::storage_type, dtype::f64},
            {"torch", "FloatStorage", pcallable::storage_type, dtype::f32},
            {"torch", "HalfStorage", pcallable::storage_type, dtype::f16},
            {"torch", "BFloat16Storage", pcallable::storage_type, dtype::bf16},
            {"torch", "LongStorage", pcallable::storage_type, dtype::i64},
            {"torch", "IntStorage", pcallable::storage_type, dtype::i32},
            {"torch", "ShortStorage", pcallable::storage_type, dtype::i16},
            {"torch", "CharStorage", pcallable::storage_type, dtype::i8},
            {"torch", "ByteStorage", pcallable::storage_type, dtype::u8},
            {"torch", "BoolStorage", pcallable::storage_type, dtype::boolean},
        };
        for (const auto& a : allowed) {
            if (module == a.module && name == a.name) {
                const ref r = make_text(pkind::callable, module + "." + name);
                objects_[r].fn = a.fn;
                objects_[r].type = a.type;
                return r;
            }
        }
        throw fail("global '" + escape_for_message(module) + "." + escape_for_message(name) +
                   "' is not allowed in a checkpoint");
    }

    std::int64_t int_arg(ref r, const std::string& fn, const char* what) const {
        const pobject& o = objects_[r];
        if (o.kind != pkind::integer)
            throw fail(fn + ": " + what + " is " + kind_name(o.kind) + ", expected an int");
        return o.i;
    }
    std::vector<std::int64_t> ints_arg(ref r, const std::string& fn, const char* what) const {
        const pkind k = objects_[r].kind;
        if (k != pkind::tuple && k != pkind::list)
            throw fail(fn + ": " + what + " is " + kind_name(k) + ", expected a tuple of ints");
        const auto& dims = items(r);
        if (dims.size() > limits_.max_rank)
            throw fail(fn + ": " + what + " has " + std::to_string(dims.size()) + " dimensions, more than " +
                       std::to_string(limits_.max_rank));
        std::vector<std::int64_t> v;
        for (ref x : dims) {
            const std::int64_t d = int_arg(x, fn, what);
            if (d < 0) throw fail(fn + ": " + what + " has a negative entry " + std::to_string(d));
            v.push_back(d);
        }
        return v;
    }

    // What REDUCE (and INST, OBJ, NEWOBJ) make of an allowed callable.
    // `args` is taken by value: make() may move the arena it came from.
    ref call(ref callee, const std::vector<ref> args) {
        if (objects_[callee].kind != pkind::callable)
            throw fail("call of " + std::string(kind_name(objects_[callee].kind)) + ", which is not callable");
        const pcallable which = objects_[callee].fn;
        const std::string fn = text(callee);
        auto arity = [&](std::size_t lo, std::size_t hi) {
            if (args.size() < lo || args.size() > hi)
                throw fail(fn + " called with " + std::to_string(args.size()) + " arguments");
        };
        switch (which) {
            case pcallable::ordered_dict:
                // torch writes OrderedDict() and fills it with SETITEMS;
                // no arguments also means no copying amplification.
                arity(0, 0);
                return make(pkind::dict);
            case pcallable::rebuild_tensor:
            case pcallable::rebuild_tensor_v2: {
                if (which == pcallable::rebuild_tensor) arity(4, 4); else arity(6, 7);
                if (objects_[args[0]].kind != pkind::storage)
                    throw fail(fn + ": argument 1 is " + kind_name(objects_[args[0]].kind) + ", expected a storage");
                ptensor t;
                t.storage = static_cast<std::size_t>(objects_[args[0]].i);
                t.offset = int_arg(args[1], fn, "storage offset");
                if (t.offset < 0) throw fail(fn + ": negative storage offset " + std::to_string(t.offset));
                t.shape = ints_arg(args[2], fn, "size");
                t.stride = ints_arg(args[3], fn, "stride");
                if (t.shape.size() != t.stride.size())
                    throw fail(fn + ": size " + shape_string(t.shape) + " and stride " + shape_string(t.stride) +
                               " differ in rank");
                // Replaying a memoized call makes a rank-32 tensor from 5 bytes
                // of pickle: its dimensions count as container items, or 18 MB
                // of pickle would hold 2 GB of shapes.
                count_items(t.shape.size() + t.stride.size());
                // requires_grad, backward hooks and metadata do not matter for inference.
                tensors_.push_back(std::move(t));
                pobject o;
                o.kind = pkind::tensor;
                o.i = static_cast<std::int64_t>(tensors_.size() - 1);
                return make(std::move(o));
            }
            case pcallable::rebuild_parameter:
            case pcallable::rebuild_parameter_with_state:
                if (which == pcallable::rebuild_parameter) arity(3, 3); else arity(4, 4);
                if (objects_[args[0]].kind != pkind::tensor)
                    throw fail(fn + ": argument 1 is " + kind_name(objects_[args[0]].kind) + ", expected a tensor");
                return args[0];  // an nn.Parameter is its tensor
            case pcallable::storage_type:
                throw fail(fn + " cannot be called in a checkpoint");
        }
        throw fail(fn + " cannot be called");
    }

    ref tuple_arg(ref r, const char* op) const {
        if (objects_[r].kind != pkind::tuple)
            throw fail(std::string(op) + " arguments are " + kind_name(objects_[r].kind) + ", expected a tuple");
        return r;
    }

    // torch.save's persistent id for a storage:
    // ('storage', torch.<T>Storage, key, location, numel)
    ref persistent_load(ref pid) {
        const char* shape = "persistent id is not a ('storage', storage type, key, location, numel) tuple";
        if (objects_[pid].kind != pkind::tuple || items(pid).size() != 5) throw fail(shape);
        const std::vector<ref> p = items(pid);
        const pobject& tag = objects_[p[0]];
        const pobject& type = objects_[p[1]];
        const pobject& key = objects_[p[2]];
        const pobject& loc = objects_[p[3]];
        const pobject& numel = objects_[p[4]];
        if ((tag.kind != pkind::string && tag.kind != pkind::bytes) || text(p[0]) != "storage")
            throw fail("persistent id of unknown type (only 'storage' is supported)");
        if (type.kind != pkind::callable || type.fn != pcallable::storage_type)
            throw fail("persistent id: storage type is not a torch storage class");
        if (key.kind != pkind::string && key.kind != pkind::bytes) throw fail(shape);
        if (loc.kind != pkind::string && loc.kind != pkind::bytes) throw fail(shape);
        if (numel.kind != pkind::integer || numel.i < 0) throw fail(shape);
        pstorage s;
        s.type = type.type;
        s.key = text(p[2]);
        s.location = text(p[3]);
        s.numel = numel.i;
        storages_.push_back(std::move(s));
        pobject o;
        o.kind = pkind::storage;
        o.i = static_cast<std::int64_t>(storages_.size() - 1);
        return make(std::move(o));
    }

    void memo_put(std::uint64_t index) {
        const ref r = top();
        if (memo_.size() >= limits_.max_memo && memo_.count(index) == 0)
            throw fail("the memo grows past " + std::to_string(limits_.max_memo) + " entries");
        memo_[index] = r;
    }
    void memo_get(std::uint64_t index) {
        auto it = memo_.find(index);
        if (it == memo_.end()) throw fail("memo key " + std::to_string(index) + " is not defined");
        push(it->second);
    }
    std::uint64_t memo_index(const std::string& s) {
        std::uint64_t v = 0;
        const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
        if (r.ec != std::errc() || r.ptr != s.data() + s.size() || s.empty())
            throw fail("memo key '" + escape_for_message(s) + "' is not a non-negative integer");
        return v;
    }

    // ---- one opcode

    void step(unsigned char op) {
        switch (op) {
            // stack and MARK
            case '(':
                if (marks_.size() >= limits_.max_marks)
                    throw fail("MARKs nested deeper than " + std::to_string(limits_.max_marks));
                marks_.push_back(stack_.size());
                return;
            case '0':  // POP: an empty frame pops its MARK, as CPython does
                if (stack_.size() > base()) stack_.pop_back();
                else pop_mark();
                return;
            case '1': pop_mark(); return;
            case '2': push(top()); return;

            // integers
            case 'I': {
                const std::string s = read_line();
                if (s == "01") { push(make_bool(true)); return; }
                if (s == "00") { push(make_bool(false)); return; }
                push(make_decimal(s, false));
                return;
            }
            case 'L': push(make_decimal(read_line(), true)); return;
            case 'J': push(make_int(static_cast<std::int32_t>(static_cast<std::uint32_t>(read_le(4))))); return;
            case 'K': push(make_int(static_cast<std::int64_t>(read_le(1)))); return;
            case 'M': push(make_int(static_cast<std::int64_t>(read_le(2)))); return;
            case 0x8a: {  // LONG1
                const std::uint64_t n = read_le(1);
                push(make_long(read_bytes(n, "an integer")));
                return;
            }
            case 0x8b: {  // LONG4
                const auto n = static_cast<std::int32_t>(static_cast<std::uint32_t>(read_le(4)));
                if (n < 0) throw fail("LONG4 with a negative length");
                push(make_long(read_bytes(static_cast<std::uint64_t>(n), "an integer")));
                return;
            }

            // constants and floats
            case 'N': push(make(pkind::none)); return;
            case 0x88: push(make_bool(true)); return;
            case 0x89: push(make_bool(false)); return;
            case 'F': {
                const std::string s = read_line();
                pobject o;
                o.kind = pkind::floating;
                const auto r = std::from_chars(s.data(), s.data() + s.size(), o.f);
                if (r.ec != std::errc() || r.ptr != s.data() + s.size())
                    throw fail("'" + escape_for_message(s) + "' is not a float");
                push(make(std::move(o)));
                return;
            }
            case 'G': {  // big-endian IEEE double
                need(8, "a float");
                std::uint64_t bits = 0;
                for (int k = 0; k < 8; ++k) bits = (bits << 8) | data_[pos_ + static_cast<std::size_t>(k)];
                pos_ += 8;
                pobject o;
                o.kind = pkind::floating;
                std::memcpy(&o.f, &bits, 8);
                push(make(std::move(o)));
                return;
            }

            // strings and bytes; Python 3 reads protocol 2 str8 as str
            case 'S': push(make_text(pkind::string, unquote(read_line()))); return;
            case 'T': {
                const auto n = static_cast<std::int32_t>(static_cast<std::uint32_t>(read_le(4)));
                if (n < 0) throw fail("BINSTRING with a negative length");
                push(make_text(pkind::string, read_bytes(static_cast<std::uint64_t>(n), "a string")));
                return;
            }
            case 'U': push(make_text(pkind::string, read_bytes(read_le(1), "a string"))); return;
            case 'V': push(make_text(pkind::string, raw_unicode_escape(read_line()))); return;
            case 'X': push(make_text(pkind::string, read_bytes(read_le(4), "a string"))); return;
            case 0x8c: push(make_text(pkind::string, read_bytes(read_le(1), "a string"))); return;
            case 0x8d: push(make_text(pkind::string, read_bytes(read_le(8), "a string"))); return;
            case 'B': push(make_text(pkind::bytes, read_bytes(read_le(4), "a bytes object"))); return;
            case 'C': push(make_text(pkind::bytes, read_bytes(read_le(1), "a bytes object"))); return;
            case 0x8e: push(make_text(pkind::bytes, read_bytes(read_le(8), "a bytes object"))); return;
            case 0x96: push(make_text(pkind::bytes, read_bytes(read_le(8), "a bytearray"))); return;

            // containers
            case ']': push(make(pkind::list)); return;
            case ')': push(make(pkind::tuple)); return;
            case '}': push(make(pkind::dict)); return;
            case 0x8f: push(make(pkind::set)); return;
            case 'l': push(make_seq(pkind::list, pop_mark())); return;
            case 't': push(make_seq(pkind::tuple, pop_mark())); return;
            case 0x91: push(make_seq(pkind::set, pop_mark())); return;
            case 'd': {
                auto items = pop_mark();
                if (items.size() % 2) throw fail("DICT with an odd number of items");
                push(make_seq(pkind::dict, std::move(items)));
                return;
            }
            case 0x85: case 0x86: case 0x87: {  // TUPLE1..3
                std::vector<ref> items(static_cast<std::size_t>(op - 0x84));
                for (std::size_t k = items.size(); k-- > 0;) items[k] = pop();
                push(make_seq(pkind::tuple, std::move(items)));
                return;
            }
            case 'a': {
                const ref v = pop();
                auto& l = top_items(pkind::list, "APPEND");
                count_items(1);
                l.push_back(v);
                return;
            }
            case 'e': {
                auto items = pop_mark();
                add_items(top_items(pkind::list, "APPENDS"), items);
                return;
            }
            case 's': {
                const ref v = pop();
                const ref k = pop();
                auto& d = top_items(pkind::dict, "SETITEM");
                count_items(2);
                d.push_back(k);
                d.push_back(v);
                return;
            }
            case 'u': {
                auto items = pop_mark();
                if (items.size() % 2) throw fail("SETITEMS with an odd number of items");
                add_items(top_items(pkind::dict, "SETITEMS"), items);
                return;
            }
            case 0x90: {  // ADDITEMS
                auto items = pop_mark();
                add_items(top_items(pkind::set, "ADDITEMS"), items);
                return;
            }

            // memo
            case 'p': memo_put(memo_index(read_line())); return;
            case 'q': memo_put(read_le(1)); return;
            case 'r': memo_put(read_le(4)); return;
            case 0x94: memo_put(memo_.size()); return;  // MEMOIZE
            case 'g': memo_get(memo_index(read_line())); return;
            case 'h': memo_get(read_le(1)); return;
            case 'j': memo_get(read_le(4)); return;

            // globals and calls: resolved against the allowed list, never imported
            case 'c': {
                const std::string module = read_line();
                const std::string name = read_line();
                push(resolve_global(module, name));
                return;
            }
            case 0x93: {  // STACK_GLOBAL
                const ref name = pop();
                const ref module = pop();
                if (objects_[name].kind != pkind::string || objects_[module].kind != pkind::string)
                    throw fail("STACK_GLOBAL with a module or name that is not a str");
                push(resolve_global(text(module), text(name)));
                return;
            }
            case 'i': {  // INST: a GLOBAL and a call in one
                const std::string module = read_line();
                const std::string name = read_line();
                const ref f = resolve_global(module, name);
                push(call(f, pop_mark()));
                return;
            }
            case 'o': {  // OBJ
                auto items = pop_mark();
                if (items.empty()) throw fail("OBJ without a class");
                const ref f = items.front();
                items.erase(items.begin());
                push(call(f, items));
                return;
            }
            case 'R': {
                const ref args = tuple_arg(pop(), "REDUCE");
                const ref f = pop();
                push(call(f, items(args)));
                return;
            }
            case 0x81: {  // NEWOBJ
                const ref args = tuple_arg(pop(), "NEWOBJ");
                const ref f = pop();
                push(call(f, items(args)));
                return;
            }
            case 0x92: {  // NEWOBJ_EX
                const ref kwargs = pop();
                const ref args = tuple_arg(pop(), "NEWOBJ_EX");
                const ref f = pop();
                if (objects_[kwargs].kind != pkind::dict || !items(kwargs).empty())
                    throw fail("NEWOBJ_EX with keyword arguments");
                push(call(f, items(args)));
                return;
            }
            case 'b':  // BUILD: state (an OrderedDict's _metadata) is not needed
                pop();
                top();
                return;

            // persistent ids: where the tensor data is
            case 'Q': push(persistent_load(pop())); return;
            case 'P': throw fail("text persistent ids (PERSID) are not supported");

            // framing and protocol
            case 0x80: {
                const std::uint64_t v = read_le(1);
                if (v > 5) throw fail("unsupported pickle protocol " + std::to_string(v));
                return;
            }
            case 0x95: {  // FRAME: a length hint; the data follows inline
                const std::uint64_t n = read_le(8);
                need(n, "a frame");
                return;
            }
            case 0x82: case 0x83: case 0x84:
                throw fail("extension registry codes (EXT1/2/4) are not allowed in a checkpoint");
            case 0x97: case 0x98:
                throw fail("out-of-band buffers are not supported");
            default: {
                static constexpr char hex[] = "0123456789abcdef";
                std::string h = "0x";
                h += hex[op >> 4];
                h += hex[op & 15];
                throw error(context_ + ": unknown opcode " + h + " at byte " + std::to_string(op_pos_));
            }
        }
    }

    const unsigned char* data_;
    std::size_t size_;
    std::string context_;
    pickle_limits limits_;
    std::size_t pos_ = 0;
    std::size_t op_pos_ = 0;
    std::vector<ref> stack_;
    std::vector<std::size_t> marks_;  // stack heights at each MARK
    std::unordered_map<std::uint64_t, ref> memo_;
    std::vector<pobject> objects_;
    std::vector<std::string> texts_;
    std::vector<std::vector<ref>> seqs_;
    std::vector<pstorage> storages_;
    std::vector<ptensor> tensors_;
    std::size_t items_ = 0;  // slots in all containers, against max_items
};

}  // namespace vit::detail
