// Copies a GGUF file with edits (metadata keys dropped or set, tensors dropped, replaced or added),
// for tests that need variants of a converter-written file: older layouts, malformed files.
#pragma once

#include <cstdint>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "io/gguf.h"
#include "test_support.h"

namespace gridlm::test {

class GgufRewrite {
public:
    struct Tensor {
        std::string name;
        std::vector<int64_t> dims;  // innermost first, as in the file
        GgmlType type = GgmlType::ggml_type_f32;
        std::string data;
    };

    explicit GgufRewrite(const std::string& path) {
        const GgufFile f(path);
        const std::string bytes = read_file(path);
        alignment_ = f.alignment();
        for (const GgufKv& kv : f.kvs()) {
            std::string v = encode((uint32_t)kv.type);
            if (kv.type == GgufValueType::gguf_value_type_array) v += encode((uint32_t)kv.elem_type) + encode(kv.count);
            v += bytes.substr(kv.value_offset, kv.value_bytes);
            kvs_.push_back({kv.key, v});
        }
        for (const GgufTensor& t : f.tensors())
            tensors_.push_back({t.name, t.dims, t.type, bytes.substr(f.data_offset() + t.offset, t.n_bytes)});
    }

    void drop_key(const std::string& key) {
        std::erase_if(kvs_, [&](const Kv& k) { return k.key == key; });
    }
    void set_u32(const std::string& key, uint32_t v) { set(key, encode(4u) + encode(v)); }
    void set_string(const std::string& key, const std::string& s) { set(key, encode(8u) + encode(s)); }

    Tensor& tensor(const std::string& name) {
        for (Tensor& t : tensors_)
            if (t.name == name) return t;
        throw std::runtime_error("GgufRewrite: no tensor " + name);
    }
    void drop_tensor(const std::string& name) {
        std::erase_if(tensors_, [&](const Tensor& t) { return t.name == name; });
    }
    void add_tensor(Tensor t) { tensors_.push_back(std::move(t)); }

    void write(const std::string& path) const {
        std::string out = "GGUF" + encode(3u) + encode((uint64_t)tensors_.size()) + encode((uint64_t)kvs_.size());
        for (const Kv& kv : kvs_) out += encode(kv.key) + kv.value;
        uint64_t offset = 0;
        std::vector<uint64_t> offsets;
        for (const Tensor& t : tensors_) {
            out += encode(t.name) + encode((uint32_t)t.dims.size());
            for (int64_t d : t.dims) out += encode((uint64_t)d);
            out += encode((uint32_t)t.type) + encode(offset);
            offsets.push_back(offset);
            offset = (offset + t.data.size() + alignment_ - 1) / alignment_ * alignment_;
        }
        out.resize((out.size() + alignment_ - 1) / alignment_ * alignment_, '\0');
        const size_t base = out.size();
        for (size_t i = 0; i < tensors_.size(); ++i) {
            out.resize(base + offsets[i], '\0');
            out += tensors_[i].data;
        }
        std::ofstream(path, std::ios::binary).write(out.data(), (std::streamsize)out.size());
    }

    // f32 values <-> tensor bytes.
    static std::vector<float> floats(const Tensor& t) {
        if (t.type != GgmlType::ggml_type_f32) throw std::runtime_error("GgufRewrite: " + t.name + " is not F32");
        std::vector<float> v(t.data.size() / sizeof(float));
        std::memcpy(v.data(), t.data.data(), t.data.size());
        return v;
    }
    static std::string bytes_of(const std::vector<float>& v) {
        return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
    }

private:
    struct Kv {
        std::string key;
        std::string value;  // value type (u32), then the value as the file encodes it
    };
    template <typename T>
    static std::string encode(T v) {
        return std::string(reinterpret_cast<const char*>(&v), sizeof v);
    }
    static std::string encode(const std::string& s) { return encode((uint64_t)s.size()) + s; }
    void set(const std::string& key, std::string value) {
        for (Kv& k : kvs_)
            if (k.key == key) {
                k.value = std::move(value);
                return;
            }
        kvs_.push_back({key, std::move(value)});
    }

    uint64_t alignment_ = 32;
    std::vector<Kv> kvs_;
    std::vector<Tensor> tensors_;
};

}  // namespace gridlm::test
