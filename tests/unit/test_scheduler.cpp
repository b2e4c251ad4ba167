// The replica scheduler on its own, without MPI or a model: admission under --max-seqs,
// --max-batched-tokens and a KV budget, chunked prefill, prefix reuse, preemption in both modes,
// lane refill, static batches, order_window and the record checks.
#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <map>
#include <string>

#include "engine/backend/backend.h"
#include "engine/kv/kv_cache.h"
#include "engine/sched/scheduler.h"

using namespace gridlm;

namespace {

// A record with prompt tokens `prompt` that generates max_tokens tokens (n choices).
Request make_request(uint64_t index, std::vector<int32_t> prompt, int32_t max_tokens, int32_t n = 1) {
    Request r;
    r.ref.index = index;
    r.ref.id = std::to_string(index);
    r.ref.line = (int64_t)index + 1;
    r.prompt_token_ids = std::move(prompt);
    r.params.max_tokens = max_tokens;
    r.params.n = n;
    return r;
}

// Prompt tokens base, base + 1, ... (distinct bases keep prompts from sharing prefixes).
std::vector<int32_t> tokens(int32_t base, int n) {
    std::vector<int32_t> t(n);
    for (int i = 0; i < n; ++i) t[i] = base + i;
    return t;
}

class VectorSource final : public RequestSource {
public:
    std::deque<Request> queue;
    std::optional<Request> next() override {
        if (queue.empty()) return std::nullopt;
        Request r = std::move(queue.front());
        queue.pop_front();
        return r;
    }
};

// Stands in for the model: a step stores its tokens in the KV cache, as Model::forward_stage does.
class Harness final : public SchedulerHooks {
public:
    Harness(SchedulerOptions o, std::vector<Request> requests, int64_t block_size = 4) {
        kv = std::make_unique<BlockKvCache>(*be, KvLayout{1, 2, 2}, o.max_seqs, o.context, block_size);
        if (o.kv_blocks > 0) kv->set_max_blocks(o.kv_blocks);
        for (Request& r : requests) {
            max_tokens[r.ref.index] = r.params.max_tokens;
            source.queue.push_back(std::move(r));
        }
        sched = std::make_unique<Scheduler>(o, *kv, source, this);
    }

    void on_start(const Sequence& s, const Request& r) override { started.push_back({s.id, r.ref.index}); }
    void restore(const Sequence& s) override {
        restored.push_back({s.id, s.kv_tokens});
        store(s.slot, s.kv_tokens);
    }
    void store(int slot, int64_t n) {
        kv->reserve(slot, n);
        kv->commit(slot, n);
    }

    // Plans the lane's step and runs it: every sampled row gets token 1000 + its position in the
    // output, and finishes once its record's max_tokens are out. False when the lane had nothing.
    bool step(int lane, StepPlan& plan) {
        if (sched->pending(lane)) apply(lane);
        if (!sched->plan(lane, plan)) return false;
        for (const ForwardSeq& s : plan.batch.seqs) store(s.slot, s.n_tokens);
        pending_results[lane].clear();
        for (size_t r = 0; r < plan.rows.size(); ++r) {
            if (!plan.sample[r]) continue;
            const Sequence& s = *plan.rows[r];
            const int64_t produced = (int64_t)s.generated.size() + 1;
            pending_results[lane].push_back(1000 + (int32_t)produced);
            pending_results[lane].push_back(produced >= max_tokens.at(s.record) ? 1 : 0);
        }
        return true;
    }
    bool step(StepPlan& plan) { return step(0, plan); }
    void apply(int lane) {
        StepEvents ev;
        sched->apply(lane, pending_results[lane], ev);
        for (const Request& r : ev.finished_records) finished.push_back(r.ref.index);
    }
    // The job driver's loop over every lane: until no lane plans a step and the scheduler is done.
    // Returns the passes it took.
    int run_lanes() {
        StepPlan plan;
        int passes = 0;
        for (;; ++passes) {
            bool any = false;
            for (int lane = 0; lane < sched->lanes(); ++lane) any = step(lane, plan) || any;
            if (!any && sched->done()) return passes;
            if (passes > 100000) {
                ADD_FAILURE() << "the scheduler makes no progress";
                return passes;
            }
        }
    }
    // Runs lane 0 until nothing is left; returns the plans' token counts per row.
    std::vector<std::vector<int64_t>> run_all() {
        std::vector<std::vector<int64_t>> shapes;
        StepPlan plan;
        while (step(plan)) shapes.push_back(shape(plan));
        return shapes;
    }
    static std::vector<int64_t> shape(const StepPlan& p) {
        std::vector<int64_t> v;
        for (const ForwardSeq& s : p.batch.seqs) v.push_back(s.n_tokens);
        return v;
    }
    static std::vector<uint64_t> records(const StepPlan& p) {
        std::vector<uint64_t> v;
        for (const Sequence* s : p.rows) v.push_back(s->record);
        return v;
    }

    std::unique_ptr<Backend> be = make_cpu_backend(1);
    std::unique_ptr<BlockKvCache> kv;
    VectorSource source;
    std::unique_ptr<Scheduler> sched;
    std::map<uint64_t, int32_t> max_tokens;
    std::map<int, std::vector<int32_t>> pending_results;
    std::vector<std::pair<SeqId, uint64_t>> started;
    std::vector<std::pair<SeqId, int64_t>> restored;
    std::vector<uint64_t> finished;
};

SchedulerOptions options(int max_seqs, int64_t context = 256) {
    SchedulerOptions o;
    o.max_seqs = max_seqs;
    o.context = context;
    return o;
}

using Shapes = std::vector<std::vector<int64_t>>;

TEST(Scheduler, MaxSeqsBoundsTheBatchAndFreedSlotsRefillAtOnce) {
    Harness h(options(2), {make_request(0, tokens(10, 3), 1), make_request(1, tokens(20, 3), 3),
                           make_request(2, tokens(30, 2), 1)});
    StepPlan p;
    ASSERT_TRUE(h.step(p));
    EXPECT_EQ(Harness::records(p), (std::vector<uint64_t>{0, 1}));  // record 2 waits for a slot
    EXPECT_EQ(Harness::shape(p), (std::vector<int64_t>{3, 3}));
    EXPECT_EQ(p.sample, (std::vector<bool>{true, true}));
    EXPECT_NE(p.batch.seqs[0].slot, p.batch.seqs[1].slot);
    ASSERT_TRUE(h.step(p));  // record 0 finished with its first token: its slot goes to record 2
    EXPECT_EQ(h.finished, (std::vector<uint64_t>{0}));
    EXPECT_EQ(Harness::records(p), (std::vector<uint64_t>{1, 2}));
    EXPECT_EQ(Harness::shape(p), (std::vector<int64_t>{1, 2}));  // a decode and a prefill in one step
    while (h.step(p)) {
    }
    EXPECT_EQ(h.finished, (std::vector<uint64_t>{0, 2, 1}));
    EXPECT_EQ(h.sched->records_in_flight(), 0u);
    EXPECT_EQ(h.sched->stats().tokens_generated, 1 + 3 + 1);
}

TEST(Scheduler, StaticBatchesRefillOnlyAnEmptyLane) {
    SchedulerOptions o = options(2);
    o.static_batches = true;
    Harness h(
        o, {make_request(0, tokens(10, 3), 1), make_request(1, tokens(20, 3), 3), make_request(2, tokens(30, 2), 1)});
    const Shapes shapes = h.run_all();
    // Record 2 starts only once records 0 and 1 have both finished.
    EXPECT_EQ(shapes, (Shapes{{3, 3}, {1}, {1}, {2}}));
    EXPECT_EQ(h.finished, (std::vector<uint64_t>{0, 1, 2}));
}

TEST(Scheduler, PrefillChunkSplitsAPromptAndOnlyItsLastChunkIsSampled) {
    SchedulerOptions o = options(1);
    o.prefill_chunk = 4;
    Harness h(o, {make_request(0, tokens(10, 10), 2)});
    StepPlan p;
    std::vector<bool> sampled;
    Shapes shapes;
    while (h.step(p)) {
        shapes.push_back(Harness::shape(p));
        sampled.push_back(p.sample[0]);
    }
    EXPECT_EQ(shapes, (Shapes{{4}, {4}, {2}, {1}}));
    EXPECT_EQ(sampled, (std::vector<bool>{false, false, true, true}));
}

TEST(Scheduler, MaxBatchedTokensServesDecodesFirst) {
    SchedulerOptions o = options(4);
    o.max_batched_tokens = 5;
    Harness h(o, {make_request(0, tokens(10, 2), 10), make_request(1, tokens(20, 10), 10)});
    StepPlan p;
    Shapes shapes;
    std::vector<std::vector<bool>> sampled;
    for (int i = 0; i < 3 && h.step(p); ++i) {
        shapes.push_back(Harness::shape(p));
        sampled.push_back(p.sample);
    }
    // Step 1: 2 + 3 prompt tokens; then record 0 decodes and record 1 gets the 4 tokens left.
    EXPECT_EQ(shapes, (Shapes{{2, 3}, {1, 4}, {1, 3}}));
    EXPECT_EQ(sampled, (std::vector<std::vector<bool>>{{true, false}, {true, false}, {true, true}}));
}

TEST(Scheduler, MaxBatchedTokensStillAdvancesAPromptWhenDecodesFillIt) {
    SchedulerOptions o = options(3);
    o.max_batched_tokens = 2;
    Harness h(
        o, {make_request(0, tokens(10, 1), 5), make_request(1, tokens(20, 1), 5), make_request(2, tokens(30, 3), 5)});
    StepPlan p;
    ASSERT_TRUE(h.step(p));
    EXPECT_EQ(Harness::shape(p), (std::vector<int64_t>{1, 1}));  // the cap is full: record 2 waits
    ASSERT_TRUE(h.step(p));
    EXPECT_EQ(Harness::shape(p), (std::vector<int64_t>{1, 1}));  // two decodes fill the cap again
    EXPECT_EQ(Harness::records(p), (std::vector<uint64_t>{0, 1}));
}

TEST(Scheduler, LanesOwnDisjointSlotsAndRefillIndependently) {
    SchedulerOptions o = options(4);
    o.lanes = 2;
    Harness h(o,
              {make_request(0, tokens(10, 2), 1), make_request(1, tokens(20, 2), 1), make_request(2, tokens(30, 2), 4),
               make_request(3, tokens(40, 2), 4), make_request(4, tokens(50, 2), 1)});
    StepPlan p0, p1;
    ASSERT_TRUE(h.step(0, p0));
    ASSERT_TRUE(h.step(1, p1));
    EXPECT_EQ(Harness::records(p0), (std::vector<uint64_t>{0, 1}));
    EXPECT_EQ(Harness::records(p1), (std::vector<uint64_t>{2, 3}));
    for (const ForwardSeq& s : p0.batch.seqs) EXPECT_LT(s.slot, 2);
    for (const ForwardSeq& s : p1.batch.seqs) EXPECT_GE(s.slot, 2);
    ASSERT_TRUE(h.step(0, p0));  // lane 0's records finished: it takes record 4 alone
    EXPECT_EQ(Harness::records(p0), (std::vector<uint64_t>{4}));
    EXPECT_EQ(h.sched->lane_capacity(), 2);
}

TEST(Scheduler, ChoicesTakeASlotEachAndTheRecordFinishesWithTheLast) {
    Harness h(options(3), {make_request(0, tokens(10, 2), 2, 2), make_request(1, tokens(20, 2), 1, 2)});
    StepPlan p;
    ASSERT_TRUE(h.step(p));
    EXPECT_EQ(Harness::records(p), (std::vector<uint64_t>{0, 0}));  // record 1's two choices do not fit
    EXPECT_EQ(p.rows[0]->choice, 0);
    EXPECT_EQ(p.rows[1]->choice, 1);
    ASSERT_TRUE(h.step(p));
    EXPECT_TRUE(h.finished.empty());
    ASSERT_TRUE(h.step(p));
    EXPECT_EQ(h.finished, (std::vector<uint64_t>{0}));
    EXPECT_EQ(Harness::records(p), (std::vector<uint64_t>{1, 1}));
}

TEST(Scheduler, OrderWindowHoldsBackRecordsTooFarAhead) {
    SchedulerOptions o = options(4);
    o.order_window = 2;
    Harness h(
        o, {make_request(0, tokens(10, 2), 3), make_request(1, tokens(20, 2), 1), make_request(2, tokens(30, 2), 1)});
    StepPlan p;
    ASSERT_TRUE(h.step(p));
    EXPECT_EQ(Harness::records(p), (std::vector<uint64_t>{0, 1}));  // 2 is two past record 0
    ASSERT_TRUE(h.step(p));
    EXPECT_EQ(Harness::records(p), (std::vector<uint64_t>{0}));  // record 1 done, 0 still open
    ASSERT_TRUE(h.step(p));
    EXPECT_EQ(Harness::records(p), (std::vector<uint64_t>{0}));
    ASSERT_TRUE(h.step(p));
    EXPECT_EQ(Harness::records(p), (std::vector<uint64_t>{2}));  // record 0 done: 2 may start
    EXPECT_EQ(h.finished, (std::vector<uint64_t>{1, 0}));
}

TEST(Scheduler, KvBudgetAdmitsByBlocksAndASequenceThatDoesNotFitStepsBack) {
    SchedulerOptions o = options(2);
    o.kv_blocks = 3;  // blocks of 4 tokens
    Harness h(o, {make_request(0, tokens(10, 7), 2), make_request(1, tokens(20, 7), 1)});
    StepPlan p;
    ASSERT_TRUE(h.step(p));
    // Both were admitted (2 blocks each fit in 3), but only record 0's prompt got its blocks.
    EXPECT_EQ(Harness::records(p), (std::vector<uint64_t>{0}));
    EXPECT_EQ(h.sched->stats().preemptions, 1);
    ASSERT_TRUE(h.step(p));
    EXPECT_EQ(Harness::records(p), (std::vector<uint64_t>{0}));
    ASSERT_TRUE(h.step(p));  // record 0 finished and freed its blocks: record 1 comes back
    EXPECT_EQ(Harness::records(p), (std::vector<uint64_t>{1}));
    EXPECT_EQ(Harness::shape(p), (std::vector<int64_t>{7}));
    while (h.step(p)) {
    }
    EXPECT_EQ(h.finished, (std::vector<uint64_t>{0, 1}));
    EXPECT_LE(h.kv->blocks_allocated(), 3);
}

TEST(Scheduler, KvBudgetAdmissionWaitsForFreeBlocks) {
    SchedulerOptions o = options(2);
    o.lanes = 2;
    o.kv_blocks = 2;
    Harness h(o, {make_request(0, tokens(10, 6), 2), make_request(1, tokens(20, 3), 1)});
    StepPlan p;
    ASSERT_TRUE(h.step(0, p));
    EXPECT_EQ(Harness::records(p), (std::vector<uint64_t>{0}));
    // Record 0's prompt holds both blocks: record 1 needs one and is not admitted in lane 1.
    EXPECT_FALSE(h.step(1, p));
    ASSERT_TRUE(h.step(0, p));
    EXPECT_FALSE(h.step(1, p));
    ASSERT_TRUE(h.step(0, p));  // record 0 finished: its blocks admit record 1
    EXPECT_EQ(Harness::records(p), (std::vector<uint64_t>{1}));
    EXPECT_EQ(h.sched->stats().preemptions, 0);
}

// Two lanes under a budget: lane 0's only sequence steps back for want of a block that lane 1
// holds, and in the same pass lane 1 finishes its last record and frees that block. Neither lane
// planned a step, yet the job is not done: the preempted sequence must come back on the next pass.
TEST(Scheduler, ASequencePreemptedWhileTheOtherLaneFinishesComesBack) {
    SchedulerOptions o = options(2);
    o.lanes = 2;
    o.kv_blocks = 3;  // blocks of 4 tokens
    Harness h(o, {make_request(0, tokens(10, 4), 4), make_request(1, tokens(20, 5), 1)});
    StepPlan p;
    ASSERT_TRUE(h.step(0, p));   // record 0's prompt: 1 block
    ASSERT_TRUE(h.step(1, p));   // record 1's prompt: the other 2
    EXPECT_FALSE(h.step(0, p));  // record 0's 5th token needs a 4th block: it steps back
    EXPECT_EQ(h.sched->stats().preempted_now, 1);
    EXPECT_FALSE(h.step(1, p));  // record 1 finished with its first token; nothing is left to read
    EXPECT_EQ(h.finished, (std::vector<uint64_t>{1}));
    EXPECT_FALSE(h.sched->done());  // no lane planned a step, but record 0 waits
    ASSERT_TRUE(h.step(0, p));      // record 0 comes back: its prompt again, not sampled
    EXPECT_EQ(Harness::shape(p), (std::vector<int64_t>{4}));
    EXPECT_EQ(p.sample, (std::vector<bool>{false}));
    h.run_lanes();
    EXPECT_EQ(h.finished, (std::vector<uint64_t>{1, 0}));
    EXPECT_TRUE(h.sched->done());
}

// Lanes of one slot each and a budget of a few blocks: the driver's loop (Harness::run_lanes) must
// finish every record whatever the interleaving of preemptions across lanes.
TEST(Scheduler, EveryRecordFinishesUnderATightBudgetWithManyLanes) {
    for (int lanes = 2; lanes <= 4; ++lanes) {
        for (int64_t blocks = 3; blocks <= 6; ++blocks) {
            std::vector<Request> reqs;  // 10 to 12 tokens each: at most 3 blocks, as check() demands
            for (uint64_t i = 0; i < 16; ++i) {
                const int prompt = 2 + (int)(i * 5 % 7);
                reqs.push_back(make_request(i, tokens((int32_t)i * 100, prompt), 12 - prompt - (int32_t)(i % 3)));
            }
            SchedulerOptions o = options(lanes);
            o.lanes = lanes;
            o.kv_blocks = blocks;
            Harness h(o, reqs);
            h.run_lanes();
            std::vector<uint64_t> got = h.finished;
            std::sort(got.begin(), got.end());
            std::vector<uint64_t> all(reqs.size());
            for (size_t i = 0; i < all.size(); ++i) all[i] = i;
            EXPECT_EQ(got, all) << lanes << " lanes, " << blocks << " blocks";
            EXPECT_TRUE(h.sched->done());
        }
    }
}

// Two sequences decode until the cache is full; the older one's next block preempts the younger.
Harness preemption_case(bool checkpoint) {
    SchedulerOptions o = options(2);
    o.kv_blocks = 4;
    o.preempt_checkpoint = checkpoint;
    return Harness(o, {make_request(0, tokens(10, 3), 7), make_request(1, tokens(20, 3), 12)});
}

void run_until_preempted(Harness& h, StepPlan& p) {
    for (int i = 0; i < 20 && h.sched->stats().preemptions == 0; ++i) ASSERT_TRUE(h.step(p));
    ASSERT_EQ(h.sched->stats().preemptions, 1);
}

TEST(Scheduler, PreemptionByRecomputeFeedsPromptAndOutputAgainWithoutSampling) {
    Harness h = preemption_case(false);
    StepPlan p;
    run_until_preempted(h, p);
    // Step 6 wants position 8 of both: record 0 gets the block that preempting record 1 frees.
    EXPECT_EQ(Harness::records(p), (std::vector<uint64_t>{0}));
    const Sequence* young = nullptr;
    for (const auto& [id, record] : h.started)
        if (record == 1) young = h.sched->sequence(id);
    ASSERT_NE(young, nullptr);
    EXPECT_TRUE(young->preempted);
    EXPECT_EQ(young->kv_tokens, 8);  // 3 prompt tokens + 5 decoded
    EXPECT_EQ(young->generated.size(), 6u);
    std::vector<int32_t> feed = tokens(20, 3);
    feed.insert(feed.end(), young->generated.begin(), young->generated.end() - 1);
    EXPECT_EQ(young->feed, feed);
    EXPECT_EQ(young->fed, 0);
    EXPECT_EQ(h.sched->stats().recomputed_tokens, 8);
    const SeqId young_id = young->id;
    while (h.finished.empty()) ASSERT_TRUE(h.step(p));  // record 0 runs to its end
    // The step after record 0's last token: record 1 comes back: its 8 tokens are fed in one chunk and not sampled (the
    // next is known).
    EXPECT_EQ(Harness::shape(p), (std::vector<int64_t>{8}));
    EXPECT_EQ(p.sample, (std::vector<bool>{false}));
    ASSERT_TRUE(h.step(p));
    EXPECT_EQ(Harness::shape(p), (std::vector<int64_t>{1}));
    EXPECT_EQ(p.batch.tokens[0], h.sched->sequence(young_id)->generated.back());
    while (h.step(p)) {
    }
    EXPECT_EQ(h.finished, (std::vector<uint64_t>{0, 1}));
    EXPECT_TRUE(h.restored.empty());
}

TEST(Scheduler, PreemptionByCheckpointRestoresThroughTheHook) {
    Harness h = preemption_case(true);
    StepPlan p;
    run_until_preempted(h, p);
    EXPECT_EQ(h.sched->stats().recomputed_tokens, 0);  // counted when restored
    while (h.finished.empty()) ASSERT_TRUE(h.step(p));
    ASSERT_EQ(h.restored.size(), 1u);
    EXPECT_EQ(h.restored[0].second, 8);
    EXPECT_EQ(h.sched->stats().recomputed_tokens, 8);
    // The KV was rebuilt by the hook, so the step decodes the known next token at once.
    EXPECT_EQ(Harness::shape(p), (std::vector<int64_t>{1}));
    EXPECT_EQ(p.sample, (std::vector<bool>{true}));
    while (h.step(p)) {
    }
    EXPECT_EQ(h.finished, (std::vector<uint64_t>{0, 1}));
}

TEST(Scheduler, PublishedPromptBlocksServeALaterPromptWithTheSamePrefix) {
    std::vector<int32_t> second = tokens(10, 8);
    second.push_back(77);
    second.push_back(78);
    Harness h(options(1), {make_request(0, tokens(10, 9), 1), make_request(1, second, 1)});
    const Shapes shapes = h.run_all();
    // Record 1 shares record 0's two full blocks (8 tokens) and computes only its last 2.
    EXPECT_EQ(shapes, (Shapes{{9}, {2}}));
    EXPECT_EQ(h.kv->prefix_tokens_reused(), 8);
}

TEST(Scheduler, CheckpointModeDoesNotReusePrefixes) {
    SchedulerOptions o = options(1);
    o.preempt_checkpoint = true;
    Harness h(o, {make_request(0, tokens(10, 9), 1), make_request(1, tokens(10, 10), 1)});
    EXPECT_EQ(h.run_all(), (Shapes{{9}, {10}}));
}

TEST(Scheduler, CheckNamesTheLimitARecordBreaks) {
    SchedulerOptions o = options(4, 16);
    o.lanes = 2;
    o.kv_blocks = 4;
    Harness h(o, {});
    auto code = [&](const Request& r) {
        auto e = h.sched->check(r);
        return e ? e->code + ": " + e->message : std::string("ok");
    };
    EXPECT_EQ(code(make_request(0, tokens(1, 15), 1)), "ok");
    EXPECT_EQ(code(make_request(0, tokens(1, 16), 1)),
              "prompt_too_long: the prompt has 16 tokens; at most 15 fit (context 16, --max-prompt-tokens)");
    EXPECT_EQ(code(make_request(0, tokens(1, 5), 8, 2)),
              "kv_cache_too_small: the prompt and max_tokens (13 tokens, x2 choices) need 8 KV blocks of 4 tokens, "
              "more KV cache than --kv-cache-bytes gives (4 blocks)");
    EXPECT_EQ(code(make_request(0, tokens(1, 1), 1, 3)),
              "invalid_field: n=3 is larger than a micro-batch (--max-seqs 4 / --micro-batches 2 = 2)");
    SchedulerOptions one = options(2, 16);
    one.max_prompt_tokens = 4;
    Harness h1(one, {});
    EXPECT_EQ(h1.sched->check(make_request(0, tokens(1, 5), 1))->message,
              "the prompt has 5 tokens; at most 4 fit (context 16, --max-prompt-tokens)");
    EXPECT_EQ(h1.sched->check(make_request(0, tokens(1, 1), 1, 3))->message, "n=3 is larger than --max-seqs=2");
}

// Every rank of a replica runs its own scheduler: the same inputs must give the same plans.
TEST(Scheduler, SameInputsGiveTheSamePlans) {
    std::vector<Request> reqs;
    for (uint64_t i = 0; i < 24; ++i)
        reqs.push_back(make_request(i, tokens((int32_t)(i % 3) * 100, 3 + (int)(i * 7 % 13)), 1 + (int32_t)(i * 5 % 9),
                                    i % 5 == 0 ? 2 : 1));
    SchedulerOptions o = options(5);
    o.lanes = 2;
    o.kv_blocks = 9;
    o.prefill_chunk = 6;
    o.max_batched_tokens = 8;
    Harness a(o, reqs), b(o, reqs);
    int steps = 0;
    for (bool more = true; more; ++steps) {
        more = false;
        for (int lane = 0; lane < 2; ++lane) {
            StepPlan pa, pb;
            const bool ra = a.step(lane, pa), rb = b.step(lane, pb);
            ASSERT_EQ(ra, rb);
            if (!ra) continue;
            more = true;
            ASSERT_EQ(pa.batch.tokens, pb.batch.tokens);
            ASSERT_EQ(Harness::records(pa), Harness::records(pb));
            ASSERT_EQ(pa.sample, pb.sample);
        }
    }
    EXPECT_EQ(a.finished.size(), reqs.size());
    EXPECT_EQ(a.finished, b.finished);
    EXPECT_GT(a.sched->stats().preemptions, 0);  // the budget is tight enough to exercise preemption
}

}  // namespace
