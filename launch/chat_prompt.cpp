// Chat rendering for the job loop (see chat_prompt.h).
#include "launch/chat_prompt.h"

#include <fstream>
#include <sstream>

#include "engine/core/error.h"
#include "engine/tokenizer/tokenizer.h"

namespace gridlm {

std::string read_chat_template_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(str("cannot open chat template file '", path, "'"));
    std::ostringstream ss;
    ss << in.rdbuf();
    if (in.bad()) throw Error(str("cannot read chat template file '", path, "'"));
    if (ss.str().empty()) throw Error(str("chat template file '", path, "' is empty"));
    return ss.str();
}

ChatPrompter::ChatPrompter(const TokenizerData& data, const std::string& override_source,
                           const std::string& override_origin) {
    if (!override_source.empty()) {
        tmpl_.emplace(ChatTemplate::from_tokenizer_data(data, override_source, override_origin));
        return;
    }
    if (data.chat_template.empty()) {
        reason_ =
            "the checkpoint has no chat template; give a plain 'prompt' instead of 'messages', or a template with "
            "--chat-template";
        return;
    }
    try {
        tmpl_.emplace(ChatTemplate::from_tokenizer_data(data));
    } catch (const Error& e) {
        reason_ = str("the checkpoint's chat template cannot be used (--chat-template FILE replaces it): ", e.what());
    }
}

std::vector<int32_t> ChatPrompter::encode(const Tokenizer& tokenizer, const std::vector<ChatMessage>& messages,
                                          const ChatExtras& extras) const {
    if (!tmpl_) throw Error(reason_);
    return encode_chat_prompt(tokenizer, tmpl_->apply(messages, extras));
}

}  // namespace gridlm
