// The plain structs a prompt travels in: SamplingParams and Request (reader -> scheduler),
// Completion and RecordError (sampler/detokenizer -> writer). No behaviour, no dependencies.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/core/chat_message.h"

namespace gridlm {

// Per-request generation settings. Defaults follow vLLM / OpenAI; 0 / 1 values mean "off".
struct SamplingParams {
    int32_t max_tokens = 256;         // generated tokens at most (finish_reason "length")
    int32_t min_tokens = 0;           // EOS, stop ids and stop strings are ignored before this
    float temperature = 1.0f;         // 0 => greedy (argmax)
    int32_t top_k = 0;                // keep the k most likely tokens; 0 or -1 => off
    float top_p = 1.0f;               // nucleus mass in (0, 1]; 1 => off
    float min_p = 0.0f;               // keep tokens with p >= min_p * p_max; 0 => off
    float repetition_penalty = 1.0f;  // over prompt + output; 1 => off
    float frequency_penalty = 0.0f;   // over output, times the count; 0 => off
    float presence_penalty = 0.0f;    // over output, once per distinct token; 0 => off
    std::optional<uint64_t> seed;     // absent => derived from the job seed and the record id
    std::vector<std::string> stop;    // stop strings, trimmed from the text
    std::vector<int32_t> stop_token_ids;
    bool ignore_eos = false;
    int32_t n = 1;             // independent choices per prompt
    bool logprobs = false;     // log-probability of each chosen token
    int32_t top_logprobs = 0;  // and of the k most likely tokens at each step
};

// Where a record came from; carried through to its result so the writer can name it.
struct RecordRef {
    std::string id;      // user id (JSONL "id", OpenAI "custom_id"); line number for txt
    int64_t line = 0;    // 1-based line of the input file
    uint64_t index = 0;  // 0-based ordinal among the records of the input (output order)
    bool chat = false;   // chat-style request (messages) rather than a plain prompt
};

// A content-filter rule that matched a record (engine/filter/content_filter.h): the output line's
// "filter" object.
struct FilterMark {
    std::string rule;    // the rule's name
    std::string action;  // "reject", "redact" or "flag"
    std::string where;   // "prompt" or "completion"
};

struct Request {
    RecordRef ref;
    std::string prompt;                     // plain prompt text (when !ref.chat)
    std::vector<ChatMessage> messages;      // chat messages (when ref.chat)
    ChatExtras chat_extras;                 // tools, documents, chat_template_kwargs (when ref.chat)
    std::vector<int32_t> prompt_token_ids;  // given in the record, or filled by tokenization
    SamplingParams params;
    std::optional<FilterMark> filter;  // a filter rule matched the prompt (a reject never runs)
    // "completion" (read by `gridlm score` only): a continuation of the prompt to score, as text
    // or as token ids; has_completion says the record gave one.
    bool has_completion = false;
    std::string completion;
    std::vector<int32_t> completion_token_ids;
};

enum class FinishReason : uint8_t {
    finish_reason_stop,            // EOS, a stop token id or a stop string
    finish_reason_length,          // max_tokens reached (or the context is full)
    finish_reason_content_filter,  // a content-filter reject rule matched (OpenAI's name for it)
};

inline const char* finish_reason_name(FinishReason r) {
    switch (r) {
        case FinishReason::finish_reason_stop:
            return "stop";
        case FinishReason::finish_reason_length:
            return "length";
        case FinishReason::finish_reason_content_filter:
            return "content_filter";
    }
    return "length";
}

struct TopLogprob {
    int32_t token_id = 0;
    std::string token;  // the token's bytes (may be a partial UTF-8 sequence)
    float logprob = 0.0f;
};

// One generated token with its log-probability and, when asked, the most likely alternatives.
struct TokenLogprob {
    int32_t token_id = 0;
    std::string token;
    float logprob = 0.0f;
    std::vector<TopLogprob> top;
};

struct Choice {
    int32_t index = 0;
    std::string text;                // stop string and stopping special token trimmed
    std::vector<int32_t> token_ids;  // every generated token, the stopping one included
    FinishReason finish_reason = FinishReason::finish_reason_length;
    std::vector<TokenLogprob> logprobs;  // one per token id when params.logprobs
    std::optional<FilterMark> filter;    // the most severe filter rule that matched its text
};

struct Usage {
    int64_t prompt_tokens = 0;
    int64_t completion_tokens = 0;  // summed over the n choices
};

struct Completion {
    RecordRef ref;
    std::vector<Choice> choices;  // n of them, index 0..n-1
    Usage usage;
    bool logprobs = false;             // the request asked for logprobs
    std::optional<FilterMark> filter;  // the most severe rule over prompt and choices; with no
                                       // choices, the prompt was rejected (the line has no text)
};

// A record that could not be run: bad JSON, a bad field, a prompt too long for the context.
struct RecordError {
    RecordRef ref;        // id empty when it could not be read
    std::string code;     // short machine-readable kind, e.g. "invalid_json"
    std::string message;  // what is wrong, for a person
};

}  // namespace gridlm
