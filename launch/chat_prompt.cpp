// Chat rendering for the job loop (see chat_prompt.h).
#include "launch/chat_prompt.h"

#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <tuple>

#include "engine/core/error.h"
#include "engine/tokenizer/chat_template.h"
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
        tmpl_reads_ = reads_of(override_source);
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
        tmpl_reads_ = reads_of(data.chat_template);
        tool_use_reads_ = reads_of(data.chat_template_tool_use);
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

namespace {

// True when `name` occurs in source as a whole identifier (not inside custom_tools, tools_list...).
bool mentions_identifier(const std::string& source, const std::string& name) {
    auto ident = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
    for (size_t at = source.find(name); at != std::string::npos; at = source.find(name, at + 1)) {
        const size_t end = at + name.size();
        if ((at == 0 || !ident(source[at - 1])) && (end == source.size() || !ident(source[end]))) return true;
    }
    return false;
}

// A non-empty JSON array as ChatExtras holds it ("" and "[]" are none).
bool given(const std::string& json_array) { return !json_array.empty() && json_array != "[]"; }

}  // namespace

ChatPrompter::Reads ChatPrompter::reads_of(const std::string& source) {
    return Reads{mentions_identifier(source, "tools"), mentions_identifier(source, "documents")};
}

std::string ChatPrompter::render(const std::vector<ChatMessage>& messages, const ChatExtras& extras) const {
    if (!tmpl_) throw Error(reason_);
    const bool tools = given(extras.tools_json);
    const bool use_tool_template = tool_use_ && tools;
    const ChatTemplate& t = use_tool_template ? *tool_use_ : *tmpl_;
    const Reads& reads = use_tool_template ? tool_use_reads_ : tmpl_reads_;
    for (const auto& [wanted, read, what] : {std::tuple{tools, reads.tools, "tools"},
                                             std::tuple{given(extras.documents_json), reads.documents, "documents"}}) {
        if (wanted && !read)
            throw ChatTemplateError(str("field '", what, "' was given but chat template ", t.name(), " does not use '",
                                        what,
                                        "'; remove the field, or give a template that uses it "
                                        "with --chat-template"));
    }
    return t.apply(messages, extras);
}

std::vector<int32_t> ChatPrompter::encode(const Tokenizer& tokenizer, const std::vector<ChatMessage>& messages,
                                          const ChatExtras& extras) const {
    return encode_chat_prompt(tokenizer, render(messages, extras));
}

}  // namespace gridlm
