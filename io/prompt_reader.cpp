// Streaming prompt reader (see prompt_reader.h): format detection, per-record parsing and
// validation. Every problem with one record becomes a RecordError; the job goes on.
#include "io/prompt_reader.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <type_traits>
#include <variant>

#include "engine/core/error.h"
#include "engine/core/hash.h"
#include "io/record_fields.h"

namespace gridlm {

using json = record_json;

InputFormat input_format_from_name(std::string_view name) {
    if (name == "auto") return InputFormat::input_format_auto;
    if (name == "txt") return InputFormat::input_format_txt;
    if (name == "jsonl") return InputFormat::input_format_jsonl;
    if (name == "openai") return InputFormat::input_format_openai;
    throw Error(str("unknown input format '", name, "' (expected auto, txt, jsonl or openai)"));
}

const char* input_format_name(InputFormat f) {
    switch (f) {
        case InputFormat::input_format_auto:
            return "auto";
        case InputFormat::input_format_txt:
            return "txt";
        case InputFormat::input_format_jsonl:
            return "jsonl";
        case InputFormat::input_format_openai:
            return "openai";
    }
    return "?";
}

bool is_valid_utf8(std::string_view s, size_t* bad_offset) {
    const auto* b = reinterpret_cast<const unsigned char*>(s.data());
    const size_t n = s.size();
    size_t i = 0;
    while (i < n) {
        const unsigned char c = b[i];
        if (c < 0x80) {
            ++i;
            continue;
        }
        size_t len;
        uint32_t cp;
        if ((c & 0xe0) == 0xc0) {
            len = 2;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4;
            cp = c & 0x07;
        } else {
            if (bad_offset) *bad_offset = i;
            return false;
        }
        bool ok = i + len <= n;
        for (size_t k = 1; ok && k < len; ++k) {
            ok = (b[i + k] & 0xc0) == 0x80;
            cp = (cp << 6) | (b[i + k] & 0x3f);
        }
        static constexpr uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (!ok || cp < min_cp[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            if (bad_offset) *bad_offset = i;
            return false;
        }
        i += len;
    }
    return true;
}

PromptReader::PromptReader(const std::string& path, PromptReaderOptions options)
    : name_(path), options_(std::move(options)), format_(options_.format) {
    if (path == "-") {
        // Borrow std::cin's buffer through a non-owning stream so the reader owns what it holds.
        in_ = std::make_unique<std::istream>(std::cin.rdbuf());
        prime();
        return;
    }
    if (std::filesystem::is_directory(path)) throw Error(str("prompts file ", path, " is a directory"));
    auto f = std::make_unique<std::ifstream>(path, std::ios::binary);
    if (!*f) throw Error(str("cannot open prompts file ", path, ": ", std::strerror(errno)));
    in_ = std::move(f);
    prime();
}

PromptReader::PromptReader(std::unique_ptr<std::istream> in, std::string name, PromptReaderOptions options)
    : in_(std::move(in)), name_(std::move(name)), options_(std::move(options)), format_(options_.format) {
    prime();
}

bool PromptReader::read_line(std::string& line) {
    if (!std::getline(*in_, line)) {
        if (in_->bad()) throw Error(str("read error on prompts file ", name_, " after line ", line_no_));
        return false;
    }
    ++line_no_;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line_no_ == 1 && line.compare(0, 3, "\xEF\xBB\xBF") == 0) line.erase(0, 3);  // UTF-8 BOM
    return true;
}

static bool is_blank(const std::string& s) { return s.find_first_not_of(" \t\r\n\f\v") == std::string::npos; }

bool PromptReader::next_content_line(std::string& line, int64_t& line_no) {
    if (!peeked_.empty()) {
        line = std::move(peeked_.front().first);
        line_no = peeked_.front().second;
        peeked_.pop_front();
        return true;
    }
    while (read_line(line)) {
        if (!is_blank(line)) {
            line_no = line_no_;
            return true;
        }
    }
    return false;
}

static bool ends_with(const std::string& s, const char* suffix) {
    const size_t n = std::strlen(suffix);
    return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

namespace {

enum class LineKind : uint8_t { openai_object, json_object, broken_batch, broken_object, not_json };

bool starts_object(const std::string& line) {
    const size_t start = line.find_first_not_of(" \t");
    return start != std::string::npos && line[start] == '{';
}

// What one sampled line looks like, for format detection. A line starting with '{' that does not
// parse is a broken batch request when it mentions both "custom_id" and "body".
LineKind classify_line(const std::string& line) {
    if (!starts_object(line)) return LineKind::not_json;
    const bool batch = line.find("\"custom_id\"") != std::string::npos && line.find("\"body\"") != std::string::npos;
    if (json_nesting_depth(line) > max_record_depth) return batch ? LineKind::broken_batch : LineKind::broken_object;
    json j;
    try {
        j = json::parse(line);
    } catch (const json::out_of_range&) {
        // Well-formed JSON with a number beyond a double (1e400): a record of the format, whose
        // own error line will say so.
        return batch ? LineKind::openai_object : LineKind::json_object;
    } catch (const json::exception&) {
        return batch ? LineKind::broken_batch : LineKind::broken_object;
    }
    if (!j.is_object()) return batch ? LineKind::broken_batch : LineKind::broken_object;
    return j.contains("custom_id") && j.contains("body") ? LineKind::openai_object : LineKind::json_object;
}

}  // namespace

void PromptReader::detect_format() {
    if (format_ != InputFormat::input_format_auto) {
        format_note_ = str("input format: ", input_format_name(format_), " (--input-format)");
        return;
    }
    if (ends_with(name_, ".txt")) {
        format_ = InputFormat::input_format_txt;
        format_note_ = "input format: txt (a .txt file; --input-format overrides)";
        return;
    }
    // Counts of the sampled lines: parsing objects (batch requests among them), broken lines
    // that start with '{' (those that look like batch requests among them), and not JSON.
    int objects = 0, batch = 0, broken = 0, broken_batch = 0, text = 0;
    for (const auto& [line, no] : peeked_) {
        switch (classify_line(line)) {
            case LineKind::openai_object:
                ++objects;
                ++batch;
                break;
            case LineKind::json_object:
                ++objects;
                break;
            case LineKind::broken_batch:
                ++broken;
                ++broken_batch;
                break;
            case LineKind::broken_object:
                ++broken;
                break;
            case LineKind::not_json:
                ++text;
                break;
        }
    }
    const int sampled = (int)peeked_.size();
    const bool json_name = ends_with(name_, ".jsonl") || ends_with(name_, ".json");
    const bool is_json = json_name ? true : objects > 0 && objects >= text;
    int votes = 0;
    if (!is_json) {
        format_ = InputFormat::input_format_txt;
        votes = text + broken;
    } else if ((batch + broken_batch) > 0 && 2 * (batch + broken_batch) >= objects + broken) {
        format_ = InputFormat::input_format_openai;
        votes = batch + broken_batch;
    } else {
        format_ = InputFormat::input_format_jsonl;
        votes = objects - batch;
    }
    detected_from_lines_ = sampled > 0;
    if (sampled == 0) {
        format_note_ = str("input format: ", input_format_name(format_), " (no records; from the file name)");
        return;
    }
    sample_first_ = peeked_.front().second;
    sample_last_ = peeked_.back().second;
    format_note_ =
        str("input format: ", format_ == InputFormat::input_format_openai ? "openai batch" : input_format_name(format_),
            " (detected from ", votes, " of ", sampled, " sampled lines, ", sample_first_, "..", sample_last_,
            json_name ? str(" and the name ", name_) : std::string(), "; --input-format overrides)");
}

void PromptReader::prime() {
    std::string line;
    while ((int)peeked_.size() < format_sample_lines && read_line(line)) {
        if (!is_blank(line)) peeked_.emplace_back(std::move(line), line_no_);
    }
    detect_format();
}

std::optional<ReadRecord> PromptReader::next() {
    int64_t line_no = 0;
    if (!next_content_line(line_, line_no)) return std::nullopt;
    ReadRecord rec =
        format_ == InputFormat::input_format_txt ? parse_txt(std::move(line_), line_no) : parse_json(line_, line_no);
    ++n_records_;
    return rec;
}

ReadRecord PromptReader::parse_txt(std::string&& line, int64_t line_no) {
    Request r;
    r.ref = RecordRef{std::to_string(line_no), line_no, n_records_, false};
    size_t off = 0;
    if (!is_valid_utf8(line, &off)) {
        return RecordError{r.ref, "invalid_utf8",
                           str("invalid UTF-8 at byte ", off, " of the line (prompts must be UTF-8 text)")};
    }
    r.prompt = std::move(line);
    r.params = options_.defaults;
    return r;
}

// The part of the message a record gets when its failure suggests that the format was guessed
// wrong; empty otherwise.
std::string PromptReader::misdetection_hint(const std::string& line, const std::string& code) const {
    if (!detected_from_lines_) return "";
    std::string other;
    if (code == "invalid_json" && !starts_object(line)) {
        other = "txt";
    } else if (code == "missing_field" || code == "unknown_field") {
        const json j = json::parse(line, nullptr, false);
        if (!j.is_object()) return "";
        if (format_ == InputFormat::input_format_jsonl && j.contains("custom_id") && j.contains("body"))
            other = "openai";
        if (format_ == InputFormat::input_format_openai && (j.contains("prompt") || j.contains("messages")))
            other = "jsonl";
    }
    if (other.empty()) return "";
    return str(" (the input format was detected as ", input_format_name(format_), " from lines ", sample_first_, "..",
               sample_last_, "; if this file is ", other, ", give --input-format ", other, ")");
}

ReadRecord PromptReader::parse_json(const std::string& line, int64_t line_no) {
    const bool openai = format_ == InputFormat::input_format_openai;
    Request r;
    r.ref = RecordRef{"", line_no, n_records_, false};
    r.params = options_.defaults;
    unknown_scratch_.clear();
    auto error = [&](std::string code, std::string message) {
        message += misdetection_hint(line, code);
        return RecordError{r.ref, std::move(code), std::move(message)};
    };
    try {
        size_t off = 0;
        if (!is_valid_utf8(line, &off)) bad_record(str("invalid UTF-8 at byte ", off, " of the line"), "invalid_utf8");
        if (const int depth = json_nesting_depth(line); depth > max_record_depth)
            bad_record(str("JSON nested ", depth, " levels deep; at most ", max_record_depth,
                           " levels of arrays and objects are accepted"),
                       "invalid_json");
        json j;
        try {
            j = json::parse(line);
        } catch (const json::parse_error& e) {
            // nlohmann's text reads "[json.exception.parse_error.101] parse error at line 1,
            // column 9: syntax error ..."; keep the part after the position.
            const std::string what = e.what();
            const size_t colon = what.find(": ", what.find("column"));
            bad_record(
                str("malformed JSON at byte ", e.byte, colon == std::string::npos ? "" : ": ",
                    colon == std::string::npos ? "" : what.substr(colon + 2), " (each line must be one JSON object)"),
                "invalid_json");
        } catch (const json::out_of_range& e) {
            // 406: a number beyond a double, "number overflow parsing '1e400'".
            const std::string what = e.what();
            const size_t q = what.find('\'');
            const size_t q2 = q == std::string::npos ? q : what.find('\'', q + 1);
            if (e.id == 406 && q2 != std::string::npos) {
                const std::string number = what.substr(q + 1, q2 - q - 1);
                const size_t at = line.find(number);
                bad_record(str("number ", number, at == std::string::npos ? "" : str(" at byte ", at),
                               " is out of range: JSON numbers must lie within +-1.7976931348623157e308"),
                           "invalid_json");
            }
            bad_record(str("cannot read the JSON: ", what), "invalid_json");
        } catch (const json::exception& e) {
            bad_record(str("cannot read the JSON: ", e.what()), "invalid_json");
        }
        if (!j.is_object()) bad_record(str("expected a JSON object, got ", json_excerpt(j)), "invalid_json");
        RecordFieldOptions fo;
        fo.limits = options_.limits;
        fo.strict_fields = options_.strict_fields;
        parse_record_fields(j, openai, fo, r, &unknown_scratch_);
        if (auto problem = validate_sampling_params(r.params, options_.limits)) bad_record(*problem);
        if (options_.reject_duplicate_ids && !seen_ids_.insert(fnv1a64(r.ref.id)))
            bad_record(str("id '", r.ref.id, "' was already used by an earlier record (ids must be unique)"),
                       "duplicate_id");
    } catch (const BadRecord& e) {
        return error(e.code, e.message);
    } catch (const std::exception& e) {
        // Whatever else one record can raise stays that record's error.
        return error("invalid_record", str("cannot read the record: ", e.what()));
    }
    if (!unknown_scratch_.empty()) {
        ++n_unknown_records_;
        for (const auto& name : unknown_scratch_) {
            constexpr size_t max_names = 64;
            const bool known = unknown_fields_.count(name) > 0;
            ++unknown_fields_[known || unknown_fields_.size() < max_names ? name : std::string("(other)")];
        }
    }
    return r;
}

std::string PromptReader::unknown_fields_summary() const {
    if (unknown_fields_.empty()) return "";
    std::vector<std::pair<std::string, uint64_t>> by_count(unknown_fields_.begin(), unknown_fields_.end());
    std::stable_sort(by_count.begin(), by_count.end(),
                     [](const auto& a, const auto& b) { return a.second > b.second; });
    std::string names;
    for (const auto& [name, n] : by_count) names += str(names.empty() ? "" : ", ", name, " (", n, ")");
    return str(n_unknown_records_, n_unknown_records_ == 1 ? " record had" : " records had",
               " fields gridlm does not know, ignored: ", names, " (--strict-fields makes them errors)");
}

ChatFile read_chat_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(str("cannot open chat file '", path, "'"));
    std::ostringstream ss;
    ss << in.rdbuf();
    if (in.bad()) throw Error(str("cannot read chat file '", path, "'"));
    const std::string text = ss.str();
    if (const int depth = json_nesting_depth(text); depth > max_record_depth)
        throw Error(str(path, ": JSON nested ", depth, " levels deep; at most ", max_record_depth,
                        " levels of arrays and objects are accepted"));
    json doc;
    try {
        doc = json::parse(text);
    } catch (const json::exception& e) {
        throw Error(str(path, ": not valid JSON: ", e.what()));
    }
    ChatFile out;
    try {
        if (doc.is_array()) {
            out.messages = parse_chat_messages(doc);
        } else if (doc.is_object()) {
            auto it = doc.find("messages");
            if (it == doc.end() || it->is_null()) bad_record("missing 'messages' (an array of chat messages)");
            out.messages = parse_chat_messages(*it);
            parse_chat_extras(doc, out.extras);
        } else {
            bad_record(str("expected an array of messages or an object with 'messages', got ", json_excerpt(doc)));
        }
    } catch (const BadRecord& e) {
        throw Error(str(path, ": ", e.message));
    } catch (const std::exception& e) {
        throw Error(str(path, ": ", e.what()));
    }
    return out;
}

std::optional<int64_t> count_records(const std::string& path, uint64_t max_bytes) {
    std::error_code ec;
    if (path == "-" || !std::filesystem::is_regular_file(path, ec)) return std::nullopt;
    const auto size = std::filesystem::file_size(path, ec);
    if (ec || size > max_bytes) return std::nullopt;
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) return std::nullopt;
    std::vector<char> buf(1 << 20);
    int64_t count = 0;
    bool content = false;  // the current line has a non-blank character
    size_t got;
    while ((got = std::fread(buf.data(), 1, buf.size(), f)) > 0) {
        for (size_t i = 0; i < got; ++i) {
            const char c = buf[i];
            if (c == '\n') {
                count += content;
                content = false;
            } else if (!content && c != ' ' && c != '\t' && c != '\r' && c != '\f' && c != '\v') {
                content = true;
            }
        }
    }
    count += content;
    std::fclose(f);
    return count;
}

}  // namespace gridlm
