// Chat template tests: each test checkpoint's template rendered natively against jinja2 with HF
// semantics (tests/reference/make_chat_golden.py), token ids against llama.cpp, and recognition.
#include <gtest/gtest.h>

#include <map>

#include "engine/core/error.h"
#include "engine/tokenizer/chat_template.h"
#include "golden_tsv.h"
#include "io/gguf.h"
#include "io/gguf_model.h"
#include "test_support.h"

namespace gridlm {
namespace {

struct Model {
    const char* key;
    const char* file;
    const char* template_name;
};
const Model models[] = {
    {"smollm2", test::smollm2_gguf, "smollm2-chatml"},
    {"qwen2.5", test::qwen_gguf, "qwen2.5-chatml"},
    {"deepseek-r1", test::r1_gguf, "deepseek-r1"},
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
            chats.back().messages.push_back({f.at(1), test::from_hex(f.size() > 2 ? f[2] : "")});
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
    EXPECT_EQ(tmpl.name(), m.template_name);
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

TEST(ChatTemplate, DefaultSystemPromptsComeFromTheTemplates) {
    const auto smol = ChatTemplate::from_tokenizer_data(test::gguf_tokenizer(test::smollm2_gguf));
    EXPECT_TRUE(smol.has_default_system());
    EXPECT_EQ(smol.default_system(), "You are a helpful AI assistant named SmolLM, trained by Hugging Face");
    const auto qwen = ChatTemplate::from_tokenizer_data(test::gguf_tokenizer(test::qwen_gguf));
    EXPECT_EQ(qwen.default_system(), "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.");
    EXPECT_EQ(qwen.apply({{"user", "hi"}}),
              "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
              "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplate, UnknownTemplateIsAnErrorNamingIt) {
    try {
        ChatTemplate tmpl("{% for m in messages %}[[{{ m.content }}]]{% endfor %}\nsecond line", "<s>", "</s>");
        FAIL() << "expected gridlm::Error";
    } catch (const Error& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find("{% for m in messages %}[[{{ m.content }}]]{% endfor %}"), std::string::npos) << msg;
        EXPECT_EQ(msg.find("second line"), std::string::npos) << msg;
        EXPECT_NE(msg.find("deepseek-r1"), std::string::npos) << "should list the known templates: " << msg;
    }
    EXPECT_THROW(ChatTemplate("", "<s>", "</s>"), Error);
    // A known template with one character changed is no longer recognised.
    std::string source = test::gguf_tokenizer(test::smollm2_gguf).chat_template;
    source.replace(source.find("<|im_end|>"), 10, "<|im_stop|>");
    EXPECT_THROW(ChatTemplate(source, "", ""), Error);
}

TEST(ChatTemplate, PlainChatMlWithEitherNewlineSpelling) {
    const std::string escaped =
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
        "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
    std::string raw = escaped;
    for (size_t p; (p = raw.find("\\n")) != std::string::npos;) raw.replace(p, 2, "\n");
    for (const auto& source : {escaped, raw}) {
        const ChatTemplate tmpl(source, "", "");
        EXPECT_EQ(tmpl.name(), "chatml");
        EXPECT_FALSE(tmpl.has_default_system());
        EXPECT_EQ(tmpl.apply({{"user", "a"}, {"assistant", "b"}}),
                  "<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\nb<|im_end|>\n<|im_start|>assistant\n");
    }
}

TEST(ChatTemplate, DeepSeekR1LaterReleaseOpensThinking) {
    std::string source = test::gguf_tokenizer(test::r1_gguf).chat_template;
    const std::string tail = "{{'<｜Assistant｜>'}}{% endif %}";
    ASSERT_EQ(source.substr(source.size() - tail.size()), tail);
    source.replace(source.size() - tail.size(), tail.size(), "{{'<｜Assistant｜><think>\\n'}}{% endif %}");
    const ChatTemplate tmpl(source, "<BOS>", "<EOS>");
    EXPECT_EQ(tmpl.apply({{"user", "hi"}}), "<BOS><｜User｜>hi<｜Assistant｜><think>\n");
    EXPECT_EQ(tmpl.apply({{"user", "hi"}}, /*add_generation_prompt=*/false), "<BOS><｜User｜>hi");
}

TEST(ChatTemplate, RolesOutsideTheTemplateAreErrors) {
    const auto qwen = ChatTemplate::from_tokenizer_data(test::gguf_tokenizer(test::qwen_gguf));
    EXPECT_THROW(qwen.apply({{"narrator", "x"}}), Error);
    EXPECT_THROW(qwen.apply({}), Error);
    const auto smol = ChatTemplate::from_tokenizer_data(test::gguf_tokenizer(test::smollm2_gguf));
    EXPECT_NO_THROW(smol.apply({{"narrator", "x"}}));  // SmolLM2's template writes any role
}

}  // namespace
}  // namespace gridlm
