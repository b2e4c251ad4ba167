// Fields of one JSON input record and the request-field policy (see record_fields.h).
#include "io/record_fields.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <limits>
#include <type_traits>
#include <variant>

#include "engine/core/error.h"

namespace gridlm {

using json = record_json;

void bad_record(std::string message, std::string code) { throw BadRecord{std::move(code), std::move(message)}; }

namespace {

[[noreturn]] void bad(std::string message, std::string code = "invalid_field") {
    bad_record(std::move(message), std::move(code));
}

}  // namespace

std::string json_excerpt(const json& v) {
    constexpr size_t max_bytes = 60;
    std::string text = v.dump(-1, ' ', false, json::error_handler_t::replace);
    if (text.size() <= max_bytes) return text;
    size_t cut = max_bytes;
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xc0) == 0x80) --cut;  // not inside a character
    return text.substr(0, cut) + "...";
}

int json_nesting_depth(std::string_view text) {
    int depth = 0, deepest = 0;
    bool in_string = false, escaped = false;
    for (const char c : text) {
        if (in_string) {
            if (escaped) {
                escaped = false;
            } else if (c == '\\') {
                escaped = true;
            } else if (c == '"') {
                in_string = false;
            }
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            deepest = std::max(deepest, ++depth);
        } else if (c == ']' || c == '}') {
            --depth;
        }
    }
    return deepest;
}

const std::vector<std::string>& chat_roles() {
    static const std::vector<std::string> roles = {"system", "developer", "user",    "assistant",
                                                   "tool",   "function",  "ipython", "tool_results"};
    return roles;
}

namespace {

std::string roles_text() {
    std::string out;
    for (const auto& r : chat_roles()) out += (out.empty() ? "" : ", ") + r;
    return out;
}

// Field present and not null (OpenAI clients send null for "unset").
const json* field(const json& obj, const char* name) {
    auto it = obj.find(name);
    if (it == obj.end() || it->is_null()) return nullptr;
    return &*it;
}

std::string got(const json& v) { return str(", got ", json_excerpt(v)); }

int32_t as_int32(const json& v, const char* name) {
    if (!v.is_number_integer()) bad(str("field '", name, "' must be an integer", got(v)));
    const bool fits = v.is_number_unsigned() ? v.get<uint64_t>() <= (uint64_t)std::numeric_limits<int32_t>::max()
                                             : v.get<int64_t>() >= std::numeric_limits<int32_t>::min() &&
                                                   v.get<int64_t>() <= std::numeric_limits<int32_t>::max();
    if (!fits) bad(str("field '", name, "' must be an integer in [-2147483648, 2147483647]", got(v)));
    return (int32_t)v.get<int64_t>();
}

bool as_bool(const json& v, const char* name) {
    if (!v.is_boolean()) bad(str("field '", name, "' must be true or false", got(v)));
    return v.get<bool>();
}

std::string as_string(const json& v, const char* name) {
    if (!v.is_string()) bad(str("field '", name, "' must be a string", got(v)));
    return v.get<std::string>();
}

std::vector<int32_t> as_token_ids(const json& v, const char* name) {
    const char* accepted = "an array of token ids (integers >= 0)";
    if (!v.is_array()) bad(str("field '", name, "' must be ", accepted, got(v)));
    std::vector<int32_t> ids;
    ids.reserve(v.size());
    for (size_t i = 0; i < v.size(); ++i) {
        const json& e = v[i];
        if (!e.is_number_integer())
            bad(str("field '", name, "' must be ", accepted, ", got ", json_excerpt(e), " at [", i, "]"));
        if (e.is_number_integer() && !e.is_number_unsigned() && e.get<int64_t>() < 0)
            bad(str("field '", name, "' holds a negative token id ", e.dump(), " at [", i, "] (token ids are >= 0)"));
        if (e.get<uint64_t>() > (uint64_t)std::numeric_limits<int32_t>::max())
            bad(str("field '", name, "' holds token id ", e.dump(), " at [", i, "], beyond any vocabulary"));
        ids.push_back((int32_t)e.get<int64_t>());
    }
    return ids;
}

// One record field into p's member for row f, read as that member's type; `name` is the field
// as the record spells it (f.json_name or its alias).
void parse_sampling_value(const json& v, const char* name, const SamplingField& f, const SamplingLimits& limits,
                          SamplingParams& p) {
    std::visit(
        [&](auto m) {
            using T = std::decay_t<decltype(p.*m)>;
            if constexpr (std::is_same_v<T, int32_t>) {
                set_sampling_int(f, m, as_int32(v, name), p);
            } else if constexpr (std::is_same_v<T, float>) {
                if (!v.is_number())
                    bad(str("field '", name, "' must be a number ", sampling_range_text(f.range, p, limits), got(v)));
                const double d = v.get<double>();
                if (!(std::fabs(d) <= FLT_MAX))
                    bad(str("field '", name, "' must be a number ", sampling_range_text(f.range, p, limits),
                            " within the float range (|x| <= 3.4e38)", got(v)));
                p.*m = (float)d;
            } else if constexpr (std::is_same_v<T, bool>) {
                if (f.integer_sets && v.is_number_integer()) {
                    p.*(f.integer_sets) = as_int32(v, name);
                    p.*m = true;
                } else if (f.integer_sets && !v.is_boolean()) {
                    bad(str("field '", name, "' must be true, false or an integer", got(v)));
                } else {
                    p.*m = as_bool(v, name);
                }
            } else if constexpr (std::is_same_v<T, std::optional<uint64_t>>) {
                if (!v.is_number_integer() || (!v.is_number_unsigned() && v.get<int64_t>() < 0))
                    bad(str("field '", name, "' must be an integer in [0, 2^64)", got(v)));
                p.*m = v.get<uint64_t>();
            } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
                (p.*m).clear();
                if (v.is_string()) {
                    (p.*m).push_back(v.get<std::string>());
                } else if (v.is_array()) {
                    for (const auto& s : v) {
                        if (!s.is_string())
                            bad(str("field '", name, "' must be a string or an array of strings, got ", json_excerpt(s),
                                    " in ", json_excerpt(v)));
                        (p.*m).push_back(s.get<std::string>());
                    }
                } else {
                    bad(str("field '", name, "' must be a string or an array of strings", got(v)));
                }
            } else {
                static_assert(std::is_same_v<T, std::vector<int32_t>>);
                p.*m = as_token_ids(v, name);
            }
        },
        f.member);
}

// Sampling fields shared by JSONL records and OpenAI bodies, as sampling_fields() lists them.
void parse_sampling_fields(const json& obj, const SamplingLimits& limits, SamplingParams& p) {
    for (const SamplingField& f : sampling_fields()) {
        if (auto* v = field(obj, f.json_name)) parse_sampling_value(*v, f.json_name, f, limits, p);
        if (f.json_alias) {
            if (auto* v = field(obj, f.json_alias)) parse_sampling_value(*v, f.json_alias, f, limits, p);
        }
    }
}

// "prompt": a string, or an array of token ids (sent to the model as they are).
void parse_prompt(const json& v, Request& r) {
    if (v.is_string()) {
        r.prompt = v.get<std::string>();
        if (r.prompt.empty()) bad("field 'prompt' is empty; give a non-empty string or an array of token ids");
    } else if (v.is_array() && !v.empty() && v[0].is_string()) {
        bad(
            str("field 'prompt' is a list of strings (several prompts in one request), which gridlm does not "
                "support: give one string or an array of token ids (integers >= 0), one prompt per record",
                got(v)));
    } else if (v.is_array()) {
        r.prompt_token_ids = as_token_ids(v, "prompt");
        if (r.prompt_token_ids.empty())
            bad("field 'prompt' is empty; give a non-empty string or an array of token ids");
    } else {
        bad(str("field 'prompt' must be a string or an array of token ids (integers >= 0)", got(v)));
    }
}

// The request-field policy. Fields gridlm uses are read by the parsers above. Fields of the
// OpenAI / vLLM request schemas that gridlm does not implement are accepted only with a value
// that changes nothing (listed here as JSON text, '|' between alternatives; "" = none, only
// null or absence); any other value is an "unsupported_field" error. nullptr: any value is
// accepted because the field never changes the generated text.
struct FieldRule {
    const char* name;
    const char* neutral;
};

constexpr FieldRule field_rules[] = {
    // No effect on the text.
    {"model", nullptr},
    {"user", nullptr},
    {"metadata", nullptr},
    {"store", nullptr},
    {"service_tier", nullptr},
    {"parallel_tool_calls", nullptr},
    {"stream_options", nullptr},
    {"request_id", nullptr},
    {"priority", nullptr},
    // Not implemented: accepted only with the value that changes nothing.
    {"stream", "false"},
    {"echo", "false"},
    {"best_of", "1"},
    {"logit_bias", "{}"},
    {"response_format", R"({"type": "text"})"},
    {"continue_final_message", "false"},
    {"tool_choice", R"("auto"|"none")"},
    {"function_call", R"("auto"|"none")"},
    {"functions", "[]"},
    {"suffix", R"("")"},
    {"use_beam_search", "false"},
    {"length_penalty", "1"},
    {"typical_p", "1"},
    {"include_stop_str_in_output", "false"},
    {"skip_special_tokens", "true"},
    {"spaces_between_special_tokens", "true"},
    {"add_special_tokens", ""},
    {"prompt_logprobs", "0"},
    {"truncate_prompt_tokens", ""},
    {"bad_words", "[]"},
    {"allowed_token_ids", ""},
    {"guided_json", ""},
    {"guided_regex", ""},
    {"guided_choice", ""},
    {"guided_grammar", ""},
    {"guided_decoding_backend", ""},
    {"guided_whitespace_pattern", ""},
    {"structured_outputs", ""},
    {"reasoning_effort", ""},
    {"modalities", R"(["text"])"},
    {"audio", ""},
    {"prediction", ""},
    {"web_search_options", ""},
};

// Members of a request body read by parse_body besides the sampling fields.
constexpr const char* body_fields[] = {
    "prompt", "messages", "completion", "tools", "documents", "chat_template_kwargs", "add_generation_prompt"};

bool is_used_field(const std::string& name) {
    for (const char* f : body_fields) {
        if (name == f) return true;
    }
    for (const SamplingField& f : sampling_fields()) {
        if (name == f.json_name || (f.json_alias && name == f.json_alias)) return true;
    }
    return false;
}

// Applies the policy to the members of obj that parse_body does not read (`skip`: members the
// caller reads, e.g. "id"; is_body: obj is a request body, whose used fields are skipped too).
// prefix names obj in messages ("body." for an OpenAI body).
void check_field_policy(const json& obj, std::initializer_list<const char*> skip, bool is_body, const char* prefix,
                        const RecordFieldOptions& options, std::vector<std::string>* unknown) {
    for (const auto& [key, value] : obj.items()) {
        bool skipped = false;
        for (const char* s : skip) skipped = skipped || key == s;
        if (skipped || (is_body && is_used_field(key))) continue;
        const FieldRule* rule = nullptr;
        for (const FieldRule& r : field_rules) {
            if (key == r.name) rule = &r;
        }
        const std::string name = str(prefix, key);
        if (!rule) {
            if (options.strict_fields)
                bad(str("field '", name, "' is not a field gridlm knows (--strict-fields), got ", json_excerpt(value),
                        "; see 'Request fields' in the user guide"),
                    "unknown_field");
            if (unknown) unknown->push_back(name);
            continue;
        }
        if (!rule->neutral || value.is_null()) continue;
        std::string accepted = "absent or null";
        const std::string_view alts = rule->neutral;
        size_t start = 0;
        bool ok = false;
        while (start < alts.size()) {
            size_t end = alts.find('|', start);
            if (end == std::string_view::npos) end = alts.size();
            const json neutral = json::parse(alts.substr(start, end - start));
            ok = ok || value == neutral;
            accepted += str(", ", neutral.dump());
            start = end + 1;
        }
        if (!ok)
            bad(str("field '", name, "' is not supported by gridlm with the value ", json_excerpt(value),
                    " (accepted: ", accepted, ")"),
                "unsupported_field");
    }
}

// The body of a JSONL record or of an OpenAI request: prompt or messages, and sampling fields.
void parse_body(const json& body, const RecordFieldOptions& options, Request& r) {
    const json* prompt = field(body, "prompt");
    const json* messages = field(body, "messages");
    if (prompt && messages) bad("give either 'prompt' or 'messages', not both");
    if (!prompt && !messages)
        bad("missing 'prompt' (a string or token ids) or 'messages' (an array of chat messages)", "missing_field");
    if (messages) {
        r.ref.chat = true;
        r.messages = parse_chat_messages(*messages);
        parse_chat_extras(body, r.chat_extras);
    } else {
        parse_prompt(*prompt, r);
    }
    parse_sampling_fields(body, options.limits, r.params);
    // A continuation to score (`gridlm score`): text, or token ids taken as they are.
    if (const json* c = field(body, "completion")) {
        r.has_completion = true;
        if (c->is_string()) {
            r.completion = c->get<std::string>();
        } else if (c->is_array()) {
            r.completion_token_ids = as_token_ids(*c, "completion");
        } else {
            bad(str("field 'completion' must be a string or an array of token ids", got(*c)));
        }
        if (r.completion.empty() && r.completion_token_ids.empty())
            bad("field 'completion' is empty; give a non-empty string or an array of token ids");
    }
}

}  // namespace

std::vector<ChatMessage> parse_chat_messages(const json& v) {
    if (!v.is_array()) bad(str("field 'messages' must be an array of message objects", got(v)));
    if (v.empty()) bad("field 'messages' is empty; give at least one {\"role\": ..., \"content\": ...} object");
    std::vector<ChatMessage> out;
    out.reserve(v.size());
    for (size_t i = 0; i < v.size(); ++i) {
        const json& m = v[i];
        if (!m.is_object()) bad(str("messages[", i, "] must be an object with 'role' and 'content'", got(m)));
        ChatMessage msg;
        const json* role = field(m, "role");
        if (!role || !role->is_string())
            bad(str("messages[", i, "].role must be a string, one of ", roles_text(),
                    role ? got(*role) : std::string(", got none")));
        msg.role = role->get<std::string>();
        bool known = false;
        for (const auto& r : chat_roles()) known = known || r == msg.role;
        if (!known) bad(str("messages[", i, "].role must be one of ", roles_text(), got(*role)));
        // Content may be absent or null (an assistant turn that only calls tools).
        if (const json* content = field(m, "content")) {
            if (content->is_string()) {
                msg.content = content->get<std::string>();
            } else if (content->is_array()) {
                // OpenAI content parts: only text parts can be run by a text model.
                for (size_t k = 0; k < content->size(); ++k) {
                    const json& part = (*content)[k];
                    const json* type = part.is_object() ? field(part, "type") : nullptr;
                    const json* text = part.is_object() ? field(part, "text") : nullptr;
                    if (!type || *type != "text" || !text || !text->is_string())
                        bad(str("messages[", i, "].content[", k,
                                "]: only {\"type\": \"text\", \"text\": \"...\"} parts are supported", got(part)));
                    msg.content += text->get<std::string>();
                }
            } else {
                bad(str("messages[", i, "].content must be a string, null or an array of text parts", got(*content)));
            }
        }
        msg.json = m.dump();  // the whole object reaches the chat template
        out.push_back(std::move(msg));
    }
    return out;
}

void parse_chat_extras(const json& body, ChatExtras& extras) {
    if (const json* tools = field(body, "tools")) {
        if (!tools->is_array()) bad(str("field 'tools' must be an array of tool objects", got(*tools)));
        for (size_t i = 0; i < tools->size(); ++i) {
            if (!(*tools)[i].is_object()) bad(str("tools[", i, "] must be an object", got((*tools)[i])));
        }
        extras.tools_json = tools->dump();
    }
    if (const json* docs = field(body, "documents")) {
        if (!docs->is_array()) bad(str("field 'documents' must be an array", got(*docs)));
        extras.documents_json = docs->dump();
    }
    if (const json* kw = field(body, "chat_template_kwargs")) {
        if (!kw->is_object()) bad(str("field 'chat_template_kwargs' must be an object", got(*kw)));
        extras.kwargs_json = kw->dump();
    }
    if (const json* agp = field(body, "add_generation_prompt"))
        extras.add_generation_prompt = as_bool(*agp, "add_generation_prompt");
}

void parse_record_fields(const json& j, bool openai, const RecordFieldOptions& options, Request& r,
                         std::vector<std::string>* unknown) {
    if (openai) {
        const json* cid = field(j, "custom_id");
        if (!cid) bad("missing 'custom_id' (a string naming the request)", "missing_field");
        r.ref.id = as_string(*cid, "custom_id");
    } else if (const json* id = field(j, "id")) {
        if (id->is_string()) {
            r.ref.id = id->get<std::string>();
        } else if (id->is_number_integer()) {
            r.ref.id = id->dump();
        } else {
            bad(str("field 'id' must be a string or an integer", got(*id)));
        }
    } else {
        r.ref.id = std::to_string(r.ref.line);  // same rule as txt input
    }
    if (!openai) {
        parse_body(j, options, r);
        check_field_policy(j, {"id"}, true, "", options, unknown);
        return;
    }
    if (const json* m = field(j, "method"); m && (!m->is_string() || *m != "POST"))
        bad(str("field 'method' must be \"POST\"", got(*m)));
    std::string url;
    if (const json* u = field(j, "url")) url = as_string(*u, "url");
    const std::string given = url;
    if (url.rfind("/v1", 0) == 0) url.erase(0, 3);
    if (!url.empty() && url != "/chat/completions" && url != "/completions")
        bad(str("unsupported url '", given, "' (accepted: /v1/chat/completions or /v1/completions)"),
            "unsupported_url");
    const json* body = field(j, "body");
    if (!body) bad("missing 'body' (an object with the request)", "missing_field");
    if (!body->is_object()) bad(str("field 'body' must be an object", got(*body)));
    if (url == "/chat/completions" && !field(*body, "messages"))
        bad("a /v1/chat/completions body needs 'messages'", "missing_field");
    if (url == "/completions" && !field(*body, "prompt")) bad("a /v1/completions body needs 'prompt'", "missing_field");
    parse_body(*body, options, r);
    check_field_policy(j, {"custom_id", "method", "url", "body"}, false, "", options, unknown);
    check_field_policy(*body, {}, true, "body.", options, unknown);
}

}  // namespace gridlm
