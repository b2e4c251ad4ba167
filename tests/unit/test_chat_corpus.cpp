// Real models' chat templates against HF: every template of tests/reference/chat_templates/ is
// rendered for every conversation of tests/reference/chat_conversations.json through the
// production path (ChatTemplate::apply, messages as JSON records carry them) and compared byte for
// byte with tests/reference/golden/chat_templates.json (jinja2 as transformers renders, cross-
// checked with transformers itself; tests/reference/make_template_golden.py). Where jinja2 fails
// (the template refuses the chat, or breaks on it) the interpreter must fail too. For the models
// whose tokenizer is bundled, the token ids of the text match HF tokenizers.
#include <gtest/gtest.h>

#include <ctime>
#include <map>

#include "engine/core/error.h"
#include "engine/jinja/value.h"
#include "engine/tokenizer/chat_template.h"
#include "engine/tokenizer/tokenizer.h"
#include "test_support.h"

namespace gridlm {
namespace {

using jinja::Value;

struct Conversation {
    std::vector<ChatMessage> messages;
    ChatExtras extras;
    Value kwargs;  // chat_template_kwargs (a dict or undefined)
};

std::map<std::string, Conversation> load_conversations() {
    const Value all = jinja::parse_json_value(
        test::read_file(std::string(GRIDLM_SOURCE_DIR) + "/tests/reference/chat_conversations.json"));
    std::map<std::string, Conversation> out;
    for (const Value& c : all.items()) {
        Conversation conv;
        for (const Value& m : c.find("messages")->items()) {
            const Value* content = m.find("content");
            conv.messages.push_back({m.find("role")->as_string(),
                                     content && content->is_string() ? content->as_string() : "",
                                     jinja::to_json(m, jinja::JsonStyle::compact())});
        }
        if (const Value* tools = c.find("tools"))
            conv.extras.tools_json = jinja::to_json(*tools, jinja::JsonStyle::compact());
        if (const Value* agp = c.find("add_generation_prompt")) conv.extras.add_generation_prompt = agp->truthy();
        if (const Value* kw = c.find("chat_template_kwargs")) conv.kwargs = *kw;
        out.emplace(c.find("name")->as_string(), std::move(conv));
    }
    return out;
}

const char* tokenizer_file(const std::string& key) {
    if (key == "smollm2") return test::smollm2_gguf;
    if (key == "qwen2.5") return test::qwen_gguf;
    if (key == "deepseek-r1") return test::r1_gguf;
    return nullptr;
}

TEST(ChatCorpus, EveryTemplateRendersEveryConversationLikeTransformers) {
    const Value golden = jinja::parse_json_value(test::read_file(test::golden_path("chat_templates.json")));
    const auto conversations = load_conversations();
    ASSERT_GE(conversations.size(), 20u);
    const Value* templates = golden.find("templates");
    ASSERT_TRUE(templates && templates->is_list());
    ASSERT_GE(templates->items().size(), 20u);
    int n_text = 0, n_error = 0, n_ids = 0;
    for (const Value& t : templates->items()) {
        const std::string file = t.find("file")->as_string();
        const std::string source =
            test::read_file(std::string(GRIDLM_SOURCE_DIR) + "/tests/reference/chat_templates/" + file);
        auto token = [&](const char* key) -> std::optional<std::string> {
            const Value* v = t.find(key);
            if (!v || !v->is_string()) return std::nullopt;
            return v->as_string();
        };
        ChatTemplate tmpl(source, token("bos_token"), token("eos_token"), "file '" + file + "'");
        tmpl.set_now(test::template_golden_now());
        std::unique_ptr<Tokenizer> tok;
        if (const Value* key = t.find("tokenizer"); key && key->is_string()) {
            const char* gguf = tokenizer_file(key->as_string());
            ASSERT_NE(gguf, nullptr) << file << ": unknown tokenizer " << key->as_string();
            tok = std::make_unique<Tokenizer>(test::gguf_tokenizer(gguf));
        }
        const Value* extra = t.find("extra_variables");
        for (const Value& r : t.find("results")->items()) {
            const std::string name = r.find("conversation")->as_string();
            ASSERT_TRUE(conversations.count(name)) << name;
            const Conversation& conv = conversations.at(name);
            ChatExtras extras = conv.extras;
            jinja::ValueDict kwargs;
            if (conv.kwargs.is_dict()) kwargs = conv.kwargs.entries();
            if (extra) kwargs.insert(kwargs.end(), extra->entries().begin(), extra->entries().end());
            if (!kwargs.empty()) extras.kwargs_json = jinja::to_json(Value::dict(kwargs), jinja::JsonStyle::compact());
            const std::string where = file + " x " + name;
            if (const Value* text = r.find("text")) {
                ++n_text;
                std::string got;
                try {
                    got = tmpl.apply(conv.messages, extras);
                } catch (const Error& e) {
                    ADD_FAILURE() << where << ": transformers renders it, we fail: " << e.what();
                    continue;
                }
                EXPECT_EQ(got, text->as_string()) << where;
                if (const Value* ids = r.find("ids"); ids && tok) {
                    ++n_ids;
                    std::vector<int32_t> want;
                    for (const Value& id : ids->items()) want.push_back(static_cast<int32_t>(id.as_int()));
                    EXPECT_EQ(tok->encode(got, {.add_bos = false, .parse_special = true}), want) << where;
                }
            } else {
                ++n_error;
                const std::string expected = r.find("error")->as_string();
                const Value* type = r.find("error_type");
                try {
                    const std::string got = tmpl.apply(conv.messages, extras);
                    ADD_FAILURE() << where << ": transformers fails (" << expected << "), we render:\n" << got;
                } catch (const ChatTemplateError& e) {
                    // A template's own refusal carries its message through.
                    if (type && type->as_string() == "TemplateError") {
                        EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << where << ": " << e.what();
                    }
                }
            }
        }
    }
    std::printf("corpus: %d renders equal, %d refusals matched, %d token id checks\n", n_text, n_error, n_ids);
    EXPECT_GE(n_text, 600);
    EXPECT_GE(n_ids, 90);
}

}  // namespace
}  // namespace gridlm
