// Chat templates rendered by the Jinja interpreter (see chat_template.h).
#include "engine/tokenizer/chat_template.h"

#include <cstdio>
#include <stdexcept>

#include "engine/core/error.h"
#include "engine/core/hash.h"
#include "engine/tokenizer/utf8.h"

namespace gridlm {

namespace {

jinja::Value parse_json(const std::string& text, const char* what) {
    try {
        return jinja::parse_json_value(text);
    } catch (const std::invalid_argument& e) {
        throw Error(str("chat request: ", what, " is not valid JSON: ", e.what()));
    }
}

// "chat template of the checkpoint, line 12: reason"
std::string describe(const jinja::TemplateError& e, const std::string& origin) {
    return e.line() > 0 ? str("chat template ", origin, ", line ", e.line(), ": ", e.reason())
                        : str("chat template ", origin, ": ", e.reason());
}

// A message as HF apply_chat_template hands it to the template (transformers 5.x,
// chat_template_utils): members whose value is null are dropped; reasoning given under
// reasoning_content, thinking or reasoning (the first not null) is passed as `thinking` (first
// member) and as `reasoning_content`, which gpt-oss-style templates and the others read.
jinja::Value hf_message(const jinja::Value& m) {
    if (!m.is_dict()) return m;
    jinja::ValueDict kept;
    for (const auto& [k, v] : m.entries()) {
        if (!v.is_none()) kept.emplace_back(k, v);
    }
    const jinja::Value msg = jinja::Value::dict(std::move(kept));
    const jinja::Value* reasoning = nullptr;
    for (const char* key : {"reasoning_content", "thinking", "reasoning"}) {
        if ((reasoning = msg.find(key)) != nullptr) break;
    }
    if (!reasoning) return msg;
    // {"thinking": r, **msg, "reasoning_content": r}
    jinja::ValueDict out;
    out.emplace_back(jinja::Value("thinking"), *reasoning);
    for (const auto& [k, v] : msg.entries()) {
        if (k.is_string() && k.as_string() == "thinking") {
            out[0].second = v;
        } else {
            out.emplace_back(k, v);
        }
    }
    bool has_rc = false;
    for (auto& [k, v] : out) {
        if (k.is_string() && k.as_string() == "reasoning_content") {
            v = *reasoning;
            has_rc = true;
        }
    }
    if (!has_rc) out.emplace_back(jinja::Value("reasoning_content"), *reasoning);
    return jinja::Value::dict(std::move(out));
}

}  // namespace

ChatTemplate::ChatTemplate(const std::string& jinja_source, std::optional<std::string> bos_token,
                           std::optional<std::string> eos_token, std::string origin)
    : template_([&] {
          // HF reads templates as Python str: bytes that are not UTF-8 cannot be one.
          for (size_t i = 0; i < jinja_source.size();) {
              const size_t n = utf8::sequence_length(jinja_source, i);
              if (n == 0) throw Error(str("chat template ", origin, ": not valid UTF-8 at byte ", i));
              i += n;
          }
          try {
              return jinja::Template(jinja_source);
          } catch (const jinja::TemplateError& e) {
              throw Error(describe(e, origin));
          }
      }()),
      bos_token_(std::move(bos_token)),
      eos_token_(std::move(eos_token)),
      origin_(std::move(origin)),
      source_(jinja_source) {}

ChatTemplate ChatTemplate::from_tokenizer_data(const TokenizerData& data, const std::string& override_source,
                                               const std::string& override_origin) {
    auto text_of = [&](int32_t id) -> std::optional<std::string> {
        if (id >= 0 && static_cast<size_t>(id) < data.tokens.size()) return data.tokens[id];
        return std::nullopt;
    };
    if (!override_source.empty()) {
        return ChatTemplate(override_source, text_of(data.bos_id), text_of(data.eos_id), override_origin);
    }
    if (data.chat_template.empty()) throw Error("the checkpoint has no chat template");
    return ChatTemplate(data.chat_template, text_of(data.bos_id), text_of(data.eos_id), "of the checkpoint");
}

std::string chat_template_digest(const std::string& source) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "fnv %016llx", static_cast<unsigned long long>(fnv1a64(source)));
    return buf;
}

std::string ChatTemplate::name() const { return str(origin_, " (", chat_template_digest(source_), ")"); }

std::string ChatTemplate::apply(const std::vector<ChatMessage>& messages, const ChatExtras& extras) const {
    if (messages.empty()) throw Error("the chat has no messages");
    jinja::ValueList list;
    list.reserve(messages.size());
    for (const ChatMessage& m : messages) {
        if (!m.json.empty()) {
            list.push_back(hf_message(parse_json(m.json, "a message")));
        } else {
            list.push_back(jinja::Value::dict(
                {{jinja::Value("role"), jinja::Value(m.role)}, {jinja::Value("content"), jinja::Value(m.content)}}));
        }
    }
    std::vector<std::pair<std::string, jinja::Value>> vars;
    vars.emplace_back("messages", jinja::Value::list(std::move(list)));
    vars.emplace_back("tools",
                      extras.tools_json.empty() ? jinja::Value::none() : parse_json(extras.tools_json, "'tools'"));
    vars.emplace_back("documents", extras.documents_json.empty() ? jinja::Value::none()
                                                                 : parse_json(extras.documents_json, "'documents'"));
    vars.emplace_back("add_generation_prompt", jinja::Value(extras.add_generation_prompt));
    if (bos_token_) vars.emplace_back("bos_token", jinja::Value(*bos_token_));
    if (eos_token_) vars.emplace_back("eos_token", jinja::Value(*eos_token_));
    if (!extras.kwargs_json.empty()) {
        const jinja::Value kw = parse_json(extras.kwargs_json, "'chat_template_kwargs'");
        if (!kw.is_dict()) throw Error("chat request: 'chat_template_kwargs' must be an object");
        for (const auto& [k, v] : kw.entries()) vars.emplace_back(jinja::to_str(k), v);
    }
    try {
        return template_.render(vars, options_);
    } catch (const jinja::TemplateError& e) {
        if (e.raised()) {
            throw ChatTemplateError(str("chat template ", origin_, " refused the chat (raise_exception at line ",
                                        e.line(), "): ", e.reason()));
        }
        throw ChatTemplateError(describe(e, origin_));
    }
}

std::vector<int32_t> encode_chat_prompt(const Tokenizer& tokenizer, const std::string& prompt, bool add_bos) {
    bool starts_with_bos = false;
    if (tokenizer.bos_id() >= 0) {
        const std::string& bos = tokenizer.token_text(tokenizer.bos_id());
        starts_with_bos = !bos.empty() && prompt.compare(0, bos.size(), bos) == 0;
    }
    return tokenizer.encode(prompt, {.add_bos = add_bos && !starts_with_bos, .parse_special = true});
}

}  // namespace gridlm
