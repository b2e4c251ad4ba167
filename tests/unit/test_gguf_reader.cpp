// GGUF metadata, tensor tables, model config and tokenizer data of the three real model files
// (published model facts and the reference script's own header parse) and of the
// synthetic file that holds every metadata value type.
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>

#include "engine/core/error.h"
#include "io/gguf.h"
#include "io/gguf_model.h"
#include "test_support.h"

using namespace gridlm;
using gridlm::test::error_of;
using nlohmann::json;

namespace {

const json& file_facts(const std::string& file) {
    static const json golden = json::parse(test::read_file(test::golden_path("dequant.json")));
    return golden.at("files").at(file);
}

// The reference parse's facts that every file shares: counts, data offset, first/last tensor.
void expect_table_facts(const GgufFile& f, const std::string& name) {
    const json& facts = file_facts(name);
    EXPECT_EQ(f.version(), 3u);
    EXPECT_EQ(f.file_size(), facts.at("file_size").get<uint64_t>());
    EXPECT_EQ(f.kvs().size(), facts.at("kv_count").get<size_t>());
    EXPECT_EQ(f.tensors().size(), facts.at("tensor_count").get<size_t>());
    EXPECT_EQ(f.data_offset(), facts.at("data_offset").get<uint64_t>());
    EXPECT_EQ(f.alignment(), 32u);
    for (const char* which : {"first_tensor", "last_tensor"}) {
        const json& jt = facts.at(which);
        const GgufTensor& t = which[0] == 'f' ? f.tensors().front() : f.tensors().back();
        EXPECT_EQ(t.name, jt.at("name").get<std::string>());
        EXPECT_EQ(t.dims, jt.at("dims").get<std::vector<int64_t>>());
        EXPECT_EQ(ggml_type_name(t.type), jt.at("type").get<std::string>());
        EXPECT_EQ(t.offset, jt.at("offset").get<uint64_t>());
    }
}

void expect_tokenizer_facts(const TokenizerData& t, const std::string& name) {
    const json& facts = file_facts(name);
    EXPECT_EQ(t.model, "gpt2");
    EXPECT_EQ(t.pre, facts.at("pre").get<std::string>());
    EXPECT_EQ(t.tokens.size(), facts.at("n_tokens").get<size_t>());
    EXPECT_EQ(t.token_types.size(), t.tokens.size());
    EXPECT_EQ(t.merges.size(), facts.at("n_merges").get<size_t>());
    EXPECT_EQ(t.bos_id, facts.at("bos").get<int32_t>());
    EXPECT_EQ(t.eos_id, facts.at("eos").get<int32_t>());
    EXPECT_EQ(t.pad_id, facts.at("pad").get<int32_t>());
    EXPECT_EQ(t.add_bos, facts.at("add_bos").get<bool>());
    EXPECT_EQ(t.chat_template.size(), facts.at("chat_template_bytes").get<size_t>());
    ASSERT_GT(t.tokens.size(), 1000u);
    EXPECT_EQ(t.tokens[1000], facts.at("token_1000").get<std::string>());
    EXPECT_EQ(t.merges[0], facts.at("merge_0").get<std::string>());
}

}  // namespace

TEST(GgufReader, SmolLM2) {
    const std::string name = test::smollm2_gguf;
    GgufFile f(test::model_path(name));
    expect_table_facts(f, name);
    EXPECT_EQ(f.get_string("general.architecture"), "llama");
    EXPECT_EQ(f.get_u32("general.quantization_version"), 2u);

    const ModelConfig c = gguf_model_config(f);
    EXPECT_EQ(c.arch, "llama");
    EXPECT_EQ(c.n_vocab, 49152);
    EXPECT_EQ(c.n_embd, 576);
    EXPECT_EQ(c.n_layer, 30);
    EXPECT_EQ(c.n_head, 9);
    EXPECT_EQ(c.n_head_kv, 3);
    EXPECT_EQ(c.head_dim, 64);
    EXPECT_EQ(c.n_ff, 1536);
    EXPECT_EQ(c.n_ctx_train, 8192);
    EXPECT_EQ(c.rope_theta, 100000.0);
    EXPECT_EQ(c.rms_eps, 1e-5);
    EXPECT_TRUE(c.tied_embeddings);
    EXPECT_FALSE(c.attn_bias);

    const TokenizerData t = gguf_tokenizer_data(f);
    expect_tokenizer_facts(t, name);
    EXPECT_NE(t.chat_template.find("<|im_start|>"), std::string::npos);
    EXPECT_EQ(t.token_types[t.bos_id], (int32_t)TokenType::token_type_control);

    const GgufTensor& emb = f.tensor("token_embd.weight");
    EXPECT_EQ(emb.type, GgmlType::ggml_type_q8_0);
    EXPECT_EQ(emb.n_bytes, 49152u * 576 / 32 * 34);
    EXPECT_NE(emb.data, nullptr);
    EXPECT_EQ(f.find_tensor("output.weight"), nullptr);
}

TEST(GgufReader, Qwen25Coder) {
    const std::string name = test::qwen_gguf;
    GgufFile f(test::model_path(name));
    expect_table_facts(f, name);

    const ModelConfig c = gguf_model_config(f);
    EXPECT_EQ(c.arch, "qwen2");
    EXPECT_EQ(c.n_vocab, 151936);
    EXPECT_EQ(c.n_embd, 896);
    EXPECT_EQ(c.n_layer, 24);
    EXPECT_EQ(c.n_head, 14);
    EXPECT_EQ(c.n_head_kv, 2);
    EXPECT_EQ(c.head_dim, 64);
    EXPECT_EQ(c.n_ff, 4864);
    EXPECT_EQ(c.n_ctx_train, 32768);
    EXPECT_EQ(c.rope_theta, 1e6);
    EXPECT_EQ(c.rms_eps, 1e-6);
    EXPECT_FALSE(c.tied_embeddings);
    EXPECT_TRUE(c.attn_bias);

    const TokenizerData t = gguf_tokenizer_data(f);
    expect_tokenizer_facts(t, name);
    EXPECT_FALSE(t.add_bos);
    EXPECT_NE(t.chat_template.find("<|im_start|>"), std::string::npos);

    // The Q4_K_M mix: every one of these types occurs.
    std::map<std::string, int> types;
    for (const GgufTensor& ten : f.tensors()) types[std::string(ggml_type_name(ten.type))]++;
    EXPECT_EQ(types,
              (std::map<std::string, int>{{"F32", 121}, {"Q4_K", 12}, {"Q5_0", 133}, {"Q6_K", 12}, {"Q8_0", 13}}));
}

TEST(GgufReader, DeepSeekHeadOnlyFileIsReadableWithoutTensorData) {
    const std::string name = test::r1_gguf;
    const std::string path = test::model_path(name);
    GgufFile f(path, /*need_tensor_data=*/false);
    expect_table_facts(f, name);

    const ModelConfig c = gguf_model_config(f);
    EXPECT_EQ(c.arch, "qwen2");
    EXPECT_EQ(c.n_vocab, 152064);
    EXPECT_EQ(c.n_embd, 3584);
    EXPECT_EQ(c.n_layer, 28);
    EXPECT_EQ(c.n_head, 28);
    EXPECT_EQ(c.n_head_kv, 4);
    EXPECT_EQ(c.head_dim, 128);
    EXPECT_EQ(c.n_ff, 18944);
    EXPECT_EQ(c.n_ctx_train, 131072);
    EXPECT_EQ(c.rope_theta, 1e4);
    EXPECT_EQ(c.rms_eps, 1e-6);
    EXPECT_FALSE(c.tied_embeddings);
    EXPECT_TRUE(c.attn_bias);

    const TokenizerData t = gguf_tokenizer_data(f);
    expect_tokenizer_facts(t, name);
    EXPECT_EQ(t.tokens.size(), 152064u);
    EXPECT_EQ(t.bos_id, 151646);
    EXPECT_EQ(t.eos_id, 151643);
    EXPECT_TRUE(t.add_bos);
    EXPECT_EQ(t.pre, "deepseek-r1-qwen");
    EXPECT_NE(t.chat_template.find("<\xEF\xBD\x9C"
                                   "Assistant\xEF\xBD\x9C>"),
              std::string::npos);  // <｜Assistant｜>

    // Every 7B tensor is listed, none has its data in the 100 MB head.
    const GgufTensor& q = f.tensor("blk.0.attn_q.weight");
    EXPECT_EQ(q.dims, (std::vector<int64_t>{3584, 3584}));
    EXPECT_EQ(f.tensor("blk.0.attn_k.weight").dims, (std::vector<int64_t>{3584, 512}));
    EXPECT_EQ(f.tensor("blk.27.ffn_down.weight").dims, (std::vector<int64_t>{18944, 3584}));
    EXPECT_EQ(q.data, nullptr);
    std::string msg = error_of([&] { f.tensor_data(q); });
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find("past the end of the file"), std::string::npos) << msg;

    GgufTensorSource src(std::make_shared<GgufFile>(path, false));
    EXPECT_EQ(src.tensors().size(), 339u);
    msg = error_of([&] { src.read_f32("model.layers.0.self_attn.q_proj.weight"); });
    EXPECT_NE(msg.find("blk.0.attn_q.weight"), std::string::npos) << msg;
    EXPECT_NE(msg.find("cut off"), std::string::npos) << msg;

    msg = error_of([&] { GgufFile full(path); });
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find("tensor #0 'output.weight'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("past the end of the file"), std::string::npos) << msg;
}

TEST(GgufReader, SyntheticEveryValueType) {
    const std::string path = test::golden_path("gguf_synthetic.gguf");
    GgufFile f(path);
    EXPECT_EQ(f.alignment(), 64u);
    EXPECT_EQ(f.data_offset() % 64, 0u);
    for (const GgufTensor& t : f.tensors()) EXPECT_EQ((f.data_offset() + t.offset) % 64, 0u) << t.name;

    EXPECT_EQ(f.get_u32("test.u8"), 200u);
    EXPECT_EQ(f.get_i32("test.i8"), -100);
    EXPECT_EQ(f.get_u32("test.u16"), 60000u);
    EXPECT_EQ(f.get_i32("test.i16"), -30000);
    EXPECT_EQ(f.get_u32("test.u32"), 4000000000u);
    EXPECT_EQ(f.get_i64("test.u32"), 4000000000);
    EXPECT_EQ(f.get_i32("test.i32"), -2000000000);
    EXPECT_EQ(f.get_f32("test.f32"), 1.5f);
    EXPECT_TRUE(f.get_bool("test.bool"));
    EXPECT_EQ(f.get_string("test.string"), "h\xC3\xA9llo \xE4\xB8\x96\xE7\x95\x8C");
    EXPECT_EQ(f.get_u64("test.u64"), (uint64_t(1) << 63) + 5);
    EXPECT_EQ(f.get_i64("test.i64"), -(int64_t(1) << 62));
    EXPECT_EQ(f.get_f64("test.f64"), 3.141592653589793);
    EXPECT_EQ(f.get_i32_array("test.array_i32"), (std::vector<int32_t>{1, -2, 3}));
    EXPECT_EQ(f.get_i32_array("test.array_u8"), (std::vector<int32_t>{1, 2, 255}));
    EXPECT_EQ(f.get_f32_array("test.array_f32"), (std::vector<float>{0.5f, -0.25f}));
    EXPECT_EQ(f.get_string_array("test.array_string"), (std::vector<std::string>{"x", "", "yz"}));
    EXPECT_EQ(f.get_array_size("test.array_nested"), 2u);
    EXPECT_EQ(f.describe("test.array_nested"), "[[1, 2], [3, 4, 5]]");
    EXPECT_EQ(f.describe("test.array_nested_string"), "[[\"a\"], [\"b\", \"c\"]]");
    EXPECT_EQ(f.describe("test.i8"), "-100");
    EXPECT_EQ(f.describe("test.array_string", 2), "[\"x\", \"\", ... (3)]");
    EXPECT_EQ(f.kv("test.array_nested").elem_type, GgufValueType::gguf_value_type_array);

    // Wrong type and out-of-range reads name the key and the problem.
    auto expect_error = [&](auto fn, const std::string& phrase) {
        const std::string msg = error_of(fn);
        EXPECT_NE(msg.find(path), std::string::npos) << msg;
        EXPECT_NE(msg.find(phrase), std::string::npos) << msg;
    };
    expect_error([&] { f.get_i32("test.u32"); }, "'test.u32': value 4000000000 does not fit in i32");
    expect_error([&] { f.get_u64("test.i8"); }, "value -100 does not fit in u64");
    expect_error([&] { f.get_i64("test.u64"); }, "does not fit in i64");
    expect_error([&] { f.get_u32("test.string"); }, "expected an integer, found string");
    expect_error([&] { f.get_string("test.u8"); }, "expected string, found u8");
    expect_error([&] { f.get_bool("test.u8"); }, "expected bool");
    expect_error([&] { f.get_f32("test.bool"); }, "expected f32 or f64");
    expect_error([&] { f.get_string_array("test.array_nested"); }, "expected an array of strings");
    expect_error([&] { f.get_i32_array("test.array_f32"); }, "expected an array of integers");
    expect_error([&] { f.get_u32("no.such.key"); }, "metadata key 'no.such.key' is missing");
    expect_error([&] { f.tensor("no.such.tensor"); }, "no tensor named 'no.such.tensor'");

    const ModelConfig c = gguf_model_config(f);
    EXPECT_EQ(c.n_embd, 16);
    EXPECT_EQ(c.head_dim, 8);  // no rope.dimension_count: n_embd / n_head
    EXPECT_EQ(c.n_vocab, 8);
    EXPECT_TRUE(c.tied_embeddings);

    const TokenizerData t = gguf_tokenizer_data(f);
    EXPECT_EQ(t.tokens, (std::vector<std::string>{"a", "b", "ab", "<s>"}));
    EXPECT_EQ(t.token_types, std::vector<int32_t>(4, (int32_t)TokenType::token_type_normal));  // absent: normal
    EXPECT_EQ(t.merges, std::vector<std::string>{"a b"});
    EXPECT_EQ(t.bos_id, 3);
    EXPECT_EQ(t.eos_id, -1);
    EXPECT_TRUE(t.add_bos);
    EXPECT_EQ(t.chat_template, "{{ messages }}");
}

TEST(GgufReader, TensorSourceNamesAndShapes) {
    auto file = std::make_shared<GgufFile>(test::model_path(test::qwen_gguf));
    GgufTensorSource src(file);
    ASSERT_EQ(src.tensors().size(), file->tensors().size());
    std::map<std::string, TensorInfo> by_name;
    for (const TensorInfo& t : src.tensors()) by_name[t.name] = t;
    auto shape = [&](const std::string& n) { return by_name.at(n).shape; };
    EXPECT_EQ(shape("model.embed_tokens.weight"), (std::vector<int64_t>{151936, 896}));
    EXPECT_EQ(shape("lm_head.weight"), (std::vector<int64_t>{151936, 896}));
    EXPECT_EQ(shape("model.norm.weight"), (std::vector<int64_t>{896}));
    EXPECT_EQ(shape("model.layers.0.self_attn.q_proj.weight"), (std::vector<int64_t>{896, 896}));
    EXPECT_EQ(shape("model.layers.0.self_attn.k_proj.weight"), (std::vector<int64_t>{128, 896}));
    EXPECT_EQ(shape("model.layers.0.self_attn.k_proj.bias"), (std::vector<int64_t>{128}));
    EXPECT_EQ(shape("model.layers.23.mlp.down_proj.weight"), (std::vector<int64_t>{896, 4864}));
    EXPECT_EQ(shape("model.layers.23.mlp.gate_proj.weight"), (std::vector<int64_t>{4864, 896}));
    EXPECT_EQ(by_name.at("model.embed_tokens.weight").source_type, "Q5_0");
    EXPECT_EQ(by_name.at("lm_head.weight").source_type, "Q8_0");
    EXPECT_EQ(by_name.at("lm_head.weight").source_bytes, 151936u * 896 / 32 * 34);
    // Every layer tensor has an HF name: 12 per layer + embed, norm, head.
    size_t hf_named = 0;
    for (const TensorInfo& t : src.tensors()) hf_named += t.name.starts_with("model.") || t.name == "lm_head.weight";
    EXPECT_EQ(hf_named, 24u * 12 + 3);
}

TEST(GgufReader, HfNameMapping) {
    const std::pair<const char*, const char*> cases[] = {
        {"token_embd.weight", "model.embed_tokens.weight"},
        {"output_norm.weight", "model.norm.weight"},
        {"output.weight", "lm_head.weight"},
        {"blk.0.attn_norm.weight", "model.layers.0.input_layernorm.weight"},
        {"blk.12.attn_q.weight", "model.layers.12.self_attn.q_proj.weight"},
        {"blk.12.attn_q.bias", "model.layers.12.self_attn.q_proj.bias"},
        {"blk.3.attn_k.bias", "model.layers.3.self_attn.k_proj.bias"},
        {"blk.3.attn_v.weight", "model.layers.3.self_attn.v_proj.weight"},
        {"blk.3.attn_output.weight", "model.layers.3.self_attn.o_proj.weight"},
        {"blk.3.ffn_norm.weight", "model.layers.3.post_attention_layernorm.weight"},
        {"blk.3.ffn_gate.weight", "model.layers.3.mlp.gate_proj.weight"},
        {"blk.3.ffn_up.weight", "model.layers.3.mlp.up_proj.weight"},
        {"blk.3.ffn_down.weight", "model.layers.3.mlp.down_proj.weight"},
        // outside the scheme: kept as they are
        {"rope_freqs.weight", "rope_freqs.weight"},
        {"blk.x.attn_q.weight", "blk.x.attn_q.weight"},
        {"blk.3.attn_qkv.weight", "blk.3.attn_qkv.weight"},
        {"quant.q4_0", "quant.q4_0"},
        {"noDot", "noDot"},
    };
    for (const auto& [gguf, hf] : cases) EXPECT_EQ(gguf_to_hf_name(gguf), hf) << gguf;
}
