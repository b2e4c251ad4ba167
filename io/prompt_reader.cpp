// Streaming prompt reader (see prompt_reader.h): format detection, per-record parsing and
// validation. Every problem with one record becomes a RecordError; the job goes on.
#include "io/prompt_reader.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
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

namespace gridlm {

// Ordered: a chat request's messages and tools reach the template with their members in the order
// given, as Python's json.loads keeps them (tojson output depends on it).
using json = nlohmann::ordered_json;

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

namespace {

// A problem with one field of one record; turned into a RecordError by the caller.
struct BadRecord {
    std::string code;
    std::string message;
};

[[noreturn]] void bad(std::string message, std::string code = "invalid_field") {
    throw BadRecord{std::move(code), std::move(message)};
}

const char* type_name(const json& v) { return v.type_name(); }

// Field present and not null (OpenAI clients send null for "unset").
const json* field(const json& obj, const char* name) {
    auto it = obj.find(name);
    if (it == obj.end() || it->is_null()) return nullptr;
    return &*it;
}

int64_t as_int(const json& v, const char* name) {
    if (!v.is_number_integer()) bad(str("field '", name, "' must be an integer, got ", type_name(v)));
    if (v.is_number_unsigned() && v.get<uint64_t>() > (uint64_t)std::numeric_limits<int64_t>::max())
        bad(str("field '", name, "' is out of range"));
    return v.get<int64_t>();
}

int32_t as_int32(const json& v, const char* name) {
    const int64_t x = as_int(v, name);
    if (x < std::numeric_limits<int32_t>::min() || x > std::numeric_limits<int32_t>::max())
        bad(str("field '", name, "' is out of range, got ", x));
    return (int32_t)x;
}

float as_float(const json& v, const char* name) {
    if (!v.is_number()) bad(str("field '", name, "' must be a number, got ", type_name(v)));
    return v.get<float>();
}

bool as_bool(const json& v, const char* name) {
    if (!v.is_boolean()) bad(str("field '", name, "' must be true or false, got ", type_name(v)));
    return v.get<bool>();
}

std::string as_string(const json& v, const char* name) {
    if (!v.is_string()) bad(str("field '", name, "' must be a string, got ", type_name(v)));
    return v.get<std::string>();
}

std::vector<int32_t> as_token_ids(const json& v, const char* name) {
    if (!v.is_array()) bad(str("field '", name, "' must be an array of token ids, got ", type_name(v)));
    std::vector<int32_t> ids;
    ids.reserve(v.size());
    for (const auto& e : v) {
        const int32_t id = as_int32(e, name);
        if (id < 0) bad(str("field '", name, "' holds a negative token id ", id));
        ids.push_back(id);
    }
    return ids;
}

// One record field into p's member for row f, read as that member's type; `name` is the field
// as the record spells it (f.json_name or its alias).
void parse_sampling_value(const json& v, const char* name, const SamplingField& f, SamplingParams& p) {
    std::visit(
        [&](auto m) {
            using T = std::decay_t<decltype(p.*m)>;
            if constexpr (std::is_same_v<T, int32_t>) {
                set_sampling_int(f, m, as_int32(v, name), p);
            } else if constexpr (std::is_same_v<T, float>) {
                p.*m = as_float(v, name);
            } else if constexpr (std::is_same_v<T, bool>) {
                if (f.integer_sets && v.is_number_integer()) {
                    p.*(f.integer_sets) = as_int32(v, name);
                    p.*m = true;
                } else if (f.integer_sets && !v.is_boolean()) {
                    bad(str("field '", name, "' must be true, false or an integer, got ", type_name(v)));
                } else {
                    p.*m = as_bool(v, name);
                }
            } else if constexpr (std::is_same_v<T, std::optional<uint64_t>>) {
                p.*m = (uint64_t)as_int(v, name);
            } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
                (p.*m).clear();
                if (v.is_string()) {
                    (p.*m).push_back(v.get<std::string>());
                } else if (v.is_array()) {
                    for (const auto& s : v) (p.*m).push_back(as_string(s, name));
                } else {
                    bad(str("field '", name, "' must be a string or an array of strings, got ", type_name(v)));
                }
            } else {
                static_assert(std::is_same_v<T, std::vector<int32_t>>);
                p.*m = as_token_ids(v, name);
            }
        },
        f.member);
}

// Sampling fields shared by JSONL records and OpenAI bodies, as sampling_fields() lists them.
void parse_sampling_fields(const json& obj, SamplingParams& p) {
    for (const SamplingField& f : sampling_fields()) {
        if (auto* v = field(obj, f.json_name)) parse_sampling_value(*v, f.json_name, f, p);
        if (f.json_alias) {
            if (auto* v = field(obj, f.json_alias)) parse_sampling_value(*v, f.json_alias, f, p);
        }
    }
}

std::vector<ChatMessage> parse_messages(const json& v) {
    if (!v.is_array()) bad(str("field 'messages' must be an array, got ", type_name(v)));
    if (v.empty()) bad("field 'messages' is empty");
    std::vector<ChatMessage> out;
    out.reserve(v.size());
    for (size_t i = 0; i < v.size(); ++i) {
        const json& m = v[i];
        if (!m.is_object()) bad(str("messages[", i, "] must be an object, got ", type_name(m)));
        ChatMessage msg;
        const json* role = field(m, "role");
        if (!role || !role->is_string()) bad(str("messages[", i, "] needs a string 'role'"));
        msg.role = role->get<std::string>();
        // Content may be absent or null (an assistant turn that only calls tools).
        if (const json* content = field(m, "content")) {
            if (content->is_string()) {
                msg.content = content->get<std::string>();
            } else if (content->is_array()) {
                // OpenAI content parts: only text parts can be run by a text model.
                for (const auto& part : *content) {
                    const json* type = part.is_object() ? field(part, "type") : nullptr;
                    const json* text = part.is_object() ? field(part, "text") : nullptr;
                    if (!type || *type != "text" || !text || !text->is_string())
                        bad(str("messages[", i,
                                "].content: only {\"type\": \"text\", \"text\": ...} parts are supported"));
                    msg.content += text->get<std::string>();
                }
            } else {
                bad(str("messages[", i, "].content must be a string, null or an array of text parts, got ",
                        type_name(*content)));
            }
        }
        msg.json = m.dump();  // the whole object reaches the chat template
        out.push_back(std::move(msg));
    }
    return out;
}

// The members of a chat body besides "messages" that chat templates read.
void parse_chat_extras(const json& body, ChatExtras& extras) {
    if (const json* tools = field(body, "tools")) {
        if (!tools->is_array()) bad(str("field 'tools' must be an array, got ", type_name(*tools)));
        for (size_t i = 0; i < tools->size(); ++i) {
            if (!(*tools)[i].is_object()) bad(str("tools[", i, "] must be an object, got ", type_name((*tools)[i])));
        }
        extras.tools_json = tools->dump();
    }
    if (const json* docs = field(body, "documents")) {
        if (!docs->is_array()) bad(str("field 'documents' must be an array, got ", type_name(*docs)));
        extras.documents_json = docs->dump();
    }
    if (const json* kw = field(body, "chat_template_kwargs")) {
        if (!kw->is_object()) bad(str("field 'chat_template_kwargs' must be an object, got ", type_name(*kw)));
        extras.kwargs_json = kw->dump();
    }
    if (const json* agp = field(body, "add_generation_prompt"))
        extras.add_generation_prompt = as_bool(*agp, "add_generation_prompt");
}

// "prompt": a string, or an array of token ids (sent to the model as they are).
void parse_prompt(const json& v, Request& r) {
    if (v.is_string()) {
        r.prompt = v.get<std::string>();
        if (r.prompt.empty()) bad("field 'prompt' is empty");
    } else if (v.is_array()) {
        r.prompt_token_ids = as_token_ids(v, "prompt");
        if (r.prompt_token_ids.empty()) bad("field 'prompt' is empty");
    } else {
        bad(str("field 'prompt' must be a string or an array of token ids, got ", type_name(v)));
    }
}

// The body of a JSONL record or of an OpenAI request: prompt or messages, and sampling fields.
void parse_body(const json& body, Request& r) {
    const json* prompt = field(body, "prompt");
    const json* messages = field(body, "messages");
    if (prompt && messages) bad("give either 'prompt' or 'messages', not both");
    if (!prompt && !messages) bad("missing 'prompt' or 'messages'", "missing_field");
    if (messages) {
        r.ref.chat = true;
        r.messages = parse_messages(*messages);
        parse_chat_extras(body, r.chat_extras);
    } else {
        parse_prompt(*prompt, r);
    }
    parse_sampling_fields(body, r.params);
    // A continuation to score (`gridlm score`): text, or token ids taken as they are.
    if (const json* c = field(body, "completion")) {
        r.has_completion = true;
        if (c->is_string()) {
            r.completion = c->get<std::string>();
        } else if (c->is_array()) {
            r.completion_token_ids = as_token_ids(*c, "completion");
        } else {
            bad(str("field 'completion' must be a string or an array of token ids, got ", type_name(*c)));
        }
        if (r.completion.empty() && r.completion_token_ids.empty()) bad("field 'completion' is empty");
    }
}

}  // namespace

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
    if (peeked_) {
        line = std::move(peeked_->first);
        line_no = peeked_->second;
        peeked_.reset();
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

void PromptReader::detect_format(const std::string& first_line) {
    if (format_ != InputFormat::input_format_auto) return;
    if (ends_with(name_, ".txt")) {
        format_ = InputFormat::input_format_txt;
        return;
    }
    const size_t start = first_line.find_first_not_of(" \t");
    if (start != std::string::npos && first_line[start] == '{') {
        format_ = InputFormat::input_format_jsonl;
        json j = json::parse(first_line, nullptr, false);
        if (j.is_object() && j.contains("custom_id") && j.contains("body")) format_ = InputFormat::input_format_openai;
        return;
    }
    const bool json_name = ends_with(name_, ".jsonl") || ends_with(name_, ".json");
    format_ = json_name ? InputFormat::input_format_jsonl : InputFormat::input_format_txt;
}

void PromptReader::prime() {
    std::string first;
    int64_t line_no = 0;
    if (next_content_line(first, line_no)) {
        detect_format(first);
        peeked_.emplace(std::move(first), line_no);
    } else {
        detect_format("");
    }
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
        return RecordError{r.ref, "invalid_utf8", str("invalid UTF-8 at byte ", off, " of the line")};
    }
    r.prompt = std::move(line);
    r.params = options_.defaults;
    return r;
}

ReadRecord PromptReader::parse_json(const std::string& line, int64_t line_no) {
    const bool openai = format_ == InputFormat::input_format_openai;
    Request r;
    r.ref = RecordRef{"", line_no, n_records_, false};
    r.params = options_.defaults;
    try {
        size_t off = 0;
        if (!is_valid_utf8(line, &off)) bad(str("invalid UTF-8 at byte ", off, " of the line"), "invalid_utf8");
        json j;
        try {
            j = json::parse(line);
        } catch (const json::parse_error& e) {
            // nlohmann's text reads "[json.exception.parse_error.101] parse error at line 1,
            // column 9: syntax error ..."; keep the part after the position.
            std::string what = e.what();
            const size_t colon = what.find(": ", what.find("column"));
            bad(str("malformed JSON at byte ", e.byte, colon == std::string::npos ? "" : ": ",
                    colon == std::string::npos ? "" : what.substr(colon + 2)),
                "invalid_json");
        }
        if (!j.is_object()) bad(str("expected a JSON object, got ", type_name(j)), "invalid_json");

        if (openai) {
            const json* cid = field(j, "custom_id");
            if (!cid) bad("missing 'custom_id'", "missing_field");
            r.ref.id = as_string(*cid, "custom_id");
        } else if (const json* id = field(j, "id")) {
            if (id->is_string()) {
                r.ref.id = id->get<std::string>();
            } else if (id->is_number_integer()) {
                r.ref.id = id->dump();
            } else {
                bad(str("field 'id' must be a string or an integer, got ", type_name(*id)));
            }
        } else {
            r.ref.id = std::to_string(line_no);  // same rule as txt input
        }

        const json* body = &j;
        if (openai) {
            if (const json* m = field(j, "method"); m && (!m->is_string() || *m != "POST"))
                bad("field 'method' must be \"POST\"");
            std::string url;
            if (const json* u = field(j, "url")) url = as_string(*u, "url");
            if (url.rfind("/v1", 0) == 0) url.erase(0, 3);
            if (!url.empty() && url != "/chat/completions" && url != "/completions")
                bad(str("unsupported url '", url, "' (expected /v1/chat/completions or /v1/completions)"),
                    "unsupported_url");
            body = field(j, "body");
            if (!body) bad("missing 'body'", "missing_field");
            if (!body->is_object()) bad(str("field 'body' must be an object, got ", type_name(*body)));
            if (url == "/chat/completions" && !field(*body, "messages"))
                bad("a /v1/chat/completions body needs 'messages'", "missing_field");
            if (url == "/completions" && !field(*body, "prompt"))
                bad("a /v1/completions body needs 'prompt'", "missing_field");
        }
        parse_body(*body, r);
        if (auto problem = validate_sampling_params(r.params, options_.limits)) bad(*problem);
        if (options_.reject_duplicate_ids && !seen_ids_.insert(fnv1a64(r.ref.id)).second)
            bad(str("id '", r.ref.id, "' was already used by an earlier record"), "duplicate_id");
    } catch (const BadRecord& e) {
        return RecordError{r.ref, e.code, e.message};
    }
    return r;
}

ChatFile read_chat_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(str("cannot open chat file '", path, "'"));
    std::ostringstream ss;
    ss << in.rdbuf();
    if (in.bad()) throw Error(str("cannot read chat file '", path, "'"));
    json doc;
    try {
        doc = json::parse(ss.str());
    } catch (const json::parse_error& e) {
        throw Error(str(path, ": not valid JSON: ", e.what()));
    }
    ChatFile out;
    try {
        if (doc.is_array()) {
            out.messages = parse_messages(doc);
        } else if (doc.is_object()) {
            const json* messages = field(doc, "messages");
            if (!messages) bad("missing 'messages'");
            out.messages = parse_messages(*messages);
            parse_chat_extras(doc, out.extras);
        } else {
            bad(str("expected an array of messages or an object with 'messages', got ", type_name(doc)));
        }
    } catch (const BadRecord& e) {
        throw Error(str(path, ": ", e.message));
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
