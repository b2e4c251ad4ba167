// Decode throughput at a long context per KV cache element type: --batch sequences prefilled to
// --context positions (random tokens), then --steps timed decode steps, for each type of --kv;
// and the attention op alone over the same cache (every layer, one decode token per sequence),
// with the KV bytes it reads. Times are wall clock and, less disturbed by other processes on a
// shared machine, this process's CPU time (with --threads 1 that is the work done). Prints
// numbers; asserts nothing.
//
//   bench_kv_decode [--model FILE.gguf] [--dtype auto|f32|bf16] [--context N] [--steps N]
//                   [--batch B] [--threads N] [--kv f32,bf16,f16]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "engine/backend/cpu/cpu_ops.h"
#include "engine/model/model.h"
#include "io/gguf.h"
#include "io/gguf_model.h"

using namespace gridlm;
using clk = std::chrono::steady_clock;

namespace {

double seconds_since(clk::time_point t0) { return std::chrono::duration<double>(clk::now() - t0).count(); }

// CPU seconds this process has used (all its threads).
double cpu_seconds() {
    timespec t{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

struct Options {
    std::string model = std::string(GRIDLM_MODELS_DEFAULT) + "/SmolLM2-135M-Instruct.Q4_1.gguf";
    std::string dtype = "auto";
    std::string kv = "f32,bf16";
    int64_t context = 2048;
    int steps = 16, batch = 1, threads = 0;
};

// Best-of-3 wall and CPU time of the attention op over every layer of kv at its current lengths:
// one query row per sequence (a decode step's attention without the rest of the model).
std::pair<double, double> attention_seconds(Model& m, KvCache& kv, int batch) {
    const ModelConfig& c = m.local_config();
    Backend& be = m.backend();
    const AttentionShape shape{.n_head = c.n_head,
                               .n_head_kv = c.n_head_kv,
                               .head_dim = c.head_dim,
                               .scale = 1.0f / std::sqrt((float)c.head_dim)};
    std::mt19937 rng(7);
    std::normal_distribution<float> nd;
    std::vector<float> q((size_t)(batch * c.n_head * c.head_dim)), out(q.size());
    for (float& x : q) x = nd(rng);
    double best = 1e30, best_cpu = 1e30;
    for (int rep = 0; rep < 3; ++rep) {
        const auto t0 = clk::now();
        const double c0 = cpu_seconds();
        for (int layer = 0; layer < (int)c.n_layer; ++layer) {
            std::vector<AttentionSeq> seqs;
            for (int s = 0; s < batch; ++s) seqs.push_back({s, 1, kv.length(s) - 1, kv.view(s, layer)});
            be.attention(q.data(), seqs.data(), batch, shape, out.data());
        }
        best = std::min(best, seconds_since(t0));
        best_cpu = std::min(best_cpu, cpu_seconds() - c0);
    }
    return {best, best_cpu};
}

void run(const Options& o) {
    auto file = std::make_shared<const GgufFile>(o.model);
    const ModelConfig cfg = gguf_model_config(*file);
    GgufTensorSource src(file);
    Model model(cfg, src, WeightPolicy::from_name(o.dtype), o.threads);
    std::printf("%s, weights %s, %d threads, batch %d, context %lld, %d decode steps\n",
                cfg.name.empty() ? o.model.c_str() : cfg.name.c_str(), o.dtype.c_str(), model.backend().n_threads(),
                o.batch, (long long)o.context, o.steps);
    std::mt19937 rng(42);
    auto tokens = [&](int64_t n) {
        std::vector<int32_t> t((size_t)n);
        for (int32_t& x : t) x = (int32_t)(rng() % 1000 + 100);
        return t;
    };
    std::stringstream list(o.kv);
    std::string name;
    while (std::getline(list, name, ',')) {
        const DType kt = dtype_from_name(name);
        auto kv = model.make_kv_cache(o.batch, o.context + o.steps + 8, kt);
        std::vector<float> logits;
        const auto t_fill = clk::now();
        for (int s = 0; s < o.batch; ++s)
            for (int64_t done = 0; done < o.context;) {
                const int64_t n = std::min<int64_t>(512, o.context - done);
                ForwardBatch b;
                b.add(s, tokens(n));
                logits.resize(b.n_logit_rows() * cfg.n_vocab);
                model.forward(b, *kv, logits.data());
                done += n;
            }
        const double fill_s = seconds_since(t_fill);
        const auto [attn_s, attn_cpu] = attention_seconds(model, *kv, o.batch);
        const auto* block_kv = dynamic_cast<const BlockKvCache*>(kv.get());
        const double kv_bytes = (double)o.batch * o.context * block_kv->block_bytes() / block_kv->block_size();
        double s = 0, cpu = 0;
        for (int step = 0; step <= o.steps; ++step) {
            ForwardBatch b;
            for (int q = 0; q < o.batch; ++q) b.add(q, tokens(1));
            logits.resize(b.n_logit_rows() * cfg.n_vocab);
            const auto t0 = clk::now();
            const double c0 = cpu_seconds();
            model.forward(b, *kv, logits.data());
            if (step > 0) {  // the first step is a warm-up
                s += seconds_since(t0);
                cpu += cpu_seconds() - c0;
            }
        }
        std::printf(
            "  KV %-4s: decode %7.2f tok/s, %.1f ms/step (CPU %.1f ms); attention alone %.2f ms/step (CPU %.2f ms) "
            "reading %.1f MB of KV; prefill %.1f s\n",
            name.c_str(), o.batch * o.steps / s, 1e3 * s / o.steps, 1e3 * cpu / o.steps, 1e3 * attn_s, 1e3 * attn_cpu,
            kv_bytes / 1e6, fill_s);
    }
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string a = argv[i], v = argv[i + 1];
        if (a == "--model")
            o.model = v;
        else if (a == "--dtype")
            o.dtype = v;
        else if (a == "--kv")
            o.kv = v;
        else if (a == "--context")
            o.context = std::atoll(v.c_str());
        else if (a == "--steps")
            o.steps = std::atoi(v.c_str());
        else if (a == "--batch")
            o.batch = std::atoi(v.c_str());
        else if (a == "--threads")
            o.threads = std::atoi(v.c_str());
        else {
            std::fprintf(stderr, "bench_kv_decode: unknown option %s\n", a.c_str());
            return 2;
        }
    }
    if (o.context < 1 || o.steps < 1 || o.batch < 1) {
        std::fprintf(stderr, "bench_kv_decode: --context, --steps and --batch must be >= 1\n");
        return 2;
    }
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    try {
        run(o);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_kv_decode: %s\n", e.what());
        return 1;
    }
    return 0;
}
