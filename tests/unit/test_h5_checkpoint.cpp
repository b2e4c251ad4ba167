// Native HDF5 checkpoint: write -> read round trips (config, tokenizer bytes, f32 / bf16 / f16
// tensors), hyperslab reads, and GGUF -> HDF5 bit-equality on the real models.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <set>

#include "checkpoint_fixtures.h"
#include "engine/core/error.h"
#include "io/gguf.h"
#include "io/gguf_model.h"
#include "io/h5_checkpoint.h"
#include "engine/model/model.h"
#include "io/hf_checkpoint.h"
#include "test_support.h"

namespace gridlm {
namespace {

namespace fs = std::filesystem;
using namespace gridlm::test;

TEST(H5Checkpoint, RoundTripF32IsBitExact) {
    const std::string path = test::temp_dir() + "/m.h5";
    const ModelConfig cfg = tiny_config();
    const TokenizerData tok = tiny_tokenizer();
    MemorySource src = tiny_weights(cfg);
    std::vector<float> special = {0.0f, -0.0f, INFINITY, -INFINITY, 1e-45f, -3.4e38f, std::nanf("7"), 1.0f};
    src.add("extra.special", {8}, special);
    size_t calls = 0;
    write_h5_checkpoint(path, cfg, tok, &src, DType::dtype_f32, [&](const ConvertProgress& p) {
        calls++;
        EXPECT_EQ(p.tensors_done, calls);
        EXPECT_EQ(p.tensors_total, src.tensors().size());
    });
    EXPECT_EQ(calls, src.tensors().size());
    EXPECT_FALSE(fs::exists(path + ".tmp"));

    H5Checkpoint ck(path);
    EXPECT_EQ(ck.format_version(), 1);
    EXPECT_FALSE(ck.vocab_only());
    expect_config_eq(ck.config(), cfg);
    expect_tokenizer_eq(ck.tokenizer(), tok);
    ASSERT_EQ(ck.tensors().size(), src.tensors().size());
    for (size_t i = 0; i < src.tensors().size(); ++i) {
        const TensorInfo& want = src.tensors()[i];
        EXPECT_EQ(ck.tensors()[i].name, want.name) << "creation order is kept";
        EXPECT_EQ(ck.tensors()[i].shape, want.shape);
        EXPECT_EQ(ck.tensors()[i].source_type, "F32");
        EXPECT_EQ(ck.tensor_dtype(want.name), DType::dtype_f32);
        EXPECT_EQ(ck.origin_type(want.name), want.source_type);
        EXPECT_TRUE(bit_equal(ck.read_f32(want.name), src.data(want.name))) << want.name;
    }
}

TEST(H5Checkpoint, RoundTrip16BitEqualsRoundedValues) {
    const ModelConfig cfg = tiny_config();
    const MemorySource src = tiny_weights(cfg, 3.0f);
    for (DType dt : {DType::dtype_bf16, DType::dtype_f16}) {
        const std::string path = test::temp_dir() + "/m16.h5";
        write_h5_checkpoint(path, cfg, tiny_tokenizer(), &src, dt);
        H5Checkpoint ck(path);
        for (const TensorInfo& t : src.tensors()) {
            ASSERT_EQ(ck.tensor_dtype(t.name), dt);
            const std::vector<float>& orig = src.data(t.name);
            const std::vector<float> got = ck.read_f32(t.name);
            const std::vector<uint16_t> raw = ck.read_raw16(t.name);
            ASSERT_EQ(got.size(), orig.size());
            ASSERT_EQ(raw.size(), orig.size());
            for (size_t i = 0; i < orig.size(); ++i) {
                const uint16_t bits = dt == DType::dtype_bf16 ? f32_to_bf16(orig[i]) : f32_to_f16(orig[i]);
                const float want = dt == DType::dtype_bf16 ? bf16_to_f32(bits) : f16_to_f32(bits);
                ASSERT_EQ(raw[i], bits) << t.name << "[" << i << "]";
                ASSERT_EQ(got[i], want) << t.name << "[" << i << "]";
            }
        }
    }
}

TEST(H5Checkpoint, HyperslabReadsEqualSlices) {
    const ModelConfig cfg = tiny_config();
    const MemorySource src = tiny_weights(cfg);
    const std::vector<float>& big = src.data("extra.big");  // [300, 1100]
    for (DType dt : {DType::dtype_f32, DType::dtype_bf16}) {
        const std::string path = test::temp_dir() + "/slabs.h5";
        write_h5_checkpoint(path, cfg, tiny_tokenizer(), &src, dt);
        H5Checkpoint ck(path);
        auto round = [&](float x) { return dt == DType::dtype_f32 ? x : bf16_to_f32(f32_to_bf16(x)); };
        // Row block crossing the row-chunk boundary (chunks of 150 rows).
        const std::vector<float> rows = ck.read_rows_f32("extra.big", 37, 200);  // [200, 1100]
        ASSERT_EQ(rows.size(), 200u * 1100);
        for (int64_t r = 0; r < 200; ++r)
            for (int64_t c = 0; c < 1100; ++c) ASSERT_EQ(rows[r * 1100 + c], round(big[(37 + r) * 1100 + c]));
        // Column block crossing the column-chunk boundary (chunks of 550 columns).
        const std::vector<float> cols = ck.read_cols_f32("extra.big", 500, 300);  // [300, 300]
        ASSERT_EQ(cols.size(), 300u * 300);
        for (int64_t r = 0; r < 300; ++r)
            for (int64_t c = 0; c < 300; ++c) ASSERT_EQ(cols[r * 300 + c], round(big[r * 1100 + 500 + c]));
        // Tensor-parallel style: the halves of o_proj's columns put together give the whole.
        const std::string o = "model.layers.1.self_attn.o_proj.weight";  // [8, 8]
        const std::vector<float> whole = ck.read_f32(o);
        const std::vector<float> left = ck.read_cols_f32(o, 0, 4), right = ck.read_cols_f32(o, 4, 4);
        for (int r = 0; r < 8; ++r)
            for (int c = 0; c < 8; ++c) ASSERT_EQ(whole[r * 8 + c], c < 4 ? left[r * 4 + c] : right[r * 4 + c - 4]);
        // 1-D rows and empty ranges.
        const std::vector<float> bias = ck.read_rows_f32("model.layers.0.self_attn.q_proj.bias", 2, 5);
        const std::vector<float>& bias_src = src.data("model.layers.0.self_attn.q_proj.bias");
        for (int i = 0; i < 5; ++i) EXPECT_EQ(bias[i], round(bias_src[2 + i]));
        EXPECT_TRUE(ck.read_rows_f32("extra.big", 300, 0).empty());
        // Out-of-range requests name the tensor and its shape.
        const std::string err = error_of([&] { ck.read_rows_f32("extra.big", 250, 51); });
        EXPECT_NE(err.find("extra.big"), std::string::npos) << err;
        EXPECT_NE(err.find("[300, 1100]"), std::string::npos) << err;
        EXPECT_NE(error_of([&] { ck.read_cols_f32("model.norm.weight", 0, 1); }).find("2-D"), std::string::npos);
    }
}

TEST(H5Checkpoint, VocabOnlyCheckpoint) {
    const std::string path = test::temp_dir() + "/vocab.h5";
    write_h5_checkpoint(path, tiny_config(), tiny_tokenizer(), nullptr, DType::dtype_f32);
    H5Checkpoint ck(path);
    EXPECT_TRUE(ck.vocab_only());
    EXPECT_TRUE(ck.tensors().empty());
    expect_tokenizer_eq(ck.tokenizer(), tiny_tokenizer());
    const std::string err = error_of([&] { ck.read_f32("model.norm.weight"); });
    EXPECT_NE(err.find("vocabulary-only"), std::string::npos) << err;
}

TEST(H5Checkpoint, SmolLM2GgufConvertIsBitExact) {
    auto gguf = std::make_shared<const GgufFile>(test::model_path(test::smollm2_gguf));
    const GgufTensorSource src(gguf);
    const std::string path = test::temp_dir() + "/smollm2.h5";
    write_h5_checkpoint(path, gguf_model_config(*gguf), gguf_tokenizer_data(*gguf), &src, DType::dtype_f32);
    H5Checkpoint ck(path);
    expect_config_eq(ck.config(), gguf_model_config(*gguf));
    expect_tokenizer_eq(ck.tokenizer(), gguf_tokenizer_data(*gguf));
    ASSERT_EQ(ck.tensors().size(), src.tensors().size());
    for (const TensorInfo& t : src.tensors()) {
        EXPECT_EQ(ck.origin_type(t.name), t.source_type);
        ASSERT_TRUE(bit_equal(ck.read_f32(t.name), src.read_f32(t.name))) << t.name;
    }
    fs::remove(path);
}

// Qwen2.5-0.5B cut down to keep the test short: two layers (GGUF layers 0 and 23 renamed 0 and 1)
// and no lm_head (declared tied), which still covers Q4_K, Q5_0, Q6_K, Q8_0 and F32 tensors and biases.
class QwenSample : public TensorSource {
public:
    explicit QwenSample(std::shared_ptr<const GgufFile> f) : src_(std::move(f)) {
        for (const TensorInfo& t : src_.tensors()) {
            std::string name = t.name;
            if (name == "lm_head.weight") continue;
            if (name.rfind("model.layers.", 0) == 0) {
                const std::string rest = name.substr(13);
                const std::string layer = rest.substr(0, rest.find('.'));
                if (layer != "0" && layer != "23") continue;
                name = "model.layers." + std::string(layer == "0" ? "0" : "1") + rest.substr(layer.size());
            }
            TensorInfo mine = t;
            mine.name = name;
            infos_.push_back(mine);
            origin_[name] = t.name;
        }
    }
    const std::vector<TensorInfo>& tensors() const override { return infos_; }
    std::vector<float> read_f32(const std::string& name) const override { return src_.read_f32(origin_.at(name)); }

private:
    GgufTensorSource src_;
    std::vector<TensorInfo> infos_;
    std::map<std::string, std::string> origin_;
};

TEST(H5Checkpoint, QwenSampleGgufConvertIsBitExact) {
    auto gguf = std::make_shared<const GgufFile>(test::model_path(test::qwen_gguf));
    const QwenSample src(gguf);
    ModelConfig cfg = gguf_model_config(*gguf);
    cfg.n_layer = 2;
    cfg.tied_embeddings = true;
    const std::string path = test::temp_dir() + "/qwen-sample.h5";
    write_h5_checkpoint(path, cfg, gguf_tokenizer_data(*gguf), &src, DType::dtype_f32);
    H5Checkpoint ck(path);
    EXPECT_TRUE(ck.config().attn_bias);
    std::set<std::string> types;
    for (const TensorInfo& t : src.tensors()) {
        types.insert(t.source_type);
        ASSERT_TRUE(bit_equal(ck.read_f32(t.name), src.read_f32(t.name))) << t.name;
    }
    EXPECT_EQ(types, (std::set<std::string>{"F32", "Q4_K", "Q5_0", "Q6_K", "Q8_0"}));
    // Hyperslabs of a real quantised matrix: rows of q_proj, columns of down_proj.
    const std::string q = "model.layers.1.self_attn.q_proj.weight", down = "model.layers.0.mlp.down_proj.weight";
    const std::vector<float> q_all = src.read_f32(q), down_all = src.read_f32(down);
    const int64_t n_embd = cfg.n_embd, n_ff = cfg.n_ff;
    const std::vector<float> q_rows = ck.read_rows_f32(q, 448, 448);
    EXPECT_TRUE(std::equal(q_rows.begin(), q_rows.end(), q_all.begin() + 448 * n_embd));
    const std::vector<float> down_cols = ck.read_cols_f32(down, n_ff / 2, n_ff / 2);
    for (int64_t r = 0; r < n_embd; ++r) {
        ASSERT_TRUE(std::memcmp(&down_cols[r * (n_ff / 2)], &down_all[r * n_ff + n_ff / 2], n_ff / 2 * 4) == 0) << r;
    }
    fs::remove(path);
}

// The 7B head file has its whole vocabulary but cut-off tensor data: vocabulary-only works.
TEST(H5Checkpoint, DeepSeekHeadVocabOnly) {
    const GgufFile gguf(test::model_path(test::r1_gguf), /*need_tensor_data=*/false);
    const std::string path = test::temp_dir() + "/r1-vocab.h5";
    write_h5_checkpoint(path, gguf_model_config(gguf), gguf_tokenizer_data(gguf), nullptr, DType::dtype_f32);
    H5Checkpoint ck(path);
    EXPECT_TRUE(ck.vocab_only());
    expect_config_eq(ck.config(), gguf_model_config(gguf));
    expect_tokenizer_eq(ck.tokenizer(), gguf_tokenizer_data(gguf));
    EXPECT_EQ(ck.tokenizer().pre, "deepseek-r1-qwen");
}

// DeepSeek-V3 / V2 (MLA, MoE, YaRN: the optional config attributes) from the tiny HF models:
// the config and every tensor come back bit-exact, and the model runs from the .h5 (its logits are
// the HF directory's, which test_model_golden checks against HF transformers).
TEST(H5Checkpoint, DeepseekHfConvertIsBitExact) {
    for (const char* dir : {"tiny-deepseek-v3-hf", "tiny-deepseek-v2-hf"}) {
        const HfCheckpoint hf(test::golden_path(dir));
        const std::string path = test::temp_dir() + "/ds.h5";
        write_h5_checkpoint(path, hf.config(), hf.tokenizer(), &hf, DType::dtype_f32);
        H5Checkpoint ck(path);
        expect_config_eq(ck.config(), hf.config());
        EXPECT_GT(ck.config().n_expert, 0) << dir;
        EXPECT_GT(ck.config().yarn_factor, 1.0) << dir;
        for (const TensorInfo& t : hf.tensors()) {
            const std::vector<float> a = hf.read_f32(t.name), b = ck.read_f32(t.name);
            ASSERT_EQ(a.size(), b.size()) << t.name;
            EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * 4)) << dir << " " << t.name;
        }
        Model from_hf(hf.config(), hf, DType::dtype_f32, 1), from_h5(ck.config(), ck, DType::dtype_f32, 1);
        ForwardBatch b;
        const std::vector<int32_t> prompt = {5, 100, 7, 300, 42};
        b.add(0, prompt);
        std::vector<float> la(hf.config().n_vocab), lb(hf.config().n_vocab);
        auto kva = from_hf.make_kv_cache(1, 16), kvb = from_h5.make_kv_cache(1, 16);
        from_hf.forward(b, *kva, la.data());
        from_h5.forward(b, *kvb, lb.data());
        EXPECT_EQ(0, std::memcmp(la.data(), lb.data(), la.size() * 4)) << dir;
    }
}

}  // namespace
}  // namespace gridlm
