// FP8 E4M3 weights with 128 x 128 block scales (DeepSeek-V3 / R1's release format) read from
// safetensors (io/safetensors.h) against torch's own dequantisation of the same bytes
// (tests/reference/make_fp8_golden.py), and the errors for a scale tensor that is missing or of
// the wrong shape.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "test_support.h"

using namespace gridlm;

namespace {

const std::string golden = test::golden_path("fp8_block_scaled.safetensors");

// Bitwise equality, NaN equal to NaN.
void expect_same(const std::vector<float>& got, const std::vector<float>& want, const std::string& what) {
    ASSERT_EQ(got.size(), want.size()) << what;
    int64_t bad = 0;
    for (size_t i = 0; i < got.size(); ++i) {
        const bool same = (std::isnan(got[i]) && std::isnan(want[i])) || std::memcmp(&got[i], &want[i], 4) == 0;
        if (!same && bad++ < 5) ADD_FAILURE() << what << "[" << i << "] = " << got[i] << ", torch gives " << want[i];
    }
    EXPECT_EQ(bad, 0) << what;
}

// A one-file safetensors of the given F8 tensor [rows, cols] and optional f32 tensors.
void write_safetensors(const std::string& path, int64_t rows, int64_t cols,
                       const std::vector<std::pair<std::string, std::vector<int64_t>>>& f32_tensors) {
    nlohmann::json h;
    uint64_t off = 0;
    h["w.weight"] = {{"dtype", "F8_E4M3"}, {"shape", {rows, cols}}, {"data_offsets", {off, off + rows * cols}}};
    off += rows * cols;
    for (const auto& [name, shape] : f32_tensors) {
        uint64_t n = 4;
        for (int64_t d : shape) n *= d;
        h[name] = {{"dtype", "F32"}, {"shape", shape}, {"data_offsets", {off, off + n}}};
        off += n;
    }
    const std::string text = h.dump();
    std::ofstream f(path, std::ios::binary);
    const uint64_t len = text.size();
    f.write(reinterpret_cast<const char*>(&len), 8);
    f << text;
    f << std::string(off, '\x38');  // 0x38: 1.0 in E4M3; 0x38383838 as f32 ~ 4.4e-5
}

}  // namespace

TEST(SafetensorsFp8, EveryCodeDecodesAsTorchDoes) {
    const SafetensorsSource src(golden);
    EXPECT_EQ(src.stored_type("w_all.weight"), DType::dtype_f32);
    expect_same(src.read_f32("w_all.weight"), src.read_f32("w_all.reference"), "w_all");
    EXPECT_EQ(fp8_e4m3_to_f32(0x7e), 448.f);
    EXPECT_EQ(fp8_e4m3_to_f32(0x01), std::ldexp(1.f, -9));
    EXPECT_TRUE(std::isnan(fp8_e4m3_to_f32(0xff)));
}

TEST(SafetensorsFp8, BlockScalesApplyPer128x128Block) {
    const SafetensorsSource src(golden);
    // The scales belong to their weight: listed tensors are the weights and the references only.
    for (const TensorInfo& t : src.tensors()) EXPECT_EQ(t.name.find("_scale_inv"), std::string::npos) << t.name;
    EXPECT_EQ(src.tensors().size(), 4u);
    const std::vector<float> want = src.read_f32("w_blocks.reference");
    expect_same(src.read_f32("w_blocks.weight"), want, "w_blocks");
    // Row reads (tensor-parallel slices and the loader's raw rows) give the same values.
    expect_same(src.read_rows_f32("w_blocks.weight", 127, 3),
                std::vector<float>(want.begin() + 127 * 260, want.begin() + 130 * 260), "rows 127..129");
    const std::vector<uint8_t> raw = src.read_rows_raw("w_blocks.weight", 128, 2);
    std::vector<float> raw_f(raw.size() / 4);
    std::memcpy(raw_f.data(), raw.data(), raw.size());
    expect_same(raw_f, std::vector<float>(want.begin() + 128 * 260, want.end()), "raw rows 128..129");
}

TEST(SafetensorsFp8, MissingOrMisshapenScaleIsAnErrorNamingIt) {
    const std::string dir = test::temp_dir();
    write_safetensors(dir + "/none.safetensors", 130, 260, {});
    test::expect_has(test::error_of([&] { SafetensorsSource(dir + "/none.safetensors").read_f32("w.weight"); }),
                     {"'w.weight'", "F8_E4M3 [130, 260]", "without a block-scale tensor 'w.weight_scale_inv'"});
    write_safetensors(dir + "/bad.safetensors", 130, 260, {{"w.weight_scale_inv", {1, 3}}});
    test::expect_has(test::error_of([&] { SafetensorsSource(dir + "/bad.safetensors").read_f32("w.weight"); }),
                     {"'w.weight_scale_inv'", "has shape [1, 3]", "need [2, 3]"});
    write_safetensors(dir + "/ok.safetensors", 130, 260, {{"w.weight_scale_inv", {2, 3}}});
    const std::vector<float> v = SafetensorsSource(dir + "/ok.safetensors").read_f32("w.weight");
    EXPECT_EQ(v.size(), 130u * 260u);
}
