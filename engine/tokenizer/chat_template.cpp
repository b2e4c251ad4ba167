// Known chat templates, recognised by their Jinja source, and their native renderers. Each
// renderer follows its template statement by statement; tests compare it with jinja2 output.
#include "engine/tokenizer/chat_template.h"

#include <optional>
#include <string_view>

#include "engine/core/error.h"

namespace gridlm {

namespace {

// The Jinja sources as the checkpoints ship them, with the variable parts marked:
// @DEFAULT_SYSTEM@ is the system prompt a ChatML template inserts when none is given (every
// occurrence must hold the same text); @GENERATION_SUFFIX@ is what DeepSeek-R1 writes after
// <｜Assistant｜> in the generation prompt (nothing in the first release, "<think>\n" later).
constexpr const char* source_smollm2 =
    R"tmpl({% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system
@DEFAULT_SYSTEM@<|im_end|>
' }}{% endif %}{{'<|im_start|>' + message['role'] + '
' + message['content'] + '<|im_end|>' + '
'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant
' }}{% endif %})tmpl";

constexpr const char* source_qwen2 = R"tmpl({%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- '@DEFAULT_SYSTEM@' }}
    {%- endif %}
    {{- "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
    {%- else %}
        {{- '<|im_start|>system\n@DEFAULT_SYSTEM@<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\n<tool_call>\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %})tmpl";

constexpr const char* source_deepseek_r1 =
    R"tmpl({% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}{% set ns = namespace(is_first=false, is_tool=false, is_output_first=true, system_prompt='') %}{%- for message in messages %}{%- if message['role'] == 'system' %}{% set ns.system_prompt = message['content'] %}{%- endif %}{%- endfor %}{{bos_token}}{{ns.system_prompt}}{%- for message in messages %}{%- if message['role'] == 'user' %}{%- set ns.is_tool = false -%}{{'<｜User｜>' + message['content']}}{%- endif %}{%- if message['role'] == 'assistant' and message['content'] is none %}{%- set ns.is_tool = false -%}{%- for tool in message['tool_calls']%}{%- if not ns.is_first %}{{'<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\n' + '```json' + '\n' + tool['function']['arguments'] + '\n' + '```' + '<｜tool▁call▁end｜>'}}{%- set ns.is_first = true -%}{%- else %}{{'\n' + '<｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\n' + '```json' + '\n' + tool['function']['arguments'] + '\n' + '```' + '<｜tool▁call▁end｜>'}}{{'<｜tool▁calls▁end｜><｜end▁of▁sentence｜>'}}{%- endif %}{%- endfor %}{%- endif %}{%- if message['role'] == 'assistant' and message['content'] is not none %}{%- if ns.is_tool %}{{'<｜tool▁outputs▁end｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}{%- set ns.is_tool = false -%}{%- else %}{% set content = message['content'] %}{% if '</think>' in content %}{% set content = content.split('</think>')[-1] %}{% endif %}{{'<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>'}}{%- endif %}{%- endif %}{%- if message['role'] == 'tool' %}{%- set ns.is_tool = true -%}{%- if ns.is_output_first %}{{'<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}{%- set ns.is_output_first = false %}{%- else %}{{'\n<｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}{%- endif %}{%- endif %}{%- endfor -%}{% if ns.is_tool %}{{'<｜tool▁outputs▁end｜>'}}{% endif %}{% if add_generation_prompt and not ns.is_tool %}{{'<｜Assistant｜>@GENERATION_SUFFIX@'}}{% endif %})tmpl";

constexpr const char* source_plain_chatml = R"tmpl({% for message in messages %}{{'<|im_start|>' + message['role'] + '
' + message['content'] + '<|im_end|>' + '
'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant
' }}{% endif %})tmpl";

struct KnownTemplate {
    const char* name;
    ChatStyle style;
    const char* source;
};

const KnownTemplate known[] = {
    {"smollm2-chatml", ChatStyle::chat_style_chatml, source_smollm2},
    {"qwen2.5-chatml", ChatStyle::chat_style_qwen2, source_qwen2},
    {"deepseek-r1", ChatStyle::chat_style_deepseek_r1, source_deepseek_r1},
    {"chatml", ChatStyle::chat_style_chatml, source_plain_chatml},
};

// Converters write "\n" inside Jinja string literals either as an escape or as a raw newline;
// both render the same, so sources are compared with the escape turned into a newline.
std::string normalize_source(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '\\' && i + 1 < s.size() && s[i + 1] == 'n') {
            out += '\n';
            ++i;
        } else {
            out += s[i];
        }
    }
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();  // trim_blocks eats it
    return out;
}

// Text of a captured Jinja string-literal fragment with its escapes resolved.
std::string unescape_literal(std::string_view s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '\\' && i + 1 < s.size()) {
            const char c = s[++i];
            out += c == 'n' ? '\n' : c == 't' ? '\t' : c;
        } else {
            out += s[i];
        }
    }
    return out;
}

struct Captures {
    std::optional<std::string> default_system;
    std::optional<std::string> generation_suffix;
};

// Matches `source` against a known template: literal parts must be equal; each placeholder
// takes the shortest text (without quotes or braces, so it stays inside one string literal)
// after which the next literal part follows.
std::optional<Captures> match_template(const std::string& source, const std::string& pattern) {
    static constexpr std::string_view placeholders[] = {"@DEFAULT_SYSTEM@", "@GENERATION_SUFFIX@"};
    Captures caps;
    size_t src = 0;
    size_t pat = 0;
    std::optional<std::string>* pending = nullptr;  // capture waiting for the next literal part
    while (true) {
        size_t next_ph = std::string::npos;
        std::string_view ph_name;
        for (auto ph : placeholders) {
            const size_t at = pattern.find(ph, pat);
            if (at < next_ph) {
                next_ph = at;
                ph_name = ph;
            }
        }
        const std::string_view literal =
            std::string_view(pattern).substr(pat, next_ph == std::string::npos ? std::string::npos : next_ph - pat);
        size_t at = src;
        if (pending) {
            at = source.find(literal, src);
            if (at == std::string::npos) return std::nullopt;
            const std::string text = source.substr(src, at - src);
            if (text.find_first_of("'\"{}") != std::string::npos) return std::nullopt;
            if (pending->has_value() && **pending != unescape_literal(text)) return std::nullopt;
            *pending = unescape_literal(text);
        } else if (source.compare(src, literal.size(), literal) != 0) {
            return std::nullopt;
        }
        src = at + literal.size();
        if (next_ph == std::string::npos) break;
        pending = ph_name == placeholders[0] ? &caps.default_system : &caps.generation_suffix;
        pat = next_ph + ph_name.size();
    }
    if (src != source.size()) return std::nullopt;
    return caps;
}

std::string first_line(const std::string& s) {
    std::string line = s.substr(0, s.find('\n'));
    if (line.size() > 80) line = line.substr(0, 77) + "...";
    return line;
}

}  // namespace

std::string ChatTemplate::known_templates() {
    std::string out;
    for (const auto& k : known) {
        if (!out.empty()) out += ", ";
        out += k.name;
    }
    return out;
}

ChatTemplate::ChatTemplate(const std::string& jinja_source, std::string bos_token, std::string eos_token)
    : bos_token_(std::move(bos_token)), eos_token_(std::move(eos_token)) {
    if (jinja_source.empty()) {
        throw Error(
            str("the checkpoint has no chat template (tokenizer.chat_template); known templates: ", known_templates()));
    }
    const std::string source = normalize_source(jinja_source);
    for (const auto& k : known) {
        if (auto caps = match_template(source, normalize_source(k.source))) {
            name_ = k.name;
            style_ = k.style;
            has_default_system_ = caps->default_system.has_value();
            default_system_ = caps->default_system.value_or("");
            generation_suffix_ = caps->generation_suffix.value_or("");
            return;
        }
    }
    throw Error(str("unknown chat template starting '", first_line(jinja_source),
                    "': only these templates are recognised: ", known_templates()));
}

ChatTemplate ChatTemplate::from_tokenizer_data(const TokenizerData& data) {
    auto text_of = [&](int32_t id) {
        return id >= 0 && static_cast<size_t>(id) < data.tokens.size() ? data.tokens[id] : std::string();
    };
    return ChatTemplate(data.chat_template, text_of(data.bos_id), text_of(data.eos_id));
}

std::string ChatTemplate::apply(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const {
    if (messages.empty()) throw Error("the chat has no messages");
    if (style_ == ChatStyle::chat_style_deepseek_r1) return render_deepseek_r1(messages, add_generation_prompt);
    return render_chatml(messages, add_generation_prompt);
}

// SmolLM2 / plain ChatML: every message as <|im_start|>role\ncontent<|im_end|>\n, after the
// default system prompt when the first message is not a system one. Qwen2.5 renders the same
// turns but knows only four roles, and folds consecutive tool results into one user turn.
std::string ChatTemplate::render_chatml(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const {
    const bool qwen = style_ == ChatStyle::chat_style_qwen2;
    std::string out;
    if (messages[0].role != "system" && has_default_system_) {
        out += "<|im_start|>system\n" + default_system_ + "<|im_end|>\n";
    }
    for (size_t i = 0; i < messages.size(); ++i) {
        const ChatMessage& m = messages[i];
        if (!qwen || m.role == "user" || m.role == "system" || m.role == "assistant") {
            out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
        } else if (m.role == "tool") {
            if (i == 0 || messages[i - 1].role != "tool") out += "<|im_start|>user";
            out += "\n<tool_response>\n" + m.content + "\n</tool_response>";
            if (i + 1 == messages.size() || messages[i + 1].role != "tool") out += "<|im_end|>\n";
        } else {
            throw Error(str("message ", i, " has role '", m.role, "', which the ", name_,
                            " template does not render (expected system, user, assistant or tool)"));
        }
    }
    if (add_generation_prompt) out += "<|im_start|>assistant\n";
    return out;
}

// DeepSeek-R1: BOS, then the last system message's text, then the turns. An assistant turn
// keeps only what follows its last </think> (the reasoning is not fed back); tool results are
// wrapped in the tool-output markers, and the assistant turn after them is not re-opened.
std::string ChatTemplate::render_deepseek_r1(const std::vector<ChatMessage>& messages,
                                             bool add_generation_prompt) const {
    std::string system_prompt;
    for (const auto& m : messages) {
        if (m.role == "system") system_prompt = m.content;
    }
    std::string out = bos_token_ + system_prompt;
    bool is_tool = false;
    bool is_output_first = true;  // never reset within a chat, as in the template
    for (size_t i = 0; i < messages.size(); ++i) {
        const ChatMessage& m = messages[i];
        if (m.role == "user") {
            is_tool = false;
            out += "<｜User｜>" + m.content;
        } else if (m.role == "assistant") {
            if (is_tool) {
                out += "<｜tool▁outputs▁end｜>" + m.content + "<｜end▁of▁sentence｜>";
                is_tool = false;
            } else {
                const size_t think_end = m.content.rfind("</think>");
                const std::string content =
                    think_end == std::string::npos ? m.content : m.content.substr(think_end + 8);
                out += "<｜Assistant｜>" + content + "<｜end▁of▁sentence｜>";
            }
        } else if (m.role == "tool") {
            is_tool = true;
            if (is_output_first) {
                out += "<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>" + m.content + "<｜tool▁output▁end｜>";
                is_output_first = false;
            } else {
                out += "\n<｜tool▁output▁begin｜>" + m.content + "<｜tool▁output▁end｜>";
            }
        } else if (m.role != "system") {
            throw Error(str("message ", i, " has role '", m.role, "', which the ", name_,
                            " template does not render (expected system, user, assistant or tool)"));
        }
    }
    if (is_tool) out += "<｜tool▁outputs▁end｜>";
    if (add_generation_prompt && !is_tool) out += "<｜Assistant｜>" + generation_suffix_;
    return out;
}

std::vector<int32_t> encode_chat_prompt(const Tokenizer& tokenizer, const std::string& prompt, bool add_bos) {
    bool starts_with_bos = false;
    if (tokenizer.bos_id() >= 0) {
        const std::string& bos = tokenizer.token_text(tokenizer.bos_id());
        starts_with_bos = !bos.empty() && prompt.compare(0, bos.size(), bos) == 0;
    }
    return tokenizer.encode(prompt, {.add_bos = add_bos && !starts_with_bos, .parse_special = true});
}

}  // namespace gridlm
