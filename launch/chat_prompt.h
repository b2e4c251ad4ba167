// Renders a request's chat messages with the checkpoint's chat template and tokenizes them.
// Kept apart from the Request headers while engine/tokenizer/chat_template.h still declares its
// own ChatMessage (the same struct as engine/core/chat_message.h); fold in once it includes that.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace gridlm {

class Tokenizer;
struct TokenizerData;

class ChatPrompter {
public:
    // Recognises the checkpoint's template. When it has none or an unknown one, chat requests
    // fail one by one with the reason (plain prompts still run).
    explicit ChatPrompter(const TokenizerData& data);
    ~ChatPrompter();

    bool available() const;
    const std::string& unavailable_reason() const { return reason_; }
    std::string template_name() const;

    // roles[i] / contents[i] are the turns; adds the generation prompt. Throws gridlm::Error for a
    // role the template does not render.
    std::vector<int32_t> encode(const Tokenizer& tokenizer, const std::vector<std::string>& roles,
                                const std::vector<std::string>& contents) const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
    std::string reason_;
};

}  // namespace gridlm
