// Block-quantised tensors in the native HDF5 checkpoint (format version 2): GGUF -> keep -> HDF5 is
// byte-exact on both real models (raw rows, row slices) and its dequantised reads (whole tensors,
// row and column hyperslabs) equal the GGUF's bit for bit; the quantising writer stores what
// quantize_row makes and reports its error; float-only files stay version 1.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <memory>
#include <set>

#include "checkpoint_fixtures.h"
#include "engine/core/error.h"
#include "engine/core/quant_blocks.h"
#include "engine/core/quantize.h"
#include "io/gguf.h"
#include "io/gguf_model.h"
#include "io/h5_checkpoint.h"
#include "test_support.h"

namespace gridlm {
namespace {

namespace fs = std::filesystem;
using namespace gridlm::test;

bool bit_equal(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

// `gridlm convert --dtype keep`'s choice: every tensor in its stored type (1-D block tensors, which
// real files do not have, as f32).
TypeChooser keep(const TensorSource& src) {
    return [&src](const TensorInfo& t) {
        const DType s = src.stored_type(t.name);
        return dtype_is_quantized(s) && t.shape.size() != 2 ? DType::dtype_f32 : s;
    };
}

// Converts a GGUF with keep and checks every tensor: same stored type and raw rows, a row slice,
// and (for the tensors `dequant_check` accepts) dequantised whole / row / column reads.
void check_keep_round_trip(const std::string& model, const std::set<std::string>& want_types,
                           bool (*dequant_check)(const TensorInfo&)) {
    auto gguf = std::make_shared<const GgufFile>(test::model_path(model));
    const GgufTensorSource src(gguf);
    const std::string path = test::temp_dir() + "/keep.h5";
    size_t n_copied = 0;
    write_h5_checkpoint(path, gguf_model_config(*gguf), gguf_tokenizer_data(*gguf), &src, keep(src),
                        [&](const ConvertProgress& p) {
                            n_copied += p.copied;
                            EXPECT_TRUE(p.exact) << p.tensor;
                            EXPECT_EQ(p.sq_err, 0.0) << p.tensor;
                        });
    EXPECT_EQ(n_copied, src.tensors().size());
    H5Checkpoint ck(path);
    EXPECT_EQ(ck.format_version(), 2);
    std::set<std::string> types;
    for (const TensorInfo& t : src.tensors()) {
        const DType type = src.stored_type(t.name);
        types.insert(std::string(dtype_name(type)));
        ASSERT_EQ(ck.stored_type(t.name), type) << t.name;
        EXPECT_EQ(ck.tensor_info(t.name).shape, t.shape) << t.name;
        EXPECT_EQ(ck.tensor_info(t.name).source_type, dtype_traits(type).file_name) << t.name;
        EXPECT_EQ(ck.origin_type(t.name), t.source_type) << t.name;
        const int64_t rows = t.shape[0];
        ASSERT_EQ(ck.read_rows_raw(t.name, 0, rows), src.read_rows_raw(t.name, 0, rows)) << t.name;
        const int64_t r0 = rows / 3, n = std::min<int64_t>(5, rows - r0);
        ASSERT_EQ(ck.read_rows_raw(t.name, r0, n), src.read_rows_raw(t.name, r0, n)) << t.name;
        if (!dequant_check(t)) continue;
        const std::vector<float> all = src.read_f32(t.name);
        ASSERT_TRUE(bit_equal(ck.read_f32(t.name), all)) << t.name;
        const int64_t cols = t.shape.size() == 2 ? t.shape[1] : 1;
        const std::vector<float> slice(all.begin() + r0 * cols, all.begin() + (r0 + n) * cols);
        ASSERT_TRUE(bit_equal(ck.read_rows_f32(t.name, r0, n), slice)) << t.name;
        if (t.shape.size() != 2) continue;
        // Columns that start and end inside blocks: the covering blocks are read and cut.
        const int64_t c0 = cols / 4 + 5, nc = cols / 2 - 3;
        const std::vector<float> got = ck.read_cols_f32(t.name, c0, nc);
        ASSERT_EQ((int64_t)got.size(), rows * nc) << t.name;
        for (int64_t r = 0; r < rows; ++r) {
            ASSERT_EQ(std::memcmp(&got[r * nc], &all[r * cols + c0], nc * sizeof(float)), 0) << t.name << " row " << r;
        }
    }
    EXPECT_EQ(types, want_types);
    fs::remove(path);
}

// SmolLM2 (llama: Q and K rows un-permuted into HF order on the way): every tensor, every read.
TEST(H5Quantized, SmolLM2KeepRoundTripIsByteExact) {
    check_keep_round_trip(test::smollm2_gguf, {"f32", "q4_1", "q8_0"}, [](const TensorInfo&) { return true; });
}

// Qwen2.5-0.5B Q4_K_M: raw rows of every tensor; dequantised reads of layers 0 and 23 and the
// embedding (Q4_K, Q5_0, Q6_K, Q8_0 and F32 between them).
TEST(H5Quantized, QwenKeepRoundTripIsByteExact) {
    check_keep_round_trip(test::qwen_gguf, {"f32", "q4_k", "q5_0", "q6_k", "q8_0"}, [](const TensorInfo& t) {
        return t.name.rfind("model.layers.0.", 0) == 0 || t.name.rfind("model.layers.23.", 0) == 0 ||
               t.name == "model.embed_tokens.weight";
    });
}

// A tiny model plus quantisable extras: [40, 512] q8_0, [33, 768] q4_k, [3, 256] q6_k, [7, 64] q5_1.
struct QuantSource {
    MemorySource src = tiny_weights(tiny_config(), 0.05f);
    std::map<std::string, DType> types = {{"extra.q8_0", DType::dtype_q8_0},
                                          {"extra.q4_k", DType::dtype_q4_k},
                                          {"extra.q6_k", DType::dtype_q6_k},
                                          {"extra.q5_1", DType::dtype_q5_1}};
    QuantSource() {
        const std::pair<const char*, std::vector<int64_t>> shapes[] = {
            {"extra.q8_0", {40, 512}}, {"extra.q4_k", {33, 768}}, {"extra.q6_k", {3, 256}}, {"extra.q5_1", {7, 64}}};
        uint32_t seed = 5;
        for (const auto& [name, shape] : shapes) src.add(name, shape, test::randn(shape[0] * shape[1], seed++, 0.03f));
    }
    TypeChooser chooser() const {
        return [this](const TensorInfo& t) {
            auto it = types.find(t.name);
            return it == types.end() ? DType::dtype_f32 : it->second;
        };
    }
};

TEST(H5Quantized, WriterStoresReferenceBlocksAndReportsError) {
    const QuantSource q;
    const std::string path = test::temp_dir() + "/q.h5";
    std::map<std::string, ConvertProgress> seen;
    write_h5_checkpoint(path, tiny_config(), tiny_tokenizer(), &q.src, q.chooser(),
                        [&](const ConvertProgress& p) { seen[std::string(p.tensor)] = p; });
    H5Checkpoint ck(path);
    EXPECT_EQ(ck.format_version(), 2);
    for (const auto& [name, type] : q.types) {
        const TensorInfo& t = ck.tensor_info(name);
        const int64_t rows = t.shape[0], cols = t.shape[1], rb = row_bytes(type, cols);
        const std::vector<float>& x = q.src.data(name);
        std::vector<uint8_t> want((size_t)(rows * rb));
        for (int64_t r = 0; r < rows; ++r) quantize_row(type, x.data() + r * cols, want.data() + r * rb, cols);
        EXPECT_EQ(ck.stored_type(name), type);
        EXPECT_EQ(t.source_bytes, (uint64_t)(rows * rb));
        ASSERT_EQ(ck.read_rows_raw(name, 0, rows), want) << name;
        ASSERT_EQ(ck.read_rows_raw(name, 1, 2), std::vector<uint8_t>(want.begin() + rb, want.begin() + 3 * rb));
        std::vector<float> back((size_t)(rows * cols));
        dequantize_row(type, want.data(), back.data(), rows * cols);
        ASSERT_TRUE(bit_equal(ck.read_f32(name), back)) << name;
        // The reported error is that of these dequantised values.
        double se = 0, ss = 0, mx = 0;
        for (size_t i = 0; i < x.size(); ++i) {
            se += ((double)back[i] - x[i]) * ((double)back[i] - x[i]);
            ss += (double)x[i] * x[i];
            mx = std::max(mx, std::fabs((double)back[i] - x[i]));
        }
        const ConvertProgress& p = seen.at(name);
        EXPECT_EQ(p.dtype, type);
        EXPECT_FALSE(p.copied);
        EXPECT_FALSE(p.exact);
        EXPECT_NEAR(p.sq_err, se, 1e-9 * se) << name;
        EXPECT_NEAR(p.sq_ref, ss, 1e-9 * ss) << name;
        EXPECT_EQ(p.max_abs_err, mx) << name;
        EXPECT_LT(std::sqrt(se / ss), 0.1) << name;
        test::expect_has(test::error_of([&] { ck.read_raw16(name); }), {path, name, std::string(dtype_name(type))});
    }
    EXPECT_TRUE(seen.at("model.norm.weight").exact);

    // A checkpoint as the source of another with keep: the blocks are copied, not requantised.
    const std::string copy = test::temp_dir() + "/copy.h5";
    write_h5_checkpoint(copy, ck.config(), ck.tokenizer(), &ck, keep(ck),
                        [&](const ConvertProgress& p) { EXPECT_TRUE(p.copied) << p.tensor; });
    H5Checkpoint ck2(copy);
    for (const auto& [name, type] : q.types) {
        EXPECT_EQ(ck2.origin_type(name), dtype_traits(type).file_name);
        EXPECT_EQ(ck2.read_rows_raw(name, 0, ck.tensor_info(name).shape[0]),
                  ck.read_rows_raw(name, 0, ck.tensor_info(name).shape[0]));
    }
}

TEST(H5Quantized, FloatOnlyFilesStayVersion1) {
    const MemorySource src = tiny_weights(tiny_config());
    const std::string path = test::temp_dir() + "/f.h5";
    write_h5_checkpoint(path, tiny_config(), tiny_tokenizer(), &src, DType::dtype_bf16);
    EXPECT_EQ(H5Checkpoint(path).format_version(), 1);
}

TEST(H5Quantized, WriterRefusesBlocksThatDoNotFit) {
    const QuantSource q;
    const std::string path = test::temp_dir() + "/bad.h5";
    // Every 2-D tensor as q8_0: the tiny model's rows of 8 values are not whole blocks of 32.
    test::expect_has(
        test::error_of([&] { write_h5_checkpoint(path, tiny_config(), tiny_tokenizer(), &q.src, DType::dtype_q8_0); }),
        {path, "model.embed_tokens.weight", "[40, 8]", "q8_0", "whole blocks of 32"});
    // A 1-D tensor cannot hold blocks.
    auto one_d = [](const TensorInfo& t) { return t.shape.size() == 1 ? DType::dtype_q8_0 : DType::dtype_f32; };
    test::expect_has(test::error_of([&] { write_h5_checkpoint(path, tiny_config(), tiny_tokenizer(), &q.src, one_d); }),
                     {"2-D tensors only", "q8_0"});
    EXPECT_FALSE(fs::exists(path));
    EXPECT_FALSE(fs::exists(path + ".tmp"));
    // Non-finite values cannot be quantised: the error names the tensor, row and value.
    QuantSource bad;
    MemorySource nan_src = bad.src;
    std::vector<float> v = nan_src.data("extra.q8_0");
    v[3 * 512 + 7] = NAN;
    MemorySource with_nan;
    for (const TensorInfo& t : nan_src.tensors())
        with_nan.add(t.name, t.shape, t.name == "extra.q8_0" ? v : nan_src.data(t.name));
    test::expect_has(
        test::error_of([&] { write_h5_checkpoint(path, tiny_config(), tiny_tokenizer(), &with_nan, bad.chooser()); }),
        {"extra.q8_0", "row 3", "value 7", "nan"});
    EXPECT_FALSE(fs::exists(path));
}

}  // namespace
}  // namespace gridlm
