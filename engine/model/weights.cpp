// Loads decoder weights from a TensorSource into backend memory, checking names and shapes.
#include "engine/model/weights.h"

#include "engine/core/error.h"

namespace gridlm {

namespace {

std::string fmt(const std::vector<int64_t>& s) {
    std::string r = "[";
    for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
    return r + "]";
}

}  // namespace

WeightLoader::WeightLoader(Backend& be, const TensorSource& src, DType dtype, ModelWeights& out)
    : be_(be), src_(src), dtype_(dtype), out_(out) {
    for (const TensorInfo& t : src.tensors()) infos_[t.name] = &t;
}

// Rows [part.begin, part.end()) (or columns, cols) of a tensor whose full shape is `shape`, as
// f32, after checking the shape.
std::vector<float> WeightLoader::read(const std::string& name, std::vector<int64_t> shape, Range part,
                                      bool cols) const {
    auto it = infos_.find(name);
    if (it == infos_.end()) throw Error(str("checkpoint has no tensor '", name, "'"));
    if (it->second->shape != shape)
        throw Error(str("tensor '", name, "' has shape ", fmt(it->second->shape), ", expected ", fmt(shape)));
    const bool whole = part.begin == 0 && part.size == (cols ? shape[1] : shape[0]);
    std::vector<float> v = whole  ? src_.read_f32(name)
                           : cols ? src_.read_cols_f32(name, part.begin, part.size)
                                  : src_.read_rows_f32(name, part.begin, part.size);
    const int64_t want = it->second->numel() / (cols ? shape[1] : shape[0]) * part.size;
    if ((int64_t)v.size() != want) throw Error(str("tensor '", name, "': read ", v.size(), " values, expected ", want));
    return v;
}

const float* WeightLoader::vec(const std::string& name, int64_t n, Range part) {
    const std::vector<float> v = read(name, {n}, part, false);
    return static_cast<const float*>(upload(v.data(), v.size() * sizeof(float)));
}

Weight WeightLoader::mat_rows(const std::string& name, int64_t rows, int64_t cols, Range part) {
    return to_weight(read(name, {rows, cols}, part, false), part.size, cols);
}

Weight WeightLoader::mat_cols(const std::string& name, int64_t rows, int64_t cols, Range part) {
    return to_weight(read(name, {rows, cols}, part, true), rows, part.size);
}

Weight WeightLoader::to_weight(const std::vector<float>& v, int64_t rows, int64_t cols) {
    Weight w;
    w.dtype = dtype_;
    w.rows = rows;
    w.cols = cols;
    switch (dtype_) {
        case DType::dtype_f32:
            w.data = upload(v.data(), v.size() * sizeof(float));
            break;
        case DType::dtype_bf16:
        case DType::dtype_f16: {
            std::vector<uint16_t> h(v.size());
            for (size_t i = 0; i < v.size(); ++i)
                h[i] = dtype_ == DType::dtype_bf16 ? f32_to_bf16(v[i]) : f32_to_f16(v[i]);
            w.data = upload(h.data(), h.size() * sizeof(uint16_t));
            break;
        }
        default:  // block-quantised types are kept as stored, not converted from f32
            throw Error(str("weights cannot be converted to ", dtype_name(dtype_), " on load (use f32 or bf16)"));
    }
    return w;
}

const void* WeightLoader::upload(const void* src, size_t bytes) {
    BackendBuffer buf(be_, bytes);
    be_.copy_from_host(buf.data(), src, bytes);
    out_.bytes += (int64_t)bytes;
    out_.storage.push_back(std::move(buf));
    return out_.storage.back().data();
}

ModelWeights load_weights(Backend& backend, const ModelConfig& c, const TensorSource& source, DType dtype,
                          const ModelShard& shard, LayerLoader load_layer) {
    ModelWeights w;
    WeightLoader ld(backend, source, dtype, w);
    const int64_t d = c.n_embd;
    const TpShard& tp = shard.tp;

    if (shard.embedding) w.embed = ld.mat_rows("model.embed_tokens.weight", c.n_vocab, d, tp.vocab);
    for (int64_t il = shard.layers.begin; il < shard.layers.end(); ++il)
        w.layers.push_back(load_layer(ld, c, shard, il));
    if (shard.head) {
        w.final_norm = ld.vec("model.norm.weight", d);
        // Tied models share the embedding table; some checkpoints of tied models still carry a copy.
        const bool tied = c.tied_embeddings || !ld.has("lm_head.weight");
        if (tied && shard.embedding) {
            w.lm_head = w.embed;
        } else {
            w.lm_head = ld.mat_rows(tied ? "model.embed_tokens.weight" : "lm_head.weight", c.n_vocab, d, tp.vocab);
        }
    }
    return w;
}

}  // namespace gridlm
