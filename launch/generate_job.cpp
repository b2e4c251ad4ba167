// The generate job loop (see generate_job.h). Static batching: a batch is filled with up to
// batch_size sequences, prefilled in chunks, decoded until every sequence has finished (each
// record written as soon as all its choices are done), and then the next batch starts.
#include "launch/generate_job.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>
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

namespace gridlm {
namespace {

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

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

struct Sequence;

// A request in the current batch and its n sequences.
struct Active {
    Request req;
    std::vector<Choice> choices;
    int remaining = 0;
};

struct Sequence {
    Active* owner = nullptr;
    int choice = 0;
    int slot = 0;
    int64_t prompt_done = 0;  // prompt tokens already in the KV cache
    std::unique_ptr<SequenceSampler> sampler;
    std::unique_ptr<StopChecker> stop;
    std::unique_ptr<StreamDecoder> detok;
    int32_t next_token = -1;  // fed at the next decode step
    bool done = false;
};

class JobLoop {
public:
    JobLoop(PromptReader& reader, ResultWriter& writer, const GenerateModel& m, Progress& progress,
            const GenerateJobOptions& o)
        : reader_(reader),
          writer_(writer),
          m_(m),
          progress_(progress),
          o_(o),
          n_vocab_(m.model.config().n_vocab),
          eog_ids_(end_of_generation_ids(m.tokenizer)) {
        GRIDLM_ASSERT(o.batch_size >= 1 && o.context >= 2 && m.kv.n_slots() >= o.batch_size);
        max_prompt_ = o.max_prompt_tokens > 0 ? std::min(o.max_prompt_tokens, o.context - 1) : o.context - 1;
    }

    GenerateJobResult run() {
        for (;;) {
            fill_batch();
            if (seqs_.empty()) break;
            prefill();
            while (decode_step()) {
            }
            actives_.clear();
            seqs_.clear();
        }
        return result_;
    }

private:
    void fail(const RecordError& e) {
        writer_.write(e);
        progress_.record_done(false);
        ++result_.records_failed;
        progress_.tick();
    }

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
            if (id >= n_vocab_)
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
        if (r.params.n > o_.batch_size) {
            return error("invalid_field", str("n=", r.params.n, " is larger than --batch-size=", o_.batch_size));
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

    void fill_batch() {
        int n_seqs = 0;
        while (n_seqs < o_.batch_size) {
            // With --order input, results read past an unfinished record wait in the writer;
            // run the batch before that buffer fills (a long run of bad records).
            if (writer_.buffered() + 1 >= writer_.max_buffered()) break;
            Request r;
            if (carry_) {
                r = std::move(*carry_);
                carry_.reset();
            } else {
                auto rec = reader_.next();
                if (!rec) break;
                if (auto* e = std::get_if<RecordError>(&*rec)) {
                    fail(*e);
                    continue;
                }
                r = std::move(std::get<Request>(*rec));
                if (auto e = prepare(r)) {
                    fail(*e);
                    continue;
                }
            }
            if (n_seqs + r.params.n > o_.batch_size) {  // the next batch takes it whole
                carry_ = std::move(r);
                break;
            }
            start(std::move(r), n_seqs);
            n_seqs += actives_.back()->req.params.n;
        }
    }

    void start(Request r, int first_slot) {
        auto a = std::make_unique<Active>();
        a->req = std::move(r);
        const SamplingParams& p = a->req.params;
        const int64_t prompt_len = (int64_t)a->req.prompt_token_ids.size();
        const int32_t max_tokens = (int32_t)std::min<int64_t>(p.max_tokens, o_.context - prompt_len);
        const uint64_t seed = request_seed(p.seed ? &*p.seed : nullptr, a->req.ref.id, o_.seed);
        a->choices.resize(p.n);
        a->remaining = p.n;
        // The sampler's EOS is covered by stop_token_ids (prepare() added every end token).
        const int32_t eos = p.ignore_eos ? -1 : m_.tokenizer.eos_id();
        for (int i = 0; i < p.n; ++i) {
            a->choices[i].index = i;
            auto s = std::make_unique<Sequence>();
            s->owner = a.get();
            s->choice = i;
            s->slot = first_slot + i;
            s->sampler = std::make_unique<SequenceSampler>(p, a->req.prompt_token_ids, eos, choice_seed(seed, i));
            s->stop = std::make_unique<StopChecker>(p, eos, max_tokens);
            s->detok = std::make_unique<StreamDecoder>(m_.tokenizer, DecodeOptions{.skip_special = true});
            m_.kv.clear(s->slot);
            seqs_.push_back(std::move(s));
        }
        actives_.push_back(std::move(a));
    }

    // Runs every prompt through the model in steps of at most prefill_chunk tokens; a sequence's
    // first token is sampled from the step that completes its prompt.
    void prefill() {
        size_t next = 0;  // first sequence whose prompt is not fully scheduled
        while (next < seqs_.size()) {
            ForwardBatch batch;
            std::vector<Sequence*> rows;  // logits row -> sequence, only for completed prompts
            std::vector<bool> completes;
            int64_t budget = std::max<int64_t>(1, o_.prefill_chunk);
            for (size_t i = next; i < seqs_.size() && budget > 0; ++i) {
                Sequence& s = *seqs_[i];
                const auto& prompt = s.owner->req.prompt_token_ids;
                const int64_t take = std::min<int64_t>(budget, (int64_t)prompt.size() - s.prompt_done);
                batch.add(s.slot, std::span<const int32_t>(prompt).subspan(s.prompt_done, take));
                s.prompt_done += take;
                budget -= take;
                rows.push_back(&s);
                completes.push_back(s.prompt_done == (int64_t)prompt.size());
                if (completes.back()) next = i + 1;
            }
            logits_.resize((size_t)batch.n_logit_rows() * n_vocab_);
            const double t0 = now_s();
            m_.model.forward(batch, m_.kv, logits_.data());
            progress_.add_prefill(batch.n_tokens(), now_s() - t0);
            for (size_t r = 0; r < rows.size(); ++r) {
                if (completes[r]) on_logits(*rows[r], &logits_[r * n_vocab_]);
            }
            progress_.tick();
        }
    }

    // One decode step over the unfinished sequences; false when none is left.
    bool decode_step() {
        ForwardBatch batch;
        std::vector<Sequence*> rows;
        for (auto& s : seqs_) {
            if (s->done) continue;
            batch.add(s->slot, std::span<const int32_t>(&s->next_token, 1));
            rows.push_back(s.get());
        }
        if (rows.empty()) return false;
        logits_.resize(rows.size() * n_vocab_);
        const double t0 = now_s();
        m_.model.forward(batch, m_.kv, logits_.data());
        progress_.add_decode(batch.n_tokens(), now_s() - t0);
        for (size_t r = 0; r < rows.size(); ++r) on_logits(*rows[r], &logits_[r * n_vocab_]);
        progress_.tick();
        return true;
    }

    // Sampler -> detokenizer -> stop checks for one sequence's next token.
    void on_logits(Sequence& s, float* logits) {
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
        if (!finished) {
            s.next_token = token;
            return;
        }
        s.done = true;
        ch.finish_reason = *finished;
        ch.text = s.stop->finish(s.detok->flush());
        m_.kv.clear(s.slot);
        if (--a.remaining == 0) finish(a);
    }

    void finish(const Active& a) {
        Completion c;
        c.ref = a.req.ref;
        c.choices = a.choices;
        c.logprobs = a.req.params.logprobs;
        c.usage.prompt_tokens = (int64_t)a.req.prompt_token_ids.size();
        for (const auto& ch : c.choices) c.usage.completion_tokens += (int64_t)ch.token_ids.size();
        writer_.write(c);
        progress_.record_done(true, c.usage.prompt_tokens, c.usage.completion_tokens);
        ++result_.records_ok;
    }

    PromptReader& reader_;
    ResultWriter& writer_;
    const GenerateModel& m_;
    Progress& progress_;
    GenerateJobOptions o_;
    int64_t n_vocab_;
    int64_t max_prompt_ = 0;
    std::vector<int32_t> eog_ids_;
    std::optional<Request> carry_;  // prepared, did not fit the last batch
    std::vector<std::unique_ptr<Active>> actives_;
    std::vector<std::unique_ptr<Sequence>> seqs_;
    std::vector<float> logits_;  // [rows, n_vocab] of the last step
    GenerateJobResult result_;
};

}  // namespace

GenerateJobResult run_generate_job(PromptReader& reader, ResultWriter& writer, const GenerateModel& m,
                                   Progress& progress, const GenerateJobOptions& options) {
    return JobLoop(reader, writer, m, progress, options).run();
}

}  // namespace gridlm
