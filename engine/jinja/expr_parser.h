// Recursive-descent parser of one tag's tokens (internal to engine/jinja): expressions with
// jinja2's operator precedence (or, and, not, comparisons, + -, ~, * / // %, **, unary, then
// filters `|`, tests `is` and calls), call arguments, assignment targets and macro parameters.
#pragma once

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "engine/jinja/ast.h"
#include "engine/jinja/lexer.h"
#include "engine/jinja/template.h"

namespace gridlm::jinja::ast {

// Parses the tokens of one tag; every failure is a TemplateError at the tag's line.
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
        const Nesting guard(*this);
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
        const Nesting guard(*this);
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
    // Expressions nest at most max_nesting deep (brackets, unary operators): deeper input is an
    // error, not a stack overflow.
    static constexpr int max_nesting = 200;
    struct Nesting {
        TagParser& p;
        explicit Nesting(TagParser& parser) : p(parser) {
            if (++p.depth_ > max_nesting) p.fail("expression nested more than 200 deep");
        }
        ~Nesting() { --p.depth_; }
    };
    int depth_ = 0;
    std::vector<Token> toks_;
    size_t pos_ = 0;
    int line_;
};

}  // namespace gridlm::jinja::ast
