// Model: a decoder of any architecture in the registry (arch_registry.h) on a compute backend.
// The job driver builds one per rank, makes a KV cache with a slot per live sequence, and calls
// forward() once per step with any mix of prefill chunks and decode tokens; logits come back in
// host memory.
//
//   Model model(config, source, WeightPolicy::keep_stored(), /*n_threads=*/0);
//   auto kv = model.make_kv_cache(/*n_slots=*/64, /*max_length=*/4096);
//   ForwardBatch b;  b.add(0, prompt0);  b.add(1, prompt1);       // prefill two sequences
//   std::vector<float> logits(b.n_logit_rows() * config.n_vocab);
//   model.forward(b, *kv, logits.data());                          // [2, n_vocab]
//   b.clear();  b.add(0, {next0});  b.add(1, {next1});              // then decode steps
//   ...; kv->clear(0);                                              // sequence 0 finished
//
// In a grid each rank builds its shard (shard.h) with its tensor-parallel communicator and runs
// forward_stage(): activations in from the previous stage (or token ids on the first), activations
// out to the next stage (or logits on the last); forward_stage_in_backend() takes and gives the
// activations in backend memory, for a communicator that moves them between devices. Every rank
// of a TP group calls it with the same batch; the two allreduces per layer and the logits gather
// happen inside.
#pragma once

#include <memory>
#include <vector>

#include "engine/backend/backend.h"
#include "engine/core/dtype.h"
#include "engine/core/model_config.h"
#include "engine/kv/kv_cache.h"
#include "engine/model/forward_batch.h"
#include "engine/model/shard.h"
#include "engine/model/weights.h"
#include "engine/core/tensor_source.h"

namespace gridlm {

class Communicator;
struct ArchSpec;

class Model {
public:
    // Loads the weights named by HF convention from source, keeping or converting the matrices as
    // `weights` says (a plain DType converts every matrix to it: f32, bf16 or f16). n_threads 0:
    // the cores this process may use. Throws gridlm::Error for an unsupported architecture or a
    // missing / misshapen tensor.
    Model(const ModelConfig& config, const TensorSource& source, WeightPolicy weights, int n_threads = 0);
    // The same on a backend the caller made (e.g. a CPU backend shared by several models).
    Model(const ModelConfig& config, const TensorSource& source, WeightPolicy weights,
          std::shared_ptr<Backend> backend);
    // One rank's shard of the model. tp: the tensor-parallel group (size shard.tp.size; may be
    // nullptr when that is 1). Reads only the shard's slices of the checkpoint.
    Model(const ModelConfig& config, const TensorSource& source, WeightPolicy weights, std::shared_ptr<Backend> backend,
          const ModelShard& shard, Communicator* tp);
    ~Model();
    Model(const Model&) = delete;
    Model& operator=(const Model&) = delete;

    const ModelConfig& config() const { return config_; }
    const ModelShard& shard() const { return shard_; }
    // The shard's own dimensions: its layers, heads, KV heads and MLP columns.
    const ModelConfig& local_config() const { return local_; }
    const WeightPolicy& weight_policy() const { return policy_; }
    // Matrix bytes held per weight type (indexed by DType), e.g. to print "q4_k 210 MiB, q6_k 40 MiB".
    const std::vector<int64_t>& weight_bytes_by_type() const { return weights_.bytes_by_type; }
    Backend& backend() const { return *backend_; }
    int64_t weight_bytes() const { return weights_.bytes; }
    // Weight bytes one decode step reads: every matrix, the LM head included, but of the embedding
    // table (when it is not also the LM head) only a row per token.
    int64_t streamed_weight_bytes() const;

    // A KV cache on this model's backend for the shard's layers and KV heads, laid out as the
    // architecture says: n_slots sequences of up to max_length tokens each, holding kv_dtype
    // values (f32, bf16 or f16; bf16 / f16 halve its bytes). Throws gridlm::Error for another type.
    std::unique_ptr<KvCache> make_kv_cache(int n_slots, int64_t max_length, DType kv_dtype = DType::dtype_f32) const;

    // One step: appends each sequence's new tokens at its current length in kv (slots must be
    // distinct within a batch) and writes logits to logits_out (host memory):
    // [batch.n_logit_rows(), n_vocab]. Commits the new tokens to kv.
    // The whole model only (one stage, tp = 1 or all ranks of the TP group calling together).
    void forward(const ForwardBatch& batch, KvCache& kv, float* logits_out);

    // This rank's stage of one step. x_in: [n_tokens, n_embd] host activations from the previous
    // stage (ignored on the first stage, which embeds batch.tokens). out: logits
    // [batch.n_logit_rows(), n_vocab] on the last stage, else [n_tokens, n_embd] activations for
    // the next stage. Commits the new tokens to kv.
    void forward_stage(const ForwardBatch& batch, KvCache& kv, const float* x_in, float* out);
    // The same with the stage-boundary activations in this model's backend memory (backend().alloc,
    // e.g. a BackendBuffer; host memory on the CPU backend): x_in [n_tokens, n_embd] is read and,
    // on a stage other than the last, out [n_tokens, n_embd] written with Backend::copy, so a
    // device-memory communicator can send and receive them without host staging. On the last
    // stage out is still [batch.n_logit_rows(), n_vocab] logits in host memory. The copies are
    // ordered on the backend like its ops: out is complete for the backend's later work (a
    // stream-ordered send), and for the host once Backend::copy_to_host has read it.
    void forward_stage_in_backend(const ForwardBatch& batch, KvCache& kv, const float* x_in, float* out);

    // Bytes this rank has put into tensor-parallel collectives (allreduce + logits gather) so far.
    int64_t tp_bytes() const { return tp_bytes_; }

private:
    void ensure_workspace(int64_t n_tokens, int64_t n_out);
    // forward_stage with x_in and a non-last stage's out in host memory (false) or backend memory (true).
    void run_stage(const ForwardBatch& batch, KvCache& kv, const float* x_in, float* out, bool act_in_backend);

    ModelConfig config_;
    ModelShard shard_;
    ModelConfig local_;
    Communicator* tp_ = nullptr;
    int64_t tp_bytes_ = 0;
    std::vector<float> gather_;  // logits gather staging: [tp, rows, vocab_max]
    WeightPolicy policy_;
    std::shared_ptr<Backend> backend_;
    ModelWeights weights_;
    const ArchSpec* arch_ = nullptr;  // the registry row of config_.arch
    BackendBuffer workspace_;         // activations for the largest step so far
    BackendBuffer gather_dev_;        // logits gather in device memory, for device collectives
    int64_t ws_tokens_ = 0, ws_out_ = 0;
};

}  // namespace gridlm
