// Tensor-parallel slices and pipeline stages (engine/model/shard.h): pure functions of the
// config and the grid, checked on the real models' shapes.
#include "engine/model/shard.h"

#include <gtest/gtest.h>

#include <numeric>

#include "test_support.h"
#include "model_configs.h"

using namespace gridlm;

namespace {

ModelConfig smollm2() { return test::smollm2_config(); }
ModelConfig qwen05() { return test::qwen05_config(); }

}  // namespace

TEST(Shard, SplitRangeCoversEverythingOnce) {
    for (int64_t total : {1, 7, 100, 151936}) {
        for (int n = 1; n <= 8 && n <= total; ++n) {
            int64_t next = 0;
            for (int r = 0; r < n; ++r) {
                const Range part = split_range(total, n, r);
                EXPECT_EQ(part.begin, next);
                EXPECT_GE(part.size, total / n);
                EXPECT_LE(part.size, total / n + 1);
                next = part.end();
            }
            EXPECT_EQ(next, total);
        }
    }
}

TEST(Shard, QwenTp7ReplicatesKvHeads) {
    // The worked example of shard.h.
    const TpShard s = tp_shard(qwen05(), 7, 3);
    EXPECT_EQ(s.heads, (Range{6, 2}));
    EXPECT_EQ(s.kv_heads, (Range{0, 2}));
    EXPECT_EQ(s.ff, (Range{2085, 695}));
    EXPECT_EQ(s.vocab, (Range{65116, 21705}));
    EXPECT_EQ(s.vocab_max, 21706);
    EXPECT_EQ(tp_shard(qwen05(), 7, 0).kv_heads, (Range{0, 1}));
    EXPECT_EQ(tp_shard(qwen05(), 7, 6).kv_heads, (Range{1, 1}));
    // tp = 2 splits the two KV heads; tp = 14 gives each query head its own rank.
    EXPECT_EQ(tp_shard(qwen05(), 2, 1).kv_heads, (Range{1, 1}));
    EXPECT_EQ(tp_shard(qwen05(), 14, 13).kv_heads, (Range{1, 1}));
}

TEST(Shard, SmolLm2Tp3SplitsKvHeads) {
    for (int r = 0; r < 3; ++r) {
        const TpShard s = tp_shard(smollm2(), 3, r);
        EXPECT_EQ(s.heads, (Range{3 * r, 3}));
        EXPECT_EQ(s.kv_heads, (Range{r, 1}));
        EXPECT_EQ(s.ff, (Range{512 * r, 512}));
        EXPECT_EQ(s.vocab, (Range{16384 * r, 16384}));
    }
}

TEST(Shard, TpThatDoesNotFitIsAnErrorSayingWhy) {
    test::expect_has(test::error_of([] { check_tensor_parallel(smollm2(), 2); }),
                     {"tp=2", "does not divide", "9 attention heads"});
    test::expect_has(test::error_of([] { check_tensor_parallel(qwen05(), 4); }), {"tp=4", "14 attention heads"});
    // 24 heads over 8 KV heads: tp = 4 splits them (6 query heads over 2 KV heads a rank), but
    // at tp = 3 a rank's 8 query heads would read 3 KV heads unevenly.
    ModelConfig odd = smollm2();
    odd.n_head = 24;
    odd.n_head_kv = 8;
    check_tensor_parallel(odd, 4);
    test::expect_has(test::error_of([&] { check_tensor_parallel(odd, 3); }), {"tp=3", "8 KV heads", "replicates"});
    test::expect_has(test::error_of([] { check_tensor_parallel(smollm2(), 0); }), {"tp must be >= 1"});
}

TEST(Shard, DefaultPipelineSplitBalancesWeightBytes) {
    // SmolLM2: the LM head is as big as 8 layers, so the last stage gets fewer layers.
    EXPECT_EQ(pipeline_layers(smollm2(), 2), (std::vector<int64_t>{19, 11}));
    EXPECT_EQ(pipeline_layers(smollm2(), 1), (std::vector<int64_t>{30}));
    for (int pp : {2, 3, 5, 30}) {
        for (const ModelConfig& c : {smollm2(), qwen05()}) {
            if (pp > c.n_layer) continue;
            const auto layers = pipeline_layers(c, pp);
            ASSERT_EQ((int)layers.size(), pp);
            EXPECT_EQ(std::accumulate(layers.begin(), layers.end(), int64_t{0}), c.n_layer);
            for (int64_t n : layers) EXPECT_GE(n, 1);
        }
    }
    EXPECT_EQ(pipeline_layers(smollm2(), 2, {4, 26}), (std::vector<int64_t>{4, 26}));
}

TEST(Shard, BadPipelineSplitsAreErrors) {
    test::expect_has(test::error_of([] { pipeline_layers(smollm2(), 31); }),
                     {"pp=31", "larger than the model's 30 layers"});
    test::expect_has(test::error_of([] { pipeline_layers(smollm2(), 2, {10, 10}); }), {"adds up to 20", "has 30"});
    test::expect_has(test::error_of([] { pipeline_layers(smollm2(), 2, {30}); }), {"lists 1 stages but pp=2"});
    test::expect_has(test::error_of([] { pipeline_layers(smollm2(), 2, {0, 30}); }), {"at least one layer"});
}

TEST(Shard, ModelShardOfAStage) {
    const ModelShard first = ModelShard::of(smollm2(), {19, 11}, 0, 3, 2);
    EXPECT_EQ(first.layers, (Range{0, 19}));
    EXPECT_TRUE(first.embedding);
    EXPECT_FALSE(first.head);
    EXPECT_EQ(first.tp.heads, (Range{6, 3}));
    const ModelShard last = ModelShard::of(smollm2(), {19, 11}, 1, 3, 0);
    EXPECT_EQ(last.layers, (Range{19, 11}));
    EXPECT_FALSE(last.embedding);
    EXPECT_TRUE(last.head);
    const ModelShard whole = ModelShard::whole(smollm2());
    EXPECT_TRUE(whole.embedding && whole.head);
    EXPECT_EQ(whole.tp.heads, (Range{0, 9}));
}

// DeepSeek-V3 / R1 shapes (shared/DEEPSEEK-V3.md): 128 MLA heads, 256 routed experts, one shared
// expert of 2048 columns, dense layers of 18432. Heads and experts go in near-equal runs, so tp
// need not divide them; the shared expert's columns stay whole 256-column blocks where they can.
TEST(Shard, DeepseekV3SplitsHeadsAndExperts) {
    ModelConfig c;
    c.arch = "deepseek_v3";
    c.n_vocab = 129280;
    c.n_embd = 7168;
    c.n_layer = 61;
    c.n_head = c.n_head_kv = 128;
    c.kv_lora_rank = 512;
    c.qk_nope_dim = 128;
    c.qk_rope_dim = 64;
    c.v_head_dim = 128;
    c.head_dim = 192;
    c.n_ff = 18432;
    c.n_expert = 256;
    c.n_expert_used = 8;
    c.n_expert_shared = 1;
    c.n_ff_expert = 2048;
    for (int tp : {1, 2, 3, 8, 16}) {
        int64_t heads = 0, experts = 0, shared = 0;
        for (int r = 0; r < tp; ++r) {
            const TpShard s = tp_shard(c, tp, r);
            EXPECT_EQ(s.heads.begin, heads) << "tp=" << tp;
            EXPECT_EQ(s.experts.begin, experts) << "tp=" << tp;
            EXPECT_EQ(s.shared_ff.begin, shared) << "tp=" << tp;
            heads = s.heads.end();
            experts = s.experts.end();
            shared = s.shared_ff.end();
            if (tp <= 8) EXPECT_EQ(s.shared_ff.size % 256, 0) << "tp=" << tp << " rank " << r;
        }
        EXPECT_EQ(heads, 128);
        EXPECT_EQ(experts, 256);
        EXPECT_EQ(shared, 2048);
    }
    // Pipeline stages balance bytes: the three cheap dense layers let stage 0 take more layers.
    c.q_lora_rank = 1536;
    c.n_dense_lead = 3;
    const std::vector<int64_t> stages = pipeline_layers(c, 4);
    EXPECT_EQ(std::accumulate(stages.begin(), stages.end(), int64_t{0}), 61);
    EXPECT_EQ(stages[0], 17);
    EXPECT_EQ(stages[1], 15);
    EXPECT_EQ(tp_shard(c, 3, 0).heads, (Range{0, 43}));
    EXPECT_EQ(tp_shard(c, 3, 2).experts, (Range{171, 85}));
    EXPECT_EQ(tp_shard(c, 8, 5).experts, (Range{160, 32}));
    c.n_head = c.n_head_kv = 4;
    c.n_expert = 8;
    test::expect_has(test::error_of([&] { check_tensor_parallel(c, 5); }), {"tp=5", "4 attention heads"});
    c.n_head = c.n_head_kv = 16;
    test::expect_has(test::error_of([&] { check_tensor_parallel(c, 9); }), {"tp=9", "8 routed experts"});
}
