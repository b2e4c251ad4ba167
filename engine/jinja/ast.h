// Syntax tree of a parsed template (internal to engine/jinja). Node kinds follow jinja2's
// grammar (https://jinja.palletsprojects.com/en/3.1.x/templates/); every node keeps the template
// line it starts on for error messages.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/jinja/value.h"

namespace gridlm::jinja::ast {

struct Expr;
struct Stmt;
using ExprPtr = std::unique_ptr<Expr>;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

enum class ExprKind {
    literal,      // value
    name,         // name
    list,         // items (tuple: a Python tuple)
    dict,         // pairs
    get_attr,     // object.name
    get_item,     // object[index]
    slice,        // object[start:stop:step], any of the three may be absent
    call,         // callee(args)
    filter,       // input | name(args)
    test,         // input is [not] name(args)
    unary,        // op operand: "not", "-", "+"
    binary,       // left op right: and or + - * / // % ** ~
    compare,      // first op1 x1 op2 x2...: == != < <= > >= in notin
    conditional,  // then if cond else otherwise
};

struct Args {
    std::vector<ExprPtr> positional;
    std::vector<std::pair<std::string, ExprPtr>> keyword;
};

struct Expr {
    ExprKind kind;
    int line = 0;
    Value value;                                               // literal
    std::string name;                                          // name, get_attr, filter, test; op of unary / binary
    bool flag = false;                                         // list: tuple; test: negated
    ExprPtr a, b, c, d;                                        // operands (see ExprKind)
    std::vector<ExprPtr> items;                                // list items
    std::vector<std::pair<ExprPtr, ExprPtr>> pairs;            // dict
    std::vector<std::pair<std::string, ExprPtr>> comparisons;  // compare: (op, operand) after `a`
    Args args;                                                 // call, filter, test

    Expr(ExprKind k, int l) : kind(k), line(l) {}
};

enum class StmtKind {
    text,        // text
    print,       // {{ expr }}
    if_,         // branches, else_body
    for_,        // targets in iter [if cond], body, else_body
    set,         // targets = expr, or target.attr = expr (namespace)
    set_block,   // {% set name %}body{% endset %}, filters applied to the captured text
    macro,       // name(params) body
    call_block,  // {% call(params) expr %}body{% endcall %}
    filter_block,
    break_,
    continue_,
    scope,  // body rendered as is ({% generation %})
};

struct Param {
    std::string name;
    ExprPtr default_value;  // null: required
};

struct Stmt {
    StmtKind kind;
    int line = 0;
    std::string text;                                // text; set: namespace attribute; macro: name
    ExprPtr expr;                                    // print; for: iterable; set: value; call_block: the call
    ExprPtr cond;                                    // for: filter condition
    std::vector<std::string> targets;                // for / set / set_block
    std::vector<std::pair<ExprPtr, Body>> branches;  // if / elif
    Body body, else_body;
    std::vector<Param> params;     // macro, call_block (caller's parameters)
    std::vector<ExprPtr> filters;  // set_block, filter_block: filter nodes with null input
    bool recursive = false;        // for

    Stmt(StmtKind k, int l) : kind(k), line(l) {}
};

// Parses template source (newlines already normalised) with jinja2's lexing rules as HF sets
// them: trim_blocks and lstrip_blocks on, one trailing newline dropped, loop controls enabled.
// Throws TemplateError (line, reason) for a syntax error.
Body parse(const std::string& source);

}  // namespace gridlm::jinja::ast
