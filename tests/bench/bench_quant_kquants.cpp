// Throughput of the K-quant matmul kernels (engine/backend/cpu/quant, q4_k / q5_k / q6_k) in
// every instruction-set variant this CPU runs. Batch 1 (decode): GB/s of weight bytes read, with
// the weights cycled through enough copies of the matrix to exceed the last-level cache, so each
// call streams from memory like a decode step; printed next to this machine's read bandwidth
// measured in the same run. Many tokens (prefill): GFLOP/s (2 * rows * cols * tokens) on one
// cache-resident matrix. Rows are split over the threads in tasks of 16 rows, as the CPU backend
// does. Prints numbers; asserts nothing.
//
//   bench_quant_kquants [--threads N] [--mib SIZE] [--tokens N] [--reps R]
//
// --threads: the multi-thread count (default: OpenMP's); --mib: MiB of weight copies and of the
// bandwidth buffer (default 1024); --tokens: prefill batch (default 128); --reps: timed passes,
// best kept (default 5). GB = 1e9 bytes.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "engine/backend/cpu/quant/quant_kernels.h"
#include "engine/core/dtype.h"
#include "tests/bench/roofline.h"

using namespace gridlm;
using namespace gridlm::cpu;
using clk = std::chrono::steady_clock;

namespace {

constexpr int64_t rows_per_task = 16;

double seconds_since(clk::time_point t0) { return std::chrono::duration<double>(clk::now() - t0).count(); }

uint64_t next(uint64_t& s) {  // xorshift64*
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 0x2545F4914F6CDD1Dull;
}

// Random quants and scales with normal f16 super-scales (no subnormal arithmetic in the timing).
void fill_weights(DType t, uint8_t* w, int64_t rows, int64_t cols, uint64_t seed) {
    const int64_t bytes = rows * row_bytes(t, cols);
    for (int64_t i = 0; i + 8 <= bytes; i += 8) {
        const uint64_t v = next(seed);
        std::memcpy(w + i, &v, 8);
    }
    const int64_t bb = dtype_block_bytes(t);
    for (int64_t b = 0; b < bytes / bb; ++b) {
        uint8_t* p = w + b * bb;
        const uint16_t d = f32_to_f16(1e-3f + (float)(next(seed) % 1000) * 1e-6f);
        std::memcpy(t == DType::dtype_q6_k ? p + 208 : p, &d, 2);
        if (t != DType::dtype_q6_k) std::memcpy(p + 2, &d, 2);
    }
}

// One matmul of n tokens on nt threads: 16-row tasks in static contiguous runs.
void matmul(const QuantKernels& k, const Weight& w, const uint8_t* xq, int64_t xq_stride, int64_t n, float* y, int nt) {
    const int64_t tasks = (w.rows + rows_per_task - 1) / rows_per_task;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t i = 0; i < tasks; ++i) {
        const int64_t r0 = i * rows_per_task, r1 = std::min(w.rows, r0 + rows_per_task);
        k.matmul(w, xq, xq_stride, n, y, w.rows, r0, r1);
    }
}

struct Options {
    int threads = 0;
    int64_t mib = 1024;
    int64_t tokens = 128;
    int reps = 5;
};

void bench_shape(DType t, int64_t rows, int64_t cols, const Options& o, double bw1, double bwn) {
    const int64_t mat_bytes = rows * row_bytes(t, cols);
    const int64_t copies = std::max<int64_t>(2, (o.mib << 20) / mat_bytes);
    std::vector<uint8_t> w((size_t)(copies * mat_bytes));
    for (int64_t c = 0; c < copies; ++c) fill_weights(t, w.data() + c * mat_bytes, rows, cols, 1234 + c);
    std::vector<float> x((size_t)(o.tokens * cols));
    uint64_t s = 99;
    for (float& v : x) v = (float)((int64_t)(next(s) % 2001) - 1000) * 1e-3f;
    std::vector<float> y((size_t)(o.tokens * rows));
    for (Isa isa : {Isa::scalar, Isa::avx2, Isa::avx512vnni}) {
        if (!isa_supported(isa)) continue;
        const QuantKernels& k = *quant_kernels_kquants(t, isa);
        const int64_t xq_stride = cols / k.act_block * k.act_block_bytes;
        std::vector<uint8_t> xq((size_t)(o.tokens * xq_stride));
        for (int64_t i = 0; i < o.tokens; ++i) k.quantize_act(x.data() + i * cols, xq.data() + i * xq_stride, cols);
        for (int nt : {1, o.threads}) {
            if (nt == o.threads && nt == 1) continue;
            // Decode: every copy once per pass (scalar: a quarter of them, it is slow).
            const int64_t used = isa == Isa::scalar ? std::max<int64_t>(1, copies / 4) : copies;
            double best = 1e30;
            for (int rep = 0; rep < o.reps; ++rep) {
                const auto t0 = clk::now();
                for (int64_t c = 0; c < used; ++c) {
                    const Weight wc{t, rows, cols, w.data() + c * mat_bytes, 0};
                    matmul(k, wc, xq.data(), xq_stride, 1, y.data(), nt);
                }
                best = std::min(best, seconds_since(t0));
            }
            const double gbs = (double)(used * mat_bytes) / best / 1e9;
            const double bw = nt == 1 ? bw1 : bwn;
            std::printf(
                "%-5s %5lldx%-5lld %-10s threads=%-2d decode %7.2f GB/s (%3.0f%% of read bw %.1f)  %7.1f us/call",
                std::string(dtype_name(t)).c_str(), (long long)rows, (long long)cols, isa_name(isa), nt, gbs,
                100 * gbs / bw, bw, best / (double)used * 1e6);
            // Prefill on the first copy (cache-resident after the first pass).
            const Weight w0{t, rows, cols, w.data(), 0};
            double bestp = 1e30;
            for (int rep = 0; rep < (isa == Isa::scalar ? 1 : std::max(2, o.reps / 2)); ++rep) {
                const auto t0 = clk::now();
                matmul(k, w0, xq.data(), xq_stride, o.tokens, y.data(), nt);
                bestp = std::min(bestp, seconds_since(t0));
            }
            std::printf("   n=%lld %7.1f GFLOP/s\n", (long long)o.tokens,
                        2.0 * (double)rows * (double)cols * (double)o.tokens / bestp / 1e9);
            std::fflush(stdout);
        }
    }
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    o.threads = omp_get_max_threads();
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        const auto value = [&]() -> long long {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "%s needs a value\n", a.c_str());
                std::exit(2);
            }
            return std::atoll(argv[++i]);
        };
        if (a == "--threads") {
            o.threads = (int)value();
        } else if (a == "--mib") {
            o.mib = value();
        } else if (a == "--tokens") {
            o.tokens = value();
        } else if (a == "--reps") {
            o.reps = (int)value();
        } else {
            std::fprintf(stderr, "usage: %s [--threads N] [--mib SIZE] [--tokens N] [--reps R]\n", argv[0]);
            return 2;
        }
    }
    o.threads = std::max(1, o.threads);
    std::vector<float> buf((size_t)((o.mib << 20) / sizeof(float)), 1.f);
    const double bw1 = bench::read_bandwidth(buf.data(), buf.size(), 1, o.reps),
                 bwn = bench::read_bandwidth(buf.data(), buf.size(), o.threads, o.reps);
    buf = {};
    std::printf("read bandwidth: %.1f GB/s (1 thread), %.1f GB/s (%d threads)\n", bw1, bwn, o.threads);
    for (DType t : {DType::dtype_q4_k, DType::dtype_q5_k, DType::dtype_q6_k}) {
        bench_shape(t, 896, 4864, o, bw1, bwn);
        bench_shape(t, 4096, 4096, o, bw1, bwn);
    }
    return 0;
}
