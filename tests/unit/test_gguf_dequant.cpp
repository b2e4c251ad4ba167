// Dequantisation against the gguf package's reference (golden/dequant*.json, made by
// tests/reference/make_dequant_golden.py): bit-equal first values and whole-tensor hashes,
// checksums of every tensor of both model files, and exhaustive f16 / bf16 decoding.
#include <gtest/gtest.h>

#include <bit>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <set>
#include <nlohmann/json.hpp>

#include "engine/core/dtype.h"
#include "engine/core/error.h"
#include "io/gguf.h"
#include "io/gguf_quant.h"
#include "test_support.h"

using namespace gridlm;
using nlohmann::json;

namespace {

uint64_t fnv1a64(const std::vector<float>& v) {
    uint64_t h = 0xcbf29ce484222325ull;
    const auto* p = reinterpret_cast<const uint8_t*>(v.data());  // little-endian host
    for (size_t i = 0; i < v.size() * sizeof(float); ++i) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

std::string hex64(uint64_t x) {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", (unsigned long long)x);
    return buf;
}

std::string file_path(const std::string& file) {
    return file == "gguf_synthetic.gguf" ? test::golden_path(file) : test::model_path(file);
}

std::vector<float> dequant(const GgufTensor& t) {
    std::vector<float> out((size_t)t.numel());
    dequantize(t.type, t.data, t.numel(), out.data());
    return out;
}

// Compares against a golden entry: first values bit for bit, then the whole-array hash.
void expect_matches(const std::vector<float>& got, const json& e, const std::string& what) {
    ASSERT_EQ(got.size(), e.at("n").get<size_t>()) << what;
    const auto& first = e.at("first");
    for (size_t i = 0; i < first.size(); ++i) {
        const uint32_t want = (uint32_t)std::stoul(first[i].get<std::string>(), nullptr, 16);
        const uint32_t have = std::bit_cast<uint32_t>(got[i]);
        if (want != have) {
            ADD_FAILURE() << what << ": element " << i << " is " << got[i] << " (0x" << std::hex << have
                          << "), reference 0x" << want;
            return;
        }
    }
    EXPECT_EQ(hex64(fnv1a64(got)), e.at("fnv1a64").get<std::string>()) << what;
}

const json& golden() {
    static const json j = json::parse(test::read_file(test::golden_path("dequant.json")));
    return j;
}

}  // namespace

TEST(GgufDequant, TypeTable) {
    struct Row {
        GgmlType t;
        const char* name;
        int64_t block, size;
        bool deq;
    };
    const Row rows[] = {
        {GgmlType::ggml_type_f32, "F32", 1, 4, true},
        {GgmlType::ggml_type_f16, "F16", 1, 2, true},
        {GgmlType::ggml_type_bf16, "BF16", 1, 2, true},
        {GgmlType::ggml_type_q4_0, "Q4_0", 32, 18, true},
        {GgmlType::ggml_type_q4_1, "Q4_1", 32, 20, true},
        {GgmlType::ggml_type_q5_0, "Q5_0", 32, 22, true},
        {GgmlType::ggml_type_q5_1, "Q5_1", 32, 24, true},
        {GgmlType::ggml_type_q8_0, "Q8_0", 32, 34, true},
        {GgmlType::ggml_type_q4_k, "Q4_K", 256, 144, true},
        {GgmlType::ggml_type_q5_k, "Q5_K", 256, 176, true},
        {GgmlType::ggml_type_q6_k, "Q6_K", 256, 210, true},
        {GgmlType::ggml_type_q2_k, "Q2_K", 256, 84, false},
        {GgmlType::ggml_type_iq4_xs, "IQ4_XS", 256, 136, false},
    };
    for (const Row& r : rows) {
        EXPECT_EQ(ggml_type_name(r.t), r.name);
        EXPECT_EQ(ggml_block_size(r.t), r.block) << r.name;
        EXPECT_EQ(ggml_type_size(r.t), r.size) << r.name;
        EXPECT_EQ(ggml_can_dequantize(r.t), r.deq) << r.name;
    }
    EXPECT_EQ(ggml_type_traits(4), nullptr);  // retired Q4_2
    EXPECT_EQ(ggml_type_traits(77), nullptr);
    EXPECT_EQ(ggml_n_bytes(GgmlType::ggml_type_q6_k, 512), 420u);
    float out[256];
    const uint8_t zeros[256] = {};
    EXPECT_THROW(dequantize(GgmlType::ggml_type_q2_k, zeros, 256, out), Error);
    EXPECT_THROW(dequantize(GgmlType::ggml_type_q4_0, zeros, 31, out), Error);
    EXPECT_THROW(ggml_n_bytes(GgmlType::ggml_type_q4_k, 100), Error);
}

// Every entry of dequant.json: the synthetic blocks (all supported types) and one or two real
// tensors per type found in the model files.
TEST(GgufDequant, GoldenTensorsBitExact) {
    std::map<std::string, std::unique_ptr<GgufFile>> files;
    std::set<std::string> types_seen;
    for (const json& e : golden().at("dequant")) {
        const std::string file = e.at("file"), name = e.at("tensor");
        auto& f = files[file];
        if (!f) f = std::make_unique<GgufFile>(file_path(file));
        const GgufTensor& t = f->tensor(name);
        EXPECT_EQ(ggml_type_name(t.type), e.at("type").get<std::string>()) << name;
        expect_matches(dequant(t), e, file + ":" + name);
        types_seen.insert(e.at("type").get<std::string>());
    }
    EXPECT_EQ(types_seen, (std::set<std::string>{"F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q4_K",
                                                 "Q5_K", "Q6_K"}));
}

// Every tensor of both complete model files against the reference's checksums; also times the
// whole-file conversion (reported, not asserted).
TEST(GgufDequant, WholeModelFilesMatchChecksums) {
    const json sums = json::parse(test::read_file(test::golden_path("dequant_checksums.json")));
    for (const char* file : {test::smollm2_gguf, test::qwen_gguf}) {
        GgufFile f(test::model_path(file));
        const json& per_tensor = sums.at(file);
        ASSERT_EQ(per_tensor.size(), f.tensors().size());
        double seconds = 0;
        uint64_t n_total = 0;
        std::vector<float> buf;
        for (const GgufTensor& t : f.tensors()) {
            const json& want = per_tensor.at(t.name);
            ASSERT_EQ(want[1].get<int64_t>(), t.numel()) << t.name;
            buf.resize((size_t)t.numel());
            const auto t0 = std::chrono::steady_clock::now();
            dequantize(t.type, t.data, t.numel(), buf.data());
            seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            n_total += (uint64_t)t.numel();
            uint64_t sum = 0, wsum = 0;
            for (size_t i = 0; i < buf.size(); ++i) {
                const uint64_t bits = std::bit_cast<uint32_t>(buf[i]);
                sum += bits;
                wsum += bits * (uint64_t)(i + 1);
            }
            EXPECT_EQ(ggml_type_name(t.type), want[0].get<std::string>()) << t.name;
            EXPECT_EQ(hex64(sum), want[2].get<std::string>()) << file << ":" << t.name;
            EXPECT_EQ(hex64(wsum), want[3].get<std::string>()) << file << ":" << t.name;
        }
        std::printf("[   info   ] %s: dequantised %llu elements in %.2f s (%.0f M elements/s)\n", file,
                    (unsigned long long)n_total, seconds, n_total / seconds / 1e6);
        ::testing::Test::RecordProperty(std::string("seconds_") + file, std::to_string(seconds));
    }
}

// All 65536 half values through f16_to_f32 and through dequantize(F16), against a decode built
// from ldexp (no bit tricks shared with the code under test).
TEST(GgufDequant, F16Exhaustive) {
    std::vector<uint16_t> all(65536);
    for (uint32_t i = 0; i < 65536; ++i) all[i] = (uint16_t)i;
    std::vector<float> via_dequant(65536);
    dequantize(GgmlType::ggml_type_f16, all.data(), 65536, via_dequant.data());
    for (uint32_t h = 0; h < 65536; ++h) {
        const int sign = h >> 15, exp = (h >> 10) & 31, mant = h & 1023;
        const float got = f16_to_f32((uint16_t)h);
        EXPECT_EQ(std::bit_cast<uint32_t>(got), std::bit_cast<uint32_t>(via_dequant[h])) << h;
        if (exp == 31 && mant != 0) {
            // NaN: stays NaN, keeps its sign and payload (shifted into the f32 mantissa).
            ASSERT_TRUE(std::isnan(got)) << h;
            ASSERT_EQ(std::bit_cast<uint32_t>(got), ((uint32_t)sign << 31) | 0x7f800000u | ((uint32_t)mant << 13)) << h;
            continue;
        }
        double ref = exp == 31  ? INFINITY
                     : exp == 0 ? std::ldexp((double)mant, -24)
                                : std::ldexp((double)(1024 + mant), exp - 25);
        if (sign) ref = -ref;
        ASSERT_EQ(std::bit_cast<uint32_t>(got), std::bit_cast<uint32_t>((float)ref)) << "half 0x" << std::hex << h;
    }
}

TEST(GgufDequant, Bf16Exhaustive) {
    std::vector<uint16_t> all(65536);
    for (uint32_t i = 0; i < 65536; ++i) all[i] = (uint16_t)i;
    std::vector<float> got(65536);
    dequantize(GgmlType::ggml_type_bf16, all.data(), 65536, got.data());
    for (uint32_t b = 0; b < 65536; ++b) {
        const int sign = b >> 15, exp = (b >> 7) & 255, mant = b & 127;
        if (exp == 255 && mant != 0) {
            ASSERT_TRUE(std::isnan(got[b])) << b;
            continue;
        }
        double ref = exp == 255 ? INFINITY
                     : exp == 0 ? std::ldexp((double)mant, -133)
                                : std::ldexp((double)(128 + mant), exp - 134);
        if (sign) ref = -ref;
        ASSERT_EQ(std::bit_cast<uint32_t>(got[b]), std::bit_cast<uint32_t>((float)ref)) << "bf16 0x" << std::hex << b;
    }
}
