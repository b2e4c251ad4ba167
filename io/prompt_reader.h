// Streaming prompt reader: .txt (one prompt per line), JSONL ({"id","prompt"|"messages",...})
// and OpenAI batch input. One record in memory at a time; a bad record becomes a RecordError.
#pragma once

#include <cstdint>
#include <istream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <variant>

#include "engine/core/request.h"
#include "engine/core/sampling_fields.h"  // SamplingLimits, validate_sampling_params

namespace gridlm {

enum class InputFormat : uint8_t {
    input_format_auto,    // by extension (.txt), else by the first record
    input_format_txt,     // one prompt per line, blank lines skipped; id = line number
    input_format_jsonl,   // {"id", "prompt" | "messages", sampling fields...}
    input_format_openai,  // {"custom_id", "method", "url", "body": {...}}
};

InputFormat input_format_from_name(std::string_view name);  // throws Error
const char* input_format_name(InputFormat f);

// True when s is well-formed UTF-8 (no overlongs, surrogates or code points above U+10FFFF);
// else *bad_offset (when given) is the byte offset of the first bad sequence.
bool is_valid_utf8(std::string_view s, size_t* bad_offset = nullptr);

// A conversation in a file (`gridlm tokenize --chat`): a JSON array of messages, or an object
// with "messages" and the optional "tools", "documents", "chat_template_kwargs" and
// "add_generation_prompt" (default true), each checked as in a JSONL record. Throws Error naming
// the file and what is wrong.
struct ChatFile {
    std::vector<ChatMessage> messages;
    ChatExtras extras;
};
ChatFile read_chat_file(const std::string& path);

struct PromptReaderOptions {
    InputFormat format = InputFormat::input_format_auto;
    SamplingParams defaults;  // for every field a record does not set
    SamplingLimits limits;
    // Keeps a 64-bit hash per id seen (about 40 bytes a record) to report repeated ids as
    // errors; the only state that grows with the number of records.
    bool reject_duplicate_ids = true;
};

using ReadRecord = std::variant<Request, RecordError>;

class PromptReader {
public:
    // path "-" reads standard input. Reads up to the first record to settle the format. Throws
    // Error when the file cannot be opened.
    PromptReader(const std::string& path, PromptReaderOptions options);
    // Reads from any stream (tests); `name` is used in messages and for format detection.
    PromptReader(std::unique_ptr<std::istream> in, std::string name, PromptReaderOptions options);

    // The next record (a Request, or a RecordError naming its line), nullopt at the end.
    // Throws Error only when the stream itself fails.
    std::optional<ReadRecord> next();

    // Resolved at construction (the first record is read ahead to detect it).
    InputFormat format() const { return format_; }
    uint64_t records_read() const { return n_records_; }
    int64_t lines_read() const { return line_no_; }

private:
    void prime();
    bool read_line(std::string& line);  // next physical line, '\r' stripped; false at EOF
    bool next_content_line(std::string& line, int64_t& line_no);
    void detect_format(const std::string& first_line);
    ReadRecord parse_txt(std::string&& line, int64_t line_no);
    ReadRecord parse_json(const std::string& line, int64_t line_no);

    std::unique_ptr<std::istream> in_;
    std::string name_;
    PromptReaderOptions options_;
    InputFormat format_;
    std::optional<std::pair<std::string, int64_t>> peeked_;  // first content line, read ahead to detect
    std::string line_;
    int64_t line_no_ = 0;
    uint64_t n_records_ = 0;
    std::unordered_set<uint64_t> seen_ids_;
};

// Records in a file when cheap to count (a regular file of at most max_bytes): its non-blank
// lines. nullopt for stdin, pipes and larger files (progress then shows a rate only).
std::optional<int64_t> count_records(const std::string& path, uint64_t max_bytes = uint64_t(1) << 30);

}  // namespace gridlm
