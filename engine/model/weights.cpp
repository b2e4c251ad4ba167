// Loads decoder weights from a TensorSource into backend memory, checking names and shapes.
#include "engine/model/weights.h"

#include <cstring>

#include "engine/core/error.h"

namespace gridlm {

namespace {

std::string fmt(const std::vector<int64_t>& s) {
    std::string r = "[";
    for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
    return r + "]";
}

}  // namespace

WeightPolicy WeightPolicy::from_name(std::string_view name) {
    if (name == "auto") return keep_stored();
    if (name == "f32" || name == "bf16" || name == "f16") return WeightPolicy(dtype_from_name(name));
    throw Error(str("unknown weight dtype '", name, "' (expected auto, f32, bf16 or f16)"));
}

WeightLoader::WeightLoader(Backend& be, const TensorSource& src, WeightPolicy policy, ModelWeights& out)
    : be_(be), src_(src), policy_(policy), out_(out) {
    if (policy_.dtype != DType::dtype_f32 && policy_.dtype != DType::dtype_bf16 && policy_.dtype != DType::dtype_f16)
        throw Error(str("weights cannot be converted to ", dtype_name(policy_.dtype), " on load (f32, bf16 or f16)"));
    if (!be_.supports_weight(policy_.dtype))
        throw Error(str("the ", be_.name(), " backend does not multiply ", dtype_name(policy_.dtype), " weights"));
    for (const TensorInfo& t : src.tensors()) infos_[t.name] = &t;
}

// The tensor's info after checking that it exists and has the expected full shape.
const TensorInfo& WeightLoader::check(const std::string& name, const std::vector<int64_t>& shape) const {
    auto it = infos_.find(name);
    if (it == infos_.end()) throw Error(str("checkpoint has no tensor '", name, "'"));
    if (it->second->shape != shape)
        throw Error(str("tensor '", name, "' has shape ", fmt(it->second->shape), ", expected ", fmt(shape)));
    return *it->second;
}

// Rows [part.begin, part.end()) (or columns, cols) of a tensor whose full shape is `shape`, as
// f32, after checking the shape.
std::vector<float> WeightLoader::read(const std::string& name, std::vector<int64_t> shape, Range part,
                                      bool cols) const {
    const TensorInfo& info = check(name, shape);
    const bool whole = part.begin == 0 && part.size == (cols ? shape[1] : shape[0]);
    std::vector<float> v = whole  ? src_.read_f32(name)
                           : cols ? src_.read_cols_f32(name, part.begin, part.size)
                                  : src_.read_rows_f32(name, part.begin, part.size);
    const int64_t want = info.numel() / (cols ? shape[1] : shape[0]) * part.size;
    if ((int64_t)v.size() != want) throw Error(str("tensor '", name, "': read ", v.size(), " values, expected ", want));
    return v;
}

const float* WeightLoader::vec(const std::string& name, int64_t n, Range part) {
    const std::vector<float> v = read(name, {n}, part, false);
    return static_cast<const float*>(upload(v.data(), v.size() * sizeof(float)));
}

Weight WeightLoader::mat_rows(const std::string& name, int64_t rows, int64_t cols, Range part) {
    check(name, {rows, cols});
    if (const std::optional<DType> t = kept_type(name)) return raw_weight(name, *t, rows, cols, part, false);
    return to_weight(read(name, {rows, cols}, part, false), part.size, cols);
}

Weight WeightLoader::mat_cols(const std::string& name, int64_t rows, int64_t cols, Range part) {
    check(name, {rows, cols});
    if (const std::optional<DType> t = kept_type(name)) return raw_weight(name, *t, rows, cols, part, true);
    return to_weight(read(name, {rows, cols}, part, true), rows, part.size);
}

Weight WeightLoader::mat_f32(const std::string& name, int64_t rows, int64_t cols) {
    const std::vector<float> v = read(name, {rows, cols}, {0, rows}, false);
    Weight w;
    w.dtype = DType::dtype_f32;
    w.rows = rows;
    w.cols = cols;
    w.data = upload(v.data(), v.size() * sizeof(float));
    out_.bytes_by_type[(size_t)DType::dtype_f32] += rows * cols * (int64_t)sizeof(float);
    return w;
}

std::vector<float> WeightLoader::read_f32(const std::string& name, const std::vector<int64_t>& shape) const {
    GRIDLM_ASSERT(!shape.empty());
    return read(name, shape, {0, shape[0]}, false);
}

std::optional<DType> WeightLoader::kept_type(const std::string& name) const {
    if (!policy_.keep) return std::nullopt;
    const DType t = src_.stored_type(name);
    if (!be_.supports_weight(t)) return std::nullopt;
    // f32 rows come the same way either way; the float path also serves sources that compute values.
    if (t == DType::dtype_f32 && policy_.dtype == DType::dtype_f32) return std::nullopt;
    return t;
}

// The matrix's rows `part` (or, by_cols, every row's columns `part`) copied as stored.
Weight WeightLoader::raw_weight(const std::string& name, DType type, int64_t rows, int64_t cols, Range part,
                                bool by_cols) {
    const int64_t bs = dtype_block_size(type);
    Weight w;
    w.dtype = type;
    w.rows = by_cols ? rows : part.size;
    w.cols = by_cols ? part.size : cols;
    if (by_cols && (part.begin % bs != 0 || part.size % bs != 0))
        throw Error(str("tensor '", name, "' (", dtype_name(type), ", blocks of ", bs,
                        " columns) cannot be cut at columns ", part.begin, "..", part.end(),
                        ": a tensor-parallel cut must fall on a block boundary (another tp, or --dtype f32 / bf16 / "
                        "f16, avoids it)"));
    const int64_t src_row = row_bytes(type, cols);
    std::vector<uint8_t> raw =
        by_cols ? src_.read_rows_raw(name, 0, rows) : src_.read_rows_raw(name, part.begin, part.size);
    if ((int64_t)raw.size() != w.rows * src_row)
        throw Error(str("tensor '", name, "': read ", raw.size(), " bytes of ", dtype_name(type), " rows, expected ",
                        w.rows * src_row));
    if (by_cols && part.size != cols) {  // keep each row's run of whole blocks
        const int64_t off = row_bytes(type, part.begin), len = row_bytes(type, part.size);
        for (int64_t r = 0; r < rows; ++r) std::memmove(raw.data() + r * len, raw.data() + r * src_row + off, len);
        raw.resize((size_t)(rows * len));
    }
    w.data = upload(raw.data(), raw.size());
    out_.bytes_by_type[(size_t)type] += (int64_t)raw.size();
    return w;
}

Weight WeightLoader::to_weight(const std::vector<float>& v, int64_t rows, int64_t cols) {
    Weight w;
    w.dtype = policy_.dtype;
    w.rows = rows;
    w.cols = cols;
    out_.bytes_by_type[(size_t)w.dtype] += rows * row_bytes(w.dtype, cols);
    switch (w.dtype) {
        case DType::dtype_f32:
            w.data = upload(v.data(), v.size() * sizeof(float));
            break;
        case DType::dtype_bf16:
        case DType::dtype_f16: {
            std::vector<uint16_t> h(v.size());
            for (size_t i = 0; i < v.size(); ++i)
                h[i] = w.dtype == DType::dtype_bf16 ? f32_to_bf16(v[i]) : f32_to_f16(v[i]);
            w.data = upload(h.data(), h.size() * sizeof(uint16_t));
            break;
        }
        default:  // block-quantised types are kept as stored, not converted from f32
            throw Error(str("weights cannot be converted to ", dtype_name(w.dtype), " on load (use f32, bf16 or f16)"));
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

ModelWeights load_weights(Backend& backend, const ModelConfig& c, const TensorSource& source,
                          const WeightPolicy& policy, const ModelShard& shard, LayerLoader load_layer) {
    ModelWeights w;
    WeightLoader ld(backend, source, policy, w);
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
