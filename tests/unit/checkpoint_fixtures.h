// Shared fixtures of the checkpoint tests: an in-memory TensorSource and a tiny model config,
// tokenizer and weights with awkward values, plus error-message helpers.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "engine/core/error.h"
#include "io/h5_checkpoint.h"

namespace gridlm::test {

class MemorySource : public TensorSource {
public:
    void add(const std::string& name, std::vector<int64_t> shape, std::vector<float> data, std::string type = "F32") {
        TensorInfo t{name, std::move(shape), std::move(type), data.size() * 4};
        infos_.push_back(t);
        data_[name] = std::move(data);
    }
    const std::vector<TensorInfo>& tensors() const override { return infos_; }
    std::vector<float> read_f32(const std::string& name) const override {
        if (fail_at >= 0 && reads_++ == fail_at) throw Error("simulated read failure");
        return data_.at(name);
    }
    const std::vector<float>& data(const std::string& name) const { return data_.at(name); }
    int fail_at = -1;

private:
    std::vector<TensorInfo> infos_;
    std::map<std::string, std::vector<float>> data_;
    mutable int reads_ = 0;
};

inline ModelConfig tiny_config() {
    ModelConfig c;
    c.arch = "qwen2";
    c.name = "tiny test model";
    c.n_vocab = 40;
    c.n_embd = 8;
    c.n_layer = 2;
    c.n_head = 2;
    c.n_head_kv = 1;
    c.head_dim = 4;
    c.n_ff = 12;
    c.n_ctx_train = 128;
    c.rope_theta = 1e6;
    c.rms_eps = 1e-6;
    c.attn_bias = true;
    return c;
}

// Tokens with bytes that trip naive string handling: multi-byte UTF-8, invalid UTF-8, spaces,
// control characters, a long token.
inline TokenizerData tiny_tokenizer() {
    TokenizerData t;
    t.pre = "qwen2";
    t.tokens = {"Ġhello",       "é",         "\xff\xfe", "a b", "\n", "\x01\x7f", "🙂", std::string(300, 'x'),
                "<|im_start|>", "<|im_end|>"};
    for (int i = (int)t.tokens.size(); i < 36; ++i) t.tokens.push_back(str("tok", i));
    t.token_types.assign(t.tokens.size(), (int32_t)TokenType::token_type_normal);
    t.token_types[8] = t.token_types[9] = (int32_t)TokenType::token_type_control;
    t.merges = {"Ġ h", "h e", "\xff \xfe", "é é"};
    t.bos_id = 8;
    t.eos_id = 9;
    t.pad_id = -1;
    t.add_bos = true;
    t.chat_template = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}";
    t.chat_template += std::string(100000, ' ');  // larger than HDF5's 64 KiB compact attribute limit
    return t;
}

// Every tensor the config needs plus an extra [300, 1100] tensor that spans several chunks.
inline MemorySource tiny_weights(const ModelConfig& c, float scale = 1.0f) {
    MemorySource src;
    std::mt19937 rng(1234);
    std::normal_distribution<float> dist(0.0f, scale);
    for (const TensorInfo& t : expected_tensors(c)) {
        std::vector<float> v(t.numel());
        for (float& x : v) x = dist(rng);
        src.add(t.name, t.shape, std::move(v), "Q4_K");
    }
    std::vector<float> big(300 * 1100);
    for (size_t i = 0; i < big.size(); ++i) big[i] = (float)(i % 5000) * 0.25f - 600.0f;  // in f16 range
    src.add("extra.big", {300, 1100}, std::move(big));
    return src;
}

inline void expect_config_eq(const ModelConfig& a, const ModelConfig& b) {
    EXPECT_EQ(a.arch, b.arch);
    EXPECT_EQ(a.name, b.name);
    EXPECT_EQ(a.n_vocab, b.n_vocab);
    EXPECT_EQ(a.n_embd, b.n_embd);
    EXPECT_EQ(a.n_layer, b.n_layer);
    EXPECT_EQ(a.n_head, b.n_head);
    EXPECT_EQ(a.n_head_kv, b.n_head_kv);
    EXPECT_EQ(a.head_dim, b.head_dim);
    EXPECT_EQ(a.n_ff, b.n_ff);
    EXPECT_EQ(a.n_ctx_train, b.n_ctx_train);
    EXPECT_EQ(a.rope_theta, b.rope_theta);
    EXPECT_EQ(a.rms_eps, b.rms_eps);
    EXPECT_EQ(a.tied_embeddings, b.tied_embeddings);
    EXPECT_EQ(a.attn_bias, b.attn_bias);
    EXPECT_EQ(a.yarn_factor, b.yarn_factor);
    EXPECT_EQ(a.yarn_orig_ctx, b.yarn_orig_ctx);
    EXPECT_EQ(a.yarn_beta_fast, b.yarn_beta_fast);
    EXPECT_EQ(a.yarn_beta_slow, b.yarn_beta_slow);
    EXPECT_EQ(a.yarn_mscale, b.yarn_mscale);
    EXPECT_EQ(a.yarn_mscale_all_dim, b.yarn_mscale_all_dim);
    EXPECT_EQ(a.q_lora_rank, b.q_lora_rank);
    EXPECT_EQ(a.kv_lora_rank, b.kv_lora_rank);
    EXPECT_EQ(a.qk_nope_dim, b.qk_nope_dim);
    EXPECT_EQ(a.qk_rope_dim, b.qk_rope_dim);
    EXPECT_EQ(a.v_head_dim, b.v_head_dim);
    EXPECT_EQ(a.n_expert, b.n_expert);
    EXPECT_EQ(a.n_expert_used, b.n_expert_used);
    EXPECT_EQ(a.n_expert_shared, b.n_expert_shared);
    EXPECT_EQ(a.n_ff_expert, b.n_ff_expert);
    EXPECT_EQ(a.n_dense_lead, b.n_dense_lead);
    EXPECT_EQ(a.n_expert_group, b.n_expert_group);
    EXPECT_EQ(a.n_group_used, b.n_group_used);
    EXPECT_EQ(a.expert_sigmoid, b.expert_sigmoid);
    EXPECT_EQ(a.expert_group_limited, b.expert_group_limited);
    EXPECT_EQ(a.expert_weights_norm, b.expert_weights_norm);
    EXPECT_EQ(a.expert_weights_scale, b.expert_weights_scale);
    EXPECT_EQ(a.expert_score_bias, b.expert_score_bias);
}

inline void expect_tokenizer_eq(const TokenizerData& a, const TokenizerData& b) {
    EXPECT_EQ(a.model, b.model);
    EXPECT_EQ(a.pre, b.pre);
    ASSERT_EQ(a.tokens.size(), b.tokens.size());
    for (size_t i = 0; i < a.tokens.size(); ++i) ASSERT_EQ(a.tokens[i], b.tokens[i]) << "token " << i;
    EXPECT_EQ(a.token_types, b.token_types);
    EXPECT_EQ(a.merges, b.merges);
    EXPECT_EQ(a.bos_id, b.bos_id);
    EXPECT_EQ(a.eos_id, b.eos_id);
    EXPECT_EQ(a.pad_id, b.pad_id);
    EXPECT_EQ(a.add_bos, b.add_bos);
    EXPECT_EQ(a.chat_template, b.chat_template);
}

inline bool bit_equal(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace gridlm::test
