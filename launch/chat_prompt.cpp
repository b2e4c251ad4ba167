// Chat rendering for the job loop (see chat_prompt.h).
#include "launch/chat_prompt.h"

#include "engine/core/error.h"
#include "engine/tokenizer/tokenizer.h"

namespace gridlm {

ChatPrompter::ChatPrompter(const TokenizerData& data) {
    if (data.chat_template.empty()) {
        reason_ = "the checkpoint has no chat template; give a plain 'prompt' instead of 'messages'";
        return;
    }
    try {
        tmpl_.emplace(ChatTemplate::from_tokenizer_data(data));
    } catch (const Error& e) {
        reason_ = str("the checkpoint's chat template cannot be rendered: ", e.what());
    }
}

std::vector<int32_t> ChatPrompter::encode(const Tokenizer& tokenizer, const std::vector<ChatMessage>& messages) const {
    if (!tmpl_) throw Error(reason_);
    return encode_chat_prompt(tokenizer, tmpl_->apply(messages, /*add_generation_prompt=*/true));
}

}  // namespace gridlm
