// Read bandwidth of this machine measured the way a batch-1 decode step reads its weights: a
// buffer much larger than the last-level cache, read once per pass with ordinary (temporal) 256-bit
// loads and summed, each thread taking one contiguous stretch. Best of several passes, on 1 thread
// and on N threads. Prints one JSON line on stdout; asserts nothing.
//
//   bench_bandwidth [--threads N] [--mib SIZE] [--passes P]
//
// --threads: default, the hardware threads; --mib: buffer size (default 1024, raised to 4x the
// last-level cache when that is larger); --passes: timed passes per thread count (default 5).
// Bytes are counted as read once per pass; GB = 1e9 bytes.
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define BENCH_X86 1
#endif
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

using clk = std::chrono::steady_clock;

// Sums floats [lo, hi) of buf (both multiples of 64 floats) with 8 independent accumulators, so
// the loop waits on memory and not on the add latency.
#if BENCH_X86
__attribute__((target("avx2"))) float sum_avx2(const float* buf, size_t lo, size_t hi) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    for (size_t i = lo; i < hi; i += 64) {
        a0 = _mm256_add_ps(a0, _mm256_load_ps(buf + i));
        a1 = _mm256_add_ps(a1, _mm256_load_ps(buf + i + 8));
        a2 = _mm256_add_ps(a2, _mm256_load_ps(buf + i + 16));
        a3 = _mm256_add_ps(a3, _mm256_load_ps(buf + i + 24));
        a4 = _mm256_add_ps(a4, _mm256_load_ps(buf + i + 32));
        a5 = _mm256_add_ps(a5, _mm256_load_ps(buf + i + 40));
        a6 = _mm256_add_ps(a6, _mm256_load_ps(buf + i + 48));
        a7 = _mm256_add_ps(a7, _mm256_load_ps(buf + i + 56));
    }
    const __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                                   _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    alignas(32) float t[8];
    _mm256_store_ps(t, s);
    float total = 0;
    for (float x : t) total += x;
    return total;
}
#endif

float sum_scalar(const float* buf, size_t lo, size_t hi) {
    float acc[16] = {};
    for (size_t i = lo; i < hi; i += 16)
        for (int j = 0; j < 16; ++j) acc[j] += buf[i + j];
    float total = 0;
    for (float x : acc) total += x;
    return total;
}

bool have_avx2() {
#if BENCH_X86
    return __builtin_cpu_supports("avx2");
#else
    return false;
#endif
}

float sum_range(const float* buf, size_t lo, size_t hi, bool avx2) {
#if BENCH_X86
    if (avx2) return sum_avx2(buf, lo, hi);
#endif
    (void)avx2;
    return sum_scalar(buf, lo, hi);
}

// Thread t of n gets floats [lo, hi) in whole 64-float (256-byte) blocks.
void split(size_t n_floats, int t, int n, size_t& lo, size_t& hi) {
    const size_t blocks = n_floats / 64;
    lo = blocks * t / n * 64;
    hi = blocks * (t + 1) / n * 64;
}

// Fills the buffer with the same split the timed passes use, so each page is first touched by
// the thread (and so the memory node) that later reads it.
void fill(float* buf, size_t n_floats, int n_threads) {
    std::vector<std::thread> team;
    for (int t = 0; t < n_threads; ++t)
        team.emplace_back([=] {
            size_t lo, hi;
            split(n_floats, t, n_threads, lo, hi);
            for (size_t i = lo; i < hi; ++i) buf[i] = (float)(i & 7) * 0.125f;
        });
    for (auto& th : team) th.join();
}

// One pass: the team starts together on a flag, the clock runs from the release to the last join.
double pass_seconds(const float* buf, size_t n_floats, int n_threads, bool avx2, float& sink) {
    std::atomic<int> ready{0};
    std::atomic<bool> go{false};
    std::vector<float> partial(n_threads * 16);  // one cache line apart
    std::vector<std::thread> team;
    for (int t = 0; t < n_threads; ++t)
        team.emplace_back([&, t] {
            size_t lo, hi;
            split(n_floats, t, n_threads, lo, hi);
            ready.fetch_add(1);
            while (!go.load(std::memory_order_acquire)) {
            }
            partial[t * 16] = sum_range(buf, lo, hi, avx2);
        });
    while (ready.load() < n_threads) {
    }
    const auto t0 = clk::now();
    go.store(true, std::memory_order_release);
    for (auto& th : team) th.join();
    const double s = std::chrono::duration<double>(clk::now() - t0).count();
    for (int t = 0; t < n_threads; ++t) sink += partial[t * 16];
    return s;
}

double best_gbs(const float* buf, size_t n_floats, int n_threads, int passes, bool avx2, float& sink) {
    const size_t bytes = n_floats / 64 * 64 * sizeof(float);
    pass_seconds(buf, n_floats, n_threads, avx2, sink);  // warm-up: TLB, thread start-up
    double best = 0;
    for (int p = 0; p < passes; ++p)
        best = std::max(best, bytes / pass_seconds(buf, n_floats, n_threads, avx2, sink) / 1e9);
    return best;
}

long llc_bytes() {
    long c = 0;
#ifdef _SC_LEVEL3_CACHE_SIZE
    c = sysconf(_SC_LEVEL3_CACHE_SIZE);
#endif
#ifdef _SC_LEVEL2_CACHE_SIZE
    if (c <= 0) c = sysconf(_SC_LEVEL2_CACHE_SIZE);
#endif
    return c > 0 ? c : 0;
}

[[noreturn]] void usage() {
    std::fprintf(stderr, "usage: bench_bandwidth [--threads N] [--mib SIZE] [--passes P]\n");
    std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
    int n_threads = (int)std::max(1u, std::thread::hardware_concurrency());
    long mib = 1024;
    int passes = 5;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "-h" || a == "--help") usage();
        if (i + 1 >= argc) usage();
        const char* v = argv[++i];
        char* end = nullptr;
        const long x = std::strtol(v, &end, 10);
        if (!*v || *end || x <= 0) usage();
        if (a == "--threads")
            n_threads = (int)x;
        else if (a == "--mib")
            mib = x;
        else if (a == "--passes")
            passes = (int)x;
        else
            usage();
    }
    const long llc = llc_bytes();
    const long min_mib = (4 * llc + (1 << 20) - 1) >> 20;
    if (mib < min_mib) mib = min_mib;
    const size_t bytes = (size_t)mib << 20;
    const size_t n_floats = bytes / sizeof(float);
    float* buf = static_cast<float*>(std::aligned_alloc(64, bytes));
    if (!buf) {
        std::fprintf(stderr, "bench_bandwidth: cannot allocate %ld MiB\n", mib);
        return 1;
    }
    const bool avx2 = have_avx2();
    fill(buf, n_floats, n_threads);
    float sink = 0;
    const double gbs_1 = best_gbs(buf, n_floats, 1, passes, avx2, sink);
    const double gbs_n = n_threads == 1 ? gbs_1 : best_gbs(buf, n_floats, n_threads, passes, avx2, sink);
    std::free(buf);
    std::printf(
        "{\"bench\": \"bandwidth\", \"buffer_mib\": %ld, \"llc_mib\": %.1f, \"passes\": %d, \"simd\": \"%s\", "
        "\"threads\": %d, \"read_gbs_1t\": %.2f, \"read_gbs\": %.2f, \"checksum\": %.6g}\n",
        mib, llc / 1048576.0, passes, avx2 ? "avx2" : "scalar", n_threads, gbs_1, gbs_n, (double)sink);
    return 0;
}
