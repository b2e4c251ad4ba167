// Throughput of the legacy-quant matmul kernels (q4_0 q4_1 q5_0 q5_1 q8_0 x ActQ8x32): weight
// GB/s of a batch-1 matmul per ISA variant on 1 and 2 threads (or the counts given), next to this
// machine's read bandwidth measured in the same run on as many threads, and the integer GOP/s of a
// 64-token (prefill) call on the most threads.
// "cold" cycles through copies of the weight that together exceed the last-level cache, so every
// call streams from memory; "hot" repeats one copy (cache-resident when it fits). Every figure
// is the fastest of the calls made in min_seconds.
// Threads split the rows in runs of 16-row calls, as the CPU backend's matmul does.
//   bench_quant_legacy [min_seconds_per_figure (0.3)] [thread counts (1,2)]
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "engine/backend/cpu/quant/quant_kernels.h"
#include "engine/core/dtype.h"
#include "tests/bench/roofline.h"

using namespace gridlm;
using namespace gridlm::cpu;

namespace {

double min_seconds = 0.3;
constexpr int64_t rows_per_call = 16;
constexpr size_t cold_bytes = size_t(512) << 20;

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// Runs fn(i) for i = 0, 1, ... until min_seconds have passed; the fastest call's seconds (robust
// against other load on the machine; every figure is a best-of-N).
template <typename F>
double time_per_call(F&& fn) {
    fn(0);  // warm-up
    int64_t iters = 0;
    const double t0 = now();
    double t1 = t0, best = 1e30;
    while (t1 - t0 < min_seconds || iters < 3) {
        const double a = now();
        fn(++iters);
        t1 = now();
        best = std::min(best, t1 - a);
    }
    return best;
}

// Read bandwidth: sums a buffer far larger than the caches on nt threads; GB/s.
double read_bandwidth(int nt) {
    static const std::vector<float> buf(cold_bytes / sizeof(float), 1.f);
    return bench::read_bandwidth(buf.data(), buf.size(), nt, 5);
}

struct Case {
    int64_t rows, cols;
};

void bench_type(DType type, const Case& c, const std::vector<int>& threads, const std::vector<double>& bandwidth) {
    const int64_t row_bytes = gridlm::row_bytes(type, c.cols), w_bytes = row_bytes * c.rows;
    const int64_t copies = std::max<int64_t>(2, (int64_t)(cold_bytes / (size_t)w_bytes));
    std::vector<uint8_t> w((size_t)(w_bytes * copies));
    std::mt19937 rng(1);
    for (int64_t i = 0; i < w_bytes; ++i) w[(size_t)i] = (uint8_t)rng();
    const int64_t bb = dtype_block_bytes(type);
    for (int64_t b = 0; b < w_bytes / bb; ++b) {  // finite, modest scales
        const uint16_t h = f32_to_f16(0.01f);
        std::memcpy(w.data() + b * bb, &h, 2);
        if (type == DType::dtype_q4_1 || type == DType::dtype_q5_1) std::memcpy(w.data() + b * bb + 2, &h, 2);
    }
    for (int64_t k = 1; k < copies; ++k) std::memcpy(w.data() + k * w_bytes, w.data(), (size_t)w_bytes);
    const int64_t n_prefill = 64;
    std::vector<float> x((size_t)(n_prefill * c.cols));
    std::normal_distribution<float> nd;
    for (float& v : x) v = nd(rng);
    std::vector<float> y((size_t)(n_prefill * c.rows));

    for (Isa isa : {Isa::scalar, Isa::avx2, Isa::avx512vnni}) {
        if (!isa_supported(isa)) {
            std::printf("  %-5s %-10s not supported by this CPU: not run\n", dtype_name(type).data(), isa_name(isa));
            continue;
        }
        const QuantKernels* k = quant_kernels(type, isa);
        if (!k) continue;
        const int64_t xq_stride = c.cols / k->act_block * k->act_block_bytes;
        std::vector<uint8_t> xq((size_t)(n_prefill * xq_stride));
        for (int64_t t = 0; t < n_prefill; ++t)
            k->quantize_act(x.data() + t * c.cols, xq.data() + t * xq_stride, c.cols);
        const int64_t n_calls = (c.rows + rows_per_call - 1) / rows_per_call;
        auto matmul = [&](const uint8_t* wd, int64_t n, int nt) {
            const Weight wt{type, c.rows, c.cols, wd, 0};
#pragma omp parallel for num_threads(nt) schedule(static)
            for (int64_t i = 0; i < n_calls; ++i)
                k->matmul(wt, xq.data(), xq_stride, n, y.data(), c.rows, i * rows_per_call,
                          std::min(c.rows, (i + 1) * rows_per_call));
        };
        std::printf("  %-5s %-10s batch 1:", dtype_name(type).data(), isa_name(isa));
        for (size_t i = 0; i < threads.size(); ++i) {
            const int nt = threads[i];
            const double cold = time_per_call([&](int64_t j) { matmul(w.data() + (j % copies) * w_bytes, 1, nt); });
            const double hot = time_per_call([&](int64_t) { matmul(w.data(), 1, nt); });
            const double gb = (double)w_bytes / cold * 1e-9;
            std::printf(" %d thr %6.1f GB/s (%3.0f%% of bw; hot %6.1f) |", nt, gb, 100 * gb / bandwidth[i],
                        (double)w_bytes / hot * 1e-9);
        }
        const int nt = threads.back();
        const double pre = time_per_call([&](int64_t) { matmul(w.data(), n_prefill, nt); });
        const double gops = 2.0 * (double)c.rows * (double)c.cols * (double)n_prefill / pre * 1e-9;
        std::printf(" 64 tokens, %d thr: %6.1f GOP/s\n", nt, gops);
    }
}

}  // namespace

int main(int argc, char** argv) {
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    if (argc > 1) min_seconds = std::atof(argv[1]);
    std::vector<int> threads;
    for (const char* p = argc > 2 ? argv[2] : "1,2"; *p;) {
        char* end;
        threads.push_back(std::max(1, (int)std::strtol(p, &end, 10)));
        p = *end ? end + 1 : end;
    }
    std::vector<double> bandwidth;
    std::printf("read bandwidth:");
    for (int nt : threads) {
        bandwidth.push_back(read_bandwidth(nt));
        std::printf(" %d thr %.1f GB/s", nt, bandwidth.back());
    }
    std::printf("\n");
    for (Case c : {Case{576, 1536}, Case{4096, 4096}}) {
        std::printf("weight %lld x %lld (rows x cols):\n", (long long)c.rows, (long long)c.cols);
        for (DType t : {DType::dtype_q4_0, DType::dtype_q4_1, DType::dtype_q5_0, DType::dtype_q5_1, DType::dtype_q8_0})
            bench_type(t, c, threads, bandwidth);
    }
    return 0;
}
