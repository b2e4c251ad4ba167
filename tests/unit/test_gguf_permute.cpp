// Undoing llama.cpp's Q/K row permutation for llama-arch GGUF: against transformers' own
// un-permute (golden hashes), against the forward formula on every layer, and qwen2 untouched.
#include <gtest/gtest.h>

#include <bit>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "engine/core/error.h"
#include "io/gguf_model.h"
#include "test_support.h"

using namespace gridlm;
using nlohmann::json;

namespace {

uint64_t fnv1a64(const std::vector<float>& v) {
    uint64_t h = 0xcbf29ce484222325ull;
    const auto* p = reinterpret_cast<const uint8_t*>(v.data());
    for (size_t i = 0; i < v.size() * sizeof(float); ++i) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

// llama.cpp's converter direction, HF -> GGUF: GGUF row h*hd + 2i + r holds HF row
// h*hd + r*hd/2 + i.
std::vector<float> permute_forward(const std::vector<float>& hf, int64_t rows, int64_t row_len, int64_t n_heads) {
    std::vector<float> out(hf.size());
    const int64_t hd = rows / n_heads;
    for (int64_t h = 0; h < n_heads; ++h)
        for (int64_t i = 0; i < hd / 2; ++i)
            for (int64_t r = 0; r < 2; ++r)
                std::memcpy(&out[(h * hd + 2 * i + r) * row_len], &hf[(h * hd + r * hd / 2 + i) * row_len],
                            row_len * sizeof(float));
    return out;
}

bool bit_equal(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

TEST(GgufPermute, SmallExample) {
    // 2 heads of 4 rows, 1 column: GGUF rows hold HF rows [0, 2, 1, 3 | 4, 6, 5, 7].
    std::vector<float> v = {0, 2, 1, 3, 4, 6, 5, 7};
    gguf_unpermute_rows(v, 8, 1, 2, "test");
    EXPECT_EQ(v, (std::vector<float>{0, 1, 2, 3, 4, 5, 6, 7}));

    std::vector<float> bad(6 * 2);
    EXPECT_THROW(gguf_unpermute_rows(bad, 6, 2, 4, "test"), Error);  // 6 rows, 4 heads
    EXPECT_THROW(gguf_unpermute_rows(bad, 6, 2, 2, "test"), Error);  // heads of 3 rows (odd)
}

// HF-order tensors from an independent source: the synthetic file's Q/K were written from
// known HF matrices, SmolLM2's were un-permuted by transformers' GGUF loader code.
TEST(GgufPermute, MatchesReferenceHfOrder) {
    const json golden = json::parse(test::read_file(test::golden_path("dequant.json")));
    std::map<std::string, std::unique_ptr<GgufTensorSource>> sources;
    for (const json& e : golden.at("hf_order")) {
        const std::string file = e.at("file"), name = e.at("tensor");
        auto& src = sources[file];
        if (!src) {
            const std::string path = file == "gguf_synthetic.gguf" ? test::golden_path(file) : test::model_path(file);
            src = std::make_unique<GgufTensorSource>(std::make_shared<GgufFile>(path));
        }
        const std::vector<float> got = src->read_f32(name);
        ASSERT_EQ(got.size(), e.at("n").get<size_t>()) << name;
        const auto& first = e.at("first");
        for (size_t i = 0; i < first.size(); ++i) {
            ASSERT_EQ(std::bit_cast<uint32_t>(got[i]), (uint32_t)std::stoul(first[i].get<std::string>(), nullptr, 16))
                << file << ":" << name << " element " << i;
        }
        char hash[17];
        std::snprintf(hash, sizeof hash, "%016llx", (unsigned long long)fnv1a64(got));
        EXPECT_EQ(hash, e.at("fnv1a64").get<std::string>()) << file << ":" << name;
        // And the raw read is not already in HF order (the permutation is not the identity).
        EXPECT_FALSE(bit_equal(src->read_f32_raw(name), got)) << name;
    }
}

// Every layer of the llama file: permuting the HF-order result forward gives back the raw GGUF
// rows exactly; every other tensor is untouched.
TEST(GgufPermute, SmolLM2RoundTripEveryLayer) {
    GgufTensorSource src(std::make_shared<GgufFile>(test::model_path(test::smollm2_gguf)));
    const int64_t n_head = 9, n_head_kv = 3;
    int n_qk = 0;
    for (const TensorInfo& t : src.tensors()) {
        const bool is_q = t.name.find("self_attn.q_proj") != std::string::npos;
        const bool is_k = t.name.find("self_attn.k_proj") != std::string::npos;
        const std::vector<float> hf = src.read_f32(t.name);
        const std::vector<float> raw = src.read_f32_raw(t.name);
        if (is_q || is_k) {
            ++n_qk;
            EXPECT_EQ(t.shape[0], is_q ? 576 : 192) << t.name;
            const int64_t row_len = t.shape[1];
            EXPECT_TRUE(bit_equal(permute_forward(hf, t.shape[0], row_len, is_q ? n_head : n_head_kv), raw)) << t.name;
            EXPECT_FALSE(bit_equal(hf, raw)) << t.name;
        } else if (t.numel() < (1 << 22)) {  // the 28M-element embedding adds nothing here
            EXPECT_TRUE(bit_equal(hf, raw)) << t.name;
        }
    }
    EXPECT_EQ(n_qk, 60);
}

TEST(GgufPermute, Qwen2TensorsUntouched) {
    GgufTensorSource src(std::make_shared<GgufFile>(test::model_path(test::qwen_gguf)));
    int n_checked = 0;
    for (const TensorInfo& t : src.tensors()) {
        if (t.name.find("self_attn.q_proj") == std::string::npos &&
            t.name.find("self_attn.k_proj") == std::string::npos) {
            continue;
        }
        EXPECT_TRUE(bit_equal(src.read_f32(t.name), src.read_f32_raw(t.name))) << t.name;
        ++n_checked;
    }
    EXPECT_EQ(n_checked, 24 * 4);  // q/k weight and bias per layer
}
