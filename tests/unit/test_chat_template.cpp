// Chat template tests: each test checkpoint's own template rendered by the Jinja interpreter
// against jinja2 with HF semantics (tests/reference/make_chat_golden.py), token ids against
// llama.cpp and HF; the corpus of real templates is in test_chat_corpus.cpp.
#include <gtest/gtest.h>

#include <map>

#include "engine/core/error.h"
#include "engine/tokenizer/chat_template.h"
#include "gguf_rewrite.h"
#include "golden_tsv.h"
#include "io/gguf.h"
#include "io/gguf_model.h"
#include "test_support.h"

namespace gridlm {
namespace {

struct Model {
    const char* key;
    const char* file;
};
const Model models[] = {
    {"smollm2", test::smollm2_gguf},
    {"qwen2.5", test::qwen_gguf},
    {"deepseek-r1", test::r1_gguf},
};

struct GoldenChat {
    std::string name;
    std::vector<ChatMessage> messages;
    std::string text;
    std::vector<int32_t> llama_ids;
    std::vector<int32_t> hf_ids;  // transformers' GGUF loader
    bool agree = false;
    std::vector<int32_t> tokenizers_ids;  // tokenizers set up as the model's tokenizer.json
    bool tokenizers_agree = false;
};

std::vector<GoldenChat> golden_chats(const std::string& key) {
    std::vector<GoldenChat> chats;
    for (const auto& f : test::read_tsv(test::read_file(test::golden_path("chat_" + key + ".tsv")))) {
        const std::string& kind = f.at(0);
        if (kind == "conv") {
            chats.push_back({f.at(2), {}, {}, {}, {}, false, {}, false});
        } else if (kind == "msg") {
            chats.back().messages.push_back({f.at(1), test::from_hex(f.size() > 2 ? f[2] : ""), ""});
        } else if (kind == "text") {
            chats.back().text = test::from_hex(f.at(1));
        } else if (kind == "ids") {
            chats.back().llama_ids = test::parse_ids(f.at(1));
        } else if (kind == "hf") {
            chats.back().hf_ids = test::parse_ids(f.at(1));
            chats.back().agree = f.at(2) == "1";
        } else if (kind == "tk") {
            chats.back().tokenizers_ids = test::parse_ids(f.at(1));
            chats.back().tokenizers_agree = f.at(2) == "1";
        }
    }
    return chats;
}

class ChatGolden : public ::testing::TestWithParam<Model> {};

TEST_P(ChatGolden, RendersLikeJinjaAndTokenizesLikeLlamaCpp) {
    const Model m = GetParam();
    const TokenizerData& data = test::gguf_tokenizer(m.file);
    const ChatTemplate tmpl = ChatTemplate::from_tokenizer_data(data);
    const Tokenizer tok(data);
    const auto chats = golden_chats(m.key);
    ASSERT_GE(chats.size(), 6u);
    for (const auto& chat : chats) {
        const std::string text = tmpl.apply(chat.messages);
        EXPECT_EQ(text, chat.text) << chat.name;
        const auto ids = encode_chat_prompt(tok, text);
        EXPECT_EQ(ids, chat.llama_ids) << chat.name;
        if (chat.agree) {
            EXPECT_EQ(ids, chat.hf_ids) << chat.name;
        }
        if (chat.tokenizers_agree) {
            EXPECT_EQ(ids, chat.tokenizers_ids) << chat.name;
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Models, ChatGolden, ::testing::ValuesIn(models),
                         [](const ::testing::TestParamInfo<Model>& info) {
                             std::string name = info.param.key;
                             for (char& c : name) {
                                 if (c == '.' || c == '-') c = '_';
                             }
                             return name;
                         });

TEST(ChatTemplate, SyntaxErrorNamesTheOriginAndLine) {
    try {
        ChatTemplate tmpl("{% for m in messages %}\n{{ m.content }}\n", "<s>", "</s>", "file 't.jinja'");
        FAIL() << "expected gridlm::Error";
    } catch (const Error& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find("chat template file 't.jinja', line 1: unclosed '{% for %}'"), std::string::npos) << msg;
    }
}

TEST(ChatTemplate, RefusalAndRenderErrorsNameTheLine) {
    const ChatTemplate tmpl(
        "{% if messages[0].role == 'system' %}\n{{ raise_exception('no system role') }}\n{% endif %}"
        "{{ messages[0].content + 1 }}",
        "<s>", "</s>", "of the checkpoint");
    try {
        tmpl.apply({{"system", "s", ""}});
        FAIL() << "expected ChatTemplateError";
    } catch (const ChatTemplateError& e) {
        EXPECT_STREQ(e.what(),
                     "chat template of the checkpoint refused the chat (raise_exception at line 2): no system role");
    }
    try {
        tmpl.apply({{"user", "u", ""}});
        FAIL() << "expected ChatTemplateError";
    } catch (const ChatTemplateError& e) {
        EXPECT_NE(std::string(e.what()).find("line 3: unsupported operand type(s) for +: 'str' and 'int'"),
                  std::string::npos)
            << e.what();
    }
    EXPECT_THROW(tmpl.apply({}), Error);
}

TEST(ChatTemplate, MessagesReachTheTemplateWhole) {
    // Members besides role/content (tool_calls, name...) and the extras are visible to templates.
    const ChatTemplate tmpl(
        "{% for m in messages %}{{ m.role }}:{{ m.content }}{% if m.tool_calls %}{{ m.tool_calls | tojson }}"
        "{% endif %};{% endfor %}{{ tools | length }}|{{ enable_thinking }}|{{ add_generation_prompt }}|"
        "{{ bos_token is defined }}",
        std::nullopt, "</s>", "test");
    ChatMessage call{"assistant", "", R"({"role": "assistant", "content": null, "tool_calls": [{"b": 1, "a": 0.5}]})"};
    ChatExtras extras;
    extras.tools_json = R"([{"type": "function"}, {"type": "function"}])";
    extras.kwargs_json = R"({"enable_thinking": false})";
    extras.add_generation_prompt = false;
    EXPECT_EQ(tmpl.apply({{"user", "hi", ""}, call}, extras),
              R"(user:hi;assistant:[{"b": 1, "a": 0.5}];2|False|False|False)");  // null content dropped, as HF
    EXPECT_THROW(tmpl.apply({{"user", "x", "{not json"}}), Error);
}

TEST(ChatTemplate, CheckpointWithoutTemplateIsAnError) {
    TokenizerData data = test::gguf_tokenizer(test::smollm2_gguf);
    data.chat_template.clear();
    EXPECT_THROW(ChatTemplate::from_tokenizer_data(data), Error);
    // An override replaces the checkpoint's template (or stands in for a missing one).
    const ChatTemplate t = ChatTemplate::from_tokenizer_data(data, "[{{ messages[0].content }}]", "file 'x'");
    EXPECT_EQ(t.apply({{"user", "hi", ""}}), "[hi]");
}

// llama.cpp's converter stores a model's named templates as tokenizer.chat_template.<name>.
TEST(ChatTemplate, GgufNamedToolUseTemplateIsRead) {
    test::GgufRewrite rewrite(test::golden_path("gguf_synthetic.gguf"));
    rewrite.set_string("tokenizer.chat_template", "{{ 'default' }}");
    rewrite.set_string("tokenizer.chat_template.tool_use", "{{ 'tool_use' }}");
    const std::string path = test::temp_dir() + "/named.gguf";
    rewrite.write(path);
    const TokenizerData t = gguf_tokenizer_data(GgufFile(path));
    EXPECT_EQ(t.chat_template, "{{ 'default' }}");
    EXPECT_EQ(t.chat_template_tool_use, "{{ 'tool_use' }}");
}

}  // namespace
}  // namespace gridlm
