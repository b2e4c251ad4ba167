// A read-only view of a checkpoint's weights in HF naming and orientation, whatever the file
// format behind it (GGUF, safetensors, native HDF5). Converters and model loaders read through it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

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
};

}  // namespace gridlm
