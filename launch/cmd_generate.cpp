// `gridlm generate`: offline bulk generation. Reads prompts (txt / JSONL / OpenAI batch),
// generates with a checkpoint, writes one JSONL result per record; runs as one MPI rank.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <map>

#include <boost/program_options.hpp>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <ctime>
#include <limits>
#include <variant>
#include <vector>

#include "engine/core/error.h"
#include "engine/core/hash.h"
#include "engine/core/log.h"
#include "engine/kv/kv_cache.h"
#include "engine/model/model.h"
#include "engine/tokenizer/tokenizer.h"
#include "io/job_journal.h"
#include "io/output_lock.h"
#include "io/prompt_reader.h"
#include "io/result_writer.h"
#include "launch/chat_prompt.h"
#include "launch/cli_options.h"
#include "launch/commands.h"
#include "launch/generate_job.h"
#include "launch/generate_options.h"
#include "launch/job_backend.h"
#include "launch/grid_options.h"
#include "launch/prepare_output.h"
#include "launch/job_operations.h"
#include "launch/job_report.h"
#include "launch/job_watchdog.h"
#include "launch/metrics.h"
#include "launch/open_checkpoint.h"
#include "launch/progress.h"
#include "launch/sampling_options.h"
#include "parallel/mpi_communicator.h"
#include "parallel/mpi_env.h"
#include "parallel/topology.h"

namespace gridlm {
namespace {

namespace po = boost::program_options;
namespace fs = std::filesystem;

std::atomic<bool> g_stop{false};

std::string percent(int64_t part, int64_t whole) {
    return str(whole > 0 ? (int64_t)std::llround(100.0 * (double)part / (double)whole) : 0, "%");
}

// The job's figures for the trace (gridlm report prints them).
nlohmann::ordered_json job_summary(const GenerateJobResult& r, const Progress* progress) {
    nlohmann::ordered_json j = {{"records_written", r.records_written}, {"records_failed", r.records_written_failed}};
    for (const auto& [kind, n] : r.kinds) j["records_" + kind] = n;
    if (progress) {
        const ProgressTotals& t = progress->totals();
        j["prompt_tokens"] = t.prompt_tokens;
        j["completion_tokens"] = t.completion_tokens;
        j["duration_s"] = progress->elapsed_s();
        j["completion_tok_per_s"] =
            progress->elapsed_s() > 0 ? (double)t.completion_tokens / progress->elapsed_s() : 0.0;
    }
    j["stopped_by_error_rate"] = r.breaker;
    if (r.missing.count > 0) j["records_missing"] = r.missing.count;
    return j;
}

// The records at these input indices (ascending) as "ID (line N)", from a second pass over the
// input; when it cannot be read again (standard input), "record #N" (1-based position).
std::string name_records(const std::string& path, const PromptReaderOptions& ropts,
                         const std::vector<uint64_t>& indices) {
    std::vector<std::string> names;
    if (path != "-") {
        try {
            PromptReader again(path, ropts);
            while (names.size() < indices.size()) {
                auto rec = again.next();
                if (!rec) break;
                const RecordRef& ref = std::visit([](const auto& r) -> const RecordRef& { return r.ref; }, *rec);
                if (ref.index == indices[names.size()]) names.push_back(str(ref.id, " (line ", ref.line, ")"));
            }
        } catch (const Error&) {
            names.clear();
        }
    }
    if (names.size() != indices.size()) {
        names.clear();
        for (uint64_t i : indices) names.push_back(str("record #", i + 1));
    }
    std::string s;
    for (const std::string& n : names) s += (s.empty() ? "" : ", ") + n;
    return s;
}

// A finished job whose output lacks records it read: an error naming them. The job has failed
// (exit 1); the records are not in the journal, so --resume runs them.
void report_missing(const MissingRecords& m, const std::string& prompts_path, const PromptReaderOptions& ropts) {
    const std::string more =
        m.count > (int64_t)m.first.size() ? str(" and ", m.count - (int64_t)m.first.size(), " more") : "";
    log_error("records_missing",
              str(m.count, " of the ", m.records, " records read from ", prompts_path,
                  " have no output line, neither a result nor an error (a gridlm bug, not the records' fault): ",
                  name_records(prompts_path, ropts, m.first), more,
                  ". The job failed; the same command with --resume runs the missing records."),
              {{"records_missing", m.count}, {"records_read", m.records}, {"first_missing_indices", m.first}});
}

// "content filter: 3 records filtered (rejected); hits: reject/prompt 2, redact/completion 5"
std::string filter_summary(const GenerateJobResult& r) {
    auto it = r.kinds.find("filtered");
    std::string s = str("content filter: ", it == r.kinds.end() ? 0 : it->second, " records rejected; rule hits:");
    for (const auto& [what, n] : r.filter_hits) s += str(" ", what, " ", n);
    return s;
}

// SIGTERM (sent by Slurm before a time limit or on preemption, and forwarded by mpirun) and SIGINT
// ask the job to stop at the next step; a second one ends it at once.
void install_stop_handler() {
    struct sigaction sa {};
    sa.sa_handler = [](int) { g_stop.store(true); };
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGINT, &sa, nullptr);
}

// One start-up phase on every rank (launch/grid_options.h): all pass or all stop.
void collective_phase(const MpiEnv& mpi, const std::function<void()>& phase) {
    gridlm::collective_phase(mpi, "generate", phase);
}

int run_generate(const std::vector<std::string>& args) {
    const po::options_description opts = generate_options();

    const po::variables_map vm = parse_options(args, opts, nullptr, "config");
    if (vm.count("help")) {
        std::cout << opts << "\n";
        return exit_ok;
    }
    apply_log_options(vm);
    require_options(vm, {"model", "prompts", "output"});

    GenerateSettings settings = generate_settings(vm);
    GenerateJobOptions& job = settings.job;
    SamplingParams& p = settings.sampling;
    SamplingLimits& limits = settings.limits;
    const int64_t max_model_len = settings.max_model_len;
    const int threads = settings.threads;
    // What --backend auto means on this rank; the ranks agree on it at start-up.
    std::string backend_why;  // why --backend auto chose the CPU, when it did
    const std::string backend_name = resolve_backend(settings.backend.name, &backend_why);
    const WeightPolicy weight_policy = weight_policy_for(backend_name, settings.weight_policy);
    const InputFormat input_format = settings.input_format;
    const OutputOrder order = settings.order;
    const GridShape grid_shape = settings.grid;
    const std::vector<int64_t>& pp_layers = settings.pp_layers;
    int64_t kv_bytes = settings.kv_bytes;  // 0: none on the CPU; on a GPU, what the weights leave
    const DType kv_dtype = settings.kv_dtype;
    const bool resume = settings.resume, retry_errors = settings.retry_errors;

    // A plain `gridlm generate` is an MPI singleton; the watchdog's thread needs MPI_THREAD_MULTIPLE.
    MpiEnv mpi(nullptr, nullptr, settings.watchdog_s > 0);
    install_stop_handler();  // a signal during start-up stops the job before its first step
    const std::string prompts_path = vm["prompts"].as<std::string>();
    const std::string output_path = vm["output"].as<std::string>();

    // Start-up in phases that every rank passes or all stop: a rank's problem is printed by that
    // rank, and every rank exits with the worst status, none waiting on a failed peer.
    std::unique_ptr<Topology> topo;
    GridCoord me;
    JobGrid grid;  // this rank's place; the communicators are filled in once they exist
    OpenedCheckpoint ck;
    RecoveredOutput recovered;
    std::unique_ptr<OutputLock> output_lock;  // the writer's, held until the job ends
    FreshOutputGuard fresh_output;            // a fresh job's files, removed if start-up stops
    int64_t context = 0;
    std::vector<int64_t> stage_layers;
    TpSplitTypes split_types;
    std::string chat_template;  // --chat-template's text
    std::unique_ptr<ChatPrompter> chat;
    JobOperations ops;  // --filter, --metrics-file, --trace
    // The backend first: a rank without its GPU stops the job before any output is prepared.
    std::shared_ptr<Backend> backend;
    std::unique_ptr<Communicator> tp_device;  // NCCL on the backend's stream (cuda, tp > 1)
    std::unique_ptr<Communicator> pp_device;  // the same for the pipeline's activations (cuda, pp > 1)
    collective_phase(mpi, [&] {
        check_same_backend(mpi, backend_name);
        backend = make_rank_backend(backend_name, settings.backend, threads, mpi);
    });
    collective_phase(mpi, [&] { check_distinct_gpus(mpi, *backend); });
    collective_phase(mpi, [&] {
        topo = std::make_unique<Topology>(grid_shape, mpi.size());  // world size == dp*pp*tp
        me = topo->coord_of(mpi.rank());
        grid.replica = me.dp;
        grid.replicas = grid_shape.dp;
        grid.stage = me.pp;
        grid.stages = grid_shape.pp;
        grid.tp_rank = me.tp;
        if (prompts_path != "-") {
            std::ifstream probe(prompts_path);
            if (!probe || fs::is_directory(prompts_path)) throw Error(str("cannot open prompts file ", prompts_path));
        }
        if (vm.count("chat-template")) chat_template = read_chat_template_file(vm["chat-template"].as<std::string>());
        ops.load_filter(settings);
        // Before the checkpoint is read: a second job on a busy output is refused at once.
        if (grid.writer()) {
            check_output_writable(output_path);
            if (output_path != "-") output_lock = OutputLock::acquire(output_path, default_job_id());
        }
        ck = open_checkpoint(vm["model"].as<std::string>());
        chat = std::make_unique<ChatPrompter>(
            ck.tokenizer, chat_template,
            str("file '", vm.count("chat-template") ? vm["chat-template"].as<std::string>() : "", "'"));
        split_types = weight_split_types(ck, weight_policy);
        check_tensor_parallel(ck.config, grid_shape.tp, split_types);
        stage_layers = pipeline_layers(ck.config, grid_shape.pp, pp_layers);
        context = max_model_len > 0 && (ck.config.n_ctx_train <= 0 || max_model_len < ck.config.n_ctx_train)
                      ? max_model_len
                      : ck.config.n_ctx_train;
        if (context < 2) throw Error("the checkpoint does not state its context length; give --max-model-len");
        if (grid.writer()) {
            std::map<std::string, std::string> options = output_options(vm, p, job.seed, chat_template);
            // A GPU runs other kernels (and bf16 weights for --dtype auto): its lines and a CPU's
            // do not mix in one output. CPU jobs record nothing, as before this option existed.
            if (backend_name != "cpu") options["backend"] = backend_name;
            if (output_path != "-" && !output_started(output_path)) fresh_output.arm(output_path);
            recovered = prepare_output(output_path, prompts_path, vm["model"].as<std::string>(), std::move(options),
                                       resume, retry_errors);
        }
    });
    log_set_context({mpi.rank(), mpi.size(), mpi.host(), me.dp, me.pp, me.tp});
    job.sched.context = context;
    limits.max_tokens = (int32_t)std::min<int64_t>(context, INT32_MAX);
    if (p.max_tokens > limits.max_tokens) p.max_tokens = limits.max_tokens;  // the default fits any context

    GridComms comms = make_grid_comms(*topo);
    const bool writer_rank = grid.writer();
    // Every rank skips the records the writer found done.
    const int writer_world = topo->rank_of({0, grid_shape.pp - 1, 0});
    int64_t n_done = (int64_t)recovered.done.size();
    comms.world->broadcast(&n_done, sizeof(n_done), writer_world);
    recovered.done.resize((size_t)n_done);
    comms.world->broadcast(recovered.done.data(), sizeof(uint64_t) * (size_t)n_done, writer_world);
    job.done.insert(recovered.done.begin(), recovered.done.end());
    std::vector<uint64_t>().swap(recovered.done);  // one bit a record from here on
    const bool quiet = vm["quiet"].as<bool>();
    if (grid.writer() && !quiet)
        log_info("backend", backend_note(*backend, weight_policy, backend_why, settings.backend),
                 {{"backend", backend->name()}});
    std::unique_ptr<Tokenizer> tokenizer;
    std::unique_ptr<Model> model;
    std::unique_ptr<KvCache> kv;
    collective_phase(mpi, [&] {
        tp_device = device_tp_communicator(*backend, *comms.tp);  // tp first, then pp, on every rank
        pp_device = device_pp_communicator(*backend, *comms.pp);
        tokenizer = std::make_unique<Tokenizer>(ck.tokenizer);
        const ModelShard shard = ModelShard::of(ck.config, stage_layers, me.pp, grid_shape.tp, me.tp, split_types);
        model = std::make_unique<Model>(ck.config, *ck.weights, weight_policy, backend, shard,
                                        tp_device ? tp_device.get() : comms.tp.get());
        ck.weights.reset();  // the weights now live in the model; drop the file's copy
        ck.gguf.reset();
        kv = model->make_kv_cache(job.sched.max_seqs, context, kv_dtype);
    });
    const bool kv_default = kv_bytes == 0;
    // On a GPU the cache cannot grow past the device: what the weights leave, less a reserve.
    const int64_t kv_room = default_kv_budget(*backend);
    if (kv_default) kv_bytes = kv_room;
    if (kv_bytes > 0) {
        auto* cache = dynamic_cast<BlockKvCache*>(kv.get());
        GRIDLM_ASSERT(cache != nullptr);
        // Every rank of a replica must schedule the same: all use the smallest rank's block count.
        job.sched.kv_blocks = comms.world->allreduce_min(kv_bytes / cache->block_bytes());
        collective_phase(mpi, [&] {
            if (kv_room > 0 && kv_bytes > kv_room)
                throw Error(str("--kv-cache-bytes ", kv_bytes, " is more than this GPU has left after the weights (",
                                kv_room,
                                " bytes, keeping max(1 GiB, 5%) for activations); give at most that, or 0 "
                                "for all of it"));
            if (job.sched.kv_blocks < 1)
                throw Error(str(kv_default ? "the GPU memory left after the weights (" : "--kv-cache-bytes ", kv_bytes,
                                kv_default ? " bytes)" : "", " holds no KV block",
                                mpi.size() > 1 ? " on some rank" : "", " (a block of ", cache->block_size(),
                                " tokens takes ", cache->block_bytes(), " bytes here)"));
        });
        cache->set_max_blocks(job.sched.kv_blocks);
        if (writer_rank && !quiet && kv_default)
            log_info("kv_budget_source", str("KV cache budget: the GPU memory the weights leave (", kv_room,
                                             " bytes on this rank, after a reserve of max(1 GiB, 5%)); "
                                             "--kv-cache-bytes sets it"));
        if (writer_rank && !quiet) report_kv_budget(*cache, job.sched.kv_blocks);
    }
    if (!quiet) report_shards(*comms.world, *topo, *model, writer_rank);

    PromptReaderOptions ropts;
    ropts.format = input_format;
    ropts.strict_fields = settings.strict_fields;
    ropts.defaults = p;
    ropts.limits = limits;
    std::unique_ptr<PromptReader> reader;
    ResultWriterOptions wopts;
    wopts.order = order;
    wopts.model_name = vm.count("model-name") ? vm["model-name"].as<std::string>() : ck.name;
    wopts.created = (int64_t)std::time(nullptr);
    comms.world->broadcast(&wopts.created, sizeof(wopts.created), 0);  // the same "created" on every replica
    // A replica that runs ahead holds its lines in the writer until the earlier ones arrive.
    if (grid_shape.dp > 1) wopts.max_buffered = std::numeric_limits<size_t>::max();
    std::unique_ptr<ResultWriter> writer;
    std::unique_ptr<Progress> progress;
    collective_phase(mpi, [&] {
        reader = std::make_unique<PromptReader>(prompts_path, ropts);
        // The output shape follows the input: OpenAI batch in, OpenAI batch out.
        if (reader->format() == InputFormat::input_format_openai) wopts.shape = OutputShape::output_shape_openai;
        if (!writer_rank) return;
        if (!quiet) log_info("input_format", reader->format_note(), {{"format", input_format_name(reader->format())}});
        wopts.journal = output_path != "-";
        wopts.append = resume && output_path != "-";
        wopts.done = job.done;
        writer = std::make_unique<ResultWriter>(output_path, wopts);
        ProgressOptions popts;
        popts.total = count_records(prompts_path);
        if (popts.total) *popts.total -= (int64_t)job.done.size();  // what this run has left
        popts.tty = ::isatty(STDERR_FILENO) != 0;
        popts.interval_s = vm["progress-interval"].as<double>();
        popts.quiet = quiet;
        progress = std::make_unique<Progress>(popts);
    });
    if (writer_rank && !quiet && resume) {
        const std::string cut =
            recovered.cut_bytes > 0 ? str(" (cut ", recovered.cut_bytes, " bytes of unfinished lines)") : "";
        log_info("resume", str("resuming ", output_path, ": ", recovered.kept, " records already done", cut),
                 {{"output", output_path}, {"records_done", recovered.kept}, {"cut_bytes", recovered.cut_bytes}});
        if (recovered.retried > 0)
            log_info("resume_retry", str(recovered.retried, " error lines removed to run again"),
                     {{"records_retried", recovered.retried}});
    }
    if (writer_rank && !quiet) {
        const std::string weights = weight_types_text(model->weight_bytes_by_type());
        log_info("start",
                 str(wopts.model_name, " (", ck.config.arch, "; weights ", weights, "), context ", context, ", batch ",
                     job.sched.max_seqs, ", chat template ", chat->template_name(),
                     ops.filter() ? str(", content filter ", settings.filter) : std::string()),
                 {{"model", wopts.model_name},
                  {"arch", ck.config.arch},
                  {"weights", weights},
                  {"context", context},
                  {"max_seqs", job.sched.max_seqs},
                  {"chat_template", chat->template_name()},
                  {"grid", {{"dp", grid_shape.dp}, {"pp", grid_shape.pp}, {"tp", grid_shape.tp}}}});
    }

    collective_phase(mpi, [&] {
        std::map<std::string, std::string> info = {
            {"model", wopts.model_name},
            {"grid", str("dp", grid_shape.dp, "_pp", grid_shape.pp, "_tp", grid_shape.tp)}};
        ops.start(settings, *comms.world, *topo, writer_world, progress.get(), dynamic_cast<BlockKvCache*>(kv.get()),
                  job.sched.kv_blocks, std::move(info));
    });
    fresh_output.started();
    grid.world = comms.world.get();
    grid.tp = comms.tp.get();
    grid.pp = comms.pp.get();
    grid.dp = comms.dp.get();
    grid.pp_act = pp_device ? pp_device.get() : comms.pp.get();
    grid.tp_act = tp_device ? tp_device.get() : comms.tp.get();
    job.stop = &g_stop;
    job.filter = ops.filter();
    job.tracer = ops.tracer();
    // From the first step to the end: a rank that stops answering ends the job (--watchdog-s).
    JobWatchdog watchdog(mpi, *topo, writer_world, settings.watchdog_s, ops.observer());
    job.observer = watchdog.observer();
    job.max_error_rate = settings.max_error_rate;
    job.min_records = settings.min_records;
    GenerateJobResult result;
    try {
        result = run_generate_job(*reader, writer.get(), wopts, GenerateModel{*model, *kv, *tokenizer, *chat},
                                  progress.get(), job, grid);
        if (writer && result.interrupted) writer->discard_pending();
        if (writer) writer->close();
        if (result.interrupted) {
            if (progress) progress->finish();
            ops.finish(result, true, job_summary(result, progress.get()));
            std::string msg = str("stopped by a signal; ", writer->written(),
                                  " lines written this run are complete. Run the same "
                                  "command with --resume to finish the job.");
            if (result.breaker)
                msg = str("stopped by --max-error-rate ", settings.max_error_rate, ": ", result.records_written_failed,
                          " of ", result.records_written, " records written this run are error lines (",
                          percent(result.records_written_failed, result.records_written),
                          "); the lines written are complete. Look at the error lines, then run the same "
                          "command with --resume (and --retry-errors) to finish the job.");
            log_event(result.breaker ? LogLevel::error : LogLevel::warning, result.breaker ? "breaker" : "stopped", msg,
                      {{"lines_written", writer->written()},
                       {"records_written", result.records_written},
                       {"records_failed", result.records_written_failed}});
            const int code = result.breaker ? exit_error_rate : exit_interrupted;
            // The other ranks may wait on this one: leaving without MPI_Finalize makes mpirun / srun
            // end them, and mpirun then exits with this rank's status.
            if (mpi.size() > 1) {
                std::fflush(nullptr);
                std::_Exit(code);
            }
            return code;
        }
    } catch (const std::exception& e) {
        // Mid-job: the other ranks may wait on this one; end the whole job, lines written stay.
        if (mpi.size() == 1) throw;
        mpi.abort(exit_fatal, str("generate failed: ", e.what()));
    }
    if (progress) progress->finish();
    try {
        ops.finish(result, false, job_summary(result, progress.get()));
    } catch (const std::exception& e) {
        if (mpi.size() == 1) throw;
        mpi.abort(exit_fatal, str("generate failed: ", e.what()));
    }
    if (writer_rank && reader && !reader->unknown_fields().empty())
        log_warning("unknown_fields", reader->unknown_fields_summary(),
                    {{"records", reader->records_with_unknown_fields()}, {"fields", reader->unknown_fields()}});
    if (writer_rank && !quiet && !result.filter_hits.empty())
        log_info("filter_summary", filter_summary(result),
                 {{"records_by_kind", result.kinds}, {"hits", result.filter_hits}});
    if (writer_rank && !quiet && job.sched.kv_blocks > 0)
        report_kv_usage(*dynamic_cast<BlockKvCache*>(kv.get()), result, job.sched.kv_blocks);
    if (job.sched.preempt_checkpoint && job.sched.kv_blocks > 0 && !quiet)
        report_checkpoints(*comms.world, *topo, result, writer_rank);
    report_grid(*comms.world, *topo, *model, result, writer_rank && !quiet, job.sched.lanes);
    if (writer_rank && result.missing.count > 0) report_missing(result.missing, prompts_path, ropts);
    // Error lines kept from an earlier run of a resumed job count too.
    const int code = result.records_failed > 0 || (writer_rank && recovered.failed > 0) ? exit_partial : exit_ok;
    const int64_t missing = -comms.world->allreduce_min(-(writer_rank ? result.missing.count : 0));
    return missing > 0 ? exit_fatal : (int)-comms.world->allreduce_min(-(int64_t)code);
}

}  // namespace

GRIDLM_COMMAND(generate, "generate", "generate completions for a file of prompts (txt, JSONL, OpenAI batch)",
               run_generate);

}  // namespace gridlm
