// Token sampling for one sequence (see sampler.h). Linear-time selection (nth_element, a small
// heap) instead of sorting the whole vocabulary: a 150k-token step costs O(V).
#include "engine/sampling/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "engine/core/error.h"

namespace gridlm {
namespace sampling {

namespace {

constexpr float neg_inf = -std::numeric_limits<float>::infinity();

// Total order used by every selection: larger logit first, lower id on ties, so top-k with
// k = 1 picks exactly the token argmax picks.
inline bool better(const Candidate& a, const Candidate& b) {
    return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
}

}  // namespace

void mask_tokens(std::span<float> logits, std::span<const int32_t> ids) {
    for (int32_t id : ids) {
        if (id >= 0 && (size_t)id < logits.size()) logits[id] = neg_inf;
    }
}

void apply_repetition_penalty(std::span<float> logits, std::span<const int32_t> distinct_ids, float penalty) {
    for (int32_t id : distinct_ids) {
        if (id < 0 || (size_t)id >= logits.size()) continue;
        float& l = logits[id];
        l = l > 0.0f ? l / penalty : l * penalty;
    }
}

void apply_frequency_presence(std::span<float> logits, const std::unordered_map<int32_t, int32_t>& counts,
                              float frequency, float presence) {
    for (const auto& [id, count] : counts) {
        if (id < 0 || (size_t)id >= logits.size() || count <= 0) continue;
        logits[id] -= frequency * (float)count + presence;
    }
}

int32_t argmax(std::span<const float> logits) {
    GRIDLM_ASSERT(!logits.empty());
    int32_t best = 0;
    float best_v = logits[0];
    for (size_t i = 1; i < logits.size(); ++i) {
        if (logits[i] > best_v) {
            best_v = logits[i];
            best = (int32_t)i;
        }
    }
    return best;
}

double log_sum_exp(std::span<const float> logits) {
    float mx = neg_inf;
    for (float l : logits) mx = std::max(mx, l);
    if (mx == neg_inf) return -std::numeric_limits<double>::infinity();
    double sum = 0.0;
    for (float l : logits) sum += std::exp((double)(l - mx));
    return (double)mx + std::log(sum);
}

std::vector<std::pair<int32_t, float>> top_k_logits(std::span<const float> logits, int32_t k) {
    k = std::min<int32_t>(k, (int32_t)logits.size());
    std::vector<Candidate> heap;  // min-heap under `better`: heap.front() is the worst kept
    if (k <= 0) return {};
    heap.reserve(k);
    auto worse_first = [](const Candidate& a, const Candidate& b) { return better(a, b); };
    for (size_t i = 0; i < logits.size(); ++i) {
        Candidate c{logits[i], (int32_t)i};
        if ((int32_t)heap.size() < k) {
            heap.push_back(c);
            std::push_heap(heap.begin(), heap.end(), worse_first);
        } else if (better(c, heap.front())) {
            std::pop_heap(heap.begin(), heap.end(), worse_first);
            heap.back() = c;
            std::push_heap(heap.begin(), heap.end(), worse_first);
        }
    }
    std::sort(heap.begin(), heap.end(), better);
    std::vector<std::pair<int32_t, float>> out;
    out.reserve(heap.size());
    for (const auto& c : heap) out.emplace_back(c.id, c.logit);
    return out;
}

void select_candidates(std::span<const float> logits, float temperature, float min_p, int32_t top_k, float top_p,
                       std::vector<Candidate>& kept, std::vector<double>& weights) {
    GRIDLM_ASSERT(!logits.empty() && temperature > 0.0f);
    kept.clear();
    weights.clear();
    float mx = neg_inf;
    for (float l : logits) mx = std::max(mx, l);
    if (mx == neg_inf) {  // everything masked: nothing is more likely than anything else
        kept.push_back({logits[0], 0});
        weights.push_back(1.0);
        return;
    }
    // min-p: p_i >= min_p * p_max  <=>  l_i >= max + T * ln(min_p), no softmax needed.
    const float threshold = min_p > 0.0f ? mx + temperature * std::log(min_p) : neg_inf;
    kept.reserve(logits.size());
    for (size_t i = 0; i < logits.size(); ++i) {
        const float l = logits[i];
        if (l > neg_inf && l >= threshold) kept.push_back({l, (int32_t)i});
    }
    if (top_k > 0 && kept.size() > (size_t)top_k) {
        std::nth_element(kept.begin(), kept.begin() + top_k, kept.end(), better);
        kept.resize(top_k);
    }
    const double inv_t = 1.0 / temperature;
    auto weight = [&](const Candidate& c) { return std::exp(((double)c.logit - mx) * inv_t); };
    if (top_p < 1.0f && kept.size() > 1) {
        double total = 0.0;
        for (const auto& c : kept) total += weight(c);
        const double target = (double)top_p * total;
        // The nucleus is usually small: sort a growing prefix until it holds the mass, so the
        // full vocabulary is never sorted.
        size_t m = std::min<size_t>(kept.size(), 64);
        for (;;) {
            if (m < kept.size()) std::nth_element(kept.begin(), kept.begin() + m, kept.end(), better);
            std::sort(kept.begin(), kept.begin() + m, better);
            double cum = 0.0;
            size_t cut = 0;
            for (; cut < m; ++cut) {
                cum += weight(kept[cut]);
                if (cum >= target) break;
            }
            if (cut < m) {
                kept.resize(cut + 1);
                break;
            }
            if (m == kept.size()) break;  // rounding left the target just out of reach: keep all
            m = std::min(kept.size(), m * 4);
        }
    }
    // The draw walks the kept tokens in id order, not by probability: logits that differ in the
    // last bits (a tensor-parallel sum in another order) then move the interval edges by as
    // little, instead of swapping two near-equal tokens' places and with them the drawn token.
    std::sort(kept.begin(), kept.end(), [](const Candidate& a, const Candidate& b) { return a.id < b.id; });
    weights.reserve(kept.size());
    for (const auto& c : kept) weights.push_back(weight(c));
}

}  // namespace sampling

SequenceSampler::SequenceSampler(const SamplingParams& params, std::span<const int32_t> prompt_ids, int32_t eos_id,
                                 uint64_t seed)
    : params_(params), eos_id_(eos_id), rng_(seed) {
    if (params_.repetition_penalty != 1.0f) {
        prompt_distinct_.assign(prompt_ids.begin(), prompt_ids.end());
        std::sort(prompt_distinct_.begin(), prompt_distinct_.end());
        prompt_distinct_.erase(std::unique(prompt_distinct_.begin(), prompt_distinct_.end()), prompt_distinct_.end());
    }
}

void SequenceSampler::accept(int32_t token) {
    ++output_counts_[token];
    ++n_generated_;
}

SampledToken SequenceSampler::sample(std::span<float> logits) {
    GRIDLM_ASSERT(!logits.empty());
    SampledToken out;
    const bool want_logprobs = params_.logprobs || params_.top_logprobs > 0;
    double lse = 0.0;
    if (want_logprobs) {
        // Reported log-probabilities are those of the raw model distribution (vLLM's default
        // "raw_logprobs"), so keep the logits before any processor touches them.
        raw_.assign(logits.begin(), logits.end());
        lse = sampling::log_sum_exp(raw_);
        if (params_.top_logprobs > 0) {
            out.top = sampling::top_k_logits(raw_, params_.top_logprobs);
            for (auto& [id, v] : out.top) v = (float)((double)v - lse);
        }
    }

    // 1. min_tokens: the sequence may not end yet.
    if (n_generated_ < params_.min_tokens) {
        if (!params_.ignore_eos && eos_id_ >= 0) sampling::mask_tokens(logits, std::span<const int32_t>(&eos_id_, 1));
        sampling::mask_tokens(logits, params_.stop_token_ids);
    }
    // 2. penalties. Repetition covers prompt and output, each distinct token once.
    if (params_.repetition_penalty != 1.0f) {
        ids_scratch_.assign(prompt_distinct_.begin(), prompt_distinct_.end());
        for (const auto& [id, count] : output_counts_) {
            if (!std::binary_search(prompt_distinct_.begin(), prompt_distinct_.end(), id)) ids_scratch_.push_back(id);
        }
        sampling::apply_repetition_penalty(logits, ids_scratch_, params_.repetition_penalty);
    }
    if (params_.frequency_penalty != 0.0f || params_.presence_penalty != 0.0f) {
        sampling::apply_frequency_presence(logits, output_counts_, params_.frequency_penalty, params_.presence_penalty);
    }

    // 3. greedy, or temperature + min-p + top-k + top-p + draw.
    int32_t token;
    if (greedy()) {
        token = sampling::argmax(logits);
    } else {
        sampling::select_candidates(logits, params_.temperature, params_.min_p, params_.top_k, params_.top_p, kept_,
                                    weights_);
        double total = 0.0;
        for (double w : weights_) total += w;
        const double u = rng_.uniform() * total;
        double cum = 0.0;
        token = kept_.back().id;  // reached only through rounding at the very end of the walk
        for (size_t i = 0; i < kept_.size(); ++i) {
            cum += weights_[i];
            if (u < cum) {
                token = kept_[i].id;
                break;
            }
        }
    }
    out.token_id = token;
    if (want_logprobs) out.logprob = (float)((double)raw_[token] - lse);
    accept(token);
    return out;
}

}  // namespace gridlm
