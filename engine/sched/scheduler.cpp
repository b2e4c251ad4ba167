// The replica scheduler (see scheduler.h): admission, lane steps, preemption, prefix publishing.
#include "engine/sched/scheduler.h"

#include <algorithm>

#include "engine/core/error.h"

namespace gridlm {

// A record in flight and how many of its n sequences are still running.
struct Scheduler::Active {
    Request req;
    int remaining = 0;
};

// A lane owns a fixed range of KV slots and the sequences in them, in admission order.
struct Scheduler::Lane {
    std::vector<int> free_slots;
    std::vector<std::unique_ptr<Sequence>> seqs;
    // The step in flight: the sequences it samples (row order) and those that took feed tokens
    // (their prompt blocks are published once the step is applied).
    std::vector<Sequence*> sampled;
    std::vector<Sequence*> prefilled;
    bool pending = false;
};

Scheduler::Scheduler(const SchedulerOptions& o, KvCache& kv, RequestSource& source, SchedulerHooks* hooks)
    : o_(o), kv_(kv), source_(source), hooks_(hooks ? hooks : &no_hooks_) {
    GRIDLM_ASSERT(o.max_seqs >= 1 && o.context >= 2 && kv.n_slots() >= o.max_seqs);
    GRIDLM_ASSERT(o.lanes >= 1 && o.lanes <= o.max_seqs);
    max_prompt_ = o.max_prompt_tokens > 0 ? std::min(o.max_prompt_tokens, o.context - 1) : o.context - 1;
    int slot = 0;
    for (int l = 0; l < o.lanes; ++l) {
        auto lane = std::make_unique<Lane>();
        const int n = o.max_seqs / o.lanes + (l < o.max_seqs % o.lanes ? 1 : 0);
        for (int i = n - 1; i >= 0; --i) lane->free_slots.push_back(slot + i);
        lane_capacity_ = l == 0 ? n : std::min(lane_capacity_, n);
        slot += n;
        lanes_.push_back(std::move(lane));
    }
}

Scheduler::~Scheduler() = default;

int64_t Scheduler::blocks_for(int64_t tokens) const { return (tokens + kv_.block_size() - 1) / kv_.block_size(); }

std::optional<RecordError> Scheduler::check(const Request& r) const {
    auto error = [&](std::string code, std::string msg) { return RecordError{r.ref, std::move(code), std::move(msg)}; };
    const int64_t n = (int64_t)r.prompt_token_ids.size();
    if (n > max_prompt_) {
        return error("prompt_too_long", str("the prompt has ", n, " tokens; at most ", max_prompt_, " fit (context ",
                                            o_.context, ", --max-prompt-tokens)"));
    }
    if (o_.kv_blocks > 0) {
        const int64_t longest = std::min<int64_t>(n + r.params.max_tokens, o_.context);
        const int64_t need = r.params.n * blocks_for(longest);
        if (need > o_.kv_blocks)
            return error("kv_cache_too_small",
                         str("the prompt and max_tokens (", longest, " tokens, x", r.params.n, " choices) need ", need,
                             " KV blocks of ", kv_.block_size(), " tokens, more KV cache than --kv-cache-bytes gives (",
                             o_.kv_blocks, " blocks)"));
    }
    if (r.params.n > lane_capacity_) {
        return error("invalid_field",
                     o_.lanes == 1 ? str("n=", r.params.n, " is larger than --max-seqs=", o_.max_seqs)
                                   : str("n=", r.params.n, " is larger than a micro-batch (--max-seqs ", o_.max_seqs,
                                         " / --micro-batches ", o_.lanes, " = ", lane_capacity_, ")"));
    }
    return std::nullopt;
}

bool Scheduler::pending(int lane) const { return lanes_.at(lane)->pending; }

int64_t Scheduler::pending_samples(int lane) const { return (int64_t)lanes_.at(lane)->sampled.size(); }

const Sequence* Scheduler::sequence(SeqId id) const {
    for (const auto& lane : lanes_)
        for (const auto& s : lane->seqs)
            if (s->id == id) return s.get();
    return nullptr;
}

// --- step 1 ---------------------------------------------------------------------------------------

void Scheduler::apply(int lane_index, std::span<const int32_t> results, StepEvents& events) {
    Lane& lane = *lanes_.at(lane_index);
    GRIDLM_ASSERT(lane.pending);
    GRIDLM_ASSERT(results.size() == lane.sampled.size() * 2);
    lane.pending = false;
    // The prompt blocks the step filled can now serve later sequences with the same prefix.
    for (Sequence* s : lane.prefilled)
        if (!s->preempted) kv_.publish_prefix(s->slot, actives_.at(s->record)->req.prompt_token_ids);
    lane.prefilled.clear();
    for (size_t r = 0; r < lane.sampled.size(); ++r) {
        Sequence& s = *lane.sampled[r];
        s.next_token = results[2 * r];
        s.generated.push_back(s.next_token);
        ++stats_.tokens_generated;
        if (results[2 * r + 1] == 0) continue;
        kv_.clear(s.slot);
        lane.free_slots.push_back(s.slot);
        events.finished_seqs.push_back(s.id);
        const uint64_t record = s.record;
        auto it = std::find_if(lane.seqs.begin(), lane.seqs.end(), [&](const auto& p) { return p.get() == &s; });
        GRIDLM_ASSERT(it != lane.seqs.end());
        lane.seqs.erase(it);
        auto a = actives_.find(record);
        GRIDLM_ASSERT(a != actives_.end());
        if (--a->second->remaining == 0) {
            events.finished_records.push_back(std::move(a->second->req));
            actives_.erase(a);
        }
    }
    lane.sampled.clear();
}

// --- step 2 ---------------------------------------------------------------------------------------

void Scheduler::admit(Lane& lane) {
    if (o_.static_batches && !lane.seqs.empty()) return;  // a static batch runs to its end
    while (!lane.free_slots.empty()) {
        std::optional<Request> r;
        if (carry_) {
            r = std::move(carry_);
            carry_.reset();
        } else {
            r = source_.next();
        }
        if (!r) return;
        const bool too_far = !actives_.empty() && (int64_t)(r->ref.index - actives_.begin()->first) >= o_.order_window;
        const int64_t blocks = r->params.n * blocks_for((int64_t)r->prompt_token_ids.size() + 1);
        if (r->params.n > (int)lane.free_slots.size() || too_far || blocks > kv_.free_blocks()) {  // waits
            carry_ = std::move(r);
            return;
        }
        start(std::move(*r), lane);
    }
}

void Scheduler::start(Request r, Lane& lane) {
    auto a = std::make_unique<Active>();
    a->req = std::move(r);
    a->remaining = a->req.params.n;
    const uint64_t record = a->req.ref.index;
    GRIDLM_ASSERT(actives_.count(record) == 0);
    const Active& active = *actives_.emplace(record, std::move(a)).first->second;
    for (int i = 0; i < active.req.params.n; ++i) {
        auto s = std::make_unique<Sequence>();
        s->id = next_id_++;
        s->record = record;
        s->choice = i;
        s->slot = lane.free_slots.back();
        lane.free_slots.pop_back();
        kv_.clear(s->slot);
        s->feed = active.req.prompt_token_ids;
        // A shared system prompt is computed once. (Not with checkpoints: a stage keeps inputs only
        // for the tokens it computed itself.)
        s->fed = o_.preempt_checkpoint ? 0 : kv_.attach_prefix(s->slot, s->feed);
        hooks_->on_start(*s, active.req);
        lane.seqs.push_back(std::move(s));
    }
}

bool Scheduler::plan(int lane_index, StepPlan& out) {
    Lane& lane = *lanes_.at(lane_index);
    GRIDLM_ASSERT(!lane.pending && lane.sampled.empty());
    out.lane = lane_index;
    out.batch.clear();
    out.rows.clear();
    out.sample.clear();
    // Preempted sequences come back first (oldest first), when all they held fits again.
    for (auto& sp : lane.seqs) {
        Sequence& s = *sp;
        if (!s.preempted || blocks_for((int64_t)s.feed.size() + 1) > kv_.free_blocks()) continue;
        s.preempted = false;
        --stats_.preempted_now;
        if (o_.preempt_checkpoint) {
            GRIDLM_ASSERT(s.kv_tokens <= (int64_t)s.feed.size());
            hooks_->restore(s);
            s.fed = s.kv_tokens;
            stats_.recomputed_tokens += s.kv_tokens;
        } else {
            s.fed = kv_.attach_prefix(s.slot, s.feed);
        }
    }
    admit(lane);
    // Decodes first; prompt chunks share what is left of --max-batched-tokens (at least one token
    // when nothing decodes, so a prompt always advances).
    int64_t decoding = 0;
    for (const auto& sp : lane.seqs) decoding += !sp->preempted && !sp->feeding() ? 1 : 0;
    int64_t budget = std::max<int64_t>(1, o_.prefill_chunk);
    if (o_.max_batched_tokens > 0)
        budget = std::min(budget, std::max<int64_t>(decoding == 0 ? 1 : 0, o_.max_batched_tokens - decoding));
    int64_t free = kv_.free_blocks();
    for (size_t i = 0; i < lane.seqs.size(); ++i) {
        Sequence& s = *lane.seqs[i];
        if (s.preempted) continue;
        const bool decode = !s.feeding();
        if (!decode && budget <= 0) continue;
        const int64_t take = decode ? 1 : std::min<int64_t>(budget, (int64_t)s.feed.size() - s.fed);
        const int64_t need = kv_.blocks_needed(s.slot, take);
        while (need > free && preempt_youngest_after(lane, i, free)) {
        }
        if (need > free) {  // nothing younger to free: this one steps back
            const bool freed = preempt_one(s, free);
            GRIDLM_ASSERT(freed);
            continue;
        }
        free -= need;
        if (decode) {
            out.batch.add(s.slot, std::span<const int32_t>(&s.next_token, 1));
            out.rows.push_back(&s);
            out.sample.push_back(true);
            lane.sampled.push_back(&s);
            continue;
        }
        out.batch.add(s.slot, std::span<const int32_t>(s.feed).subspan(s.fed, take));
        s.fed += take;
        lane.prefilled.push_back(&s);
        budget -= take;
        out.rows.push_back(&s);
        out.sample.push_back(!s.feeding() && s.sample_after_feed);
        if (out.sample.back()) lane.sampled.push_back(&s);
    }
    if (out.batch.seqs.empty()) return false;
    lane.pending = true;
    return true;
}

// Preempts the youngest sequence after position i of the lane (adding its blocks to free).
bool Scheduler::preempt_youngest_after(Lane& lane, size_t i, int64_t& free) {
    for (size_t j = lane.seqs.size(); j-- > i + 1;) {
        if (preempt_one(*lane.seqs[j], free)) return true;
    }
    return false;
}

bool Scheduler::preempt_one(Sequence& s, int64_t& free) {
    if (s.preempted) return false;
    const int64_t before = kv_.free_blocks();
    s.kv_tokens = kv_.length(s.slot);
    kv_.clear(s.slot);
    free += kv_.free_blocks() - before;
    s.preempted = true;
    ++stats_.preemptions;
    ++stats_.preempted_now;
    // Back in the cache later: the prompt and all generated tokens but the pending one.
    s.feed = actives_.at(s.record)->req.prompt_token_ids;
    if (!s.generated.empty()) {
        s.feed.insert(s.feed.end(), s.generated.begin(), s.generated.end() - 1);
        s.sample_after_feed = false;
    }
    if (!o_.preempt_checkpoint) stats_.recomputed_tokens += (int64_t)s.feed.size();
    s.fed = 0;
    return true;
}

}  // namespace gridlm
