// Helpers shared by the unit tests: where the model cache and golden files are.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <initializer_list>
#include <random>
#include <ctime>
#include <string>
#include <vector>

#include "engine/core/error.h"
#include "engine/core/tokenizer_data.h"

namespace gridlm::test {

// n normally distributed values (mean 0, standard deviation scale) from a seeded generator.
inline std::vector<float> randn(size_t n, uint32_t seed, float scale = 1.0f) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> d(0.f, scale);
    std::vector<float> v(n);
    for (float& x : v) x = d(rng);
    return v;
}

// The model cache: $GRIDLM_MODELS, else the directory configured at build time (<repo>/models).
std::string models_dir();
// Full path of a model file in the cache; fails the calling test (via ADD_FAILURE-free throw)
// with a message telling how to fetch it when it is missing.
std::string model_path(const std::string& file);
// Tokenizer data of a GGUF in the model cache, read once per process (vocabulary only: the
// DeepSeek file is cut off after its header).
const TokenizerData& gguf_tokenizer(const std::string& file);
// Full path of a file under tests/reference/golden.
std::string golden_path(const std::string& file);
// Whole file as bytes.
std::string read_file(const std::string& path);
// The time strftime_now() gives in the chat template goldens (tests/reference/
// make_template_golden.py, make_jinja_cases_golden.py): 2026-01-15 10:30:00, local time.
std::time_t template_golden_now();
// A fresh temporary directory, unique per call; removed with its contents when the test exits.
std::string temp_dir();

// Runs fn and returns the gridlm::Error message it throws; fails the calling test when nothing
// is thrown (another exception type propagates and fails it too).
template <typename F>
std::string error_of(F&& fn) {
    try {
        fn();
    } catch (const Error& e) {
        return e.what();
    }
    ADD_FAILURE() << "expected a gridlm::Error";
    return "(no error)";
}

// Every part must occur in msg.
inline void expect_has(const std::string& msg, std::initializer_list<std::string> parts) {
    for (const std::string& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
}

inline const char* smollm2_gguf = "SmolLM2-135M-Instruct.Q4_1.gguf";
inline const char* qwen_gguf = "Qwen2.5-Coder-0.5B-Instruct.Q4_K_M.gguf";
inline const char* r1_gguf = "DeepSeek-R1-Distill-Qwen-7B.head.gguf";

}  // namespace gridlm::test
