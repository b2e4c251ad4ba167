// The scoring loop of `gridlm score` on one rank of the grid: token sequences (perplexity windows or
// prompt records) run through the pipeline stages in steps of up to batch_tokens tokens, several
// sequences per step, each in its own KV slot and evaluated from scratch; the last stage turns the
// logits into the log-probability of each scored token.
//
// A unit's token t[p+1] is scored from the logits z at position p (softmax over the vocabulary):
//   log p(t[p+1] | t[0..p]) = z[t[p+1]] - max(z) - log sum_v exp(z[v] - max(z))
// and a set of scored tokens gives, with v_i = -log p_i over its `count` tokens (llama.cpp,
// tools/perplexity/perplexity.cpp, perplexity() and its final estimate):
//   perplexity = exp(mean v),   stderr = perplexity * sqrt((mean v^2 - (mean v)^2) / (count - 1))
// (the uncertainty of exp(mean v) by the delta method, from the standard error of the mean).
//
// Every rank of a replica runs the same plan from the same units, so the step's batch is never
// sent: only activations travel along a pipeline. Data-parallel replicas take disjoint units.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "engine/core/communicator.h"
#include "engine/core/request.h"
#include "launch/generate_job.h"

namespace gridlm {

class Model;
class KvCache;
class Progress;

// One token sequence to score: tokens[score_from + 1 .. n - 1] get log-probabilities, from the
// logits at positions score_from .. n - 2. Requires n >= 2 and 0 <= score_from <= n - 2.
struct ScoreUnit {
    RecordRef ref;  // ref.index: window number or record index; id and line name a record
    std::vector<int32_t> tokens;
    int64_t score_from = 0;
};

// The replica's units in order; nullopt at the end. Every rank of a replica must get the same ones.
using ScoreSource = std::function<std::optional<ScoreUnit>()>;
// Reporter rank (last stage, tp rank 0): a finished unit and its log-probabilities (natural log),
// [n - 1 - score_from]: logprobs[i] is that of tokens[score_from + 1 + i].
using ScoreSink = std::function<void(const ScoreUnit&, std::span<const double> logprobs)>;

struct ScoreJobOptions {
    int64_t batch_tokens = 512;  // tokens per model step at most (>= 1)
    int max_seqs = 8;            // sequences per step at most; the KV cache needs this many slots
};

struct ScoreJobStats {
    int64_t units = 0;             // units this replica scored
    int64_t steps = 0;             // model steps this rank ran
    int64_t tokens_processed = 0;  // tokens run through this rank's stage
    double busy_s = 0.0;           // in the model and the log-softmax
    double wall_s = 0.0;           // in the loop
};

// Runs the replica's units through this rank's stage (m: this rank's shard, kv: its cache with
// >= max_seqs slots of the longest unit). `progress` (writer rank, may be nullptr) gets the
// tokens of each step. Throws Error for a model failure (e.g. a token id outside the vocabulary).
ScoreJobStats run_score_job(Model& m, KvCache& kv, const ScoreSource& source, const ScoreSink& sink,
                            const ScoreJobOptions& options, const JobGrid& grid, Progress* progress = nullptr);

// Sums of v = -log p over scored tokens (llama.cpp's nll, nll2 and count).
struct PerplexitySums {
    double nll = 0.0;
    double nll2 = 0.0;
    int64_t count = 0;

    void add(double logprob) {
        nll -= logprob;
        nll2 += logprob * logprob;
        ++count;
    }
    void add(const PerplexitySums& o) {
        nll += o.nll;
        nll2 += o.nll2;
        count += o.count;
    }
    double mean_nll() const { return nll / (double)count; }
    double perplexity() const;
    // The standard error of perplexity(); NaN when count < 2 or the variance is not positive.
    double perplexity_stderr() const;
};

// Perplexity windows of a grid job, collected in window order on the writer rank: every
// replica's reporter adds its windows' sums; the writer calls on_window(i, running) once windows
// 0..i have all arrived, running being their total. Windows are added in increasing order per
// replica; messages go over grid.dp.
class WindowTally {
public:
    WindowTally(const JobGrid& grid, int64_t n_windows,
                std::function<void(int64_t window, const PerplexitySums& running)> on_window);
    ~WindowTally();

    void add(int64_t window, const PerplexitySums& sums);  // reporters only
    // Writer: waits for every window and returns the total. Other reporters: waits for their
    // sends to complete and returns an empty total. Other ranks: returns at once.
    PerplexitySums finish();

private:
    void take(int64_t window, const PerplexitySums& sums);
    void drain(bool wait);

    JobGrid g_;
    int64_t n_windows_;
    std::function<void(int64_t, const PerplexitySums&)> on_window_;
    std::map<int64_t, PerplexitySums> waiting_;  // writer: windows that arrived ahead of the next one
    int64_t next_ = 0;
    PerplexitySums running_;
    std::vector<std::pair<std::vector<double>, std::unique_ptr<PendingSend>>> sends_;
};

}  // namespace gridlm
