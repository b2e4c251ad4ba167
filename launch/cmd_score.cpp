// `gridlm score`: log-probabilities of given text under a checkpoint. --text FILE: perplexity over
// non-overlapping windows as llama.cpp's perplexity tool computes it, printed as one JSON line;
// --prompts FILE: each record's prompt log-probabilities, one JSONL line per record. Runs as one
// MPI rank of a dp x pp x tp grid (launch/score_job.h has the loop and the formulas).
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <variant>
#include <vector>

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include "engine/core/error.h"
#include "engine/core/log.h"
#include "engine/kv/kv_cache.h"
#include "engine/model/model.h"
#include "engine/tokenizer/tokenizer.h"
#include "io/output_lock.h"
#include "io/prompt_reader.h"
#include "io/result_writer.h"
#include "launch/chat_prompt.h"
#include "launch/cli_options.h"
#include "launch/commands.h"
#include "launch/grid_options.h"
#include "launch/job_backend.h"
#include "launch/job_watchdog.h"
#include "launch/metrics.h"
#include "launch/open_checkpoint.h"
#include "launch/prepare_output.h"
#include "launch/progress.h"
#include "launch/result_router.h"
#include "launch/score_job.h"
#include "parallel/mpi_communicator.h"
#include "parallel/mpi_env.h"
#include "parallel/topology.h"

namespace gridlm {
namespace {

namespace po = boost::program_options;
namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

const char* usage_head =
    "usage: gridlm score --model M --text FILE [--ctx 512] [options]\n"
    "       gridlm score --model M --prompts FILE --output OUT.jsonl [options]\n\n"
    "--text FILE: the perplexity of the model on the text, computed as llama.cpp's perplexity tool\n"
    "does: the whole file (one trailing newline dropped) is tokenized once (BOS first when the\n"
    "checkpoint asks for one), cut into non-overlapping windows of --ctx tokens (a tail shorter than\n"
    "a window is dropped; at least two windows are needed), each window is evaluated from scratch with\n"
    "BOS in its first position (when the checkpoint adds BOS), and the tokens of its second half after\n"
    "position ctx/2 are scored. perplexity = exp(mean negative log-likelihood); stderr is its standard\n"
    "error, perplexity * sqrt(var / (count - 1)). A line per window goes to stderr:\n"
    "  [window 3/19] ppl 12.3456 (+/- 0.2345), 1520 tokens/s\n"
    "and the last line of stdout is one JSON object: {\"model\", \"ctx\", \"windows\", \"tokens\",\n"
    "\"tokens_scored\", \"nll_mean\", \"perplexity\", \"stderr\", \"seconds\", \"tok_per_s\", ...}.\n\n"
    "--prompts FILE: FILE is read as by gridlm generate (txt, JSONL with \"prompt\", \"messages\" or token\n"
    "ids, OpenAI batch input; sampling fields are read and ignored). Each record's tokens (BOS and\n"
    "chat template as generate applies them) are scored and OUT.jsonl gets one line per record:\n"
    "  {\"id\", \"prompt_token_ids\": [...], \"prompt_logprobs\": [{\"token_id\", \"token\", \"logprob\"}, ...],\n"
    "   \"total_logprob\", \"tokens_scored\", \"perplexity\", \"usage\": {\"prompt_tokens\"}}\n"
    "where prompt_logprobs has one entry per token after the first: log p(token | the tokens before\n"
    "it), natural log. A record that cannot be scored (bad JSON, fewer than 2 tokens, more than --ctx)\n"
    "gives {\"id\", \"line\", \"error\"} and the job goes on. An existing OUT is never overwritten.\n"
    "A record with a \"completion\" (a string, tokenized alone without BOS, or an array of token ids)\n"
    "has only the completion scored, after the prompt's tokens (chat records rendered as generate\n"
    "renders them, generation prompt included), and its line is\n"
    "  {\"id\", \"prompt_token_ids\", \"completion_token_ids\", \"completion_logprobs\": [{\"token_id\", \"token\",\n"
    "   \"logprob\"}, ...], \"total_logprob\", \"mean_logprob\", \"tokens_scored\", \"perplexity\",\n"
    "   \"usage\": {\"prompt_tokens\", \"completion_tokens\"}}\n"
    "with one entry per completion token: log p(token | prompt and the completion before it). Fed\n"
    "the token ids of a generate line's \"logprobs\", mean_logprob is the mean of its logprobs.\n\n"
    "Grid: under `mpirun -n D*P*T gridlm score ... --dp D --pp P --tp T` the ranks form D replicas that\n"
    "split the windows (records), each of P pipeline stages of T tensor-parallel ranks, as in gridlm\n"
    "generate; the result equals a single rank's up to float rounding.\n\n"
    "exit status: 0 done; 3 (--prompts) some records failed (see their error lines); 2 usage error;\n"
    "             7 stopped by --watchdog-s (a rank was silent or none made progress; see the message);\n"
    "             1 fatal error (missing or too short text, unreadable model, unwritable output)\n\n"
    "options";

// The file's bytes, one trailing newline dropped (as llama.cpp's -f reads a prompt file).
std::string read_text(const std::string& path) {
    std::error_code ec;
    if (fs::is_directory(path, ec)) throw Error(str("cannot read text file ", path, ": it is a directory"));
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(str("cannot open text file ", path));
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (in.bad()) throw Error(str("cannot read text file ", path));
    if (!text.empty() && text.back() == '\n') text.pop_back();
    return text;
}

// Turns the replica's records into score units; a record that cannot be scored becomes an error
// line at once (every rank counts it, the reporter writes it).
class RecordUnits {
public:
    RecordUnits(PromptReader& reader, const Tokenizer& tok, const ChatPrompter& chat, ResultRouter& out,
                const ResultWriterOptions& format, const JobGrid& g, int64_t max_tokens, int64_t n_vocab)
        : reader_(reader),
          tok_(tok),
          chat_(chat),
          out_(out),
          format_(format),
          g_(g),
          max_tokens_(max_tokens),
          n_vocab_(n_vocab) {}

    std::optional<ScoreUnit> next() {
        for (;;) {
            out_.poll(false);
            auto rec = reader_.next();
            if (!rec) return std::nullopt;
            if (auto* e = std::get_if<RecordError>(&*rec)) {
                if (mine(e->ref.index)) fail(*e);
                continue;
            }
            Request& r = std::get<Request>(*rec);
            if (!mine(r.ref.index)) continue;
            if (auto e = tokenize(r)) {
                fail(*e);
                continue;
            }
            if (!r.has_completion) return ScoreUnit{r.ref, std::move(r.prompt_token_ids), 0};
            // Only the completion is scored: from the logits at the prompt's last position on.
            const auto n_prompt = (int64_t)r.prompt_token_ids.size();
            completion_prompt_len_[r.ref.index] = n_prompt;
            r.prompt_token_ids.insert(r.prompt_token_ids.end(), r.completion_token_ids.begin(),
                                      r.completion_token_ids.end());
            return ScoreUnit{r.ref, std::move(r.prompt_token_ids), n_prompt - 1};
        }
    }

    // Reporter: the record's line.
    void done(const ScoreUnit& u, std::span<const double> logprobs) {
        if (auto it = completion_prompt_len_.find(u.ref.index); it != completion_prompt_len_.end()) {
            const int64_t n_prompt = it->second;
            completion_prompt_len_.erase(it);
            done_completion(u, n_prompt, logprobs);
            return;
        }
        json lps = json::array();
        double total = 0.0;
        for (size_t i = 0; i < logprobs.size(); ++i) {
            const int32_t id = u.tokens[i + 1];
            lps.push_back({{"token_id", id}, {"token", tok_.token_bytes(id)}, {"logprob", (float)logprobs[i]}});
            total += logprobs[i];
        }
        const auto scored = (int64_t)logprobs.size(), n = (int64_t)u.tokens.size();
        json j = {{"id", u.ref.id},
                  {"prompt_token_ids", u.tokens},
                  {"prompt_logprobs", std::move(lps)},
                  {"total_logprob", total},
                  {"tokens_scored", scored},
                  {"perplexity", std::exp(-total / (double)scored)},
                  {"usage", {{"prompt_tokens", n}}}};
        out_.emit(u.ref.index, RecordStatus{}, n, 0, j.dump(-1, ' ', false, json::error_handler_t::replace));
    }

private:
    bool mine(uint64_t index) const { return (int64_t)(index % (uint64_t)g_.replicas) == g_.replica; }

    // A record with a "completion": its line has the completion's log-probabilities only.
    void done_completion(const ScoreUnit& u, int64_t n_prompt, std::span<const double> logprobs) {
        json lps = json::array();
        double total = 0.0;
        for (size_t i = 0; i < logprobs.size(); ++i) {
            const int32_t id = u.tokens[(size_t)n_prompt + i];
            lps.push_back({{"token_id", id}, {"token", tok_.token_bytes(id)}, {"logprob", (float)logprobs[i]}});
            total += logprobs[i];
        }
        const auto scored = (int64_t)logprobs.size();
        const std::span<const int32_t> all(u.tokens);
        json j = {{"id", u.ref.id},
                  {"prompt_token_ids", all.first((size_t)n_prompt)},
                  {"completion_token_ids", all.subspan((size_t)n_prompt)},
                  {"completion_logprobs", std::move(lps)},
                  {"total_logprob", total},
                  {"mean_logprob", total / (double)scored},
                  {"tokens_scored", scored},
                  {"perplexity", std::exp(-total / (double)scored)},
                  {"usage", {{"prompt_tokens", n_prompt}, {"completion_tokens", scored}}}};
        out_.emit(u.ref.index, RecordStatus{}, n_prompt, scored,
                  j.dump(-1, ' ', false, json::error_handler_t::replace));
    }

    void fail(const RecordError& e) {
        out_.emit(e.ref.index, RecordStatus{false, e.code.empty() ? "error" : e.code, ""}, 0, 0,
                  g_.reporter() ? format_error(e, format_) : "");
    }

    std::optional<RecordError> tokenize(Request& r) const {
        auto error = [&](const char* code, std::string msg) { return RecordError{r.ref, code, std::move(msg)}; };
        try {
            if (r.prompt_token_ids.empty())
                r.prompt_token_ids = r.ref.chat ? chat_.encode(tok_, r.messages, r.chat_extras) : tok_.encode(r.prompt);
        } catch (const ChatTemplateError& e) {
            return error("chat_template", e.what());
        } catch (const Error& e) {
            return error("invalid_prompt", e.what());
        }
        const auto n = (int64_t)r.prompt_token_ids.size();
        for (int32_t id : r.prompt_token_ids)
            if (id < 0 || id >= n_vocab_)
                return error("invalid_prompt",
                             str("prompt token id ", id, " is outside the vocabulary (", n_vocab_, ")"));
        if (r.has_completion) return tokenize_completion(r);
        if (n < 2)
            return error("invalid_prompt", str("the prompt has ", n, " token", n == 1 ? "" : "s",
                                               "; scoring needs at least 2 (every token after the first is scored)"));
        if (n > max_tokens_)
            return error("prompt_too_long",
                         str("the prompt has ", n, " tokens; at most ", max_tokens_, " fit (--ctx)"));
        return std::nullopt;
    }

    // The completion's tokens: given ids as they are, text tokenized alone (no BOS; control-token
    // text matched as in prompts), to follow the prompt's tokens.
    std::optional<RecordError> tokenize_completion(Request& r) const {
        auto error = [&](const char* code, std::string msg) { return RecordError{r.ref, code, std::move(msg)}; };
        if (r.completion_token_ids.empty()) {
            try {
                r.completion_token_ids = tok_.encode(r.completion, EncodeOptions{.add_bos = false});
            } catch (const Error& e) {
                return error("invalid_completion", e.what());
            }
        }
        for (int32_t id : r.completion_token_ids)
            if (id < 0 || id >= n_vocab_)
                return error("invalid_completion",
                             str("completion token id ", id, " is outside the vocabulary (", n_vocab_, ")"));
        const auto n = (int64_t)(r.prompt_token_ids.size() + r.completion_token_ids.size());
        if (r.prompt_token_ids.empty() || r.completion_token_ids.empty())
            return error("invalid_prompt", "scoring a completion needs at least one prompt and one completion token");
        if (n > max_tokens_)
            return error("prompt_too_long",
                         str("the prompt and completion have ", n, " tokens; at most ", max_tokens_, " fit (--ctx)"));
        return std::nullopt;
    }

    PromptReader& reader_;
    const Tokenizer& tok_;
    const ChatPrompter& chat_;
    ResultRouter& out_;
    const ResultWriterOptions& format_;
    JobGrid g_;
    int64_t max_tokens_, n_vocab_;
    std::unordered_map<uint64_t, int64_t> completion_prompt_len_;  // record index -> prompt tokens, in flight
};

int run_score(const std::vector<std::string>& args) {
    po::options_description opts(usage_head);
    // clang-format off
    opts.add_options()
        ("help,h", "show this help")
        ("model,m", po::value<std::string>(), "checkpoint: gridlm .h5, .gguf or Hugging Face model directory (required)")
        ("text,f", po::value<std::string>(), "text file to compute the perplexity of (this or --prompts)")
        ("prompts,p", po::value<std::string>(), "prompts file to score record by record, '-' for standard input")
        ("output,o", po::value<std::string>(), "with --prompts: output JSONL file, '-' for standard output (required)")
        ("ctx,c", po::value<int64_t>()->default_value(0),
         "--text: tokens per window (>= 3; 0 = 512, llama.cpp's default); --prompts: tokens per record at "
         "most (0 = the model's training context)")
        ("batch-tokens", po::value<int64_t>()->default_value(512),
         "tokens per model step at most (windows and records are packed together, long ones split)")
        ("max-seqs", po::value<int>()->default_value(8), "sequences in one step at most")
        ("input-format", po::value<std::string>()->default_value("auto"),
         "--prompts: auto (.txt extension, else up to 64 sampled lines), txt, jsonl or openai")
        ("order", po::value<std::string>()->default_value("finished"),
         "--prompts: finished (each record when scored) or input (in input order)")
        ("chat-template", po::value<std::string>(),
         "--prompts: Jinja chat template file rendering 'messages' records instead of the checkpoint's own")
        ("threads", po::value<int>()->default_value(0), "CPU threads per rank; 0 = the cores this rank may use")
        ("dtype", po::value<std::string>()->default_value("auto"),
         "weight matrices in memory: auto (as the checkpoint stores them; bf16 on the cuda backend), f32, bf16 "
         "or f16 (as gridlm generate)");
    add_backend_options(opts);
    // Scoring keeps the KV cache in f32 unless asked: bf16 rounding moves a perplexity by ~0.1%.
    opts.add_options()("kv-cache-dtype", po::value<std::string>()->default_value("f32"),
                       "element type of the KV cache: f32, bf16 or f16 (half the memory, less exact scores)");
    add_grid_options(opts, "window or record");
    opts.add_options()
        ("watchdog-s", po::value<double>()->default_value(300),
         "multi-rank jobs: end the job (exit 7) when a rank sends no heartbeat for this many seconds or no "
         "rank makes progress for as long, naming the rank (as gridlm generate); 0 = off, else 1 to 1e6")
        ("progress-interval", po::value<double>()->default_value(10.0),
         "--prompts: seconds between progress lines when stderr is not a terminal")
        ("quiet,q", po::bool_switch(), "no per-window or progress lines (the result line is still printed)");
    // clang-format on
    add_log_options(opts);

    const po::variables_map vm = parse_options(args, opts);
    if (vm.count("help")) {
        std::cout << opts << "\n";
        return exit_ok;
    }
    apply_log_options(vm);
    require_options(vm, {"model"});
    const bool text_mode = vm.count("text") != 0;
    if (text_mode == (vm.count("prompts") != 0)) throw UsageError("give one of --text and --prompts");
    if (text_mode && vm.count("output")) throw UsageError("--output goes with --prompts (--text prints one JSON line)");
    if (!text_mode) require_options(vm, {"output"});
    int64_t ctx = vm["ctx"].as<int64_t>();
    if (text_mode && ctx == 0) ctx = 512;
    if (text_mode && ctx < 3)
        throw UsageError(str("--ctx ", ctx, ": a window needs at least 3 tokens (its tokens after ctx/2 are scored)"));
    if (!text_mode && (ctx < 0 || ctx == 1))
        throw UsageError(str("--ctx ", ctx, ": with --prompts give 0 (the model's context) or at least 2 tokens"));
    ScoreJobOptions job;
    job.batch_tokens = vm["batch-tokens"].as<int64_t>();
    job.max_seqs = vm["max-seqs"].as<int>();
    if (job.batch_tokens < 1) throw UsageError("--batch-tokens must be >= 1");
    if (job.max_seqs < 1 || job.max_seqs > 4096) throw UsageError("--max-seqs must be in [1, 4096]");
    const int threads = vm["threads"].as<int>();
    if (threads < 0) throw UsageError("--threads must be >= 0");
    const BackendSettings backend_settings = backend_settings_from(vm);
    std::string backend_why;  // why --backend auto chose the CPU, when it did
    const std::string backend_name = resolve_backend(backend_settings.name, &backend_why);
    const WeightPolicy weight_policy =
        weight_policy_for(backend_name, weight_policy_option(vm["dtype"].as<std::string>()));
    const DType kv_dtype = kv_cache_dtype_from(vm);
    const double watchdog_s = vm["watchdog-s"].as<double>();
    if (!(watchdog_s == 0 || (watchdog_s >= 1 && watchdog_s <= 1e6)))
        throw UsageError(str("--watchdog-s ", watchdog_s, " must be 0 (off) or a number of seconds from 1 to 1e6"));
    const GridOptions grid_opts = grid_options_from(vm);
    const GridShape shape = grid_opts.shape;
    ResultWriterOptions wopts;
    PromptReaderOptions ropts;
    try {
        wopts.order = output_order_from_name(vm["order"].as<std::string>());
        ropts.format = input_format_from_name(vm["input-format"].as<std::string>());
    } catch (const Error& e) {
        throw UsageError(e.what());
    }
    const bool quiet = vm["quiet"].as<bool>();
    const std::string model_path = vm["model"].as<std::string>();
    const std::string input = text_mode ? vm["text"].as<std::string>() : vm["prompts"].as<std::string>();
    const std::string output = text_mode ? "" : vm["output"].as<std::string>();

    MpiEnv mpi(nullptr, nullptr, watchdog_s > 0);  // the watchdog's thread needs MPI_THREAD_MULTIPLE
    std::unique_ptr<Topology> topo;
    GridCoord me;
    JobGrid grid;
    OpenedCheckpoint ck;
    std::vector<int64_t> stage_layers;
    TpSplitTypes split_types;
    std::string text;
    std::unique_ptr<OutputLock> output_lock;  // the writer's, held until the job ends
    // The backend first: a rank without its GPU stops the job before any output is prepared.
    std::shared_ptr<Backend> backend;
    std::unique_ptr<Communicator> tp_device;  // NCCL on the backend's stream (cuda, tp > 1)
    std::unique_ptr<Communicator> pp_device;  // the same for the pipeline's activations (cuda, pp > 1)
    collective_phase(mpi, "score", [&] {
        check_same_backend(mpi, backend_name);
        backend = make_rank_backend(backend_name, backend_settings, threads, mpi);
    });
    collective_phase(mpi, "score", [&] { check_distinct_gpus(mpi, *backend); });
    collective_phase(mpi, "score", [&] {
        topo = std::make_unique<Topology>(shape, mpi.size());
        me = topo->coord_of(mpi.rank());
        log_set_context({mpi.rank(), mpi.size(), mpi.host(), me.dp, me.pp, me.tp});
        grid.replica = me.dp;
        grid.replicas = shape.dp;
        grid.stage = me.pp;
        grid.stages = shape.pp;
        grid.tp_rank = me.tp;
        if (text_mode) {
            text = read_text(input);
        } else if (input != "-") {
            std::ifstream probe(input);
            if (!probe || fs::is_directory(input)) throw Error(str("cannot open prompts file ", input));
        }
        ck = open_checkpoint(model_path);
        split_types = weight_split_types(ck, weight_policy);
        check_tensor_parallel(ck.config, shape.tp, split_types);
        stage_layers = pipeline_layers(ck.config, shape.pp, grid_opts.pp_layers);
        if (!text_mode && ctx == 0) ctx = ck.config.n_ctx_train;
        if (ctx < 2) throw Error("the checkpoint does not state its context length; give --ctx");
        if (grid.writer() && !text_mode) {
            check_output_writable(output);
            if (output != "-") output_lock = OutputLock::acquire(output, default_job_id());
            std::error_code ec;
            if (output != "-" && fs::exists(output, ec) && fs::file_size(output, ec) > 0)
                throw Error(str("output ", output, " already exists; remove it or choose another --output"));
        }
    });
    GridComms comms = make_grid_comms(*topo);
    grid.world = comms.world.get();
    grid.tp = comms.tp.get();
    grid.pp = comms.pp.get();
    grid.dp = comms.dp.get();
    std::unique_ptr<Tokenizer> tokenizer;
    std::unique_ptr<ChatPrompter> chat;
    std::unique_ptr<Model> model;
    std::unique_ptr<KvCache> kv;
    std::vector<int32_t> tokens;  // --text: the whole text
    int64_t n_windows = 0;
    collective_phase(mpi, "score", [&] {
        tokenizer = std::make_unique<Tokenizer>(ck.tokenizer);
        const std::string chat_template_path = vm.count("chat-template") ? vm["chat-template"].as<std::string>() : "";
        chat = std::make_unique<ChatPrompter>(
            ck.tokenizer, chat_template_path.empty() ? std::string() : read_chat_template_file(chat_template_path),
            str("file '", chat_template_path, "'"));
        if (text_mode) {
            // As llama.cpp's perplexity tool: special-token text is read as plain text.
            tokens = tokenizer->encode(text, EncodeOptions{.add_bos = true, .parse_special = false});
            if ((int64_t)tokens.size() < 2 * ctx)
                throw Error(str("text file ", input, " has ", tokens.size(), " tokens; a perplexity with --ctx ", ctx,
                                " needs at least ", 2 * ctx, " (two windows)"));
            n_windows = (int64_t)tokens.size() / ctx;
        }
        tp_device = device_tp_communicator(*backend, *comms.tp);  // tp first, then pp, on every rank
        pp_device = device_pp_communicator(*backend, *comms.pp);
        const ModelShard shard = ModelShard::of(ck.config, stage_layers, me.pp, shape.tp, me.tp, split_types);
        model = std::make_unique<Model>(ck.config, *ck.weights, weight_policy, backend, shard,
                                        tp_device ? tp_device.get() : comms.tp.get());
        ck.weights.reset();
        ck.gguf.reset();
        kv = model->make_kv_cache(job.max_seqs, ctx, kv_dtype);
    });
    if (mpi.rank() == 0 && !quiet)
        log_info("backend", backend_note(*backend, weight_policy, backend_why, backend_settings),
                 {{"backend", backend->name()}});
    grid.pp_act = pp_device ? pp_device.get() : comms.pp.get();
    grid.tp_act = tp_device ? tp_device.get() : comms.tp.get();
    const bool writer = grid.writer();
    if (writer && !quiet) {
        const std::string weights = weight_types_text(model->weight_bytes_by_type());
        const std::string kv_name(dtype_name(kv_dtype));
        const std::string start = str(ck.name, " (", ck.config.arch, "; weights ", weights, "; KV ", kv_name, "), ",
                                      text_mode ? "window" : "record tokens at most", " ", ctx, ", grid ", shape.dp,
                                      "x", shape.pp, "x", shape.tp);
        log_event_as(LogLevel::info, "start", "gridlm score: " + start, start,
                     {{"model", ck.name},
                      {"arch", ck.config.arch},
                      {"weights", weights},
                      {"kv_cache_dtype", kv_name},
                      {"mode", text_mode ? "text" : "prompts"},
                      {"ctx", ctx},
                      {"grid", {{"dp", shape.dp}, {"pp", shape.pp}, {"tp", shape.tp}}}});
        if (ck.config.n_ctx_train > 0 && ctx > ck.config.n_ctx_train) {
            const std::string msg =
                str("--ctx ", ctx, " is beyond the model's training context ", ck.config.n_ctx_train);
            log_event_as(LogLevel::warning, "ctx_beyond_training", "gridlm score: warning: " + msg, msg,
                         {{"ctx", ctx}, {"n_ctx_train", ck.config.n_ctx_train}});
        }
    }

    // From here to the end: a rank that stops answering ends the job (--watchdog-s).
    JobWatchdog watchdog(mpi, *topo, topo->rank_of({0, shape.pp - 1, 0}), watchdog_s, nullptr,
                         "score has no --resume: remove the partial output and run the command again.");
    if (text_mode) {
        const double t0 = std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
        auto elapsed = [&] {
            return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count() - t0;
        };
        WindowTally tally(grid, n_windows, [&](int64_t w, const PerplexitySums& run) {
            if (quiet) return;
            const double tok_per_s = (double)((w + 1) * ctx) / elapsed();
            char line[160];
            std::snprintf(line, sizeof line, "[window %lld/%lld] ppl %.4f (+/- %.5f), %.0f tokens/s", (long long)w + 1,
                          (long long)n_windows, run.perplexity(), run.perplexity_stderr(), tok_per_s);
            const double se = run.perplexity_stderr();
            log_event_raw(LogLevel::info, "window", line,
                          {{"window", w + 1},
                           {"windows", n_windows},
                           {"perplexity", run.perplexity()},
                           {"perplexity_stderr", std::isfinite(se) ? json(se) : json(nullptr)},
                           {"tokens_per_s", tok_per_s}});
        });
        const bool add_bos = tokenizer->add_bos() && tokenizer->bos_id() >= 0;
        int64_t next_window = grid.replica;
        ScoreSource source = [&]() -> std::optional<ScoreUnit> {
            if (next_window >= n_windows) return std::nullopt;
            ScoreUnit u;
            u.ref.index = (uint64_t)next_window;
            u.tokens.assign(tokens.begin() + next_window * ctx, tokens.begin() + (next_window + 1) * ctx);
            if (add_bos) u.tokens[0] = tokenizer->bos_id();  // each window starts as a fresh sequence
            u.score_from = ctx / 2;
            next_window += grid.replicas;
            return u;
        };
        ScoreSink sink = [&](const ScoreUnit& u, std::span<const double> logprobs) {
            PerplexitySums s;
            for (double lp : logprobs) s.add(lp);
            tally.add((int64_t)u.ref.index, s);
        };
        try {
            run_score_job(*model, *kv, source, sink, job, grid);
            const PerplexitySums total = tally.finish();
            if (!writer) return exit_ok;
            const double seconds = elapsed(), ppl = total.perplexity(), se = total.perplexity_stderr();
            if (!quiet) {
                char msg[160];
                std::snprintf(msg, sizeof msg, "perplexity %.4f +/- %.5f over %lld windows of %lld tokens", ppl, se,
                              (long long)n_windows, (long long)ctx);
                log_event_as(LogLevel::info, "summary", str("gridlm score: ", msg), msg,
                             {{"perplexity", ppl},
                              {"perplexity_stderr", std::isfinite(se) ? json(se) : json(nullptr)},
                              {"windows", n_windows},
                              {"ctx", ctx},
                              {"tokens_scored", total.count},
                              {"seconds", seconds}});
            }
            const json result = {{"model", ck.name},
                                 {"ctx", ctx},
                                 {"windows", n_windows},
                                 {"tokens", (int64_t)tokens.size()},
                                 {"tokens_scored", total.count},
                                 {"nll_mean", total.mean_nll()},
                                 {"perplexity", ppl},
                                 {"stderr", std::isfinite(se) ? json(se) : json(nullptr)},
                                 {"seconds", seconds},
                                 {"tok_per_s", (double)(n_windows * ctx) / seconds},
                                 {"dtype", weight_policy.name()},
                                 {"kv_cache_dtype", std::string(dtype_name(kv_dtype))},
                                 {"grid", {{"dp", shape.dp}, {"pp", shape.pp}, {"tp", shape.tp}}}};
            std::fflush(stderr);
            std::cout << result.dump() << std::endl;
        } catch (const std::exception& e) {
            if (mpi.size() == 1) throw;
            mpi.abort(exit_fatal, str("score failed: ", e.what()));
        }
        return exit_ok;
    }

    // --prompts: records through the same loop, lines routed to the writer as generate's are.
    ropts.reject_duplicate_ids = true;
    std::unique_ptr<PromptReader> reader;
    std::unique_ptr<ResultWriter> out_file;
    std::unique_ptr<Progress> progress;
    if (shape.dp > 1) wopts.max_buffered = std::numeric_limits<size_t>::max();
    collective_phase(mpi, "score", [&] {
        reader = std::make_unique<PromptReader>(input, ropts);
        if (!writer) return;
        out_file = std::make_unique<ResultWriter>(output, wopts);
        ProgressOptions popts;
        popts.total = count_records(input);
        popts.tty = ::isatty(STDERR_FILENO) != 0;
        popts.interval_s = vm["progress-interval"].as<double>();
        popts.quiet = quiet;
        progress = std::make_unique<Progress>(popts);
    });
    ResultRouter router(grid, out_file.get(), progress.get());
    RecordUnits units(*reader, *tokenizer, *chat, router, wopts, grid, ctx, ck.config.n_vocab);
    ScoreSource source = [&] { return units.next(); };
    ScoreSink sink = [&](const ScoreUnit& u, std::span<const double> lps) { units.done(u, lps); };
    try {
        run_score_job(*model, *kv, source, sink, job, grid, progress.get());
        router.finish();
        if (out_file) out_file->close();
    } catch (const std::exception& e) {
        if (mpi.size() == 1) throw;
        mpi.abort(exit_fatal, str("score failed: ", e.what()));
    }
    if (progress) progress->finish();
    const int code = router.failed() > 0 ? exit_partial : exit_ok;
    return (int)-comms.world->allreduce_min(-(int64_t)code);
}

}  // namespace

GRIDLM_COMMAND(score, "score", "perplexity of a text (as llama.cpp) or log-probabilities of prompts", run_score);

}  // namespace gridlm
