// HF tokenizer.json / tokenizer_config.json import: the tiny Qwen2 tokenizer (tokens, merges,
// added tokens, pre kind, special ids), the other pre-tokenizer forms, and clear errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/core/error.h"
#include "engine/tokenizer/tokenizer.h"
#include "io/hf_checkpoint.h"
#include "test_support.h"

namespace gridlm {
namespace {

namespace fs = std::filesystem;
using test::error_of;
using test::expect_has;
using json = nlohmann::json;

const std::string tiny_dir = test::golden_path("tiny-qwen2-hf");

TEST(HfTokenizer, TinyQwen2Tokenizer) {
    const TokenizerData t = hf_tokenizer_data(tiny_dir, 512);
    EXPECT_EQ(t.model, "gpt2");
    EXPECT_EQ(t.pre, "qwen2");
    ASSERT_EQ(t.tokens.size(), 512u);
    ASSERT_EQ(t.token_types.size(), 512u);
    // Every id against the file itself, read independently here.
    const json j = json::parse(test::read_file(tiny_dir + "/tokenizer.json"));
    for (const auto& [text, id] : j["model"]["vocab"].items()) {
        ASSERT_EQ(t.tokens.at(id.get<int>()), text);
        ASSERT_EQ(t.token_types[id.get<int>()], (int32_t)TokenType::token_type_normal);
    }
    EXPECT_EQ(t.tokens[220], "Ġ");  // byte-level form of a space
    EXPECT_EQ(t.tokens[508], "<|endoftext|>");
    EXPECT_EQ(t.tokens[509], "<|im_start|>");
    EXPECT_EQ(t.tokens[510], "<|im_end|>");
    EXPECT_EQ(t.tokens[511], "<think>");
    for (int id : {508, 509, 510}) EXPECT_EQ(t.token_types[id], (int32_t)TokenType::token_type_control);
    EXPECT_EQ(t.token_types[511], (int32_t)TokenType::token_type_user_defined);
    // Merges come as [a, b] pairs in this file and become "a b".
    const json& merges = j["model"]["merges"];
    ASSERT_EQ(t.merges.size(), merges.size());
    ASSERT_EQ(t.merges.size(), 252u);
    for (size_t i = 0; i < merges.size(); ++i) {
        ASSERT_EQ(t.merges[i], merges[i][0].get<std::string>() + " " + merges[i][1].get<std::string>());
    }
    // bos from config.json (tokenizer_config has none), eos and pad from tokenizer_config.json.
    EXPECT_EQ(t.bos_id, 508);
    EXPECT_EQ(t.eos_id, 510);
    EXPECT_EQ(t.pad_id, 508);
    EXPECT_FALSE(t.add_bos);
    EXPECT_NE(t.chat_template.find("<|im_start|>"), std::string::npos);
    EXPECT_NE(t.chat_template.find("add_generation_prompt"), std::string::npos);
}

// The imported data drives the engine tokenizer to the ids HF tokenizers produced.
TEST(HfTokenizer, TinyEncodesLikeHfTokenizers) {
    const Tokenizer tok(hf_tokenizer_data(tiny_dir, 512));
    const json golden = json::parse(test::read_file(test::golden_path("tiny-qwen2-tokens.json")));
    ASSERT_GE(golden["cases"].size(), 40u);
    for (const json& c : golden["cases"]) {
        const std::string text = c["text"];
        EXPECT_EQ(tok.encode(text, {.add_bos = false, .parse_special = true}), c["ids"].get<std::vector<int32_t>>())
            << "text: " << json(text).dump();
    }
}

// A directory with the tiny tokenizer files, whose tokenizer.json `edit` may change.
class TokenizerDir {
public:
    TokenizerDir() : dir_(test::temp_dir()) {
        for (const char* f : {"tokenizer.json", "tokenizer_config.json", "config.json"}) {
            fs::copy_file(tiny_dir + "/" + f, dir_ + "/" + f);
        }
        tok_ = json::parse(test::read_file(tiny_dir + "/tokenizer.json"));
        cfg_ = json::parse(test::read_file(tiny_dir + "/tokenizer_config.json"));
    }
    json& tok() { return tok_; }
    json& cfg() { return cfg_; }
    TokenizerData load(int64_t n_vocab = 512) {
        std::ofstream(dir_ + "/tokenizer.json") << tok_.dump();
        std::ofstream(dir_ + "/tokenizer_config.json") << cfg_.dump();
        return hf_tokenizer_data(dir_, n_vocab);
    }
    std::string error(int64_t n_vocab = 512) {
        return error_of([&] { load(n_vocab); });
    }
    const std::string& dir() const { return dir_; }

private:
    std::string dir_;
    json tok_, cfg_;
};

json byte_level(bool use_regex) {
    return {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", use_regex}};
}

TEST(HfTokenizer, PreTokenizerKinds) {
    TokenizerDir d;
    json split = d.tok()["pre_tokenizer"]["pretokenizers"][0];
    // SmolLM2: Digits(individual) then GPT-2's regex inside ByteLevel.
    d.tok()["pre_tokenizer"] = {
        {"type", "Sequence"}, {"pretokenizers", {{{"type", "Digits"}, {"individual_digits", true}}, byte_level(true)}}};
    EXPECT_EQ(d.load().pre, "smollm");
    d.tok()["pre_tokenizer"] = byte_level(true);
    EXPECT_EQ(d.load().pre, "gpt2");
    split["pattern"]["Regex"] =
        "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
        "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    d.tok()["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", {split, byte_level(false)}}};
    EXPECT_EQ(d.load().pre, "llama3");
    split["pattern"]["Regex"] = "\\p{L}+|\\s+";
    d.tok()["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", {split, byte_level(false)}}};
    expect_has(d.error(), {d.dir() + "/tokenizer.json", "unknown pre-tokenizer split regex", "\"\\p{L}+|\\s+\""});
    d.tok()["pre_tokenizer"] = {{"type", "Whitespace"}};
    expect_has(d.error(), {"ByteLevel"});
    d.tok()["pre_tokenizer"] = nullptr;
    expect_has(d.error(), {"pre_tokenizer"});
    EXPECT_EQ(hf_pre_kind_of_regex("nope"), "");
}

TEST(HfTokenizer, OtherFileForms) {
    TokenizerDir d;
    // Merges as "a b" strings (tokenizers < 0.20).
    json merges = json::array();
    for (const json& m : d.tok()["model"]["merges"])
        merges.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
    d.tok()["model"]["merges"] = merges;
    TokenizerData t = d.load();
    EXPECT_EQ(t.merges[0], merges[0].get<std::string>());
    EXPECT_EQ(t.merges.size(), 252u);
    // Embedding rows beyond the tokenizer become unused placeholder tokens.
    t = d.load(520);
    ASSERT_EQ(t.tokens.size(), 520u);
    EXPECT_EQ(t.tokens[515], "[PAD515]");
    EXPECT_EQ(t.token_types[515], (int32_t)TokenType::token_type_unused);
    // Special tokens as objects, BOS added by the post-processor template, named chat templates.
    d.cfg().erase("add_bos_token");
    d.cfg()["bos_token"] = {{"content", "<|im_start|>"}, {"__type", "AddedToken"}};
    d.cfg()["chat_template"] =
        json::array({{{"name", "tool_use"}, {"template", "T"}}, {{"name", "default"}, {"template", "D"}}});
    d.tok()["post_processor"] = {{"type", "TemplateProcessing"},
                                 {"single",
                                  {{{"SpecialToken", {{"id", "<|im_start|>"}, {"type_id", 0}}}},
                                   {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}}};
    t = d.load();
    EXPECT_EQ(t.bos_id, 509);
    EXPECT_TRUE(t.add_bos);
    EXPECT_EQ(t.chat_template, "D");
    // transformers >= 4.47 keeps the template in chat_template.jinja, which wins.
    std::ofstream(d.dir() + "/chat_template.jinja") << "J";
    EXPECT_EQ(d.load().chat_template, "J");
}

TEST(HfTokenizer, ErrorsNameFileAndField) {
    TokenizerDir d;
    const std::string tok_file = d.dir() + "/tokenizer.json";
    json saved = d.tok();
    d.tok()["model"]["type"] = "WordPiece";
    expect_has(d.error(), {tok_file, "WordPiece", "byte-level BPE"});
    d.tok() = saved;
    d.tok()["model"]["byte_fallback"] = true;
    expect_has(d.error(), {tok_file, "byte_fallback"});
    d.tok() = saved;
    d.tok()["model"].erase("vocab");
    expect_has(d.error(), {tok_file, "model.vocab"});
    d.tok() = saved;
    d.tok()["model"]["merges"][3] = 42;
    expect_has(d.error(), {tok_file, "merge 3"});
    d.tok() = saved;
    d.tok()["added_tokens"][0]["id"] = 4000;
    expect_has(d.error(), {tok_file, "<|endoftext|>", "4000"});
    d.tok() = saved;
    d.tok()["added_tokens"][0]["id"] = 5;  // already a different BPE token
    expect_has(d.error(), {tok_file, "id 5"});
    d.tok() = saved;
    d.tok()["normalizer"] = {{"type", "Lowercase"}};
    expect_has(d.error(), {tok_file, "Lowercase"});
    d.tok() = saved;
    d.cfg()["eos_token"] = "<|nope|>";
    expect_has(d.error(), {d.dir() + "/tokenizer_config.json", "eos_token", "<|nope|>"});
    fs::remove(tok_file);
    expect_has(error_of([&] { hf_tokenizer_data(d.dir(), 512); }), {"no tokenizer.json", d.dir()});
}

}  // namespace
}  // namespace gridlm
