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

    // Rows [rows.begin, rows.end()) (or columns, cols_of_2d) of a tensor whose full shape is
    // `shape`, as f32, after checking the shape.
    std::vector<float> read(const std::string& name, std::vector<int64_t> shape, Range part, bool cols = false) const {
        auto it = infos_.find(name);
        if (it == infos_.end()) throw Error(str("checkpoint has no tensor '", name, "'"));
        if (it->second->shape != shape)
            throw Error(str("tensor '", name, "' has shape ", fmt(it->second->shape), ", expected ", fmt(shape)));
        const bool whole = part.begin == 0 && part.size == (cols ? shape[1] : shape[0]);
        std::vector<float> v = whole  ? src_.read_f32(name)
                               : cols ? src_.read_cols_f32(name, part.begin, part.size)
                                      : src_.read_rows_f32(name, part.begin, part.size);
        const int64_t want = it->second->numel() / (cols ? shape[1] : shape[0]) * part.size;
        if ((int64_t)v.size() != want)
            throw Error(str("tensor '", name, "': read ", v.size(), " values, expected ", want));
        return v;
    }

    // A vector, or its slice `part`.
    const float* vec(const std::string& name, int64_t n, Range part) {
        const std::vector<float> v = read(name, {n}, part);
        return static_cast<const float*>(upload(v.data(), v.size() * sizeof(float)));
    }
    const float* vec(const std::string& name, int64_t n) { return vec(name, n, {0, n}); }

    // Rows `part` of a [rows, cols] matrix (column-parallel), or columns `part` (row-parallel).
    Weight mat_rows(const std::string& name, int64_t rows, int64_t cols, Range part, DType dtype) {
        return to_weight(read(name, {rows, cols}, part), part.size, cols, dtype);
    }
    Weight mat_cols(const std::string& name, int64_t rows, int64_t cols, Range part, DType dtype) {
        return to_weight(read(name, {rows, cols}, part, true), rows, part.size, dtype);
    }

    Weight to_weight(const std::vector<float>& v, int64_t rows, int64_t cols, DType dtype) {
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

ModelWeights load_weights(Backend& backend, const ModelConfig& c, const TensorSource& source, DType dtype,
                          const ModelShard& shard) {
    ModelWeights w;
    Loader ld(backend, source, w);
    const int64_t d = c.n_embd, hd = c.head_dim, q_dim = c.n_head * hd, kv_dim = c.n_head_kv * hd;
    const TpShard& tp = shard.tp;
    const Range q_part{tp.heads.begin * hd, tp.heads.size * hd}, kv_part{tp.kv_heads.begin * hd, tp.kv_heads.size * hd};

    if (shard.embedding) w.embed = ld.mat_rows("model.embed_tokens.weight", c.n_vocab, d, tp.vocab, dtype);
    for (int64_t il = shard.layers.begin; il < shard.layers.end(); ++il) {
        const std::string p = str("model.layers.", il, ".");
        LayerWeights L;
        L.attn_norm = ld.vec(p + "input_layernorm.weight", d);
        L.q = ld.mat_rows(p + "self_attn.q_proj.weight", q_dim, d, q_part, dtype);
        L.k = ld.mat_rows(p + "self_attn.k_proj.weight", kv_dim, d, kv_part, dtype);
        L.v = ld.mat_rows(p + "self_attn.v_proj.weight", kv_dim, d, kv_part, dtype);
        if (c.attn_bias) {
            L.q_bias = ld.vec(p + "self_attn.q_proj.bias", q_dim, q_part);
            L.k_bias = ld.vec(p + "self_attn.k_proj.bias", kv_dim, kv_part);
            L.v_bias = ld.vec(p + "self_attn.v_proj.bias", kv_dim, kv_part);
        }
        L.o = ld.mat_cols(p + "self_attn.o_proj.weight", d, q_dim, q_part, dtype);
        L.mlp_norm = ld.vec(p + "post_attention_layernorm.weight", d);
        L.gate = ld.mat_rows(p + "mlp.gate_proj.weight", c.n_ff, d, tp.ff, dtype);
        L.up = ld.mat_rows(p + "mlp.up_proj.weight", c.n_ff, d, tp.ff, dtype);
        L.down = ld.mat_cols(p + "mlp.down_proj.weight", d, c.n_ff, tp.ff, dtype);
        w.layers.push_back(L);
    }
    if (shard.head) {
        w.final_norm = ld.vec("model.norm.weight", d);
        // Tied models share the embedding table; some checkpoints of tied models still carry a copy.
        const bool tied = c.tied_embeddings || !ld.has("lm_head.weight");
        if (tied && shard.embedding) {
            w.lm_head = w.embed;
        } else {
            w.lm_head =
                ld.mat_rows(tied ? "model.embed_tokens.weight" : "lm_head.weight", c.n_vocab, d, tp.vocab, dtype);
        }
    }
    return w;
}

}  // namespace gridlm
