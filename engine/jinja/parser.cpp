// Template source -> syntax tree: the lexer's text and tags (lexer.cpp) are arranged into
// statements and blocks here; each tag's expression is parsed by TagParser (expr_parser.h).
#include <cctype>
#include <string>

#include "engine/jinja/ast.h"
#include "engine/jinja/expr_parser.h"
#include "engine/jinja/lexer.h"
#include "engine/jinja/template.h"

namespace gridlm::jinja::ast {
namespace {

// Statement structure over the segments.
class BodyParser {
public:
    explicit BodyParser(std::vector<Segment> segs) : segs_(std::move(segs)) {}

    Body parse_all() {
        Body body = parse_body({}, nullptr);
        return body;
    }

private:
    static constexpr int max_blocks = 200;
    int depth_ = 0;
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
        if (++depth_ > max_blocks) throw TemplateError(s.line, "blocks nested more than 200 deep");
        struct Leave {
            int& d;
            ~Leave() { --d; }
        } leave{depth_};
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
