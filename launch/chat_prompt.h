// Renders a request's chat messages with the checkpoint's chat template and tokenizes them.
// A checkpoint without a usable template still serves plain prompts: chat requests then fail one
// by one with the reason instead of stopping the job.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/core/chat_message.h"
#include "engine/tokenizer/chat_template.h"

namespace gridlm {

class Tokenizer;
struct TokenizerData;

class ChatPrompter {
public:
    explicit ChatPrompter(const TokenizerData& data);

    bool available() const { return tmpl_.has_value(); }
    const std::string& unavailable_reason() const { return reason_; }
    std::string template_name() const { return tmpl_ ? tmpl_->name() : std::string("none"); }

    // Adds the generation prompt. Throws gridlm::Error when no template is available or for a
    // role the template does not render.
    std::vector<int32_t> encode(const Tokenizer& tokenizer, const std::vector<ChatMessage>& messages) const;

private:
    std::optional<ChatTemplate> tmpl_;
    std::string reason_;
};

}  // namespace gridlm
