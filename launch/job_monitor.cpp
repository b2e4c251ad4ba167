// The metrics of a generate job, gathered on the writer rank (see job_monitor.h).
#include "launch/job_monitor.h"

#include <chrono>
#include <cstring>
#include <optional>

#include "engine/core/communicator.h"
#include "engine/core/error.h"
#include "engine/kv/kv_cache.h"
#include "launch/progress.h"

namespace gridlm {
namespace {

// Messages on the world communicator, which carries no other point-to-point traffic.
constexpr int tag_metrics = 31;

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

}  // namespace

JobMonitor::JobMonitor(JobMonitorOptions o) : o_(std::move(o)), start_(now_s()) {
    GRIDLM_ASSERT(o_.world != nullptr);
    m_.job_id = o_.job_id.empty() ? default_job_id() : o_.job_id;
    m_.info = o_.info;
    m_.max_error_rate = o_.max_error_rate;
    if (!writer()) return;
    file_ = std::make_unique<MetricsFile>(o_.path, o_.interval_s);
    ranks_.resize((size_t)o_.world->size());
    last_seen_.assign(ranks_.size(), false);
    for (size_t r = 0; r < ranks_.size(); ++r) ranks_[r].rank = (int)r;
}

JobMonitor::~JobMonitor() {
    if (pending_) pending_->wait();
}

bool JobMonitor::writer() const { return o_.world->rank() == o_.writer_rank; }

void JobMonitor::refresh_me(const JobLoopState& s) {
    RankMetrics& me = o_.me;
    me.busy_s = s.result->busy_s;
    me.wall_s = now_s() - start_;
    me.bytes_sent = (double)(s.result->act_bytes_sent + s.result->token_bytes_sent);
    me.rss_bytes = (double)resident_bytes();
    me.tokens_processed = (double)s.result->tokens_processed;
    me.steps = (double)s.result->steps;
}

void JobMonitor::send(bool last) {
    if (pending_) pending_->wait();  // a few dozen bytes: the previous one has long left
    const auto a = o_.me.to_array();
    std::copy(a.begin(), a.end(), out_.begin());
    out_.back() = last ? 1.0 : 0.0;
    pending_ = o_.world->isend(out_.data(), sizeof(out_), o_.writer_rank, tag_metrics);
    if (last) {
        pending_->wait();
        pending_.reset();
    }
}

void JobMonitor::receive(bool wait) {
    while (lasts_ < (int)ranks_.size() - 1) {
        auto in = o_.world->probe(wait);
        if (!in) return;
        Packet p{};
        GRIDLM_ASSERT(in->tag == tag_metrics && in->bytes == sizeof(p));
        o_.world->recv(p.data(), sizeof(p), in->source, in->tag);
        std::array<double, RankMetrics::n_fields> a;
        std::copy(p.begin(), p.end() - 1, a.begin());
        ranks_[(size_t)in->source] = RankMetrics::from_array(a);
        if (p.back() != 0 && !last_seen_[(size_t)in->source]) {
            last_seen_[(size_t)in->source] = true;
            ++lasts_;
        }
    }
}

void JobMonitor::fill(const JobLoopState& s) {
    ranks_[(size_t)o_.writer_rank] = o_.me;
    m_.ranks = ranks_;
    if (s.kinds) m_.records = *s.kinds;
    if (s.filter_hits) m_.filter_hits = *s.filter_hits;
    m_.elapsed_s = now_s() - start_;
    if (o_.progress) {
        const ProgressTotals& t = o_.progress->totals();
        m_.prompt_tokens = t.prompt_tokens;
        m_.completion_tokens = t.completion_tokens;
        // Every token goes through a first stage: their sum over the replicas (the other ranks'
        // figures are as fresh as their last message).
        double tokens = 0;
        for (const RankMetrics& r : ranks_) tokens += r.stage == 0 && r.tp_rank == 0 ? r.tokens_processed : 0.0;
        m_.tokens_per_s = m_.elapsed_s > 0 ? tokens / m_.elapsed_s : 0.0;
        const int64_t done = t.records_ok + t.records_failed;
        const std::optional<int64_t> total = o_.progress->records_total();
        m_.records_input = total ? *total : -1;
        m_.eta_s = total && done > 0 ? o_.progress->eta_s().value_or(0.0) : -1;  // 0: all done
        if (total) m_.queued = std::max<int64_t>(0, *total - done - s.records_in_flight);
    }
    m_.running = s.running;
    m_.preempted_total = s.result->preemptions;
    if (o_.kv != nullptr) {
        m_.kv_blocks_used = o_.kv->blocks_in_use();
        m_.kv_blocks_free = o_.kv_blocks > 0 ? std::max<int64_t>(0, o_.kv_blocks - m_.kv_blocks_used) : -1;
        m_.prefix_cache_hits = o_.kv->prefix_hits();
        m_.prefix_tokens_reused = o_.kv->prefix_tokens_reused();
    }
}

void JobMonitor::on_step(const JobLoopState& s) {
    const double t = now_s();
    if (!writer()) {
        if (t - last_send_ < o_.interval_s) return;
        last_send_ = t;
        refresh_me(s);
        send(false);
        return;
    }
    receive(false);
    if (!file_->due()) return;
    refresh_me(s);
    fill(s);
    file_->maybe_write(m_);
}

void JobMonitor::on_end(const JobLoopState& s) {
    refresh_me(s);
    if (!writer()) {
        send(true);
        return;
    }
    // Stopped alone, the writer cannot wait for the others (they are still in their loops).
    receive(!s.result->interrupted);
    fill(s);
}

void JobMonitor::write_final(bool breaker) {
    if (!writer()) return;
    m_.breaker_tripped = breaker;
    m_.finished = true;
    file_->write(m_);
}

}  // namespace gridlm
