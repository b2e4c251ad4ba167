// `gridlm generate`'s command line (see generate_options.h).
#include "launch/generate_options.h"

#include <algorithm>
#include <stdexcept>

#include "engine/core/error.h"
#include "engine/tokenizer/chat_template.h"
#include "launch/cli_options.h"
#include "launch/commands.h"
#include "launch/open_checkpoint.h"
#include "launch/sampling_options.h"

namespace gridlm {
namespace {

namespace po = boost::program_options;

const char* const usage_head =
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
    "With --filter, a line a rule matched carries \"filter\": {\"rule\", \"action\": reject|redact|flag,\n"
    "\"where\": prompt|completion}; a rejected prompt's line has no \"text\", a completion rejected while it\n"
    "is generated keeps the text before the match (finish_reason \"content_filter\").\n"
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
    "exit status: 0 every record done (filtered records included); 3 job finished but some records failed\n"
    "             (see their error lines);\n"
    "             4 stopped by SIGTERM or SIGINT (lines written are complete; --resume continues);\n"
    "             5 stopped by --max-error-rate (too many error records; lines written are complete);\n"
    "             7 stopped by --watchdog-s: a rank was silent or none made progress (the message\n"
    "             names the rank; lines written are complete; --resume continues);\n"
    "             2 usage error (bad option); 1 fatal error (missing input, unwritable output, output\n"
    "             in use by another job, bad checkpoint, I/O failure, or records read without an\n"
    "             output line: the error \"records_missing\" names them; --resume runs them)\n\n"
    "options";

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

}  // namespace

po::options_description generate_options() {
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
         "auto (.txt extension, else detected from the first 64 lines; see the user guide), txt, jsonl or "
         "openai")
        ("strict-fields", po::bool_switch(),
         "a record field gridlm does not know is that record's error (unknown_field) instead of a warning "
         "in the summary")
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
         "matrix converted to f32, bf16 or f16; on the cuda backend auto means bf16")
        ("model-name", po::value<std::string>(), "\"model\" in OpenAI-shaped output (default: the checkpoint's name)")
        ("kv-cache-bytes", po::value<std::string>()->default_value("0"),
         "KV cache budget per rank: bytes, or with a suffix K, M, G, T (powers of 1000, also KB..TB) or Ki, Mi, "
         "Gi, Ti (powers of 1024, also KiB..TiB), e.g. 16G, 16GiB; the smallest rank's block count holds for all; "
         "sequences are "
         "admitted by the blocks their prompts need and preempted, then recomputed, when decoding runs out; "
         "0 = no budget (grows as needed) on the cpu backend, the GPU memory the weights leave less a reserve "
         "on the cuda backend")
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
        ("quiet,q", po::bool_switch(), "no progress, only the final summary")
        ("metrics-file", po::value<std::string>(),
         "write the job's metrics to this file in Prometheus text format (node_exporter textfile "
         "collector: written to a temporary file and renamed) every --metrics-interval seconds and at the end")
        ("metrics-interval", po::value<double>()->default_value(5.0), "seconds between metrics file updates")
        ("trace", po::value<std::string>(),
         "write a Chrome / Perfetto trace of every rank's steps (forward, send / receive waits, sampling, "
         "admission, preemption) to this file, merged by the writer rank; `gridlm report` draws it")
        ("filter", po::value<std::string>(),
         "content filter rules file (or 'default': the shipped prompt-injection set): regexes that reject, "
         "redact or flag prompts and completions (docs/user-guide.md, Content filter)")
        ("max-error-rate", po::value<double>(),
         "stop the job (exit 5, resumable) once --min-records records are done and more than this share "
         "of them are error records, e.g. 0.2")
        ("min-records", po::value<int64_t>()->default_value(100),
         "records done before --max-error-rate is checked")
        ("watchdog-s", po::value<double>()->default_value(300),
         "multi-rank jobs: end the job (exit 7, resumable) when a rank sends no heartbeat for this many "
         "seconds (stopped, hung) or no rank makes progress for as long (all wait in MPI calls that never "
         "complete), naming the rank; a long step does not count (a computing rank makes progress); 0 = off, "
         "else 1 to 1e6");
    // clang-format on
    add_kv_cache_dtype_option(opts);
    add_backend_options(opts);
    add_log_options(opts);
    return opts;
}

GenerateSettings generate_settings(const po::variables_map& vm) {
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
    const std::string kv_text = vm["kv-cache-bytes"].as<std::string>();
    const int64_t kv_bytes = kv_text == "0" ? 0 : parse_bytes(kv_text, "kv-cache-bytes");
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
    GenerateSettings s;
    s.metrics_file = vm.count("metrics-file") ? vm["metrics-file"].as<std::string>() : "";
    s.metrics_interval_s = vm["metrics-interval"].as<double>();
    if (!(s.metrics_interval_s > 0)) throw UsageError("--metrics-interval must be > 0 seconds");
    s.trace_file = vm.count("trace") ? vm["trace"].as<std::string>() : "";
    s.filter = vm.count("filter") ? vm["filter"].as<std::string>() : "";
    if (vm.count("max-error-rate")) {
        s.max_error_rate = vm["max-error-rate"].as<double>();
        if (!(s.max_error_rate >= 0 && s.max_error_rate < 1))
            throw UsageError(str("--max-error-rate ", s.max_error_rate, " is not a share in [0, 1)"));
    }
    s.min_records = vm["min-records"].as<int64_t>();
    if (!vm["min-records"].defaulted() && !vm.count("max-error-rate"))
        throw UsageError("--min-records goes with --max-error-rate");
    if (s.min_records < 1) throw UsageError(str("--min-records ", s.min_records, " must be >= 1"));
    s.watchdog_s = vm["watchdog-s"].as<double>();
    if (!(s.watchdog_s == 0 || (s.watchdog_s >= 1 && s.watchdog_s <= 1e6)))
        throw UsageError(str("--watchdog-s ", s.watchdog_s, " must be 0 (off) or a number of seconds from 1 to 1e6"));
    s.job = std::move(job);
    s.sampling = p;
    s.limits = limits;
    s.max_model_len = max_model_len;
    s.threads = threads;
    s.backend = backend_settings_from(vm);
    s.weight_policy = weight_policy;
    s.input_format = input_format;
    s.strict_fields = vm["strict-fields"].as<bool>();
    s.order = order;
    s.grid = grid_shape;
    s.pp_layers = std::move(pp_layers);
    s.kv_bytes = kv_bytes;
    s.kv_dtype = kv_dtype;
    s.resume = resume;
    s.retry_errors = retry_errors;
    return s;
}

// The options that change what a record's line says (the grid, threads and batching do not).
std::map<std::string, std::string> output_options(const po::variables_map& vm, const SamplingParams& p,
                                                  uint64_t job_seed, const std::string& chat_template) {
    std::map<std::string, std::string> o = sampling_manifest_options(p, job_seed);
    for (const char* k : {"input-format", "order", "dtype", "kv-cache-dtype"}) o[k] = vm[k].as<std::string>();
    o["max-model-len"] = str(vm["max-model-len"].as<int64_t>());
    o["max-prompt-tokens"] = str(vm["max-prompt-tokens"].as<int64_t>());
    o["model-name"] = vm.count("model-name") ? vm["model-name"].as<std::string>() : "";
    if (vm["strict-fields"].as<bool>()) o["strict-fields"] = "1";  // absent when off: older manifests match
    // A changed template changes chat prompts: --resume must see the same text.
    // (absent: the checkpoint's own, so manifests written before the option existed still match)
    if (!chat_template.empty()) o["chat-template"] = chat_template_digest(chat_template);
    return o;
}

}  // namespace gridlm
