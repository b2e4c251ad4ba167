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
#include <vector>

#include "engine/core/error.h"
#include "engine/core/hash.h"
#include "engine/kv/kv_cache.h"
#include "engine/model/model.h"
#include "engine/tokenizer/tokenizer.h"
#include "io/job_journal.h"
#include "io/prompt_reader.h"
#include "io/result_writer.h"
#include "launch/chat_prompt.h"
#include "launch/cli_options.h"
#include "launch/commands.h"
#include "launch/generate_job.h"
#include "launch/grid_options.h"
#include "launch/prepare_output.h"
#include "launch/job_report.h"
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

const char* usage_head =
    "usage: gridlm generate --model M.h5 --prompts FILE --output OUT.jsonl [options]\n\n"
    "Generates a completion for every prompt of FILE and writes one JSON line per input record to\n"
    "OUT.jsonl, flushed as each record finishes. FILE is\n"
    "  .txt    one prompt per line (blank lines skipped); a record's id is its line number;\n"
    "  JSONL   {\"id\": ..., \"prompt\": \"...\"} or {\"id\": ..., \"messages\": [{\"role\", \"content\"}, ...]}\n"
    "          (the model's chat template renders the messages, with the record's optional \"tools\",\n"
    "          \"documents\", \"chat_template_kwargs\" and \"add_generation_prompt\"; a conversation the\n"
    "          template refuses becomes that record's error line), with optional per-record fields\n"
    "          overriding the options below:\n"
    "          max_tokens, min_tokens, temperature, top_p, top_k, min_p, seed, stop (string or array),\n"
    "          stop_token_ids, ignore_eos, n, logprobs, top_logprobs, repetition_penalty,\n"
    "          frequency_penalty, presence_penalty; \"prompt\" may also be an array of token ids;\n"
    "  OpenAI  batch input lines {\"custom_id\", \"method\": \"POST\", \"url\": \"/v1/chat/completions\" or\n"
    "          \"/v1/completions\", \"body\": {...the same fields, max_completion_tokens too}}; the output\n"
    "          then has OpenAI's batch output shape.\n"
    "Output (gridlm shape): {\"id\", \"text\", \"finish_reason\": \"stop\"|\"length\", \"usage\": {\"prompt_tokens\",\n"
    "\"completion_tokens\"}}, plus \"choices\" when n > 1 and \"logprobs\" when asked. A record that cannot\n"
    "run (bad JSON, a bad field, a prompt too long) gives {\"id\", \"line\", \"error\"} and the job goes on.\n"
    "Sampling: min_tokens mask, penalties, temperature (0 = greedy), min-p, top-k, top-p, then a draw\n"
    "from the record's own seeded generator: a record's output does not depend on the rest of the\n"
    "batch. Logprobs are those of the raw model distribution (before penalties and temperature).\n"
    "Options may also come from --config FILE (lines `name = value`, e.g. `temperature = 0.7`);\n"
    "the command line overrides the file.\n"
    "Grid: under `mpirun -n D*P*T gridlm generate ... --dp D --pp P --tp T` the ranks form D data-parallel\n"
    "replicas (each takes every D-th record) of P pipeline stages (contiguous layers; the batch streams\n"
    "through them in --micro-batches lanes) of T tensor-parallel ranks (heads, MLP and vocabulary\n"
    "split; keep a TP group inside a node). One output file, written by one rank. docs/launching.md\n"
    "shows mpirun and Slurm scripts.\n\n"
    "Resuming: the job keeps OUTPUT.journal and OUTPUT.manifest.json; after a kill or SIGTERM, the same\n"
    "command with --resume completes the output, each record exactly once. An existing OUTPUT is never\n"
    "overwritten: without --resume the job refuses to start.\n\n"
    "exit status: 0 every record done; 3 job finished but some records failed (see their error lines);\n"
    "             4 stopped by SIGTERM or SIGINT (lines written are complete; --resume continues);\n"
    "             2 usage error (bad option); 1 fatal error (missing input, unwritable output, bad\n"
    "             checkpoint, I/O failure)\n\n"
    "options";

// The options that change what a record's line says (the grid, threads and batching do not).
std::map<std::string, std::string> output_options(const po::variables_map& vm, const SamplingParams& p,
                                                  uint64_t job_seed, const std::string& chat_template) {
    std::map<std::string, std::string> o = sampling_manifest_options(p, job_seed);
    for (const char* k : {"input-format", "order", "dtype", "kv-cache-dtype"}) o[k] = vm[k].as<std::string>();
    o["max-model-len"] = str(vm["max-model-len"].as<int64_t>());
    o["max-prompt-tokens"] = str(vm["max-prompt-tokens"].as<int64_t>());
    o["model-name"] = vm.count("model-name") ? vm["model-name"].as<std::string>() : "";
    // A changed template changes chat prompts: --resume must see the same text.
    // (absent: the checkpoint's own, so manifests written before the option existed still match)
    if (!chat_template.empty()) o["chat-template"] = chat_template_digest(chat_template);
    return o;
}

std::atomic<bool> g_stop{false};

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

std::vector<std::string> split_list(const std::string& s) {
    std::vector<std::string> out;
    size_t start = 0;
    for (;;) {
        const size_t comma = s.find(',', start);
        out.push_back(s.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
        if (comma == std::string::npos) return out;
        start = comma + 1;
    }
}

// One start-up phase on every rank (launch/grid_options.h): all pass or all stop.
void collective_phase(const MpiEnv& mpi, const std::function<void()>& phase) {
    gridlm::collective_phase(mpi, "generate", phase);
}

int run_generate(const std::vector<std::string>& args) {
    po::options_description opts(usage_head);
    // clang-format off
    opts.add_options()
        ("help,h", "show this help")
        ("model,m", po::value<std::string>(),
         "checkpoint: gridlm .h5, a .gguf or a Hugging Face model directory (required)")
        ("prompts,p", po::value<std::string>(), "input file, '-' for standard input (required)")
        ("output,o", po::value<std::string>(), "output JSONL file, '-' for standard output (required)")
        ("config", po::value<std::string>(), "read options from this file (command line wins)")
        ("input-format", po::value<std::string>()->default_value("auto"),
         "auto (.txt extension, else the first record), txt, jsonl or openai")
        ("order", po::value<std::string>()->default_value("finished"),
         "finished: write each record when it finishes; input: in input order")
        ("chat-template", po::value<std::string>(),
         "Jinja chat template file rendering 'messages' records instead of the checkpoint's own (HF "
         "chat_template.jinja / tokenizer_config.json 'chat_template' text)");
    add_sampling_options(opts);
    opts.add_options()
        ("max-seqs,b", po::value<int>()->default_value(16),
         "sequences in flight per replica (each choice counts); also --batch-size")
        ("batch-size", po::value<int>(), "the same as --max-seqs")
        ("max-batched-tokens", po::value<int64_t>()->default_value(0),
         "tokens per step of a micro-batch at most, decodes first, prompt chunks in what is left; 0 = no cap")
        ("schedule", po::value<std::string>()->default_value("continuous"),
         "continuous: refill a finished sequence's slot at once; static: a micro-batch takes new records "
         "only when all its sequences have finished")
        ("max-prompt-tokens", po::value<int64_t>()->default_value(0),
         "longer prompts are record errors; 0 = the context length - 1")
        ("max-model-len", po::value<int64_t>()->default_value(0),
         "tokens per sequence (prompt + output); 0 = the model's training context")
        ("prefill-chunk", po::value<int64_t>()->default_value(1024), "prompt tokens per model step at most")
        ("threads", po::value<int>()->default_value(0), "CPU threads per rank; 0 = the cores this rank may use")
        ("dp", po::value<int>()->default_value(1), "data-parallel replicas (each runs every dp-th record)")
        ("pp", po::value<int>()->default_value(1), "pipeline stages per replica (at most the model's layers)")
        ("tp", po::value<int>()->default_value(1),
         "tensor-parallel ranks per stage (Llama / Qwen2: must divide the attention heads, KV heads "
         "split or replicated; DeepSeek: up to the head and expert counts, experts split across the ranks)")
        ("pp-layers", po::value<std::string>(),
         "layers per stage, e.g. 10,20 (default: balance weight bytes, the LM head counting on the last stage)")
        ("pp-slices", po::bool_switch(),
         "send stage-boundary activations as 1/tp slices, re-gathered over TP by the next stage "
         "(fewer bytes between nodes; default: whole)")
        ("micro-batches", po::value<int>()->default_value(0),
         "lanes the batch is split into, each refilled on its own; 0 = 1 without a pipeline, else 2*pp")
        ("dtype", po::value<std::string>()->default_value("auto"),
         "weight matrices in memory: auto (each as the checkpoint stores it: q4_0 q4_1 q5_0 q5_1 q8_0 q4_k q5_k "
         "q6_k blocks, bf16 or f32, multiplied by integer / float kernels; f16 is widened to f32), or every "
         "matrix converted to f32, bf16 or f16")
        ("model-name", po::value<std::string>(), "\"model\" in OpenAI-shaped output (default: the checkpoint's name)")
        ("kv-cache-bytes", po::value<int64_t>()->default_value(0),
         "KV cache budget per rank in bytes (the smallest rank's block count holds for all); sequences are "
         "admitted by the blocks their prompts need and preempted, then recomputed, when decoding runs out; "
         "0 = no budget (grows as needed)")
        ("preempt", po::value<std::string>()->default_value("recompute"),
         "how a preempted sequence gets its KV back: recompute (its tokens run through the pipeline again) or "
         "checkpoint (each stage keeps the activations that entered it and rebuilds its own KV from them, "
         "all stages at once)")
        ("resume", po::bool_switch(),
         "continue the job that wrote OUTPUT: skip the records its journal lists, run the rest (same input, "
         "checkpoint and output-changing options, checked against OUTPUT.manifest.json)")
        ("retry-errors", po::bool_switch(), "with --resume: run the records that ended as error lines again")
        ("progress-interval", po::value<double>()->default_value(10.0),
         "seconds between progress lines when stderr is not a terminal")
        ("quiet,q", po::bool_switch(), "no progress, only the final summary");
    // clang-format on
    add_kv_cache_dtype_option(opts);

    const po::variables_map vm = parse_options(args, opts, nullptr, "config");
    if (vm.count("help")) {
        std::cout << opts << "\n";
        return exit_ok;
    }
    require_options(vm, {"model", "prompts", "output"});

    GenerateJobOptions job;
    SamplingParams p = sampling_params_from(vm, &job.seed);
    job.sched.max_seqs = vm["max-seqs"].as<int>();
    if (vm.count("batch-size")) {
        if (!vm["max-seqs"].defaulted() && vm["max-seqs"].as<int>() != vm["batch-size"].as<int>())
            throw UsageError("--batch-size and --max-seqs are the same option; give one");
        job.sched.max_seqs = vm["batch-size"].as<int>();
    }
    job.sched.max_batched_tokens = vm["max-batched-tokens"].as<int64_t>();
    if (job.sched.max_batched_tokens < 0) throw UsageError("--max-batched-tokens must be >= 0");
    const std::string schedule = vm["schedule"].as<std::string>();
    if (schedule != "continuous" && schedule != "static") throw UsageError("--schedule must be continuous or static");
    job.sched.static_batches = schedule == "static";
    job.sched.max_prompt_tokens = vm["max-prompt-tokens"].as<int64_t>();
    job.sched.prefill_chunk = vm["prefill-chunk"].as<int64_t>();
    const int64_t max_model_len = vm["max-model-len"].as<int64_t>();
    const int threads = vm["threads"].as<int>();
    if (job.sched.max_seqs < 1 || job.sched.max_seqs > 4096) throw UsageError("--max-seqs must be in [1, 4096]");
    if (job.sched.max_prompt_tokens < 0) throw UsageError("--max-prompt-tokens must be >= 0");
    if (job.sched.prefill_chunk < 1) throw UsageError("--prefill-chunk must be >= 1");
    if (max_model_len < 0 || max_model_len == 1) throw UsageError("--max-model-len must be 0 or >= 2");
    if (threads < 0) throw UsageError("--threads must be >= 0");
    const WeightPolicy weight_policy = weight_policy_option(vm["dtype"].as<std::string>());
    InputFormat input_format;
    OutputOrder order;
    try {
        input_format = input_format_from_name(vm["input-format"].as<std::string>());
        order = output_order_from_name(vm["order"].as<std::string>());
    } catch (const Error& e) {
        throw UsageError(e.what());
    }
    SamplingLimits limits;
    limits.max_n = std::min(limits.max_n, job.sched.max_seqs);
    if (auto problem = validate_sampling_params(p, limits)) throw UsageError(*problem);

    GridShape grid_shape{vm["dp"].as<int>(), vm["pp"].as<int>(), vm["tp"].as<int>()};
    if (grid_shape.dp < 1 || grid_shape.pp < 1 || grid_shape.tp < 1)
        throw UsageError("--dp, --pp and --tp must be >= 1");
    std::vector<int64_t> pp_layers;
    if (vm.count("pp-layers")) {
        for (const std::string& part : split_list(vm["pp-layers"].as<std::string>())) {
            try {
                size_t used = 0;
                pp_layers.push_back(std::stoll(part, &used));
                if (used != part.size()) throw std::invalid_argument(part);
            } catch (const std::exception&) {
                throw UsageError(str("--pp-layers: '", part, "' is not a number (expected e.g. 10,20)"));
            }
        }
    }
    job.pp_slices = vm["pp-slices"].as<bool>();
    const int64_t kv_bytes = vm["kv-cache-bytes"].as<int64_t>();
    if (kv_bytes < 0) throw UsageError("--kv-cache-bytes must be >= 0");
    const DType kv_dtype = kv_cache_dtype_from(vm);
    const std::string preempt = vm["preempt"].as<std::string>();
    if (preempt != "recompute" && preempt != "checkpoint")
        throw UsageError("--preempt must be recompute or checkpoint");
    job.sched.preempt_checkpoint = preempt == "checkpoint";
    const bool resume = vm["resume"].as<bool>(), retry_errors = vm["retry-errors"].as<bool>();
    if (retry_errors && !resume) throw UsageError("--retry-errors goes with --resume");
    job.sched.lanes = vm["micro-batches"].as<int>();
    if (job.sched.lanes < 0) throw UsageError("--micro-batches must be >= 0");
    if (job.sched.lanes == 0) job.sched.lanes = grid_shape.pp == 1 ? 1 : 2 * grid_shape.pp;
    job.sched.lanes = std::min(job.sched.lanes, job.sched.max_seqs);

    MpiEnv mpi(nullptr, nullptr);  // a plain `gridlm generate` is an MPI singleton
    install_stop_handler();        // a signal during start-up stops the job before its first step
    const std::string prompts_path = vm["prompts"].as<std::string>();
    const std::string output_path = vm["output"].as<std::string>();

    // Start-up in phases that every rank passes or all stop: a rank's problem is printed by that
    // rank, and every rank exits with the worst status, none waiting on a failed peer.
    std::unique_ptr<Topology> topo;
    GridCoord me;
    JobGrid grid;  // this rank's place; the communicators are filled in once they exist
    OpenedCheckpoint ck;
    RecoveredOutput recovered;
    int64_t context = 0;
    std::vector<int64_t> stage_layers;
    TpSplitTypes split_types;
    std::string chat_template;  // --chat-template's text
    std::unique_ptr<ChatPrompter> chat;
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
            check_output_writable(output_path);
            recovered = prepare_output(output_path, prompts_path, vm["model"].as<std::string>(),
                                       output_options(vm, p, job.seed, chat_template), resume, retry_errors);
        }
    });
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
    const bool quiet = vm["quiet"].as<bool>();
    std::unique_ptr<Tokenizer> tokenizer;
    std::unique_ptr<Model> model;
    std::unique_ptr<KvCache> kv;
    collective_phase(mpi, [&] {
        tokenizer = std::make_unique<Tokenizer>(ck.tokenizer);
        const ModelShard shard = ModelShard::of(ck.config, stage_layers, me.pp, grid_shape.tp, me.tp, split_types);
        model = std::make_unique<Model>(ck.config, *ck.weights, weight_policy,
                                        std::shared_ptr<Backend>(make_cpu_backend(threads)), shard, comms.tp.get());
        ck.weights.reset();  // the weights now live in the model; drop the file's copy
        ck.gguf.reset();
        kv = model->make_kv_cache(job.sched.max_seqs, context, kv_dtype);
    });
    if (kv_bytes > 0) {
        auto* cache = dynamic_cast<BlockKvCache*>(kv.get());
        GRIDLM_ASSERT(cache != nullptr);
        // Every rank of a replica must schedule the same: all use the smallest rank's block count.
        job.sched.kv_blocks = comms.world->allreduce_min(kv_bytes / cache->block_bytes());
        collective_phase(mpi, [&] {
            if (job.sched.kv_blocks < 1)
                throw Error(str("--kv-cache-bytes ", kv_bytes, " holds no KV block on some rank (a block of ",
                                cache->block_size(), " tokens takes ", cache->block_bytes(), " bytes here)"));
        });
        cache->set_max_blocks(job.sched.kv_blocks);
        if (writer_rank && !quiet) report_kv_budget(*cache, job.sched.kv_blocks);
    }
    if (!quiet) report_shards(*comms.world, *topo, *model, writer_rank);

    PromptReaderOptions ropts;
    ropts.format = input_format;
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
        std::fprintf(stderr, "gridlm: resuming %s: %lld records already done%s\n", output_path.c_str(),
                     (long long)recovered.kept, cut.c_str());
        if (recovered.retried > 0)
            std::fprintf(stderr, "gridlm: %lld error lines removed to run again\n", (long long)recovered.retried);
    }
    if (writer_rank && !quiet) {
        std::fprintf(stderr, "gridlm: %s (%s; weights %s), context %lld, batch %d, chat template %s\n",
                     wopts.model_name.c_str(), ck.config.arch.c_str(),
                     weight_types_text(model->weight_bytes_by_type()).c_str(), (long long)context, job.sched.max_seqs,
                     chat->template_name().c_str());
    }

    grid.world = comms.world.get();
    grid.tp = comms.tp.get();
    grid.pp = comms.pp.get();
    grid.dp = comms.dp.get();
    job.stop = &g_stop;
    GenerateJobResult result;
    try {
        result = run_generate_job(*reader, writer.get(), wopts, GenerateModel{*model, *kv, *tokenizer, *chat},
                                  progress.get(), job, grid);
        if (writer && result.interrupted) writer->discard_pending();
        if (writer) writer->close();
        if (result.interrupted) {
            if (progress) progress->finish();
            const std::string msg = str("stopped by a signal; ", writer->written(),
                                        " lines written this run are complete. Run the same "
                                        "command with --resume to finish the job.");
            std::fprintf(stderr, "gridlm: %s\n", msg.c_str());
            // The other ranks may wait on this one: leaving without MPI_Finalize makes mpirun / srun
            // end them, and mpirun then exits with this rank's status.
            if (mpi.size() > 1) {
                std::fflush(nullptr);
                std::_Exit(exit_interrupted);
            }
            return exit_interrupted;
        }
    } catch (const std::exception& e) {
        // Mid-job: the other ranks may wait on this one; end the whole job, lines written stay.
        if (mpi.size() == 1) throw;
        mpi.abort(exit_fatal, str("generate failed: ", e.what()));
    }
    if (progress) progress->finish();
    if (writer_rank && !quiet && job.sched.kv_blocks > 0)
        report_kv_usage(*dynamic_cast<BlockKvCache*>(kv.get()), result, job.sched.kv_blocks);
    if (job.sched.preempt_checkpoint && job.sched.kv_blocks > 0 && !quiet)
        report_checkpoints(*comms.world, *topo, result, writer_rank);
    report_grid(*comms.world, *topo, *model, result, writer_rank && !quiet, job.sched.lanes);
    // Error lines kept from an earlier run of a resumed job count too.
    const int code = result.records_failed > 0 || (writer_rank && recovered.failed > 0) ? exit_partial : exit_ok;
    return (int)-comms.world->allreduce_min(-(int64_t)code);
}

}  // namespace

GRIDLM_COMMAND(generate, "generate", "generate completions for a file of prompts (txt, JSONL, OpenAI batch)",
               run_generate);

}  // namespace gridlm
