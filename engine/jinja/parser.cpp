// Template source -> syntax tree. Two stages, as jinja2's lexer: the source is cut into text
// and tags ({{ }}, {% %}, {# #}) with whitespace control applied, then each tag's contents are
// tokenised and parsed by recursive descent with jinja2's operator precedence.
#include <cctype>
#include <cstdlib>
#include <string_view>

#include "engine/jinja/ast.h"
#include "engine/jinja/template.h"
#include "engine/tokenizer/utf8.h"

namespace gridlm::jinja::ast {
namespace {

// ---- stage 1: text and tags ------------------------------------------------------------------

enum class SegKind { text, expr, stmt };

struct Segment {
    SegKind kind;
    std::string content;  // text, or the tag's inside without delimiters and whitespace markers
    int line;
};

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

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

// ---- stage 2: tokens of a tag --------------------------------------------------------------

enum class Tok { name, string, integer, number, op, end };

struct Token {
    Tok type;
    std::string text;  // name, op, or the decoded string literal
    int64_t i = 0;
    double d = 0.0;
};

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
        throw TemplateError(line, std::string("unexpected character '") + c + "' in a tag");
    }
    out.push_back({Tok::end, ""});
    return out;
}

// ---- stage 3: recursive descent ---------------------------------------------------------------

class TagParser {
public:
    TagParser(const std::string& content, int line) : toks_(tokenize(content, line)), line_(line) {}

    const Token& peek(size_t ahead = 0) const { return toks_[std::min(pos_ + ahead, toks_.size() - 1)]; }
    bool at_end() const { return peek().type == Tok::end; }
    bool is_op(const char* op, size_t ahead = 0) const { return peek(ahead).type == Tok::op && peek(ahead).text == op; }
    bool is_name(const char* n, size_t ahead = 0) const {
        return peek(ahead).type == Tok::name && peek(ahead).text == n;
    }
    Token next() {
        Token t = peek();
        if (pos_ < toks_.size() - 1) ++pos_;
        return t;
    }
    bool skip_op(const char* op) {
        if (!is_op(op)) return false;
        next();
        return true;
    }
    bool skip_name(const char* n) {
        if (!is_name(n)) return false;
        next();
        return true;
    }
    [[noreturn]] void fail(const std::string& what) const {
        const Token& t = peek();
        const std::string got = t.type == Tok::end ? "the end of the tag" : "'" + t.text + "'";
        throw TemplateError(line_, what + ", got " + got);
    }
    void expect_op(const char* op) {
        if (!skip_op(op)) fail(std::string("expected '") + op + "'");
    }
    std::string expect_name(const char* what = "a name") {
        if (peek().type != Tok::name) fail(std::string("expected ") + what);
        return next().text;
    }
    void expect_end() {
        if (!at_end()) fail("expected the end of the tag");
    }

    ExprPtr make(ExprKind k) const { return std::make_unique<Expr>(k, line_); }

    // expression, or a tuple of them: `a, b`
    ExprPtr tuple(bool allow_conditional = true) {
        ExprPtr first = expression(allow_conditional);
        if (!is_op(",")) return first;
        ExprPtr t = make(ExprKind::list);
        t->flag = true;
        t->items.push_back(std::move(first));
        while (skip_op(",")) {
            if (at_end() || is_op("=") || is_op(")")) break;
            t->items.push_back(expression(allow_conditional));
        }
        return t;
    }

    ExprPtr expression(bool allow_conditional = true) {
        ExprPtr e = or_expr();
        if (!allow_conditional) return e;
        while (is_name("if")) {
            next();
            ExprPtr c = make(ExprKind::conditional);
            c->a = std::move(e);
            c->b = or_expr();
            if (skip_name("else")) c->c = expression();
            e = std::move(c);
        }
        return e;
    }

    ExprPtr binary(const char* op, ExprPtr left, ExprPtr right) {
        ExprPtr e = make(ExprKind::binary);
        e->name = op;
        e->a = std::move(left);
        e->b = std::move(right);
        return e;
    }

    ExprPtr or_expr() {
        ExprPtr e = and_expr();
        while (skip_name("or")) e = binary("or", std::move(e), and_expr());
        return e;
    }
    ExprPtr and_expr() {
        ExprPtr e = not_expr();
        while (skip_name("and")) e = binary("and", std::move(e), not_expr());
        return e;
    }
    ExprPtr not_expr() {
        if (is_name("not")) {
            next();
            ExprPtr e = make(ExprKind::unary);
            e->name = "not";
            e->a = not_expr();
            return e;
        }
        return compare();
    }
    ExprPtr compare() {
        ExprPtr first = math1();
        std::vector<std::pair<std::string, ExprPtr>> ops;
        for (;;) {
            const Token& t = peek();
            if (t.type == Tok::op && (t.text == "==" || t.text == "!=" || t.text == "<" || t.text == ">" ||
                                      t.text == "<=" || t.text == ">=")) {
                std::string op = next().text;
                ops.emplace_back(op, math1());
            } else if (is_name("in")) {
                next();
                ops.emplace_back("in", math1());
            } else if (is_name("not") && is_name("in", 1)) {
                next();
                next();
                ops.emplace_back("notin", math1());
            } else {
                break;
            }
        }
        if (ops.empty()) return first;
        ExprPtr e = make(ExprKind::compare);
        e->a = std::move(first);
        e->comparisons = std::move(ops);
        return e;
    }
    ExprPtr math1() {
        ExprPtr e = concat();
        while (is_op("+") || is_op("-")) {
            const std::string op = next().text;
            e = binary(op.c_str(), std::move(e), concat());
        }
        return e;
    }
    ExprPtr concat() {
        ExprPtr e = math2();
        while (skip_op("~")) e = binary("~", std::move(e), math2());
        return e;
    }
    ExprPtr math2() {
        ExprPtr e = pow();
        while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
            const std::string op = next().text;
            e = binary(op.c_str(), std::move(e), pow());
        }
        return e;
    }
    ExprPtr pow() {
        ExprPtr e = unary(true);
        while (skip_op("**")) e = binary("**", std::move(e), unary(true));
        return e;
    }
    ExprPtr unary(bool with_filter) {
        ExprPtr e;
        if (is_op("-") || is_op("+")) {
            e = make(ExprKind::unary);
            e->name = next().text;
            e->a = unary(false);
        } else {
            e = postfix(primary());
        }
        if (with_filter) e = filter_chain(std::move(e));
        return e;
    }

    ExprPtr primary() {
        const Token t = peek();
        switch (t.type) {
            case Tok::name: {
                next();
                ExprPtr e = make(ExprKind::literal);
                if (t.text == "true" || t.text == "True") {
                    e->value = Value(true);
                } else if (t.text == "false" || t.text == "False") {
                    e->value = Value(false);
                } else if (t.text == "none" || t.text == "None") {
                    e->value = Value::none();
                } else {
                    e = make(ExprKind::name);
                    e->name = t.text;
                }
                return e;
            }
            case Tok::string: {
                std::string s;
                while (peek().type == Tok::string) s += next().text;  // adjacent literals join
                ExprPtr e = make(ExprKind::literal);
                e->value = Value(std::move(s));
                return e;
            }
            case Tok::integer: {
                next();
                ExprPtr e = make(ExprKind::literal);
                e->value = Value(t.i);
                return e;
            }
            case Tok::number: {
                next();
                ExprPtr e = make(ExprKind::literal);
                e->value = Value(t.d);
                return e;
            }
            case Tok::op:
                if (t.text == "(") {
                    next();
                    if (skip_op(")")) {
                        ExprPtr e = make(ExprKind::list);
                        e->flag = true;
                        return e;
                    }
                    ExprPtr e = tuple();
                    expect_op(")");
                    return e;
                }
                if (t.text == "[") {
                    next();
                    ExprPtr e = make(ExprKind::list);
                    while (!is_op("]")) {
                        e->items.push_back(expression());
                        if (!skip_op(",")) break;
                    }
                    expect_op("]");
                    return e;
                }
                if (t.text == "{") {
                    next();
                    ExprPtr e = make(ExprKind::dict);
                    while (!is_op("}")) {
                        ExprPtr k = expression();
                        expect_op(":");
                        e->pairs.emplace_back(std::move(k), expression());
                        if (!skip_op(",")) break;
                    }
                    expect_op("}");
                    return e;
                }
                break;
            default:
                break;
        }
        fail("expected an expression");
    }

    void call_args(Args& args) {
        // just past '('
        while (!is_op(")")) {
            if (peek().type == Tok::name && is_op("=", 1)) {
                std::string key = next().text;
                next();
                args.keyword.emplace_back(std::move(key), expression());
            } else {
                if (!args.keyword.empty()) fail("positional argument after a keyword argument");
                args.positional.push_back(expression());
            }
            if (!skip_op(",")) break;
        }
        expect_op(")");
    }

    ExprPtr postfix(ExprPtr e) {
        for (;;) {
            if (is_op(".")) {
                next();
                const Token t = next();
                if (t.type == Tok::name) {
                    ExprPtr g = make(ExprKind::get_attr);
                    g->a = std::move(e);
                    g->name = t.text;
                    e = std::move(g);
                } else if (t.type == Tok::integer) {
                    ExprPtr g = make(ExprKind::get_item);
                    g->a = std::move(e);
                    g->b = make(ExprKind::literal);
                    g->b->value = Value(t.i);
                    e = std::move(g);
                } else {
                    fail("expected an attribute name after '.'");
                }
            } else if (is_op("[")) {
                next();
                ExprPtr parts[3];
                int n = 0;
                bool is_slice = false;
                for (;;) {
                    if (!is_op(":") && !is_op("]")) parts[n] = expression();
                    if (is_op(":") && n < 2) {
                        next();
                        is_slice = true;
                        ++n;
                        continue;
                    }
                    break;
                }
                expect_op("]");
                if (is_slice) {
                    ExprPtr s = make(ExprKind::slice);
                    s->a = std::move(e);
                    s->b = std::move(parts[0]);
                    s->c = std::move(parts[1]);
                    s->d = std::move(parts[2]);
                    e = std::move(s);
                } else {
                    if (!parts[0]) fail("expected a subscript");
                    ExprPtr g = make(ExprKind::get_item);
                    g->a = std::move(e);
                    g->b = std::move(parts[0]);
                    e = std::move(g);
                }
            } else if (is_op("(")) {
                next();
                ExprPtr c = make(ExprKind::call);
                c->a = std::move(e);
                call_args(c->args);
                e = std::move(c);
            } else {
                return e;
            }
        }
    }

    ExprPtr filter_call(ExprPtr input) {
        ExprPtr f = make(ExprKind::filter);
        f->a = std::move(input);
        f->name = expect_name("a filter name");
        while (is_op(".") && peek(1).type == Tok::name) {  // dotted filter names
            next();
            f->name += "." + next().text;
        }
        if (skip_op("(")) call_args(f->args);
        return f;
    }

    ExprPtr filter_chain(ExprPtr e) {
        for (;;) {
            if (skip_op("|")) {
                e = filter_call(std::move(e));
            } else if (is_name("is")) {
                next();
                ExprPtr t = make(ExprKind::test);
                t->flag = skip_name("not");
                t->a = std::move(e);
                t->name = expect_name("a test name");
                const Token& n = peek();
                if (skip_op("(")) {
                    call_args(t->args);
                } else if ((n.type == Tok::name || n.type == Tok::string || n.type == Tok::integer ||
                            n.type == Tok::number || is_op("[") || is_op("{")) &&
                           !is_name("else") && !is_name("or") && !is_name("and") && !is_name("if") && !is_name("in") &&
                           !is_name("not") && !is_name("is")) {
                    t->args.positional.push_back(postfix(primary()));
                }
                e = std::move(t);
            } else if (is_op("(")) {
                e = postfix(std::move(e));
            } else {
                return e;
            }
        }
    }

    // Assignment targets: `a`, `a, b`, `(a, b)`.
    std::vector<std::string> targets() {
        std::vector<std::string> names;
        const bool paren = skip_op("(");
        do {
            names.push_back(expect_name("a variable name"));
        } while (skip_op(","));
        if (paren) expect_op(")");
        return names;
    }

    std::vector<Param> params() {
        std::vector<Param> out;
        expect_op("(");
        while (!is_op(")")) {
            Param p;
            p.name = expect_name("a parameter name");
            if (skip_op("=")) p.default_value = expression();
            out.push_back(std::move(p));
            if (!skip_op(",")) break;
        }
        expect_op(")");
        return out;
    }

private:
    std::vector<Token> toks_;
    size_t pos_ = 0;
    int line_;
};

// Statement structure over the segments.
class BodyParser {
public:
    explicit BodyParser(std::vector<Segment> segs) : segs_(std::move(segs)) {}

    Body parse_all() {
        Body body = parse_body({}, nullptr);
        return body;
    }

private:
    // The first word of a statement tag.
    static std::string keyword(const Segment& s) {
        size_t i = 0;
        while (i < s.content.size() && is_space(s.content[i])) ++i;
        size_t j = i;
        while (j < s.content.size() && (std::isalnum(static_cast<unsigned char>(s.content[j])) || s.content[j] == '_'))
            ++j;
        return s.content.substr(i, j - i);
    }

    // Parses statements until a tag whose keyword is in `ends`; stores which one in *ended.
    Body parse_body(const std::vector<std::string>& ends, std::string* ended, int open_line = 0,
                    const char* open_tag = nullptr) {
        Body body;
        while (pos_ < segs_.size()) {
            const Segment& s = segs_[pos_];
            if (s.kind == SegKind::text) {
                auto st = std::make_unique<Stmt>(StmtKind::text, s.line);
                st->text = s.content;
                body.push_back(std::move(st));
                ++pos_;
                continue;
            }
            if (s.kind == SegKind::expr) {
                TagParser p(s.content, s.line);
                auto st = std::make_unique<Stmt>(StmtKind::print, s.line);
                st->expr = p.tuple();
                p.expect_end();
                body.push_back(std::move(st));
                ++pos_;
                continue;
            }
            const std::string kw = keyword(s);
            for (const std::string& e : ends) {
                if (kw == e) {
                    if (ended) *ended = kw;
                    return body;
                }
            }
            body.push_back(statement(s, kw));
        }
        if (open_tag)
            throw TemplateError(open_line, std::string("unclosed '{% ") + open_tag + " %}' block (missing '{% end" +
                                               open_tag + " %}')");
        return body;
    }

    // Consumes the closing tag at pos_ (whose keyword was matched) and checks nothing follows.
    void close_tag(const char* kw) {
        const Segment& s = segs_[pos_];
        TagParser p(s.content, s.line);
        p.next();
        if (std::string(kw) == "endmacro" || std::string(kw) == "endblock") {
            if (p.peek().type == Tok::name) p.next();
        }
        p.expect_end();
        ++pos_;
    }

    StmtPtr statement(const Segment& s, const std::string& kw) {
        TagParser p(s.content, s.line);
        p.next();  // the keyword
        ++pos_;
        const int line = s.line;
        if (kw == "if") {
            auto st = std::make_unique<Stmt>(StmtKind::if_, line);
            ExprPtr cond = p.tuple();
            p.expect_end();
            for (;;) {
                std::string ended;
                Body b = parse_body({"elif", "else", "endif"}, &ended, line, "if");
                st->branches.emplace_back(std::move(cond), std::move(b));
                if (ended == "elif") {
                    const Segment& e = segs_[pos_];
                    TagParser q(e.content, e.line);
                    q.next();
                    cond = q.tuple();
                    q.expect_end();
                    ++pos_;
                    continue;
                }
                if (ended == "else") {
                    close_tag("else");
                    st->else_body = parse_body({"endif"}, &ended, line, "if");
                }
                close_tag("endif");
                break;
            }
            return st;
        }
        if (kw == "for") {
            auto st = std::make_unique<Stmt>(StmtKind::for_, line);
            st->targets = p.targets();
            if (!p.skip_name("in")) p.fail("expected 'in' in a for loop");
            st->expr = p.tuple(/*allow_conditional=*/false);
            if (p.skip_name("if")) st->cond = p.expression();
            if (p.skip_name("recursive")) st->recursive = true;
            p.expect_end();
            std::string ended;
            st->body = parse_body({"else", "endfor"}, &ended, line, "for");
            if (ended == "else") {
                close_tag("else");
                st->else_body = parse_body({"endfor"}, &ended, line, "for");
            }
            close_tag("endfor");
            return st;
        }
        if (kw == "set") {
            if (p.peek().type == Tok::name && p.is_op(".", 1)) {
                auto st = std::make_unique<Stmt>(StmtKind::set, line);
                st->targets.push_back(p.next().text);
                p.next();
                st->text = p.expect_name("an attribute name");
                p.expect_op("=");
                st->expr = p.tuple();
                p.expect_end();
                return st;
            }
            std::vector<std::string> names = p.targets();
            if (p.skip_op("=")) {
                auto st = std::make_unique<Stmt>(StmtKind::set, line);
                st->targets = std::move(names);
                st->expr = p.tuple();
                p.expect_end();
                return st;
            }
            if (names.size() != 1) p.fail("expected '='");
            auto st = std::make_unique<Stmt>(StmtKind::set_block, line);
            st->targets = std::move(names);
            while (p.skip_op("|")) st->filters.push_back(p.filter_call(nullptr));
            p.expect_end();
            std::string ended;
            st->body = parse_body({"endset"}, &ended, line, "set");
            close_tag("endset");
            return st;
        }
        if (kw == "macro") {
            auto st = std::make_unique<Stmt>(StmtKind::macro, line);
            st->text = p.expect_name("a macro name");
            st->params = p.params();
            p.expect_end();
            std::string ended;
            st->body = parse_body({"endmacro"}, &ended, line, "macro");
            close_tag("endmacro");
            return st;
        }
        if (kw == "call") {
            auto st = std::make_unique<Stmt>(StmtKind::call_block, line);
            if (p.is_op("(")) st->params = p.params();
            st->expr = p.expression();
            if (st->expr->kind != ExprKind::call) throw TemplateError(line, "'{% call %}' needs a macro call");
            p.expect_end();
            std::string ended;
            st->body = parse_body({"endcall"}, &ended, line, "call");
            close_tag("endcall");
            return st;
        }
        if (kw == "filter") {
            auto st = std::make_unique<Stmt>(StmtKind::filter_block, line);
            do {
                st->filters.push_back(p.filter_call(nullptr));
            } while (p.skip_op("|"));
            p.expect_end();
            std::string ended;
            st->body = parse_body({"endfilter"}, &ended, line, "filter");
            close_tag("endfilter");
            return st;
        }
        if (kw == "break" || kw == "continue") {
            p.expect_end();
            return std::make_unique<Stmt>(kw == "break" ? StmtKind::break_ : StmtKind::continue_, line);
        }
        if (kw == "generation") {
            p.expect_end();
            auto st = std::make_unique<Stmt>(StmtKind::scope, line);
            std::string ended;
            st->body = parse_body({"endgeneration"}, &ended, line, "generation");
            close_tag("endgeneration");
            return st;
        }
        if (kw.empty()) throw TemplateError(line, "empty '{% %}' tag");
        if (kw.rfind("end", 0) == 0 || kw == "elif" || kw == "else")
            throw TemplateError(line, "unexpected '{% " + kw + " %}' (no open block it could close)");
        throw TemplateError(line,
                            "unknown tag '" + kw +
                                "' (supported: if, for, set, macro, call, filter, break, continue, generation, raw)");
    }

    std::vector<Segment> segs_;
    size_t pos_ = 0;
};

}  // namespace

Body parse(const std::string& source) {
    std::string src = source;
    if (!src.empty() && src.back() == '\n') src.pop_back();  // jinja2 drops one trailing newline
    return BodyParser(scan(src)).parse_all();
}

}  // namespace gridlm::jinja::ast
