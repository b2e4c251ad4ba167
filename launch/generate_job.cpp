// The generate job loop (see generate_job.h).
//
// The replica's batch is split into lanes (micro-batches), each owning a fixed range of KV slots
// and refilled on its own as its sequences finish: a lane step runs any mix of prefill chunks
// and decode tokens. Every rank visits the lanes round-robin; on a pipeline, while stage 1 runs
// lane k, stage 0 already runs lane k + 1, and lane k's next step can start on stage 0 as soon as
// the last stage has sent back lane k's tokens.
//
// Per lane step, on every rank of the replica, in the same order:
//   1. apply the lane's previous step: its sampled tokens and finished flags (the last stage has
//      them already, the other stages receive them), freeing slots and finishing records;
//   2. schedule: admit records into free slots, then build the step (deterministic);
//   3. run the stage: receive activations (not on the first stage), forward, send activations
//      on, or on the last stage sample and send the tokens back.
// Step 1 is deferred on the last stage too, so that scheduling sees the same state everywhere.
#include "launch/generate_job.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <variant>

#include "engine/core/error.h"
#include "engine/core/request.h"
#include "engine/kv/kv_cache.h"
#include "engine/model/forward_batch.h"
#include "engine/model/model.h"
#include "engine/sampling/sampler.h"
#include "engine/sampling/stop_checker.h"
#include "engine/tokenizer/tokenizer.h"
#include "io/prompt_reader.h"
#include "io/result_writer.h"
#include "launch/chat_prompt.h"
#include "launch/progress.h"
#include "parallel/communicator.h"

namespace gridlm {
namespace {

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// Message tags. Along a pipeline: activations forward, tokens back. Between replicas' reporters
// and the writer: result lines, then one "done" per replica.
enum Tag : int { tag_activations = 11, tag_tokens = 12, tag_result = 21, tag_done = 22 };

// End-of-generation tokens besides EOS: chat models end a turn with their own control token
// (<|im_end|>) which the GGUF/HF EOS id does not always name. Stopping on them, as llama.cpp's
// "end of generation" set does, keeps a chat answer from running into an invented next turn.
std::vector<int32_t> end_of_generation_ids(const Tokenizer& tok) {
    std::vector<int32_t> ids;
    if (tok.eos_id() >= 0) ids.push_back(tok.eos_id());
    for (const char* text : {"<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end_of_text|>", "<｜end▁of▁sentence｜>"}) {
        if (auto id = tok.token_id(text);
            id && tok.is_control(*id) && std::find(ids.begin(), ids.end(), *id) == ids.end()) {
            ids.push_back(*id);
        }
    }
    return ids;
}

// A record in flight and its n sequences.
struct Active {
    Request req;
    std::vector<Choice> choices;  // filled on the last stage
    int remaining = 0;
};

struct Sequence {
    Active* owner = nullptr;
    int choice = 0;
    int slot = 0;
    // Tokens to put into the KV cache before decoding: the prompt, or after a preemption the prompt
    // and every generated token but the last (which is next_token).
    std::vector<int32_t> feed;
    int64_t fed = 0;                 // of them scheduled into the cache
    bool sample_after_feed = true;   // false when resuming: the next token is already known
    bool preempted = false;          // holds no KV blocks; waits to be recomputed
    int64_t kv_tokens = 0;           // tokens it had in the KV cache when preempted
    int32_t next_token = -1;         // fed at the next decode step
    std::vector<int32_t> generated;  // every sampled token (all ranks)
    // --preempt checkpoint, stages after the first: the activations that entered this stage for
    // every token in the KV cache so far, [tokens, n_embd]; they outlive a preemption.
    std::vector<float> stage_inputs;
    // Last stage only: sampling and the text.
    std::unique_ptr<SequenceSampler> sampler;
    std::unique_ptr<StopChecker> stop;
    std::unique_ptr<StreamDecoder> detok;

    bool feeding() const { return fed < (int64_t)feed.size(); }
};

struct Lane {
    std::vector<int> free_slots;
    std::vector<std::unique_ptr<Sequence>> seqs;  // admission order
    // The step in flight: sequences sampled by it, in row order, and per row (token, finished).
    std::vector<Sequence*> sampled;
    std::vector<Sequence*> prefilled;  // sequences that took feed tokens in the step (to publish)
    std::vector<int32_t> result;
    bool pending = false;
    // Send buffers, kept until the send completes.
    std::vector<float> act_out;
    std::unique_ptr<PendingSend> act_send;
    std::vector<int32_t> result_out;
    std::vector<std::unique_ptr<PendingSend>> result_sends;
};

class JobLoop {
public:
    JobLoop(PromptReader& reader, ResultWriter* writer, const ResultWriterOptions& format, const GenerateModel& m,
            Progress* progress, const GenerateJobOptions& o, const JobGrid& g)
        : reader_(reader),
          writer_(writer),
          format_(format),
          m_(m),
          progress_(progress),
          o_(o),
          g_(g),
          n_vocab_(m.model.config().n_vocab),
          n_embd_(m.model.config().n_embd),
          eog_ids_(end_of_generation_ids(m.tokenizer)) {
        GRIDLM_ASSERT(o.batch_size >= 1 && o.context >= 2 && m.kv.n_slots() >= o.batch_size);
        GRIDLM_ASSERT(o.micro_batches >= 1 && o.micro_batches <= o.batch_size);
        GRIDLM_ASSERT(g.stages == 1 || g.pp != nullptr);
        GRIDLM_ASSERT(g.replicas == 1 || g.dp != nullptr);
        max_prompt_ = o.max_prompt_tokens > 0 ? std::min(o.max_prompt_tokens, o.context - 1) : o.context - 1;
        lanes_.resize(o.micro_batches);
        int slot = 0;
        for (int l = 0; l < o.micro_batches; ++l) {
            const int n = o.batch_size / o.micro_batches + (l < o.batch_size % o.micro_batches ? 1 : 0);
            for (int i = n - 1; i >= 0; --i) lanes_[l].free_slots.push_back(slot + i);
            lane_capacity_ = l == 0 ? n : std::min(lane_capacity_, n);
            slot += n;
        }
    }

    GenerateJobResult run() {
        const double t0 = now_s();
        for (;;) {
            bool any = false;
            if (g_.writer() && o_.stop && o_.stop->load()) {
                result_.interrupted = true;
                break;
            }
            for (Lane& lane : lanes_) {
                if (lane.pending) apply(lane);
                ForwardBatch batch;
                std::vector<Sequence*> rows;  // batch.seqs order
                std::vector<bool> samples;    // the row's logits are sampled
                schedule(lane, batch, rows, samples);
                if (batch.seqs.empty()) continue;
                any = true;
                run_step(lane, batch, rows, samples);
                poll_results(false);
            }
            if (!any) break;
        }
        if (result_.interrupted) {  // the writer stops alone; the caller ends the job
            result_.wall_s = now_s() - t0;
            return result_;
        }
        for (Lane& lane : lanes_) {
            if (lane.act_send) lane.act_send->wait();
            for (auto& s : lane.result_sends) s->wait();
        }
        finish_replicas();
        result_.wall_s = now_s() - t0;
        return result_;
    }

private:
    // Stage-boundary activations go whole, or as 1/tp slices re-gathered over TP on arrival.
    int slices() const { return o_.pp_slices && g_.tp != nullptr ? g_.tp->size() : 1; }
    size_t slice_len(int64_t n_tokens) const {
        const size_t total = (size_t)(n_tokens * n_embd_), k = (size_t)slices();
        return (total + k - 1) / k;
    }

    bool my_record(uint64_t index) const { return (int64_t)(index % (uint64_t)g_.replicas) == g_.replica; }

    // --- output -------------------------------------------------------------------------------

    // A finished record's line: written here (writer), sent to the writer (other reporters),
    // or nothing (other ranks).
    void emit(uint64_t index, bool ok, int64_t prompt_tokens, int64_t completion_tokens, const std::string& line) {
        if (ok) {
            ++result_.records_ok;
        } else {
            ++result_.records_failed;
        }
        if (!g_.reporter()) return;
        if (g_.writer()) {
            write_here(index, line, ok, prompt_tokens, completion_tokens);
            return;
        }
        // [index u64][prompt_tokens i64][completion_tokens i64][ok i64][line]
        std::vector<char> msg(32 + line.size());
        const int64_t head[4] = {(int64_t)index, prompt_tokens, completion_tokens, ok ? 1 : 0};
        std::memcpy(msg.data(), head, sizeof(head));
        std::memcpy(msg.data() + 32, line.data(), line.size());
        outbox_.push_back({std::move(msg), nullptr});
        outbox_.back().second = g_.dp->isend(outbox_.back().first.data(), outbox_.back().first.size(), 0, tag_result);
        while (!outbox_.empty() && outbox_.front().second->test()) outbox_.pop_front();
    }

    // Writer: a record's line into the output file, and into the progress display.
    void write_here(uint64_t index, std::string line, bool ok, int64_t prompt_tokens, int64_t completion_tokens) {
        writer_->write_line(index, std::move(line), ok);
        if (progress_) {
            progress_->record_done(ok, prompt_tokens, completion_tokens);
            progress_->tick();
        }
    }

    void fail(const RecordError& e) {
        emit(e.ref.index, false, 0, 0, g_.reporter() ? format_error(e, format_) : std::string());
    }

    // Writer: takes the other replicas' result lines that have arrived (or, with wait, blocks
    // for the next message). Returns false when a wait got a "done".
    bool poll_results(bool wait) {
        if (!g_.writer() || g_.replicas == 1) return true;
        for (;;) {
            auto in = g_.dp->probe(wait);
            if (!in) return true;
            std::vector<char> msg(in->bytes);
            g_.dp->recv(msg.data(), msg.size(), in->source, in->tag);
            if (in->tag == tag_done) {
                int64_t counts[2];
                GRIDLM_ASSERT(msg.size() == sizeof(counts));
                std::memcpy(counts, msg.data(), sizeof(counts));
                remote_ok_ += counts[0];
                remote_failed_ += counts[1];
                ++replicas_done_;
                return false;
            }
            GRIDLM_ASSERT(in->tag == tag_result && msg.size() >= 32);
            int64_t head[4];
            std::memcpy(head, msg.data(), sizeof(head));
            write_here((uint64_t)head[0], std::string(msg.data() + 32, msg.size() - 32), head[3] != 0, head[1],
                       head[2]);
            if (wait) return true;
        }
    }

    // After the loop: reporters tell the writer they are done; the writer drains the others.
    void finish_replicas() {
        if (g_.replicas == 1 || !g_.reporter()) return;
        if (g_.writer()) {
            while (replicas_done_ < g_.replicas - 1) poll_results(true);
            result_.records_ok += remote_ok_;
            result_.records_failed += remote_failed_;
            return;
        }
        for (auto& [msg, req] : outbox_) req->wait();
        outbox_.clear();
        const int64_t counts[2] = {result_.records_ok, result_.records_failed};
        g_.dp->send(counts, sizeof(counts), 0, tag_done);
    }

    // --- admission ----------------------------------------------------------------------------

    // Tokenizes and checks a request against the model; nullopt when it can run.
    std::optional<RecordError> prepare(Request& r) {
        auto error = [&](std::string code, std::string msg) {
            return RecordError{r.ref, std::move(code), std::move(msg)};
        };
        try {
            if (r.prompt_token_ids.empty()) {
                if (r.ref.chat) {
                    r.prompt_token_ids = m_.chat.encode(m_.tokenizer, r.messages);
                } else {
                    r.prompt_token_ids = m_.tokenizer.encode(r.prompt);
                }
            }
        } catch (const Error& e) {
            return error("invalid_prompt", e.what());
        }
        const int64_t n = (int64_t)r.prompt_token_ids.size();
        if (n == 0) return error("invalid_prompt", "the prompt has no tokens");
        for (int32_t id : r.prompt_token_ids) {
            if (id < 0 || id >= n_vocab_)
                return error("invalid_prompt",
                             str("prompt token id ", id, " is outside the vocabulary (", n_vocab_, ")"));
        }
        for (int32_t id : r.params.stop_token_ids) {
            if (id >= n_vocab_)
                return error("invalid_field", str("stop token id ", id, " is outside the vocabulary (", n_vocab_, ")"));
        }
        if (n > max_prompt_) {
            return error("prompt_too_long", str("the prompt has ", n, " tokens; at most ", max_prompt_,
                                                " fit (context ", o_.context, ", --max-prompt-tokens)"));
        }
        if (o_.kv_blocks > 0) {
            const int64_t longest = std::min<int64_t>(n + r.params.max_tokens, o_.context);
            if (r.params.n * blocks_for(longest) > o_.kv_blocks)
                return error("kv_cache_too_small", str("the prompt and max_tokens (", longest, " tokens, x", r.params.n,
                                                       " choices) need more KV cache than --kv-cache-bytes gives (",
                                                       o_.kv_blocks, " blocks of ", m_.kv.block_size(), " tokens)"));
        }
        if (r.params.n > lane_capacity_) {
            return error("invalid_field",
                         o_.micro_batches == 1
                             ? str("n=", r.params.n, " is larger than --max-seqs=", o_.batch_size)
                             : str("n=", r.params.n, " is larger than a micro-batch (--max-seqs ", o_.batch_size,
                                   " / --micro-batches ", o_.micro_batches, " = ", lane_capacity_, ")"));
        }
        if (!r.params.ignore_eos) {
            for (int32_t id : eog_ids_) {
                if (std::find(r.params.stop_token_ids.begin(), r.params.stop_token_ids.end(), id) ==
                    r.params.stop_token_ids.end())
                    r.params.stop_token_ids.push_back(id);
            }
        }
        return std::nullopt;
    }

    // The next runnable request of this replica (errors of its records written on the way).
    std::optional<Request> next_request() {
        if (carry_) {
            std::optional<Request> r = std::move(carry_);
            carry_.reset();
            return r;
        }
        for (;;) {
            auto rec = reader_.next();
            if (!rec) return std::nullopt;
            if (auto* e = std::get_if<RecordError>(&*rec)) {
                if (my_record(e->ref.index) && !o_.done.count(e->ref.index)) fail(*e);
                continue;
            }
            Request r = std::move(std::get<Request>(*rec));
            if (!my_record(r.ref.index) || o_.done.count(r.ref.index)) continue;
            if (auto e = prepare(r)) {
                fail(*e);
                continue;
            }
            return r;
        }
    }

    void admit(Lane& lane) {
        if (o_.static_batches && !lane.seqs.empty()) return;  // a static batch runs to its end
        while (!lane.free_slots.empty()) {
            std::optional<Request> r = next_request();
            if (!r) return;
            const bool too_far =
                !in_flight_.empty() && (int64_t)(r->ref.index - *in_flight_.begin()) >= o_.order_window;
            const int64_t blocks = r->params.n * blocks_for((int64_t)r->prompt_token_ids.size() + 1);
            if (r->params.n > (int)lane.free_slots.size() || too_far || blocks > m_.kv.free_blocks()) {  // waits
                carry_ = std::move(r);
                return;
            }
            start(std::move(*r), lane);
        }
    }

    void start(Request r, Lane& lane) {
        auto a = std::make_unique<Active>();
        a->req = std::move(r);
        const SamplingParams& p = a->req.params;
        const int64_t prompt_len = (int64_t)a->req.prompt_token_ids.size();
        const int32_t max_tokens = (int32_t)std::min<int64_t>(p.max_tokens, o_.context - prompt_len);
        const uint64_t seed = request_seed(p.seed ? &*p.seed : nullptr, a->req.ref.id, o_.seed);
        a->remaining = p.n;
        // The sampler's EOS is covered by stop_token_ids (prepare() added every end token).
        const int32_t eos = p.ignore_eos ? -1 : m_.tokenizer.eos_id();
        if (g_.last_stage()) {
            a->choices.resize(p.n);
            for (int i = 0; i < p.n; ++i) a->choices[i].index = i;
        }
        for (int i = 0; i < p.n; ++i) {
            auto s = std::make_unique<Sequence>();
            s->owner = a.get();
            s->choice = i;
            s->slot = lane.free_slots.back();
            lane.free_slots.pop_back();
            if (g_.last_stage()) {
                s->sampler = std::make_unique<SequenceSampler>(p, a->req.prompt_token_ids, eos, choice_seed(seed, i));
                s->stop = std::make_unique<StopChecker>(p, eos, max_tokens);
                s->detok = std::make_unique<StreamDecoder>(m_.tokenizer, DecodeOptions{.skip_special = true});
            }
            m_.kv.clear(s->slot);
            s->feed = a->req.prompt_token_ids;
            // A shared system prompt is computed once. (Not with checkpoints: a stage keeps inputs only
            // for the tokens it computed itself.)
            s->fed = o_.preempt_checkpoint ? 0 : m_.kv.attach_prefix(s->slot, s->feed);
            lane.seqs.push_back(std::move(s));
        }
        in_flight_.insert(a->req.ref.index);
        actives_.emplace(a.get(), std::move(a));
    }

    // --- one lane step ------------------------------------------------------------------------

    // KV blocks that hold `tokens` positions.
    int64_t blocks_for(int64_t tokens) const { return (tokens + m_.kv.block_size() - 1) / m_.kv.block_size(); }

    // Admits records, then builds the step: every sequence past its feed decodes one token;
    // sequences in their feed get chunks, prefill_chunk tokens in all at most. Under a KV budget a
    // sequence that cannot get its blocks preempts the lane's younger ones, or waits.
    void schedule(Lane& lane, ForwardBatch& batch, std::vector<Sequence*>& rows, std::vector<bool>& samples) {
        // Preempted sequences come back first (oldest first), when all they held fits again.
        for (auto& sp : lane.seqs) {
            Sequence& s = *sp;
            if (!s.preempted || blocks_for((int64_t)s.feed.size() + 1) > m_.kv.free_blocks()) continue;
            s.preempted = false;
            if (o_.preempt_checkpoint) {
                restore(s);
            } else {
                s.fed = m_.kv.attach_prefix(s.slot, s.feed);
            }
        }
        admit(lane);
        // Decodes first; prompt chunks share what is left of --max-batched-tokens (at least one
        // token when nothing decodes, so a prompt always advances).
        int64_t decoding = 0;
        for (const auto& sp : lane.seqs) decoding += !sp->preempted && !sp->feeding() ? 1 : 0;
        int64_t budget = std::max<int64_t>(1, o_.prefill_chunk);
        if (o_.max_batched_tokens > 0)
            budget = std::min(budget, std::max<int64_t>(decoding == 0 ? 1 : 0, o_.max_batched_tokens - decoding));
        int64_t free = m_.kv.free_blocks();
        for (size_t i = 0; i < lane.seqs.size(); ++i) {
            Sequence& s = *lane.seqs[i];
            if (s.preempted) continue;
            const bool decode = !s.feeding();
            if (!decode && budget <= 0) continue;
            const int64_t take = decode ? 1 : std::min<int64_t>(budget, (int64_t)s.feed.size() - s.fed);
            const int64_t need = m_.kv.blocks_needed(s.slot, take);
            while (need > free && preempt_youngest_after(lane, i, free)) {
            }
            if (need > free) {  // nothing younger to free: this one steps back
                const bool freed = preempt_one(s, free);
                GRIDLM_ASSERT(freed);
                continue;
            }
            free -= need;
            if (decode) {
                batch.add(s.slot, std::span<const int32_t>(&s.next_token, 1));
                rows.push_back(&s);
                samples.push_back(true);
                continue;
            }
            batch.add(s.slot, std::span<const int32_t>(s.feed).subspan(s.fed, take));
            s.fed += take;
            lane.prefilled.push_back(&s);
            budget -= take;
            rows.push_back(&s);
            samples.push_back(!s.feeding() && s.sample_after_feed);
        }
    }

    // --preempt checkpoint: rebuilds a resumed sequence's KV on this stage alone, from the token
    // ids (first stage) or the stage inputs it kept, in prefill_chunk pieces; nothing is sent and
    // nothing sampled, so every stage restores at once instead of waiting for the stages before.
    void restore(Sequence& s) {
        const double t0 = now_s();
        const int64_t n = s.kv_tokens, chunk = std::max<int64_t>(1, o_.prefill_chunk);
        GRIDLM_ASSERT(n <= (int64_t)s.feed.size());
        GRIDLM_ASSERT(g_.stage == 0 || (int64_t)s.stage_inputs.size() == n * n_embd_);
        for (int64_t at = 0; at < n; at += chunk) {
            const int64_t take = std::min(chunk, n - at);
            ForwardBatch b;
            b.add(s.slot, std::span<const int32_t>(s.feed).subspan(at, take));
            scratch_.resize((size_t)(g_.last_stage() ? n_vocab_ : take * n_embd_));
            m_.model.forward_stage(b, m_.kv, g_.stage == 0 ? nullptr : s.stage_inputs.data() + at * n_embd_,
                                   scratch_.data());
        }
        s.fed = n;
        result_.restore_s += now_s() - t0;
        result_.recomputed_tokens += n;
    }

    // Preempts the youngest sequence after position i of the lane (adding its blocks to free).
    bool preempt_youngest_after(Lane& lane, size_t i, int64_t& free) {
        for (size_t j = lane.seqs.size(); j-- > i + 1;) {
            if (preempt_one(*lane.seqs[j], free)) return true;
        }
        return false;
    }

    bool preempt_one(Sequence& s, int64_t& free) {
        if (s.preempted) return false;
        const int64_t before = m_.kv.free_blocks();
        s.kv_tokens = m_.kv.length(s.slot);
        m_.kv.clear(s.slot);
        free += m_.kv.free_blocks() - before;
        s.preempted = true;
        ++result_.preemptions;
        // Back in the cache later: the prompt and all generated tokens but the pending one.
        s.feed = s.owner->req.prompt_token_ids;
        if (!s.generated.empty()) {
            s.feed.insert(s.feed.end(), s.generated.begin(), s.generated.end() - 1);
            s.sample_after_feed = false;
        }
        if (!o_.preempt_checkpoint) result_.recomputed_tokens += (int64_t)s.feed.size();
        s.fed = 0;
        return true;
    }

    void run_step(Lane& lane, const ForwardBatch& batch, const std::vector<Sequence*>& rows,
                  const std::vector<bool>& samples) {
        const int64_t n = batch.n_tokens();
        const double t_start = now_s();
        double t_busy = 0.0;
        const float* x_in = nullptr;
        if (g_.stage > 0) {
            const size_t part = slice_len(n);
            act_in_.resize(part * (size_t)slices());
            if (slices() == 1) {
                g_.pp->recv(act_in_.data(), act_in_.size() * sizeof(float), g_.stage - 1, tag_activations);
            } else {  // this rank's 1/tp slice, then the rest from the TP group
                slice_in_.resize(part);
                g_.pp->recv(slice_in_.data(), part * sizeof(float), g_.stage - 1, tag_activations);
                g_.tp->allgather(slice_in_.data(), part, act_in_.data());
            }
            x_in = act_in_.data();
            if (o_.preempt_checkpoint) {  // keep each sequence's rows: its checkpoint if it is preempted
                int64_t row = 0;
                for (size_t r = 0; r < rows.size(); ++r) {
                    const int64_t k = batch.seqs[r].n_tokens;
                    auto& keep = rows[r]->stage_inputs;
                    keep.insert(keep.end(), act_in_.begin() + row * n_embd_, act_in_.begin() + (row + k) * n_embd_);
                    row += k;
                }
                inputs_held_ += (int64_t)sizeof(float) * n * n_embd_;
                result_.checkpoint_bytes_peak = std::max(result_.checkpoint_bytes_peak, inputs_held_);
            }
        }
        const double t0 = now_s();
        lane.sampled.clear();
        lane.result.clear();
        if (!g_.last_stage()) {
            if (lane.act_send) lane.act_send->wait();
            const size_t part = slice_len(n);
            lane.act_out.assign(part * (size_t)slices(), 0.0f);
            m_.model.forward_stage(batch, m_.kv, x_in, lane.act_out.data());
            t_busy = now_s() - t0;
            // Every rank of the TP group holds the whole activations; with slices each sends its own part.
            const float* first = lane.act_out.data() + (slices() == 1 ? 0 : part * (size_t)g_.tp_rank);
            lane.act_send = g_.pp->isend(first, part * sizeof(float), g_.stage + 1, tag_activations);
            result_.act_bytes_sent += (int64_t)(part * sizeof(float));
            for (size_t r = 0; r < rows.size(); ++r)
                if (samples[r]) lane.sampled.push_back(rows[r]);
        } else {
            logits_.resize((size_t)batch.n_logit_rows() * n_vocab_);
            m_.model.forward_stage(batch, m_.kv, x_in, logits_.data());
            for (size_t r = 0; r < rows.size(); ++r) {
                if (!samples[r]) continue;
                lane.sampled.push_back(rows[r]);
                const auto [token, finished] = sample(*rows[r], &logits_[r * n_vocab_]);
                lane.result.push_back(token);
                lane.result.push_back(finished ? 1 : 0);
            }
            t_busy = now_s() - t0;
            if (g_.stages > 1) {
                for (auto& s : lane.result_sends) s->wait();
                lane.result_sends.clear();
                lane.result_out = lane.result;
                for (int st = 0; st < g_.stages - 1; ++st)
                    lane.result_sends.push_back(
                        g_.pp->isend(lane.result_out.data(), lane.result_out.size() * sizeof(int32_t), st, tag_tokens));
            }
        }
        lane.pending = true;
        result_.busy_s += t_busy;
        ++result_.steps;
        result_.tokens_processed += n;
        if (progress_) {
            int64_t prefill = 0;
            for (const ForwardSeq& s : batch.seqs) prefill += s.n_tokens > 1 ? s.n_tokens : 0;
            const double dt = now_s() - t_start;
            if (prefill > 0) {
                progress_->add_prefill(n, dt);
            } else {
                progress_->add_decode(n, dt);
            }
            progress_->tick();
        }
    }

    // Last stage: sampler -> detokenizer -> stop checks for one sequence's next token.
    std::pair<int32_t, bool> sample(Sequence& s, float* logits) {
        Active& a = *s.owner;
        Choice& ch = a.choices[s.choice];
        const SampledToken st = s.sampler->sample(std::span<float>(logits, (size_t)n_vocab_));
        const int32_t token = st.token_id;
        ch.token_ids.push_back(token);
        if (a.req.params.logprobs) {
            TokenLogprob lp{token, m_.tokenizer.token_bytes(token), st.logprob, {}};
            for (const auto& [id, v] : st.top) lp.top.push_back({id, m_.tokenizer.token_bytes(id), v});
            ch.logprobs.push_back(std::move(lp));
        }
        const std::string piece = s.detok->push(token);
        const auto finished = s.stop->on_token(token, piece);
        if (!finished) return {token, false};
        ch.finish_reason = *finished;
        ch.text = s.stop->finish(s.detok->flush());
        return {token, true};
    }

    // Step 1 of a lane: the previous step's tokens (received on the earlier stages).
    void apply(Lane& lane) {
        lane.pending = false;
        if (!g_.last_stage()) {
            lane.result.resize(lane.sampled.size() * 2);
            g_.pp->recv(lane.result.data(), lane.result.size() * sizeof(int32_t), g_.stages - 1, tag_tokens);
        }
        GRIDLM_ASSERT(lane.result.size() == lane.sampled.size() * 2);
        // The prompt blocks the step filled can now serve later sequences with the same prefix.
        for (Sequence* s : lane.prefilled)
            if (!s->preempted) m_.kv.publish_prefix(s->slot, s->owner->req.prompt_token_ids);
        lane.prefilled.clear();
        for (size_t r = 0; r < lane.sampled.size(); ++r) {
            Sequence& s = *lane.sampled[r];
            s.next_token = lane.result[2 * r];
            s.generated.push_back(s.next_token);
            ++result_.tokens_generated;
            if (lane.result[2 * r + 1] == 0) continue;
            Active* a = s.owner;
            m_.kv.clear(s.slot);
            inputs_held_ -= (int64_t)(sizeof(float) * s.stage_inputs.size());
            lane.free_slots.push_back(s.slot);
            auto it = std::find_if(lane.seqs.begin(), lane.seqs.end(), [&](const auto& p) { return p.get() == &s; });
            GRIDLM_ASSERT(it != lane.seqs.end());
            lane.seqs.erase(it);
            if (--a->remaining == 0) finish(a);
        }
        lane.sampled.clear();
    }

    void finish(Active* a) {
        auto it = actives_.find(a);
        GRIDLM_ASSERT(it != actives_.end());
        in_flight_.erase(a->req.ref.index);
        Completion c;
        c.ref = a->req.ref;
        c.usage.prompt_tokens = (int64_t)a->req.prompt_token_ids.size();
        std::string line;
        if (g_.reporter()) {
            c.choices = std::move(a->choices);
            c.logprobs = a->req.params.logprobs;
            for (const auto& ch : c.choices) c.usage.completion_tokens += (int64_t)ch.token_ids.size();
            line = format_completion(c, format_);
        }
        emit(c.ref.index, true, c.usage.prompt_tokens, c.usage.completion_tokens, line);
        actives_.erase(it);
    }

    PromptReader& reader_;
    ResultWriter* writer_;
    const ResultWriterOptions& format_;
    const GenerateModel& m_;
    Progress* progress_;
    GenerateJobOptions o_;
    JobGrid g_;
    int64_t n_vocab_, n_embd_;
    int64_t max_prompt_ = 0;
    int lane_capacity_ = 0;
    std::vector<int32_t> eog_ids_;
    std::optional<Request> carry_;  // prepared, waits for room
    std::vector<Lane> lanes_;
    std::map<Active*, std::unique_ptr<Active>> actives_;
    std::set<uint64_t> in_flight_;  // indices of admitted, unfinished records
    std::vector<float> logits_;     // [rows, n_vocab] of the last step (last stage)
    std::vector<float> act_in_;     // activations from the previous stage
    std::vector<float> slice_in_;   // this rank's slice of them (--pp-slices)
    std::vector<float> scratch_;    // outputs of a checkpoint restore (not used)
    int64_t inputs_held_ = 0;       // bytes of stage inputs kept for checkpoints
    std::deque<std::pair<std::vector<char>, std::unique_ptr<PendingSend>>> outbox_;  // lines to the writer
    int replicas_done_ = 0;
    int64_t remote_ok_ = 0, remote_failed_ = 0;
    GenerateJobResult result_;
};

}  // namespace

GenerateJobResult run_generate_job(PromptReader& reader, ResultWriter* writer, const ResultWriterOptions& format,
                                   const GenerateModel& m, Progress* progress, const GenerateJobOptions& options,
                                   const JobGrid& grid) {
    return JobLoop(reader, writer, format, m, progress, options, grid).run();
}

}  // namespace gridlm
