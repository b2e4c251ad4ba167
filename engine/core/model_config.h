// Architecture hyper-parameters of a decoder (Llama / Qwen2 dense; DeepSeek-V2/V3 MLA + MoE), as
// read from any checkpoint format.
#pragma once

#include <cstdint>
#include <string>

namespace gridlm {

struct ModelConfig {
    std::string arch;     // a name of engine/core/arch.h: "llama" | "qwen2" | "deepseek_v2" | "deepseek_v3"
    std::string name;     // human-readable model name, may be empty
    int64_t n_vocab = 0;  // rows of the embedding / LM head
    int64_t n_embd = 0;   // hidden size
    int64_t n_layer = 0;
    int64_t n_head = 0;
    int64_t n_head_kv = 0;
    int64_t head_dim = 0;     // usually n_embd / n_head
    int64_t n_ff = 0;         // MLP intermediate size
    int64_t n_ctx_train = 0;  // context length the model was trained for
    double rope_theta = 10000.0;
    double rms_eps = 1e-6;
    bool tied_embeddings = false;  // LM head shares model.embed_tokens.weight
    bool attn_bias = false;        // q/k/v projections carry biases (Qwen2)

    // YaRN RoPE scaling (HF rope_scaling / rope_parameters rope_type "yarn"); factor 0: plain RoPE.
    // Frequencies and the attention factor follow HF transformers' _compute_yarn_parameters.
    double yarn_factor = 0.0;
    int64_t yarn_orig_ctx = 0;  // original_max_position_embeddings
    double yarn_beta_fast = 32.0, yarn_beta_slow = 1.0;
    double yarn_mscale = 0.0, yarn_mscale_all_dim = 0.0;  // 0: absent

    // Multi-head latent attention (DeepSeek-V2/V3, shared/DEEPSEEK-V3.md); kv_lora_rank 0: none.
    // head_dim is then qk_nope_dim + qk_rope_dim and n_head_kv == n_head.
    int64_t q_lora_rank = 0;  // 0: a plain q_proj
    int64_t kv_lora_rank = 0;
    int64_t qk_nope_dim = 0, qk_rope_dim = 0, v_head_dim = 0;

    // Mixture of experts (DeepSeek-V2/V3); n_expert 0: every layer dense.
    int64_t n_expert = 0, n_expert_used = 0, n_expert_shared = 0;
    int64_t n_ff_expert = 0;   // moe_intermediate_size (a shared expert block is n_expert_shared times it)
    int64_t n_dense_lead = 0;  // first_k_dense_replace: layers [0, n) are dense
    int64_t n_expert_group = 1, n_group_used = 1;  // group-limited selection (V3 noaux_tc)
    bool expert_sigmoid = false;                   // gate scores: sigmoid (V3) or softmax (V2)
    bool expert_group_limited = false;             // pick top groups first (noaux_tc / group_limited_greedy)
    bool expert_weights_norm = false;              // norm_topk_prob
    double expert_weights_scale = 1.0;             // routed_scaling_factor
    bool expert_score_bias = false;                // e_score_correction_bias (V3: selection only)
};

}  // namespace gridlm
