// Model: weight loading, per-step bookkeeping (positions, KV views, workspace) and the shared
// head (embedding in, final norm and LM head out) around the architecture's layer function.
#include "engine/model/model.h"

#include <algorithm>
#include <unordered_set>

#include "engine/core/communicator.h"
#include "engine/core/error.h"
#include "engine/core/hash.h"
#include "engine/model/arch_registry.h"
#include "engine/model/decoder.h"

namespace gridlm {

Model::Model(const ModelConfig& config, const TensorSource& source, WeightPolicy weights, int n_threads)
    : Model(config, source, weights, std::shared_ptr<Backend>(make_cpu_backend(n_threads))) {}

Model::Model(const ModelConfig& config, const TensorSource& source, WeightPolicy weights,
             std::shared_ptr<Backend> backend)
    : Model(config, source, weights, std::move(backend), ModelShard::whole(config), nullptr) {}

Model::Model(const ModelConfig& config, const TensorSource& source, WeightPolicy weights,
             std::shared_ptr<Backend> backend, const ModelShard& shard, Communicator* tp)
    : config_(config), shard_(shard), local_(config), tp_(tp), policy_(weights), backend_(std::move(backend)) {
    arch_ = &arch_spec(config_.arch);
    arch_->check_config(config_);
    if (arch_->host_memory_only && !backend_->host_memory())
        throw Error(str(config_.arch, " runs on host-memory backends only in this version, not on the ",
                        backend_->name(), " backend (use --backend cpu)"));
    const int tp_size = tp_ ? tp_->size() : 1;
    if (tp_size != shard_.tp.size)
        throw Error(str("model shard is for tp=", shard_.tp.size, " but the TP group has ", tp_size, " ranks"));
    GRIDLM_ASSERT(shard_.layers.begin >= 0 && shard_.layers.size >= 1 && shard_.layers.end() <= config_.n_layer);
    local_.n_layer = shard_.layers.size;
    local_.n_head = shard_.tp.heads.size;
    local_.n_head_kv = shard_.tp.kv_heads.size;
    local_.n_ff = shard_.tp.ff.size;
    local_.n_vocab = shard_.tp.vocab.size;
    weights_ = load_weights(*backend_, config_, source, policy_, shard_, arch_->load_layer);
}

Model::~Model() = default;

int64_t Model::streamed_weight_bytes() const {
    int64_t bytes = 0;
    for (int64_t b : weights_.bytes_by_type) bytes += b;
    const Weight& e = weights_.embed;
    if (e.data && e.data != weights_.lm_head.data) bytes -= e.rows * row_bytes(e.dtype, e.cols);
    return bytes;
}

std::unique_ptr<KvCache> Model::make_kv_cache(int n_slots, int64_t max_length, DType kv_dtype) const {
    KvLayout layout = arch_->kv_layout(local_);
    layout.dtype = kv_dtype;
    return std::make_unique<BlockKvCache>(*backend_, layout, n_slots, max_length);
}

void StepContext::reduce(float* data, int64_t count) {
    if (!tp || tp->size() == 1) return;
    *tp_bytes += (int64_t)sizeof(float) * count;
    if (be.dry_run()) return;  // a replayed graph step: the recorded graph holds the collective
    if (be.host_memory() || tp->device_memory()) {
        tp->allreduce_sum(data, (size_t)count);
    } else {
        std::vector<float> host((size_t)count);
        be.copy_to_host(host.data(), data, sizeof(float) * count);
        tp->allreduce_sum(host.data(), host.size());
        be.copy_from_host(data, host.data(), sizeof(float) * count);
    }
}

void Model::ensure_workspace(int64_t n, int64_t n_out) {
    if (n <= ws_tokens_ && n_out <= ws_out_) return;
    ws_tokens_ = std::max(n, ws_tokens_);
    ws_out_ = std::max(n_out, ws_out_);
    const ModelConfig& c = local_;
    // The residual stream and the layer function's scratch, per token of the step; then rows for
    // the logits stage: normed hidden states of the rows that get logits.
    const int64_t per_token = c.n_embd + arch_->scratch_per_token(c);
    workspace_ = BackendBuffer(*backend_, sizeof(float) * (ws_tokens_ * per_token + ws_out_ * c.n_embd +
                                                           (backend_->host_memory() ? 0 : ws_out_ * c.n_vocab)));
}

void Model::forward(const ForwardBatch& batch, KvCache& kv, float* logits_out) {
    if (!shard_.embedding || !shard_.head)
        throw Error("Model::forward runs a whole model; a pipeline stage uses forward_stage");
    forward_stage(batch, kv, nullptr, logits_out);
}

void Model::forward_stage(const ForwardBatch& batch, KvCache& kv, const float* x_in, float* out) {
    run_stage(batch, kv, x_in, out, false);
}

void Model::forward_stage_in_backend(const ForwardBatch& batch, KvCache& kv, const float* x_in, float* out) {
    run_stage(batch, kv, x_in, out, true);
}

void Model::run_stage(const ForwardBatch& batch, KvCache& kv, const float* x_in, float* out, bool act_in_backend) {
    const ModelConfig& c = local_;
    Backend& be = *backend_;
    const int64_t n = batch.n_tokens(), n_seqs = (int64_t)batch.seqs.size();
    if (n == 0) return;
    const int64_t n_out = batch.n_logit_rows();

    StepContext ctx(be, c, weights_, kv);
    ctx.n = n;
    ctx.tp = tp_;
    ctx.tp_bytes = &tp_bytes_;

    // Positions and cache room per sequence; every new token sits at its sequence's length.
    std::vector<int32_t>& pos = ctx.pos;
    pos.resize(n);
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
    const int64_t d = c.n_embd;
    ctx.x = take(n * d);  // [n, n_embd]
    const int64_t scratch = n * arch_->scratch_per_token(c);
    ctx.scratch = Scratch(take(scratch), scratch);
    float* out_rows = take(n_out * d);  // [n_out, n_embd]

    if (shard_.embedding) {
        for (int32_t id : batch.tokens)
            if (id < 0 || id >= config_.n_vocab)
                throw Error(str("token id ", id, " is outside the vocabulary (", config_.n_vocab, " tokens)"));
        // Vocabulary-parallel: each rank fills the rows of its ids, the sum over the group is the lookup.
        be.embedding(weights_.embed, shard_.tp.vocab.begin, batch.tokens.data(), n, ctx.x);  // [n, n_embd]
        ctx.reduce(ctx.x, n * d);
    } else if (act_in_backend) {
        be.copy(ctx.x, x_in, sizeof(float) * n * d);
    } else {
        be.copy_from_host(ctx.x, x_in, sizeof(float) * n * d);
    }
    // A decode step (one token per sequence) repeats the launches of every decode step of its
    // batch size on these buffers: a backend may record it once and replay it (CUDA graphs).
    // Collectives stay inside only when they run on the device (a host-staged one must read back).
    const bool device_collectives = !tp_ || tp_->size() == 1 || tp_->device_memory();
    uint64_t graph_key = 0;
    if (!be.host_memory() && device_collectives && n == n_seqs)
        graph_key =
            splitmix64(splitmix64((uint64_t)n ^ (uint64_t)(uintptr_t)workspace_.data()) ^ (uint64_t)(uintptr_t)&kv);
    be.begin_step(graph_key);
    arch_->layers(ctx);
    be.end_step();
    for (const ForwardSeq& s : batch.seqs) kv.commit(s.slot, s.n_tokens);

    if (!shard_.head) {
        if (act_in_backend) {
            be.copy(out, ctx.x, sizeof(float) * n * d);
        } else {
            be.copy_to_host(out, ctx.x, sizeof(float) * n * d);
        }
        return;
    }
    // Final norm and LM head on the rows that get logits only.
    if (batch.all_logits) {
        be.rmsnorm(ctx.x, weights_.final_norm, n, d, (float)c.rms_eps, out_rows);
    } else {
        for (int64_t s = 0; s < n_seqs; ++s) {
            const int64_t last = ctx.seqs[s].token_offset + ctx.seqs[s].n_new - 1;
            be.copy(out_rows + s * d, ctx.x + last * d, sizeof(float) * d);
        }
        be.rmsnorm(out_rows, weights_.final_norm, n_out, d, (float)c.rms_eps, out_rows);
    }
    // The logits of this rank's vocabulary run, [n_out, c.n_vocab], into host memory.
    auto head = [&](float* host_out) {
        if (be.host_memory()) {
            be.matmul(out_rows, weights_.lm_head, nullptr, n_out, host_out);
        } else {
            float* dev_logits = take(n_out * c.n_vocab);
            be.matmul(out_rows, weights_.lm_head, nullptr, n_out, dev_logits);
            be.copy_to_host(host_out, dev_logits, sizeof(float) * n_out * c.n_vocab);
        }
    };
    const TpShard& tp = shard_.tp;
    if (tp.size == 1) {
        head(out);  // [n_out, n_vocab]
        return;
    }
    // Vocabulary-parallel head: each rank's [n_out, its vocabulary] logits, padded to the largest
    // share, gathered over the group and laid out as [n_out, n_vocab].
    const int64_t vmax = tp.vocab_max, part = n_out * vmax;
    if (tp_->device_memory() && !be.host_memory()) {
        // Device collectives: pad the rows to vmax in device memory, gather there, read back once.
        const size_t want = sizeof(float) * (size_t)(part * (tp.size + 1) + n_out * c.n_vocab);
        if (gather_dev_.bytes() < want) gather_dev_ = BackendBuffer(be, want);
        float* all = gather_dev_.f32();
        float* mine_dev = all + part * tp.size;
        float* logits_dev = mine_dev + part;
        be.matmul(out_rows, weights_.lm_head, nullptr, n_out, logits_dev);  // [n_out, local vocab]
        for (int64_t r = 0; r < n_out; ++r)
            be.copy(mine_dev + r * vmax, logits_dev + r * c.n_vocab, sizeof(float) * c.n_vocab);
        tp_->allgather(mine_dev, (size_t)part, all);
        tp_bytes_ += (int64_t)sizeof(float) * part;
        gather_.resize((size_t)(part * tp.size));
        be.copy_to_host(gather_.data(), all, sizeof(float) * part * tp.size);
    } else {
        gather_.assign((size_t)(part * (tp.size + 1)), 0.0f);
        float* mine = gather_.data() + part * tp.size;
        std::vector<float> local((size_t)(n_out * c.n_vocab));
        head(local.data());
        for (int64_t r = 0; r < n_out; ++r) std::copy_n(local.data() + r * c.n_vocab, c.n_vocab, mine + r * vmax);
        tp_->allgather(mine, (size_t)part, gather_.data());
        tp_bytes_ += (int64_t)sizeof(float) * part;
    }
    for (int t = 0; t < tp.size; ++t) {
        const Range v = split_range(config_.n_vocab, tp.size, t);
        for (int64_t r = 0; r < n_out; ++r)
            std::copy_n(gather_.data() + t * part + r * vmax, v.size, out + r * config_.n_vocab + v.begin);
    }
}

}  // namespace gridlm
