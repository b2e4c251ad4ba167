// A decoder's weights in backend memory, loaded from any TensorSource (HF names, [out, in]).
// Matrices are kept in their stored type (block-quantised GGUF / HDF5 rows copied as they are) or
// converted to one float type, as a WeightPolicy says; norms and biases are always f32. The
// model-level tensors (embedding, final norm, LM head) are loaded here; each layer by its
// architecture's loader (arch_registry.h) through a WeightLoader.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "engine/backend/backend.h"
#include "engine/core/model_config.h"
#include "engine/model/shard.h"
#include "engine/core/tensor_source.h"

namespace gridlm {

// How the loader stores a matrix. keep: in its stored type when the backend multiplies that type
// (Backend::supports_weight), else converted to `dtype`; otherwise always converted to `dtype`
// (f32, bf16 or f16: values rounded to nearest even).
struct WeightPolicy {
    bool keep = false;
    DType dtype = DType::dtype_f32;

    WeightPolicy() = default;
    WeightPolicy(DType convert_to) : dtype(convert_to) {}  // NOLINT: a plain type converts
    static WeightPolicy keep_stored(DType fallback = DType::dtype_f32) {
        WeightPolicy p(fallback);
        p.keep = true;
        return p;
    }
    // "auto" (keep, f32 fallback), "f32", "bf16" or "f16"; throws gridlm::Error for other names.
    static WeightPolicy from_name(std::string_view name);
    std::string name() const { return keep ? "auto" : std::string(dtype_name(dtype)); }
};

// Grouped-query self-attention, shapes of the rank's shard (hd = head_dim).
struct AttentionWeights {
    Weight q, k, v;                 // [n_head*hd | n_head_kv*hd, n_embd]  self_attn.{q,k,v}_proj
    const float* q_bias = nullptr;  // [n_head*hd] (Qwen2) or nullptr
    const float* k_bias = nullptr;  // [n_head_kv*hd]
    const float* v_bias = nullptr;  // [n_head_kv*hd]
    Weight o;                       // [n_embd, n_head*hd]  self_attn.o_proj
};

// SwiGLU MLP: down(silu(gate(x)) * up(x)).
struct MlpWeights {
    Weight gate, up;  // [n_ff, n_embd]  mlp.{gate,up}_proj
    Weight down;      // [n_embd, n_ff]  mlp.down_proj
};

// Multi-head latent attention (DeepSeek-V2/V3), held for the absorbed form (shared/DEEPSEEK-V3.md):
// kv_b_proj is split per head into W_UK[h] (kept transposed, to map q_nope into the latent space)
// and W_UV[h] (to map the attention output back). nope / rope / kvl / vd: ModelConfig's
// qk_nope_dim, qk_rope_dim, kv_lora_rank, v_head_dim.
struct MlaWeights {
    Weight q_a;                        // [q_lora_rank, n_embd]  self_attn.q_a_proj (q_lora_rank > 0)
    const float* q_a_norm = nullptr;   // [q_lora_rank]          self_attn.q_a_layernorm
    Weight q;                          // [n_head*(nope+rope), q_lora_rank | n_embd]  q_b_proj | q_proj
    Weight kv_a;                       // [kvl + rope, n_embd]   self_attn.kv_a_proj_with_mqa
    const float* kv_a_norm = nullptr;  // [kvl]                  self_attn.kv_a_layernorm
    std::vector<Weight> uk_t;          // [n_head] of [kvl, nope]: W_UK[h]^T, from kv_b_proj
    std::vector<Weight> uv;            // [n_head] of [vd, kvl]: W_UV[h], rows of kv_b_proj
    Weight o;                          // [n_embd, n_head*vd]    self_attn.o_proj
};

// Mixture of experts (DeepSeek-V2/V3): a router over n_expert SwiGLU experts, n_expert_used of them
// per token, plus shared experts every token runs.
struct MoeWeights {
    Weight router;                      // [n_expert, n_embd] f32  mlp.gate
    const float* score_bias = nullptr;  // [n_expert]  mlp.gate.e_score_correction_bias (selection only)
    int64_t first_expert = 0;           // id of experts[0] (expert parallelism: a run of ids per rank)
    std::vector<MlpWeights> experts;    // this rank's experts  mlp.experts.{e}.{gate,up,down}_proj
    MlpWeights shared;                  // the rank's columns of mlp.shared_experts (gate rows 0: none)
};

// One pre-norm decoder layer. Dense architectures use attn and mlp; DeepSeek layers use mla, and
// moe instead of mlp when moe_layer.
struct LayerWeights {
    const float* attn_norm = nullptr;  // [n_embd]  input_layernorm
    AttentionWeights attn;
    MlaWeights mla;
    const float* mlp_norm = nullptr;  // [n_embd]  post_attention_layernorm
    MlpWeights mlp;
    bool moe_layer = false;
    MoeWeights moe;
};

// Shapes are those of the rank's shard (shard.h): q/k/v/gate/up keep their heads' / columns'
// rows, o/down the matching columns, embed/lm_head their vocabulary rows.
struct ModelWeights {
    Weight embed;                       // [n_vocab, n_embd]  model.embed_tokens (first stage only)
    std::vector<LayerWeights> layers;   // [the shard's layers]
    const float* final_norm = nullptr;  // [n_embd]           model.norm (last stage only)
    Weight lm_head;                     // [n_vocab, n_embd]  lm_head (== embed when tied; last stage)
    std::vector<BackendBuffer> storage;
    int64_t bytes = 0;                                                          // weight bytes held in backend memory
    std::vector<int64_t> bytes_by_type = std::vector<int64_t>(dtype_count, 0);  // matrix bytes per DType
};

// Reads tensors (or the shard's slices of them) from a TensorSource after checking their full
// shapes, converts them and uploads them into backend memory owned by a ModelWeights. Throws
// gridlm::Error naming the tensor when one is missing or has an unexpected shape.
class WeightLoader {
public:
    WeightLoader(Backend& be, const TensorSource& src, WeightPolicy policy, ModelWeights& out);

    bool has(const std::string& name) const { return infos_.count(name) != 0; }

    // A vector of n values, or its slice `part`, as f32.  [n] or [part.size]
    const float* vec(const std::string& name, int64_t n, Range part);
    const float* vec(const std::string& name, int64_t n) { return vec(name, n, {0, n}); }

    // Rows `part` of a [rows, cols] matrix (column-parallel), or its columns `part`
    // (row-parallel), in the type the policy gives. A kept block type's column cut must fall on
    // block boundaries (shard.h's TpSplitTypes makes sure); throws gridlm::Error otherwise.
    Weight mat_rows(const std::string& name, int64_t rows, int64_t cols, Range part);
    Weight mat_cols(const std::string& name, int64_t rows, int64_t cols, Range part);
    // A whole [rows, cols] matrix as f32 whatever the policy (routers, whose logits pick experts).
    Weight mat_f32(const std::string& name, int64_t rows, int64_t cols);
    // A whole tensor of the given shape, as f32 host values (for weights derived at load).
    std::vector<float> read_f32(const std::string& name, const std::vector<int64_t>& shape) const;
    // Uploads values computed at load as a [rows, cols] matrix in the policy's float type.
    // v: [rows * cols]
    Weight upload_matrix(const std::vector<float>& v, int64_t rows, int64_t cols) { return to_weight(v, rows, cols); }

private:
    const TensorInfo& check(const std::string& name, const std::vector<int64_t>& shape) const;
    std::vector<float> read(const std::string& name, std::vector<int64_t> shape, Range part, bool cols) const;
    Weight to_weight(const std::vector<float>& v, int64_t rows, int64_t cols);
    // The stored type when the policy keeps this tensor as stored, else nullopt.
    std::optional<DType> kept_type(const std::string& name) const;
    Weight raw_weight(const std::string& name, DType type, int64_t rows, int64_t cols, Range part, bool by_cols);
    const void* upload(const void* src, size_t bytes);

    Backend& be_;
    const TensorSource& src_;
    WeightPolicy policy_;
    ModelWeights& out_;
    std::unordered_map<std::string, const TensorInfo*> infos_;
};

// Loads one layer (il: its index in the whole model) of the shard.
using LayerLoader = LayerWeights (*)(WeightLoader& ld, const ModelConfig& config, const ModelShard& shard, int64_t il);

// Loads the shard's weights, reading only its slices: the embedding on the first stage, each of
// its layers with load_layer, the final norm and LM head on the last stage.
ModelWeights load_weights(Backend& backend, const ModelConfig& config, const TensorSource& source,
                          const WeightPolicy& policy, const ModelShard& shard, LayerLoader load_layer);

}  // namespace gridlm
