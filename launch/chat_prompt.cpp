// Chat rendering for the job loop (see chat_prompt.h).
#include "launch/chat_prompt.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/core/error.h"
#include "engine/tokenizer/tokenizer.h"

namespace gridlm {

std::string read_chat_template_file(const std::string& path) {
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec))
        throw Error(str("chat template file '", path, "' is a directory (give the .jinja file)"));
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
        if (!data.chat_template_tool_use.empty()) {
            tool_use_.emplace(
                ChatTemplate::from_tokenizer_data(data, data.chat_template_tool_use, "'tool_use' of the checkpoint"));
        }
    } catch (const Error& e) {
        tmpl_.reset();
        tool_use_.reset();
        reason_ = str("the checkpoint's chat template cannot be used (--chat-template FILE replaces it): ", e.what());
    }
}

std::string ChatPrompter::render(const std::vector<ChatMessage>& messages, const ChatExtras& extras) const {
    if (!tmpl_) throw Error(reason_);
    if (tool_use_ && !extras.tools_json.empty()) return tool_use_->apply(messages, extras);
    return tmpl_->apply(messages, extras);
}

std::vector<int32_t> ChatPrompter::encode(const Tokenizer& tokenizer, const std::vector<ChatMessage>& messages,
                                          const ChatExtras& extras) const {
    return encode_chat_prompt(tokenizer, render(messages, extras));
}

}  // namespace gridlm
