// The architecture registry (engine/model/arch_registry.h, engine/core/arch.h): a row per Arch,
// names that round-trip, the unsupported-architecture error, KV layouts, and a scratch formula
// that matches what each layer function takes, on random-weight tiny models.
#include "engine/model/arch_registry.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "checkpoint_fixtures.h"
#include "engine/core/arch.h"
#include "engine/model/model.h"
#include "test_support.h"

using namespace gridlm;

namespace {

std::vector<Arch> all_archs() {
    std::vector<Arch> a;
    for (size_t i = 0; i < n_archs; ++i) a.push_back((Arch)i);
    return a;
}

bool is_deepseek(Arch a) { return a == Arch::arch_deepseek_v2 || a == Arch::arch_deepseek_v3; }

// 3 layers, 4 query heads over 2 KV heads of 8, in the architecture's usual form. DeepSeek: 4 MLA
// heads of 6 + 2 over a latent of 8 (+ 2), one dense layer then two MoE layers of 4 experts
// (2 per token, 2 groups, 1 shared), V3 with q LoRA and sigmoid scores, V2 without.
ModelConfig tiny(Arch arch) {
    ModelConfig c = test::tiny_config();
    c.arch = arch_name(arch);
    c.n_layer = 3;
    c.n_embd = 16;
    c.n_head = 4;
    c.n_head_kv = 2;
    c.head_dim = 8;
    c.n_ff = 24;
    c.attn_bias = arch == Arch::arch_qwen2;
    if (is_deepseek(arch)) {
        const bool v3 = arch == Arch::arch_deepseek_v3;
        c.n_head_kv = c.n_head;
        c.q_lora_rank = v3 ? 8 : 0;
        c.kv_lora_rank = 8;
        c.qk_nope_dim = 6;
        c.qk_rope_dim = 2;
        c.v_head_dim = 4;
        c.head_dim = 8;
        c.n_expert = 4;
        c.n_expert_used = 2;
        c.n_expert_shared = 1;
        c.n_ff_expert = 6;
        c.n_dense_lead = 1;
        c.n_expert_group = v3 ? 2 : 1;
        c.n_group_used = 1;
        c.expert_sigmoid = v3;
        c.expert_group_limited = v3;
        c.expert_score_bias = v3;
        c.expert_weights_norm = v3;
        c.expert_weights_scale = v3 ? 2.5 : 1.0;
        c.yarn_factor = 40;
        c.yarn_orig_ctx = 4096;
        c.yarn_mscale = c.yarn_mscale_all_dim = 1.0;
    }
    return c;
}

// A step of one layer function straight on a scratch of `scratch_floats`: two sequences of 5 and
// 3 new tokens after `done` cached ones each. Returns the floats of scratch the layers took.
int64_t run_layers(const ArchSpec& spec, const ModelConfig& c, int64_t scratch_floats_per_token, int steps = 2) {
    std::unique_ptr<Backend> be = make_cpu_backend(1);
    const test::MemorySource src = test::tiny_weights(c, 0.3f);
    const ModelWeights w = load_weights(*be, c, src, DType::dtype_f32, ModelShard::whole(c), spec.load_layer);
    BlockKvCache kv(*be, spec.kv_layout(c), 2, 64, 4);
    std::mt19937 rng(7);
    std::normal_distribution<float> dist(0.0f, 1.0f);
    int64_t used = -1;
    for (int step = 0; step < steps; ++step) {
        const int64_t lens[2] = {step == 0 ? 5 : 1, step == 0 ? 3 : 1};
        StepContext ctx(*be, c, w, kv);
        for (int s = 0; s < 2; ++s) {
            kv.reserve(s, lens[s]);
            AttentionSeq a;
            a.token_offset = ctx.n;
            a.n_new = lens[s];
            a.pos0 = kv.length(s);
            for (int64_t t = 0; t < lens[s]; ++t) ctx.pos.push_back((int32_t)(a.pos0 + t));
            ctx.slots.push_back(s);
            ctx.seqs.push_back(a);
            ctx.n += lens[s];
        }
        std::vector<float> x((size_t)(ctx.n * c.n_embd));
        for (float& v : x) v = dist(rng);
        std::vector<float> scratch((size_t)(ctx.n * scratch_floats_per_token));
        ctx.x = x.data();
        ctx.scratch = Scratch(scratch.data(), (int64_t)scratch.size());
        spec.layers(ctx);
        for (int s = 0; s < 2; ++s) kv.commit(s, lens[s]);
        for (float v : x) EXPECT_TRUE(std::isfinite(v));
        used = ctx.scratch.used();
        EXPECT_EQ(used, (int64_t)scratch.size()) << arch_name(spec.arch) << " step " << step;
    }
    return used;
}

}  // namespace

TEST(ArchRegistry, EveryArchHasARowInEnumOrder) {
    ASSERT_EQ(arch_rows().size(), n_archs);
    for (Arch a : all_archs()) {
        const ArchSpec& row = arch_spec(a);
        EXPECT_EQ(row.arch, a);
        EXPECT_EQ(&row, &arch_rows()[(size_t)a]);
        EXPECT_TRUE(row.check_config && row.load_layer && row.layers && row.scratch_per_token && row.kv_layout)
            << arch_name(a) << " has an empty column";
    }
}

TEST(ArchRegistry, NamesRoundTrip) {
    for (Arch a : all_archs()) {
        EXPECT_EQ(find_arch(arch_name(a)), a);
        EXPECT_EQ(find_arch_by_hf_class(arch_hf_class(a)), a);
        EXPECT_EQ(arch_spec(arch_name(a)).arch, a);
    }
    EXPECT_EQ(arch_name(Arch::arch_llama), "llama");
    EXPECT_EQ(arch_name(Arch::arch_qwen2), "qwen2");
    EXPECT_EQ(arch_hf_class(Arch::arch_qwen2), "Qwen2ForCausalLM");
    for (const char* bad : {"", "Llama", "qwen", "qwen2 ", "LlamaForCausalLM", "deepseek2"}) {
        EXPECT_FALSE(find_arch(bad)) << "'" << bad << "'";
    }
    EXPECT_FALSE(find_arch_by_hf_class("llama"));
    EXPECT_FALSE(find_arch_by_hf_class("MistralForCausalLM"));
}

TEST(ArchRegistry, SupportedListsComeFromTheTable) {
    EXPECT_EQ(supported_archs(), "llama, qwen2, deepseek_v2, deepseek_v3");
    EXPECT_EQ(arch_name_list(), "llama, qwen2, deepseek_v2, deepseek_v3");
    EXPECT_EQ(arch_name_list(" or "), "llama, qwen2, deepseek_v2 or deepseek_v3");
    EXPECT_EQ(arch_name_list(" and "), "llama, qwen2, deepseek_v2 and deepseek_v3");
    EXPECT_EQ(arch_name_list(", ", true),
              "LlamaForCausalLM, Qwen2ForCausalLM, DeepseekV2ForCausalLM, DeepseekV3ForCausalLM");
}

TEST(ArchRegistry, UnknownNameGivesTheErrorText) {
    EXPECT_EQ(test::error_of([] { arch_spec("mistral"); }),
              "unsupported model architecture 'mistral' (supported: llama, qwen2, deepseek_v2, deepseek_v3)");
    // The same from a Model, before any tensor is read.
    ModelConfig c = tiny(Arch::arch_llama);
    c.arch = "gpt_neox";
    const test::MemorySource empty;
    EXPECT_EQ(test::error_of([&] { Model m(c, empty, DType::dtype_f32, 1); }),
              "unsupported model architecture 'gpt_neox' (supported: llama, qwen2, deepseek_v2, deepseek_v3)");
}

TEST(ArchRegistry, ConfigCheckRunsPerArch) {
    for (Arch a : all_archs()) {
        ModelConfig c = tiny(a);
        EXPECT_NO_THROW(arch_spec(a).check_config(c));
        c.head_dim = 7;
        test::expect_has(test::error_of([&] { arch_spec(a).check_config(c); }),
                         {is_deepseek(a) ? "head_dim 7 must be qk_nope + qk_rope" : "head_dim 7 even"});
        c = tiny(a);
        c.n_ff = 0;
        test::expect_has(test::error_of([&] { arch_spec(a).check_config(c); }), {"non-positive dimension", "n_ff 0"});
    }
}

TEST(ArchRegistry, KvLayoutMatchesConfig) {
    for (Arch a : all_archs()) {
        const ModelConfig c = tiny(a);
        if (is_deepseek(a)) {  // one latent row per token and layer: c (8) then k_pe (2)
            const KvLayout l = arch_spec(a).kv_layout(c);
            EXPECT_EQ(l.n_layer, 3);
            EXPECT_EQ(l.k_row, 8 + 2);
            EXPECT_EQ(l.v_row, 0);
            continue;
        }
        const KvLayout l = arch_spec(a).kv_layout(c);
        EXPECT_EQ(l.n_layer, 3);
        EXPECT_EQ(l.k_row, 2 * 8);
        EXPECT_EQ(l.v_row, 2 * 8);
        // A TP rank's shard holds one of the two KV heads.
        ModelConfig local = c;
        local.n_head = 2;
        local.n_head_kv = 1;
        local.n_layer = 2;
        const KvLayout ll = arch_spec(a).kv_layout(local);
        EXPECT_EQ(ll.n_layer, 2);
        EXPECT_EQ(ll.k_row, 8);
        EXPECT_EQ(ll.v_row, 8);

        // Model::make_kv_cache lays its cache out by the table.
        const test::MemorySource src = test::tiny_weights(c);
        Model m(c, src, DType::dtype_f32, 1);
        auto kv = m.make_kv_cache(2, 128);
        auto* block_kv = dynamic_cast<BlockKvCache*>(kv.get());
        ASSERT_NE(block_kv, nullptr);
        EXPECT_EQ(block_kv->block_bytes(), block_kv->block_size() * l.bytes_per_token());
        kv->reserve(1, 3);
        for (int layer = 0; layer < 3; ++layer) {
            const KvSeqView v = kv->view(1, layer);
            EXPECT_EQ(v.k_row, l.k_row);
            EXPECT_EQ(v.v_row, l.v_row);
        }
    }
}

TEST(ArchRegistry, ScratchFormulaIsWhatTheLayersTake) {
    for (Arch a : all_archs()) {
        const ArchSpec& spec = arch_spec(a);
        const ModelConfig c = tiny(a);
        const int64_t per_token = spec.scratch_per_token(c);
        EXPECT_GT(per_token, 0);
        run_layers(spec, c, per_token);
    }
}

TEST(ArchRegistryDeathTest, ShortScratchIsCaught) {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    for (Arch a : all_archs()) {
        const ArchSpec& spec = arch_spec(a);
        const ModelConfig c = tiny(a);
        EXPECT_DEATH(run_layers(spec, c, spec.scratch_per_token(c) - 1, 1), "internal error: assertion")
            << arch_name(a);
    }
}

TEST(ArchRegistry, ModelForwardRunsEveryArch) {
    // The whole path through Model (workspace from the table) on both architectures: batched
    // prefill equals the sequences one at a time.
    for (Arch a : all_archs()) {
        const ModelConfig c = tiny(a);
        const test::MemorySource src = test::tiny_weights(c, 0.3f);
        Model m(c, src, DType::dtype_f32, 1);
        const std::vector<int32_t> p0 = {1, 5, 9, 2, 7}, p1 = {3, 3, 8};
        auto kv = m.make_kv_cache(2, 64);
        ForwardBatch b;
        b.add(0, p0);
        b.add(1, p1);
        std::vector<float> both(2 * c.n_vocab);
        m.forward(b, *kv, both.data());
        for (int s = 0; s < 2; ++s) {
            auto kv1 = m.make_kv_cache(1, 64);
            ForwardBatch one;
            one.add(0, s == 0 ? p0 : p1);
            std::vector<float> alone(c.n_vocab);
            m.forward(one, *kv1, alone.data());
            for (int64_t i = 0; i < c.n_vocab; ++i)
                ASSERT_NEAR(alone[i], both[s * c.n_vocab + i], 1e-4) << arch_name(a) << " seq " << s << " id " << i;
        }
    }
}
