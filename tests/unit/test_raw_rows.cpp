// Raw row reads (TensorSource::stored_type / read_rows_raw) of every checkpoint format: rows as
// stored, dequantised with the GGUF dequantiser, equal read_rows_f32 of the same rows bit for bit,
// for every weight type in the model files, the synthetic GGUF and HDF5 / safetensors checkpoints.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <vector>

#include "checkpoint_fixtures.h"
#include "engine/core/dtype.h"
#include "io/gguf_model.h"
#include "io/gguf_quant.h"
#include "io/h5_checkpoint.h"
#include "io/hf_checkpoint.h"
#include "io/safetensors.h"
#include "test_support.h"

using namespace gridlm;

namespace {

bool bit_equal(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

int64_t cols_of(const TensorInfo& t) { return t.shape.size() == 2 ? t.shape[1] : 1; }

// Rows [row0, row0 + n_rows): the raw bytes have the stored type's row size and dequantise to
// read_rows_f32's values.
void expect_raw_rows_match(const TensorSource& src, const TensorInfo& t, int64_t row0, int64_t n_rows) {
    const DType type = src.stored_type(t.name);
    const int64_t cols = cols_of(t);
    const std::vector<uint8_t> raw = src.read_rows_raw(t.name, row0, n_rows);
    ASSERT_EQ((int64_t)raw.size(), n_rows * row_bytes(type, cols)) << t.name;
    std::vector<float> got((size_t)(n_rows * cols));
    dequantize((GgmlType)dtype_traits(type).gguf_id, raw.data(), n_rows * cols, got.data());
    EXPECT_TRUE(bit_equal(got, src.read_rows_f32(t.name, row0, n_rows)))
        << t.name << " (" << dtype_name(type) << ") rows " << row0 << "+" << n_rows;
}

// All rows, a slice from an odd row, the last row and no rows.
void expect_tensor_matches(const TensorSource& src, const TensorInfo& t) {
    const int64_t rows = t.shape.at(0);
    expect_raw_rows_match(src, t, 0, rows);
    if (rows >= 3) expect_raw_rows_match(src, t, 1, rows / 2);
    expect_raw_rows_match(src, t, rows - 1, 1);
    expect_raw_rows_match(src, t, rows, 0);
}

bool in_table(const std::string& source_type) {
    for (const DTypeTraits& t : dtype_table)
        if (source_type == t.file_name) return true;
    return false;
}

// The smallest 1-D / 2-D tensor of each stored type of the table.
std::map<DType, const TensorInfo*> smallest_per_type(const TensorSource& src) {
    std::map<DType, const TensorInfo*> out;
    for (const TensorInfo& t : src.tensors()) {
        if (t.shape.empty() || t.shape.size() > 2 || t.numel() == 0 || !in_table(t.source_type)) continue;
        const DType type = src.stored_type(t.name);
        auto [it, fresh] = out.emplace(type, &t);
        if (!fresh && t.numel() < it->second->numel()) it->second = &t;
    }
    return out;
}

std::string gguf_path(const std::string& file) {
    return file == "gguf_synthetic.gguf" ? test::golden_path(file) : test::model_path(file);
}

bool stored_in_table(const GgufTensor& t) { return dtype_of_gguf_id((uint32_t)t.type) != nullptr; }

}  // namespace

// Every tensor type of the GGUF files (one tensor each), and llama's permuted Q/K rows.
TEST(RawRows, GgufEveryStoredType) {
    std::set<DType> covered;
    for (const std::string file : {"gguf_synthetic.gguf", test::smollm2_gguf, test::qwen_gguf}) {
        auto gguf = std::make_shared<const GgufFile>(gguf_path(file));
        const GgufTensorSource src(gguf);
        std::set<DType> in_file;
        for (const GgufTensor& t : gguf->tensors())
            if (stored_in_table(t)) in_file.insert(dtype_of_gguf_id((uint32_t)t.type)->type);
        const auto per_type = smallest_per_type(src);
        EXPECT_EQ(per_type.size(), in_file.size()) << file;
        std::string names;
        for (const auto& [type, t] : per_type) names += str(" ", dtype_traits(type).file_name);
        std::printf("%s:%s\n", file.c_str(), names.c_str());
        for (const auto& [type, t] : per_type) {
            SCOPED_TRACE(file + ": " + t->name);
            EXPECT_EQ(t->source_type, dtype_traits(type).file_name);
            expect_tensor_matches(src, *t);
            covered.insert(type);
        }
    }
    // The synthetic file holds a tensor of every type the dequantiser supports: all of the table.
    EXPECT_EQ(covered.size(), dtype_count);
}

TEST(RawRows, GgufLlamaQkRowsComeInHfOrder) {
    auto gguf = std::make_shared<const GgufFile>(test::model_path(test::smollm2_gguf));
    const GgufTensorSource src(gguf);
    for (const std::string name : {"model.layers.0.self_attn.q_proj.weight", "model.layers.29.self_attn.k_proj.weight",
                                   "model.layers.3.self_attn.v_proj.weight"}) {
        SCOPED_TRACE(name);
        const TensorInfo* info = nullptr;
        for (const TensorInfo& t : src.tensors())
            if (t.name == name) info = &t;
        ASSERT_NE(info, nullptr);
        expect_tensor_matches(src, *info);
        expect_raw_rows_match(src, *info, 37, 70);  // a slice across head boundaries
        // Q/K rows differ from the file's own order (the permutation is not the identity); V's do not.
        const GgufTensor& g = src.gguf_tensor(name);
        const std::vector<uint8_t> raw = src.read_rows_raw(name, 0, info->shape[0]);
        ASSERT_EQ(raw.size(), g.n_bytes);
        const bool same = std::memcmp(raw.data(), src.file().tensor_data(g), raw.size()) == 0;
        EXPECT_EQ(same, name.find("v_proj") != std::string::npos);
    }
}

TEST(RawRows, GgufErrors) {
    auto gguf = std::make_shared<const GgufFile>(test::model_path(test::smollm2_gguf));
    const GgufTensorSource src(gguf);
    const std::string q = "model.layers.0.self_attn.q_proj.weight";
    test::expect_has(test::error_of([&] { src.read_rows_raw(q, 570, 7); }),
                     {"blk.0.attn_q.weight", "rows [570, 577)", "576 rows"});
    test::expect_has(test::error_of([&] { src.read_rows_raw(q, -1, 1); }), {"outside"});
    test::expect_has(test::error_of([&] { src.read_rows_raw("no.such.weight", 0, 1); }), {"no.such.weight"});
    test::expect_has(test::error_of([&] { src.stored_type("no.such.weight"); }), {"no.such.weight"});
}

// A checkpoint's own types (f32, bf16, f16) served as stored; the model cache's .h5 files too.
TEST(RawRows, H5EveryDtype) {
    const ModelConfig cfg = test::tiny_config();
    const test::MemorySource weights = test::tiny_weights(cfg);
    for (DType dt : {DType::dtype_f32, DType::dtype_bf16, DType::dtype_f16}) {
        SCOPED_TRACE(std::string(dtype_name(dt)));
        const std::string path = test::temp_dir() + "/raw.h5";
        write_h5_checkpoint(path, cfg, test::tiny_tokenizer(), &weights, dt);
        const H5Checkpoint ck(path);
        for (const TensorInfo& t : ck.tensors()) {
            EXPECT_EQ(ck.stored_type(t.name), dt) << t.name;
            expect_tensor_matches(ck, t);
        }
        // 16-bit rows are the patterns read_raw16 gives.
        if (dt != DType::dtype_f32) {
            const std::vector<uint16_t> bits = ck.read_raw16("extra.big", 7, 5);
            const std::vector<uint8_t> raw = ck.read_rows_raw("extra.big", 7, 5);
            ASSERT_EQ(raw.size(), bits.size() * 2);
            EXPECT_EQ(std::memcmp(raw.data(), bits.data(), raw.size()), 0);
        }
        test::expect_has(test::error_of([&] { ck.read_rows_raw("extra.big", 299, 2); }),
                         {"rows [299, 301)", "extra.big", "[300, 1100]"});
    }
    size_t n_model_files = 0;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(test::models_dir(), ec)) {
        if (e.path().extension() != ".h5") continue;
        const H5Checkpoint ck(e.path().string());
        if (ck.vocab_only()) continue;
        ++n_model_files;
        for (const auto& [type, t] : smallest_per_type(ck)) {
            SCOPED_TRACE(e.path().string() + ": " + t->name);
            expect_tensor_matches(ck, *t);
        }
    }
    std::printf("checked %zu .h5 model file(s) in %s\n", n_model_files, test::models_dir().c_str());
}

TEST(RawRows, SafetensorsAsStored) {
    const std::map<std::string, DType> dirs = {{"tiny-qwen2-hf", DType::dtype_f32},
                                               {"tiny-qwen2-hf-sharded-bf16", DType::dtype_bf16}};
    for (const auto& [dir, want] : dirs) {
        const HfCheckpoint hf(test::golden_path(dir));
        ASSERT_FALSE(hf.tensors().empty()) << dir;
        for (const TensorInfo& t : hf.tensors()) {
            SCOPED_TRACE(dir + ": " + t.name);
            EXPECT_EQ(hf.stored_type(t.name), want);
            expect_tensor_matches(hf, t);
        }
        const SafetensorsSource st(test::golden_path(dir));
        const std::vector<uint8_t> a = st.read_rows_raw("model.embed_tokens.weight", 3, 4);
        EXPECT_EQ(a, hf.read_rows_raw("model.embed_tokens.weight", 3, 4));
        test::expect_has(test::error_of([&] { st.read_rows_raw("model.embed_tokens.weight", 510, 3); }),
                         {"model.embed_tokens.weight", "rows [510, 513)", "[512, 64]"});
    }
    const HfCheckpoint no_data(test::golden_path("tiny-qwen2-hf"), false);
    test::expect_has(test::error_of([&] { no_data.read_rows_raw("model.norm.weight", 0, 1); }),
                     {"without tensor data", "model.norm.weight"});
}

// A source that only produces floats serves them as f32 rows.
TEST(RawRows, DefaultIsF32) {
    test::MemorySource src;
    src.add("m", {3, 2}, {1, 2, 3, 4, 5, 6});
    EXPECT_EQ(src.stored_type("m"), DType::dtype_f32);
    const std::vector<uint8_t> raw = src.read_rows_raw("m", 1, 2);
    ASSERT_EQ(raw.size(), 16u);
    float v[4];
    std::memcpy(v, raw.data(), 16);
    EXPECT_EQ(std::vector<float>(v, v + 4), (std::vector<float>{3, 4, 5, 6}));
    EXPECT_THROW(src.stored_type("nope"), Error);
}
