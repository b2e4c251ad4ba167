// Lexing of template source (internal to engine/jinja), as jinja2's lexer with HF's settings:
// the source is cut into text and tags ({{ }}, {% %}, {# #}) with whitespace control applied
// (trim_blocks, lstrip_blocks, '-' and '+' markers), and a tag's inside into tokens.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace gridlm::jinja::ast {

enum class SegKind { text, expr, stmt };

struct Segment {
    SegKind kind;
    std::string content;  // text, or the tag's inside without delimiters and whitespace markers
    int line;
};

// Text and tags of a template (newlines normalised, trailing newline dropped). Throws
// TemplateError for an unclosed tag, comment or raw block.
std::vector<Segment> scan(const std::string& src);

enum class Tok { name, string, integer, number, op, end };

struct Token {
    Tok type;
    std::string text;  // name, op, or the decoded string literal
    int64_t i = 0;
    double d = 0.0;
};

// Tokens of a tag's inside, ending with Tok::end. Throws TemplateError (at `line`) for an
// unexpected character, an unterminated string or a bad escape.
std::vector<Token> tokenize(const std::string& s, int line);

bool is_space(char c);

}  // namespace gridlm::jinja::ast
