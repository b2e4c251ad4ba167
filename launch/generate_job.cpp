// The generate job loop (see generate_job.h): wires reader -> scheduler -> model step -> sampler
// -> writer on one rank. Scheduling (admission, what each step computes, preemption) is the
// Scheduler's (engine/sched/); this file picks the replica's records (index mod dp, skipping those
// a resumed job has done), moves activations and sampled tokens between the stages and turns
// tokens into lines.
//
// Per lane step, on every rank of the replica, in the same order:
//   1. apply the lane's previous step: its sampled tokens and finished flags (the last stage has
//      them already, the other stages receive them), then write the records it finished;
//   2. plan the lane's next step (Scheduler::plan: admission, prompt chunks, decodes, preemption);
//   3. run the stage: receive activations (not on the first stage), forward, send activations
//      on, or on the last stage sample and send the tokens back.
// Step 1 is deferred on the last stage too, so that scheduling sees the same state everywhere.
#include "launch/generate_job.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <unordered_map>
#include <variant>

#include "engine/core/communicator.h"
#include "engine/core/error.h"
#include "engine/core/request.h"
#include "engine/filter/content_filter.h"
#include "engine/kv/kv_cache.h"
#include "engine/model/forward_batch.h"
#include "engine/model/model.h"
#include "engine/sampling/rng.h"
#include "engine/sampling/sampler.h"
#include "engine/sampling/stop_checker.h"
#include "engine/sched/scheduler.h"
#include "engine/tokenizer/tokenizer.h"
#include "io/prompt_reader.h"
#include "io/result_writer.h"
#include "launch/activation_io.h"
#include "launch/chat_prompt.h"
#include "launch/result_router.h"
#include "launch/progress.h"
#include "launch/trace.h"

namespace gridlm {
namespace {

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// Message tags along a pipeline: activations forward, tokens back.
enum Tag : int { tag_activations = 11, tag_tokens = 12 };

// Last stage: a sequence's sampler, stop checks and detokenizer. Stages after the first with
// --preempt checkpoint: the activations that entered this stage for every token in the KV cache so
// far, [tokens, n_embd]; they outlive a preemption.
struct SeqState {
    std::unique_ptr<SequenceSampler> sampler;
    std::unique_ptr<StopChecker> stop;
    std::unique_ptr<StreamDecoder> detok;
    bool logprobs = false;
    std::vector<float> stage_inputs;
    std::unique_ptr<ContentFilter::Stream> filter;  // its rule matcher (--filter)
};

// FilterMark of a filter hit, and the more severe of two marks (reject > redact > flag).
FilterMark filter_mark(const FilterHit& h) {
    return {h.rule, filter_action_name(h.action), filter_where_name(h.where)};
}
int severity(const std::optional<FilterMark>& m) {
    if (!m) return 0;
    return m->action == "reject" ? 3 : m->action == "redact" ? 2 : 1;
}

// Per lane: the tokens of the step in flight, per sampled row (token, finished), and the send
// buffers, kept until their sends complete (act_send: nullptr once done or stream-ordered).
struct LaneIo {
    std::vector<int32_t> result;
    BackendBuffer act_out;  // [n_tokens, n_embd] in the model's backend memory, padded to whole slices
    std::unique_ptr<PendingSend> act_send;
    std::vector<int32_t> result_out;
    std::vector<std::unique_ptr<PendingSend>> result_sends;
};

class JobLoop final : public RequestSource, public SchedulerHooks {
public:
    JobLoop(PromptReader& reader, ResultWriter* writer, const ResultWriterOptions& format, const GenerateModel& m,
            Progress* progress, const GenerateJobOptions& o, const JobGrid& g)
        : reader_(reader),
          format_(format),
          m_(m),
          progress_(progress),
          o_(o),
          g_(g),
          n_vocab_(m.model.config().n_vocab),
          n_embd_(m.model.config().n_embd),
          eog_ids_(m.tokenizer.end_of_generation_ids()),
          out_(g, writer, progress),
          sched_(o.sched, m.kv, *this, this),
          lanes_(o.sched.lanes) {
        GRIDLM_ASSERT(g.stages == 1 || g.pp != nullptr);
        if (!g_.pp_act) g_.pp_act = g_.pp;
        if (!g_.tp_act) g_.tp_act = g_.tp;
        // Activations live in backend memory: a host-memory communicator can carry them only there.
        const bool host = m.model.backend().host_memory();
        GRIDLM_ASSERT(g_.stages == 1 || host || g_.pp_act->device_memory());
        GRIDLM_ASSERT(slices() == 1 || host || g_.tp_act->device_memory());
    }

    GenerateJobResult run() {
        const double t0 = now_s();
        StepEvents events;
        StepPlan plan;
        bool idle_pass = false;
        for (;;) {
            bool any = false;
            if (g_.writer() && ((o_.stop && o_.stop->load()) || breaker_tripped())) {
                result_.interrupted = true;
                break;
            }
            for (int lane = 0; lane < sched_.lanes(); ++lane) {
                if (sched_.pending(lane)) {
                    events.clear();
                    apply(lane, events);
                }
                if (!plan_lane(lane, plan)) continue;
                any = true;
                run_step(plan);
                out_.poll(false);
                if (o_.observer) {
                    collect_stats();
                    o_.observer->on_step(state());
                }
            }
            // No lane had a step: the end, unless sequences wait for blocks another lane freed in
            // this pass (Scheduler::done); a second idle pass in a row would be a scheduler bug.
            if (!any && sched_.done()) break;
            if (!any && idle_pass)
                throw Error(str("scheduler stalled: ", sched_.records_in_flight(), " records in flight, none can run"));
            idle_pass = !any;
        }
        collect_stats();
        result_.records_ok = out_.ok();
        result_.records_failed = out_.failed();
        result_.kinds = out_.kinds();
        result_.filter_hits = out_.filter_hits();
        if (result_.interrupted) {  // the writer stops alone; the caller ends the job
            result_.wall_s = now_s() - t0;
            if (o_.observer) o_.observer->on_end(state());
            return result_;
        }
        for (LaneIo& io : lanes_) {
            if (io.act_send) io.act_send->wait();
            for (auto& s : io.result_sends) s->wait();
        }
        out_.finish();
        if (g_.writer()) result_.missing = out_.missing(reader_, o_.done, 20);  // every record has a line?
        result_.records_ok = out_.ok();
        result_.records_failed = out_.failed();
        result_.wall_s = now_s() - t0;
        collect_stats();
        result_.kinds = out_.kinds();
        result_.filter_hits = out_.filter_hits();
        if (o_.observer) o_.observer->on_end(state());
        return result_;
    }

    // --- RequestSource: the next runnable request of this replica -----------------------------

    std::optional<Request> next() override {
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
            if (r.filter && r.filter->action == "reject") {
                reject_prompt(r);
                continue;
            }
            return r;
        }
    }

    // --- SchedulerHooks -----------------------------------------------------------------------

    void on_start(const Sequence& s, const Request& r) override {
        SeqState& st = seqs_[s.id];
        ++started_;
        if (!g_.last_stage()) return;
        const SamplingParams& p = r.params;
        if (s.choice == 0) {
            std::vector<Choice>& choices = records_[r.ref.index];
            choices.resize(p.n);
            for (int i = 0; i < p.n; ++i) choices[i].index = i;
        }
        const int64_t prompt_len = (int64_t)r.prompt_token_ids.size();
        const int32_t max_tokens = (int32_t)std::min<int64_t>(p.max_tokens, o_.sched.context - prompt_len);
        const uint64_t seed = request_seed(p.seed ? &*p.seed : nullptr, r.ref.id, o_.seed);
        // The sampler's EOS is covered by stop_token_ids (prepare() added every end token).
        const int32_t eos = p.ignore_eos ? -1 : m_.tokenizer.eos_id();
        st.sampler = std::make_unique<SequenceSampler>(p, r.prompt_token_ids, eos, choice_seed(seed, s.choice));
        st.stop = std::make_unique<StopChecker>(p, eos, max_tokens);
        st.detok = std::make_unique<StreamDecoder>(m_.tokenizer, DecodeOptions{.skip_special = true});
        st.logprobs = p.logprobs;
        if (o_.filter) st.filter = std::make_unique<ContentFilter::Stream>(o_.filter->stream());
    }

    // --preempt checkpoint: rebuilds a resumed sequence's KV on this stage alone, from the token
    // ids (first stage) or the stage inputs it kept, in prefill_chunk pieces; nothing is sent and
    // nothing sampled, so every stage restores at once instead of waiting for the stages before.
    void restore(const Sequence& s) override {
        const double t0 = now_s();
        const int64_t n = s.kv_tokens, chunk = std::max<int64_t>(1, o_.sched.prefill_chunk);
        const std::vector<float>& inputs = seqs_.at(s.id).stage_inputs;
        GRIDLM_ASSERT(g_.stage == 0 || (int64_t)inputs.size() == n * n_embd_);
        Backend& be = m_.model.backend();
        for (int64_t at = 0; at < n; at += chunk) {
            const int64_t take = std::min(chunk, n - at);
            ForwardBatch b;
            b.add(s.slot, std::span<const int32_t>(s.feed).subspan(at, take));
            const size_t rows = (size_t)(take * n_embd_);
            const float* x_in = nullptr;
            if (g_.stage > 0) {  // the kept inputs go back into backend memory
                reserve_activations(be, restore_in_, rows);
                be.copy_from_host(restore_in_.data(), inputs.data() + at * n_embd_, sizeof(float) * rows);
                x_in = restore_in_.f32();
            }
            float* out = nullptr;  // outputs are not used: logits (host) or activations (backend)
            if (g_.last_stage()) {
                scratch_.resize((size_t)n_vocab_);
                out = scratch_.data();
            } else {
                reserve_activations(be, restore_out_, rows);
                out = restore_out_.f32();
            }
            m_.model.forward_stage_in_backend(b, m_.kv, x_in, out);
        }
        result_.restore_s += now_s() - t0;
        trace(trace_restore, trace_cat_sched, t0, now_s(), -1, {{"tokens", n}});
    }

private:
    // Stage-boundary activations go whole, or as 1/tp slices re-gathered over TP on arrival.
    int slices() const { return o_.pp_slices && g_.tp != nullptr ? g_.tp->size() : 1; }
    size_t slice_len(int64_t n_tokens) const {
        const size_t total = (size_t)(n_tokens * n_embd_), k = (size_t)slices();
        return (total + k - 1) / k;
    }

    bool my_record(uint64_t index) const { return (int64_t)(index % (uint64_t)g_.replicas) == g_.replica; }

    // --max-error-rate (writer): enough records written, too many of them error lines.
    bool breaker_tripped() {
        if (o_.max_error_rate < 0) return false;
        const int64_t done = out_.written(), errors = out_.written_failed();
        if (done < o_.min_records || (double)errors <= o_.max_error_rate * (double)done) return false;
        result_.breaker = true;
        return true;
    }

    // Step 2, timed on the trace: admissions and preemptions show as their own spans.
    bool plan_lane(int lane, StepPlan& plan) {
        const double t0 = now_s();
        const int64_t started = started_, preempted = sched_.stats().preemptions;
        const bool any = sched_.plan(lane, plan);
        if (o_.tracer && (started_ > started || sched_.stats().preemptions > preempted)) {
            const bool preempting = sched_.stats().preemptions > preempted;
            o_.tracer->span(preempting ? trace_preemption : trace_admission, trace_cat_sched, t0 + clock_,
                            now_s() + clock_, lane,
                            {{"admitted", started_ - started}, {"preempted", sched_.stats().preemptions - preempted}});
        }
        return any;
    }

    JobLoopState state() const {
        JobLoopState s;
        s.result = &result_;
        s.running = (int64_t)seqs_.size();
        s.preempted = sched_.stats().preempted_now;
        s.records_in_flight = (int64_t)sched_.records_in_flight();
        if (g_.writer()) {
            s.kinds = &out_.kinds();
            s.filter_hits = &out_.filter_hits();
        }
        return s;
    }

    // A prompt a filter rule rejects: its line (no text, no tokens spent).
    void reject_prompt(const Request& r) {
        Completion c;
        c.ref = r.ref;
        c.filter = r.filter;
        const std::string filter = r.filter->action + "/" + r.filter->where;
        out_.emit(r.ref.index, RecordStatus{true, "filtered", filter}, 0, 0,
                  g_.reporter() ? format_completion(c, format_) : "");
    }

    void fail(const RecordError& e) {
        out_.emit(e.ref.index, RecordStatus{false, e.code.empty() ? "error" : e.code, ""}, 0, 0,
                  g_.reporter() ? format_error(e, format_) : "");
    }

    // Tokenizes and checks a request against the model and the scheduler's limits; nullopt when it
    // can run. Adds the model's end-of-generation tokens to its stop ids.
    std::optional<RecordError> prepare(Request& r) {
        auto error = [&](std::string code, std::string msg) {
            return RecordError{r.ref, std::move(code), std::move(msg)};
        };
        try {
            if (r.prompt_token_ids.empty()) {
                // The filter sees the text the model will: the rendered chat, before tokenizing.
                std::string text = r.ref.chat ? m_.chat.render(r.messages, r.chat_extras) : r.prompt;
                if (o_.filter) {
                    if (auto hit = o_.filter->apply_prompt(text)) {
                        r.filter = filter_mark(*hit);
                        if (hit->action == FilterAction::reject) return std::nullopt;
                    }
                }
                r.prompt_token_ids = r.ref.chat ? encode_chat_prompt(m_.tokenizer, text) : m_.tokenizer.encode(text);
            }
        } catch (const ChatTemplateError& e) {
            return error("chat_template", e.what());
        } catch (const Error& e) {
            return error("invalid_prompt", e.what());
        }
        if (r.prompt_token_ids.empty()) return error("invalid_prompt", "the prompt has no tokens");
        for (int32_t id : r.prompt_token_ids) {
            if (id < 0 || id >= n_vocab_)
                return error("invalid_prompt",
                             str("prompt token id ", id, " is outside the vocabulary (", n_vocab_, ")"));
        }
        for (int32_t id : r.params.stop_token_ids) {
            if (id >= n_vocab_)
                return error("invalid_field", str("stop token id ", id, " is outside the vocabulary (", n_vocab_, ")"));
        }
        if (auto e = sched_.check(r)) return e;
        if (!r.params.ignore_eos) {
            for (int32_t id : eog_ids_) {
                if (std::find(r.params.stop_token_ids.begin(), r.params.stop_token_ids.end(), id) ==
                    r.params.stop_token_ids.end())
                    r.params.stop_token_ids.push_back(id);
            }
        }
        return std::nullopt;
    }

    // Step 1 of a lane: the previous step's tokens (received on the earlier stages).
    void apply(int lane, StepEvents& events) {
        LaneIo& io = lanes_[lane];
        if (!g_.last_stage()) {
            io.result.resize((size_t)sched_.pending_samples(lane) * 2);
            g_.pp->recv(io.result.data(), io.result.size() * sizeof(int32_t), g_.stages - 1, tag_tokens);
        }
        sched_.apply(lane, io.result, events);
        for (SeqId id : events.finished_seqs) {
            auto it = seqs_.find(id);
            inputs_held_ -= (int64_t)(sizeof(float) * it->second.stage_inputs.size());
            seqs_.erase(it);
        }
        for (Request& r : events.finished_records) finish(r);
    }

    void finish(const Request& r) {
        Completion c;
        c.ref = r.ref;
        c.usage.prompt_tokens = (int64_t)r.prompt_token_ids.size();
        std::string line;
        auto it = records_.find(r.ref.index);
        if (g_.reporter()) {
            GRIDLM_ASSERT(it != records_.end());
            c.choices = std::move(it->second);
            c.logprobs = r.params.logprobs;
            c.filter = r.filter;
            for (const auto& ch : c.choices) {
                c.usage.completion_tokens += (int64_t)ch.token_ids.size();
                if (severity(ch.filter) > severity(c.filter)) c.filter = ch.filter;
            }
            line = format_completion(c, format_);
        }
        if (it != records_.end()) records_.erase(it);
        RecordStatus status;
        if (c.filter) {
            status.filter = c.filter->action + "/" + c.filter->where;
            if (c.filter->action == "reject") status.kind = "filtered";
        }
        out_.emit(c.ref.index, status, c.usage.prompt_tokens, c.usage.completion_tokens, line);
    }

    // Step 3: this rank's stage of the planned step.
    void run_step(const StepPlan& plan) {
        const ForwardBatch& batch = plan.batch;
        LaneIo& io = lanes_[plan.lane];
        const int64_t n = batch.n_tokens();
        const double t_start = now_s();
        double t_busy = 0.0;
        const float* x_in = nullptr;
        const nlohmann::ordered_json args = o_.tracer ? step_args(plan) : nlohmann::ordered_json();
        if (g_.stage > 0) {
            x_in = receive_activations(n);
            // A stream-ordered receive has returned at once; reading the inputs back for a
            // checkpoint waits for them, so that read is part of the receive's wait.
            if (o_.sched.preempt_checkpoint) keep_stage_inputs(plan);
            trace(trace_recv_wait, trace_cat_comm, t_start, now_s(), plan.lane, args);
        }
        double t0 = now_s();
        io.result.clear();
        if (!g_.last_stage()) {
            if (io.act_send) {
                io.act_send->wait();
                trace(trace_send_wait, trace_cat_comm, t0, now_s(), plan.lane, args);
                t0 = now_s();
            }
            const size_t part = slice_len(n);
            reserve_activations(m_.model.backend(), io.act_out, part * (size_t)slices());
            m_.model.forward_stage_in_backend(batch, m_.kv, x_in, io.act_out.f32());
            t_busy = now_s() - t0;
            trace(trace_forward, trace_cat_compute, t0, t0 + t_busy, plan.lane, args);
            // Every rank of the TP group holds the whole activations; with slices each sends its own part.
            const float* first = io.act_out.f32() + (slices() == 1 ? 0 : part * (size_t)g_.tp_rank);
            io.act_send = send_activations(*g_.pp_act, first, part, g_.stage + 1, tag_activations);
            result_.act_bytes_sent += (int64_t)(part * sizeof(float));
        } else {
            // Pinned on a GPU: the step's one read-back of logits runs at the link's full speed.
            logits_.reserve(m_.model.backend(), sizeof(float) * (size_t)batch.n_logit_rows() * n_vocab_);
            m_.model.forward_stage_in_backend(batch, m_.kv, x_in, logits_.f32());
            const double t_sample = now_s();
            trace(trace_forward, trace_cat_compute, t0, t_sample, plan.lane, args);
            for (size_t r = 0; r < plan.rows.size(); ++r) {
                if (!plan.sample[r]) continue;
                const auto [token, finished] = sample(*plan.rows[r], logits_.f32() + r * n_vocab_);
                io.result.push_back(token);
                io.result.push_back(finished ? 1 : 0);
            }
            t_busy = now_s() - t0;
            trace(trace_sampling, trace_cat_compute, t_sample, t0 + t_busy, plan.lane, args);
            if (g_.stages > 1) {
                const double t_wait = now_s();
                for (auto& s : io.result_sends) s->wait();
                if (!io.result_sends.empty()) trace(trace_send_wait, trace_cat_comm, t_wait, now_s(), plan.lane, args);
                io.result_sends.clear();
                io.result_out = io.result;
                result_.token_bytes_sent += (int64_t)(io.result_out.size() * sizeof(int32_t)) * (g_.stages - 1);
                for (int st = 0; st < g_.stages - 1; ++st)
                    io.result_sends.push_back(
                        g_.pp->isend(io.result_out.data(), io.result_out.size() * sizeof(int32_t), st, tag_tokens));
            }
        }
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

    // A span on the trace (steady-clock times of this loop, moved to the trace's clock).
    void trace(std::string_view name, std::string_view cat, double begin, double end, int lane,
               const nlohmann::ordered_json& args) {
        if (o_.tracer) o_.tracer->span(name, cat, begin + clock_, end + clock_, lane, args);
    }

    static nlohmann::ordered_json step_args(const StepPlan& plan) {
        int64_t prefill = 0;
        for (const ForwardSeq& s : plan.batch.seqs) prefill += s.n_tokens > 1 ? s.n_tokens : 0;
        return {{"micro_batch", plan.lane},
                {"tokens", plan.batch.n_tokens()},
                {"sequences", (int64_t)plan.batch.seqs.size()},
                {"prefill_tokens", prefill}};
    }

    // Stages after the first: the step's input activations from the previous stage, [n, n_embd],
    // in backend memory. A stream-ordered receive returns before they have arrived; the backend's
    // later work (and copy_to_host) sees them.
    const float* receive_activations(int64_t n) {
        const size_t part = slice_len(n);
        Backend& be = m_.model.backend();
        reserve_activations(be, act_in_, part * (size_t)slices());
        if (slices() == 1) {
            g_.pp_act->recv(act_in_.data(), part * sizeof(float), g_.stage - 1, tag_activations);
        } else {  // this rank's 1/tp slice, then the rest from the TP group
            reserve_activations(be, slice_in_, part);
            g_.pp_act->recv(slice_in_.data(), part * sizeof(float), g_.stage - 1, tag_activations);
            g_.tp_act->allgather(slice_in_.f32(), part, act_in_.f32());
        }
        return act_in_.f32();
    }

    // --preempt checkpoint: keeps each sequence's input rows, its checkpoint if it is preempted.
    void keep_stage_inputs(const StepPlan& plan) {
        host_in_.resize((size_t)(plan.batch.n_tokens() * n_embd_));
        m_.model.backend().copy_to_host(host_in_.data(), act_in_.data(), sizeof(float) * host_in_.size());
        int64_t row = 0;
        for (size_t r = 0; r < plan.rows.size(); ++r) {
            const int64_t k = plan.batch.seqs[r].n_tokens;
            auto& keep = seqs_.at(plan.rows[r]->id).stage_inputs;
            keep.insert(keep.end(), host_in_.begin() + row * n_embd_, host_in_.begin() + (row + k) * n_embd_);
            row += k;
        }
        inputs_held_ += (int64_t)sizeof(float) * plan.batch.n_tokens() * n_embd_;
        result_.checkpoint_bytes_peak = std::max(result_.checkpoint_bytes_peak, inputs_held_);
    }

    // Last stage: sampler -> detokenizer -> stop checks for one sequence's next token.
    std::pair<int32_t, bool> sample(const Sequence& s, float* logits) {
        SeqState& st = seqs_.at(s.id);
        Choice& ch = records_.at(s.record)[s.choice];
        const SampledToken sampled = st.sampler->sample(std::span<float>(logits, (size_t)n_vocab_));
        const int32_t token = sampled.token_id;
        ch.token_ids.push_back(token);
        if (st.logprobs) {
            TokenLogprob lp{token, m_.tokenizer.token_bytes(token), sampled.logprob, {}};
            for (const auto& [id, v] : sampled.top) lp.top.push_back({id, m_.tokenizer.token_bytes(id), v});
            ch.logprobs.push_back(std::move(lp));
        }
        const std::string piece = st.detok->push(token);
        const auto finished = st.stop->on_token(token, piece);
        if (st.filter && !finished) {  // a reject rule stops the sequence as soon as it matches
            // The stop checker's final text: what a stop string will cut never reaches the filter.
            if (auto hit = st.filter->push(st.stop->text())) {
                ch.finish_reason = FinishReason::finish_reason_content_filter;
                ch.text = st.stop->text();
                st.filter->finish(ch.text);  // cuts where the match starts, redacts the rest
                ch.filter = filter_mark(*hit);
                return {token, true};
            }
        }
        if (!finished) return {token, false};
        ch.finish_reason = *finished;
        ch.text = st.stop->finish(st.detok->flush());
        if (st.filter) {
            if (auto hit = st.filter->finish(ch.text)) {
                ch.filter = filter_mark(*hit);  // a reject has cut the text where its match starts
                if (hit->action == FilterAction::reject) ch.finish_reason = FinishReason::finish_reason_content_filter;
            }
        }
        return {token, true};
    }

    void collect_stats() {
        const SchedulerStats& s = sched_.stats();
        result_.preemptions = s.preemptions;
        result_.recomputed_tokens = s.recomputed_tokens;
        result_.tokens_generated = s.tokens_generated;
        result_.records_written = out_.written();
        result_.records_written_failed = out_.written_failed();
    }

    PromptReader& reader_;
    const ResultWriterOptions& format_;
    const GenerateModel& m_;
    Progress* progress_;
    GenerateJobOptions o_;
    JobGrid g_;
    int64_t n_vocab_, n_embd_;
    std::vector<int32_t> eog_ids_;
    ResultRouter out_;
    Scheduler sched_;
    std::vector<LaneIo> lanes_;
    std::unordered_map<SeqId, SeqState> seqs_;
    std::map<uint64_t, std::vector<Choice>> records_;  // last stage: the choices of records in flight
    HostBuffer logits_;                                // [rows, n_vocab] of the last step (last stage)
    BackendBuffer act_in_;                             // activations from the previous stage (backend memory)
    BackendBuffer slice_in_;                           // this rank's slice of them (--pp-slices)
    std::vector<float> host_in_;                       // act_in_ read back for --preempt checkpoint
    BackendBuffer restore_in_, restore_out_;           // a checkpoint restore's inputs and outputs
    std::vector<float> scratch_;                       // last stage: a restore's logits (not used)
    int64_t inputs_held_ = 0;                          // bytes of stage inputs kept for checkpoints
    int64_t started_ = 0;                              // sequences started (admitted or restarted)
    double clock_ = Tracer::now_s() - now_s();         // trace clock minus this loop's clock
    GenerateJobResult result_;
};

}  // namespace

GenerateJobResult run_generate_job(PromptReader& reader, ResultWriter* writer, const ResultWriterOptions& format,
                                   const GenerateModel& m, Progress* progress, const GenerateJobOptions& options,
                                   const JobGrid& grid) {
    return JobLoop(reader, writer, format, m, progress, options, grid).run();
}

}  // namespace gridlm
