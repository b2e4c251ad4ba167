// Streaming prompt reader: .txt (one prompt per line), JSONL ({"id","prompt"|"messages",...})
// and OpenAI batch input. One record in memory at a time; a bad record becomes a RecordError.
#pragma once

#include <cstdint>
#include <deque>
#include <istream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "engine/core/compact_sets.h"
#include "engine/core/request.h"
#include "engine/core/sampling_fields.h"  // SamplingLimits, validate_sampling_params

namespace gridlm {

enum class InputFormat : uint8_t {
    input_format_auto,    // .txt by extension, else from the first lines (see PromptReader)
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
    // Keeps a 64-bit hash per id seen (11-21 bytes a record, Hash64Set) to report repeated ids as
    // errors; the only state that grows with the number of records.
    bool reject_duplicate_ids = true;
    // A field gridlm does not know is the record's error ("unknown_field") instead of being
    // counted in unknown_fields_summary().
    bool strict_fields = false;
};

// Lines the reader looks at to detect the input format (the first non-blank ones; fewer when the
// file is shorter). They are held in memory and replayed: records keep their lines and numbers.
constexpr int format_sample_lines = 64;

using ReadRecord = std::variant<Request, RecordError>;

// Format detection (InputFormat::input_format_auto): a name ending in .txt is text. Otherwise
// the first format_sample_lines non-blank lines are classified: an object with "custom_id" and
// "body" (OpenAI batch), another JSON object, a line starting with '{' that does not parse, or
// not JSON. A name ending in .jsonl / .json, or at least as many object lines as non-JSON lines
// (and at least one), makes the input JSON; it is an OpenAI batch when at least half of its
// JSON-looking lines are batch requests (a broken line counts as one when it mentions both
// "custom_id" and "body"), else JSONL. Everything else is text. A record that then fails in a way
// that points at a wrong guess gets a message naming the detected format, the sampled lines and
// --input-format.
class PromptReader {
public:
    // path "-" reads standard input. Reads up to format_sample_lines lines ahead to settle the
    // format (standard input: the job starts once they or the end have arrived). Throws Error when
    // the file cannot be opened.
    PromptReader(const std::string& path, PromptReaderOptions options);
    // Reads from any stream (tests); `name` is used in messages and for format detection.
    PromptReader(std::unique_ptr<std::istream> in, std::string name, PromptReaderOptions options);

    // The next record (a Request, or a RecordError naming its line), nullopt at the end.
    // Throws Error only when the stream itself fails.
    std::optional<ReadRecord> next();

    // Resolved at construction (the first lines are read ahead to detect it).
    InputFormat format() const { return format_; }
    // How the format was settled, for the log, e.g. "input format: openai (detected from 63 of
    // 64 sampled lines, 1..64; --input-format overrides)".
    const std::string& format_note() const { return format_note_; }
    uint64_t records_read() const { return n_records_; }
    int64_t lines_read() const { return line_no_; }  // physical lines, read-ahead included

    // Fields no rule knows, by name ("body.x" inside an OpenAI body), and how many records had
    // any; at most 64 names are told apart (the rest count as "(other)").
    const std::map<std::string, uint64_t>& unknown_fields() const { return unknown_fields_; }
    uint64_t records_with_unknown_fields() const { return n_unknown_records_; }
    // "3 records had fields gridlm does not know (ignored): foo (2), body.bar (1)"; empty when none.
    std::string unknown_fields_summary() const;

private:
    void prime();
    bool read_line(std::string& line);  // next physical line, '\r' stripped; false at EOF
    bool next_content_line(std::string& line, int64_t& line_no);
    void detect_format();
    std::string misdetection_hint(const std::string& line, const std::string& code) const;
    ReadRecord parse_txt(std::string&& line, int64_t line_no);
    ReadRecord parse_json(const std::string& line, int64_t line_no);

    std::unique_ptr<std::istream> in_;
    std::string name_;
    PromptReaderOptions options_;
    InputFormat format_;
    bool detected_from_lines_ = false;  // format_ guessed from the content
    int64_t sample_first_ = 0, sample_last_ = 0;
    std::string format_note_;
    std::deque<std::pair<std::string, int64_t>> peeked_;  // content lines read ahead, with their numbers
    std::string line_;
    int64_t line_no_ = 0;
    uint64_t n_records_ = 0;
    Hash64Set seen_ids_;
    std::map<std::string, uint64_t> unknown_fields_;
    uint64_t n_unknown_records_ = 0;
    std::vector<std::string> unknown_scratch_;
};

// Records in a file when cheap to count (a regular file of at most max_bytes): its non-blank
// lines. nullopt for stdin, pipes and larger files (progress then shows a rate only).
std::optional<int64_t> count_records(const std::string& path, uint64_t max_bytes = uint64_t(1) << 30);

}  // namespace gridlm
