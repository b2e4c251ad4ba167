// The CUDA backend on a random-weight model of DeepSeek-R1-Distill-Qwen-7B's exact shape (Qwen2:
// hidden 3584, 28 layers, 28 query / 4 KV heads of 128, MLP 18944, vocabulary 152064, q/k/v
// biases, untied LM head), bf16 weights and bf16 KV cache, driven through Model::forward. Prints,
// in one run: this device's memory bandwidth and the batch-1 decode roofline it implies; batch-1
// decode tok/s at a context of about 128 with CUDA graphs on and off; a bulk 128-in / 128-out run
// of --batch sequences; one JSON line with every figure at the end. Asserts nothing; exits 77
// (skipped) without a CUDA device, 1 when a step fails.
//
//   bench_cuda [--batch B] [--steps N] [--bulk-steps N] [--prefill-seqs N] [--device D]
//              [--layers L] [--no-graphs-off] [--no-bulk]
//
// Every forward ends by copying its logits to host memory (Model::forward's contract), and the
// figures include that copy; its own cost at batch 1 and batch B is measured and printed apart.
#include <malloc.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/backend/cuda/cuda_backend.h"
#include "engine/core/hash.h"
#include "engine/core/tensor_source.h"
#include "engine/model/model.h"
#include "io/h5_checkpoint.h"
#include "tests/bench/bench_cuda_hbm.h"

using namespace gridlm;
using clk = std::chrono::steady_clock;

namespace {

double seconds_since(clk::time_point t0) { return std::chrono::duration<double>(clk::now() - t0).count(); }

ModelConfig r1_distill_qwen_7b() {
    ModelConfig c;
    c.arch = "qwen2";
    c.name = "random DeepSeek-R1-Distill-Qwen-7B shape";
    c.n_vocab = 152064;
    c.n_embd = 3584;
    c.n_layer = 28;
    c.n_head = 28;
    c.n_head_kv = 4;
    c.head_dim = 128;
    c.n_ff = 18944;
    c.n_ctx_train = 131072;
    c.rope_theta = 10000.0;
    c.rms_eps = 1e-6;
    c.tied_embeddings = false;
    c.attn_bias = true;
    return c;
}

// Values made on read from a hash of the tensor's name and the element index, in parallel:
// uniform with standard deviation `scale` for matrices and biases, 1 for norm weights. Matrices
// are stored as bf16 (read_rows_raw hands out their bf16 bits, made in parallel), so a loader that
// keeps stored types uploads them without a serial conversion pass.
class HashSource final : public TensorSource {
public:
    HashSource(std::vector<TensorInfo> infos, float scale) : infos_(std::move(infos)), scale_(scale) {
        for (TensorInfo& t : infos_) {
            t.source_type = t.shape.size() == 2 ? "BF16" : "F32";
            t.source_bytes = (uint64_t)t.numel() * (t.shape.size() == 2 ? 2 : 4);
        }
    }
    const std::vector<TensorInfo>& tensors() const override { return infos_; }
    DType stored_type(const std::string& name) const override {
        return find(name).shape.size() == 2 ? DType::dtype_bf16 : DType::dtype_f32;
    }
    std::vector<float> read_f32(const std::string& name) const override {
        const TensorInfo& t = find(name);
        std::vector<float> v((size_t)t.numel());
        const bool norm = name.find("norm") != std::string::npos;
        const uint64_t seed = fnv1a64(name);
        const int64_t n = t.numel();
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; ++i) v[(size_t)i] = norm ? 1.0f : value(seed, i);
        return v;
    }
    std::vector<uint8_t> read_rows_raw(const std::string& name, int64_t row0, int64_t n_rows) const override {
        const TensorInfo& t = find(name);
        if (t.shape.size() != 2) return TensorSource::read_rows_raw(name, row0, n_rows);
        const int64_t cols = t.shape[1];
        if (row0 < 0 || n_rows < 0 || row0 + n_rows > t.shape[0])
            throw Error(str("random source: rows ", row0, "+", n_rows, " of '", name, "' (", t.shape[0], " rows)"));
        std::vector<uint8_t> out((size_t)(n_rows * cols) * sizeof(uint16_t));
        auto* bits = reinterpret_cast<uint16_t*>(out.data());
        const uint64_t seed = fnv1a64(name);
        const int64_t first = row0 * cols, n = n_rows * cols;
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; ++i) bits[i] = f32_to_bf16(value(seed, first + i));
        return out;
    }

private:
    const TensorInfo& find(const std::string& name) const {
        for (const TensorInfo& t : infos_)
            if (t.name == name) return t;
        throw Error(str("random source: no tensor '", name, "'"));
    }
    // Uniform on [-sqrt(3), sqrt(3)) * scale: standard deviation `scale`.
    float value(uint64_t seed, int64_t i) const {
        const int64_t u = (int64_t)(splitmix64(seed ^ (uint64_t)i * 0x9e3779b97f4a7c15ull) >> 40) - 8388608;
        return scale_ * 1.7320508f / 8388608.0f * (float)u;
    }

    std::vector<TensorInfo> infos_;
    float scale_;
};

int32_t token_at(uint64_t stream, int64_t i, int64_t n_vocab) {
    return (int32_t)(splitmix64(stream * 1000003ull + (uint64_t)i) % (uint64_t)n_vocab);
}

struct Options {
    int batch = 256, steps = 64, bulk_steps = 128, prefill_seqs = 16, device = 0, warmup = 8;
    int64_t layers = 0;  // 0: the model's 28
    bool graphs_off = true, bulk = true;
    int64_t prompt = 128;
};

struct DecodeRun {
    double prefill_s = 0, decode_s = 0, tok_s = 0, us_per_step = 0;
    cuda::CudaStepCounts counts;
};

// One sequence: a prompt of o.prompt tokens (timed after the same prefill in another slot, which
// warms cuBLAS up), o.warmup untimed decode steps, then o.steps timed ones.
DecodeRun batch1_decode(Model& model, const Options& o) {
    const ModelConfig& c = model.config();
    auto kv = model.make_kv_cache(2, o.prompt + o.warmup + o.steps + 1, DType::dtype_bf16);
    std::vector<float> logits((size_t)c.n_vocab);
    ForwardBatch b;
    std::vector<int32_t> prompt((size_t)o.prompt);
    for (int64_t i = 0; i < o.prompt; ++i) prompt[(size_t)i] = token_at(1, i, c.n_vocab);
    DecodeRun r;
    b.add(1, prompt);
    model.forward(b, *kv, logits.data());
    b.clear();
    b.add(0, prompt);
    auto t0 = clk::now();
    model.forward(b, *kv, logits.data());
    r.prefill_s = seconds_since(t0);
    for (int s = 0; s < o.warmup + o.steps; ++s) {
        if (s == o.warmup) t0 = clk::now();
        const int32_t tok = token_at(2, s, c.n_vocab);
        b.clear();
        b.add(0, {&tok, 1});
        model.forward(b, *kv, logits.data());
    }
    r.decode_s = seconds_since(t0);
    r.tok_s = o.steps / r.decode_s;
    r.us_per_step = r.decode_s / o.steps * 1e6;
    r.counts = cuda::cuda_step_counts(model.backend());
    for (float x : logits)
        if (!std::isfinite(x)) throw Error("batch-1 decode produced a non-finite logit");
    return r;
}

struct BulkRun {
    double prefill_s = 0, decode_s = 0, total_tok_s = 0, decode_tok_s = 0, prefill_tok_s = 0;
    cuda::CudaStepCounts counts;
};

// o.batch sequences: prompts of o.prompt tokens, o.prefill_seqs sequences per forward, then
// o.bulk_steps decode steps of all of them together.
BulkRun bulk_run(Model& model, const Options& o) {
    const ModelConfig& c = model.config();
    auto kv = model.make_kv_cache(o.batch, o.prompt + o.bulk_steps + 1, DType::dtype_bf16);
    std::vector<float> logits((size_t)(std::max(o.batch, o.prefill_seqs) * c.n_vocab));
    ForwardBatch b;
    BulkRun r;
    const cuda::CudaStepCounts before = cuda::cuda_step_counts(model.backend());
    auto t0 = clk::now();
    for (int s0 = 0; s0 < o.batch; s0 += o.prefill_seqs) {
        b.clear();
        for (int s = s0; s < std::min(o.batch, s0 + o.prefill_seqs); ++s) {
            std::vector<int32_t> p((size_t)o.prompt);
            for (int64_t i = 0; i < o.prompt; ++i) p[(size_t)i] = token_at(100 + s, i, c.n_vocab);
            b.add(s, p);
        }
        model.forward(b, *kv, logits.data());
    }
    r.prefill_s = seconds_since(t0);
    t0 = clk::now();
    std::vector<int32_t> toks((size_t)o.batch);
    for (int step = 0; step < o.bulk_steps; ++step) {
        b.clear();
        for (int s = 0; s < o.batch; ++s) {
            toks[(size_t)s] = token_at(100000 + s, step, c.n_vocab);
            b.add(s, {&toks[(size_t)s], 1});
        }
        model.forward(b, *kv, logits.data());
    }
    r.decode_s = seconds_since(t0);
    const double n_gen = (double)o.batch * o.bulk_steps;
    r.prefill_tok_s = (double)o.batch * o.prompt / r.prefill_s;
    r.decode_tok_s = n_gen / r.decode_s;
    r.total_tok_s = n_gen / (r.prefill_s + r.decode_s);
    const cuda::CudaStepCounts after = cuda::cuda_step_counts(model.backend());
    r.counts = {after.eager - before.eager, after.recorded - before.recorded, after.replayed - before.replayed};
    for (size_t i = 0; i < (size_t)c.n_vocab; ++i)
        if (!std::isfinite(logits[i])) throw Error("bulk decode produced a non-finite logit");
    return r;
}

// Microseconds one copy of rows x n_vocab f32 logits from device to (pageable) host memory takes:
// best of 5, the way Model::forward reads them back.
double logits_copy_us(Backend& be, int64_t rows, int64_t n_vocab) {
    const size_t bytes = sizeof(float) * (size_t)(rows * n_vocab);
    BackendBuffer dev(be, bytes);
    std::vector<float> host((size_t)(rows * n_vocab));
    double best = 1e30;
    for (int rep = 0; rep < 6; ++rep) {
        const auto t0 = clk::now();
        be.copy_to_host(host.data(), dev.data(), bytes);
        if (rep > 0) best = std::min(best, seconds_since(t0) * 1e6);
    }
    return best;
}

struct Loaded {
    std::unique_ptr<Model> model;
    double load_s = 0;
};

Loaded load(const ModelConfig& c, const TensorSource& src, const Options& o, bool graphs) {
    cuda::CudaBackendOptions bo;
    bo.device = o.device;
    bo.graphs = graphs;
    std::shared_ptr<Backend> be = cuda::make_cuda_backend(bo);
    const auto t0 = clk::now();
    Loaded l;
    // The matrices arrive as bf16 and stay so: the same weights WeightPolicy(dtype_bf16) makes from
    // f32 values, without a serial rounding pass over 7.6e9 of them.
    l.model = std::make_unique<Model>(c, src, WeightPolicy::keep_stored(DType::dtype_bf16), be);
    l.load_s = seconds_since(t0);
    std::printf("loaded (graphs %s): %.2f GB of bf16 weights in %.1f s\n", graphs ? "on" : "off",
                l.model->weight_bytes() / 1e9, l.load_s);
    std::fflush(stdout);
    return l;
}

nlohmann::json counts_json(const cuda::CudaStepCounts& n) {
    return {{"eager", n.eager}, {"recorded", n.recorded}, {"replayed", n.replayed}};
}

void print_counts(const char* what, const cuda::CudaStepCounts& n) {
    std::printf("  %s steps: eager %lld, recorded %lld, replayed %lld\n", what, (long long)n.eager,
                (long long)n.recorded, (long long)n.replayed);
}

int usage() {
    std::fprintf(stderr,
                 "usage: bench_cuda [--batch B] [--steps N] [--bulk-steps N] [--prefill-seqs N] [--device D]\n"
                 "                  [--layers L] [--no-graphs-off] [--no-bulk]\n");
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    std::setvbuf(stdout, nullptr, _IOLBF, 0);  // a run stopped by a time limit keeps its lines
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto num = [&](auto& dst) {
            if (i + 1 >= argc) return false;
            dst = std::atoi(argv[++i]);
            return dst > 0 || a == "--device";
        };
        bool ok = true;
        if (a == "--batch")
            ok = num(o.batch);
        else if (a == "--steps")
            ok = num(o.steps);
        else if (a == "--bulk-steps")
            ok = num(o.bulk_steps);
        else if (a == "--prefill-seqs")
            ok = num(o.prefill_seqs);
        else if (a == "--device")
            ok = num(o.device);
        else if (a == "--layers")
            ok = num(o.layers);
        else if (a == "--no-graphs-off")
            o.graphs_off = false;
        else if (a == "--no-bulk")
            o.bulk = false;
        else
            ok = false;
        if (!ok) {
            std::fprintf(stderr, "bench_cuda: bad argument '%s'\n", a.c_str());
            return usage();
        }
    }
    // Keep freed memory in the process (no mmap per large block, no trimming): each tensor's host
    // staging then reuses pages already faulted in instead of faulting in up to 15 GB of fresh ones.
    mallopt(M_MMAP_MAX, 0);
    mallopt(M_TRIM_THRESHOLD, 2147483647);
    std::string why;
    if (cuda::visible_device_count(&why) == 0) {
        std::printf("bench_cuda: skipped: no CUDA device (%s)\n", why.c_str());
        return 77;
    }
    nlohmann::json j = {{"bench", "bench_cuda"}};  // every figure so far, printed also when a step fails
    try {
        const cuda::CudaInfo info = cuda::cuda_probe();
        ModelConfig c = r1_distill_qwen_7b();
        if (o.layers > 0) c.n_layer = o.layers;
        std::printf("device %d: %s (%d visible), runtime %d, driver %d, cuBLAS %d; %d host threads\n", o.device,
                    info.device_name.c_str(), info.device_count, info.runtime_version, info.driver_version,
                    info.cublas_version, omp_get_max_threads());
        std::printf("model: %s, %lld layers, bf16 weights, bf16 KV cache\n", c.name.c_str(), (long long)c.n_layer);

        const bench::HbmBandwidth hbm = bench::measure_hbm_bandwidth(o.device, size_t(4) << 30);
        if (!hbm.error.empty()) throw Error("bandwidth measurement: " + hbm.error);
        const double bw = std::max(hbm.read_gbs, hbm.copy_gbs);
        std::printf(
            "HBM bandwidth over %.1f GiB: read kernel %.0f GB/s, D2D copy %.0f GB/s (read + write); "
            "roofline uses %.0f GB/s\n",
            hbm.bytes / (1 << 30), hbm.read_gbs, hbm.copy_gbs, bw);

        const HashSource src(expected_tensors(c), 0.02f);
        j["device"] = info.device_name;
        j["model"] = c.name;
        j["n_layer"] = c.n_layer;
        j["hbm_read_gbs"] = hbm.read_gbs;
        j["hbm_copy_gbs"] = hbm.copy_gbs;
        j["hbm_gbs"] = bw;

        Loaded on = load(c, src, o, true);
        const int64_t weight_stream = on.model->streamed_weight_bytes();
        const int64_t kv_per_token = c.n_layer * 2 * c.n_head_kv * c.head_dim * 2;  // bf16 K and V
        // Context while the timed steps run: the prompt, the warm-up, half the timed steps.
        const double mean_ctx = (double)o.prompt + o.warmup + o.steps / 2.0;
        const double bytes_per_token = (double)weight_stream + kv_per_token * mean_ctx;
        const double roof = bw * 1e9 / bytes_per_token;
        std::printf(
            "batch-1 decode streams %.3f GB of weights + %.1f MB of KV per token: roofline %.1f tok/s "
            "(%.0f us/step)\n",
            weight_stream / 1e9, kv_per_token * mean_ctx / 1e6, roof, 1e6 / roof);
        j["weight_bytes"] = on.model->weight_bytes();
        j["streamed_weight_bytes"] = weight_stream;
        j["kv_bytes_per_token_read"] = kv_per_token * mean_ctx;
        j["roofline_tok_s"] = roof;
        j["load_s"] = on.load_s;

        const double copy1 = logits_copy_us(on.model->backend(), 1, c.n_vocab);
        const double copy_b = logits_copy_us(on.model->backend(), o.batch, c.n_vocab);
        std::printf("logits to host: %.0f us per step at batch 1, %.0f us at batch %d (inside every figure below)\n",
                    copy1, copy_b, o.batch);
        j["logits_copy_us_b1"] = copy1;
        j["logits_copy_us_bulk"] = copy_b;

        const DecodeRun g = batch1_decode(*on.model, o);
        std::printf(
            "batch 1, graphs on : prefill %lld tok in %.1f ms (%.0f tok/s); decode %.1f tok/s (%.0f us/step), "
            "%.1f%% of roofline\n",
            (long long)o.prompt, g.prefill_s * 1e3, o.prompt / g.prefill_s, g.tok_s, g.us_per_step,
            100 * g.tok_s / roof);
        print_counts("graphs on", g.counts);
        std::printf("  logits to host take %.1f%% of a graphs-on step\n", 100 * copy1 / g.us_per_step);
        j["b1_prefill_tok_s"] = o.prompt / g.prefill_s;
        j["b1_graphs_on"] = {{"tok_s", g.tok_s},
                             {"us_per_step", g.us_per_step},
                             {"of_roofline", g.tok_s / roof},
                             {"counts", counts_json(g.counts)}};
        if (g.counts.replayed < o.steps) std::printf("  WARNING: fewer graph replays than timed steps\n");

        if (o.bulk) {
            const BulkRun b = bulk_run(*on.model, o);
            std::printf(
                "bulk %d x (%lld in + %d out): prefill %.2f s (%.0f tok/s, %d seqs per forward), decode %.2f s "
                "(%.0f tok/s, %.1f ms/step); throughput %.0f tok/s\n",
                o.batch, (long long)o.prompt, o.bulk_steps, b.prefill_s, b.prefill_tok_s, o.prefill_seqs, b.decode_s,
                b.decode_tok_s, b.decode_s / o.bulk_steps * 1e3, b.total_tok_s);
            print_counts("bulk", b.counts);
            j["bulk"] = {{"batch", o.batch},
                         {"prompt", o.prompt},
                         {"steps", o.bulk_steps},
                         {"prefill_seqs_per_forward", o.prefill_seqs},
                         {"prefill_s", b.prefill_s},
                         {"decode_s", b.decode_s},
                         {"prefill_tok_s", b.prefill_tok_s},
                         {"decode_tok_s", b.decode_tok_s},
                         {"throughput_tok_s", b.total_tok_s},
                         {"counts", counts_json(b.counts)}};
        }
        on.model.reset();  // frees its device memory before the second model loads

        if (o.graphs_off) {
            Loaded off = load(c, src, o, false);
            j["load_s_graphs_off"] = off.load_s;
            const DecodeRun e = batch1_decode(*off.model, o);
            std::printf("batch 1, graphs off: decode %.1f tok/s (%.0f us/step), %.1f%% of roofline\n", e.tok_s,
                        e.us_per_step, 100 * e.tok_s / roof);
            print_counts("graphs off", e.counts);
            std::printf("graphs save %.0f us per decode step (%.1f%%)\n", e.us_per_step - g.us_per_step,
                        100 * (e.us_per_step - g.us_per_step) / e.us_per_step);
            j["b1_graphs_off"] = {{"tok_s", e.tok_s},
                                  {"us_per_step", e.us_per_step},
                                  {"of_roofline", e.tok_s / roof},
                                  {"counts", counts_json(e.counts)}};
            j["graph_saving_us_per_step"] = e.us_per_step - g.us_per_step;
        }
        std::printf("%s\n", j.dump().c_str());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_cuda: %s\n", e.what());
        j["error"] = e.what();
        std::printf("%s\n", j.dump().c_str());
        return 1;
    }
    return 0;
}
