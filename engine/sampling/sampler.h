// Token sampling for one sequence: logit processors in vLLM's order (min_tokens mask ->
// penalties -> temperature / greedy -> min-p -> top-k -> top-p -> draw) with a per-sequence RNG.
#pragma once

#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

#include "engine/core/request.h"
#include "engine/sampling/rng.h"

namespace gridlm {

// Below this temperature sampling is greedy (argmax), as vLLM does.
inline constexpr float sampling_greedy_temperature = 1e-5f;

struct SampledToken {
    int32_t token_id = 0;
    // log-softmax of the *raw model logits* at the chosen token (before penalties, masks,
    // temperature and truncation), as vLLM and OpenAI report them; 0 unless logprobs asked.
    float logprob = 0.0f;
    // The top_logprobs most likely tokens under the same raw distribution, most likely first.
    std::vector<std::pair<int32_t, float>> top;
};

// The processing steps, exposed for tests and for callers that batch them differently.
namespace sampling {

// Sets the given ids to -inf (ids outside the vocabulary are ignored).
void mask_tokens(std::span<float> logits, std::span<const int32_t> ids);
// Repetition penalty over each *distinct* id: positive logits are divided by `penalty`,
// negative ones multiplied (so the token always becomes less likely for penalty > 1).
void apply_repetition_penalty(std::span<float> logits, std::span<const int32_t> distinct_ids, float penalty);
// OpenAI-style: logit -= frequency * count + presence * (count > 0), over generated tokens.
void apply_frequency_presence(std::span<float> logits, const std::unordered_map<int32_t, int32_t>& counts,
                              float frequency, float presence);
// Index of the largest logit; the lowest index wins ties.
int32_t argmax(std::span<const float> logits);
// log(sum(exp(logits))), computed stably.
double log_sum_exp(std::span<const float> logits);
// The k largest logits as (id, logit), largest first, ties by lower id.
std::vector<std::pair<int32_t, float>> top_k_logits(std::span<const float> logits, int32_t k);

struct Candidate {
    float logit;
    int32_t id;
};

// Tokens kept by min-p, then top-k, then top-p at the given temperature (> 0), in token-id order
// (so the draw does not depend on how near-equal logits happen to sort); each carries its
// unnormalised weight exp((logit - max) / T) in `weights`. Always keeps at least the most likely
// token. `scratch` is reused between calls to avoid reallocations.
void select_candidates(std::span<const float> logits, float temperature, float min_p, int32_t top_k, float top_p,
                       std::vector<Candidate>& kept, std::vector<double>& weights);

}  // namespace sampling

// Sampling state of one sequence (one choice of one request). Independent of every other
// sequence: the same logits history and seed give the same tokens whatever the batch.
class SequenceSampler {
public:
    // prompt_ids: the prompt tokens (repetition penalty covers them); eos_id < 0 when unknown.
    SequenceSampler(const SamplingParams& params, std::span<const int32_t> prompt_ids, int32_t eos_id, uint64_t seed);

    // Chooses the next token from this sequence's last-position logits [n_vocab] and records
    // it as generated. `logits` is used as scratch and left modified.
    SampledToken sample(std::span<float> logits);

    // Records a generated token without sampling it (forced tokens; tests).
    void accept(int32_t token);

    int32_t n_generated() const { return n_generated_; }
    bool greedy() const { return params_.temperature < sampling_greedy_temperature; }

private:
    SamplingParams params_;
    int32_t eos_id_;
    Rng rng_;
    std::vector<int32_t> prompt_distinct_;                // sorted, unique
    std::unordered_map<int32_t, int32_t> output_counts_;  // token -> times generated
    int32_t n_generated_ = 0;
    // Scratch kept between steps so a 150k vocabulary costs no allocation per token.
    std::vector<float> raw_;
    std::vector<int32_t> ids_scratch_;
    std::vector<sampling::Candidate> kept_;
    std::vector<double> weights_;
};

}  // namespace gridlm
