// One DeepSeek-V3 MoE layer with the real shapes (hidden 7168, 128 MLA heads, q LoRA 1536, kv LoRA
// 512, experts of 2048 columns, 8 routed + 1 shared per token) and random weights, as many routed
// experts as --experts says (256 in the real model; the default fits a small machine). Prints
// prefill and batched-decode throughput, weight bytes read per decode step, and this machine's
// read bandwidth and matmul peak measured in the same run; and the latent KV cache's bytes per
// token against a per-head (decompressed) cache. Asserts nothing.
//
//   bench_deepseek_layer [--threads N] [--experts E] [--dtype bf16|f32] [--steps N] [--context N]
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "engine/backend/cpu/cpu_ops.h"
#include "engine/core/quantize.h"
#include "engine/core/tensor_source.h"
#include "engine/model/model.h"
#include "io/h5_checkpoint.h"
#include "tests/bench/roofline.h"

using namespace gridlm;
using clk = std::chrono::steady_clock;

namespace {

double seconds_since(clk::time_point t0) { return std::chrono::duration<double>(clk::now() - t0).count(); }

// Weights made on read: N(0, 1/sqrt(in)) for matrices (from a hash of name and index, so any
// subset reads the same values), 1 for norms, small values for the router bias.
class RandomSource final : public TensorSource {
public:
    void add(const std::string& name, std::vector<int64_t> shape) {
        infos_.push_back({name, std::move(shape), "F32", 0});
    }
    const std::vector<TensorInfo>& tensors() const override { return infos_; }
    std::vector<float> read_f32(const std::string& name) const override {
        auto it = std::find_if(infos_.begin(), infos_.end(), [&](const TensorInfo& t) { return t.name == name; });
        if (it == infos_.end()) throw Error("no tensor " + name);
        const std::vector<int64_t> shape = it->shape;
        int64_t n = 1;
        for (int64_t d : shape) n *= d;
        std::vector<float> v((size_t)n);
        if (name.find("norm") != std::string::npos) {
            std::fill(v.begin(), v.end(), 1.0f);
            return v;
        }
        const float scale = shape.size() == 2 ? 1.0f / std::sqrt((float)shape[1]) : 0.01f;
        std::mt19937_64 rng(std::hash<std::string>{}(name));
        for (float& x : v) x = scale * ((float)(rng() >> 40) / (float)(1 << 24) * 2.f - 1.f) * 1.7f;
        return v;
    }

private:
    std::vector<TensorInfo> infos_;
};

// The engine's own float matmul on a [512, 2048] x [7168, 2048]^T product (an expert's down
// projection over a prefill) with weights of the run's type, GFLOP/s.
double matmul_gflops(int n_threads, DType type) {
    const int m = 512, n = 7168, k = 2048;
    std::vector<float> a((size_t)m * k, 0.5f), c((size_t)m * n);
    std::vector<uint8_t> b((size_t)n * row_bytes(type, k));
    for (int64_t r = 0; r < n; ++r) {
        const std::vector<float> row((size_t)k, 0.25f);
        quantize_row(type, row.data(), b.data() + r * row_bytes(type, k), k);
    }
    cpu::CpuContext ctx{n_threads};
    const Weight w{type, n, k, b.data()};
    double best = 0;
    for (int rep = 0; rep < 3; ++rep) {
        const auto t0 = clk::now();
        cpu::matmul(ctx, a.data(), w, nullptr, m, c.data());
        best = std::max(best, 2.0 * m * n * k / seconds_since(t0) / 1e9);
    }
    return best;
}

}  // namespace

int main(int argc, char** argv) {
    int n_threads = cpu::default_thread_count(), n_expert = 16, steps = 8, context = 512;
    std::string dtype = "bf16";
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string a = argv[i];
        if (a == "--threads")
            n_threads = std::atoi(argv[i + 1]);
        else if (a == "--experts")
            n_expert = std::atoi(argv[i + 1]);
        else if (a == "--dtype")
            dtype = argv[i + 1];
        else if (a == "--steps")
            steps = std::atoi(argv[i + 1]);
        else if (a == "--context")
            context = std::atoi(argv[i + 1]);
        else {
            std::fprintf(stderr,
                         "usage: bench_deepseek_layer [--threads N] [--experts E] [--dtype bf16|f32] "
                         "[--steps N] [--context N]\n");
            return 2;
        }
    }
    ModelConfig c;
    c.arch = "deepseek_v3";
    c.name = "DeepSeek-V3 layer";
    c.n_vocab = 1024;  // small: the layer is what is measured
    c.n_embd = 7168;
    c.n_layer = 1;
    c.n_head = c.n_head_kv = 128;
    c.q_lora_rank = 1536;
    c.kv_lora_rank = 512;
    c.qk_nope_dim = 128;
    c.qk_rope_dim = 64;
    c.v_head_dim = 128;
    c.head_dim = 192;
    c.n_ff = 18432;
    c.n_expert = n_expert;
    c.n_expert_used = std::min(8, n_expert);
    c.n_expert_shared = 1;
    c.n_ff_expert = 2048;
    c.n_dense_lead = 0;
    const bool grouped = n_expert % 8 == 0 && n_expert >= 16;  // 4 of 8 groups must hold 8 experts
    c.n_expert_group = grouped ? 8 : 1;
    c.n_group_used = grouped ? 4 : 1;
    c.expert_sigmoid = c.expert_group_limited = c.expert_score_bias = c.expert_weights_norm = true;
    c.expert_weights_scale = 2.5;
    c.rope_theta = 10000;
    c.yarn_factor = 40;
    c.yarn_orig_ctx = 4096;
    c.yarn_mscale = c.yarn_mscale_all_dim = 1.0;
    c.n_ctx_train = 163840;
    c.rms_eps = 1e-6;

    RandomSource src;  // every tensor the config implies (the HDF5 writer's list)
    for (const TensorInfo& t : expected_tensors(c)) src.add(t.name, t.shape);
    const int64_t d = c.n_embd, H = c.n_head, qd = 192, lat = 576;

    const double bw = bench::read_bandwidth(n_threads), peak = matmul_gflops(n_threads, dtype_from_name(dtype));
    std::printf(
        "roofline (this run, %d threads): read bandwidth %.1f GB/s, %s matmul (512 x 7168 x 2048) %.0f GFLOP/s\n",
        n_threads, bw, dtype.c_str(), peak);
    const auto t_load = clk::now();
    Model model(c, src, WeightPolicy::from_name(dtype), n_threads);
    const double wsize = dtype == "f32" ? 4 : 2;
    // Per decoded token: attention matrices (q_a, q_b, kv_a, kv_b as W_UK^T / W_UV, o) and 9 experts.
    const double attn_params = (double)c.q_lora_rank * d + (double)H * qd * c.q_lora_rank + (double)lat * d +
                               (double)H * 256 * c.kv_lora_rank + (double)d * H * 128;
    const double expert_params = 3.0 * d * 2048;
    const double active_params = attn_params + (c.n_expert_used + 1) * expert_params;
    std::printf("layer: %d routed experts held (%.2f GB of %s weights, loaded in %.0f s), %lld + 1 active per token\n",
                n_expert, model.weight_bytes() / 1e9, dtype.c_str(), seconds_since(t_load), (long long)c.n_expert_used);
    std::printf("  attention %.0f M parameters, each expert %.0f M; active per token %.0f M = %.2f GB at %s\n",
                attn_params / 1e6, expert_params / 1e6, active_params / 1e6, active_params * wsize / 1e9,
                dtype.c_str());
    // Latent vs per-head cache (V3: 61 layers).
    const double latent = lat * 2.0, per_head = H * (qd + 128) * 2.0;
    std::printf(
        "  KV cache per token and layer in bf16: latent %.0f B, per-head K+V %.0f B (%.0fx); 61 layers: %.1f KB "
        "vs %.1f MB\n",
        latent, per_head, per_head / latent, 61 * latent / 1e3, 61 * per_head / 1e6);

    std::mt19937 rng(1);
    auto tokens = [&](int n) {
        std::vector<int32_t> t(n);
        for (int32_t& x : t) x = (int32_t)(rng() % c.n_vocab);
        return t;
    };
    std::vector<float> logits;
    {  // prefill of `context` tokens
        auto kv = model.make_kv_cache(1, context + 8, DType::dtype_bf16);
        ForwardBatch b;
        b.add(0, tokens(context));
        logits.resize(b.n_logit_rows() * c.n_vocab);
        const auto t0 = clk::now();
        model.forward(b, *kv, logits.data());
        const double s = seconds_since(t0);
        // Matmul flops per token: 2 x active parameters, the latent attention not counted.
        const double gflops = context * 2.0 * active_params / s / 1e9;
        std::printf("  prefill %d tokens: %.1f tok/s (%.0f GFLOP/s in the matrices = %.0f%% of the matmul peak)\n",
                    context, context / s, gflops, 100 * gflops / peak);
    }
    for (int B : {1, 8, 32}) {
        auto kv = model.make_kv_cache(B, context + steps + 8, DType::dtype_bf16);
        ForwardBatch b;
        for (int s = 0; s < B; ++s) b.add(s, tokens(std::max(1, context / 8)));
        logits.resize(b.n_logit_rows() * c.n_vocab);
        model.forward(b, *kv, logits.data());
        double s = 0;
        for (int step = 0; step <= steps; ++step) {
            b.clear();
            for (int q = 0; q < B; ++q) b.add(q, tokens(1));
            const auto t0 = clk::now();
            model.forward(b, *kv, logits.data());
            if (step > 0) s += seconds_since(t0);
        }
        const double tps = B * steps / s;
        // Weight bytes a step reads: attention once, each expert at most once (B tokens x 8 routes
        // touch min(E, 8B) experts on average at best), the shared expert once.
        const double experts_read = std::min<double>(n_expert, (double)c.n_expert_used * B) + 1;
        const double step_bytes = (attn_params + experts_read * expert_params) * wsize;
        const double gbs = step_bytes * (tps / B) / 1e9;
        const double gflops = tps * 2.0 * active_params / 1e9;
        std::printf(
            "  decode batch %2d: %7.2f tok/s  (reads <= %.2f GB per step: %.1f GB/s = %.0f%% of read "
            "bandwidth; %.0f GFLOP/s = %.0f%% of the matmul peak)\n",
            B, tps, step_bytes / 1e9, gbs, 100 * gbs / bw, gflops, 100 * gflops / peak);
    }
    return 0;
}
