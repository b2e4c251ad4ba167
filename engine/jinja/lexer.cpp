// Template source -> text and tags -> tokens (see lexer.h).
#include "engine/jinja/lexer.h"

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "engine/jinja/template.h"
#include "engine/tokenizer/utf8.h"

namespace gridlm::jinja::ast {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

namespace {

int count_lines(std::string_view s, size_t from, size_t to) {
    int n = 0;
    for (size_t i = from; i < to && i < s.size(); ++i) n += s[i] == '\n';
    return n;
}

// End of a {{ or {% tag starting at `pos` (just past its opening delimiter): the index of the
// closing delimiter, skipping string literals and, for `}}`, brackets that are still open.
size_t find_tag_end(const std::string& src, size_t pos, char close, int line) {
    int depth = 0;
    char quote = 0;
    for (size_t i = pos; i < src.size(); ++i) {
        const char c = src[i];
        if (quote) {
            if (c == '\\') {
                ++i;
            } else if (c == quote) {
                quote = 0;
            }
            continue;
        }
        if (c == '\'' || c == '"') {
            quote = c;
        } else if (c == '(' || c == '[' || c == '{') {
            ++depth;
        } else if ((c == ')' || c == ']' || c == '}') && !(c == '}' && depth == 0)) {
            if (depth > 0) --depth;
        }
        if (i + 1 < src.size() && src[i + 1] == '}' && c == close && (close == '%' || depth == 0)) return i;
    }
    if (quote) throw TemplateError(line, "unterminated string literal in a tag");
    throw TemplateError(line,
                        close == '%' ? "unclosed '{%' tag (no matching '%}')" : "unclosed '{{' tag (no matching '}}')");
}

// Removes the whitespace of `text` after its last newline when nothing else is on that line
// (lstrip_blocks). `line_start`: text itself begins a line.
void lstrip_block(std::string& text, bool line_start) {
    const size_t nl = text.rfind('\n');
    const size_t from = nl == std::string::npos ? 0 : nl + 1;
    if (from == 0 && !line_start) return;
    for (size_t i = from; i < text.size(); ++i) {
        if (!is_space(text[i])) return;
    }
    text.resize(from);
}

}  // namespace

std::vector<Segment> scan(const std::string& src) {
    std::vector<Segment> out;
    size_t pos = 0;
    int line = 1;
    bool strip_next = false;  // the previous tag ended with '-': strip leading whitespace
    bool trim_next = false;   // the previous block tag ends a line: drop one newline (trim_blocks)
    while (pos <= src.size()) {
        size_t open = src.find('{', pos);
        while (open != std::string::npos && open + 1 < src.size() && src[open + 1] != '{' && src[open + 1] != '%' &&
               src[open + 1] != '#') {
            open = src.find('{', open + 1);
        }
        if (open != std::string::npos && open + 1 >= src.size()) open = std::string::npos;
        const size_t text_end = open == std::string::npos ? src.size() : open;
        std::string text = src.substr(pos, text_end - pos);
        size_t text_from = 0;
        if (strip_next) {
            while (text_from < text.size() && is_space(text[text_from])) ++text_from;
        } else if (trim_next && !text.empty() && text[0] == '\n') {
            text_from = 1;
        }
        const int text_line = line;
        line += count_lines(src, pos, text_end);
        if (open == std::string::npos) {
            if (text_from < text.size()) out.push_back({SegKind::text, text.substr(text_from), text_line});
            break;
        }
        const char kind = src[open + 1];
        size_t inner = open + 2;
        bool strip_before = false;
        bool keep_before = false;
        if (inner < src.size() && src[inner] == '-') {
            strip_before = true;
            ++inner;
        } else if (inner < src.size() && src[inner] == '+') {
            keep_before = true;
            ++inner;
        }
        // Whitespace control of the text before the tag.
        text = text.substr(text_from);
        const size_t start = pos + text_from;
        const bool line_start = start == 0 || src[start - 1] == '\n';
        if (strip_before) {
            while (!text.empty() && is_space(text.back())) text.pop_back();
        } else if (kind != '{' && !keep_before) {
            lstrip_block(text, line_start);
        }
        if (!text.empty()) out.push_back({SegKind::text, text, text_line});

        const int tag_line = line;
        size_t close;  // index of the closing delimiter's first char
        size_t after;  // just past the tag
        bool strip_after = false;
        bool keep_after = false;
        if (kind == '#') {
            close = src.find("#}", inner);
            if (close == std::string::npos) throw TemplateError(tag_line, "unclosed comment (no matching '#}')");
            after = close + 2;
            if (close > inner && src[close - 1] == '-') strip_after = true;
            if (close > inner && src[close - 1] == '+') keep_after = true;
        } else {
            close = find_tag_end(src, inner, kind == '{' ? '}' : '%', tag_line);
            after = close + 2;
            size_t content_end = close;
            if (close > inner && src[close - 1] == '-') {
                strip_after = true;
                --content_end;
            } else if (close > inner && src[close - 1] == '+' && kind == '%') {
                keep_after = true;
                --content_end;
            }
            std::string content = src.substr(inner, content_end - inner);
            // {% raw %}: the text up to {% endraw %} is output as is.
            size_t a = 0;
            while (a < content.size() && is_space(content[a])) ++a;
            size_t b = content.size();
            while (b > a && is_space(content[b - 1])) --b;
            if (kind == '%' && content.substr(a, b - a) == "raw") {
                size_t search = after;
                for (;;) {
                    const size_t o = src.find("{%", search);
                    if (o == std::string::npos)
                        throw TemplateError(tag_line, "unclosed '{% raw %}' (no '{% endraw %}')");
                    size_t i = o + 2;
                    const bool raw_strip_before = i < src.size() && src[i] == '-';
                    if (raw_strip_before || (i < src.size() && src[i] == '+')) ++i;
                    while (i < src.size() && is_space(src[i])) ++i;
                    if (src.compare(i, 6, "endraw") == 0) {
                        size_t j = i + 6;
                        while (j < src.size() && is_space(src[j])) ++j;
                        bool raw_strip_after = false;
                        if (j < src.size() && (src[j] == '-' || src[j] == '+')) {
                            raw_strip_after = src[j] == '-';
                            ++j;
                        }
                        if (src.compare(j, 2, "%}") != 0) {
                            search = o + 2;
                            continue;
                        }
                        std::string raw = src.substr(after, o - after);
                        if (strip_after) {
                            size_t k = 0;
                            while (k < raw.size() && is_space(raw[k])) ++k;
                            raw = raw.substr(k);
                        } else if (!keep_after && !raw.empty() && raw[0] == '\n') {
                            raw = raw.substr(1);
                        }
                        if (raw_strip_before) {
                            while (!raw.empty() && is_space(raw.back())) raw.pop_back();
                        }
                        if (!raw.empty()) out.push_back({SegKind::text, raw, tag_line});
                        line += count_lines(src, open, j + 2);
                        pos = j + 2;
                        strip_next = raw_strip_after;
                        trim_next = !raw_strip_after;
                        break;
                    }
                    search = o + 2;
                }
                continue;
            }
            out.push_back({kind == '{' ? SegKind::expr : SegKind::stmt, content, tag_line});
        }
        line += count_lines(src, open, after);
        pos = after;
        strip_next = strip_after;
        trim_next = kind != '{' && !strip_after && !keep_after;
        if (pos == src.size()) break;
    }
    return out;
}

namespace {

// Decodes a Python string literal's escapes (\n \t \r \\ \' \" \xNN \uNNNN \UNNNNNNNN \0 \a \b \f \v);
// an unknown escape keeps its backslash, as Python does.
std::string unescape(std::string_view s, int line) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '\\' || i + 1 == s.size()) {
            out += s[i];
            continue;
        }
        const char c = s[++i];
        switch (c) {
            case 'n':
                out += '\n';
                break;
            case 't':
                out += '\t';
                break;
            case 'r':
                out += '\r';
                break;
            case '\\':
                out += '\\';
                break;
            case '\'':
                out += '\'';
                break;
            case '"':
                out += '"';
                break;
            case 'a':
                out += '\a';
                break;
            case 'b':
                out += '\b';
                break;
            case 'f':
                out += '\f';
                break;
            case 'v':
                out += '\v';
                break;
            case '0':
                out += '\0';
                break;
            case '\n':
                break;
            case 'x':
            case 'u':
            case 'U': {
                const size_t n = c == 'x' ? 2 : (c == 'u' ? 4 : 8);
                if (i + n >= s.size()) {
                    throw TemplateError(line, "truncated \\" + std::string(1, c) + " escape in a string literal");
                }
                const std::string hex(s.substr(i + 1, n));
                for (char h : hex) {
                    if (!std::isxdigit(static_cast<unsigned char>(h)))
                        throw TemplateError(line, "bad \\" + std::string(1, c) + " escape in a string literal");
                }
                const uint32_t cp = static_cast<uint32_t>(std::strtoul(hex.c_str(), nullptr, 16));
                if (cp > 0x10ffff) throw TemplateError(line, "escape beyond U+10FFFF in a string literal");
                utf8::append_codepoint(out, cp);
                i += n;
                break;
            }
            default:
                out += '\\';
                out += c;
        }
    }
    return out;
}

}  // namespace

std::vector<Token> tokenize(const std::string& s, int line) {
    std::vector<Token> out;
    size_t i = 0;
    while (i < s.size()) {
        const char c = s[i];
        if (is_space(c)) {
            ++i;
            continue;
        }
        if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
            size_t j = i;
            while (j < s.size() && (std::isalnum(static_cast<unsigned char>(s[j])) || s[j] == '_')) ++j;
            out.push_back({Tok::name, s.substr(i, j - i)});
            i = j;
            continue;
        }
        if (std::isdigit(static_cast<unsigned char>(c))) {
            size_t j = i;
            bool is_float = false;
            while (j < s.size() && (std::isdigit(static_cast<unsigned char>(s[j])) || s[j] == '_')) ++j;
            if (j + 1 < s.size() && s[j] == '.' && std::isdigit(static_cast<unsigned char>(s[j + 1]))) {
                is_float = true;
                ++j;
                while (j < s.size() && (std::isdigit(static_cast<unsigned char>(s[j])) || s[j] == '_')) ++j;
            }
            if (j < s.size() && (s[j] == 'e' || s[j] == 'E')) {
                size_t k = j + 1;
                if (k < s.size() && (s[k] == '+' || s[k] == '-')) ++k;
                if (k < s.size() && std::isdigit(static_cast<unsigned char>(s[k]))) {
                    is_float = true;
                    j = k;
                    while (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) ++j;
                }
            }
            std::string digits;
            for (size_t k = i; k < j; ++k) {
                if (s[k] != '_') digits += s[k];
            }
            Token t{is_float ? Tok::number : Tok::integer, digits};
            if (is_float) {
                t.d = std::strtod(digits.c_str(), nullptr);
            } else {
                errno = 0;
                t.i = std::strtoll(digits.c_str(), nullptr, 10);
                if (errno == ERANGE) throw TemplateError(line, "integer literal " + digits + " is out of range");
            }
            out.push_back(t);
            i = j;
            continue;
        }
        if (c == '\'' || c == '"') {
            size_t j = i + 1;
            while (j < s.size() && s[j] != c) j += s[j] == '\\' ? 2 : 1;
            if (j >= s.size()) throw TemplateError(line, "unterminated string literal");
            out.push_back({Tok::string, unescape(std::string_view(s).substr(i + 1, j - i - 1), line)});
            i = j + 1;
            continue;
        }
        static const char* const two[] = {"//", "**", "==", "!=", "<=", ">="};
        bool matched = false;
        for (const char* op : two) {
            if (s.compare(i, 2, op) == 0) {
                out.push_back({Tok::op, op});
                i += 2;
                matched = true;
                break;
            }
        }
        if (matched) continue;
        if (std::string_view("+-*/%~<>()[]{},.:|=").find(c) != std::string_view::npos) {
            out.push_back({Tok::op, std::string(1, c)});
            ++i;
            continue;
        }
        char shown[8];
        if (c > 0x20 && c < 0x7f) {
            std::snprintf(shown, sizeof(shown), "'%c'", c);
        } else {
            std::snprintf(shown, sizeof(shown), "\\x%02x", static_cast<unsigned char>(c));
        }
        throw TemplateError(line, std::string("unexpected character ") + shown + " in a tag");
    }
    out.push_back({Tok::end, ""});
    return out;
}

}  // namespace gridlm::jinja::ast
