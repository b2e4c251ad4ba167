// Model: weight loading, per-step bookkeeping (positions, KV views, workspace) and the shared
// head (embedding in, final norm and LM head out) around the architecture's layer loop.
#include "engine/model/model.h"

#include <cmath>
#include <unordered_set>

#include "engine/core/error.h"
#include "engine/model/decoder.h"

namespace gridlm {

namespace {

void check_config(const ModelConfig& c) {
    if (c.arch != "llama" && c.arch != "qwen2")
        throw Error(str("unsupported model architecture '", c.arch, "' (supported: llama, qwen2)"));
    if (c.n_embd <= 0 || c.n_layer <= 0 || c.n_head <= 0 || c.n_head_kv <= 0 || c.head_dim <= 0 || c.n_ff <= 0 ||
        c.n_vocab <= 0)
        throw Error(str("model config has a non-positive dimension (n_embd ", c.n_embd, ", n_layer ", c.n_layer,
                        ", n_head ", c.n_head, ", n_head_kv ", c.n_head_kv, ", head_dim ", c.head_dim, ", n_ff ",
                        c.n_ff, ", n_vocab ", c.n_vocab, ")"));
    if (c.n_head % c.n_head_kv != 0 || c.head_dim % 2 != 0)
        throw Error(str("model config: n_head ", c.n_head, " must be a multiple of n_head_kv ", c.n_head_kv,
                        " and head_dim ", c.head_dim, " even"));
}

}  // namespace

Model::Model(const ModelConfig& config, const TensorSource& source, DType weight_dtype, int n_threads)
    : Model(config, source, weight_dtype, std::shared_ptr<Backend>(make_cpu_backend(n_threads))) {}

Model::Model(const ModelConfig& config, const TensorSource& source, DType weight_dtype,
             std::shared_ptr<Backend> backend)
    : config_(config), weight_dtype_(weight_dtype), backend_(std::move(backend)) {
    check_config(config_);
    if (weight_dtype != DType::dtype_f32 && weight_dtype != DType::dtype_bf16)
        throw Error(str("weight dtype ", dtype_name(weight_dtype), " is not supported (use f32 or bf16)"));
    layers_ = config_.arch == "qwen2" ? &qwen2_layers : &llama_layers;
    weights_ = load_weights(*backend_, config_, source, weight_dtype);
}

Model::~Model() = default;

std::unique_ptr<KvCache> Model::make_kv_cache(int n_slots, int64_t max_length) const {
    return std::make_unique<BlockKvCache>(*backend_, config_, n_slots, max_length);
}

void Model::ensure_workspace(int64_t n, int64_t n_out) {
    if (n <= ws_tokens_ && n_out <= ws_out_) return;
    ws_tokens_ = std::max(n, ws_tokens_);
    ws_out_ = std::max(n_out, ws_out_);
    const ModelConfig& c = config_;
    const int64_t per_token =
        3 * c.n_embd + (c.n_head + 2 * c.n_head_kv) * c.head_dim + c.n_head * c.head_dim + 2 * c.n_ff + c.head_dim;
    // Rows for the logits stage: normed hidden states of the rows that get logits.
    workspace_ = BackendBuffer(*backend_, sizeof(float) * (ws_tokens_ * per_token + ws_out_ * c.n_embd +
                                                           (backend_->host_memory() ? 0 : ws_out_ * c.n_vocab)));
}

void Model::forward(const ForwardBatch& batch, KvCache& kv, float* logits_out) {
    const ModelConfig& c = config_;
    Backend& be = *backend_;
    const int64_t n = batch.n_tokens(), n_seqs = (int64_t)batch.seqs.size();
    if (n == 0) return;
    const int64_t n_out = batch.n_logit_rows();

    StepContext ctx{be, c, weights_, kv, {}, {}, {}, n};
    ctx.shape = {c.n_head, c.n_head_kv, c.head_dim, (float)(1.0 / std::sqrt((double)c.head_dim))};

    // Positions and cache room per sequence; every new token sits at its sequence's length.
    std::vector<int32_t> pos(n);
    std::unordered_set<int> seen;
    int64_t off = 0;
    for (const ForwardSeq& s : batch.seqs) {
        if (s.slot < 0 || s.slot >= kv.n_slots())
            throw Error(str("ForwardBatch names KV slot ", s.slot, "; the cache has ", kv.n_slots()));
        if (!seen.insert(s.slot).second) throw Error(str("ForwardBatch names KV slot ", s.slot, " twice"));
        kv.reserve(s.slot, s.n_tokens);
        AttentionSeq a;
        a.token_offset = off;
        a.n_new = s.n_tokens;
        a.pos0 = kv.length(s.slot);
        for (int64_t t = 0; t < s.n_tokens; ++t) pos[off + t] = (int32_t)(a.pos0 + t);
        ctx.slots.push_back(s.slot);
        ctx.seqs.push_back(a);
        off += s.n_tokens;
    }
    GRIDLM_ASSERT(off == n);

    ensure_workspace(n, n_out);
    float* p = workspace_.f32();
    auto take = [&](int64_t count) {
        float* r = p;
        p += count;
        return r;
    };
    const int64_t hd = c.head_dim;
    ctx.x = take(n * c.n_embd);
    ctx.xn = take(n * c.n_embd);
    ctx.tmp = take(n * c.n_embd);
    ctx.q = take(n * c.n_head * hd);
    ctx.k = take(n * c.n_head_kv * hd);
    ctx.v = take(n * c.n_head_kv * hd);
    ctx.attn = take(n * c.n_head * hd);
    ctx.gate = take(n * c.n_ff);
    ctx.up = take(n * c.n_ff);
    ctx.cs = take(n * hd);
    float* out_rows = take(n_out * c.n_embd);

    be.embedding(weights_.embed, batch.tokens.data(), n, ctx.x);  // [n, n_embd]
    be.rope_table(pos.data(), n, hd, c.rope_theta, ctx.cs);       // [n, head_dim]
    layers_(ctx);

    // Final norm and LM head on the rows that get logits only.
    if (batch.all_logits) {
        be.rmsnorm(ctx.x, weights_.final_norm, n, c.n_embd, (float)c.rms_eps, out_rows);
    } else {
        for (int64_t s = 0; s < n_seqs; ++s) {
            const int64_t last = ctx.seqs[s].token_offset + ctx.seqs[s].n_new - 1;
            be.copy(out_rows + s * c.n_embd, ctx.x + last * c.n_embd, sizeof(float) * c.n_embd);
        }
        be.rmsnorm(out_rows, weights_.final_norm, n_out, c.n_embd, (float)c.rms_eps, out_rows);
    }
    if (be.host_memory()) {
        be.matmul(out_rows, weights_.lm_head, nullptr, n_out, logits_out);  // [n_out, n_vocab]
    } else {
        float* dev_logits = take(n_out * c.n_vocab);
        be.matmul(out_rows, weights_.lm_head, nullptr, n_out, dev_logits);
        be.copy_to_host(logits_out, dev_logits, sizeof(float) * n_out * c.n_vocab);
    }
    for (const ForwardSeq& s : batch.seqs) kv.commit(s.slot, s.n_tokens);
}

}  // namespace gridlm
