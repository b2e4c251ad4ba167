// Unit tests of `gridlm plan`'s sizing (launch/plan.h): the DeepSeek-R1 config and its parameter
// count against a hand computation from shared/DEEPSEEK-V3.md's shapes, the tensor lists against real
// checkpoints, bytes per weight type, memory sizes, the grid rules and the deployment guide's two
// answers.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <tuple>

#include "engine/core/dtype.h"
#include "io/gguf.h"
#include "io/gguf_model.h"
#include "io/hf_checkpoint.h"
#include "io/safetensors.h"
#include "launch/cli_options.h"
#include "launch/commands.h"
#include "launch/plan.h"
#include "test_support.h"

using namespace gridlm;

namespace {

const std::string r1_config = std::string(GRIDLM_SOURCE_DIR) + "/configs/deepseek-r1.json";

const ModelConfig& r1() {
    static const ModelConfig c = hf_model_config(r1_config);
    return c;
}

WeightFormat format(const char* name) { return weight_format_from_name(name); }

const GridSize* find_grid(const FormatPlan& p, int dp, int pp, int tp) {
    for (const GridSize& g : p.grids)
        if (g.dp == dp && g.pp == pp && g.tp == tp) return &g;
    return nullptr;
}

// Why the rules refuse the grid; empty when they allow it.
std::string rejection(const FormatPlan& p, int dp, int pp, int tp) {
    for (const Rejection& r : p.rejected)
        if (r.dp == dp && r.pp == pp && r.tp == tp) return r.reason;
    return "";
}

const GridSize& recommended(const FormatPlan& p) {
    EXPECT_GE(p.recommended, 0) << p.weights.name() << ": " << p.reason;
    return p.grids.at(p.recommended < 0 ? 0 : p.recommended);
}

}  // namespace

// configs/deepseek-r1.json is the hub's config.json: every field DEEPSEEK-V3.md lists comes through.
TEST(PlanConfig, DeepSeekR1ConfigParses) {
    const ModelConfig& c = r1();
    EXPECT_EQ(c.arch, "deepseek_v3");
    EXPECT_EQ(c.n_embd, 7168);
    EXPECT_EQ(c.n_layer, 61);
    EXPECT_EQ(c.n_head, 128);
    EXPECT_EQ(c.n_head_kv, 128);
    EXPECT_EQ(c.q_lora_rank, 1536);
    EXPECT_EQ(c.kv_lora_rank, 512);
    EXPECT_EQ(c.qk_nope_dim, 128);
    EXPECT_EQ(c.qk_rope_dim, 64);
    EXPECT_EQ(c.v_head_dim, 128);
    EXPECT_EQ(c.head_dim, 192);
    EXPECT_EQ(c.n_expert, 256);
    EXPECT_EQ(c.n_expert_shared, 1);
    EXPECT_EQ(c.n_expert_used, 8);
    EXPECT_EQ(c.n_expert_group, 8);
    EXPECT_EQ(c.n_group_used, 4);
    EXPECT_DOUBLE_EQ(c.expert_weights_scale, 2.5);
    EXPECT_TRUE(c.expert_weights_norm);
    EXPECT_TRUE(c.expert_sigmoid);
    EXPECT_TRUE(c.expert_group_limited);
    EXPECT_TRUE(c.expert_score_bias);
    EXPECT_EQ(c.n_dense_lead, 3);
    EXPECT_EQ(c.n_ff_expert, 2048);
    EXPECT_EQ(c.n_ff, 18432);
    EXPECT_EQ(c.n_vocab, 129280);
    EXPECT_EQ(c.n_ctx_train, 163840);
    EXPECT_DOUBLE_EQ(c.yarn_factor, 40.0);
    EXPECT_EQ(c.yarn_orig_ctx, 4096);
    EXPECT_DOUBLE_EQ(c.yarn_beta_fast, 32.0);
    EXPECT_DOUBLE_EQ(c.yarn_beta_slow, 1.0);
    EXPECT_DOUBLE_EQ(c.yarn_mscale, 1.0);
    EXPECT_DOUBLE_EQ(c.yarn_mscale_all_dim, 1.0);
    EXPECT_DOUBLE_EQ(c.rms_eps, 1e-6);
    EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
    EXPECT_FALSE(c.tied_embeddings);
}

// The count written out from DEEPSEEK-V3.md's shapes, apart from plan.cpp's tensor list.
TEST(PlanParams, DeepSeekR1MatchesHandCount) {
    const int64_t d = 7168, H = 128, ql = 1536, kvl = 512, nope = 128, rope = 64, vd = 128;
    const int64_t E = 256, fe = 2048, ff = 18432, V = 129280, L = 61, dense = 3;
    const int64_t attention = d * ql + ql * H * (nope + rope)  // q_a_proj, q_b_proj
                              + d * (kvl + rope)               // kv_a_proj_with_mqa: [c 512 | k_pe 64]
                              + kvl * H * (nope + vd)          // kv_b_proj: W_UK, W_UV per head
                              + H * vd * d;                    // o_proj
    const int64_t layer_norms = 2 * d + ql + kvl;              // input, post-attention, q_a, kv_a norms
    const int64_t dense_mlp = 3 * d * ff;
    const int64_t experts = E * 3 * d * fe, shared = 3 * d * fe, router = E * d + E;  // + correction bias
    const int64_t total = 2 * V * d + d  // embedding, untied LM head, final norm
                          + L * (attention + layer_norms) + dense * dense_mlp +
                          (L - dense) * (experts + shared + router);
    EXPECT_EQ(total, 671026419200);

    const ParamCount n = count_params(r1());
    EXPECT_EQ(n.total, total);
    EXPECT_EQ(n.embedding, V * d);
    EXPECT_EQ(n.lm_head, V * d);
    EXPECT_EQ(n.attention, L * attention);
    EXPECT_EQ(n.dense_mlp, dense * dense_mlp);
    EXPECT_EQ(n.routed_experts, (L - dense) * experts);
    EXPECT_EQ(n.shared_experts, (L - dense) * shared);
    EXPECT_EQ(n.router, (L - dense) * router);
    EXPECT_EQ(n.norms, L * layer_norms + d);
    // The published 671B (the 14B multi-token-prediction layer not counted).
    EXPECT_NEAR((double)n.total / 1e9, 671.0, 0.1);
}

// The whole model in each format: 2-D matrices in the format, norms and the router in f32, the
// embedding in the format (bf16 for fp8) and the LM head as gridlm convert stores it (q6_k for q4_k).
TEST(PlanParams, DeepSeekR1ModelBytes) {
    const int64_t d = 7168, V = 129280, E = 256, moe_layers = 58;
    const int64_t f32_values = (61 * (2 * d + 1536 + 512) + d) + moe_layers * (E * d + E);
    const int64_t table = V * d, matrices = 671026419200 - 2 * table - f32_values;
    const PlanOptions opt = PlanOptions::cluster(1, 8, 141'000'000'000);
    EXPECT_EQ(plan_grids(r1(), format("bf16"), opt).model_bytes, 2 * (matrices + 2 * table) + 4 * f32_values);
    EXPECT_EQ(plan_grids(r1(), format("q4_k"), opt).model_bytes,
              matrices / 256 * 144 + table / 256 * 144 + table / 256 * 210 + 4 * f32_values);
    EXPECT_EQ(plan_grids(r1(), format("q8_0"), opt).model_bytes, (matrices + 2 * table) / 32 * 34 + 4 * f32_values);
    // FP8: a byte a value plus the block scales (about 4 / 16384 of a byte a value).
    const double fp8 = (double)plan_grids(r1(), format("fp8"), opt).model_bytes;
    const double fp8_floor = (double)matrices + 2.0 * 2 * table + 4.0 * f32_values;
    EXPECT_GT(fp8, fp8_floor + matrices * 4.0 / 16384);
    EXPECT_LT(fp8, fp8_floor + matrices * 4.0 / 16384 * 1.01);
}

// model_tensors names and shapes exactly what real checkpoints hold: the tiny V3 / V2 goldens
// (q LoRA and plain q, dense first layer, shared experts) and SmolLM2's GGUF (tied, GQA).
TEST(PlanParams, TensorListMatchesCheckpoints) {
    auto expect_same = [](const std::string& what, const ModelConfig& cfg, const std::vector<TensorInfo>& infos) {
        std::map<std::string, std::vector<int64_t>> have, want;
        for (const TensorInfo& t : infos) have[t.name] = t.shape;
        int64_t numel = 0;
        for (const TensorShare& t : model_tensors(cfg)) {
            want[t.name] = t.cols == 1 ? std::vector<int64_t>{t.rows} : std::vector<int64_t>{t.rows, t.cols};
            numel += t.numel();
        }
        EXPECT_EQ(have, want) << what;
        int64_t file_numel = 0;
        for (const TensorInfo& t : infos) file_numel += t.numel();
        EXPECT_EQ(count_params(cfg).total, file_numel) << what;
        EXPECT_EQ(numel, file_numel) << what;
    };
    for (const char* v : {"v3", "v2"}) {
        const std::string dir = test::golden_path(str("tiny-deepseek-", v, "-hf"));
        expect_same(dir, hf_model_config(dir + "/config.json"), SafetensorsSource(dir).tensors());
    }
    auto gguf = std::make_shared<GgufFile>(test::model_path("SmolLM2-135M-Instruct.Q4_1.gguf"), false);
    expect_same("SmolLM2 GGUF", gguf_model_config(*gguf), GgufTensorSource(gguf).tensors());
}

TEST(PlanBytes, BytesPerWeightType) {
    const int64_t rows = 2048, cols = 7168;
    EXPECT_EQ(matrix_bytes(format("bf16"), cols, rows, cols), rows * cols * 2);
    EXPECT_EQ(matrix_bytes(format("f32"), cols, rows, cols), rows * cols * 4);
    EXPECT_EQ(matrix_bytes(format("f16"), cols, rows, cols), rows * cols * 2);
    // FP8: one byte a value and an f32 scale per 128 x 128 block (16 x 56 blocks here).
    EXPECT_EQ(matrix_bytes(format("fp8"), cols, rows, cols), rows * cols + 4 * 16 * 56);
    // A part block still has its scale: 100 x 130 values are 1 x 2 blocks.
    EXPECT_EQ(matrix_bytes(format("fp8"), 130, 100, 130), 100 * 130 + 4 * 2);
    EXPECT_EQ(matrix_bytes(format("q8_0"), cols, rows, cols), rows * cols / 32 * 34);
    EXPECT_EQ(matrix_bytes(format("q4_0"), cols, rows, cols), rows * cols / 32 * 18);
    EXPECT_EQ(matrix_bytes(format("q4_1"), cols, rows, cols), rows * cols / 32 * 20);
    EXPECT_EQ(matrix_bytes(format("q5_0"), cols, rows, cols), rows * cols / 32 * 22);
    EXPECT_EQ(matrix_bytes(format("q4_k"), cols, rows, cols), rows * cols / 256 * 144);
    EXPECT_EQ(matrix_bytes(format("q5_k"), cols, rows, cols), rows * cols / 256 * 176);
    EXPECT_EQ(matrix_bytes(format("q6_k"), cols, rows, cols), rows * cols / 256 * 210);
    // Rows that are not whole blocks fall back as llama.cpp's quantizer does.
    EXPECT_EQ(storage_type(DType::dtype_q4_k, 576), DType::dtype_q5_0);
    EXPECT_EQ(storage_type(DType::dtype_q5_k, 576), DType::dtype_q5_1);
    EXPECT_EQ(storage_type(DType::dtype_q6_k, 576), DType::dtype_q8_0);
    EXPECT_EQ(storage_type(DType::dtype_q4_k, 48), DType::dtype_f32);
    EXPECT_EQ(storage_type(DType::dtype_q8_0, 48), DType::dtype_f32);
    // The LM head as gridlm convert stores it: q6_k, q8_0 for q8_0 or rows not whole 256-blocks.
    EXPECT_EQ(head_storage_type(DType::dtype_q4_k, 7168), DType::dtype_q6_k);
    EXPECT_EQ(head_storage_type(DType::dtype_q4_0, 7168), DType::dtype_q6_k);
    EXPECT_EQ(head_storage_type(DType::dtype_q8_0, 7168), DType::dtype_q8_0);
    EXPECT_EQ(head_storage_type(DType::dtype_q4_k, 576), DType::dtype_q8_0);
    EXPECT_EQ(head_storage_type(DType::dtype_q4_k, 48), DType::dtype_f32);
    EXPECT_EQ(head_storage_type(DType::dtype_bf16, 48), DType::dtype_bf16);
    EXPECT_EQ(storage_type(DType::dtype_q4_k, 7168), DType::dtype_q4_k);
    EXPECT_EQ(matrix_bytes(format("q4_k"), 576, 10, 576), 10 * 576 / 32 * 22);
    // Every table type's bytes agree with engine/core/dtype.h's row_bytes.
    for (const DTypeTraits& t : dtype_table) {
        WeightFormat f;
        f.type = t.type;
        EXPECT_EQ(matrix_bytes(f, cols, 3, cols), 3 * row_bytes(t.type, cols)) << t.name;
    }
}

TEST(PlanBytes, WeightFormatNames) {
    EXPECT_EQ(format("BF16").name(), "bf16");
    EXPECT_EQ(format("fp8").kind, WeightFormat::Kind::fp8);
    EXPECT_EQ(format("stored").kind, WeightFormat::Kind::stored);
    EXPECT_EQ(format("q4_k").type, DType::dtype_q4_k);
    const std::vector<WeightFormat> list = weight_formats_from_list("bf16,fp8,q4_k");
    ASSERT_EQ(list.size(), 3u);
    EXPECT_EQ(list[2].name(), "q4_k");
    try {
        weight_format_from_name("q3_k");
        FAIL() << "q3_k accepted";
    } catch (const UsageError& e) {
        EXPECT_NE(std::string(e.what()).find("'q3_k'"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("bf16, fp8, q4_0"), std::string::npos) << e.what();
    }
    EXPECT_THROW(weight_formats_from_list("bf16,"), UsageError);
}

TEST(PlanBytes, MemorySizes) {
    EXPECT_EQ(parse_bytes("80G", "m"), 80'000'000'000);
    EXPECT_EQ(parse_bytes("80GB", "m"), 80'000'000'000);
    EXPECT_EQ(parse_bytes("141GB", "m"), 141'000'000'000);
    EXPECT_EQ(parse_bytes("80GiB", "m"), int64_t{80} << 30);
    EXPECT_EQ(parse_bytes("80gi", "m"), int64_t{80} << 30);
    EXPECT_EQ(parse_bytes("1.5T", "m"), 1'500'000'000'000);
    EXPECT_EQ(parse_bytes("512Mi", "m"), int64_t{512} << 20);
    EXPECT_EQ(parse_bytes("4096", "m"), 4096);
    EXPECT_EQ(parse_bytes("4096B", "m"), 4096);
    for (const char* bad : {"", "G", "80X", "80 G", "-5G", "1..2G", "0", "80GiBs", "0.1"}) {
        try {
            parse_bytes(bad, "mem-per-rank");
            ADD_FAILURE() << "'" << bad << "' accepted";
        } catch (const UsageError& e) {
            const std::string msg = e.what();
            EXPECT_NE(msg.find(str("--mem-per-rank '", bad, "'")), std::string::npos) << msg;
            EXPECT_NE(msg.find("80GiB"), std::string::npos) << msg;
        }
    }
}

// Every (dp, pp, tp) with dp*pp*tp = the ranks is either a grid or rejected with its reason.
TEST(PlanGrids, EnumerationRules) {
    const PlanOptions opt = PlanOptions::cluster(4, 2, 1'000'000'000'000);
    const FormatPlan p = plan_grids(r1(), format("bf16"), opt);
    EXPECT_EQ(p.grids.size() + p.rejected.size(), 10u);  // ordered factorisations of 8 into three
    std::set<std::tuple<int, int, int>> seen;
    for (const GridSize& g : p.grids) {
        EXPECT_EQ(g.dp * g.pp * g.tp, 8);
        EXPECT_LE(g.tp, 2);
        EXPECT_EQ((int)g.stages.size(), g.pp);
        seen.insert({g.dp, g.pp, g.tp});
    }
    EXPECT_EQ(p.grids.size(), 7u);
    for (const Rejection& r : p.rejected) {
        EXPECT_GT(r.tp, 2);
        EXPECT_NE(r.reason.find("does not divide the 2 ranks per node"), std::string::npos) << r.reason;
        seen.insert({r.dp, r.pp, r.tp});
    }
    EXPECT_EQ(seen.size(), 10u);
    // Fewest model-parallel ranks first, then the largest tp.
    for (size_t i = 1; i < p.grids.size(); ++i) {
        const GridSize &a = p.grids[i - 1], &b = p.grids[i];
        EXPECT_TRUE(a.model_parallel() < b.model_parallel() ||
                    (a.model_parallel() == b.model_parallel() && a.tp >= b.tp));
    }

    // MoE: tp must divide the routed experts (tiny V3: 8 experts, 4 heads, 3 layers).
    const ModelConfig tiny = hf_model_config(test::golden_path("tiny-deepseek-v3-hf/config.json"));
    const FormatPlan t = plan_grids(tiny, format("bf16"), PlanOptions::cluster(1, 6, 1'000'000'000));
    auto why = [&](int dp, int pp, int tp) { return rejection(t, dp, pp, tp); };
    EXPECT_NE(why(2, 1, 3).find("tp=3 does not divide the model's 8 routed experts"), std::string::npos);
    EXPECT_NE(why(1, 1, 6).find("tp=6 does not divide the model's 8 routed experts"), std::string::npos);
    EXPECT_NE(why(1, 6, 1).find("pp=6 is larger than the model's 3 layers"), std::string::npos);
    EXPECT_NE(find_grid(t, 3, 1, 2), nullptr);
    EXPECT_NE(find_grid(t, 1, 3, 2), nullptr);

    // Dense: the engine's own tensor-parallel check (SmolLM2: 9 heads over 3 KV heads).
    auto gguf = std::make_shared<GgufFile>(test::model_path("SmolLM2-135M-Instruct.Q4_1.gguf"), false);
    const ModelConfig smol = gguf_model_config(*gguf);
    const FormatPlan s = plan_grids(smol, format("bf16"), PlanOptions::cluster(1, 6, 1'000'000'000));
    EXPECT_NE(rejection(s, 3, 1, 2).find("tp=2 does not divide the model's 9 attention heads"), std::string::npos);
    EXPECT_NE(find_grid(s, 2, 1, 3), nullptr);
    EXPECT_EQ(rejection(s, 2, 1, 3), "");
}

// KV bytes per token: the 576-value latent row per layer of the stage, not per head.
TEST(PlanGrids, LatentKvBytes) {
    PlanOptions opt = PlanOptions::cluster(1, 8, 141'000'000'000);
    opt.kv_dtype = DType::dtype_bf16;
    const FormatPlan p = plan_grids(r1(), format("fp8"), opt);
    const GridSize* g = find_grid(p, 1, 1, 8);
    ASSERT_NE(g, nullptr);
    EXPECT_EQ(g->kv_bytes_per_token, 61 * 576 * 2);  // 70,272 B: DEEPSEEK-V3.md's "70 KB/token"
    const GridSize* g4 = find_grid(p, 1, 4, 2);
    ASSERT_NE(g4, nullptr);
    for (const StageSize& s : g4->stages) EXPECT_EQ(s.kv_bytes_per_token, s.layers.size * 576 * 2);
    // Free tokens: whole 64-token blocks of what the weights and the reserve leave.
    for (const StageSize& s : g->stages) {
        EXPECT_EQ(s.free_bytes, opt.mem_per_rank - s.weight_bytes - s.reserve_bytes);
        EXPECT_EQ(s.kv_tokens, s.free_bytes / (64 * s.kv_bytes_per_token) * 64);
    }
}

// Rank 0 of R1 on tp=8, fp8, written out: its 32 experts of each MoE layer, an eighth of the heads
// of q_b / kv_b / o_proj, q_a and kv_a whole, an eighth of the dense and shared MLP columns and of
// the vocabulary (embedding and LM head in bf16), norms and the router in f32.
TEST(PlanGrids, R1RankWeightsByHand) {
    const FormatPlan p = plan_grids(r1(), format("fp8"), PlanOptions::cluster(1, 8, 141'000'000'000));
    const GridSize* g = find_grid(p, 1, 1, 8);
    ASSERT_NE(g, nullptr);
    auto fp8 = [](int64_t rows, int64_t cols) { return rows * cols + 4 * ((rows + 127) / 128) * ((cols + 127) / 128); };
    const int64_t d = 7168, h = 16;
    const int64_t attention = fp8(1536, d) + fp8(h * 192, 1536) + fp8(576, d) + fp8(h * 256, 512) + fp8(d, h * 128) +
                              4 * (2 * d + 1536 + 512);
    const int64_t mlp_dense = 2 * fp8(18432 / 8, d) + fp8(d, 18432 / 8);
    const int64_t expert = 2 * fp8(2048, d) + fp8(d, 2048);
    const int64_t shared = 2 * fp8(256, d) + fp8(d, 256);
    const int64_t router = 4 * (256 * d + 256);
    const int64_t vocab = 129280 / 8;
    const int64_t want =
        61 * attention + 3 * mlp_dense + 58 * (32 * expert + shared + router) + 2 * 2 * vocab * d + 4 * d;
    EXPECT_EQ(g->weight_bytes, want);
    EXPECT_NEAR((double)want / 1e9, 85.4, 0.1);
}

// The deployment guide's cases (DEEPSEEK-V3.md): R1 on 4 nodes x 2 ranks x 80 GB and on one node of
// 8 x 141 GB, with gridlm plan's defaults (f32 KV cache, heads split, 5% overhead, 1040-token steps,
// the 163,840-token training context free on every rank).
TEST(PlanDeployment, FourNodesTwoRanks80GB) {
    const PlanOptions opt = PlanOptions::cluster(4, 2, parse_bytes("80G", "mem-per-rank"));
    EXPECT_LT(plan_grids(r1(), format("bf16"), opt).recommended, 0);
    const FormatPlan fp8 = plan_grids(r1(), format("fp8"), opt);
    EXPECT_LT(fp8.recommended, 0);  // 673 GB of FP8 weights over 640 GB
    EXPECT_NE(fp8.reason.find("the weights do not fit"), std::string::npos) << fp8.reason;
    for (const char* four_bit : {"q4_k", "q4_0"}) {
        const FormatPlan p = plan_grids(r1(), format(four_bit), opt);
        const GridSize& g = recommended(p);
        EXPECT_EQ(g.dp, 1) << four_bit;
        EXPECT_EQ(g.pp, 4) << four_bit;
        EXPECT_EQ(g.tp, 2) << four_bit;
        EXPECT_GE(g.kv_tokens_per_rank, 163840) << four_bit;
        EXPECT_LE(g.weight_bytes + g.reserve_bytes, opt.mem_per_rank);
    }
}

TEST(PlanDeployment, OneNodeEightRanks141GB) {
    const PlanOptions opt = PlanOptions::cluster(1, 8, parse_bytes("141GB", "mem-per-rank"));
    EXPECT_LT(plan_grids(r1(), format("bf16"), opt).recommended, 0);  // 1342 GB over 1128 GB
    const GridSize& fp8 = recommended(plan_grids(r1(), format("fp8"), opt));
    EXPECT_EQ(std::make_tuple(fp8.dp, fp8.pp, fp8.tp), std::make_tuple(1, 1, 8));
    EXPECT_GE(fp8.kv_tokens_per_rank, 163840);
    const GridSize& q4 = recommended(plan_grids(r1(), format("q4_k"), opt));
    EXPECT_EQ(std::make_tuple(q4.dp, q4.pp, q4.tp), std::make_tuple(2, 1, 4));
    EXPECT_GE(q4.kv_tokens_per_rank, 163840);
}

// Data-parallel attention: every rank keeps all of attention, and its cache holds only its own
// sequences, so a replica holds tp times a rank's tokens.
TEST(PlanDeployment, DataParallelAttention) {
    PlanOptions opt = PlanOptions::cluster(1, 8, parse_bytes("141GB", "mem-per-rank"));
    const GridSize heads = *find_grid(plan_grids(r1(), format("fp8"), opt), 1, 1, 8);
    opt.attention = AttentionSplit::data_parallel;
    const GridSize dp = *find_grid(plan_grids(r1(), format("fp8"), opt), 1, 1, 8);
    // Attention weights other than q_a / kv_a: 7/8 of them more on each rank.
    const int64_t split_part = 128 * 192 * 1536 + 128 * 256 * 512 + 7168 * 128 * 128;
    EXPECT_NEAR((double)(dp.weight_bytes - heads.weight_bytes), 61.0 * split_part * 7 / 8, 61.0 * 2e5);
    EXPECT_EQ(dp.kv_bytes_per_token, heads.kv_bytes_per_token);
    EXPECT_EQ(dp.kv_tokens_per_replica, 8 * dp.kv_tokens_per_rank);
    EXPECT_EQ(heads.kv_tokens_per_replica, heads.kv_tokens_per_rank);
}

// Tied embeddings: one table on a single stage, a copy for the LM head on the last of several.
TEST(PlanGrids, TiedHeadOnLastStage) {
    auto gguf = std::make_shared<GgufFile>(test::model_path("SmolLM2-135M-Instruct.Q4_1.gguf"), false);
    const ModelConfig smol = gguf_model_config(*gguf);
    ASSERT_TRUE(smol.tied_embeddings);
    PlanOptions opt = PlanOptions::cluster(1, 2, 4'000'000'000);
    const FormatPlan p = plan_grids(smol, format("f32"), opt);
    const int64_t table = smol.n_vocab * smol.n_embd * 4;
    const GridSize* one = find_grid(p, 2, 1, 1);
    const GridSize* two = find_grid(p, 1, 2, 1);
    ASSERT_TRUE(one && two);
    EXPECT_EQ(one->weight_bytes, count_params(smol).total * 4);
    EXPECT_EQ(two->stages[0].weight_bytes + two->stages[1].weight_bytes, count_params(smol).total * 4 + table);
    // --weights stored: the GGUF's own tensor bytes.
    GgufTensorSource src(gguf);
    uint64_t file_bytes = 0;
    for (const TensorInfo& t : src.tensors()) file_bytes += t.source_bytes;
    EXPECT_EQ(plan_grids(smol, format("stored"), opt, &src).model_bytes, (int64_t)file_bytes);
    EXPECT_THROW(plan_grids(smol, format("stored"), opt, nullptr), UsageError);
}
