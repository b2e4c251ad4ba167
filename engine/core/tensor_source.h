// A read-only view of a checkpoint's weights in HF naming and orientation, whatever the file
// format behind it (GGUF, safetensors, native HDF5). Converters and model loaders read through it.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "engine/core/dtype.h"
#include "engine/core/error.h"

namespace gridlm {

struct TensorInfo {
    std::string name;            // HF name, e.g. "model.layers.0.self_attn.q_proj.weight"
    std::vector<int64_t> shape;  // HF orientation, outermost first: [out, in] for a linear weight
    std::string source_type;     // type as stored in the source file ("Q4_K", "F16", "BF16", ...)
    uint64_t source_bytes = 0;   // bytes the tensor occupies in the source file

    int64_t numel() const {
        int64_t n = 1;
        for (int64_t d : shape) n *= d;
        return n;
    }
};

class TensorSource {
public:
    virtual ~TensorSource() = default;
    // All tensors, in a stable order (the file's own order).
    virtual const std::vector<TensorInfo>& tensors() const = 0;
    // The whole tensor dequantised / widened to f32, row-major in HF orientation.
    // Throws gridlm::Error naming the file and tensor when the name is unknown or data is bad.
    virtual std::vector<float> read_f32(const std::string& name) const = 0;

    // Rows [row0, row0 + n_rows) of a 1-D or 2-D tensor: [n_rows] or [n_rows, cols]. A tensor-
    // parallel rank reads its slices with these; a format that can read part of a tensor (HDF5
    // hyperslabs) overrides them, the others read the whole tensor and cut.
    virtual std::vector<float> read_rows_f32(const std::string& name, int64_t row0, int64_t n_rows) const {
        std::vector<float> all = read_f32(name);
        const int64_t rows = shape_of(name).at(0), cols = rows ? (int64_t)all.size() / rows : 0;
        if (row0 < 0 || n_rows < 0 || row0 + n_rows > rows)
            throw Error(str("tensor '", name, "': rows ", row0, "+", n_rows, " are outside its ", rows, " rows"));
        return std::vector<float>(all.begin() + row0 * cols, all.begin() + (row0 + n_rows) * cols);
    }
    // Columns [col0, col0 + n_cols) of a 2-D tensor: [rows, n_cols], row-major.
    virtual std::vector<float> read_cols_f32(const std::string& name, int64_t col0, int64_t n_cols) const {
        std::vector<float> all = read_f32(name);
        const std::vector<int64_t> shape = shape_of(name);
        if (shape.size() != 2 || col0 < 0 || n_cols < 0 || col0 + n_cols > shape[1])
            throw Error(str("tensor '", name, "': cannot read columns ", col0, "+", n_cols, " of it"));
        std::vector<float> out((size_t)(shape[0] * n_cols));
        for (int64_t r = 0; r < shape[0]; ++r)
            std::copy_n(all.begin() + r * shape[1] + col0, n_cols, out.begin() + r * n_cols);
        return out;
    }

    // The type the tensor is stored in, which read_rows_raw hands out. Throws gridlm::Error naming
    // the tensor when it is unknown or stored in a type outside engine/core/dtype.h's table.
    // The default suits a source that only produces floats: f32.
    virtual DType stored_type(const std::string& name) const {
        (void)shape_of(name);  // throws for an unknown name
        return DType::dtype_f32;
    }
    // Whole rows [row0, row0 + n_rows) of a 1-D or 2-D tensor in its stored type, HF orientation
    // [out, in]: n_rows rows of row_bytes(stored_type(name), cols) bytes each (a 1-D tensor has rows
    // of one value). A row of a block type is whole blocks, so a rank can keep its rows quantised.
    virtual std::vector<uint8_t> read_rows_raw(const std::string& name, int64_t row0, int64_t n_rows) const {
        const std::vector<float> v = read_rows_f32(name, row0, n_rows);
        std::vector<uint8_t> out(v.size() * sizeof(float));
        if (!v.empty()) std::memcpy(out.data(), v.data(), out.size());
        return out;
    }

private:
    std::vector<int64_t> shape_of(const std::string& name) const {
        for (const TensorInfo& t : tensors())
            if (t.name == name) return t.shape;
        throw Error(str("checkpoint has no tensor '", name, "'"));
    }
};

}  // namespace gridlm
