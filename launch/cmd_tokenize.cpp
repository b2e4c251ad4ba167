// `gridlm tokenize`: shows the token ids and pieces a checkpoint's tokenizer makes of a text, a
// file, or a chat (rendered with the checkpoint's chat template first).
#include <boost/program_options.hpp>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "engine/core/error.h"
#include "engine/tokenizer/chat_template.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/tokenizer/utf8.h"
#include "io/gguf.h"
#include "io/gguf_model.h"
#include "io/h5_checkpoint.h"
#include "io/hf_checkpoint.h"
#include "io/prompt_reader.h"
#include "launch/chat_prompt.h"
#include "launch/cli_options.h"
#include "launch/commands.h"

namespace gridlm {
namespace {

namespace po = boost::program_options;

const char* usage_head =
    "usage: gridlm tokenize --model M.h5 [--json] [--no-bos] [--no-special] TEXT...\n"
    "       gridlm tokenize --model M.h5 [--json] [--no-bos] [--no-special] --file PATH\n"
    "       gridlm tokenize --model M.h5 [--json] [--no-bos] --chat CHAT.json [--chat-template T.jinja]\n"
    "       gridlm tokenize --model M.h5 --chat CHAT.json [--chat-template T.jinja] --rendered\n"
    "       gridlm tokenize --model M.h5 --show-chat-template [tool_use]\n\n"
    "Prints the token ids of TEXT (several words are joined with single spaces), of the bytes of\n"
    "a file, or of a chat rendered with the checkpoint's chat template (or --chat-template's).\n"
    "CHAT.json is an array of messages ({\"role\": ..., \"content\": ...}, plus any member the\n"
    "template reads: tool_calls, name, reasoning_content...), or an object {\"messages\": [...],\n"
    "\"tools\": [...], \"documents\": [...], \"chat_template_kwargs\": {...},\n"
    "\"add_generation_prompt\": true|false (default true)}. --rendered prints exactly the rendered\n"
    "prompt text and nothing else. --show-chat-template prints the checkpoint's template source.\n\n"
    "Output: one line per token, `id<TAB>\"piece\"`, the piece being the token's text with\n"
    "\\n, \\t, \\\", \\\\ and \\xNN escapes (bytes of a character split over tokens appear as \\xNN);\n"
    "with --json exactly one line {\"ids\": [...], \"pieces\": [...]}.\n\n"
    "exit status: 0 success; 1 unreadable model or input, chat template error; 2 usage error\n\n"
    "options";

std::string read_input_file(const std::string& path, const char* what) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(str("cannot open ", what, " '", path, "'"));
    std::ostringstream ss;
    ss << in.rdbuf();
    if (in.bad()) throw Error(str("cannot read ", what, " '", path, "'"));
    return ss.str();
}

// A .gguf is read for its vocabulary only (its tensor data may be cut off), a directory as a
// Hugging Face model (config.json for the vocabulary size, tokenizer files); anything else is
// taken to be a native checkpoint.
TokenizerData load_tokenizer_data(const std::string& path) {
    if (!std::filesystem::exists(path)) throw Error(str("model file '", path, "' does not exist"));
    if (std::filesystem::is_directory(path)) {  // a Hugging Face model directory
        return hf_tokenizer_data(path, hf_model_config((std::filesystem::path(path) / "config.json").string()).n_vocab);
    }
    if (std::filesystem::path(path).extension() == ".gguf") {
        GgufFile gguf(path, /*need_tensor_data=*/false);
        return gguf_tokenizer_data(gguf);
    }
    H5Checkpoint checkpoint(path);
    return checkpoint.tokenizer();
}

// A token's bytes for display: printable characters as they are, the rest escaped, so that
// every piece fits on one line and whitespace is visible.
std::string escape_piece(const std::string& bytes) {
    static const char* hex = "0123456789abcdef";
    std::string out = "\"";
    size_t pos = 0;
    while (pos < bytes.size()) {
        const auto c = static_cast<uint8_t>(bytes[pos]);
        const size_t n = utf8::sequence_length(bytes, pos);
        if (n > 1) {
            out.append(bytes, pos, n);
            pos += n;
            continue;
        }
        ++pos;
        if (c == '\n')
            out += "\\n";
        else if (c == '\t')
            out += "\\t";
        else if (c == '\r')
            out += "\\r";
        else if (c == '"')
            out += "\\\"";
        else if (c == '\\')
            out += "\\\\";
        else if (c >= 0x20 && c < 0x7F)
            out += static_cast<char>(c);
        else
            out += {'\\', 'x', hex[c >> 4], hex[c & 15]};
    }
    return out + "\"";
}

std::string json_line(const Tokenizer& tok, const std::vector<int32_t>& ids) {
    std::string out = "{\"ids\": [";
    for (size_t i = 0; i < ids.size(); ++i) out += (i ? ", " : "") + std::to_string(ids[i]);
    out += "], \"pieces\": [";
    for (size_t i = 0; i < ids.size(); ++i) {
        // Bytes of a character split over tokens are not UTF-8 on their own: shown as U+FFFD.
        out += (i ? ", " : "") +
               nlohmann::json(tok.token_bytes(ids[i])).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    }
    return out + "]}";
}

int run_tokenize(const std::vector<std::string>& args) {
    po::options_description opts(usage_head);
    opts.add_options()("help,h", "show this help and exit")(
        "model", po::value<std::string>(),
        "checkpoint: a gridlm .h5 (from `gridlm convert`, --vocab-only is enough), "
        "a .gguf (vocabulary read only) or a Hugging Face model directory (config.json and tokenizer files); "
        "required")("json", po::bool_switch(),
                    "print one JSON line {\"ids\": [...], \"pieces\": [...]} (default: one line per token)")(
        "file", po::value<std::string>(), "tokenize the bytes of this file instead of TEXT")(
        "chat", po::value<std::string>(), "render this JSON chat with the checkpoint's chat template, then tokenize")(
        "chat-template", po::value<std::string>(),
        "with --chat: render with this Jinja file instead of the checkpoint's template")(
        "rendered", po::bool_switch(), "with --chat: print the rendered prompt text instead of token ids")(
        "show-chat-template", po::value<std::string>()->implicit_value("default"),
        "print the checkpoint's chat template source as stored (default, or its named tool_use template) and "
        "exit: a start for a --chat-template file")(
        "no-bos", po::bool_switch(),
        "do not prepend BOS (default: prepended when the checkpoint asks for it; "
        "with --chat never doubled when the template writes it)")(
        "no-special", po::bool_switch(),
        "read control tokens written in the text (<|im_start|>, ...) as plain "
        "text (default: matched as the special tokens they name)");
    add_log_options(opts);
    po::options_description hidden;
    hidden.add_options()("text", po::value<std::vector<std::string>>(), "text");
    po::options_description all;
    all.add(opts).add(hidden);
    po::positional_options_description positional;
    positional.add("text", -1);

    const po::variables_map vm = parse_options(args, all, &positional);
    if (vm.count("help")) {
        std::cout << opts << "\n";
        return exit_ok;
    }
    apply_log_options(vm);
    require_options(vm, {"model"});
    if (vm.count("show-chat-template")) {
        const std::string which = vm["show-chat-template"].as<std::string>();
        if (which != "default" && which != "tool_use")
            throw UsageError("--show-chat-template takes default or tool_use, got '" + which + "'");
        if (vm.count("text") || vm.count("file") || vm.count("chat"))
            throw UsageError("--show-chat-template takes no TEXT, --file or --chat");
        const TokenizerData data = load_tokenizer_data(vm["model"].as<std::string>());
        const std::string& source = which == "default" ? data.chat_template : data.chat_template_tool_use;
        if (source.empty())
            throw Error(str("the checkpoint has no ", which == "default" ? "" : "tool_use ", "chat template"));
        std::cout << source;
        std::cout.flush();
        if (!std::cout) throw Error("cannot write the output");
        return exit_ok;
    }
    const int n_inputs = static_cast<int>(vm.count("text") > 0) + static_cast<int>(vm.count("file") > 0) +
                         static_cast<int>(vm.count("chat") > 0);
    if (n_inputs != 1) throw UsageError("give exactly one of TEXT, --file PATH or --chat MESSAGES.json");
    const bool no_bos = vm["no-bos"].as<bool>();
    const bool no_special = vm["no-special"].as<bool>();
    if (no_special && vm.count("chat")) throw UsageError("--no-special cannot be combined with --chat");
    const bool rendered = vm["rendered"].as<bool>();
    if ((rendered || vm.count("chat-template")) && !vm.count("chat"))
        throw UsageError("--rendered and --chat-template go with --chat");
    if (rendered && vm["json"].as<bool>()) throw UsageError("--rendered cannot be combined with --json");

    // Read the inputs before the (slower) model, so that a bad input file fails fast.
    std::string text;
    ChatFile chat;
    std::string chat_template;
    if (vm.count("chat")) {
        chat = read_chat_file(vm["chat"].as<std::string>());
        if (vm.count("chat-template")) chat_template = read_chat_template_file(vm["chat-template"].as<std::string>());
    } else if (vm.count("file")) {
        text = read_input_file(vm["file"].as<std::string>(), "input file");
    } else {
        const auto& words = vm["text"].as<std::vector<std::string>>();
        for (size_t i = 0; i < words.size(); ++i) text += (i ? " " : "") + words[i];
    }

    const TokenizerData data = load_tokenizer_data(vm["model"].as<std::string>());
    const Tokenizer tok(data);
    std::vector<int32_t> ids;
    if (vm.count("chat")) {
        // The same choice of template as a generate job makes (the checkpoint's tool_use one for a
        // chat with tools).
        const ChatPrompter prompter(
            data, chat_template,
            vm.count("chat-template") ? str("file '", vm["chat-template"].as<std::string>(), "'") : std::string());
        const std::string prompt = prompter.render(chat.messages, chat.extras);
        if (rendered) {
            std::cout << prompt;
            std::cout.flush();
            if (!std::cout) throw Error("cannot write the output");
            return exit_ok;
        }
        ids = encode_chat_prompt(tok, prompt, !no_bos);
    } else {
        ids = tok.encode(text, {.add_bos = !no_bos, .parse_special = !no_special});
    }

    if (vm["json"].as<bool>()) {
        std::cout << json_line(tok, ids) << "\n";
    } else {
        std::string out;
        for (int32_t id : ids) out += std::to_string(id) + "\t" + escape_piece(tok.token_bytes(id)) + "\n";
        std::cout << out;
    }
    std::cout.flush();
    if (!std::cout) throw Error("cannot write the output");
    return exit_ok;
}

}  // namespace
}  // namespace gridlm

GRIDLM_COMMAND(tokenize, "tokenize", "show the token ids of a text or a chat (tokenizer and chat template check)",
               gridlm::run_tokenize);
