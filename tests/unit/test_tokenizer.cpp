// Tokenizer tests: the three test checkpoints' tokenizers against llama.cpp / HF goldens
// (tests/reference/make_tokenizer_golden.py), round trips, streaming decode, pre-tokenizers.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <thread>

#include "engine/core/error.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/tokenizer/utf8.h"
#include "golden_tsv.h"
#include "io/gguf.h"
#include "io/gguf_model.h"
#include "test_support.h"

namespace gridlm {
namespace {

struct Model {
    const char* key;   // golden file suffix
    const char* file;  // GGUF in the model cache
};
const Model models[] = {
    {"smollm2", test::smollm2_gguf},
    {"qwen2.5", test::qwen_gguf},
    {"deepseek-r1", test::r1_gguf},
};

const Tokenizer& tokenizer(const std::string& file) {
    static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
    auto& slot = cache[file];
    if (!slot) slot = std::make_unique<Tokenizer>(test::gguf_tokenizer(file));
    return *slot;
}

// One line of tokenizer_<model>.tsv: llama.cpp's ids and the two HF references (transformers'
// GGUF loader, and tokenizers set up as the model's tokenizer.json), each flagged when it
// agrees with llama.cpp.
struct GoldenString {
    int index;
    std::string text;
    std::vector<int32_t> llama_ids;
    std::vector<int32_t> transformers_ids;
    bool transformers_agree;
    std::vector<int32_t> tokenizers_ids;
    bool tokenizers_agree;
    std::string shown;  // JSON form, for messages
};

std::vector<GoldenString> golden_strings(const std::string& key) {
    std::vector<GoldenString> out;
    for (const auto& f : test::read_tsv(test::read_file(test::golden_path("tokenizer_" + key + ".tsv")))) {
        out.push_back({std::stoi(f.at(0)), test::from_hex(f.at(1)), test::parse_ids(f.at(2)), test::parse_ids(f.at(3)),
                       f.at(4) == "1", test::parse_ids(f.at(5)), f.at(6) == "1", f.at(7)});
    }
    return out;
}

std::string join_ids(const std::vector<int32_t>& ids) {
    std::string s;
    for (int32_t id : ids) s += (s.empty() ? "" : " ") + std::to_string(id);
    return s;
}

class TokenizerGolden : public ::testing::TestWithParam<Model> {};

TEST_P(TokenizerGolden, MatchesLlamaCppAndHf) {
    const Model m = GetParam();
    const Tokenizer& tok = tokenizer(m.file);
    const auto golden = golden_strings(m.key);
    ASSERT_GE(golden.size(), 300u);
    int match_llama = 0, match_transformers = 0, match_tokenizers = 0;
    for (const auto& g : golden) {
        const auto ids = tok.encode(g.text);
        match_llama += ids == g.llama_ids;
        match_transformers += ids == g.transformers_ids;
        match_tokenizers += ids == g.tokenizers_ids;
        EXPECT_EQ(join_ids(ids), join_ids(g.llama_ids)) << "string #" << g.index << " " << g.shown;
        if (g.transformers_agree) {
            EXPECT_EQ(ids, g.transformers_ids) << "string #" << g.index << " " << g.shown;
        }
        if (g.tokenizers_agree) {
            EXPECT_EQ(ids, g.tokenizers_ids) << "string #" << g.index << " " << g.shown;
        }
    }
    std::printf("[ %s ] %zu strings match: llama.cpp %d, HF tokenizers %d, HF transformers (GGUF loader) %d\n", m.key,
                golden.size(), match_llama, match_tokenizers, match_transformers);
}

TEST_P(TokenizerGolden, PiecesMatchLlamaCpp) {
    const Model m = GetParam();
    const Tokenizer& tok = tokenizer(m.file);
    const auto rows =
        test::read_tsv(test::read_file(test::golden_path(std::string("tokenizer_pieces_") + m.key + ".tsv")));
    ASSERT_GE(rows.size(), 300u);
    for (const auto& r : rows) {
        const int32_t id = std::stoi(r.at(0));
        EXPECT_EQ(tok.token_bytes(id), test::from_hex(r.size() > 1 ? r[1] : "")) << "id " << id;
    }
}

TEST_P(TokenizerGolden, DecodeInvertsEncode) {
    const Model m = GetParam();
    const Tokenizer& tok = tokenizer(m.file);
    for (const auto& g : golden_strings(m.key)) {
        const auto ids = tok.encode(g.text, {.add_bos = false});
        EXPECT_EQ(tok.decode(ids), g.text) << "string #" << g.index << " " << g.shown;
    }
}

// Streaming the ids of every golden string token by token gives the same text as decode().
TEST_P(TokenizerGolden, StreamDecoderMatchesDecode) {
    const Model m = GetParam();
    const Tokenizer& tok = tokenizer(m.file);
    for (const auto& g : golden_strings(m.key)) {
        StreamDecoder stream(tok);
        std::string text;
        for (int32_t id : g.llama_ids) text += stream.push(id);
        text += stream.flush();
        EXPECT_EQ(text, tok.decode(g.llama_ids)) << "string #" << g.index << " " << g.shown;
    }
}

// GoogleTest names allow only letters, digits and '_'.
std::string param_name(const ::testing::TestParamInfo<Model>& info) {
    std::string name = info.param.key;
    for (char& c : name) {
        if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
    }
    return name;
}

INSTANTIATE_TEST_SUITE_P(Models, TokenizerGolden, ::testing::ValuesIn(models), param_name);

TEST(Tokenizer, StreamDecoderHoldsBackSplitCharacter) {
    const Tokenizer& tok = tokenizer(test::smollm2_gguf);
    const std::string emoji = "\xF0\x9F\x98\x80";  // U+1F600, not one token in SmolLM2's vocabulary
    const auto ids = tok.encode(emoji);
    ASSERT_GE(ids.size(), 2u) << "expected the emoji to be split over byte tokens";
    StreamDecoder stream(tok);
    for (size_t i = 0; i + 1 < ids.size(); ++i) {
        EXPECT_EQ(stream.push(ids[i]), "") << "token " << i << " must be held back";
        EXPECT_GT(stream.pending_bytes(), 0u);
    }
    EXPECT_EQ(stream.push(ids.back()), emoji);
    EXPECT_EQ(stream.pending_bytes(), 0u);
    EXPECT_EQ(stream.flush(), "");

    // Around the split character every push emits only whole characters, and all of the text.
    const std::string text = "ok " + emoji + "!";
    StreamDecoder s2(tok);
    std::string streamed;
    bool held_back = false;
    for (int32_t id : tok.encode(text)) {
        const std::string piece = s2.push(id);
        EXPECT_TRUE(utf8::is_valid(piece));
        held_back |= s2.pending_bytes() > 0;
        streamed += piece;
    }
    EXPECT_TRUE(held_back);
    EXPECT_EQ(streamed + s2.flush(), text);
}

TEST(Tokenizer, StreamDecoderReplacesIncompleteTailAtFlush) {
    const Tokenizer& tok = tokenizer(test::smollm2_gguf);
    const auto ids = tok.encode("\xF0\x9F\x98\x80");
    StreamDecoder stream(tok);
    EXPECT_EQ(stream.push(ids[0]), "");
    EXPECT_EQ(stream.flush(), "\xEF\xBF\xBD");  // one U+FFFD for the cut-off character
    EXPECT_EQ(stream.pending_bytes(), 0u);
    // A byte that cannot start a character is replaced at once, not held back.
    const int32_t lone_continuation = *tok.token_id(utf8::byte_to_unicode(0x80));
    EXPECT_EQ(stream.push(lone_continuation), "\xEF\xBF\xBD");
    EXPECT_EQ(tok.decode(std::vector<int32_t>{ids[0]}), "\xEF\xBF\xBD");
}

TEST(Tokenizer, SpecialTokensAndOptions) {
    const Tokenizer& qwen = tokenizer(test::qwen_gguf);
    const int32_t im_start = *qwen.token_id("<|im_start|>");
    const auto with = qwen.encode("<|im_start|>user");
    ASSERT_FALSE(with.empty());
    EXPECT_EQ(with[0], im_start);
    const auto without = qwen.encode("<|im_start|>user", {.parse_special = false});
    EXPECT_EQ(std::count(without.begin(), without.end(), im_start), 0);
    EXPECT_EQ(qwen.decode(without), "<|im_start|>user");
    EXPECT_EQ(qwen.decode(with, {.skip_special = true}), "user");

    const Tokenizer& r1 = tokenizer(test::r1_gguf);
    ASSERT_TRUE(r1.add_bos());
    EXPECT_EQ(r1.encode("hi")[0], r1.bos_id());
    EXPECT_NE(r1.encode("hi", {.add_bos = false})[0], r1.bos_id());
    // <think> is a user-defined token: matched even when control tokens are not parsed.
    const int32_t think = *r1.token_id("<think>");
    EXPECT_EQ(r1.encode("<think>", {.add_bos = false, .parse_special = false}), std::vector<int32_t>{think});
    EXPECT_EQ(r1.decode(std::vector<int32_t>{think}, {.skip_special = true}), "<think>");
}

TEST(Tokenizer, IllFormedInputReadAsReplacementCharacter) {
    const Tokenizer& tok = tokenizer(test::qwen_gguf);
    EXPECT_EQ(tok.encode("a\xFF"
                         "b"),
              tok.encode("a\xEF\xBF\xBD"
                         "b"));
    EXPECT_THROW(tok.decode(std::vector<int32_t>{tok.n_vocab()}), Error);
}

TEST(Tokenizer, UnknownPreKindIsAnError) {
    TokenizerData data = test::gguf_tokenizer(test::smollm2_gguf);
    data.pre = "no-such-pre";
    try {
        Tokenizer tok(data);
        FAIL() << "expected gridlm::Error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("no-such-pre"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("qwen2"), std::string::npos) << "should list the supported kinds";
    }
    data.pre = "smollm";
    data.model = "llama";
    EXPECT_THROW(Tokenizer{data}, Error);
}

// Each kind's regexes against the words HF tokenizers' own pre-tokenizer makes of every golden
// string (make_tokenizer_golden.py, pretokenize_<kind>.tsv).
TEST(PreTokenizer, MatchesHfTokenizers) {
    for (const char* kind : {"llama3", "qwen2", "smollm", "gpt2"}) {
        const PreTokenizer pre(kind);
        const auto rows =
            test::read_tsv(test::read_file(test::golden_path(std::string("pretokenize_") + kind + ".tsv")));
        ASSERT_GE(rows.size(), 300u) << kind;
        for (const auto& r : rows) {
            const std::string text = test::from_hex(r.at(0));
            std::vector<std::string> expected;
            for (size_t i = 1; i < r.size(); ++i) expected.push_back(test::from_hex(r[i]));
            std::vector<std::string> got;
            for (const WordSpan& w : pre.split(text)) got.push_back(text.substr(w.begin, w.end - w.begin));
            EXPECT_EQ(got, expected) << kind << ": " << r.at(0);
        }
    }
}

TEST(PreTokenizer, Llama3GroupsDigitsByThreeAndFoldsContractionCase) {
    const PreTokenizer pre("llama-bpe");
    EXPECT_EQ(pre.kind(), "llama3");
    const std::string text = "I'M 1234567 ok\n\n  x";
    std::vector<std::string> got;
    for (const WordSpan& w : pre.split(text)) got.push_back(text.substr(w.begin, w.end - w.begin));
    const std::vector<std::string> want = {"I", "'M", " ", "123", "456", "7", " ok", "\n\n", " ", " x"};
    EXPECT_EQ(got, want);
}

TEST(Tokenizer, EncodeIsThreadSafeAndCached) {
    const Tokenizer& tok = tokenizer(test::qwen_gguf);
    std::string text;
    for (const auto& g : golden_strings("qwen2.5")) text += g.text + "\n";
    const auto expected = tok.encode(text);
    std::vector<int32_t> a, b;
    std::thread t1([&] { a = tok.encode(text); });
    std::thread t2([&] { b = tok.encode(text); });
    t1.join();
    t2.join();
    EXPECT_EQ(a, expected);
    EXPECT_EQ(b, expected);
}

// Not a timing assertion: prints the encode rate on ~1 MB of mixed text for the record.
TEST(Tokenizer, EncodeSpeed) {
    for (const Model& m : models) {
        const Tokenizer& tok = tokenizer(m.file);
        std::string text;
        const auto golden = golden_strings(m.key);
        while (text.size() < (1u << 20)) {
            for (const auto& g : golden) text += g.text + " ";
        }
        const auto t0 = std::chrono::steady_clock::now();
        const auto ids = tok.encode(text);
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        std::printf("[ %s ] encoded %zu bytes into %zu tokens in %.3f s: %.0f tokens/s\n", m.key, text.size(),
                    ids.size(), s, ids.size() / s);
        EXPECT_EQ(tok.decode(std::vector<int32_t>(ids.begin() + (tok.add_bos() ? 1 : 0), ids.end())), text);
    }
}

}  // namespace
}  // namespace gridlm
