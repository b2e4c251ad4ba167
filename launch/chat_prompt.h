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

// The text of a --chat-template file; throws Error when it cannot be read or is empty.
std::string read_chat_template_file(const std::string& path);

class ChatPrompter {
public:
    // override_source: Jinja text replacing the checkpoint's template (--chat-template), named
    // override_origin in messages; empty: the checkpoint's. A bad override is an Error here (a
    // start-up error); a bad template in the checkpoint only makes chat requests fail, one by one.
    explicit ChatPrompter(const TokenizerData& data, const std::string& override_source = {},
                          const std::string& override_origin = {});

    bool available() const { return tmpl_.has_value(); }
    const std::string& unavailable_reason() const { return reason_; }
    std::string template_name() const { return tmpl_ ? tmpl_->name() : std::string("none"); }

    // The prompt text of a chat: the override if given, else the checkpoint's "tool_use" template
    // when the request has tools and the checkpoint has one (as HF picks it), else its default
    // template. Throws as encode(); also ChatTemplateError when the request gives a non-empty
    // "tools" or "documents" array and the chosen template never reads that variable (the
    // request would otherwise run without them, unnoticed).
    std::string render(const std::vector<ChatMessage>& messages, const ChatExtras& extras) const;

    // Renders and tokenizes a request's chat. Throws gridlm::Error when no template is available,
    // ChatTemplateError when the template fails on or refuses this chat.
    std::vector<int32_t> encode(const Tokenizer& tokenizer, const std::vector<ChatMessage>& messages,
                                const ChatExtras& extras) const;

private:
    // The variables of ChatExtras a template's source reads.
    struct Reads {
        bool tools = false, documents = false;
    };
    static Reads reads_of(const std::string& source);

    std::optional<ChatTemplate> tmpl_;
    std::optional<ChatTemplate> tool_use_;  // the checkpoint's named tool_use template
    Reads tmpl_reads_, tool_use_reads_;
    std::string reason_;
};

}  // namespace gridlm
