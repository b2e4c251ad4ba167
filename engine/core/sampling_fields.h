// The fields of SamplingParams described once: record (JSON) name, option name, help text,
// validation rule and whether a field changes the output. The prompt reader, the generate
// command's options and its resume manifest are all driven by `sampling_fields`.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include "engine/core/error.h"
#include "engine/core/request.h"

namespace gridlm {

// Range limits applied to sampling parameters (per record and to the command-line defaults).
struct SamplingLimits {
    int32_t max_n = 64;
    int32_t max_tokens = 1 << 20;  // set to the model's context length when known
    int32_t max_top_logprobs = 20;
};

// The member a row describes; the alternative held is the field's type. Its default is the
// struct's default member initialiser (SamplingParams{}.*member).
using SamplingMember = std::variant<int32_t SamplingParams::*, float SamplingParams::*, bool SamplingParams::*,
                                    std::optional<uint64_t> SamplingParams::*,
                                    std::vector<std::string> SamplingParams::*, std::vector<int32_t> SamplingParams::*>;

enum class SamplingCheck : uint8_t {
    sampling_check_none,      // any value of the type
    sampling_check_range,     // the number (or each number of a list) lies in the row's range
    sampling_check_nonempty,  // every string of the list is non-empty
};

// Where a range's upper bound comes from when it is not the constant SamplingRange::hi.
enum class SamplingBound : uint8_t {
    sampling_bound_const,
    sampling_bound_max_tokens,        // SamplingLimits::max_tokens
    sampling_bound_max_n,             // SamplingLimits::max_n
    sampling_bound_max_top_logprobs,  // SamplingLimits::max_top_logprobs
    sampling_bound_own_max_tokens,    // the same record's max_tokens, shown as "max_tokens=N"
};

// Accepted numbers: lo..hi with open or closed ends; NaN is never accepted.
struct SamplingRange {
    double lo = -std::numeric_limits<double>::infinity();
    bool lo_open = false;
    double hi = std::numeric_limits<double>::infinity();  // infinite: no upper bound
    bool hi_open = false;
    SamplingBound hi_from = SamplingBound::sampling_bound_const;
    bool finite = false;    // infinities rejected even where the bounds would take them
    const char* note = "";  // appended to the accepted range in the message
};

struct SamplingField {
    SamplingMember member;
    const char* json_name;    // in a JSONL record or an OpenAI body, e.g. "top_p"
    const char* json_alias;   // also accepted and read after json_name (it wins); nullptr for none
    const char* option_name;  // `gridlm generate --top-p`; also the key in the resume manifest
    char option_short;        // one-letter option, '\0' for none
    const char* help;         // --help text
    SamplingCheck check;
    SamplingRange range;  // for sampling_check_range
    // A resumed job must give the same value (its manifest records it).
    bool changes_output;
    // -1 is read as 0, vLLM's spelling of "off".
    bool minus_one_is_off = false;
    // A value > 0 also turns logprobs on.
    bool implies_logprobs = false;
    // For a flag: an integer in its place sets this count and turns the flag on (OpenAI's
    // /v1/completions "logprobs": 5).
    int32_t SamplingParams::*integer_sets = nullptr;
};

namespace sampling_detail {
constexpr double inf = std::numeric_limits<double>::infinity();
constexpr SamplingBound constant = SamplingBound::sampling_bound_const;

inline SamplingRange unchecked() { return SamplingRange{}; }
// [lo, inf)
inline SamplingRange at_least(double lo, const char* note = "") {
    return SamplingRange{lo, false, inf, false, constant, false, note};
}
// [lo, inf), infinity rejected
inline SamplingRange finite_at_least(double lo) { return SamplingRange{lo, false, inf, false, constant, true, ""}; }
// (lo, inf), infinity rejected
inline SamplingRange finite_above(double lo) { return SamplingRange{lo, true, inf, false, constant, true, ""}; }
// [lo, hi]
inline SamplingRange closed(double lo, double hi) { return SamplingRange{lo, false, hi, false, constant, false, ""}; }
// (lo, hi]
inline SamplingRange open_closed(double lo, double hi) {
    return SamplingRange{lo, true, hi, false, constant, false, ""};
}
// [lo, a limit]
inline SamplingRange up_to(double lo, SamplingBound hi_from) {
    return SamplingRange{lo, false, inf, false, hi_from, false, ""};
}
}  // namespace sampling_detail

// In the order records are parsed and --help lists the options. Validation checks the numbers
// in this order, then the lists (which message a record with several bad fields gets).
inline const std::array<SamplingField, 16>& sampling_fields() {
    using P = SamplingParams;
    using C = SamplingCheck;
    using B = SamplingBound;
    using namespace sampling_detail;
    constexpr C none = C::sampling_check_none, range = C::sampling_check_range;
    static const std::array<SamplingField, 16> fields = {{
        {&P::max_tokens, "max_tokens", "max_completion_tokens", "max-tokens", '\0',
         "tokens to generate at most per choice", range, up_to(1, B::sampling_bound_max_tokens), true},
        {&P::min_tokens, "min_tokens", nullptr, "min-tokens", '\0', "tokens before EOS / stops may end a choice", range,
         up_to(0, B::sampling_bound_own_max_tokens), true},
        {&P::temperature, "temperature", nullptr, "temperature", 't', "sampling temperature; 0 = greedy", range,
         finite_at_least(0), true},
        {&P::top_p, "top_p", nullptr, "top-p", '\0', "nucleus mass in (0, 1]; 1 = off", range, open_closed(0, 1), true},
        {&P::top_k, "top_k", nullptr, "top-k", '\0', "keep the k most likely tokens; 0 = off", range,
         at_least(0, " (0 or -1 = off)"), true, /*minus_one_is_off=*/true},
        {&P::min_p, "min_p", nullptr, "min-p", '\0', "keep tokens with p >= min_p * p_max; 0 = off", range,
         closed(0, 1), true},
        {&P::repetition_penalty, "repetition_penalty", nullptr, "repetition-penalty", '\0',
         "> 1 discourages tokens of prompt and output; 1 = off", range, finite_above(0), true},
        {&P::frequency_penalty, "frequency_penalty", nullptr, "frequency-penalty", '\0',
         "in [-2, 2]: subtracted times each token's count in the output", range, closed(-2, 2), true},
        {&P::presence_penalty, "presence_penalty", nullptr, "presence-penalty", '\0',
         "in [-2, 2]: subtracted once for each token present in the output", range, closed(-2, 2), true},
        // On the command line this is the job seed (default 0): a record without its own seed
        // derives one from the job seed and its id.
        {&P::seed, "seed", nullptr, "seed", '\0',
         "job seed: a record without \"seed\" uses one derived from this and its id (reruns repeat)", none, unchecked(),
         true},
        {&P::stop, "stop", nullptr, "stop", '\0', "stop string (repeatable); trimmed from the text",
         C::sampling_check_nonempty, unchecked(), true},
        {&P::stop_token_ids, "stop_token_ids", nullptr, "stop-token-ids", '\0', "token ids that end a choice", range,
         at_least(0), true},
        {&P::ignore_eos, "ignore_eos", nullptr, "ignore-eos", '\0',
         "keep generating past EOS (default: EOS ends a choice)", none, unchecked(), true},
        {&P::n, "n", nullptr, "n", '\0', "choices per prompt (1..64, at most --max-seqs / --micro-batches)", range,
         up_to(1, B::sampling_bound_max_n), true},
        {&P::logprobs, "logprobs", nullptr, "logprobs", '\0',
         "report each generated token's log-probability (default: off)", none, unchecked(), true,
         /*minus_one_is_off=*/false, /*implies_logprobs=*/false, /*integer_sets=*/&P::top_logprobs},
        {&P::top_logprobs, "top_logprobs", nullptr, "top-logprobs", '\0',
         "also the k most likely tokens per step (0..20)", range, up_to(0, B::sampling_bound_max_top_logprobs), true,
         /*minus_one_is_off=*/false, /*implies_logprobs=*/true},
    }};
    return fields;
}

// Sets an integer field from a record or the command line, as the row reads it: -1 as 0 where
// -1 means off, and logprobs turned on by a count that implies them.
inline void set_sampling_int(const SamplingField& f, int32_t SamplingParams::*m, int32_t value, SamplingParams& p) {
    p.*m = f.minus_one_is_off && value == -1 ? 0 : value;
    if (f.implies_logprobs && p.*m > 0) p.logprobs = true;
}

// True for the list-valued fields (stop, stop_token_ids).
inline bool sampling_field_is_list(const SamplingField& f) {
    return std::holds_alternative<std::vector<std::string> SamplingParams::*>(f.member) ||
           std::holds_alternative<std::vector<int32_t> SamplingParams::*>(f.member);
}

// The range's upper bound for p under limits (infinity: none).
inline double sampling_upper_bound(const SamplingRange& r, const SamplingParams& p, const SamplingLimits& limits) {
    switch (r.hi_from) {
        case SamplingBound::sampling_bound_const:
            break;
        case SamplingBound::sampling_bound_max_tokens:
            return limits.max_tokens;
        case SamplingBound::sampling_bound_max_n:
            return limits.max_n;
        case SamplingBound::sampling_bound_max_top_logprobs:
            return limits.max_top_logprobs;
        case SamplingBound::sampling_bound_own_max_tokens:
            return p.max_tokens;
    }
    return r.hi;
}

// "in [1, 4096]", "in (0, 1]", ">= 0 (0 or -1 = off)", "> 0": the accepted range as messages name it.
inline std::string sampling_range_text(const SamplingRange& r, const SamplingParams& p, const SamplingLimits& limits) {
    const double hi = sampling_upper_bound(r, p, limits);
    if (!std::isfinite(hi)) return str(r.lo_open ? "> " : ">= ", r.lo, r.note);
    // A limit is a whole number (printed as one); the record's own max_tokens is named.
    const std::string hi_text = r.hi_from == SamplingBound::sampling_bound_const ? str(hi)
                                : r.hi_from == SamplingBound::sampling_bound_own_max_tokens
                                    ? str("max_tokens=", p.max_tokens)
                                    : str((int64_t)hi);
    return str("in ", r.lo_open ? "(" : "[", r.lo, ", ", hi_text, r.hi_open ? ")" : "]", r.note);
}

inline bool sampling_in_range(double v, const SamplingRange& r, const SamplingParams& p, const SamplingLimits& limits) {
    const double hi = sampling_upper_bound(r, p, limits);
    const bool above_lo = r.lo_open ? v > r.lo : v >= r.lo;
    const bool below_hi = r.hi_open ? v < hi : v <= hi;
    return above_lo && below_hi && (!r.finite || std::isfinite(v));
}

// Empty when the row's field of p passes its rule; else what is wrong, e.g.
// "top_p must be in (0, 1], got 0".
inline std::optional<std::string> sampling_field_problem(const SamplingField& f, const SamplingParams& p,
                                                         const SamplingLimits& limits) {
    if (f.check == SamplingCheck::sampling_check_none) return std::nullopt;
    auto out_of_range = [&](auto v) -> std::optional<std::string> {
        if (sampling_in_range((double)v, f.range, p, limits)) return std::nullopt;
        return str(f.json_name, " must be ", sampling_range_text(f.range, p, limits), ", got ", v);
    };
    return std::visit(
        [&](auto m) -> std::optional<std::string> {
            using T = std::decay_t<decltype(p.*m)>;
            if constexpr (std::is_same_v<T, int32_t> || std::is_same_v<T, float>) {
                return out_of_range(p.*m);
            } else if constexpr (std::is_same_v<T, std::vector<int32_t>>) {
                for (int32_t x : p.*m) {
                    if (auto problem = out_of_range(x)) return problem;
                }
            } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
                for (const auto& s : p.*m) {
                    if (s.empty()) return str(f.json_name, " strings must not be empty");
                }
            }
            return std::nullopt;
        },
        f.member);
}

// Empty when the parameters are in range; else what is wrong, e.g. "top_p must be in (0, 1], got 0".
inline std::optional<std::string> validate_sampling_params(const SamplingParams& p, const SamplingLimits& limits) {
    for (bool lists : {false, true}) {
        for (const SamplingField& f : sampling_fields()) {
            if (sampling_field_is_list(f) != lists) continue;
            if (auto problem = sampling_field_problem(f, p, limits)) return problem;
        }
    }
    return std::nullopt;
}

}  // namespace gridlm
