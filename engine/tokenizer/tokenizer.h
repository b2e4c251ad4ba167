// Byte-level BPE tokenizer (GPT-2 / Llama 3 / Qwen2 family) built from TokenizerData:
// special tokens first, then the pre-tokenizer split, then ranked merges per word; and the
// reverse direction, ids -> bytes -> UTF-8 text, whole or streamed token by token.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "engine/core/tokenizer_data.h"
#include "engine/tokenizer/pre_tokenizer.h"

namespace gridlm {

struct EncodeOptions {
    bool add_bos = true;        // prepend BOS when the checkpoint asks for it (TokenizerData::add_bos)
    bool parse_special = true;  // match control tokens written in the text; user-defined
                                // (added) tokens are matched either way, as in llama.cpp
};

struct DecodeOptions {
    bool skip_special = false;  // drop control tokens (BOS, <|im_end|>, ...) instead of rendering their text
};

class Tokenizer {
public:
    // Throws gridlm::Error for a model other than byte-level BPE ("gpt2"), an unknown
    // pre-tokenizer kind, or inconsistent data (token_types length, BOS id out of range).
    explicit Tokenizer(const TokenizerData& data);
    ~Tokenizer();

    // Text (any bytes; ill-formed UTF-8 is read as U+FFFD, as llama.cpp does) -> token ids.
    std::vector<int32_t> encode(std::string_view text, const EncodeOptions& options = {}) const;

    // Ids -> UTF-8 text; ill-formed byte sequences (a multi-byte character cut off at the
    // end) become U+FFFD. Throws gridlm::Error for an id outside the vocabulary.
    std::string decode(std::span<const int32_t> ids, const DecodeOptions& options = {}) const;

    // The raw bytes one token stands for: its GPT-2-mapped text undone for normal tokens, the
    // text itself for control and user-defined tokens (empty for control tokens when
    // skip_special), empty for unused ones. May be part of a UTF-8 character.
    std::string token_bytes(int32_t id, bool skip_special = false) const;

    // The token's text exactly as stored in the vocabulary (GPT-2 mapped form).
    const std::string& token_text(int32_t id) const;
    std::optional<int32_t> token_id(std::string_view vocab_text) const;
    TokenType token_type(int32_t id) const;
    bool is_control(int32_t id) const { return token_type(id) == TokenType::token_type_control; }

    int32_t n_vocab() const { return static_cast<int32_t>(tokens_.size()); }
    int32_t bos_id() const { return bos_id_; }
    int32_t eos_id() const { return eos_id_; }
    // Tokens that end a generation: EOS, and the end-of-turn control tokens that chat models emit
    // without the checkpoint naming them as EOS (<|im_end|>, <|eot_id|>, <｜end▁of▁sentence｜>, ...),
    // as llama.cpp's end-of-generation set does. Control tokens only; EOS first, no duplicates.
    std::vector<int32_t> end_of_generation_ids() const;
    bool add_bos() const { return add_bos_; }
    const PreTokenizer& pre_tokenizer() const { return pre_; }

    // The words the pre-tokenizer makes of a text without special tokens (for tests and display).
    std::vector<std::string> pre_tokenize(std::string_view text) const;

private:
    struct MergeInfo {
        int32_t rank;
        int32_t merged;  // id of the token the pair merges into
    };

    void add_word_tokens(std::string_view word, std::vector<int32_t>& out) const;
    void bpe(std::string_view word, std::vector<int32_t>& out) const;
    void encode_text(std::string_view text, std::vector<int32_t>& out) const;
    void check_id(int32_t id) const;

    std::vector<std::string> tokens_;
    std::vector<TokenType> types_;
    std::vector<std::string> bytes_;  // per id: token_bytes(id) without skipping
    std::unordered_map<std::string_view, int32_t> token_to_id_;
    std::unordered_map<uint64_t, MergeInfo> merges_;  // key: (left id << 32) | right id
    int32_t byte_token_[256];                         // id of the single-byte token for each byte, -1 if absent
    std::vector<int32_t> specials_;                   // control/user-defined/unknown ids, longest text first
    PreTokenizer pre_;
    bool ignore_merges_ = false;  // Llama 3: a word that is itself a token is taken whole
    int32_t bos_id_ = -1;
    int32_t eos_id_ = -1;
    bool add_bos_ = false;

    // Words recur (" the", "\n"): their BPE result is cached. Guarded because one tokenizer
    // serves all threads of a rank.
    mutable std::mutex cache_mutex_;
    mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

// Turns a stream of token ids into UTF-8 text as they arrive: bytes of a character split over
// tokens (an emoji made of byte tokens) are held back until the character is complete; bytes
// that can never form a character are replaced by U+FFFD at once.
class StreamDecoder {
public:
    explicit StreamDecoder(const Tokenizer& tokenizer, const DecodeOptions& options = {});
    // Text completed by this token (possibly empty).
    std::string push(int32_t id);
    // Whatever is still held back, an unfinished character rendered as U+FFFD; resets the state.
    std::string flush();
    // Bytes held back now (0..3).
    size_t pending_bytes() const { return pending_.size(); }

private:
    const Tokenizer& tokenizer_;
    DecodeOptions options_;
    std::string pending_;
};

}  // namespace gridlm
