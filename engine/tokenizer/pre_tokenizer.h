// Pre-tokenizer of byte-level BPE: splits text into words with the sequence of regexes that
// the checkpoint's pre-tokenizer kind (GGUF tokenizer.ggml.pre) names; BPE then runs per word.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace gridlm {

// A word of the input as a byte range [begin, end).
struct WordSpan {
    size_t begin;
    size_t end;
};

class PreTokenizer {
public:
    // Throws gridlm::Error naming `kind` and the supported kinds when it is not known.
    explicit PreTokenizer(const std::string& kind);
    ~PreTokenizer();
    PreTokenizer(PreTokenizer&&) noexcept;
    PreTokenizer& operator=(PreTokenizer&&) noexcept;

    // Words of `text` (well-formed UTF-8) in order; together they cover all of text. Each regex
    // of the sequence splits every piece left by the previous one, and the stretches between
    // its matches stay pieces of their own (HF's Split with behavior "isolated").
    std::vector<WordSpan> split(std::string_view text) const;

    // The kind's regexes (PCRE2 syntax, compiled with UTF and UCP), first applied first.
    const std::vector<std::string>& regexes() const { return regexes_; }
    // Canonical kind after resolving aliases ("llama-bpe" -> "llama3").
    const std::string& kind() const { return kind_; }

    // The regex sequence for a kind, or an empty vector when the kind is unknown.
    static std::vector<std::string> regexes_for(const std::string& kind, std::string* canonical = nullptr);
    // Comma-separated list of accepted kinds, for error messages and --help.
    static std::string supported_kinds();

private:
    struct Compiled;
    std::string kind_;
    std::vector<std::string> regexes_;
    std::vector<std::unique_ptr<Compiled>> compiled_;
};

}  // namespace gridlm
