// Reading the fields of one JSON input record (a JSONL line or an OpenAI batch line) into a
// Request, and the request-field policy: which members are used, which are accepted because
// they do not change the generated text, which are refused because gridlm does not implement
// them, and which are unknown. Used by the prompt reader (io/prompt_reader.h) and for chat files.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "engine/core/chat_message.h"
#include "engine/core/request.h"
#include "engine/core/sampling_fields.h"

namespace gridlm {

// Ordered: a chat request's messages and tools reach the template with their members in the
// order given (tojson output depends on it).
using record_json = nlohmann::ordered_json;

// Thrown by the record parsers: what is wrong with one record (becomes its RecordError).
struct BadRecord {
    std::string code;     // e.g. "invalid_field", "missing_field", "unsupported_field"
    std::string message;  // names the field, the value given and what is accepted
};

[[noreturn]] void bad_record(std::string message, std::string code = "invalid_field");

// A value as the record gave it, for messages: compact JSON text cut to about 60 bytes (at a
// UTF-8 character boundary) with "..." when longer.
std::string json_excerpt(const record_json& v);

// Deepest nesting of arrays and objects in a JSON text (brackets inside strings do not count),
// found without parsing; records nested deeper than max_record_depth are refused before the
// parser and the (recursive) serialiser and template code see them.
int json_nesting_depth(std::string_view text);
constexpr int max_record_depth = 128;

// The roles a chat message may have (OpenAI's and those chat templates know).
const std::vector<std::string>& chat_roles();

struct RecordFieldOptions {
    SamplingLimits limits;
    // Unknown fields are errors (code "unknown_field") instead of being counted.
    bool strict_fields = false;
};

// Reads a parsed record: j is the whole line's object, openai whether it is an OpenAI batch
// request. Fills r (r.params must hold the defaults, r.ref.line the line). Appends the names of
// unknown fields to *unknown ("body.foo" for an OpenAI body member). Throws BadRecord.
void parse_record_fields(const record_json& j, bool openai, const RecordFieldOptions& options, Request& r,
                         std::vector<std::string>* unknown);

// The chat pieces of a body, also used for `gridlm tokenize --chat` files. Throw BadRecord.
std::vector<ChatMessage> parse_chat_messages(const record_json& v);
void parse_chat_extras(const record_json& body, ChatExtras& extras);

}  // namespace gridlm
