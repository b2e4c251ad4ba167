// `gridlm compare`: A/B comparison of two checkpoints on one prompts file. Runs `generate` with A,
// then with B, then `score` of each model's completions under the other model, all in this
// process on the same grid, then writes report.json / report.html (launch/compare_report.h) and
// checks the --fail-if gates (exit 6 when one holds), so it can serve as a pipeline's rollback check.
#include <climits>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <string>
#include <vector>

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include "engine/core/error.h"
#include "engine/core/log.h"
#include "engine/core/sampling_fields.h"
#include "launch/cli_options.h"
#include "launch/commands.h"
#include "launch/compare_inputs.h"
#include "launch/compare_report.h"
#include "launch/grid_options.h"
#include "launch/open_checkpoint.h"
#include "launch/sampling_options.h"
#include "parallel/mpi_env.h"

namespace gridlm {
namespace {

namespace po = boost::program_options;
namespace fs = std::filesystem;

const char* usage_head =
    "usage: gridlm compare --a CKPT_A --b CKPT_B --prompts FILE --output DIR [--fail-if EXPR]... [options]\n\n"
    "Runs both checkpoints on the same prompts with the same sampling options and seeds, one after the\n"
    "other on the same grid (under `mpirun -n N gridlm compare ... --dp/--pp/--tp` every run uses all N\n"
    "ranks), measures how far B's completions are from A's and writes in DIR (created if needed; under\n"
    "mpirun on several nodes it must be a shared directory):\n"
    "  prompts.jsonl   FILE's records (txt, JSONL or OpenAI batch input, as generate reads it), one JSONL\n"
    "                  record per line with an explicit \"id\" and \"logprobs\": true\n"
    "  a.jsonl b.jsonl generate's output with A and with B (gridlm shape, --order input)\n"
    "  b_on_a.jsonl    gridlm score of A's completions under B (records with a \"completion\"), and\n"
    "  a_on_b.jsonl    of B's under A (*.input.jsonl: their inputs)\n"
    "  report.json     records, both_ok, exact_match, exact_match_rate (text equal, over the records both\n"
    "                  models completed), first_divergence {diverged, mean, median, p90, histogram} (the\n"
    "                  first token index where the ids differ), logprob {a_on_a, b_on_a, a_on_b, b_on_b,\n"
    "                  delta_b_on_a, delta_a_on_b} (mean log-prob per token of each model on each model's\n"
    "                  completions, pooled over the records where all four are known), length_ratio,\n"
    "                  a / b {model, ok, errors, error_rate, filtered, filtered_rate, finish_reason,\n"
    "                  length {count, mean, p50, p90}}, gates, gates_failed, per_record [...]\n"
    "  report.html     the same as a page (no external assets) with the first --html-records differing\n"
    "                  records side by side, the divergence point marked\n"
    "Both checkpoints must share the vocabulary (the comparison is token by token).\n\n"
    "Gates: --fail-if 'METRIC OP NUMBER' (repeatable, or several separated by commas), OP one of\n"
    "< <= > >=. A gate that holds means B fails it: --fail-if 'match<0.9' fails when fewer than 90% of\n"
    "the texts match. A gate whose metric has no value fails (nothing to show B passes), except\n"
    "divergence when no record diverged. METRIC:\n"
    "%METRICS%"
    "Resuming: an existing DIR/a.jsonl or b.jsonl is never overwritten; with --resume both generate runs\n"
    "continue (as generate --resume) and the scores and the report are made again. --report-only\n"
    "makes the report and checks the gates from DIR's files without running a model.\n\n"
    "exit status: 0 done and every gate passed (records that failed in a run are counted in the report,\n"
    "             not in the status); 6 a gate failed; 4 stopped by SIGTERM or SIGINT (--resume continues);\n"
    "             2 usage error (a bad option or gate); 1 fatal error (unreadable checkpoint or input,\n"
    "             different vocabularies, unwritable DIR)\n\n"
    "options";

std::string usage_text() {
    std::string metrics;
    for (const auto& [name, what] : gate_metrics())
        metrics += str("  ", name, std::string(name.size() < 16 ? 16 - name.size() : 1, ' '), what, "\n");
    std::string u = usage_head;
    u.replace(u.find("%METRICS%"), 9, metrics + "\n");
    return u;
}

// The options passed on as they were given: to both generate runs, or to all four runs.
const std::set<std::string>& generate_options() {
    static const std::set<std::string> s = [] {
        std::set<std::string> o = {"max-seqs",           "max-model-len", "max-prompt-tokens", "prefill-chunk",
                                   "max-batched-tokens", "micro-batches", "schedule"};
        for (const SamplingField& f : sampling_fields())
            if (std::string(f.option_name) != "logprobs") o.insert(f.option_name);  // compare always asks
        return o;
    }();
    return s;
}
const std::set<std::string>& shared_options() {
    static const std::set<std::string> s = {"threads",       "dp",    "pp",        "tp", "pp-layers", "kv-cache-dtype",
                                            "chat-template", "quiet", "log-format"};
    return s;
}

// "--name=value" for each value of the options in `names` that the command line gave.
void forward(const po::parsed_options& parsed, const std::set<std::string>& names, std::vector<std::string>& out) {
    for (const po::option& o : parsed.options) {
        if (!names.count(o.string_key)) continue;
        if (o.value.empty()) out.push_back("--" + o.string_key);
        for (const std::string& v : o.value) out.push_back(str("--", o.string_key, "=", v));
    }
}

int run_command(const std::string& name, const std::vector<std::string>& args) {
    for (const Command& c : command_registry())
        if (c.name == name) return c.run(args);
    throw Error(str("no command '", name, "' in this build"));
}

// Compare works token by token: B's ids must mean what A's mean.
void check_same_vocabulary(const std::string& a_path, const std::string& b_path, bool chat_template_given) {
    const OpenedCheckpoint a = open_checkpoint(a_path), b = open_checkpoint(b_path);
    const std::string both = str("checkpoints ", a_path, " (A) and ", b_path, " (B)");
    const std::string why = "; compare matches token ids and needs one vocabulary";
    if (a.config.n_vocab != b.config.n_vocab)
        throw Error(str(both, " have vocabularies of ", a.config.n_vocab, " and ", b.config.n_vocab, " ids", why));
    const auto &ta = a.tokenizer.tokens, &tb = b.tokenizer.tokens;
    if (ta.size() != tb.size())
        throw Error(str(both, " have tokenizers of ", ta.size(), " and ", tb.size(), " tokens", why));
    for (size_t i = 0; i < ta.size(); ++i)
        if (ta[i] != tb[i])
            throw Error(str(both, " differ at token id ", i, ": '", ta[i], "' in A, '", tb[i], "' in B", why));
    if (a.tokenizer.eos_id != b.tokenizer.eos_id || a.tokenizer.bos_id != b.tokenizer.bos_id ||
        a.tokenizer.add_bos != b.tokenizer.add_bos)
        throw Error(str(both, " have different BOS / EOS settings", why));
    if (!chat_template_given && a.tokenizer.chat_template != b.tokenizer.chat_template)
        log_warning("compare_chat_template",
                    "compare: A and B have different chat templates: chat records are rendered differently for "
                    "each (--chat-template FILE renders both the same)");
}

// Writes `text` to `path` through a temporary file, so a reader never sees half a report.
void write_file(const std::string& path, const std::string& text) {
    const std::string tmp = path + ".tmp";
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        out << text;
        out.close();
        if (!out) throw Error(str("cannot write ", tmp));
    }
    std::error_code ec;
    fs::rename(tmp, path, ec);
    if (ec) throw Error(str("cannot rename ", tmp, " to ", path, ": ", ec.message()));
}

// report-only without --a / --b: the names the last report gave.
std::string model_name_from_report(const std::string& report, const char* side) {
    std::ifstream in(report);
    if (!in) return side;
    const nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
    if (j.is_discarded() || !j.contains(side) || !j[side].is_object()) return side;
    return j[side].value("model", std::string(side));
}

int run_compare(const std::vector<std::string>& args) {
    po::options_description opts(usage_text());
    // clang-format off
    opts.add_options()
        ("help,h", "show this help")
        ("a", po::value<std::string>(), "checkpoint A, the reference (.h5, .gguf or a Hugging Face directory; required)")
        ("b", po::value<std::string>(), "checkpoint B, the candidate (required)")
        ("prompts,p", po::value<std::string>(), "prompts file: txt, JSONL or OpenAI batch input (required)")
        ("output,o", po::value<std::string>(), "directory for the outputs and the report (required)")
        ("fail-if", po::value<std::vector<std::string>>()->composing(),
         "gate METRIC OP NUMBER, e.g. 'match<0.9' (repeatable; comma-separated lists too): exit 6 when it holds")
        ("html-records", po::value<int>()->default_value(20), "differing records shown in report.html at most")
        ("resume", po::bool_switch(), "continue the generate runs of DIR (see Resuming)")
        ("report-only", po::bool_switch(), "make the report and check the gates from DIR's files; run no model")
        ("input-format", po::value<std::string>()->default_value("auto"),
         "auto (.txt extension, else up to 64 sampled lines), txt, jsonl or openai")
        ("dtype", po::value<std::string>()->default_value("auto"),
         "weight matrices of both models in memory: auto (as stored: a Q4_1 file keeps its blocks), f32, bf16, f16")
        ("dtype-a", po::value<std::string>(), "--dtype for A alone (e.g. one checkpoint as f32 against itself as bf16)")
        ("dtype-b", po::value<std::string>(), "--dtype for B alone")
        ("chat-template", po::value<std::string>(), "Jinja chat template file rendering 'messages' records for both")
        ("threads", po::value<int>()->default_value(0), "CPU threads per rank; 0 = the cores this rank may use")
        ("max-seqs", po::value<int>()->default_value(16), "sequences in flight per replica (generate)")
        ("max-model-len", po::value<int64_t>()->default_value(0),
         "tokens per sequence (prompt + output); 0 = the model's training context (also score's --ctx)")
        ("max-prompt-tokens", po::value<int64_t>()->default_value(0), "longer prompts are record errors")
        ("prefill-chunk", po::value<int64_t>()->default_value(1024), "prompt tokens per model step at most")
        ("max-batched-tokens", po::value<int64_t>()->default_value(0), "tokens per step at most; 0 = no cap")
        ("micro-batches", po::value<int>()->default_value(0), "lanes (as generate)")
        ("schedule", po::value<std::string>()->default_value("continuous"), "continuous or static (as generate)")
        ("quiet,q", po::bool_switch(), "only the runs' summaries and the report's");
    // clang-format on
    add_kv_cache_dtype_option(opts);
    add_grid_options(opts, "record");
    add_log_options(opts);
    po::options_description sampling("sampling (passed to both generate runs; the same seeds for A and B)");
    add_sampling_options(sampling);
    opts.add(sampling);

    const po::variables_map vm = parse_options(args, opts);
    if (vm.count("help")) {
        std::cout << opts << "\n";
        return exit_ok;
    }
    apply_log_options(vm);
    const bool report_only = vm["report-only"].as<bool>(), resume = vm["resume"].as<bool>();
    require_options(vm, {"output"});
    if (!report_only) require_options(vm, {"a", "b", "prompts"});
    if (report_only && resume) throw UsageError("--report-only runs nothing to resume; give one of them");
    const std::vector<Gate> gates =
        parse_gates(vm.count("fail-if") ? vm["fail-if"].as<std::vector<std::string>>() : std::vector<std::string>{});
    const int html_records = vm["html-records"].as<int>();
    if (html_records < 0) throw UsageError("--html-records must be >= 0");
    InputFormat input_format;
    try {
        input_format = input_format_from_name(vm["input-format"].as<std::string>());
    } catch (const Error& e) {
        throw UsageError(e.what());
    }
    const std::string prompts = vm.count("prompts") ? vm["prompts"].as<std::string>() : "";
    if (prompts == "-") throw UsageError("--prompts -: compare needs a file (standard input cannot be read twice)");
    const std::string dtype = vm["dtype"].as<std::string>();
    const std::string dtype_a = vm.count("dtype-a") ? vm["dtype-a"].as<std::string>() : dtype;
    const std::string dtype_b = vm.count("dtype-b") ? vm["dtype-b"].as<std::string>() : dtype;
    for (const std::string& d : {dtype_a, dtype_b}) weight_policy_option(d);  // a bad one is a usage error now
    const bool quiet = vm["quiet"].as<bool>();
    const std::string dir = vm["output"].as<std::string>();
    const std::string a_path = vm.count("a") ? vm["a"].as<std::string>() : "";
    const std::string b_path = vm.count("b") ? vm["b"].as<std::string>() : "";
    const CompareFiles files{dir + "/prompts.jsonl", dir + "/a.jsonl", dir + "/b.jsonl", dir + "/b_on_a.jsonl",
                             dir + "/a_on_b.jsonl"};

    po::parsed_options parsed(nullptr);
    try {
        parsed = po::command_line_parser(args).options(opts).run();
    } catch (const po::error& e) {
        throw UsageError(e.what());
    }
    std::vector<std::string> gen_common = {"--order", "input", "--logprobs", "--prompts", files.prompts};
    std::vector<std::string> score_common = {"--order", "input"};
    forward(parsed, generate_options(), gen_common);
    forward(parsed, shared_options(), gen_common);
    forward(parsed, shared_options(), score_common);
    if (vm["max-model-len"].as<int64_t>() > 0) score_common.push_back(str("--ctx=", vm["max-model-len"].as<int64_t>()));

    // generate and score run inside it (their MpiEnv leaves MPI up); their --watchdog-s thread
    // needs MPI_THREAD_MULTIPLE.
    MpiEnv mpi(nullptr, nullptr, true);
    const bool lead = mpi.rank() == 0;  // reads and writes compare's own files
    auto say = [&](const std::string& text) {
        if (lead && !quiet) log_info("compare_step", text);
    };
    // rank 0's value on every rank (a collective)
    auto from_lead = [&](int v) { return mpi.max_over_ranks(lead ? v : INT_MIN); };

    bool a_exists = false, b_exists = false;
    if (!report_only) {
        collective_phase(mpi, "compare", [&] {
            if (!lead) return;
            std::error_code ec;
            if (!fs::is_regular_file(prompts, ec)) throw Error(str("cannot open prompts file ", prompts));
            a_exists = fs::exists(files.a_output, ec);
            b_exists = fs::exists(files.b_output, ec);
            if (!resume && (a_exists || b_exists))
                throw Error(str(a_exists ? files.a_output : files.b_output,
                                " already exists; give --resume to continue that comparison, or another --output"));
            check_same_vocabulary(a_path, b_path, vm.count("chat-template") != 0);
            fs::create_directories(dir, ec);
            if (!fs::is_directory(dir)) throw Error(str("cannot create output directory ", dir, ": ", ec.message()));
            const int64_t n = write_compare_prompts(prompts, input_format, files.prompts);
            say(str("compare: ", n, " records of ", prompts, " in ", files.prompts));
        });
        a_exists = from_lead(a_exists) > 0;
        b_exists = from_lead(b_exists) > 0;

        // Every rank runs the same commands in the same order: each is a collective job.
        auto generate = [&](const char* step, const std::string& model, const std::string& d, const std::string& out,
                            bool exists) {
            say(str("compare: ", step, " generate with ", model));
            std::vector<std::string> a = {"--model", model, "--output", out, "--dtype", d};
            a.insert(a.end(), gen_common.begin(), gen_common.end());
            if (resume && exists) a.push_back("--resume");
            const int code = run_command("generate", a);
            // Failed records stay in the output and the report; an interrupted run stops here.
            if (code != exit_ok && code != exit_partial) throw ExitStatus{code};
        };
        generate("[1/4]", a_path, dtype_a, files.a_output, a_exists);
        generate("[2/4]", b_path, dtype_b, files.b_output, b_exists);

        auto score = [&](const char* step, const std::string& model, const std::string& d, const std::string& generated,
                         const std::string& out, const char* what) {
            const std::string input = out.substr(0, out.size() - 6) + ".input.jsonl";
            int64_t n = 0;
            collective_phase(mpi, "compare", [&] {
                if (!lead) return;
                std::error_code ec;
                fs::remove(out, ec);  // compare's own file of an earlier run: score never overwrites
                n = write_cross_score_input(files.prompts, generated, input);
            });
            n = from_lead((int)std::min<int64_t>(n, INT_MAX));
            if (n == 0) {
                say(str("compare: ", step, " no completion of ", what, " to score"));
                return;
            }
            say(str("compare: ", step, " score ", what, " with ", model));
            std::vector<std::string> a = {"--model", model, "--prompts", input, "--output", out, "--dtype", d};
            a.insert(a.end(), score_common.begin(), score_common.end());
            const int code = run_command("score", a);
            if (code != exit_ok && code != exit_partial) throw ExitStatus{code};
        };
        score("[3/4]", b_path, dtype_b, files.a_output, files.b_on_a, "A's completions");
        score("[4/4]", a_path, dtype_a, files.b_output, files.a_on_b, "B's completions");
    }

    bool failed = false;
    collective_phase(mpi, "compare", [&] {
        if (!lead) return;
        const std::string json_path = dir + "/report.json", html_path = dir + "/report.html";
        const std::string a_name = report_only && a_path.empty() ? model_name_from_report(json_path, "a") : a_path;
        const std::string b_name = report_only && b_path.empty() ? model_name_from_report(json_path, "b") : b_path;
        const CompareReport report = build_compare_report(a_name, b_name, read_compare_records(files), gates);
        write_file(json_path, compare_report_json(report).dump(1) + "\n");
        write_file(html_path, compare_report_html(report, (size_t)html_records));
        const CompareSummary& s = report.summary;
        auto fixed = [](const std::optional<double>& v, int digits) {
            if (!v) return std::string("none");
            char buf[64];
            std::snprintf(buf, sizeof(buf), "%.*f", digits, *v);
            return std::string(buf);
        };
        std::cout << "compare: " << s.records << " records, " << s.both_ok << " completed by both, exact match "
                  << s.exact_match << " (" << fixed(s.exact_match_rate, 4) << "), " << s.diverged
                  << " diverge (first divergence mean " << fixed(s.divergence.mean, 1) << ")\n"
                  << "compare: log-prob per token: A on A " << fixed(s.a_on_a, 4) << ", B on A " << fixed(s.b_on_a, 4)
                  << " (delta " << fixed(s.delta_b_on_a, 4) << "); B on B " << fixed(s.b_on_b, 4) << ", A on B "
                  << fixed(s.a_on_b, 4) << " (delta " << fixed(s.delta_a_on_b, 4) << ")\n"
                  << "compare: errors A " << s.a.errors << ", B " << s.b.errors << "; filtered A " << s.a.filtered
                  << ", B " << s.b.filtered << "\n"
                  << gate_lines(report.gates) << "compare: report " << json_path << ", " << html_path << std::endl;
        failed = report.gates_failed();
    });
    return from_lead(failed ? exit_gate_failed : exit_ok);
}

}  // namespace

GRIDLM_COMMAND(compare, "compare",
               "A/B comparison of two checkpoints on one prompts file, with gates for a rollback check", run_compare);

}  // namespace gridlm
