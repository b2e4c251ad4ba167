// Unit tests of the sampler (processors, determinism, logprobs) and of the stop logic.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

#include "engine/sampling/sampler.h"
#include "engine/sampling/stop_checker.h"

using namespace gridlm;

namespace {

constexpr float neg_inf = -std::numeric_limits<float>::infinity();

// Deterministic pseudo-random logits, like a model's: a few peaks over a noisy floor.
std::vector<float> make_logits(int n_vocab, uint64_t seed) {
    Rng rng(seed);
    std::vector<float> l(n_vocab);
    for (auto& x : l) x = (float)(rng.uniform() * 6.0 - 3.0);
    for (int i = 0; i < 8; ++i) l[rng.next() % n_vocab] += 6.0f + (float)i;
    return l;
}

std::set<int32_t> kept_ids(const std::vector<sampling::Candidate>& kept) {
    std::set<int32_t> s;
    for (const auto& c : kept) s.insert(c.id);
    return s;
}

// Generates `steps` tokens for one sequence, with logits that depend on the step and the
// previous token (as a model's would).
std::vector<int32_t> run_sequence(const SamplingParams& p, uint64_t seed, int steps, int n_vocab = 1000) {
    SequenceSampler s(p, std::vector<int32_t>{1, 2, 3}, /*eos_id=*/0, seed);
    std::vector<int32_t> out;
    int32_t prev = 7;
    for (int i = 0; i < steps; ++i) {
        auto logits = make_logits(n_vocab, 1000 * (uint64_t)i + (uint64_t)prev);
        prev = s.sample(logits).token_id;
        out.push_back(prev);
    }
    return out;
}

}  // namespace

TEST(Sampler, SameSeedSameOutputWhateverTheBatch) {
    SamplingParams p;
    p.temperature = 0.9f;
    p.top_p = 0.95f;
    const auto alone = run_sequence(p, 42, 50);
    // The same sequence interleaved with others, stepped in a different order each round.
    std::vector<SequenceSampler> batch;
    std::vector<int32_t> prev(4, 7);
    std::vector<std::vector<int32_t>> outs(4);
    for (int k = 0; k < 4; ++k) batch.emplace_back(p, std::vector<int32_t>{1, 2, 3}, 0, k == 2 ? 42 : 100 + k);
    for (int step = 0; step < 50; ++step) {
        for (int j = 0; j < 4; ++j) {
            const int k = (j + step) % 4;
            auto logits = make_logits(1000, 1000 * (uint64_t)step + (uint64_t)prev[k]);
            prev[k] = batch[k].sample(logits).token_id;
            outs[k].push_back(prev[k]);
        }
    }
    EXPECT_EQ(outs[2], alone);
    EXPECT_NE(outs[0], alone);
    EXPECT_EQ(run_sequence(p, 42, 50), alone);
}

TEST(Sampler, DerivedSeedsDiffer) {
    EXPECT_EQ(choice_seed(5, 0), 5u);
    EXPECT_NE(choice_seed(5, 1), choice_seed(5, 2));
    const uint64_t s = 9;
    EXPECT_EQ(request_seed(&s, "a", 1), 9u);
    EXPECT_EQ(request_seed(nullptr, "a", 1), request_seed(nullptr, "a", 1));
    EXPECT_NE(request_seed(nullptr, "a", 1), request_seed(nullptr, "b", 1));
    EXPECT_NE(request_seed(nullptr, "a", 1), request_seed(nullptr, "a", 2));
}

TEST(Sampler, TopKOneAndTemperatureZeroAreGreedy) {
    SamplingParams greedy;
    greedy.temperature = 0.0f;
    SamplingParams top1;
    top1.temperature = 1.5f;
    top1.top_k = 1;
    for (uint64_t seed = 0; seed < 20; ++seed) {
        auto logits = make_logits(5000, seed);
        logits[17] = logits[23] = 100.0f;  // a tie: both must pick the lower id
        const int32_t expect = 17;
        auto a = logits, b = logits;
        EXPECT_EQ(SequenceSampler(greedy, {}, -1, seed).sample(a).token_id, expect);
        EXPECT_EQ(SequenceSampler(top1, {}, -1, seed).sample(b).token_id, expect);
    }
    SamplingParams tiny = greedy;
    tiny.temperature = 1e-7f;
    EXPECT_TRUE(SequenceSampler(tiny, {}, -1, 0).greedy());
}

TEST(Sampler, RepetitionPenaltyDividesPositiveMultipliesNegative) {
    std::vector<float> l = {2.0f, -2.0f, 1.0f, 4.0f};
    const std::vector<int32_t> ids = {0, 1};
    sampling::apply_repetition_penalty(l, ids, 2.0f);
    EXPECT_FLOAT_EQ(l[0], 1.0f);
    EXPECT_FLOAT_EQ(l[1], -4.0f);
    EXPECT_FLOAT_EQ(l[2], 1.0f);
    EXPECT_FLOAT_EQ(l[3], 4.0f);
}

TEST(Sampler, FrequencyAndPresencePenalties) {
    std::vector<float> l = {1.0f, 1.0f, 1.0f};
    std::unordered_map<int32_t, int32_t> counts = {{0, 3}, {2, 1}};
    sampling::apply_frequency_presence(l, counts, 0.5f, 0.25f);
    EXPECT_FLOAT_EQ(l[0], 1.0f - 1.5f - 0.25f);
    EXPECT_FLOAT_EQ(l[1], 1.0f);
    EXPECT_FLOAT_EQ(l[2], 1.0f - 0.5f - 0.25f);
}

TEST(Sampler, PenaltiesUsePromptAndOutputHistory) {
    // Repetition covers prompt and output once each; frequency only the output.
    SamplingParams p;
    p.temperature = 0.0f;
    p.repetition_penalty = 2.0f;
    p.frequency_penalty = 1.0f;
    SequenceSampler s(p, std::vector<int32_t>{0, 0, 1}, -1, 0);
    s.accept(1);
    s.accept(1);
    s.accept(2);
    std::vector<float> l = {10.0f, 10.0f, 10.0f, 4.0f};
    s.sample(l);
    EXPECT_FLOAT_EQ(l[0], 5.0f);         // prompt: /2
    EXPECT_FLOAT_EQ(l[1], 5.0f - 2.0f);  // prompt and output twice: /2 once, -2
    EXPECT_FLOAT_EQ(l[2], 5.0f - 1.0f);  // output once
    EXPECT_FLOAT_EQ(l[3], 4.0f);
}

TEST(Sampler, MinPTopKTopPKeepTheRightSets) {
    // Probabilities at T=1: 0.5, 0.25, 0.125, 0.0625, 0.0625.
    std::vector<float> l;
    for (double p : {0.5, 0.25, 0.125, 0.0625, 0.0625}) l.push_back((float)std::log(p));
    std::vector<sampling::Candidate> kept;
    std::vector<double> w;
    sampling::select_candidates(l, 1.0f, 0.0f, 0, 1.0f, kept, w);
    EXPECT_EQ(kept_ids(kept), (std::set<int32_t>{0, 1, 2, 3, 4}));
    sampling::select_candidates(l, 1.0f, 0.3f, 0, 1.0f, kept, w);  // p >= 0.15
    EXPECT_EQ(kept_ids(kept), (std::set<int32_t>{0, 1}));
    sampling::select_candidates(l, 1.0f, 0.2f, 0, 1.0f, kept, w);  // p >= 0.1
    EXPECT_EQ(kept_ids(kept), (std::set<int32_t>{0, 1, 2}));
    sampling::select_candidates(l, 1.0f, 0.0f, 2, 1.0f, kept, w);
    EXPECT_EQ(kept_ids(kept), (std::set<int32_t>{0, 1}));
    sampling::select_candidates(l, 1.0f, 0.0f, 0, 0.7f, kept, w);  // 0.5 + 0.25 >= 0.7
    EXPECT_EQ(kept_ids(kept), (std::set<int32_t>{0, 1}));
    sampling::select_candidates(l, 1.0f, 0.0f, 0, 0.8f, kept, w);
    EXPECT_EQ(kept_ids(kept), (std::set<int32_t>{0, 1, 2}));
    sampling::select_candidates(l, 1.0f, 0.0f, 0, 0.01f, kept, w);  // always keeps one
    EXPECT_EQ(kept_ids(kept), (std::set<int32_t>{0}));
    // top-p after top-k renormalises over the k kept: 0.5/0.75 = 0.67 < 0.7.
    sampling::select_candidates(l, 1.0f, 0.0f, 2, 0.7f, kept, w);
    EXPECT_EQ(kept_ids(kept), (std::set<int32_t>{0, 1}));
    sampling::select_candidates(l, 1.0f, 0.0f, 3, 0.5f, kept, w);
    EXPECT_EQ(kept_ids(kept), (std::set<int32_t>{0}));
    // Temperature sharpens before min-p: at T=0.5 probabilities ∝ p^2.
    sampling::select_candidates(l, 0.5f, 0.2f, 0, 1.0f, kept, w);  // p^2 ratio >= 0.2: 1, 0.25
    EXPECT_EQ(kept_ids(kept), (std::set<int32_t>{0, 1}));
    ASSERT_EQ(w.size(), kept.size());
    // Kept tokens come in id order whatever their probabilities.
    std::vector<float> shuffled = {1.0f, 3.0f, 2.0f, 5.0f, 4.0f};
    sampling::select_candidates(shuffled, 1.0f, 0.0f, 4, 0.99f, kept, w);
    ASSERT_EQ(kept.size(), 4u);
    for (size_t i = 1; i < kept.size(); ++i) EXPECT_LT(kept[i - 1].id, kept[i].id);
}

TEST(Sampler, TopPOnLargeVocabulary) {
    const int n = 150000;
    auto l = make_logits(n, 3);
    std::vector<sampling::Candidate> kept;
    std::vector<double> w;
    sampling::select_candidates(l, 1.0f, 0.0f, 0, 0.9f, kept, w);
    // Check against a full sort.
    std::vector<double> p(n);
    double mx = *std::max_element(l.begin(), l.end()), z = 0;
    for (int i = 0; i < n; ++i) z += (p[i] = std::exp(l[i] - mx));
    std::vector<int32_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](int a, int b) { return l[a] > l[b] || (l[a] == l[b] && a < b); });
    double cum = 0;
    size_t expect = 0;
    while (cum < 0.9 * z) cum += p[order[expect++]];
    EXPECT_EQ(kept.size(), expect);
    EXPECT_EQ(kept_ids(kept), std::set<int32_t>(order.begin(), order.begin() + expect));
}

TEST(Sampler, SamplingFollowsTheDistribution) {
    std::vector<float> base = {(float)std::log(0.6), (float)std::log(0.3), (float)std::log(0.1)};
    SamplingParams p;
    SequenceSampler s(p, {}, -1, 7);
    std::vector<int> hist(3);
    const int n = 20000;
    for (int i = 0; i < n; ++i) {
        auto l = base;
        hist[s.sample(l).token_id]++;
    }
    EXPECT_NEAR(hist[0] / (double)n, 0.6, 0.02);
    EXPECT_NEAR(hist[1] / (double)n, 0.3, 0.02);
    EXPECT_NEAR(hist[2] / (double)n, 0.1, 0.02);
}

TEST(Sampler, MinTokensMasksEosAndStopIds) {
    SamplingParams p;
    p.temperature = 0.0f;
    p.min_tokens = 2;
    p.stop_token_ids = {5};
    SequenceSampler s(p, {}, /*eos_id=*/3, 0);
    std::vector<float> l = {0, 0, 0, 10, 0, 9, 1};
    auto a = l;
    EXPECT_EQ(s.sample(a).token_id, 6);  // EOS and stop id masked
    auto b = l;
    EXPECT_EQ(s.sample(b).token_id, 6);
    auto c = l;
    EXPECT_EQ(s.sample(c).token_id, 3);  // min_tokens reached: EOS allowed
}

TEST(Sampler, LogprobsAreRawModelLogSoftmax) {
    SamplingParams p;
    p.temperature = 0.7f;
    p.top_k = 5;
    p.repetition_penalty = 1.3f;
    p.logprobs = true;
    p.top_logprobs = 4;
    const auto raw = make_logits(2000, 11);
    SequenceSampler s(p, std::vector<int32_t>{1, 2}, -1, 3);
    auto l = raw;
    auto r = s.sample(l);
    const double lse = sampling::log_sum_exp(raw);
    EXPECT_NEAR(r.logprob, raw[r.token_id] - lse, 1e-5);
    ASSERT_EQ(r.top.size(), 4u);
    EXPECT_EQ(r.top[0].first, sampling::argmax(raw));
    for (size_t i = 1; i < r.top.size(); ++i) EXPECT_GE(r.top[i - 1].second, r.top[i].second);
    // Sum-to-one sanity: the top logprobs over the whole vocabulary add up to 1.
    auto all = sampling::top_k_logits(raw, (int32_t)raw.size());
    double sum = 0;
    for (auto& [id, v] : all) sum += std::exp((double)v - lse);
    EXPECT_NEAR(sum, 1.0, 1e-6);
}

TEST(StopStrings, FoundAcrossTokensAndTrimmed) {
    StopStringMatcher m({"STOP", "\n\n"});
    std::string out;
    for (const char* piece : {"Hello ", "wor", "ld S", "TO", "P and more"}) {
        auto r = m.feed(piece);
        out += r.text;
        if (r.stopped) break;
    }
    EXPECT_EQ(out, "Hello world ");
}

TEST(StopStrings, HeldBackPrefixIsReleasedWhenItIsNotAStop) {
    StopStringMatcher m({"STOP"});
    auto r1 = m.feed("abc ST");
    EXPECT_EQ(r1.text, "abc ");
    auto r2 = m.feed("ART");
    EXPECT_EQ(r2.text, "START");
    EXPECT_FALSE(r2.stopped);
    m.feed("xS");
    EXPECT_EQ(m.flush(), "S");
}

TEST(StopStrings, EarliestMatchWins) {
    StopStringMatcher m({"world", "lo w"});
    auto r = m.feed("hello world");
    EXPECT_TRUE(r.stopped);
    EXPECT_EQ(r.text, "hel");
}

TEST(StopChecker, ConditionsAndOrder) {
    SamplingParams p;
    p.stop = {"END"};
    p.stop_token_ids = {9};
    p.min_tokens = 2;
    {
        StopChecker c(p, /*eos=*/0, 10);
        EXPECT_FALSE(c.on_token(0, ""));  // EOS before min_tokens is ignored
        auto r = c.on_token(0, "");
        ASSERT_TRUE(r);
        EXPECT_EQ(*r, FinishReason::finish_reason_stop);
    }
    {
        StopChecker c(p, 0, 10);
        EXPECT_FALSE(c.on_token(5, "aE"));
        auto r = c.on_token(6, "ND tail");  // stop string split across tokens
        ASSERT_TRUE(r);
        EXPECT_EQ(*r, FinishReason::finish_reason_stop);
        EXPECT_EQ(c.finish(), "a");
    }
    {
        StopChecker c(p, 0, 3);
        EXPECT_FALSE(c.on_token(5, "x"));
        EXPECT_FALSE(c.on_token(5, "EN"));
        auto r = c.on_token(5, "y");
        ASSERT_TRUE(r);
        EXPECT_EQ(*r, FinishReason::finish_reason_length);
        EXPECT_EQ(c.finish(), "xENy");
    }
    {
        StopChecker c(p, 0, 10);
        c.on_token(5, "a");
        EXPECT_EQ(c.on_token(9, "<stop>"), FinishReason::finish_reason_stop);  // stop id, text dropped
        EXPECT_EQ(c.finish(), "a");
    }
    {
        SamplingParams q;
        q.ignore_eos = true;
        StopChecker c(q, 0, 2);
        EXPECT_FALSE(c.on_token(0, "e"));
        EXPECT_EQ(c.on_token(0, "e"), FinishReason::finish_reason_length);
    }
}
