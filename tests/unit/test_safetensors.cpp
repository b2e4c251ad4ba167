// Safetensors reader and HF model directories: the tiny Qwen2 checkpoint (single f32 file and
// sharded bf16), its config, HF -> HDF5 conversion, and malformed files rejected with clear errors.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

#include "engine/core/error.h"
#include "io/h5_checkpoint.h"
#include "io/hf_checkpoint.h"
#include "io/safetensors.h"
#include "test_support.h"

namespace gridlm {
namespace {

namespace fs = std::filesystem;
using test::error_of;
using test::expect_has;

const std::string tiny_dir = test::golden_path("tiny-qwen2-hf");
const std::string sharded_dir = test::golden_path("tiny-qwen2-hf-sharded-bf16");

// A safetensors file from a header text and data bytes; header_len overrides the length field.
std::string write_st(const std::string& path, const std::string& header, const std::string& data,
                     int64_t header_len = -1) {
    const uint64_t len = header_len >= 0 ? (uint64_t)header_len : header.size();
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(&len), 8);
    out << header << data;
    return path;
}

TEST(Safetensors, TinyDirectoryLoads) {
    const SafetensorsSource src(tiny_dir);
    ASSERT_EQ(src.tensors().size(), 27u);  // embed + 2 x 12 per layer + norm + lm_head
    ASSERT_EQ(src.files().size(), 1u);
    std::map<std::string, std::vector<int64_t>> shapes;
    for (const TensorInfo& t : src.tensors()) {
        EXPECT_EQ(t.source_type, "F32");
        EXPECT_EQ(t.source_bytes, (uint64_t)t.numel() * 4);
        shapes[t.name] = t.shape;
    }
    EXPECT_EQ(shapes["model.embed_tokens.weight"], (std::vector<int64_t>{512, 64}));
    EXPECT_EQ(shapes["model.layers.1.self_attn.k_proj.weight"], (std::vector<int64_t>{32, 64}));
    EXPECT_EQ(shapes["model.layers.0.self_attn.v_proj.bias"], (std::vector<int64_t>{32}));
    EXPECT_EQ(shapes["model.layers.0.mlp.down_proj.weight"], (std::vector<int64_t>{64, 128}));
    EXPECT_EQ(shapes["lm_head.weight"], (std::vector<int64_t>{512, 64}));
    const std::vector<float> norm = src.read_f32("model.norm.weight");
    ASSERT_EQ(norm.size(), 64u);
    for (float x : norm) EXPECT_TRUE(x > 0.5f && x < 1.5f) << x;  // initialised near 1
}

TEST(Safetensors, TinyConfig) {
    const HfCheckpoint hf(tiny_dir);
    const ModelConfig& c = hf.config();
    EXPECT_EQ(c.arch, "qwen2");
    EXPECT_EQ(c.n_vocab, 512);
    EXPECT_EQ(c.n_embd, 64);
    EXPECT_EQ(c.n_layer, 2);
    EXPECT_EQ(c.n_head, 4);
    EXPECT_EQ(c.n_head_kv, 2);
    EXPECT_EQ(c.head_dim, 16);
    EXPECT_EQ(c.n_ff, 128);
    EXPECT_EQ(c.n_ctx_train, 4096);
    EXPECT_EQ(c.rope_theta, 1e6);
    EXPECT_EQ(c.rms_eps, 1e-6);
    EXPECT_FALSE(c.tied_embeddings);
    EXPECT_TRUE(c.attn_bias);
    EXPECT_EQ(hf.tensors().size(), 27u);
}

TEST(Safetensors, ShardedBf16EqualsRoundedF32) {
    const SafetensorsSource f32(tiny_dir), bf16(sharded_dir);
    ASSERT_EQ(bf16.files().size(), 2u);
    ASSERT_EQ(bf16.tensors().size(), f32.tensors().size());
    for (const TensorInfo& t : bf16.tensors()) {
        EXPECT_EQ(t.source_type, "BF16");
        const std::vector<float> a = f32.read_f32(t.name), b = bf16.read_f32(t.name);
        ASSERT_EQ(a.size(), b.size()) << t.name;
        for (size_t i = 0; i < a.size(); ++i)
            ASSERT_EQ(b[i], bf16_to_f32(f32_to_bf16(a[i]))) << t.name << "[" << i << "]";
    }
}

TEST(Safetensors, HfToH5ConversionKeepsValues) {
    const std::string dir = test::temp_dir();
    const HfCheckpoint hf(tiny_dir);
    write_h5_checkpoint(dir + "/tiny.h5", hf.config(), hf.tokenizer(), &hf, DType::dtype_f32);
    const H5Checkpoint ck(dir + "/tiny.h5");
    EXPECT_EQ(ck.tokenizer().tokens, hf.tokenizer().tokens);
    for (const TensorInfo& t : hf.tensors()) {
        const std::vector<float> a = hf.read_f32(t.name), b = ck.read_f32(t.name);
        ASSERT_EQ(std::memcmp(a.data(), b.data(), a.size() * 4), 0) << t.name;
    }
    // The sharded bf16 copy stored as bf16 keeps its exact bits.
    const HfCheckpoint sharded(sharded_dir);
    write_h5_checkpoint(dir + "/tiny-bf16.h5", sharded.config(), sharded.tokenizer(), &sharded, DType::dtype_bf16);
    const H5Checkpoint ck16(dir + "/tiny-bf16.h5");
    for (const TensorInfo& t : sharded.tensors()) {
        EXPECT_EQ(ck16.origin_type(t.name), "BF16");
        EXPECT_EQ(ck16.read_f32(t.name), sharded.read_f32(t.name)) << t.name;
    }
}

TEST(Safetensors, BadFilesAreClearErrors) {
    const std::string dir = test::temp_dir();
    const std::string data(32, '\0');  // room for [2, 4] f32
    const std::string good =
        R"({"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2,4],"data_offsets":[0,32]}})";
    EXPECT_EQ(SafetensorsFile(write_st(dir + "/good.safetensors", good, data)).tensors().size(), 1u);

    auto err_for = [&](const std::string& name, const std::string& header, const std::string& bytes, int64_t len = -1) {
        const std::string path = write_st(dir + "/" + name, header, bytes, len);
        const std::string e = error_of([&] { SafetensorsFile f(path); });
        EXPECT_NE(e.find(path), std::string::npos) << "file not named: " << e;
        return e;
    };
    expect_has(err_for("len_lies.st", good, data, (int64_t)(good.size() + data.size() + 1)), {"exceeds the file size"});
    expect_has(err_for("len_absurd.st", good, data, int64_t(1) << 62), {"absurd"});
    expect_has(err_for("bad_json.st", R"({"w": {"dtype": "F32", )", data), {"not valid JSON"});
    expect_has(err_for("not_object.st", "[1, 2, 3]", data), {"not a JSON object"});
    expect_has(err_for("past_end.st", R"({"w":{"dtype":"F32","shape":[2,4],"data_offsets":[16,48]}})", data),
               {"'w'", "outside the data section"});
    expect_has(err_for("size.st", R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,32]}})", data),
               {"'w'", "32 bytes", "needs 24"});
    expect_has(err_for("overlap.st",
                       R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                       R"("b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})",
                       data),
               {"'a'", "'b'", "overlap"});
    expect_has(err_for("dtype.st", R"({"w":{"dtype":"I8","shape":[32],"data_offsets":[0,32]}})", data),
               {"'w'", "I8", "not supported"});
    expect_has(err_for("negative.st", R"({"w":{"dtype":"F32","shape":[-2,4],"data_offsets":[0,32]}})", data),
               {"'w'", "non-negative"});
    expect_has(err_for("overflow.st",
                       R"({"w":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,32]}})", data),
               {"'w'", "more elements"});
    expect_has(err_for("no_offsets.st", R"({"w":{"dtype":"F32","shape":[2,4]}})", data), {"'w'", "data_offsets"});
    {
        std::ofstream(dir + "/short.st") << "abc";
        expect_has(error_of([&] { SafetensorsFile f(dir + "/short.st"); }), {dir + "/short.st", "too short"});
    }
    expect_has(error_of([&] { SafetensorsFile f(dir + "/missing.st"); }), {dir + "/missing.st"});
}

// A tensor with a zero dimension is valid and reads as no values (found by fuzz_safetensors:
// the f32 path handed memcpy the null data() of the empty result, undefined behaviour that
// UBSan reports in the sanitizer build). The seed tests/fuzz/corpus/fuzz_safetensors/small_*
// holds such a tensor too.
TEST(Safetensors, EmptyTensorsReadAsNoValues) {
    const std::string dir = test::temp_dir();
    const std::string path = write_st(dir + "/empty.safetensors",
                                      R"({"a":{"dtype":"F32","shape":[0,4],"data_offsets":[0,0]},)"
                                      R"("b":{"dtype":"BF16","shape":[3,0],"data_offsets":[0,0]},)"
                                      R"("c":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
                                      std::string(4, '\0'));
    const SafetensorsFile f(path);
    ASSERT_EQ(f.tensors().size(), 3u);
    for (const char* name : {"a", "b"}) {
        ASSERT_NE(f.find(name), nullptr) << name;
        EXPECT_TRUE(f.read_f32(*f.find(name)).empty()) << name;
    }
    EXPECT_EQ(f.read_f32(*f.find("c")), std::vector<float>{0.0f});
    const SafetensorsSource src(path);
    EXPECT_TRUE(src.read_f32("a").empty());
    EXPECT_TRUE(src.read_f32("b").empty());
}

TEST(Safetensors, BadShardIndexIsAClearError) {
    const std::string dir = test::temp_dir();
    write_st(dir + "/shard-1.safetensors", R"({"w":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}})",
             std::string("\0\x3c\0\x40", 4));
    std::ofstream(dir + "/model.safetensors.index.json")
        << R"({"weight_map": {"w": "shard-1.safetensors", "v": "shard-1.safetensors"}})";
    expect_has(error_of([&] { SafetensorsSource s(dir); }),
               {"model.safetensors.index.json", "'v'", "shard-1.safetensors"});
    std::ofstream(dir + "/model.safetensors.index.json") << R"({"weight_map": {"w": "../etc/passwd"}})";
    expect_has(error_of([&] { SafetensorsSource s(dir); }), {"not a plain file name"});
    std::ofstream(dir + "/model.safetensors.index.json") << R"({"weight_map": {"w": "shard-1.safetensors"}})";
    const SafetensorsSource ok(dir);
    EXPECT_EQ(ok.read_f32("w"), (std::vector<float>{1.0f, 2.0f}));  // f16 0x3c00 = 1, 0x4000 = 2
    expect_has(error_of([&] { ok.read_f32("nope"); }), {"'nope'", dir});
    const std::string empty = test::temp_dir();
    expect_has(error_of([&] { SafetensorsSource s(empty); }), {empty, "model.safetensors"});
}

TEST(Safetensors, BadConfigIsAClearError) {
    const std::string dir = test::temp_dir();
    for (const char* f : {"tokenizer.json", "tokenizer_config.json", "model.safetensors"}) {
        fs::copy_file(tiny_dir + "/" + f, dir + "/" + f);
    }
    auto config_error = [&](const std::string& json) {
        std::ofstream(dir + "/config.json") << json;
        return error_of([&] { HfCheckpoint hf(dir); });
    };
    const std::string base = R"("vocab_size": 512, "num_hidden_layers": 2, "num_attention_heads": 4,
        "intermediate_size": 128, "max_position_embeddings": 4096, "rms_norm_eps": 1e-6)";
    expect_has(config_error(R"({"architectures": ["Qwen2ForCausalLM"], )" + base + "}"),
               {dir + "/config.json", "'hidden_size'"});
    expect_has(config_error(R"({"architectures": ["MistralForCausalLM"], "hidden_size": 64, )" + base + "}"),
               {dir + "/config.json", "MistralForCausalLM"});
    expect_has(config_error(R"({"hidden_size": 64, )" + base + "}"), {"'architectures'"});
    expect_has(config_error(R"({"architectures": ["LlamaForCausalLM"], "hidden_size": "64", )" + base + "}"),
               {"'hidden_size'", "integer"});
    expect_has(config_error(R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64, )" + base +
                            R"(, "rope_scaling": {"rope_type": "llama3", "factor": 8.0}})"),
               {"rope_scaling", "llama3"});
    expect_has(config_error("{not json"), {dir + "/config.json", "not valid JSON"});
    expect_has(error_of([&] { HfCheckpoint hf(dir + "/missing"); }), {dir + "/missing", "no such directory"});
    // transformers 5 spells rope_theta inside rope_parameters.
    std::ofstream(dir + "/config.json") << R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64, )" + base +
                                               R"(, "rope_parameters": {"rope_type": "default", "rope_theta": 5e5}})";
    const ModelConfig c = hf_model_config(dir + "/config.json");
    EXPECT_EQ(c.arch, "llama");
    EXPECT_FALSE(c.attn_bias);
    EXPECT_EQ(c.rope_theta, 5e5);
    EXPECT_EQ(c.n_head_kv, 4);
    EXPECT_EQ(c.head_dim, 16);
}

}  // namespace
}  // namespace gridlm
