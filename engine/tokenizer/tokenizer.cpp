// Byte-level BPE encode/decode. Encoding follows llama.cpp's order of work so that ids match
// it exactly: special tokens split the text first (longest token first), each remaining
// stretch is pre-tokenized, and each word is merged pair by pair, lowest merge rank first.
#include "engine/tokenizer/tokenizer.h"

#include <algorithm>
#include <queue>

#include "engine/core/error.h"
#include "engine/tokenizer/utf8.h"

namespace gridlm {

namespace {

constexpr size_t cache_max_word = 64;          // longer words are rare; caching them buys nothing
constexpr size_t cache_max_entries = 1 << 16;  // bounded memory on adversarial input

const std::string& checked_pre(const TokenizerData& data) {
    if (data.model != "gpt2") {
        throw Error(str("unsupported tokenizer model '", data.model, "': only byte-level BPE ('gpt2') is implemented"));
    }
    return data.pre;
}

uint64_t pair_key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

// The bytes a normal token's text stands for (undoing GPT-2's byte -> character mapping).
std::string unmap_bytes(const std::string& text) {
    if (!utf8::is_valid(text)) return text;
    std::string out;
    size_t pos = 0;
    while (pos < text.size()) {
        const size_t start = pos;
        const uint32_t cp = utf8::next_codepoint(text, pos);
        const int b = utf8::unicode_to_byte(cp);
        if (b >= 0) {
            out += static_cast<char>(b);
        } else {
            out.append(text, start, pos - start);  // not a mapped character: keep it as written
        }
    }
    return out;
}

// "<0x0A>" -> 0x0A; -1 if the text is not of that form.
int parse_byte_token(const std::string& text) {
    if (text.size() != 6 || text.compare(0, 3, "<0x") != 0 || text[5] != '>') return -1;
    int value = 0;
    for (int i = 3; i < 5; ++i) {
        const char c = text[i];
        const int digit = (c >= '0' && c <= '9') ? c - '0' : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
        if (digit < 0) return -1;
        value = value * 16 + digit;
    }
    return value;
}

}  // namespace

Tokenizer::Tokenizer(const TokenizerData& data) : pre_(checked_pre(data)) {
    tokens_ = data.tokens;
    if (tokens_.empty()) throw Error("tokenizer has an empty vocabulary");
    if (!data.token_types.empty() && data.token_types.size() != tokens_.size()) {
        throw Error(str("tokenizer has ", tokens_.size(), " tokens but ", data.token_types.size(), " token types"));
    }
    types_.resize(tokens_.size(), TokenType::token_type_normal);
    for (size_t i = 0; i < data.token_types.size(); ++i) types_[i] = static_cast<TokenType>(data.token_types[i]);

    token_to_id_.reserve(tokens_.size() * 2);
    bytes_.resize(tokens_.size());
    for (size_t i = 0; i < tokens_.size(); ++i) {
        const auto id = static_cast<int32_t>(i);
        token_to_id_[tokens_[i]] = id;  // on duplicate texts the last id wins, as in llama.cpp
        switch (types_[i]) {
            case TokenType::token_type_normal:
                bytes_[i] = unmap_bytes(tokens_[i]);
                break;
            case TokenType::token_type_byte: {
                const int b = parse_byte_token(tokens_[i]);
                bytes_[i] = b >= 0 ? std::string(1, static_cast<char>(b)) : tokens_[i];
                break;
            }
            case TokenType::token_type_unused:
                break;  // renders as nothing, as in llama.cpp
            default:
                bytes_[i] = tokens_[i];
        }
        const bool special = types_[i] == TokenType::token_type_control ||
                             types_[i] == TokenType::token_type_user_defined ||
                             types_[i] == TokenType::token_type_unknown;
        if (special && !tokens_[i].empty()) specials_.push_back(id);
    }
    std::stable_sort(specials_.begin(), specials_.end(),
                     [&](int32_t a, int32_t b) { return tokens_[a].size() > tokens_[b].size(); });

    for (int b = 0; b < 256; ++b) {
        auto it = token_to_id_.find(utf8::byte_to_unicode(static_cast<uint8_t>(b)));
        byte_token_[b] = it == token_to_id_.end() ? -1 : it->second;
    }

    merges_.reserve(data.merges.size() * 2);
    std::string joined;
    for (size_t rank = 0; rank < data.merges.size(); ++rank) {
        const std::string& merge = data.merges[rank];
        const size_t space = merge.find(' ', 1);
        if (space == std::string::npos) throw Error(str("malformed BPE merge #", rank, ": '", merge, "'"));
        const std::string_view left(merge.data(), space);
        const std::string_view right(merge.data() + space + 1, merge.size() - space - 1);
        joined.assign(left);
        joined.append(right);
        auto l = token_to_id_.find(left);
        auto r = token_to_id_.find(right);
        auto m = token_to_id_.find(joined);
        // A merge whose parts or result are not tokens can never produce a token; skip it.
        if (l == token_to_id_.end() || r == token_to_id_.end() || m == token_to_id_.end()) continue;
        merges_.try_emplace(pair_key(l->second, r->second), MergeInfo{static_cast<int32_t>(rank), m->second});
    }

    // Llama 3's tokenizer.json sets ignore_merges: a word that is a token is not re-merged.
    ignore_merges_ = pre_.kind() == "llama3";
    const auto n = static_cast<int32_t>(tokens_.size());
    if (data.bos_id >= n || data.eos_id >= n) {
        throw Error(str("tokenizer BOS/EOS id (", data.bos_id, "/", data.eos_id, ") outside the vocabulary of ", n));
    }
    bos_id_ = data.bos_id;
    eos_id_ = data.eos_id;
    add_bos_ = data.add_bos;
    if (add_bos_ && bos_id_ < 0) throw Error("tokenizer asks to add BOS but has no BOS token id");
}

Tokenizer::~Tokenizer() = default;

void Tokenizer::check_id(int32_t id) const {
    if (id < 0 || id >= n_vocab()) {
        throw Error(str("token id ", id, " is outside the vocabulary (0..", n_vocab() - 1, ")"));
    }
}

const std::string& Tokenizer::token_text(int32_t id) const {
    check_id(id);
    return tokens_[id];
}

std::optional<int32_t> Tokenizer::token_id(std::string_view vocab_text) const {
    auto it = token_to_id_.find(vocab_text);
    if (it == token_to_id_.end()) return std::nullopt;
    return it->second;
}

std::vector<int32_t> Tokenizer::end_of_generation_ids() const {
    std::vector<int32_t> ids;
    if (eos_id_ >= 0) ids.push_back(eos_id_);
    for (const char* text : {"<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end_of_text|>", "<｜end▁of▁sentence｜>"}) {
        if (auto id = token_id(text); id && is_control(*id) && std::find(ids.begin(), ids.end(), *id) == ids.end())
            ids.push_back(*id);
    }
    return ids;
}

TokenType Tokenizer::token_type(int32_t id) const {
    check_id(id);
    return types_[id];
}

std::string Tokenizer::token_bytes(int32_t id, bool skip_special) const {
    check_id(id);
    if (skip_special && (types_[id] == TokenType::token_type_control || types_[id] == TokenType::token_type_unknown)) {
        return {};
    }
    return bytes_[id];
}

// Merges the bytes of one word. Symbols form a linked list over byte positions; candidate
// pairs sit in a min-heap keyed (rank, left position) -- the order llama.cpp and HF apply
// merges in -- so a word of n bytes costs O(n log n) rather than O(n^2).
void Tokenizer::bpe(std::string_view word, std::vector<int32_t>& out) const {
    const int n = static_cast<int>(word.size());
    std::vector<int32_t> ids(n);
    std::vector<int> next(n);
    std::vector<int> prev(n);
    for (int i = 0; i < n; ++i) {
        ids[i] = byte_token_[static_cast<uint8_t>(word[i])];
        next[i] = i + 1 < n ? i + 1 : -1;
        prev[i] = i - 1;
    }

    struct Candidate {
        int32_t rank;
        int left;
        int right;
        int32_t left_id;
        int32_t right_id;
        bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
    };
    std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> heap;
    auto consider = [&](int left, int right) {
        if (left < 0 || right < 0 || ids[left] < 0 || ids[right] < 0) return;
        auto it = merges_.find(pair_key(ids[left], ids[right]));
        if (it != merges_.end()) heap.push({it->second.rank, left, right, ids[left], ids[right]});
    };
    for (int i = 0; i + 1 < n; ++i) consider(i, i + 1);

    constexpr int32_t merged_away = -2;
    while (!heap.empty()) {
        const Candidate c = heap.top();
        heap.pop();
        // Stale when either side has merged since the pair was queued.
        if (ids[c.left] != c.left_id || next[c.left] != c.right || ids[c.right] != c.right_id) continue;
        ids[c.left] = merges_.at(pair_key(c.left_id, c.right_id)).merged;
        ids[c.right] = merged_away;
        next[c.left] = next[c.right];
        if (next[c.left] >= 0) prev[next[c.left]] = c.left;
        consider(prev[c.left], c.left);
        consider(c.left, next[c.left]);
    }
    for (int i = 0; i >= 0 && i < n; i = next[i]) {
        if (ids[i] >= 0) out.push_back(ids[i]);  // a byte with no token is dropped, as in llama.cpp
    }
}

void Tokenizer::add_word_tokens(std::string_view word, std::vector<int32_t>& out) const {
    if (ignore_merges_) {
        std::string mapped;
        for (char c : word) mapped += utf8::byte_to_unicode(static_cast<uint8_t>(c));
        if (auto id = token_id(mapped)) {
            out.push_back(*id);
            return;
        }
    }
    if (word.size() == 1) {  // the common single-byte word needs neither cache nor merging
        const int32_t id = byte_token_[static_cast<uint8_t>(word[0])];
        if (id >= 0) out.push_back(id);
        return;
    }
    const bool cacheable = word.size() <= cache_max_word;
    if (cacheable) {
        std::lock_guard<std::mutex> lock(cache_mutex_);
        auto it = cache_.find(std::string(word));
        if (it != cache_.end()) {
            out.insert(out.end(), it->second.begin(), it->second.end());
            return;
        }
    }
    const size_t first = out.size();
    bpe(word, out);
    if (cacheable) {
        std::lock_guard<std::mutex> lock(cache_mutex_);
        if (cache_.size() >= cache_max_entries) cache_.clear();
        cache_.emplace(std::string(word), std::vector<int32_t>(out.begin() + first, out.end()));
    }
}

void Tokenizer::encode_text(std::string_view text, std::vector<int32_t>& out) const {
    if (text.empty()) return;
    std::string clean;
    if (!utf8::is_valid(text)) {
        clean = utf8::sanitize(text);
        text = clean;
    }
    for (const WordSpan& w : pre_.split(text)) add_word_tokens(text.substr(w.begin, w.end - w.begin), out);
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, const EncodeOptions& options) const {
    std::vector<int32_t> out;
    out.reserve(text.size() / 3 + 2);
    if (options.add_bos && add_bos_) out.push_back(bos_id_);

    // Fragments of the text: either raw text or one special token. Each special token, longest
    // first, splits every raw fragment at its occurrences (llama.cpp's partition order, which
    // decides between overlapping candidates).
    struct Fragment {
        size_t begin;
        size_t end;
        int32_t id;  // -1: raw text
    };
    std::vector<Fragment> fragments{{0, text.size(), -1}};
    std::vector<Fragment> next;
    for (int32_t id : specials_) {
        if (!options.parse_special && types_[id] != TokenType::token_type_user_defined) continue;
        const std::string& special = tokens_[id];
        if (text.find(special) == std::string_view::npos) continue;
        next.clear();
        for (const Fragment& f : fragments) {
            if (f.id >= 0) {
                next.push_back(f);
                continue;
            }
            size_t pos = f.begin;
            while (pos < f.end) {
                const size_t hit = text.substr(0, f.end).find(special, pos);
                if (hit == std::string_view::npos) break;
                if (hit > pos) next.push_back({pos, hit, -1});
                next.push_back({hit, hit + special.size(), id});
                pos = hit + special.size();
            }
            if (pos < f.end) next.push_back({pos, f.end, -1});
        }
        fragments.swap(next);
    }
    for (const Fragment& f : fragments) {
        if (f.id >= 0) {
            out.push_back(f.id);
        } else {
            encode_text(text.substr(f.begin, f.end - f.begin), out);
        }
    }
    return out;
}

std::vector<std::string> Tokenizer::pre_tokenize(std::string_view text) const {
    const std::string clean = utf8::sanitize(text);
    std::vector<std::string> words;
    for (const WordSpan& w : pre_.split(clean)) words.emplace_back(clean.substr(w.begin, w.end - w.begin));
    return words;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, const DecodeOptions& options) const {
    std::string bytes;
    for (int32_t id : ids) {
        check_id(id);
        if (options.skip_special &&
            (types_[id] == TokenType::token_type_control || types_[id] == TokenType::token_type_unknown)) {
            continue;
        }
        bytes += bytes_[id];
    }
    return utf8::is_valid(bytes) ? bytes : utf8::sanitize(bytes);
}

StreamDecoder::StreamDecoder(const Tokenizer& tokenizer, const DecodeOptions& options)
    : tokenizer_(tokenizer), options_(options) {}

std::string StreamDecoder::push(int32_t id) {
    pending_ += tokenizer_.token_bytes(id, options_.skip_special);
    std::string out;
    size_t pos = 0;
    while (pos < pending_.size()) {
        bool truncated = false;
        const size_t n = utf8::sequence_length(pending_, pos, &truncated);
        if (n > 0) {
            out.append(pending_, pos, n);
            pos += n;
        } else if (truncated) {
            break;  // the start of a character whose remaining bytes come with a later token
        } else {
            out += "\xEF\xBF\xBD";
            pos += utf8::maximal_subpart(pending_, pos);
        }
    }
    pending_.erase(0, pos);
    return out;
}

std::string StreamDecoder::flush() {
    std::string out = utf8::sanitize(pending_);
    pending_.clear();
    return out;
}

}  // namespace gridlm
