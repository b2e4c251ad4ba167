// `gridlm convert`: GGUF file, Hugging Face model directory or gridlm .h5 -> native HDF5
// checkpoint (docs/checkpoint-format.md), streamed tensor by tensor with progress on stderr.
#include <unistd.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "engine/core/error.h"
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
    "usage: gridlm convert --from SRC --to OUT.h5 [--dtype auto|f32|bf16|f16] [--vocab-only] [--force]\n\n"
    "Writes a gridlm checkpoint (one HDF5 file: config, tokenizer, weights in Hugging Face names and\n"
    "orientation; see docs/checkpoint-format.md). SRC is one of\n"
    "  - a .gguf file (llama / qwen2; quantised tensors are dequantised),\n"
    "  - a Hugging Face model directory (config.json, tokenizer.json, tokenizer_config.json,\n"
    "    model.safetensors or model.safetensors.index.json + shards),\n"
    "  - a gridlm .h5 checkpoint (to store it in another dtype).\n"
    "The file is written to OUT.h5.tmp and renamed when complete: a failed convert leaves no OUT.h5.\n"
    "Progress goes to stderr, a one-line summary to stdout.\n\n"
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

// auto: keep 16-bit sources 16-bit (exact); anything else (GGUF blocks, F32, mixed) becomes f32,
// the only type that holds a dequantised value exactly.
DType choose_dtype(const std::string& opt, const TensorSource* weights) {
    if (opt != "auto") return dtype_from_name(opt);
    if (!weights || weights->tensors().empty()) return DType::dtype_f32;
    bool all_bf16 = true, all_f16 = true;
    for (const TensorInfo& t : weights->tensors()) {
        all_bf16 &= t.source_type == "BF16";
        all_f16 &= t.source_type == "F16";
    }
    return all_bf16 ? DType::dtype_bf16 : all_f16 ? DType::dtype_f16 : DType::dtype_f32;
}

std::string mib(uint64_t bytes) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f MiB", bytes / 1048576.0);
    return buf;
}

// On a terminal one line is rewritten per tensor; in logs a line per 10 % keeps them short.
ProgressFn progress_printer(bool quiet) {
    if (quiet) return {};
    const bool tty = isatty(STDERR_FILENO);
    auto last_decile = std::make_shared<int>(-1);
    return [tty, last_decile](const ConvertProgress& p) {
        const double frac = p.bytes_total ? (double)p.bytes_done / p.bytes_total : 1.0;
        const int decile = (int)(frac * 10);
        const bool last = p.tensors_done == p.tensors_total;
        if (!tty && decile == *last_decile && !last) return;
        *last_decile = decile;
        std::fprintf(stderr, "%s[%zu/%zu tensors] %5.1f%%  %s / %s  %.*s%s", tty ? "\r\033[K" : "", p.tensors_done,
                     p.tensors_total, 100.0 * frac, mib(p.bytes_done).c_str(), mib(p.bytes_total).c_str(),
                     (int)std::min<size_t>(p.tensor.size(), 60), p.tensor.data(), tty && !last ? "" : "\n");
        std::fflush(stderr);
    };
}

int run_convert(const std::vector<std::string>& args) {
    po::options_description opts(usage_head);
    // clang-format off
    opts.add_options()
        ("help,h", "show this help and exit")
        ("from", po::value<std::string>(), "source: .gguf file, Hugging Face model directory or gridlm .h5 (required)")
        ("to", po::value<std::string>(), "output checkpoint path, e.g. model.h5 (required)")
        ("dtype", po::value<std::string>()->default_value("auto"),
         "element type of every stored tensor: f32, bf16, f16, or auto = bf16 / f16 when every source tensor "
         "already is, else f32 (lossless for dequantised GGUF blocks). f16 fails on values beyond +-65504")
        ("vocab-only", po::bool_switch(), "write config and tokenizer only; no tensor data is read (a GGUF cut off "
                                          "after its header works). Default: off")
        ("force", po::bool_switch(), "overwrite OUT if it exists (default: refuse)")
        ("quiet,q", po::bool_switch(), "no progress on stderr (default: progress)");
    // clang-format on
    const po::variables_map vm = parse_options(args, opts);
    if (vm.count("help")) {
        std::cout << opts << "\n";
        return exit_ok;
    }
    require_options(vm, {"from", "to"});
    const std::string from = vm["from"].as<std::string>();
    const std::string to = vm["to"].as<std::string>();
    const std::string dtype_opt = vm["dtype"].as<std::string>();
    if (dtype_opt != "auto" && dtype_opt != "f32" && dtype_opt != "bf16" && dtype_opt != "f16") {
        throw UsageError(str("--dtype '", dtype_opt, "' is not one of auto, f32, bf16, f16"));
    }
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
    const DType dtype = choose_dtype(dtype_opt, src.weights.get());
    if (!vm["quiet"].as<bool>()) {
        std::fprintf(stderr, "converting %s (%s, %s, %zu tensors) -> %s as %s\n", from.c_str(), src.kind.c_str(),
                     src.cfg.arch.c_str(), src.weights ? src.weights->tensors().size() : (size_t)0, to.c_str(),
                     vocab_only ? "vocabulary only" : std::string(dtype_name(dtype)).c_str());
    }
    uint64_t tensor_bytes = 0;
    size_t n_tensors = 0;
    ProgressFn print = progress_printer(vm["quiet"].as<bool>());
    write_h5_checkpoint(to, src.cfg, src.tok, src.weights.get(), dtype, [&](const ConvertProgress& p) {
        tensor_bytes = p.bytes_done;
        n_tensors = p.tensors_done;
        if (print) print(p);
    });
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const uint64_t file_bytes = fs::file_size(to, ec);
    const std::string what =
        vocab_only ? std::string("vocabulary only")
                   : str(n_tensors, " tensors, ", mib(tensor_bytes), " of ", dtype_name(dtype), " tensor data");
    std::printf("converted %s -> %s: %s, %zu tokens, %zu merges, file %s (%llu bytes), %.2f s\n", from.c_str(),
                to.c_str(), what.c_str(), src.tok.tokens.size(), src.tok.merges.size(), mib(file_bytes).c_str(),
                (unsigned long long)file_bytes, seconds);
    return exit_ok;
}

}  // namespace
}  // namespace gridlm

GRIDLM_COMMAND(convert, "convert", "write a gridlm .h5 checkpoint from a GGUF file or a Hugging Face model directory",
               gridlm::run_convert);
