// Roofline measurements shared by the benchmarks (tests/bench/): numbers taken in the same run as
// the figures they are compared with.
#pragma once

#include <omp.h>
#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <chrono>
#include <cstdlib>

namespace gridlm::bench {

// Best-of-reps streaming read bandwidth (GB/s): n_threads threads each sum their contiguous part
// of buf (n floats; size it well beyond the last-level cache).
inline double read_bandwidth(const float* buf, size_t n, int n_threads, int reps) {
    n = n / 64 * 64;
    double best = 0;
    volatile float sink = 0;
    for (int rep = 0; rep < reps; ++rep) {
        const auto t0 = std::chrono::steady_clock::now();
        float total = 0;
#pragma omp parallel num_threads(n_threads) reduction(+ : total)
        {
            // Each thread sums its contiguous stretch with 4 independent vector accumulators, so
            // the loop is limited by memory, not by the add latency.
            const int tid = omp_get_thread_num(), nt = omp_get_num_threads();
            const size_t lo = n / 64 * tid / nt * 64, hi = n / 64 * (tid + 1) / nt * 64;
#if defined(__AVX2__)
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            for (size_t i = lo; i < hi; i += 32) {
                a0 = _mm256_add_ps(a0, _mm256_loadu_ps(&buf[i]));
                a1 = _mm256_add_ps(a1, _mm256_loadu_ps(&buf[i + 8]));
                a2 = _mm256_add_ps(a2, _mm256_loadu_ps(&buf[i + 16]));
                a3 = _mm256_add_ps(a3, _mm256_loadu_ps(&buf[i + 24]));
            }
            alignas(32) float t[8];
            _mm256_store_ps(t, _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
            for (float x : t) total += x;
#else
            float acc[8] = {};
            for (size_t i = lo; i < hi; i += 8)
                for (int j = 0; j < 8; ++j) acc[j] += buf[i + j];
            for (float x : acc) total += x;
#endif
        }
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        sink = sink + total;
        best = std::max(best, n * sizeof(float) / s / 1e9);
    }
    return best;
}

// Best-of-5 read bandwidth over a 512 MiB buffer with n threads.
inline double read_bandwidth(int n_threads) {
    const size_t n = (512ull << 20) / sizeof(float);
    float* buf = static_cast<float*>(std::aligned_alloc(64, n * sizeof(float)));
#pragma omp parallel for num_threads(n_threads)
    for (size_t i = 0; i < n; ++i) buf[i] = (float)(i & 7);
    const double best = read_bandwidth(buf, n, n_threads, 5);
    std::free(buf);
    return best;
}

}  // namespace gridlm::bench
