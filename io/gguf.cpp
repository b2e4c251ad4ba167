// GGUF parser: maps the file read-only and validates header, metadata, tensor table and
// tensor extents before anything is allocated from or pointed into the mapping.
#include "io/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>
#include <optional>
#include <type_traits>

#include "engine/core/error.h"

namespace gridlm {

namespace {

constexpr uint8_t gguf_magic[4] = {'G', 'G', 'U', 'F'};
constexpr uint32_t max_n_dims = 4;  // ggml's GGML_MAX_DIMS
constexpr int max_array_depth = 8;  // deeper nesting only serves to blow the stack
// Smallest possible encodings, used to reject counts the rest of the file cannot hold before
// anything is reserved: a key/value is key length (8) + type (4) + a one-byte value; a tensor
// info is name length (8) + n_dims (4) + type (4) + offset (8).
constexpr uint64_t min_kv_bytes = 13;
constexpr uint64_t min_tensor_info_bytes = 24;

bool valid_value_type(uint32_t t) { return t <= (uint32_t)GgufValueType::gguf_value_type_f64; }

// Bytes of a fixed-size value; 0 for string and array.
uint64_t scalar_bytes(GgufValueType t) {
    switch (t) {
        case GgufValueType::gguf_value_type_u8:
        case GgufValueType::gguf_value_type_i8:
        case GgufValueType::gguf_value_type_bool:
            return 1;
        case GgufValueType::gguf_value_type_u16:
        case GgufValueType::gguf_value_type_i16:
            return 2;
        case GgufValueType::gguf_value_type_u32:
        case GgufValueType::gguf_value_type_i32:
        case GgufValueType::gguf_value_type_f32:
            return 4;
        case GgufValueType::gguf_value_type_u64:
        case GgufValueType::gguf_value_type_i64:
        case GgufValueType::gguf_value_type_f64:
            return 8;
        default:
            return 0;
    }
}

template <typename T>
T load(const uint8_t* p) {
    T v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

// An integer metadata value of any width and signedness: value = neg ? -mag : mag.
struct IntValue {
    bool neg = false;
    uint64_t mag = 0;
};

std::optional<IntValue> load_int(const uint8_t* p, GgufValueType t) {
    auto from_signed = [](int64_t s) { return IntValue{s < 0, s < 0 ? (uint64_t)(-(s + 1)) + 1 : (uint64_t)s}; };
    switch (t) {
        case GgufValueType::gguf_value_type_u8:
            return IntValue{false, load<uint8_t>(p)};
        case GgufValueType::gguf_value_type_u16:
            return IntValue{false, load<uint16_t>(p)};
        case GgufValueType::gguf_value_type_u32:
            return IntValue{false, load<uint32_t>(p)};
        case GgufValueType::gguf_value_type_u64:
            return IntValue{false, load<uint64_t>(p)};
        case GgufValueType::gguf_value_type_i8:
            return from_signed(load<int8_t>(p));
        case GgufValueType::gguf_value_type_i16:
            return from_signed(load<int16_t>(p));
        case GgufValueType::gguf_value_type_i32:
            return from_signed(load<int32_t>(p));
        case GgufValueType::gguf_value_type_i64:
            return from_signed(load<int64_t>(p));
        default:
            return std::nullopt;
    }
}

template <typename T>
std::optional<T> fit_int(IntValue v) {
    if (v.neg) {
        if constexpr (std::is_unsigned_v<T>) {
            return std::nullopt;  // mag is never 0 when neg
        } else {
            if (v.mag > (uint64_t)std::numeric_limits<T>::max() + 1) return std::nullopt;
            return (T)(-(int64_t)(v.mag - 1) - 1);  // no overflow at the minimum
        }
    }
    if (v.mag > (uint64_t)std::numeric_limits<T>::max()) return std::nullopt;
    return (T)v.mag;
}

std::string int_text(IntValue v) { return (v.neg ? "-" : "") + std::to_string(v.mag); }

template <typename T>
constexpr const char* int_type_name() {
    if constexpr (std::is_same_v<T, uint32_t>) return "u32";
    if constexpr (std::is_same_v<T, int32_t>) return "i32";
    if constexpr (std::is_same_v<T, uint64_t>) return "u64";
    return "i64";
}

// Bounds-checked reading position in the mapping. `where` names the record being parsed so
// every error says which key or tensor broke.
class Cursor {
public:
    Cursor(const uint8_t* base, uint64_t size, const std::string& path) : base_(base), size_(size), path_(path) {}

    uint64_t pos = 0;
    std::string where;

    uint64_t left() const { return size_ - pos; }

    [[noreturn]] void fail(const std::string& what) const {
        throw Error(str("GGUF file '", path_, "': ", where, where.empty() ? "" : ": ", what));
    }

    void need(uint64_t n, std::string_view what) const {
        if (n > left()) {
            fail(str("truncated: ", what, " needs ", n, " bytes at offset ", pos, " but only ", left(), " remain"));
        }
    }

    template <typename T>
    T read(std::string_view what) {
        need(sizeof(T), what);
        T v = load<T>(base_ + pos);
        pos += sizeof(T);
        return v;
    }

    std::string_view read_string(std::string_view what) {
        const uint64_t n = read<uint64_t>(what);
        if (n > left()) fail(str(what, " length ", n, " exceeds the ", left(), " bytes left in the file"));
        std::string_view s(reinterpret_cast<const char*>(base_ + pos), (size_t)n);
        pos += n;
        return s;
    }

    GgufValueType read_value_type(std::string_view what) {
        const uint32_t t = read<uint32_t>(what);
        if (!valid_value_type(t)) fail(str("unknown ", what, " ", t));
        return (GgufValueType)t;
    }

    // Steps over one value of type t (arrays with their element type and count included).
    void skip_value(GgufValueType t, int depth) {
        if (t == GgufValueType::gguf_value_type_string) {
            read_string("string");
        } else if (t == GgufValueType::gguf_value_type_array) {
            const GgufValueType elem = read_value_type("array element type");
            const uint64_t count = read<uint64_t>("array length");
            skip_array(elem, count, depth + 1);
        } else {
            need(scalar_bytes(t), gguf_value_type_name(t));
            pos += scalar_bytes(t);
        }
    }

    // Steps over `count` elements; the count is checked against the smallest size the
    // elements could have before walking them.
    void skip_array(GgufValueType elem, uint64_t count, int depth) {
        if (depth > max_array_depth) fail(str("arrays nested deeper than ", max_array_depth, " levels"));
        const uint64_t min_elem = elem == GgufValueType::gguf_value_type_string  ? 8
                                  : elem == GgufValueType::gguf_value_type_array ? 12
                                                                                 : scalar_bytes(elem);
        if (count > left() / min_elem) {
            fail(str("array of ", count, " ", gguf_value_type_name(elem), " values exceeds the ", left(),
                     " bytes left in the file"));
        }
        if (elem == GgufValueType::gguf_value_type_string) {
            for (uint64_t k = 0; k < count; ++k) {
                const uint64_t n = read<uint64_t>("string length");
                if (n > left()) {
                    fail(str("string array element #", k, ": length ", n, " exceeds the ", left(),
                             " bytes left in the file"));
                }
                pos += n;
            }
        } else if (elem == GgufValueType::gguf_value_type_array) {
            for (uint64_t k = 0; k < count; ++k) skip_value(elem, depth);
        } else {
            pos += count * min_elem;
        }
    }

private:
    const uint8_t* base_;
    uint64_t size_;
    const std::string& path_;
};

// End of an already validated value starting at pos (used by describe()).
uint64_t value_end(const uint8_t* base, GgufValueType t, uint64_t pos) {
    if (t == GgufValueType::gguf_value_type_string) return pos + 8 + load<uint64_t>(base + pos);
    if (t != GgufValueType::gguf_value_type_array) return pos + scalar_bytes(t);
    const auto elem = (GgufValueType)load<uint32_t>(base + pos);
    const uint64_t count = load<uint64_t>(base + pos + 4);
    pos += 12;
    if (scalar_bytes(elem) != 0) return pos + count * scalar_bytes(elem);
    for (uint64_t k = 0; k < count; ++k) pos = value_end(base, elem, pos);
    return pos;
}

}  // namespace

std::string_view gguf_value_type_name(GgufValueType type) {
    static constexpr const char* names[] = {"u8",   "i8",     "u16",   "i16", "u32", "i32", "f32",
                                            "bool", "string", "array", "u64", "i64", "f64"};
    const auto i = (uint32_t)type;
    return i < std::size(names) ? names[i] : "?";
}

GgufFile::GgufFile(const std::string& path, bool need_tensor_data) : path_(path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw Error(str("cannot open GGUF file '", path, "': ", std::strerror(errno)));
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ::close(fd);
        throw Error(str("GGUF file '", path, "' is not a regular file"));
    }
    size_ = (uint64_t)st.st_size;
    if (size_ == 0) {
        ::close(fd);
        throw Error(str("GGUF file '", path, "' is empty"));
    }
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    const int map_errno = errno;
    ::close(fd);  // the mapping keeps the file alive
    if (p == MAP_FAILED) throw Error(str("cannot map GGUF file '", path, "': ", std::strerror(map_errno)));
    base_ = static_cast<const uint8_t*>(p);
    try {
        parse(need_tensor_data);
    } catch (...) {
        ::munmap(const_cast<uint8_t*>(base_), size_);
        throw;
    }
}

GgufFile::~GgufFile() { ::munmap(const_cast<uint8_t*>(base_), size_); }

void GgufFile::parse(bool need_tensor_data) {
    Cursor c(base_, size_, path_);

    c.where = "header";
    c.need(4, "magic");
    if (std::memcmp(base_, gguf_magic, 4) != 0) {
        c.fail(str("not a GGUF file (bad magic 0x", std::hex, load<uint32_t>(base_), ", expected \"GGUF\")"));
    }
    c.pos = 4;
    version_ = c.read<uint32_t>("version");
    if (version_ != 2 && version_ != 3) {
        c.fail(str("unsupported GGUF version ", version_, " (supported: 2, 3)",
                   version_ == 0x03000000 ? "; the file looks big-endian" : ""));
    }
    const uint64_t n_tensors = c.read<uint64_t>("tensor count");
    const uint64_t n_kv = c.read<uint64_t>("metadata count");
    if (n_kv > c.left() / min_kv_bytes) {
        c.fail(str("metadata count ", n_kv, " exceeds what the ", c.left(), " bytes left in the file can hold"));
    }
    if (n_tensors > (c.left() - n_kv * min_kv_bytes) / min_tensor_info_bytes) {
        c.fail(str("tensor count ", n_tensors, " exceeds what the ", c.left(), " bytes left in the file can hold"));
    }

    kvs_.reserve(n_kv);
    for (uint64_t i = 0; i < n_kv; ++i) {
        c.where = str("metadata key #", i);
        GgufKv kv;
        kv.key = std::string(c.read_string("key"));
        c.where = str("metadata key #", i, " '", kv.key, "'");
        kv.type = c.read_value_type("value type");
        if (kv.type == GgufValueType::gguf_value_type_array) {
            kv.elem_type = c.read_value_type("array element type");
            kv.count = c.read<uint64_t>("array length");
            kv.value_offset = c.pos;
            c.skip_array(kv.elem_type, kv.count, 1);
        } else {
            kv.value_offset = c.pos;
            c.skip_value(kv.type, 0);
        }
        kv.value_bytes = c.pos - kv.value_offset;
        if (!kv_index_.emplace(kv.key, kvs_.size()).second) c.fail("duplicate metadata key");
        kvs_.push_back(std::move(kv));
    }

    if (has("general.alignment")) {
        c.where = "metadata key 'general.alignment'";
        const uint64_t a = get_u64("general.alignment");
        if (a == 0 || (a & (a - 1)) != 0) c.fail(str("alignment ", a, " is not a power of two"));
        alignment_ = a;
    }

    tensors_.reserve(n_tensors);
    for (uint64_t i = 0; i < n_tensors; ++i) {
        c.where = str("tensor info #", i);
        GgufTensor t;
        t.name = std::string(c.read_string("name"));
        c.where = str("tensor info #", i, " '", t.name, "'");
        const uint32_t n_dims = c.read<uint32_t>("n_dims");
        if (n_dims > max_n_dims) c.fail(str("n_dims ", n_dims, " exceeds the maximum of ", max_n_dims));
        int64_t numel = 1;
        for (uint32_t d = 0; d < n_dims; ++d) {
            const uint64_t ne = c.read<uint64_t>("dimension");
            if (ne > (uint64_t)std::numeric_limits<int64_t>::max() ||
                (ne != 0 && numel > std::numeric_limits<int64_t>::max() / (int64_t)ne)) {
                c.fail(str("dimension #", d, " = ", ne, " makes the element count overflow"));
            }
            numel *= (int64_t)ne;
            t.dims.push_back((int64_t)ne);
        }
        const uint32_t type = c.read<uint32_t>("ggml type");
        const GgmlTypeTraits* traits = ggml_type_traits(type);
        if (!traits) c.fail(str("unknown ggml type ", type));
        t.type = (GgmlType)type;
        t.offset = c.read<uint64_t>("data offset");
        const int64_t row = t.dims.empty() ? 1 : t.dims[0];
        if (row % traits->block_size != 0) {
            c.fail(str("row length ", row, " is not a multiple of the ", traits->name, " block size ",
                       traits->block_size));
        }
        const uint64_t n_blocks = (uint64_t)(numel / traits->block_size);
        if (n_blocks > std::numeric_limits<uint64_t>::max() / (uint64_t)traits->type_size) {
            c.fail("byte size overflows");
        }
        t.n_bytes = n_blocks * (uint64_t)traits->type_size;
        if (!tensor_index_.emplace(t.name, tensors_.size()).second) c.fail("duplicate tensor name");
        tensors_.push_back(std::move(t));
    }

    // The data section starts at the next multiple of the alignment; a metadata-only file may
    // end before that, which only matters if a tensor needs bytes there.
    data_offset_ = (c.pos + alignment_ - 1) / alignment_ * alignment_;
    for (size_t i = 0; i < tensors_.size(); ++i) {
        GgufTensor& t = tensors_[i];
        c.where = str("tensor #", i, " '", t.name, "'");
        if (t.offset % alignment_ != 0) {
            c.fail(str("data offset ", t.offset, " is not a multiple of the alignment ", alignment_));
        }
        // Overflow-free form of data_offset + offset + n_bytes <= size.
        const bool start_ok = t.offset <= size_ && data_offset_ <= size_ - t.offset;
        if (start_ok && t.n_bytes <= size_ - (data_offset_ + t.offset)) {
            t.data = base_ + data_offset_ + t.offset;
        } else if (need_tensor_data) {
            c.fail(str("data (", t.n_bytes, " bytes at data offset ", t.offset, ", data section at file offset ",
                       data_offset_, ") lies past the end of the file (", size_,
                       " bytes): the file is truncated or the offset is corrupt"));
        }
    }
}

// ---- metadata accessors ------------------------------------------------------------------

bool GgufFile::has(std::string_view key) const { return kv_index_.count(std::string(key)) != 0; }

const GgufKv& GgufFile::kv(std::string_view key) const {
    auto it = kv_index_.find(std::string(key));
    if (it == kv_index_.end()) throw Error(str("GGUF file '", path_, "': metadata key '", key, "' is missing"));
    return kvs_[it->second];
}

void GgufFile::fail_key(const GgufKv& kv, const std::string& what) const {
    throw Error(str("GGUF file '", path_, "': metadata key '", kv.key, "': ", what));
}

namespace {

template <typename T>
T get_int(const GgufFile& f, const GgufKv& kv, const uint8_t* base) {
    const std::optional<IntValue> v = load_int(base + kv.value_offset, kv.type);
    if (!v) {
        throw Error(str("GGUF file '", f.path(), "': metadata key '", kv.key, "': expected an integer, found ",
                        gguf_value_type_name(kv.type)));
    }
    const std::optional<T> r = fit_int<T>(*v);
    if (!r) {
        throw Error(str("GGUF file '", f.path(), "': metadata key '", kv.key, "': value ", int_text(*v),
                        " does not fit in ", int_type_name<T>()));
    }
    return *r;
}

}  // namespace

uint64_t GgufFile::get_u64(std::string_view key) const { return get_int<uint64_t>(*this, kv(key), base_); }
int64_t GgufFile::get_i64(std::string_view key) const { return get_int<int64_t>(*this, kv(key), base_); }
uint32_t GgufFile::get_u32(std::string_view key) const { return get_int<uint32_t>(*this, kv(key), base_); }
int32_t GgufFile::get_i32(std::string_view key) const { return get_int<int32_t>(*this, kv(key), base_); }

double GgufFile::get_f64(std::string_view key) const {
    const GgufKv& k = kv(key);
    if (k.type == GgufValueType::gguf_value_type_f32) return load<float>(base_ + k.value_offset);
    if (k.type == GgufValueType::gguf_value_type_f64) return load<double>(base_ + k.value_offset);
    fail_key(k, str("expected f32 or f64, found ", gguf_value_type_name(k.type)));
}

float GgufFile::get_f32(std::string_view key) const { return (float)get_f64(key); }

bool GgufFile::get_bool(std::string_view key) const {
    const GgufKv& k = kv(key);
    if (k.type != GgufValueType::gguf_value_type_bool) {
        fail_key(k, str("expected bool, found ", gguf_value_type_name(k.type)));
    }
    return base_[k.value_offset] != 0;
}

std::string_view GgufFile::get_string_view(std::string_view key) const {
    const GgufKv& k = kv(key);
    if (k.type != GgufValueType::gguf_value_type_string) {
        fail_key(k, str("expected string, found ", gguf_value_type_name(k.type)));
    }
    return {reinterpret_cast<const char*>(base_ + k.value_offset + 8), (size_t)(k.value_bytes - 8)};
}

uint64_t GgufFile::get_array_size(std::string_view key) const {
    const GgufKv& k = kv(key);
    if (k.type != GgufValueType::gguf_value_type_array) {
        fail_key(k, str("expected array, found ", gguf_value_type_name(k.type)));
    }
    return k.count;
}

std::vector<std::string> GgufFile::get_string_array(std::string_view key) const {
    const GgufKv& k = kv(key);
    if (k.type != GgufValueType::gguf_value_type_array || k.elem_type != GgufValueType::gguf_value_type_string) {
        fail_key(k, "expected an array of strings");
    }
    std::vector<std::string> out;
    out.reserve(k.count);
    uint64_t pos = k.value_offset;
    for (uint64_t i = 0; i < k.count; ++i) {
        const uint64_t n = load<uint64_t>(base_ + pos);
        out.emplace_back(reinterpret_cast<const char*>(base_ + pos + 8), (size_t)n);
        pos += 8 + n;
    }
    return out;
}

namespace {

template <typename T>
std::vector<T> get_int_array(const GgufFile& f, const GgufKv& k, const uint8_t* base) {
    const uint64_t elem_bytes = scalar_bytes(k.elem_type);
    if (k.type != GgufValueType::gguf_value_type_array || elem_bytes == 0 ||
        k.elem_type == GgufValueType::gguf_value_type_bool || k.elem_type == GgufValueType::gguf_value_type_f32 ||
        k.elem_type == GgufValueType::gguf_value_type_f64) {
        throw Error(str("GGUF file '", f.path(), "': metadata key '", k.key, "': expected an array of integers"));
    }
    std::vector<T> out(k.count);
    for (uint64_t i = 0; i < k.count; ++i) {
        const IntValue v = *load_int(base + k.value_offset + i * elem_bytes, k.elem_type);
        const std::optional<T> r = fit_int<T>(v);
        if (!r) {
            throw Error(str("GGUF file '", f.path(), "': metadata key '", k.key, "': element #", i, " = ", int_text(v),
                            " does not fit in ", int_type_name<T>()));
        }
        out[i] = *r;
    }
    return out;
}

}  // namespace

std::vector<int32_t> GgufFile::get_i32_array(std::string_view key) const {
    return get_int_array<int32_t>(*this, kv(key), base_);
}

std::vector<int64_t> GgufFile::get_i64_array(std::string_view key) const {
    return get_int_array<int64_t>(*this, kv(key), base_);
}

std::vector<float> GgufFile::get_f32_array(std::string_view key) const {
    const GgufKv& k = kv(key);
    const bool is_f32 = k.elem_type == GgufValueType::gguf_value_type_f32;
    if (k.type != GgufValueType::gguf_value_type_array ||
        (!is_f32 && k.elem_type != GgufValueType::gguf_value_type_f64)) {
        fail_key(k, "expected an array of f32 or f64");
    }
    std::vector<float> out(k.count);
    for (uint64_t i = 0; i < k.count; ++i) {
        out[i] =
            is_f32 ? load<float>(base_ + k.value_offset + 4 * i) : (float)load<double>(base_ + k.value_offset + 8 * i);
    }
    return out;
}

void GgufFile::describe_value(std::string& out, GgufValueType type, uint64_t& pos, size_t max_elems,
                              size_t max_chars) const {
    const uint8_t* p = base_ + pos;
    switch (type) {
        case GgufValueType::gguf_value_type_f32:
            out += str(load<float>(p));
            break;
        case GgufValueType::gguf_value_type_f64:
            out += str(load<double>(p));
            break;
        case GgufValueType::gguf_value_type_bool:
            out += *p ? "true" : "false";
            break;
        case GgufValueType::gguf_value_type_string: {
            const uint64_t n = load<uint64_t>(p);
            const std::string_view s(reinterpret_cast<const char*>(p + 8), (size_t)n);
            out += '"';
            out += s.substr(0, max_chars);
            out += n > max_chars ? "\"..." : "\"";
            break;
        }
        case GgufValueType::gguf_value_type_array: {
            const auto elem = (GgufValueType)load<uint32_t>(p);
            const uint64_t count = load<uint64_t>(p + 4);
            uint64_t q = pos + 12;
            out += '[';
            for (uint64_t i = 0; i < count && i < max_elems; ++i) {
                if (i) out += ", ";
                describe_value(out, elem, q, max_elems, max_chars);
            }
            if (count > max_elems) out += str(", ... (", count, ")");
            out += ']';
            break;
        }
        default:
            out += int_text(*load_int(p, type));
            break;
    }
    pos = value_end(base_, type, pos);
}

std::string GgufFile::describe(std::string_view key, size_t max_elems, size_t max_chars) const {
    const GgufKv& k = kv(key);
    std::string out;
    // Arrays are stored from their first element; step back to their element type and count.
    uint64_t pos = k.type == GgufValueType::gguf_value_type_array ? k.value_offset - 12 : k.value_offset;
    describe_value(out, k.type, pos, max_elems, max_chars);
    return out;
}

// ---- tensors -----------------------------------------------------------------------------

const GgufTensor* GgufFile::find_tensor(std::string_view name) const {
    auto it = tensor_index_.find(std::string(name));
    return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const GgufTensor& GgufFile::tensor(std::string_view name) const {
    const GgufTensor* t = find_tensor(name);
    if (!t) throw Error(str("GGUF file '", path_, "': no tensor named '", name, "'"));
    return *t;
}

const uint8_t* GgufFile::tensor_data(const GgufTensor& t) const {
    if (!t.data) {
        throw Error(str("GGUF file '", path_, "': tensor '", t.name, "': its data (", t.n_bytes,
                        " bytes) lies past the end of the file (", size_,
                        " bytes); the file is cut off and was opened for metadata only"));
    }
    return t.data;
}

}  // namespace gridlm
