// When a sequence ends: EOS, stop token ids, stop strings (found in the detokenized text even
// when split across tokens, and trimmed), max_tokens; none of them before min_tokens.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/core/request.h"

namespace gridlm {

// Finds stop strings in a text stream. Text that might be the start of a stop string is held
// back until the next piece decides it, so what has been emitted never needs to be retracted.
class StopStringMatcher {
public:
    explicit StopStringMatcher(std::vector<std::string> stops);

    struct Result {
        std::string text;      // text that is final now (before any stop string)
        bool stopped = false;  // a stop string was found; it and everything after are dropped
    };
    // Adds the next piece of text. With allow_stop false (before min_tokens) matches are not
    // acted on, but a possible partial match is still held back.
    Result feed(std::string_view piece, bool allow_stop = true);
    // The held-back text, released at the end of the sequence.
    std::string flush();

private:
    std::vector<std::string> stops_;
    std::string pending_;
};

// Stop logic of one sequence; fed every generated token with the text the detokenizer
// produced for it. The stopping EOS / stop token is counted but its text is not kept.
class StopChecker {
public:
    // max_tokens: the request's limit, already capped by the room left in the context.
    StopChecker(const SamplingParams& params, int32_t eos_id, int32_t max_tokens);

    // Returns the finish reason when this token ends the sequence.
    std::optional<FinishReason> on_token(int32_t token, std::string_view text_piece);

    // The final text once finished; `undecoded_tail` is what the detokenizer still held (an
    // incomplete UTF-8 sequence at a length stop), appended unless a stop string ended it.
    std::string finish(std::string_view undecoded_tail = {});

    const std::string& text() const { return text_; }  // final text so far
    int32_t n_generated() const { return n_generated_; }
    bool finished() const { return finished_.has_value(); }

private:
    int32_t eos_id_;
    bool ignore_eos_;
    std::vector<int32_t> stop_token_ids_;
    int32_t min_tokens_;
    int32_t max_tokens_;
    StopStringMatcher matcher_;
    bool has_stop_strings_;
    std::string text_;
    int32_t n_generated_ = 0;
    std::optional<FinishReason> finished_;
    bool stopped_by_string_ = false;
};

}  // namespace gridlm
