// Loads decoder weights from a TensorSource into backend memory, checking names and shapes.
#include "engine/model/weights.h"

#include <unordered_map>

#include "engine/core/error.h"

namespace gridlm {

namespace {

class Loader {
public:
    Loader(Backend& be, const TensorSource& src, ModelWeights& out) : be_(be), src_(src), out_(out) {
        for (const TensorInfo& t : src.tensors()) infos_[t.name] = &t;
    }

    bool has(const std::string& name) const { return infos_.count(name) != 0; }

    // The tensor as f32, after checking its shape.
    std::vector<float> read(const std::string& name, std::vector<int64_t> shape) const {
        auto it = infos_.find(name);
        if (it == infos_.end()) throw Error(str("checkpoint has no tensor '", name, "'"));
        if (it->second->shape != shape)
            throw Error(str("tensor '", name, "' has shape ", fmt(it->second->shape), ", expected ", fmt(shape)));
        std::vector<float> v = src_.read_f32(name);
        if ((int64_t)v.size() != it->second->numel())
            throw Error(str("tensor '", name, "': read ", v.size(), " values, expected ", it->second->numel()));
        return v;
    }

    const float* vec(const std::string& name, int64_t n) {
        const std::vector<float> v = read(name, {n});
        return static_cast<const float*>(upload(v.data(), v.size() * sizeof(float)));
    }

    Weight mat(const std::string& name, int64_t rows, int64_t cols, DType dtype) {
        const std::vector<float> v = read(name, {rows, cols});
        Weight w;
        w.dtype = dtype;
        w.rows = rows;
        w.cols = cols;
        switch (dtype) {
            case DType::dtype_f32:
                w.data = upload(v.data(), v.size() * sizeof(float));
                break;
            case DType::dtype_bf16:
            case DType::dtype_f16: {
                std::vector<uint16_t> h(v.size());
                for (size_t i = 0; i < v.size(); ++i)
                    h[i] = dtype == DType::dtype_bf16 ? f32_to_bf16(v[i]) : f32_to_f16(v[i]);
                w.data = upload(h.data(), h.size() * sizeof(uint16_t));
                break;
            }
        }
        return w;
    }

private:
    static std::string fmt(const std::vector<int64_t>& s) {
        std::string r = "[";
        for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
        return r + "]";
    }
    const void* upload(const void* src, size_t bytes) {
        BackendBuffer buf(be_, bytes);
        be_.copy_from_host(buf.data(), src, bytes);
        out_.bytes += (int64_t)bytes;
        out_.storage.push_back(std::move(buf));
        return out_.storage.back().data();
    }

    Backend& be_;
    const TensorSource& src_;
    ModelWeights& out_;
    std::unordered_map<std::string, const TensorInfo*> infos_;
};

}  // namespace

ModelWeights load_weights(Backend& backend, const ModelConfig& c, const TensorSource& source, DType dtype) {
    ModelWeights w;
    Loader ld(backend, source, w);
    const int64_t d = c.n_embd, hd = c.head_dim, q_dim = c.n_head * hd, kv_dim = c.n_head_kv * hd;

    w.embed = ld.mat("model.embed_tokens.weight", c.n_vocab, d, dtype);
    for (int64_t il = 0; il < c.n_layer; ++il) {
        const std::string p = str("model.layers.", il, ".");
        LayerWeights L;
        L.attn_norm = ld.vec(p + "input_layernorm.weight", d);
        L.q = ld.mat(p + "self_attn.q_proj.weight", q_dim, d, dtype);
        L.k = ld.mat(p + "self_attn.k_proj.weight", kv_dim, d, dtype);
        L.v = ld.mat(p + "self_attn.v_proj.weight", kv_dim, d, dtype);
        if (c.attn_bias) {
            L.q_bias = ld.vec(p + "self_attn.q_proj.bias", q_dim);
            L.k_bias = ld.vec(p + "self_attn.k_proj.bias", kv_dim);
            L.v_bias = ld.vec(p + "self_attn.v_proj.bias", kv_dim);
        }
        L.o = ld.mat(p + "self_attn.o_proj.weight", d, q_dim, dtype);
        L.mlp_norm = ld.vec(p + "post_attention_layernorm.weight", d);
        L.gate = ld.mat(p + "mlp.gate_proj.weight", c.n_ff, d, dtype);
        L.up = ld.mat(p + "mlp.up_proj.weight", c.n_ff, d, dtype);
        L.down = ld.mat(p + "mlp.down_proj.weight", d, c.n_ff, dtype);
        w.layers.push_back(L);
    }
    w.final_norm = ld.vec("model.norm.weight", d);
    // Tied models share the embedding table; some checkpoints of tied models still carry a copy.
    if (c.tied_embeddings || !ld.has("lm_head.weight")) {
        w.lm_head = w.embed;
    } else {
        w.lm_head = ld.mat("lm_head.weight", c.n_vocab, d, dtype);
    }
    return w;
}

}  // namespace gridlm
