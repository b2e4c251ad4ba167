// The scoring loop and the perplexity tally (see score_job.h).
//
// Per step, on every rank of a replica, in the same order:
//   1. plan: the sequences in flight take the step's token budget first (oldest first), then new
//      units are admitted into free KV slots while budget and slots last. A piece never crosses a
//      unit's score_from from below, so the unscored head of a window runs in steps that need no
//      logits;
//   2. run the stage: receive activations (not on the first stage), forward, send them on, or on
//      the last stage compute the scored tokens' log-probabilities (reporter only);
//   3. retire the units whose last token ran: the reporter hands them to the sink, every rank
//      clears their KV slot.
#include "launch/score_job.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <deque>

#include "engine/core/communicator.h"
#include "engine/core/error.h"
#include "engine/kv/kv_cache.h"
#include "engine/model/forward_batch.h"
#include "engine/model/model.h"
#include "launch/activation_io.h"
#include "launch/progress.h"

namespace gridlm {
namespace {

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// Message tags: activations along a pipeline; window sums from reporters to the writer.
enum Tag : int { tag_activations = 41, tag_window = 42 };

// Activation sends a stage keeps in flight before it waits for the oldest (over MPI; a
// stream-ordered send leaves nothing to wait for, and its buffer is reused in stream order).
constexpr size_t max_sends = 4;

// log p(tok) under softmax(z), z: [n]. The max in float, the sum of exponentials in double, as
// llama.cpp's perplexity tool does.
double log_softmax_at(const float* z, int64_t n, int32_t tok) {
    float mx = z[0];
    for (int64_t i = 1; i < n; ++i) mx = std::max(mx, z[i]);
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) sum += std::exp(z[i] - mx);
    return (double)(z[tok] - mx) - std::log(sum);
}

struct Active {
    ScoreUnit unit;
    int slot = 0;
    int64_t fed = 0;  // tokens planned into steps so far
    std::vector<double> logprobs;
};

struct Piece {
    size_t active = 0;  // index into the active list
    int64_t begin = 0;  // first position of the piece in its unit
    int64_t count = 0;
};

class ScoreLoop {
public:
    ScoreLoop(Model& m, KvCache& kv, const ScoreSource& source, const ScoreSink& sink, const ScoreJobOptions& o,
              const JobGrid& g, Progress* progress)
        : m_(m),
          kv_(kv),
          source_(source),
          sink_(sink),
          o_(o),
          g_(g),
          progress_(progress),
          n_vocab_(m.config().n_vocab),
          n_embd_(m.config().n_embd) {
        GRIDLM_ASSERT(o.batch_tokens >= 1 && o.max_seqs >= 1 && kv.n_slots() >= o.max_seqs);
        GRIDLM_ASSERT(g.stages == 1 || g.pp != nullptr);
        if (!g_.pp_act) g_.pp_act = g_.pp;
        // Activations live in backend memory: a host-memory communicator can carry them only there.
        GRIDLM_ASSERT(g_.stages == 1 || m.backend().host_memory() || g_.pp_act->device_memory());
        for (int s = o.max_seqs - 1; s >= 0; --s) free_slots_.push_back(s);
    }

    ScoreJobStats run() {
        const double t0 = now_s();
        for (;;) {
            plan();
            if (batch_.seqs.empty()) break;
            run_step();
            retire();
        }
        for (auto& [buf, send] : sends_)
            if (send) send->wait();
        sends_.clear();
        stats_.wall_s = now_s() - t0;
        return stats_;
    }

private:
    void plan() {
        batch_.clear();
        pieces_.clear();
        int64_t budget = o_.batch_tokens;
        for (size_t i = 0; i < active_.size() && budget > 0; ++i) add_piece(i, budget);
        while (budget > 0 && !free_slots_.empty() && !source_done_) {
            std::optional<ScoreUnit> u = source_();
            if (!u) {
                source_done_ = true;
                break;
            }
            const int64_t n = (int64_t)u->tokens.size();
            GRIDLM_ASSERT(n >= 2 && u->score_from >= 0 && u->score_from <= n - 2);
            if (n > kv_.max_length())
                throw Error(str("score: unit ", u->ref.index, " has ", n, " tokens; the KV cache holds ",
                                kv_.max_length(), " per sequence"));
            active_.push_back({std::move(*u), free_slots_.back(), 0, {}});
            free_slots_.pop_back();
            active_.back().logprobs.reserve((size_t)(n - 1 - active_.back().unit.score_from));
            add_piece(active_.size() - 1, budget);
        }
        batch_.all_logits = false;
        for (const Piece& p : pieces_) batch_.all_logits = batch_.all_logits || needs_logits(p);
    }

    void add_piece(size_t i, int64_t& budget) {
        Active& a = active_[i];
        const int64_t n = (int64_t)a.unit.tokens.size();
        int64_t take = std::min(n - a.fed, budget);
        if (a.fed < a.unit.score_from) take = std::min(take, a.unit.score_from - a.fed);
        if (take <= 0) return;
        batch_.add(a.slot, std::span<const int32_t>(a.unit.tokens).subspan((size_t)a.fed, (size_t)take));
        pieces_.push_back({i, a.fed, take});
        a.fed += take;
        budget -= take;
    }

    // The piece holds a position p in [score_from, n - 2], whose logits score token p + 1.
    bool needs_logits(const Piece& p) const {
        const ScoreUnit& u = active_[p.active].unit;
        return p.begin <= (int64_t)u.tokens.size() - 2 && p.begin + p.count - 1 >= u.score_from;
    }

    void run_step() {
        const int64_t n = batch_.n_tokens();
        const double t_start = now_s();
        const size_t count = (size_t)(n * n_embd_);
        Backend& be = m_.backend();
        const float* x_in = nullptr;
        if (g_.stage > 0) {  // a stream-ordered receive returns at once; the backend's later work sees the data
            reserve_activations(be, act_in_, count);
            g_.pp_act->recv(act_in_.data(), count * sizeof(float), g_.stage - 1, tag_activations);
            x_in = act_in_.f32();
        }
        const double t0 = now_s();
        if (!g_.last_stage()) {
            BackendBuffer out;
            if (sends_.size() >= max_sends) {
                if (sends_.front().second) sends_.front().second->wait();
                out = std::move(sends_.front().first);
                sends_.pop_front();
            }
            reserve_activations(be, out, count);
            m_.forward_stage_in_backend(batch_, kv_, x_in, out.f32());
            sends_.emplace_back(std::move(out), nullptr);
            auto& back = sends_.back();
            back.second = send_activations(*g_.pp_act, back.first.f32(), count, g_.stage + 1, tag_activations);
        } else {
            logits_.reserve(m_.backend(), sizeof(float) * (size_t)(batch_.n_logit_rows() * n_vocab_));
            m_.forward_stage_in_backend(batch_, kv_, x_in, logits_.f32());
            if (g_.reporter() && batch_.all_logits) score();
        }
        stats_.busy_s += now_s() - t0;
        ++stats_.steps;
        stats_.tokens_processed += n;
        if (progress_) {
            progress_->add_prefill(n, now_s() - t_start);
            progress_->tick();
        }
    }

    // Reporter: the log-probabilities of the step's scored tokens; logits rows follow the tokens.
    void score() {
        int64_t row = 0;
        for (const Piece& p : pieces_) {
            Active& a = active_[p.active];
            const std::vector<int32_t>& t = a.unit.tokens;
            const int64_t last = (int64_t)t.size() - 2;
            for (int64_t pos = p.begin; pos < p.begin + p.count; ++pos, ++row) {
                if (pos < a.unit.score_from || pos > last) continue;
                a.logprobs.push_back(
                    log_softmax_at(logits_.f32() + (size_t)(row * n_vocab_), n_vocab_, t[(size_t)pos + 1]));
            }
        }
    }

    void retire() {
        for (size_t i = 0; i < active_.size();) {
            Active& a = active_[i];
            if (a.fed < (int64_t)a.unit.tokens.size()) {
                ++i;
                continue;
            }
            if (g_.reporter()) {
                GRIDLM_ASSERT(a.logprobs.size() == a.unit.tokens.size() - 1 - (size_t)a.unit.score_from);
                sink_(a.unit, a.logprobs);
            }
            kv_.clear(a.slot);
            free_slots_.push_back(a.slot);
            ++stats_.units;
            active_.erase(active_.begin() + (std::ptrdiff_t)i);
        }
    }

    Model& m_;
    KvCache& kv_;
    const ScoreSource& source_;
    const ScoreSink& sink_;
    ScoreJobOptions o_;
    JobGrid g_;
    Progress* progress_;
    int64_t n_vocab_, n_embd_;
    std::vector<Active> active_;  // units in flight, oldest first
    std::vector<int> free_slots_;
    bool source_done_ = false;
    ForwardBatch batch_;
    std::vector<Piece> pieces_;  // the step's pieces, in batch order
    BackendBuffer act_in_;       // [n_tokens, n_embd] from the previous stage (backend memory)
    HostBuffer logits_;          // last stage: [batch.n_logit_rows(), n_vocab], pinned on a GPU
    // Activations sent on, [n_tokens, n_embd] each (backend memory), with their MPI sends in flight.
    std::deque<std::pair<BackendBuffer, std::unique_ptr<PendingSend>>> sends_;
    ScoreJobStats stats_;
};

}  // namespace

ScoreJobStats run_score_job(Model& m, KvCache& kv, const ScoreSource& source, const ScoreSink& sink,
                            const ScoreJobOptions& options, const JobGrid& grid, Progress* progress) {
    return ScoreLoop(m, kv, source, sink, options, grid, progress).run();
}

double PerplexitySums::perplexity() const { return std::exp(mean_nll()); }

double PerplexitySums::perplexity_stderr() const {
    if (count < 2) return std::nan("");
    const double mean = mean_nll(), var = nll2 / (double)count - mean * mean;
    if (!(var > 0.0)) return std::nan("");
    return perplexity() * std::sqrt(var / (double)(count - 1));
}

WindowTally::WindowTally(const JobGrid& grid, int64_t n_windows,
                         std::function<void(int64_t, const PerplexitySums&)> on_window)
    : g_(grid), n_windows_(n_windows), on_window_(std::move(on_window)) {
    GRIDLM_ASSERT(g_.replicas == 1 || g_.dp != nullptr);
}

WindowTally::~WindowTally() = default;

void WindowTally::add(int64_t window, const PerplexitySums& sums) {
    GRIDLM_ASSERT(g_.reporter() && window >= 0 && window < n_windows_);
    if (g_.writer()) {
        take(window, sums);
        drain(false);
        return;
    }
    // [window, nll, nll2, count] to the writer (replica 0 of the dp group).
    std::vector<double> msg = {(double)window, sums.nll, sums.nll2, (double)sums.count};
    sends_.emplace_back(std::move(msg), nullptr);
    auto& back = sends_.back();
    back.second = g_.dp->isend(back.first.data(), back.first.size() * sizeof(double), 0, tag_window);
}

void WindowTally::take(int64_t window, const PerplexitySums& sums) {
    waiting_[window] = sums;
    for (auto it = waiting_.find(next_); it != waiting_.end(); it = waiting_.find(next_)) {
        running_.add(it->second);
        waiting_.erase(it);
        if (on_window_) on_window_(next_, running_);
        ++next_;
    }
}

void WindowTally::drain(bool wait) {
    if (g_.replicas == 1) return;
    for (;;) {
        auto in = g_.dp->probe(wait);
        if (!in) return;
        GRIDLM_ASSERT(in->tag == tag_window && in->bytes == 4 * sizeof(double));
        double msg[4];
        g_.dp->recv(msg, sizeof(msg), in->source, in->tag);
        take((int64_t)msg[0], PerplexitySums{msg[1], msg[2], (int64_t)msg[3]});
        if (wait) return;
    }
}

PerplexitySums WindowTally::finish() {
    if (g_.writer()) {
        while (next_ < n_windows_) {
            GRIDLM_ASSERT(g_.replicas > 1 && "a window of this replica was never added");
            drain(true);
        }
        return running_;
    }
    for (auto& [msg, send] : sends_) send->wait();
    sends_.clear();
    return {};
}

}  // namespace gridlm
