// Chat rendering bridge (see chat_prompt.h).
#include "launch/chat_prompt.h"

#include "engine/core/error.h"
#include "engine/tokenizer/chat_template.h"
#include "engine/tokenizer/tokenizer.h"

namespace gridlm {

struct ChatPrompter::Impl {
    ChatTemplate tmpl;
};

ChatPrompter::ChatPrompter(const TokenizerData& data) {
    if (data.chat_template.empty()) {
        reason_ = "the checkpoint has no chat template; give a plain 'prompt' instead of 'messages'";
        return;
    }
    try {
        impl_ = std::make_unique<Impl>(Impl{ChatTemplate::from_tokenizer_data(data)});
    } catch (const Error& e) {
        reason_ = str("the checkpoint's chat template cannot be rendered: ", e.what());
    }
}

ChatPrompter::~ChatPrompter() = default;

bool ChatPrompter::available() const { return impl_ != nullptr; }

std::string ChatPrompter::template_name() const { return impl_ ? impl_->tmpl.name() : std::string("none"); }

std::vector<int32_t> ChatPrompter::encode(const Tokenizer& tokenizer, const std::vector<std::string>& roles,
                                          const std::vector<std::string>& contents) const {
    if (!impl_) throw Error(reason_);
    std::vector<ChatMessage> messages(roles.size());
    for (size_t i = 0; i < roles.size(); ++i) messages[i] = {roles[i], contents[i]};
    return encode_chat_prompt(tokenizer, impl_->tmpl.apply(messages, /*add_generation_prompt=*/true));
}

}  // namespace gridlm
