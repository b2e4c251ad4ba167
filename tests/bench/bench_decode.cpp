// Prefill and decode throughput of the CPU decoder (prefill 128 and 512 tokens; decode at batch 1,
// 16, 64) with the file's own weight types (auto) and f32 / bf16 next to this machine's roofline
// measured in the same run (read bandwidth, sgemm peak). Prints numbers; asserts nothing.
//
//   bench_decode [--models DIR] [--threads N] [--steps N] [--only smollm2|qwen]
//                [--dtype auto,f32,bf16] [--model FILE.gguf] [--json]
// --json adds one JSON line per model and dtype (tok/s and streamed bytes) for scripts.
#include <cblas.h>
#include <omp.h>
#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "engine/backend/cpu/cpu_ops.h"
#include "tests/bench/roofline.h"
#include "engine/backend/cpu/quant/quant_kernels.h"
#include "engine/model/model.h"
#include "io/gguf.h"
#include "io/gguf_model.h"

using namespace gridlm;
using clk = std::chrono::steady_clock;

namespace {

double seconds_since(clk::time_point t0) { return std::chrono::duration<double>(clk::now() - t0).count(); }

// sgemm GFLOP/s for [m, k] x [n, k]^T. own_split: the engine's way (each of our threads runs a
// single-threaded sgemm on its slice of rows); otherwise OpenBLAS's own thread pool.
double sgemm_gflops(int n_threads, bool own_split, int m = 512, int n = 1536, int k = 576) {
    std::vector<float> a((size_t)m * k, 0.5f), b((size_t)n * k, 0.25f), c((size_t)m * n);
    cpu::CpuContext ctx{n_threads};
    Weight w{DType::dtype_f32, n, k, b.data()};
    double best = 0;
    for (int rep = 0; rep < 5; ++rep) {
        const auto t0 = clk::now();
        if (own_split) {
            cpu::matmul(ctx, a.data(), w, nullptr, m, c.data());
        } else {
            openblas_set_num_threads(n_threads);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.f, a.data(), k, b.data(), k, 0.f, c.data(),
                        n);
            openblas_set_num_threads(1);
        }
        best = std::max(best, 2.0 * m * n * k / seconds_since(t0) / 1e9);
    }
    return best;
}

struct Roofline {
    double bw1 = 0, bw2 = 0;                  // GB/s, 1 and all threads
    double gemm_own = 0, gemm_blas_pool = 0;  // GFLOP/s, all threads
    double gemm1 = 0;                         // GFLOP/s, 1 thread
};

// Multiply-adds x 2 of the matrices per token (every matrix once plus the LM head).
double matmul_flops_per_token(const ModelConfig& c) {
    const double hd = c.head_dim;
    const double per_layer =
        c.n_embd * (c.n_head * hd) * 2 + c.n_embd * (c.n_head_kv * hd) * 2 + 3.0 * c.n_embd * c.n_ff;
    return (per_layer * c.n_layer + (double)c.n_vocab * c.n_embd) * 2;
}

std::string types_text(const Model& m) {
    std::string t;
    for (size_t i = 0; i < dtype_count; ++i)
        if (m.weight_bytes_by_type()[i] > 0) t += std::string(t.empty() ? "" : "+") + std::string(dtype_name((DType)i));
    return t;
}

void bench_model(const std::string& path, const std::string& dtype, int n_threads, int steps, const Roofline& roof,
                 bool json) {
    auto file = std::make_shared<const GgufFile>(path);
    const ModelConfig cfg = gguf_model_config(*file);
    GgufTensorSource src(file);
    const auto t_load = clk::now();
    Model model(cfg, src, WeightPolicy::from_name(dtype), n_threads);
    const double streamed = (double)model.streamed_weight_bytes();
    std::printf("\n%s  weights %s = %s (%.0f MB, %.0f MB read per decode step, loaded in %.1f s), %d threads\n",
                cfg.name.empty() ? path.c_str() : cfg.name.c_str(), dtype.c_str(), types_text(model).c_str(),
                model.weight_bytes() / 1e6, streamed / 1e6, seconds_since(t_load), n_threads);
    double pp128 = 0, pp512 = 0, tg1 = 0, tg16 = 0, tg64 = 0;
    std::mt19937 rng(42);
    auto random_tokens = [&](int n) {
        std::vector<int32_t> t(n);
        for (int32_t& x : t) x = (int32_t)(rng() % 1000 + 100);
        return t;
    };
    std::vector<float> logits;

    // Prefill: one prompt of 128, then of 512 tokens (best of 2 after a warm-up).
    for (int n_prompt : {128, 512}) {
        auto kv = model.make_kv_cache(1, 1024);
        ForwardBatch b;
        b.add(0, random_tokens(n_prompt));
        logits.resize(b.n_logit_rows() * cfg.n_vocab);
        model.forward(b, *kv, logits.data());  // warm-up (page faults, workspace)
        double s = 1e30;
        for (int rep = 0; rep < 2; ++rep) {
            kv->clear(0);
            const auto t0 = clk::now();
            model.forward(b, *kv, logits.data());
            s = std::min(s, seconds_since(t0));
        }
        const double gflops = n_prompt * matmul_flops_per_token(cfg) / s / 1e9;
        std::printf("  prefill %3d tokens: %7.1f tok/s  (%.0f GFLOP/s, %.0f%% of sgemm peak)\n", n_prompt, n_prompt / s,
                    gflops, 100 * gflops / roof.gemm_own);
        (n_prompt == 128 ? pp128 : pp512) = n_prompt / s;
    }
    // Decode at batch B after a 32-token prompt per sequence.
    for (int B : {1, 16, 64}) {
        auto kv = model.make_kv_cache(B, 512);
        ForwardBatch b;
        for (int s = 0; s < B; ++s) b.add(s, random_tokens(32));
        logits.resize(b.n_logit_rows() * cfg.n_vocab);
        model.forward(b, *kv, logits.data());
        int n_steps = B == 1 ? steps : std::max(4, steps / 4);
        double s = 0;
        for (int step = 0; step < n_steps + 1; ++step) {
            b.clear();
            for (int q = 0; q < B; ++q) b.add(q, random_tokens(1));
            const auto t0 = clk::now();
            model.forward(b, *kv, logits.data());
            if (step > 0) s += seconds_since(t0);  // first step is warm-up
        }
        const double tps = B * n_steps / s;
        (B == 1 ? tg1 : B == 16 ? tg16 : tg64) = tps;
        if (B == 1) {
            const double gbs = streamed * tps / 1e9;
            std::printf(
                "  decode batch %2d:     %7.1f tok/s  (streams %.1f GB/s = %.0f%% of %.1f GB/s read bandwidth)\n", B,
                tps, gbs, 100 * gbs / roof.bw2, roof.bw2);
        } else {
            const double gflops = tps * matmul_flops_per_token(cfg) / 1e9;
            std::printf("  decode batch %2d:     %7.1f tok/s  (%.0f GFLOP/s = %.0f%% of sgemm peak %.0f)\n", B, tps,
                        gflops, 100 * gflops / roof.gemm_own, roof.gemm_own);
        }
    }
    if (json)
        std::printf(
            "{\"model\": \"%s\", \"dtype\": \"%s\", \"types\": \"%s\", \"threads\": %d, \"streamed_bytes\": %.0f, "
            "\"pp128\": %.2f, \"pp512\": %.2f, \"tg1\": %.2f, \"tg16\": %.2f, \"tg64\": %.2f, \"read_gbs\": %.2f}\n",
            path.c_str(), dtype.c_str(), types_text(model).c_str(), n_threads, streamed, pp128, pp512, tg1, tg16, tg64,
            roof.bw2);
}

}  // namespace

int main(int argc, char** argv) {
    std::string models = GRIDLM_MODELS_DEFAULT, only, dtypes = "auto,f32", model_file;
    int n_threads = cpu::default_thread_count(), steps = 32;
    bool json = false;
    for (int i = 1; i < argc; ++i)
        if (!std::strcmp(argv[i], "--json")) json = true;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!std::strcmp(argv[i], "--json")) {
            --i;
            continue;
        }
        if (!std::strcmp(argv[i], "--models"))
            models = argv[i + 1];
        else if (!std::strcmp(argv[i], "--threads"))
            n_threads = std::atoi(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--steps"))
            steps = std::atoi(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--only"))
            only = argv[i + 1];
        else if (!std::strcmp(argv[i], "--dtype"))
            dtypes = argv[i + 1];
        else if (!std::strcmp(argv[i], "--model"))
            model_file = argv[i + 1];
    }
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    openblas_set_num_threads(1);
    Roofline roof;
    roof.bw1 = bench::read_bandwidth(1);
    roof.bw2 = bench::read_bandwidth(n_threads);
    roof.gemm1 = sgemm_gflops(1, true);
    roof.gemm_own = sgemm_gflops(n_threads, true);
    roof.gemm_blas_pool = sgemm_gflops(n_threads, false);
    std::printf("roofline (this run; other processes on the machine add noise):\n");
    std::printf("  read bandwidth: %.1f GB/s (1 thread), %.1f GB/s (%d threads)\n", roof.bw1, roof.bw2, n_threads);
    std::printf(
        "  sgemm 512x1536x576: %.0f GFLOP/s (1 thread), %.0f GFLOP/s (%d threads, engine split), "
        "%.0f GFLOP/s (OpenBLAS pool)\n",
        roof.gemm1, roof.gemm_own, n_threads, roof.gemm_blas_pool);
    std::printf("  SIMD kernels: float %s, quantised %s\n", cpu::simd_enabled() ? "AVX2+FMA" : "scalar",
                cpu::isa_name(cpu::best_isa()));

    std::vector<std::string> paths;
    if (!model_file.empty()) {
        paths.push_back(model_file);
    } else {
        const std::vector<std::pair<std::string, std::string>> files = {
            {"smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"}, {"qwen", "Qwen2.5-Coder-0.5B-Instruct.Q4_K_M.gguf"}};
        for (const auto& [key, file] : files)
            if (only.empty() || only == key) paths.push_back(models + "/" + file);
    }
    for (const std::string& path : paths) {
        size_t at = 0;
        while (at <= dtypes.size()) {
            const size_t comma = std::min(dtypes.find(',', at), dtypes.size());
            const std::string dt = dtypes.substr(at, comma - at);
            at = comma + 1;
            if (dt.empty()) continue;
            try {
                bench_model(path, dt, n_threads, steps, roof, json);
            } catch (const std::exception& e) {
                std::printf("  %s (%s): skipped (%s)\n", path.c_str(), dt.c_str(), e.what());
            }
        }
    }
    // Measured again at the end: a busy machine at the start would otherwise skew every ratio.
    std::printf("\nroofline again at the end: read %.1f GB/s (%d threads), sgemm %.0f GFLOP/s (engine split)\n",
                bench::read_bandwidth(n_threads), n_threads, sgemm_gflops(n_threads, true));
    return 0;
}
