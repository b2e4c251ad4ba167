// `gridlm convert`: GGUF file, Hugging Face model directory or gridlm .h5 -> native HDF5
// checkpoint (docs/checkpoint-format.md), streamed tensor by tensor with progress on stderr.
#include <unistd.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/core/error.h"
#include "engine/core/log.h"
#include "io/gguf.h"
#include "io/gguf_model.h"
#include "io/h5_checkpoint.h"
#include "io/hf_checkpoint.h"
#include "launch/cli_options.h"
#include "launch/commands.h"

namespace gridlm {
namespace {

namespace po = boost::program_options;
namespace fs = std::filesystem;

const char* usage_head =
    "usage: gridlm convert --from SRC --to OUT.h5 [--dtype TYPE] [--vocab-only] [--force]\n\n"
    "Writes a gridlm checkpoint (one HDF5 file: config, tokenizer, weights in Hugging Face names and\n"
    "orientation; see docs/checkpoint-format.md). SRC is one of\n"
    "  - a .gguf file (llama, qwen2, deepseek2),\n"
    "  - a Hugging Face model directory (config.json, tokenizer.json, tokenizer_config.json,\n"
    "    model.safetensors or model.safetensors.index.json + shards; F32, F16, BF16 or\n"
    "    block-scaled F8_E4M3 weights),\n"
    "  - a gridlm .h5 checkpoint (to store it in other types).\n"
    "The file is written to OUT.h5.tmp and renamed when complete: a failed convert leaves no OUT.h5.\n"
    "Progress goes to stderr; to stdout one line per tensor whose values change (its relative RMSE\n"
    "and max |error| against the source's values, and any type fallback), a total error line and a\n"
    "one-line summary.\n\n"
    "--dtype TYPE:\n"
    "  keep      every tensor in its stored type: GGUF blocks are copied as they are (no requantising)\n"
    "  auto      keep when the source holds block-quantised tensors (a quantised GGUF), else bf16 / f16\n"
    "            when every source tensor already is, else f32. Lossless in every case\n"
    "            (block-scaled F8_E4M3 weights, as DeepSeek-V3 / R1 ship, are dequantised: keep and auto\n"
    "            store them as f32, 4x their bytes; bf16 rounds them, or quantise them to q8_0 / q4_k)\n"
    "  f32, bf16, f16\n"
    "            every tensor in that float type (f16 fails on values beyond +-65504)\n"
    "  q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k\n"
    "            2-D weights quantised with the reference (llama.cpp) quantisers, from any source\n"
    "            (quantised sources are dequantised first; tensors already of that type are copied).\n"
    "            Norms and biases stay f32. As llama.cpp does, the LM head (the embedding when tied)\n"
    "            gets q6_k, or q8_0 for --dtype q8_0 or when its rows are not whole 256-blocks. Rows that\n"
    "            are not whole blocks of the type fall back to a legacy type of similar size: q4_k ->\n"
    "            q5_0, q5_k -> q5_1, q6_k -> q8_0; f32 when not even 32-blocks fit\n\n"
    "exit status: 0 success; 1 unreadable or invalid input, write failure; 2 usage error\n\n"
    "options";

struct Source {
    std::string kind;  // "gguf", "hf", "h5"
    ModelConfig cfg;
    TokenizerData tok;
    std::shared_ptr<const GgufFile> gguf;
    std::unique_ptr<TensorSource> weights;  // null for --vocab-only
};

// Identifies SRC by content, not by name: GGUF and HDF5 both start with a magic number.
std::string source_kind(const std::string& path) {
    std::error_code ec;
    if (fs::is_directory(path, ec)) return "hf";
    if (!fs::exists(path, ec)) throw Error(str("input '", path, "' does not exist"));
    std::ifstream in(path, std::ios::binary);
    char magic[8] = {};
    if (!in || !in.read(magic, 8)) throw Error(str("cannot read input '", path, "' (empty or unreadable)"));
    if (std::string(magic, 4) == "GGUF") return "gguf";
    if (std::string(magic, 8) == "\x89HDF\r\n\x1a\n") return "h5";
    throw Error(
        str("input '", path, "' is neither a GGUF file, an HDF5 checkpoint nor a Hugging Face model directory"));
}

Source open_source(const std::string& path, bool vocab_only) {
    Source s;
    s.kind = source_kind(path);
    if (s.kind == "gguf") {
        // Vocabulary-only reads must work on GGUF files whose tensor data is cut off.
        s.gguf = std::make_shared<const GgufFile>(path, /*need_tensor_data=*/!vocab_only);
        s.cfg = gguf_model_config(*s.gguf);
        s.tok = gguf_tokenizer_data(*s.gguf);
        if (!vocab_only) s.weights = std::make_unique<GgufTensorSource>(s.gguf);
    } else if (s.kind == "hf") {
        auto hf = std::make_unique<HfCheckpoint>(path, /*need_tensor_data=*/!vocab_only);
        s.cfg = hf->config();
        s.tok = hf->tokenizer();
        if (!vocab_only) s.weights = std::move(hf);
    } else {
        auto h5 = std::make_unique<H5Checkpoint>(path);
        s.cfg = h5->config();
        s.tok = h5->tokenizer();
        if (!vocab_only && h5->vocab_only()) {
            throw Error(str(path, " is a vocabulary-only checkpoint; convert it with --vocab-only"));
        }
        if (!vocab_only) s.weights = std::move(h5);
    }
    return s;
}

const char* dtype_choices = "keep, auto, f32, bf16, f16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k";

// The --dtype value as a type; nullopt for keep / auto. Throws UsageError for anything else.
std::optional<DType> parse_dtype(const std::string& opt) {
    if (opt == "keep" || opt == "auto") return std::nullopt;
    for (const DTypeTraits& t : dtype_table)
        if (opt == t.name) return t.type;
    throw UsageError(str("--dtype '", opt, "' is not one of ", dtype_choices));
}

bool has_block_tensors(const TensorSource& w) {
    for (const TensorInfo& t : w.tensors()) {
        try {
            if (dtype_is_quantized(w.stored_type(t.name))) return true;
        } catch (const Error&) {
            return true;  // a GGUF block type outside gridlm's table
        }
    }
    return false;
}

// The legacy type a K type falls back to when a row is not whole 256-blocks (llama.cpp's choice).
DType k_fallback(DType t) {
    switch (t) {
        case DType::dtype_q4_k:
            return DType::dtype_q5_0;
        case DType::dtype_q5_k:
            return DType::dtype_q5_1;
        case DType::dtype_q6_k:
            return DType::dtype_q8_0;
        default:
            return t;
    }
}

// Stored type of every tensor for --dtype, with a note where it differs from what was asked.
class TypePolicy {
public:
    TypePolicy(const std::string& opt, const TensorSource& w, const ModelConfig& cfg) : w_(w), cfg_(cfg) {
        target_ = parse_dtype(opt);
        keep_ = opt == "keep" || (opt == "auto" && has_block_tensors(w));
        if (opt == "auto" && !keep_) {
            bool all_bf16 = !w.tensors().empty(), all_f16 = !w.tensors().empty();
            for (const TensorInfo& t : w.tensors()) {
                all_bf16 &= t.source_type == "BF16";
                all_f16 &= t.source_type == "F16";
            }
            target_ = all_bf16 ? DType::dtype_bf16 : all_f16 ? DType::dtype_f16 : DType::dtype_f32;
        }
    }
    // "keep" or the single target type, for messages.
    std::string describe() const { return keep_ ? "stored types (keep)" : std::string(dtype_name(*target_)); }

    DType operator()(const TensorInfo& t) {
        if (keep_) {
            const DType s = w_.stored_type(t.name);
            if (dtype_is_quantized(s) && t.shape.size() != 2) return note(t, DType::dtype_f32, "1-D, dequantised");
            return s;
        }
        const DType want = *target_;
        if (!dtype_is_quantized(want)) return want;
        if (t.shape.size() != 2) return DType::dtype_f32;  // norms and biases
        const int64_t cols = t.shape[1];
        const bool head = t.name == "lm_head.weight" || (cfg_.tied_embeddings && t.name == "model.embed_tokens.weight");
        if (head) {
            const DType h = want == DType::dtype_q8_0 || cols % 256 != 0 ? DType::dtype_q8_0 : DType::dtype_q6_k;
            if (cols % 32 != 0)
                return note(t, DType::dtype_f32, str("LM head, ", cols, " columns are not whole blocks"));
            return h == want ? h : note(t, h, "LM head, as llama.cpp");
        }
        if (cols % dtype_block_size(want) == 0) return want;
        const DType fb = k_fallback(want);
        if (fb != want && cols % dtype_block_size(fb) == 0) {
            return note(t, fb, str(dtype_name(want), " fallback: ", cols, " columns are not whole 256-blocks"));
        }
        return note(t, DType::dtype_f32, str(dtype_name(want), " fallback: ", cols, " columns are not whole blocks"));
    }
    const std::string& note_of(std::string_view name) const {
        static const std::string none;
        auto it = notes_.find(std::string(name));
        return it == notes_.end() ? none : it->second;
    }

private:
    DType note(const TensorInfo& t, DType d, std::string why) {
        notes_[t.name] = std::move(why);
        return d;
    }
    const TensorSource& w_;
    const ModelConfig& cfg_;
    std::optional<DType> target_;
    bool keep_ = false;
    std::map<std::string, std::string> notes_;
};

std::string mib(uint64_t bytes) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f MiB", bytes / 1048576.0);
    return buf;
}

// On a terminal (text log format) one line is rewritten per tensor; in logs a line (or a JSON
// "progress" event) per 10 % keeps them short.
ProgressFn progress_printer(bool quiet) {
    if (quiet) return {};
    const bool tty = isatty(STDERR_FILENO) && log_format() == LogFormat::text;
    auto last_decile = std::make_shared<int>(-1);
    auto drawn = std::make_shared<bool>(false);  // a line is drawn in place (touched under the log lock)
    if (tty)
        log_set_before_line([drawn] {
            if (*drawn) std::fputs("\r\033[K", stderr);
            *drawn = false;
        });
    return [tty, last_decile, drawn](const ConvertProgress& p) {
        const double frac = p.bytes_total ? (double)p.bytes_done / p.bytes_total : 1.0;
        const int decile = (int)(frac * 10);
        const bool last = p.tensors_done == p.tensors_total;
        if (!tty && decile == *last_decile && !last) return;
        *last_decile = decile;
        char buf[256];
        std::snprintf(buf, sizeof buf, "[%zu/%zu tensors] %5.1f%%  %s / %s  %.*s", p.tensors_done, p.tensors_total,
                      100.0 * frac, mib(p.bytes_done).c_str(), mib(p.bytes_total).c_str(),
                      (int)std::min<size_t>(p.tensor.size(), 60), p.tensor.data());
        if (!tty) {
            log_event_raw(LogLevel::info, "progress", buf,
                          {{"tensors_done", p.tensors_done},
                           {"tensors_total", p.tensors_total},
                           {"bytes_done", p.bytes_done},
                           {"bytes_total", p.bytes_total},
                           {"percent", 100.0 * frac},
                           {"tensor", std::string(p.tensor)}});
            return;
        }
        const std::string text = str("\r\033[K", buf, last ? "\n" : "");
        log_locked([&] {
            std::fputs(text.c_str(), stderr);
            std::fflush(stderr);
            *drawn = !last;
        });
    };
}

// Collects the per-tensor error of a convert: prints a line for each tensor whose values change
// (or whose type fell back), then a total line.
class ErrorReport {
public:
    ErrorReport(const TensorSource* w, const TypePolicy* policy) : policy_(policy) {
        if (w)
            for (const TensorInfo& t : w->tensors()) source_type_[t.name] = t.source_type;
    }
    void add(const ConvertProgress& p, uint64_t bytes) {
        const std::string name(p.tensor);
        auto& [n, b] = by_type_[std::string(dtype_name(p.dtype))];
        n++;
        b += bytes;
        const std::string& note = policy_ ? policy_->note_of(name) : std::string();
        if (p.exact) {
            n_exact_++;
        } else {
            n_changed_++;
            sq_err_ += p.sq_err;
            sq_ref_ += p.sq_ref;
            max_abs_ = std::max(max_abs_, p.max_abs_err);
        }
        if (p.exact && note.empty()) return;
        if (isatty(STDERR_FILENO) && log_format() == LogFormat::text)
            std::fprintf(stderr, "\r\033[K");  // the progress line
        const std::string from = source_type_[name], to(dtype_name(p.dtype));
        std::printf("  %-50s %5s -> %-5s", name.c_str(), from.c_str(), to.c_str());
        if (p.exact) {
            std::printf("  exact");
        } else {
            std::printf("  rel RMSE %7.4f %%  max |err| %.4g", 100 * rel(p.sq_err, p.sq_ref), p.max_abs_err);
        }
        std::printf("%s%s\n", note.empty() ? "" : "  (", note.empty() ? "" : (note + ")").c_str());
        std::fflush(stdout);
    }
    void print_total() const {
        if (n_changed_ == 0) {
            std::printf("conversion error: none; all %zu tensors stored exactly (copied or widened)\n", n_exact_);
            return;
        }
        std::printf(
            "conversion error: %zu tensors changed, relative RMSE %.4f %% over all their values, max |err| %.4g; %zu "
            "tensors stored exactly\n",
            n_changed_, 100 * rel(sq_err_, sq_ref_), max_abs_, n_exact_);
    }
    // "of f32 tensor data" for one type, else "of tensor data (q4_k: 120 tensors, f32: 60)".
    std::string data_description(uint64_t total_bytes) const {
        if (by_type_.size() == 1) return str(mib(total_bytes), " of ", by_type_.begin()->first, " tensor data");
        std::string parts;
        for (const auto& [type, nb] : by_type_) parts += str(parts.empty() ? "" : ", ", type, ": ", nb.first);
        return str(mib(total_bytes), " of tensor data (", parts, ")");
    }

private:
    static double rel(double e, double r) { return r > 0 ? std::sqrt(e / r) : 0.0; }
    const TypePolicy* policy_;
    std::map<std::string, std::string> source_type_;
    std::map<std::string, std::pair<size_t, uint64_t>> by_type_;  // stored type -> tensors, bytes
    double sq_err_ = 0, sq_ref_ = 0, max_abs_ = 0;
    size_t n_changed_ = 0, n_exact_ = 0;
};

int run_convert(const std::vector<std::string>& args) {
    po::options_description opts(usage_head);
    // clang-format off
    opts.add_options()
        ("help,h", "show this help and exit")
        ("from", po::value<std::string>(), "source: .gguf file, Hugging Face model directory or gridlm .h5 (required)")
        ("to", po::value<std::string>(), "output checkpoint path, e.g. model.h5 (required)")
        ("dtype", po::value<std::string>()->default_value("auto"),
         "how tensors are stored: keep, auto, f32, bf16, f16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k "
         "(see above)")
        ("vocab-only", po::bool_switch(), "write config and tokenizer only; no tensor data is read (a GGUF cut off "
                                          "after its header works). Default: off")
        ("force", po::bool_switch(), "overwrite OUT if it exists (default: refuse)")
        ("quiet,q", po::bool_switch(), "no progress on stderr (default: progress)");
    // clang-format on
    add_log_options(opts);
    const po::variables_map vm = parse_options(args, opts);
    if (vm.count("help")) {
        std::cout << opts << "\n";
        return exit_ok;
    }
    apply_log_options(vm);
    require_options(vm, {"from", "to"});
    const std::string from = vm["from"].as<std::string>();
    const std::string to = vm["to"].as<std::string>();
    const std::string dtype_opt = vm["dtype"].as<std::string>();
    (void)parse_dtype(dtype_opt);  // usage errors before touching any file
    const bool vocab_only = vm["vocab-only"].as<bool>();

    std::error_code ec;
    if (fs::exists(to, ec) && !vm["force"].as<bool>()) {
        throw Error(str("output '", to, "' already exists (use --force to overwrite)"));
    }
    if (fs::exists(to, ec) && fs::exists(from, ec) && fs::equivalent(from, to, ec)) {
        throw Error(str("--from and --to are the same file '", to, "'"));
    }
    const fs::path parent = fs::path(to).parent_path();
    if (!parent.empty() && !fs::is_directory(parent, ec)) {
        throw Error(str("cannot write '", to, "': directory '", parent.string(), "' does not exist"));
    }

    const auto t0 = std::chrono::steady_clock::now();
    Source src = open_source(from, vocab_only);
    std::unique_ptr<TypePolicy> policy;
    if (src.weights) policy = std::make_unique<TypePolicy>(dtype_opt, *src.weights, src.cfg);
    if (!vm["quiet"].as<bool>()) {
        const size_t n_source = src.weights ? src.weights->tensors().size() : 0;
        const std::string as = policy ? policy->describe() : "vocabulary only";
        log_event_raw(LogLevel::info, "start",
                      str("converting ", from, " (", src.kind, ", ", src.cfg.arch, ", ", n_source, " tensors) -> ", to,
                          " as ", as),
                      {{"from", from},
                       {"kind", src.kind},
                       {"arch", src.cfg.arch},
                       {"tensors", n_source},
                       {"to", to},
                       {"dtype", as}});
    }
    uint64_t tensor_bytes = 0;
    size_t n_tensors = 0;
    ErrorReport report(src.weights.get(), policy.get());
    ProgressFn print = progress_printer(vm["quiet"].as<bool>());
    TypeChooser choose = [&](const TensorInfo& t) { return (*policy)(t); };
    write_h5_checkpoint(to, src.cfg, src.tok, src.weights.get(), policy ? choose : TypeChooser(),
                        [&](const ConvertProgress& p) {
                            report.add(p, p.bytes_done - tensor_bytes);
                            tensor_bytes = p.bytes_done;
                            n_tensors = p.tensors_done;
                            if (print) print(p);
                        });
    if (src.weights) report.print_total();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const uint64_t file_bytes = fs::file_size(to, ec);
    const std::string what = vocab_only ? std::string("vocabulary only")
                                        : str(n_tensors, " tensors, ", report.data_description(tensor_bytes));
    std::printf("converted %s -> %s: %s, %zu tokens, %zu merges, file %s (%llu bytes), %.2f s\n", from.c_str(),
                to.c_str(), what.c_str(), src.tok.tokens.size(), src.tok.merges.size(), mib(file_bytes).c_str(),
                (unsigned long long)file_bytes, seconds);
    return exit_ok;
}

}  // namespace
}  // namespace gridlm

GRIDLM_COMMAND(convert, "convert", "write a gridlm .h5 checkpoint from a GGUF file or a Hugging Face model directory",
               gridlm::run_convert);
