// `gridlm generate`: offline bulk generation. Reads prompts (txt / JSONL / OpenAI batch),
// generates with a checkpoint, writes one JSONL result per record; runs as one MPI rank.
#include <unistd.h>

#include <boost/program_options.hpp>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "engine/core/error.h"
#include "engine/kv/kv_cache.h"
#include "engine/model/model.h"
#include "engine/tokenizer/tokenizer.h"
#include "io/gguf.h"
#include "io/gguf_model.h"
#include "io/h5_checkpoint.h"
#include "io/prompt_reader.h"
#include "io/result_writer.h"
#include "launch/chat_prompt.h"
#include "launch/cli_options.h"
#include "launch/commands.h"
#include "launch/generate_job.h"
#include "launch/progress.h"
#include "parallel/mpi_env.h"

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
    "          (chat template applied), with optional per-record fields overriding the options below:\n"
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
    "the command line overrides the file.\n\n"
    "exit status: 0 every record done; 3 job finished but some records failed (see their error lines);\n"
    "             2 usage error (bad option); 1 fatal error (missing input, unwritable output, bad\n"
    "             checkpoint, I/O failure)\n\n"
    "options";

struct Loaded {
    ModelConfig config;
    TokenizerData tokenizer;
    std::shared_ptr<const GgufFile> gguf;  // GGUF input: the mapped file
    std::unique_ptr<TensorSource> weights;
    std::string name;
};

// A .gguf is read directly (dequantised on load); anything else must be a native checkpoint.
Loaded open_checkpoint(const std::string& path) {
    if (!fs::exists(path)) throw Error(str("model file '", path, "' does not exist"));
    Loaded l;
    l.name = fs::path(path).stem().string();
    if (fs::path(path).extension() == ".gguf") {
        l.gguf = std::make_shared<GgufFile>(path);
        l.config = gguf_model_config(*l.gguf);
        l.tokenizer = gguf_tokenizer_data(*l.gguf);
        l.weights = std::make_unique<GgufTensorSource>(l.gguf);
    } else {
        auto ck = std::make_unique<H5Checkpoint>(path);
        if (ck->vocab_only()) throw Error(str("checkpoint '", path, "' holds a vocabulary only, no weights"));
        l.config = ck->config();
        l.tokenizer = ck->tokenizer();
        l.weights = std::move(ck);
    }
    if (!l.config.name.empty()) l.name = l.config.name;
    return l;
}

// Fails before the model is loaded when OUT cannot be created, without truncating it yet.
void check_output_writable(const std::string& path) {
    if (path == "-") return;
    const fs::path p(path);
    std::error_code ec;
    if (fs::is_directory(p, ec)) throw Error(str("output '", path, "' is a directory"));
    const fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
    if (!fs::is_directory(dir, ec))
        throw Error(str("cannot write output file ", path, ": directory ", dir.string(), " does not exist"));
    const bool ok = fs::exists(p, ec) ? ::access(path.c_str(), W_OK) == 0 : ::access(dir.c_str(), W_OK) == 0;
    if (!ok) throw Error(str("cannot write output file ", path, ": permission denied"));
}

int run_generate(const std::vector<std::string>& args) {
    po::options_description opts(usage_head);
    SamplingParams d;  // defaults shown in --help come from the struct
    // clang-format off
    opts.add_options()
        ("help,h", "show this help")
        ("model,m", po::value<std::string>(), "checkpoint: gridlm .h5 (or a .gguf, dequantised on load) (required)")
        ("prompts,p", po::value<std::string>(), "input file, '-' for standard input (required)")
        ("output,o", po::value<std::string>(), "output JSONL file, '-' for standard output (required)")
        ("config", po::value<std::string>(), "read options from this file (command line wins)")
        ("input-format", po::value<std::string>()->default_value("auto"),
         "auto (.txt extension, else the first record), txt, jsonl or openai")
        ("order", po::value<std::string>()->default_value("finished"),
         "finished: write each record when it finishes; input: in input order")
        ("max-tokens", po::value<int32_t>()->default_value(d.max_tokens), "tokens to generate at most per choice")
        ("min-tokens", po::value<int32_t>()->default_value(d.min_tokens), "tokens before EOS / stops may end a choice")
        ("temperature,t", po::value<float>()->default_value(d.temperature), "sampling temperature; 0 = greedy")
        ("top-p", po::value<float>()->default_value(d.top_p), "nucleus mass in (0, 1]; 1 = off")
        ("top-k", po::value<int32_t>()->default_value(d.top_k), "keep the k most likely tokens; 0 = off")
        ("min-p", po::value<float>()->default_value(d.min_p), "keep tokens with p >= min_p * p_max; 0 = off")
        ("repetition-penalty", po::value<float>()->default_value(d.repetition_penalty),
         "> 1 discourages tokens of prompt and output; 1 = off")
        ("frequency-penalty", po::value<float>()->default_value(d.frequency_penalty),
         "in [-2, 2]: subtracted times each token's count in the output")
        ("presence-penalty", po::value<float>()->default_value(d.presence_penalty),
         "in [-2, 2]: subtracted once for each token present in the output")
        ("seed", po::value<uint64_t>()->default_value(0),
         "job seed: a record without \"seed\" uses one derived from this and its id (reruns repeat)")
        ("stop", po::value<std::vector<std::string>>()->composing(), "stop string (repeatable); trimmed from the text")
        ("stop-token-ids", po::value<std::vector<int32_t>>()->multitoken()->composing(), "token ids that end a choice")
        ("ignore-eos", po::bool_switch(), "keep generating past EOS (default: EOS ends a choice)")
        ("n", po::value<int32_t>()->default_value(d.n), "choices per prompt (1..64, at most --batch-size)")
        ("logprobs", po::bool_switch(), "report each generated token's log-probability (default: off)")
        ("top-logprobs", po::value<int32_t>()->default_value(0), "also the k most likely tokens per step (0..20)")
        ("batch-size,b", po::value<int>()->default_value(16), "sequences decoded together (each choice counts)")
        ("max-prompt-tokens", po::value<int64_t>()->default_value(0),
         "longer prompts are record errors; 0 = the context length - 1")
        ("max-model-len", po::value<int64_t>()->default_value(0),
         "tokens per sequence (prompt + output); 0 = the model's training context")
        ("prefill-chunk", po::value<int64_t>()->default_value(1024), "prompt tokens per model step at most")
        ("threads", po::value<int>()->default_value(0), "CPU threads; 0 = the cores this process may use")
        ("dtype", po::value<std::string>()->default_value("f32"), "weight element type in memory: f32 or bf16")
        ("model-name", po::value<std::string>(), "\"model\" in OpenAI-shaped output (default: the checkpoint's name)")
        ("progress-interval", po::value<double>()->default_value(10.0),
         "seconds between progress lines when stderr is not a terminal")
        ("quiet,q", po::bool_switch(), "no progress, only the final summary");
    // clang-format on

    const po::variables_map vm = parse_options(args, opts, nullptr, "config");
    if (vm.count("help")) {
        std::cout << opts << "\n";
        return exit_ok;
    }
    require_options(vm, {"model", "prompts", "output"});

    SamplingParams p;
    p.max_tokens = vm["max-tokens"].as<int32_t>();
    p.min_tokens = vm["min-tokens"].as<int32_t>();
    p.temperature = vm["temperature"].as<float>();
    p.top_p = vm["top-p"].as<float>();
    p.top_k = vm["top-k"].as<int32_t>();
    if (p.top_k == -1) p.top_k = 0;
    p.min_p = vm["min-p"].as<float>();
    p.repetition_penalty = vm["repetition-penalty"].as<float>();
    p.frequency_penalty = vm["frequency-penalty"].as<float>();
    p.presence_penalty = vm["presence-penalty"].as<float>();
    if (vm.count("stop")) p.stop = vm["stop"].as<std::vector<std::string>>();
    if (vm.count("stop-token-ids")) p.stop_token_ids = vm["stop-token-ids"].as<std::vector<int32_t>>();
    p.ignore_eos = vm["ignore-eos"].as<bool>();
    p.n = vm["n"].as<int32_t>();
    p.top_logprobs = vm["top-logprobs"].as<int32_t>();
    p.logprobs = vm["logprobs"].as<bool>() || p.top_logprobs > 0;

    GenerateJobOptions job;
    job.batch_size = vm["batch-size"].as<int>();
    job.max_prompt_tokens = vm["max-prompt-tokens"].as<int64_t>();
    job.prefill_chunk = vm["prefill-chunk"].as<int64_t>();
    job.seed = vm["seed"].as<uint64_t>();
    const int64_t max_model_len = vm["max-model-len"].as<int64_t>();
    const int threads = vm["threads"].as<int>();
    if (job.batch_size < 1 || job.batch_size > 4096) throw UsageError("--batch-size must be in [1, 4096]");
    if (job.max_prompt_tokens < 0) throw UsageError("--max-prompt-tokens must be >= 0");
    if (job.prefill_chunk < 1) throw UsageError("--prefill-chunk must be >= 1");
    if (max_model_len < 0 || max_model_len == 1) throw UsageError("--max-model-len must be 0 or >= 2");
    if (threads < 0) throw UsageError("--threads must be >= 0");
    const std::string dtype_name = vm["dtype"].as<std::string>();
    if (dtype_name != "f32" && dtype_name != "bf16") throw UsageError("--dtype must be f32 or bf16");
    InputFormat input_format;
    OutputOrder order;
    try {
        input_format = input_format_from_name(vm["input-format"].as<std::string>());
        order = output_order_from_name(vm["order"].as<std::string>());
    } catch (const Error& e) {
        throw UsageError(e.what());
    }
    SamplingLimits limits;
    limits.max_n = std::min(limits.max_n, job.batch_size);
    if (auto problem = validate_sampling_params(p, limits)) throw UsageError(*problem);

    MpiEnv mpi(nullptr, nullptr);  // a plain `gridlm generate` is an MPI singleton
    if (mpi.size() > 1) throw Error(str("generate runs on one rank for now; this job has ", mpi.size()));

    const std::string prompts_path = vm["prompts"].as<std::string>();
    const std::string output_path = vm["output"].as<std::string>();
    if (prompts_path != "-") {
        std::ifstream probe(prompts_path);
        if (!probe || fs::is_directory(prompts_path)) throw Error(str("cannot open prompts file ", prompts_path));
    }
    check_output_writable(output_path);

    Loaded ck = open_checkpoint(vm["model"].as<std::string>());
    const int64_t context = max_model_len > 0 && (ck.config.n_ctx_train <= 0 || max_model_len < ck.config.n_ctx_train)
                                ? max_model_len
                                : ck.config.n_ctx_train;
    if (context < 2) throw Error("the checkpoint does not state its context length; give --max-model-len");
    job.context = context;
    limits.max_tokens = (int32_t)std::min<int64_t>(context, INT32_MAX);
    if (p.max_tokens > limits.max_tokens) p.max_tokens = limits.max_tokens;  // the default fits any context

    Tokenizer tokenizer(ck.tokenizer);
    ChatPrompter chat(ck.tokenizer);
    Model model(ck.config, *ck.weights, dtype_from_name(dtype_name), threads);
    ck.weights.reset();  // the weights now live in the model; drop the file's copy
    ck.gguf.reset();
    auto kv = model.make_kv_cache(job.batch_size, context);

    PromptReaderOptions ropts;
    ropts.format = input_format;
    ropts.defaults = p;
    ropts.limits = limits;
    PromptReader reader(prompts_path, ropts);

    ResultWriterOptions wopts;
    wopts.order = order;
    wopts.model_name = vm.count("model-name") ? vm["model-name"].as<std::string>() : ck.name;
    // The output shape follows the input: OpenAI batch in, OpenAI batch out.
    if (reader.format() == InputFormat::input_format_openai) wopts.shape = OutputShape::output_shape_openai;
    ResultWriter writer(output_path, wopts);

    ProgressOptions popts;
    popts.total = count_records(prompts_path);
    popts.tty = ::isatty(STDERR_FILENO) != 0;
    popts.interval_s = vm["progress-interval"].as<double>();
    popts.quiet = vm["quiet"].as<bool>();
    Progress progress(popts);
    if (!popts.quiet) {
        std::fprintf(stderr, "gridlm: %s (%s, %s weights), context %lld, batch %d, chat template %s\n",
                     wopts.model_name.c_str(), ck.config.arch.c_str(), dtype_name.c_str(), (long long)context,
                     job.batch_size, chat.template_name().c_str());
    }

    const GenerateJobResult result =
        run_generate_job(reader, writer, GenerateModel{model, *kv, tokenizer, chat}, progress, job);
    writer.close();
    progress.finish();
    return result.records_failed > 0 ? exit_partial : exit_ok;
}

}  // namespace

GRIDLM_COMMAND(generate, "generate", "generate completions for a file of prompts (txt, JSONL, OpenAI batch)",
               run_generate);

}  // namespace gridlm
