// Safetensors reading: maps the file, checks every header field against the file before use
// (no allocation sized by untrusted numbers), and resolves sharded checkpoints.
#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "engine/core/error.h"

namespace gridlm {

static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian");

using json = nlohmann::json;

namespace {

std::string shape_str(const std::vector<int64_t>& shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
}

// Non-negative JSON integer, or an error naming the field.
uint64_t json_u64(const json& v, const std::string& where, const char* what) {
    if (v.is_number_unsigned()) return v.get<uint64_t>();
    if (v.is_number_integer() && v.get<int64_t>() >= 0) return (uint64_t)v.get<int64_t>();
    throw Error(str(where, ": ", what, " ", v.dump(), " is not a non-negative integer"));
}

SafetensorsTensor parse_entry(const std::string& name, const json& e, uint64_t data_size, const std::string& file) {
    const std::string where = str("safetensors file ", file, ", tensor '", name, "'");
    if (!e.is_object()) throw Error(str(where, ": header entry is not an object"));
    if (!e.contains("dtype") || !e["dtype"].is_string()) throw Error(str(where, ": missing string field 'dtype'"));
    if (!e.contains("shape") || !e["shape"].is_array()) throw Error(str(where, ": missing array field 'shape'"));
    if (!e.contains("data_offsets") || !e["data_offsets"].is_array() || e["data_offsets"].size() != 2) {
        throw Error(str(where, ": missing field 'data_offsets' = [begin, end]"));
    }
    SafetensorsTensor t;
    t.info.name = name;
    const std::string dtype = e["dtype"].get<std::string>();
    uint64_t elem_size = 0;
    if (dtype == "F32") {
        t.dtype = DType::dtype_f32;
        elem_size = 4;
    } else if (dtype == "F16") {
        t.dtype = DType::dtype_f16;
        elem_size = 2;
    } else if (dtype == "BF16") {
        t.dtype = DType::dtype_bf16;
        elem_size = 2;
    } else if (dtype == "F8_E4M3") {  // DeepSeek-V3 / R1: with a block-scale tensor, see read_f32
        t.dtype = DType::dtype_f32;
        t.fp8_e4m3 = true;
        elem_size = 1;
    } else {
        throw Error(str(where, ": dtype ", dtype, " is not supported (gridlm reads F32, F16, BF16 and F8_E4M3)"));
    }
    t.info.source_type = dtype;
    uint64_t numel = 1;
    for (const json& d : e["shape"]) {
        const uint64_t dim = json_u64(d, where, "dimension");
        if (dim > (uint64_t)INT64_MAX || __builtin_mul_overflow(numel, dim, &numel) || numel > (uint64_t)INT64_MAX) {
            throw Error(str(where, ": shape ", e["shape"].dump(), " has more elements than can exist"));
        }
        t.info.shape.push_back((int64_t)dim);
    }
    uint64_t nbytes = 0;
    if (__builtin_mul_overflow(numel, elem_size, &nbytes)) {
        throw Error(str(where, ": shape ", e["shape"].dump(), " is too large"));
    }
    t.data_begin = json_u64(e["data_offsets"][0], where, "data offset");
    t.data_end = json_u64(e["data_offsets"][1], where, "data offset");
    if (t.data_begin > t.data_end || t.data_end > data_size) {
        throw Error(str(where, ": data_offsets [", t.data_begin, ", ", t.data_end, ") lie outside the data section of ",
                        data_size, " bytes (truncated or corrupt file)"));
    }
    if (t.data_end - t.data_begin != nbytes) {
        throw Error(str(where, ": data_offsets span ", t.data_end - t.data_begin, " bytes but shape ",
                        shape_str(t.info.shape), " of ", dtype, " needs ", nbytes));
    }
    t.info.source_bytes = nbytes;
    return t;
}

json parse_json_file(const std::string& path, const std::string& what) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(str("cannot open ", what, " ", path, ": ", std::strerror(errno)));
    std::ostringstream ss;
    ss << in.rdbuf();
    try {
        return json::parse(ss.str());
    } catch (const json::exception& e) {
        throw Error(str(what, " ", path, " is not valid JSON: ", e.what()));
    }
}

}  // namespace

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw Error(str("cannot open safetensors file ", path, ": ", std::strerror(errno)));
    struct stat st {};
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ::close(fd);
        throw Error(str("cannot open safetensors file ", path, ": not a regular file"));
    }
    size_ = (uint64_t)st.st_size;
    if (size_ < 8) {
        ::close(fd);
        throw Error(str("safetensors file ", path, " is ", size_, " bytes: too short for the 8-byte header length"));
    }
    void* m = mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    ::close(fd);
    if (m == MAP_FAILED) throw Error(str("cannot map safetensors file ", path, ": ", std::strerror(errno)));
    map_ = static_cast<const uint8_t*>(m);

    try {
        uint64_t header_len = 0;
        std::memcpy(&header_len, map_, 8);
        if (header_len > safetensors_max_header_bytes) {
            throw Error(str("safetensors file ", path, ": header length ", header_len, " is absurd (limit ",
                            safetensors_max_header_bytes, "); not a safetensors file or corrupt"));
        }
        if (header_len > size_ - 8) {
            throw Error(str("safetensors file ", path, ": header length ", header_len, " exceeds the file size ", size_,
                            " (truncated or not a safetensors file)"));
        }
        json header;
        try {
            header = json::parse(map_ + 8, map_ + 8 + header_len);
        } catch (const json::exception& e) {
            throw Error(str("safetensors file ", path, ": header is not valid JSON: ", e.what()));
        }
        if (!header.is_object()) throw Error(str("safetensors file ", path, ": header is not a JSON object"));
        data_ = map_ + 8 + header_len;
        const uint64_t data_size = size_ - 8 - header_len;
        for (const auto& [name, entry] : header.items()) {
            if (name == "__metadata__") continue;  // free-form string map (e.g. {"format": "pt"})
            tensors_.push_back(parse_entry(name, entry, data_size, path));
        }
        std::sort(tensors_.begin(), tensors_.end(), [](const SafetensorsTensor& a, const SafetensorsTensor& b) {
            return a.data_begin != b.data_begin ? a.data_begin < b.data_begin : a.data_end < b.data_end;
        });
        for (size_t i = 1; i < tensors_.size(); ++i) {
            if (tensors_[i].data_begin < tensors_[i - 1].data_end) {
                throw Error(str("safetensors file ", path, ": tensors '", tensors_[i - 1].info.name, "' and '",
                                tensors_[i].info.name, "' overlap in the data section"));
            }
        }
        for (size_t i = 0; i < tensors_.size(); ++i) index_[tensors_[i].info.name] = i;
    } catch (...) {
        munmap(const_cast<uint8_t*>(map_), size_);
        throw;
    }
}

SafetensorsFile::~SafetensorsFile() {
    if (map_) munmap(const_cast<uint8_t*>(map_), size_);
}

const SafetensorsTensor* SafetensorsFile::find(const std::string& name) const {
    auto it = index_.find(name);
    return it == index_.end() ? nullptr : &tensors_[it->second];
}

float fp8_e4m3_to_f32(uint8_t b) {
    // OCP FP8 E4M3 ("e4m3fn"): sign, 4 exponent bits (bias 7), 3 mantissa bits; no infinities,
    // S.1111.111 is NaN; exponent 0 holds the subnormals m/8 * 2^-6.
    const int sign = b >> 7, exp = (b >> 3) & 15, man = b & 7;
    if (exp == 15 && man == 7) return std::numeric_limits<float>::quiet_NaN();
    const float mag = exp == 0 ? std::ldexp((float)man / 8.f, -6) : std::ldexp(1.f + (float)man / 8.f, exp - 7);
    return sign ? -mag : mag;
}

std::vector<float> SafetensorsFile::read_f32(const SafetensorsTensor& t) const {
    const int64_t n = t.info.numel();
    std::vector<float> out(n);
    if (n == 0) return out;  // an empty tensor: out.data() may be null, which memcpy must not get
    const uint8_t* src = data(t);
    if (t.fp8_e4m3) {
        for (int64_t i = 0; i < n; ++i) out[i] = fp8_e4m3_to_f32(src[i]);
        return out;
    }
    // Data need not be aligned: copy bytes rather than cast pointers.
    if (t.dtype == DType::dtype_f32) {
        std::memcpy(out.data(), src, (size_t)n * 4);
        return out;
    }
    const bool bf16 = t.dtype == DType::dtype_bf16;
    for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        out[i] = bf16 ? bf16_to_f32(h) : f16_to_f32(h);
    }
    return out;
}

SafetensorsSource::SafetensorsSource(const std::string& dir_or_file) : where_(dir_or_file) {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (!fs::exists(dir_or_file, ec)) throw Error(str("cannot open ", dir_or_file, ": no such file or directory"));
    if (!fs::is_directory(dir_or_file, ec)) {
        add_whole_file(dir_or_file);
        hide_fp8_scales();
        return;
    }
    const fs::path dir(dir_or_file);
    const fs::path index_path = dir / "model.safetensors.index.json";
    if (!fs::exists(index_path, ec)) {
        const fs::path single = dir / "model.safetensors";
        if (!fs::exists(single, ec)) {
            throw Error(
                str("no weights in ", dir_or_file, ": expected model.safetensors or model.safetensors.index.json"));
        }
        add_whole_file(single.string());
        hide_fp8_scales();
        return;
    }
    const json index = parse_json_file(index_path.string(), "safetensors index");
    if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object()) {
        throw Error(str("safetensors index ", index_path.string(), ": missing object 'weight_map'"));
    }
    std::map<std::string, std::string> weight_map;  // tensor -> shard file name
    std::set<std::string> shard_names;
    for (const auto& [tensor, shard] : index["weight_map"].items()) {
        if (!shard.is_string()) {
            throw Error(
                str("safetensors index ", index_path.string(), ": weight_map entry '", tensor, "' is not a file name"));
        }
        const std::string s = shard.get<std::string>();
        // Shards live next to the index; a path would let the index point anywhere.
        if (s.empty() || s.find('/') != std::string::npos || s == "." || s == "..") {
            throw Error(str("safetensors index ", index_path.string(), ": shard name '", s, "' for tensor '", tensor,
                            "' is not a plain file name"));
        }
        weight_map[tensor] = s;
        shard_names.insert(s);
    }
    size_t found = 0;
    for (const std::string& shard : shard_names) {
        files_.push_back(std::make_unique<SafetensorsFile>((dir / shard).string()));
        const SafetensorsFile* f = files_.back().get();
        for (const SafetensorsTensor& t : f->tensors()) {
            auto it = weight_map.find(t.info.name);
            if (it == weight_map.end() || it->second != shard) continue;  // not listed: HF ignores it too
            infos_.push_back(t.info);
            index_[t.info.name] = {f, &t};
            found++;
        }
    }
    if (found != weight_map.size()) {
        for (const auto& [tensor, shard] : weight_map) {
            if (!index_.count(tensor)) {
                throw Error(str("safetensors index ", index_path.string(), " maps tensor '", tensor, "' to ", shard,
                                ", which has no such tensor"));
            }
        }
    }
    hide_fp8_scales();
}

// An FP8 weight's `_scale_inv` block scales are part of its values (read_f32 applies them), not a
// tensor of their own: they leave the list, so converters and planners do not count them twice.
void SafetensorsSource::hide_fp8_scales() {
    std::erase_if(infos_, [&](const TensorInfo& t) {
        const std::string suffix = "_scale_inv";
        if (t.name.size() <= suffix.size() || t.name.compare(t.name.size() - suffix.size(), suffix.size(), suffix))
            return false;
        auto w = index_.find(t.name.substr(0, t.name.size() - suffix.size()));
        return w != index_.end() && w->second.second->fp8_e4m3;
    });
}

void SafetensorsSource::add_whole_file(const std::string& path) {
    files_.push_back(std::make_unique<SafetensorsFile>(path));
    const SafetensorsFile* f = files_.back().get();
    for (const SafetensorsTensor& t : f->tensors()) {
        infos_.push_back(t.info);
        index_[t.info.name] = {f, &t};
    }
}

std::vector<float> SafetensorsSource::read_f32(const std::string& name) const {
    auto it = index_.find(name);
    if (it == index_.end()) throw Error(str("no tensor '", name, "' in the safetensors weights of ", where_));
    std::vector<float> v = it->second.first->read_f32(*it->second.second);
    if (!it->second.second->fp8_e4m3) return v;
    // Block-scaled FP8 (DeepSeek-V3's inference/convert and HF's FP8 loader): a [rows, cols] weight
    // comes with `<name>_scale_inv` [ceil(rows / 128), ceil(cols / 128)] f32, W = fp8 * scale_inv.
    const std::vector<int64_t>& shape = it->second.second->info.shape;
    const std::string scale_name = name + "_scale_inv";
    auto sc = index_.find(scale_name);
    if (shape.size() != 2 || sc == index_.end())
        throw Error(str("tensor '", name, "' in ", where_, " is F8_E4M3 ", shape_str(shape),
                        " without a block-scale tensor '", scale_name,
                        "' (gridlm reads 2-D FP8 weights with 128 x 128 block scales)"));
    const int64_t rows = shape[0], cols = shape[1], br = (rows + 127) / 128, bc = (cols + 127) / 128;
    if (sc->second.second->info.shape != std::vector<int64_t>{br, bc} || sc->second.second->fp8_e4m3)
        throw Error(str("tensor '", scale_name, "' in ", where_, " has shape ",
                        shape_str(sc->second.second->info.shape), "; the 128 x 128 block scales of ", name, " ",
                        shape_str(shape), " need [", br, ", ", bc, "] of F32 / BF16"));
    const std::vector<float> scale = sc->second.first->read_f32(*sc->second.second);
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) v[r * cols + c] *= scale[(r / 128) * bc + c / 128];
    return v;
}

const SafetensorsTensor& SafetensorsSource::entry(const std::string& name) const {
    auto it = index_.find(name);
    if (it == index_.end()) throw Error(str("no tensor '", name, "' in the safetensors weights of ", where_));
    return *it->second.second;
}

DType SafetensorsSource::stored_type(const std::string& name) const { return entry(name).dtype; }

std::vector<uint8_t> SafetensorsSource::read_rows_raw(const std::string& name, int64_t row0, int64_t n_rows) const {
    const SafetensorsTensor& t = entry(name);
    const std::vector<int64_t>& shape = t.info.shape;
    if (shape.empty() || shape.size() > 2) {
        throw Error(str("tensor '", name, "' in ", where_, " has shape ", shape_str(shape),
                        "; raw row reads need 1 or 2 dimensions"));
    }
    if (row0 < 0 || n_rows < 0 || row0 > shape[0] - n_rows) {
        throw Error(str("tensor '", name, "' in ", where_, ": rows [", row0, ", ", row0 + n_rows,
                        ") are outside its shape ", shape_str(shape)));
    }
    const int64_t bytes = row_bytes(t.dtype, shape.size() == 2 ? shape[1] : 1);
    if (t.fp8_e4m3) {  // handed out as its dequantised f32 values
        const std::vector<float> all = read_f32(name);
        const uint8_t* p = reinterpret_cast<const uint8_t*>(all.data()) + row0 * bytes;
        return std::vector<uint8_t>(p, p + n_rows * bytes);
    }
    const uint8_t* src = index_.at(name).first->data(t) + row0 * bytes;
    return std::vector<uint8_t>(src, src + n_rows * bytes);
}

std::vector<std::string> SafetensorsSource::files() const {
    std::vector<std::string> out;
    for (const auto& f : files_) out.push_back(f->path());
    return out;
}

}  // namespace gridlm
