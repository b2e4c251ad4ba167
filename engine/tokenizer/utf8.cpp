// UTF-8 validation, U+FFFD substitution and GPT-2's byte <-> character mapping.
#include "engine/tokenizer/utf8.h"

#include <array>

namespace gridlm::utf8 {

void append_codepoint(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

namespace {

// Shape of a sequence by its lead byte (Unicode Table 3-7): total length and the allowed range
// of the second byte, which is where overlongs, surrogates and > U+10FFFF are excluded.
struct LeadInfo {
    uint8_t length;  // 0: the byte cannot start a sequence
    uint8_t lo;
    uint8_t hi;
};

LeadInfo lead_info(uint8_t b) {
    if (b < 0x80) return {1, 0, 0};
    if (b < 0xC2) return {0, 0, 0};
    if (b < 0xE0) return {2, 0x80, 0xBF};
    if (b == 0xE0) return {3, 0xA0, 0xBF};
    if (b == 0xED) return {3, 0x80, 0x9F};
    if (b < 0xF0) return {3, 0x80, 0xBF};
    if (b == 0xF0) return {4, 0x90, 0xBF};
    if (b < 0xF4) return {4, 0x80, 0xBF};
    if (b == 0xF4) return {4, 0x80, 0x8F};
    return {0, 0, 0};
}

// How many bytes from pos form a valid (possibly incomplete) prefix of a sequence.
size_t valid_prefix(std::string_view s, size_t pos, const LeadInfo& info) {
    size_t n = 1;
    while (n < info.length && pos + n < s.size()) {
        const auto c = static_cast<uint8_t>(s[pos + n]);
        const bool ok = (n == 1) ? (c >= info.lo && c <= info.hi) : (c >= 0x80 && c <= 0xBF);
        if (!ok) break;
        ++n;
    }
    return n;
}

}  // namespace

size_t sequence_length(std::string_view s, size_t pos, bool* truncated) {
    if (truncated) *truncated = false;
    const LeadInfo info = lead_info(static_cast<uint8_t>(s[pos]));
    if (info.length == 0) return 0;
    const size_t n = valid_prefix(s, pos, info);
    if (n == info.length) return n;
    if (truncated && pos + n == s.size()) *truncated = true;
    return 0;
}

size_t maximal_subpart(std::string_view s, size_t pos) {
    const LeadInfo info = lead_info(static_cast<uint8_t>(s[pos]));
    if (info.length == 0) return 1;
    return valid_prefix(s, pos, info);
}

bool is_valid(std::string_view s) {
    size_t pos = 0;
    while (pos < s.size()) {
        if (static_cast<uint8_t>(s[pos]) < 0x80) {
            ++pos;
            continue;
        }
        const size_t n = sequence_length(s, pos);
        if (n == 0) return false;
        pos += n;
    }
    return true;
}

std::string sanitize(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    size_t pos = 0;
    while (pos < s.size()) {
        const size_t n = sequence_length(s, pos);
        if (n > 0) {
            out.append(s.substr(pos, n));
            pos += n;
        } else {
            out += "\xEF\xBF\xBD";
            pos += maximal_subpart(s, pos);
        }
    }
    return out;
}

namespace {

struct ByteMap {
    std::array<std::string, 256> to_unicode;
    std::array<int16_t, 324> to_byte;  // the mapping only uses code points below U+0144

    ByteMap() {
        to_byte.fill(-1);
        int next = 0;
        for (int b = 0; b < 256; ++b) {
            const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
            const uint32_t cp = printable ? static_cast<uint32_t>(b) : 256u + static_cast<uint32_t>(next++);
            append_codepoint(to_unicode[b], cp);
            to_byte[cp] = static_cast<int16_t>(b);
        }
    }
};

const ByteMap& byte_map() {
    static const ByteMap map;
    return map;
}

}  // namespace

const std::string& byte_to_unicode(uint8_t b) { return byte_map().to_unicode[b]; }

int unicode_to_byte(uint32_t cp) {
    const auto& map = byte_map();
    return cp < map.to_byte.size() ? map.to_byte[cp] : -1;
}

uint32_t next_codepoint(std::string_view s, size_t& pos) {
    const auto b0 = static_cast<uint8_t>(s[pos]);
    if (b0 < 0x80) {
        ++pos;
        return b0;
    }
    const size_t n = b0 < 0xE0 ? 2 : b0 < 0xF0 ? 3 : 4;
    uint32_t cp = b0 & (0x7F >> n);
    for (size_t i = 1; i < n; ++i) cp = (cp << 6) | (static_cast<uint8_t>(s[pos + i]) & 0x3F);
    pos += n;
    return cp;
}

}  // namespace gridlm::utf8
