// Chat templates: turns a conversation into the prompt text a checkpoint was trained on.
// The checkpoint's Jinja source is recognised among known templates (no general Jinja engine)
// and rendered natively, byte-identical to HF apply_chat_template with add_generation_prompt.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/core/chat_message.h"  // ChatMessage: role (system, user, assistant, tool) + content
#include "engine/core/tokenizer_data.h"
#include "engine/tokenizer/tokenizer.h"

namespace gridlm {

enum class ChatStyle {
    chat_style_chatml,       // <|im_start|>role\n...<|im_end|>\n for any role (SmolLM2, plain ChatML)
    chat_style_qwen2,        // ChatML with Qwen2.5's role rules (tool results folded into a user turn)
    chat_style_deepseek_r1,  // BOS + system + <｜User｜>/<｜Assistant｜> turns; earlier <think> dropped
};

class ChatTemplate {
public:
    // Recognises `jinja_source`; throws gridlm::Error naming its first line when it is not one of
    // the known templates. bos_token / eos_token are the texts the template's variables hold.
    ChatTemplate(const std::string& jinja_source, std::string bos_token, std::string eos_token);

    // From a checkpoint's tokenizer: its chat_template with its BOS/EOS token texts.
    static ChatTemplate from_tokenizer_data(const TokenizerData& data);

    // The prompt text. Throws gridlm::Error for an empty conversation or a role the template
    // does not render.
    std::string apply(const std::vector<ChatMessage>& messages, bool add_generation_prompt = true) const;

    const std::string& name() const { return name_; }
    ChatStyle style() const { return style_; }
    // ChatML: the system prompt inserted when the conversation does not start with one
    // (has_default_system() false: none inserted). DeepSeek-R1: unused.
    bool has_default_system() const { return has_default_system_; }
    const std::string& default_system() const { return default_system_; }

    // Names of the recognised templates, for messages.
    static std::string known_templates();

private:
    std::string render_chatml(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const;
    std::string render_deepseek_r1(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const;

    std::string name_;
    ChatStyle style_ = ChatStyle::chat_style_chatml;
    bool has_default_system_ = false;
    std::string default_system_;
    std::string generation_suffix_;  // DeepSeek-R1: text after <｜Assistant｜> in the generation prompt
    std::string bos_token_;
    std::string eos_token_;
};

// Ids of a rendered chat prompt, control tokens parsed. A template that writes BOS itself
// (DeepSeek-R1's {{bos_token}}) starts with its text, so BOS is added (when the checkpoint asks
// for it and add_bos) only if the prompt does not already begin with it: never doubled, as HF
// (add_special_tokens=False) and llama.cpp's chat path do.
std::vector<int32_t> encode_chat_prompt(const Tokenizer& tokenizer, const std::string& prompt, bool add_bos = true);

}  // namespace gridlm
