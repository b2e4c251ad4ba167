// Pre-tokenizer regex sequences per kind, compiled once with PCRE2 (UTF + UCP, JIT when
// available) and applied "isolated": matches and the gaps between them both become words.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "engine/tokenizer/pre_tokenizer.h"

#include <pcre2.h>

#include <new>

#include "engine/core/error.h"

namespace gridlm {

namespace {

// GPT-2's split, as in its encoder.py and HF tokenizers' ByteLevel(use_regex=true).
constexpr const char* regex_gpt2 = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// Llama 3 / Qwen2 family. The originals spell the contractions (?i:'s|'t|...); with UCP,
// PCRE2's caseless matching would also fold "'ſ" (U+017F) into "'s", so the letters are
// spelled out instead, as llama.cpp does.
constexpr const char* contractions_cased = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])";

std::string regex_llama3_family(const char* digits) {
    return std::string(contractions_cased) + R"(|[^\r\n\p{L}\p{N}]?\p{L}+|)" + digits +
           R"(| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
}

struct KindEntry {
    const char* canonical;
    std::vector<const char*> aliases;
};

// Aliases follow the names llama.cpp's converter writes into tokenizer.ggml.pre.
const std::vector<KindEntry>& kind_table() {
    static const std::vector<KindEntry> table = {
        {"gpt2", {"gpt2", "gpt-2", "mpt", "olmo"}},
        {"smollm", {"smollm", "starcoder", "refact"}},
        {"qwen2", {"qwen2", "deepseek-r1-qwen", "stablelm2"}},
        {"llama3", {"llama3", "llama-bpe", "llama-v3", "smaug-bpe", "dbrx"}},
    };
    return table;
}

}  // namespace

std::vector<std::string> PreTokenizer::regexes_for(const std::string& kind, std::string* canonical) {
    std::string name;
    for (const auto& entry : kind_table()) {
        for (const char* alias : entry.aliases) {
            if (kind == alias) name = entry.canonical;
        }
    }
    if (canonical) *canonical = name;
    if (name == "gpt2") return {regex_gpt2};
    // SmolLM2's tokenizer.json: Digits(individual_digits) before the ByteLevel split.
    if (name == "smollm") return {R"(\p{N})", regex_gpt2};
    if (name == "qwen2") return {regex_llama3_family(R"(\p{N})")};
    if (name == "llama3") return {regex_llama3_family(R"(\p{N}{1,3})")};
    return {};
}

std::string PreTokenizer::supported_kinds() {
    std::string out;
    for (const auto& entry : kind_table()) {
        for (const char* alias : entry.aliases) {
            if (!out.empty()) out += ", ";
            out += alias;
        }
    }
    return out;
}

struct PreTokenizer::Compiled {
    pcre2_code* code = nullptr;
    ~Compiled() { pcre2_code_free(code); }
};

PreTokenizer::PreTokenizer(const std::string& kind) {
    regexes_ = regexes_for(kind, &kind_);
    if (regexes_.empty()) {
        throw Error(str("unknown pre-tokenizer kind '", kind.empty() ? "(none)" : kind,
                        "' (tokenizer.ggml.pre); supported kinds: ", supported_kinds()));
    }
    for (const auto& re : regexes_) {
        int err = 0;
        PCRE2_SIZE err_offset = 0;
        auto compiled = std::make_unique<Compiled>();
        compiled->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(re.data()), re.size(), PCRE2_UTF | PCRE2_UCP, &err,
                                       &err_offset, nullptr);
        if (!compiled->code) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(err, msg, sizeof msg);
            throw Error(str("pre-tokenizer regex for '", kind, "' does not compile at offset ", err_offset, ": ",
                            reinterpret_cast<const char*>(msg)));
        }
        // JIT is an optimisation only: without it (no JIT support in this PCRE2 build) the
        // interpreter gives the same matches.
        pcre2_jit_compile(compiled->code, PCRE2_JIT_COMPLETE);
        compiled_.push_back(std::move(compiled));
    }
}

PreTokenizer::~PreTokenizer() = default;
PreTokenizer::PreTokenizer(PreTokenizer&&) noexcept = default;
PreTokenizer& PreTokenizer::operator=(PreTokenizer&&) noexcept = default;

namespace {

struct MatchData {
    pcre2_match_data* data;
    explicit MatchData(const pcre2_code* code) : data(pcre2_match_data_create_from_pattern(code, nullptr)) {
        if (!data) throw std::bad_alloc();
    }
    ~MatchData() { pcre2_match_data_free(data); }
    MatchData(const MatchData&) = delete;
    MatchData& operator=(const MatchData&) = delete;
};

size_t char_length(std::string_view s, size_t pos) {
    const auto b = static_cast<uint8_t>(s[pos]);
    return b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
}

}  // namespace

std::vector<WordSpan> PreTokenizer::split(std::string_view text) const {
    std::vector<WordSpan> pieces;
    if (!text.empty()) pieces.push_back({0, text.size()});
    std::vector<WordSpan> next;
    for (const auto& compiled : compiled_) {
        MatchData match(compiled->code);
        next.clear();
        next.reserve(pieces.size() * 2);
        for (const WordSpan& piece : pieces) {
            // The subject is the piece alone, so lookaheads such as \s+(?!\S) stop at its end,
            // as they do in llama.cpp and HF where each piece is split on its own.
            const auto subject = text.substr(piece.begin, piece.end - piece.begin);
            size_t last = 0;
            size_t start = 0;
            while (start < subject.size()) {
                const int rc = pcre2_match(compiled->code, reinterpret_cast<PCRE2_SPTR>(subject.data()), subject.size(),
                                           start, PCRE2_NO_UTF_CHECK, match.data, nullptr);
                if (rc == PCRE2_ERROR_NOMATCH) break;
                if (rc < 0) {
                    PCRE2_UCHAR msg[256];
                    pcre2_get_error_message(rc, msg, sizeof msg);
                    throw Error(str("pre-tokenizer regex failed: ", reinterpret_cast<const char*>(msg)));
                }
                const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(match.data);
                const size_t m_begin = ov[0];
                const size_t m_end = ov[1];
                if (m_end == m_begin) {  // none of the patterns matches empty, but never loop on one
                    start = m_begin + char_length(subject, m_begin);
                    continue;
                }
                if (m_begin > last) next.push_back({piece.begin + last, piece.begin + m_begin});
                next.push_back({piece.begin + m_begin, piece.begin + m_end});
                last = start = m_end;
            }
            if (last < subject.size()) next.push_back({piece.begin + last, piece.end});
        }
        pieces.swap(next);
    }
    return pieces;
}

}  // namespace gridlm
