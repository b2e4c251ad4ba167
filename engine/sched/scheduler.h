// The scheduler of one data-parallel replica: which records run, in which KV slots, and what each
// lane (micro-batch) step computes. Plain and deterministic, with no MPI and no model: it takes
// requests (from a RequestSource) and each step's sampled tokens, and hands out step plans.
//
// Every rank of a replica runs its own Scheduler over the same requests and the same sampled
// tokens, so all of them make the same decisions without sending them (docs/architecture.md).
//
//   Scheduler sched(options, kv, source, &hooks);
//   for (;;) {                                       // the job driver's loop
//       bool any = false;
//       for (int lane = 0; lane < sched.lanes(); ++lane) {
//           if (sched.pending(lane)) sched.apply(lane, tokens_and_flags, events);  // step 1
//           StepPlan plan;
//           if (!sched.plan(lane, plan)) continue;                                  // step 2
//           any = true;
//           ... forward plan.batch, sample the rows with plan.sample[r] ...        // step 3
//       }
//       if (!any && sched.done()) break;
//   }
//
// A pass where no lane plans a step is not the end by itself: a lane whose sequences all stepped
// back for want of KV blocks plans nothing, and a later lane may free those blocks in the same
// pass; the next pass brings them back.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <vector>

#include "engine/core/request.h"
#include "engine/kv/kv_cache.h"
#include "engine/model/forward_batch.h"

namespace gridlm {

struct SchedulerOptions {
    int max_seqs = 16;               // sequences (n choices count n times) in flight per replica
    int lanes = 1;                   // micro-batches: independently refilled parts of the batch
    int64_t context = 0;             // tokens per sequence, prompt + output
    int64_t max_prompt_tokens = 0;   // longer prompts are record errors; 0 => context - 1
    int64_t prefill_chunk = 1024;    // prompt tokens per lane step at most
    int64_t max_batched_tokens = 0;  // tokens per lane step at most, decodes first; 0 = no cap
    // true: a lane takes new records only once all of its sequences have finished (static
    // batches); false: each free slot is refilled at once (continuous batching).
    bool static_batches = false;
    // Records admitted at most this far (in input index) past the oldest unfinished one of the
    // replica: bounds what --order input holds back.
    int64_t order_window = 1 << 16;
    // KV blocks the cache may hold (the same on every rank); 0 = no limit. With a limit, records are
    // admitted by the blocks their prompts need and sequences are preempted when a step needs a
    // block that is not there.
    int64_t kv_blocks = 0;
    // How a preempted sequence gets its KV back: false, its tokens are fed again through the
    // whole pipeline (recompute); true, SchedulerHooks::restore rebuilds it on each stage at once.
    bool preempt_checkpoint = false;
};

using SeqId = int64_t;

// One sequence: a choice of a record. The scheduler owns it; the driver reads it.
struct Sequence {
    SeqId id = 0;         // unique within the job, in admission order
    uint64_t record = 0;  // RecordRef::index of its record
    int choice = 0;       // 0 .. n-1
    int slot = 0;         // KV cache slot
    // Tokens to put into the KV cache before decoding: the prompt, or after a preemption the
    // prompt and every generated token but the last (which is next_token).
    std::vector<int32_t> feed;
    int64_t fed = 0;                 // of them scheduled into the cache
    bool sample_after_feed = true;   // false when resuming: the next token is already known
    bool preempted = false;          // holds no KV blocks; waits to come back
    int64_t kv_tokens = 0;           // tokens it had in the KV cache when preempted
    int32_t next_token = -1;         // fed at the next decode step
    std::vector<int32_t> generated;  // every sampled token

    bool feeding() const { return fed < (int64_t)feed.size(); }
};

// Where the scheduler gets the next runnable request of its replica: read, tokenized and checked
// (Scheduler::check), so nullopt means the input is exhausted.
class RequestSource {
public:
    virtual ~RequestSource() = default;
    virtual std::optional<Request> next() = 0;
};

// What the driver does when the scheduler decides something that needs more than bookkeeping.
// Called synchronously, in the same order on every rank.
class SchedulerHooks {
public:
    virtual ~SchedulerHooks() = default;
    // A sequence was admitted (its request is `r`); the last stage makes its sampler here.
    virtual void on_start(const Sequence& s, const Request& r) {
        (void)s;
        (void)r;
    }
    // --preempt checkpoint: rebuild the KV of s's first s.kv_tokens tokens of s.feed in slot s.slot
    // now, on this stage alone (the model's forward reserves and commits them in the cache).
    virtual void restore(const Sequence& s) { (void)s; }
};

// One lane step: the forward batch and, per row of the batch (one per sequence), whether the
// logits of its last token are sampled.
struct StepPlan {
    int lane = 0;
    ForwardBatch batch;
    std::vector<const Sequence*> rows;  // [batch.seqs.size()] the sequence of each row
    std::vector<bool> sample;           // [batch.seqs.size()]
};

// What applying a step's sampled tokens finished.
struct StepEvents {
    std::vector<SeqId> finished_seqs;       // their slots are free again
    std::vector<Request> finished_records;  // every choice done, in the order they finished
    void clear() {
        finished_seqs.clear();
        finished_records.clear();
    }
};

struct SchedulerStats {
    int64_t preemptions = 0;        // sequences whose KV was dropped under the KV budget
    int64_t recomputed_tokens = 0;  // tokens they had to put through the model again
    int64_t tokens_generated = 0;   // sampled tokens applied
    int64_t preempted_now = 0;      // sequences preempted and not yet back
};

class Scheduler {
public:
    // kv: the rank's KV cache, with at least options.max_seqs slots (its block accounting is the
    // same on every rank of the replica). source and hooks must outlive the scheduler.
    Scheduler(const SchedulerOptions& options, KvCache& kv, RequestSource& source, SchedulerHooks* hooks = nullptr);
    ~Scheduler();

    int lanes() const { return (int)lanes_.size(); }
    // Sequences one lane holds at most (the smallest lane); a record's n must fit in it.
    int lane_capacity() const { return lane_capacity_; }
    // Prompts longer than this are record errors.
    int64_t max_prompt_tokens() const { return max_prompt_; }

    // The limits a prepared request must meet to be scheduled at all: prompt length, KV budget and
    // n. nullopt when it fits; otherwise the record's error (prompt_too_long, kv_cache_too_small,
    // invalid_field), as the record's line will say it.
    std::optional<RecordError> check(const Request& r) const;

    // Step 1. True when the lane's last plan has not been applied yet.
    bool pending(int lane) const;
    // Rows the lane's pending step samples: apply() takes a (token, finished) pair for each.
    int64_t pending_samples(int lane) const;
    // Applies the pending step: results holds (token, finished 0/1) per sampled row. Publishes the
    // prompt blocks the step wrote, appends the tokens, frees finished sequences' slots and reports
    // finished sequences and records in `events` (appended).
    void apply(int lane, std::span<const int32_t> results, StepEvents& events);

    // Step 2. Brings back preempted sequences that fit, admits requests into free slots, and builds
    // the lane's next step: every sequence past its feed decodes one token, feeding ones get
    // prompt chunks (at most prefill_chunk tokens in all, and what --max-batched-tokens leaves).
    // Under a KV budget a sequence that cannot get its blocks preempts the lane's younger ones, or
    // steps back. False when the lane has nothing to run.
    bool plan(int lane, StepPlan& out);

    // The sequence with this id (nullptr once finished).
    const Sequence* sequence(SeqId id) const;
    // Records admitted and not yet finished.
    size_t records_in_flight() const { return actives_.size(); }
    // True when no record is in flight (running or preempted) and no request waits for room. Once
    // a pass over every lane has planned no step and done() holds, the source is exhausted and
    // every record it gave has been reported finished: the driver may stop. A pass that planned
    // nothing while !done() is followed by one that plans a step (every sequence is then preempted
    // and the whole budget is free, so the oldest comes back).
    bool done() const { return actives_.empty() && !carry_; }
    const SchedulerStats& stats() const { return stats_; }

private:
    struct Active;
    struct Lane;
    int64_t blocks_for(int64_t tokens) const;
    void admit(Lane& lane);
    void start(Request r, Lane& lane);
    bool preempt_youngest_after(Lane& lane, size_t i, int64_t& free);
    bool preempt_one(Sequence& s, int64_t& free);

    SchedulerOptions o_;
    KvCache& kv_;
    RequestSource& source_;
    SchedulerHooks* hooks_;
    SchedulerHooks no_hooks_;
    int64_t max_prompt_ = 0;
    int lane_capacity_ = 0;
    SeqId next_id_ = 0;
    std::optional<Request> carry_;  // prepared, waits for room
    std::vector<std::unique_ptr<Lane>> lanes_;
    std::map<uint64_t, std::unique_ptr<Active>> actives_;  // by record index
    SchedulerStats stats_;
};

}  // namespace gridlm
