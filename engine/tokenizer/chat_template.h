// Chat templates: turns a conversation into the prompt text a checkpoint was trained on, by
// rendering the checkpoint's own Jinja template (GGUF tokenizer.chat_template, HF
// tokenizer_config.json / chat_template.jinja, or a file given by the user) with engine/jinja,
// the way HF apply_chat_template does: variables messages, tools, documents,
// add_generation_prompt, bos_token, eos_token and the request's chat_template_kwargs.
#pragma once

#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <vector>

#include "engine/core/chat_message.h"  // ChatMessage (role, content, its JSON), ChatExtras
#include "engine/core/tokenizer_data.h"
#include "engine/jinja/template.h"
#include "engine/tokenizer/tokenizer.h"

namespace gridlm {

// A chat the template could not render (an error in the template, or the template refused the
// conversation with raise_exception). Its message names the template, the line and the reason.
class ChatTemplateError : public Error {
public:
    using Error::Error;
};

class ChatTemplate {
public:
    // Parses `jinja_source`; throws gridlm::Error ("chat template <origin>, line N: reason") for a
    // syntax error. bos_token / eos_token: the texts the template's variables hold (nullopt: the
    // variable is left undefined, as HF leaves it for a tokenizer without that token). origin
    // names the template in messages ("of the checkpoint", "file t.jinja").
    ChatTemplate(const std::string& jinja_source, std::optional<std::string> bos_token,
                 std::optional<std::string> eos_token, std::string origin);

    // The checkpoint's template with its BOS/EOS token texts; throws gridlm::Error when the
    // checkpoint has none. override_source (when not empty) replaces the checkpoint's template.
    static ChatTemplate from_tokenizer_data(const TokenizerData& data, const std::string& override_source = {},
                                            const std::string& override_origin = {});

    // The prompt text. Throws ChatTemplateError naming the template line and the reason when
    // rendering fails or the template calls raise_exception; gridlm::Error for an empty
    // conversation or malformed message/extras JSON.
    std::string apply(const std::vector<ChatMessage>& messages, const ChatExtras& extras = {}) const;

    // Where the template came from and its source's digest, for the start-up line:
    // "of the checkpoint (fnv 0123456789abcdef)".
    std::string name() const;

    // Fixes the time strftime_now() formats (tests).
    void set_now(std::time_t t) { options_.now = t; }

private:
    jinja::Template template_;
    std::optional<std::string> bos_token_, eos_token_;
    std::string origin_;
    std::string source_;
    jinja::RenderOptions options_;
};

// "fnv 0123456789abcdef": the FNV-1a 64 digest of a template's source, as names and manifests show it.
std::string chat_template_digest(const std::string& source);

// Ids of a rendered chat prompt, control tokens parsed. A template that writes BOS itself
// (DeepSeek-R1's {{bos_token}}) starts with its text, so BOS is added (when the checkpoint asks
// for it and add_bos) only if the prompt does not already begin with it: never doubled, as HF
// (add_special_tokens=False) and llama.cpp's chat path do.
std::vector<int32_t> encode_chat_prompt(const Tokenizer& tokenizer, const std::string& prompt, bool add_bos = true);

}  // namespace gridlm
