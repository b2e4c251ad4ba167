// The weight loader keeping stored block types (engine/model/weights.h): raw rows and tensor-
// parallel column cuts of real GGUF files against the file's dequantised values, and the policy.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <memory>
#include <vector>

#include "engine/backend/backend.h"
#include "engine/core/quant_blocks.h"
#include "engine/model/model.h"
#include "engine/model/weights.h"
#include "io/gguf.h"
#include "io/gguf_model.h"
#include "test_support.h"

using namespace gridlm;

namespace {

// Every row of a kept weight widened to f32 with the reference dequantiser.  [rows, cols]
std::vector<float> widen(const Weight& w) {
    std::vector<float> out((size_t)(w.rows * w.cols));
    for (int64_t r = 0; r < w.rows; ++r) dequantize_row(w.dtype, w.row(r), out.data() + r * w.cols, w.cols);
    return out;
}

bool bit_equal(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

std::shared_ptr<const GgufFile> open_model(const char* name) {
    const std::string path = test::model_path(name);
    if (!std::filesystem::exists(path)) return nullptr;
    return std::make_shared<const GgufFile>(path);
}

TEST(QuantLoader, KeptRowsAndColumnCutsAreTheFilesBlocks) {
    auto file = open_model(test::qwen_gguf);
    if (!file) GTEST_SKIP() << "model file missing: run launch/fetch_models.sh";
    GgufTensorSource src(file);
    const ModelConfig c = gguf_model_config(*file);
    auto be = make_cpu_backend(2);
    ModelWeights out;
    WeightLoader ld(*be, src, WeightPolicy::keep_stored(), out);
    const std::string down = "model.layers.0.mlp.down_proj.weight", q = "model.layers.0.self_attn.q_proj.weight";
    // Columns 256..767 of down_proj (a tensor-parallel rank's run of whole 256-blocks).
    const Weight wd = ld.mat_cols(down, c.n_embd, c.n_ff, {256, 512});
    EXPECT_EQ(wd.dtype, src.stored_type(down));
    EXPECT_TRUE(dtype_is_quantized(wd.dtype)) << dtype_name(wd.dtype);
    EXPECT_EQ(wd.rows, c.n_embd);
    EXPECT_EQ(wd.cols, 512);
    EXPECT_TRUE(bit_equal(widen(wd), src.read_cols_f32(down, 256, 512)));
    // Rows 64..191 of q_proj (llama.cpp's Q row permutation undone for Llama files; Qwen2 has none).
    const Weight wq = ld.mat_rows(q, c.n_head * c.head_dim, c.n_embd, {64, 128});
    EXPECT_TRUE(dtype_is_quantized(wq.dtype));
    EXPECT_TRUE(bit_equal(widen(wq), src.read_rows_f32(q, 64, 128)));
    // A cut inside a block is refused, naming the tensor and the type.
    test::expect_has(test::error_of([&] {
                         ld.mat_cols(down, c.n_embd, c.n_ff, {100, 256});
                     }),
                     {down, std::string(dtype_name(wd.dtype)), "block boundary"});
    EXPECT_GT(out.bytes_by_type[(size_t)wd.dtype], 0);
}

TEST(QuantLoader, LlamaQkRowsComeInHfOrder) {
    auto file = open_model(test::smollm2_gguf);
    if (!file) GTEST_SKIP() << "model file missing: run launch/fetch_models.sh";
    GgufTensorSource src(file);
    const ModelConfig c = gguf_model_config(*file);
    auto be = make_cpu_backend(1);
    ModelWeights out;
    WeightLoader ld(*be, src, WeightPolicy::keep_stored(), out);
    const std::string k = "model.layers.3.self_attn.k_proj.weight";
    const Weight wk = ld.mat_rows(k, c.n_head_kv * c.head_dim, c.n_embd, {0, c.n_head_kv * c.head_dim});
    EXPECT_TRUE(dtype_is_quantized(wk.dtype));
    EXPECT_TRUE(bit_equal(widen(wk), src.read_f32(k)));
}

TEST(QuantLoader, PolicyNamesAndConversions) {
    EXPECT_TRUE(WeightPolicy::from_name("auto").keep);
    EXPECT_EQ(WeightPolicy::from_name("bf16").dtype, DType::dtype_bf16);
    EXPECT_FALSE(WeightPolicy::from_name("f16").keep);
    test::expect_has(test::error_of([] { WeightPolicy::from_name("q4_0"); }), {"'q4_0'", "auto, f32, bf16 or f16"});
    auto file = open_model(test::smollm2_gguf);
    if (!file) GTEST_SKIP() << "model file missing: run launch/fetch_models.sh";
    GgufTensorSource src(file);
    const ModelConfig c = gguf_model_config(*file);
    // Kept: the matrices hold the file's block types and take a fraction of the f32 bytes.
    Model kept(c, src, WeightPolicy::keep_stored(), 1);
    Model f32(c, src, DType::dtype_f32, 1);
    int64_t quant_bytes = 0;
    for (size_t t = 0; t < dtype_count; ++t)
        if (dtype_is_quantized((DType)t)) quant_bytes += kept.weight_bytes_by_type()[t];
    EXPECT_GT(quant_bytes, 0);
    int64_t f32_matrices = 0;
    for (int64_t bytes : f32.weight_bytes_by_type()) f32_matrices += bytes;
    EXPECT_EQ(f32_matrices, f32.weight_bytes_by_type()[(size_t)DType::dtype_f32]);  // converted: all f32
    EXPECT_LT(kept.weight_bytes() * 4, f32.weight_bytes());
    EXPECT_LE(kept.streamed_weight_bytes(), kept.weight_bytes());
}

}  // namespace
