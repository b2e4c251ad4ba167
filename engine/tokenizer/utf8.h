// UTF-8 helpers shared by the tokenizer, the chat templates and the CLI: validation with
// U+FFFD substitution, code point encoding, and GPT-2's byte <-> printable-character mapping.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace gridlm::utf8 {

// Appends code point `cp` (<= 0x10FFFF) as UTF-8.
void append_codepoint(std::string& out, uint32_t cp);

// Length of the well-formed UTF-8 sequence starting at s[pos], or 0 when the bytes there are
// ill-formed (overlong forms, surrogates and values above U+10FFFF count as ill-formed).
// `truncated` is set when the sequence runs past the end of s but is a valid prefix so far:
// what a streaming decoder must hold back until the next token.
size_t sequence_length(std::string_view s, size_t pos, bool* truncated = nullptr);

// Length of the "maximal subpart" of an ill-formed sequence at s[pos] (Unicode ch. 3, the policy
// Python's errors="replace" follows): the bytes that one U+FFFD replaces. Always >= 1.
size_t maximal_subpart(std::string_view s, size_t pos);

// True when all of s is well-formed UTF-8.
bool is_valid(std::string_view s);

// s with every ill-formed subsequence replaced by U+FFFD (maximal-subpart policy).
std::string sanitize(std::string_view s);

// GPT-2's reversible byte <-> character mapping: printable Latin-1 bytes map to themselves,
// the other 68 bytes to U+0100.. in byte order. Byte-level BPE vocabularies are written in it.
const std::string& byte_to_unicode(uint8_t b);  // UTF-8 of the character standing for byte b
// Byte for code point cp of the mapping, or -1 when cp is not one of the 256 characters.
int unicode_to_byte(uint32_t cp);

// Decodes one well-formed code point at s[pos] (caller guarantees validity); advances pos.
uint32_t next_codepoint(std::string_view s, size_t& pos);

}  // namespace gridlm::utf8
