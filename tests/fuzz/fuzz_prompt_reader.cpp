// libFuzzer target for the prompt reader: any bytes as a prompts file, read to the end in each
// format (auto-detected by content, auto by the .txt extension, txt, jsonl, openai), and as a
// `gridlm tokenize --chat` conversation file. A RecordError or gridlm::Error is an expected
// outcome; a crash, a sanitizer report, a leak or a hang is a bug.
//   mkdir -p /tmp/fuzz_prompt_reader && build-fuzz/bin/fuzz_prompt_reader -dict=tests/fuzz/fuzz_prompt_reader.dict
//   /tmp/fuzz_prompt_reader tests/fuzz/corpus/fuzz_prompt_reader
#include <cstddef>
#include <cstdint>
#include <memory>
#include <sstream>
#include <string>
#include <variant>

#include "engine/core/error.h"
#include "fuzz_support.h"
#include "io/prompt_reader.h"

namespace {

// Touches every field of a record so that a dangling or uninitialised value shows up.
size_t weigh(const gridlm::ReadRecord& rec) {
    if (const auto* err = std::get_if<gridlm::RecordError>(&rec)) {
        return err->ref.id.size() + err->code.size() + err->message.size();
    }
    const auto& req = std::get<gridlm::Request>(rec);
    size_t n = req.ref.id.size() + req.prompt.size() + req.prompt_token_ids.size() + req.completion.size() +
               req.completion_token_ids.size();
    for (const auto& m : req.messages) n += m.role.size() + m.content.size();
    return n;
}

void read_all(const std::string& bytes, const std::string& name, gridlm::InputFormat format) {
    gridlm::PromptReaderOptions options;
    options.format = format;
    try {
        gridlm::PromptReader reader(std::make_unique<std::istringstream>(bytes), name, options);
        size_t total = 0;
        while (auto rec = reader.next()) total += weigh(*rec);
        if (reader.records_read() > bytes.size() + 1) __builtin_trap();  // more records than lines
        (void)total;
    } catch (const gridlm::Error&) {
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using gridlm::InputFormat;
    const std::string bytes(reinterpret_cast<const char*>(data), size);
    read_all(bytes, "prompts", InputFormat::input_format_auto);
    read_all(bytes, "prompts.txt", InputFormat::input_format_auto);
    read_all(bytes, "prompts", InputFormat::input_format_txt);
    read_all(bytes, "prompts", InputFormat::input_format_jsonl);
    read_all(bytes, "prompts", InputFormat::input_format_openai);
    try {
        const gridlm::ChatFile chat = gridlm::read_chat_file(gridlm::fuzz::write_scratch("chat.json", data, size));
        (void)chat;
    } catch (const gridlm::Error&) {
    }
    return 0;
}
