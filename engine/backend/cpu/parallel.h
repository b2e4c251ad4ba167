// Work sharing for the CPU ops: every op splits its work with these calls, so the threads behind
// them are chosen in one place. They run on the backend's persistent team (thread_pool.h,
// CpuContext::pool); a context without a pool uses a process-wide team of ctx.n_threads.
// Internal to engine/backend/cpu.
//
// Nesting: fn may itself call parallel_run / parallel_for; such an inner call runs serially on
// the thread that makes it (fn(0, 1)), it never waits for the busy team. Exceptions thrown by fn
// on any thread reach the caller after all threads have finished (the first one; see run()).
#pragma once

#include <algorithm>
#include <cstdint>

#include "engine/backend/cpu/cpu_ops.h"
#include "engine/backend/cpu/thread_pool.h"

namespace gridlm::cpu {

// Runs fn(tid, nt) once for each tid = 0 .. nt - 1 and returns when all have finished: tid 0 on
// the calling thread, the others on the team's workers (or on the calling thread, after tid 0,
// when a worker had not started yet; see ThreadPool::run). nt = ctx.n_threads, or 1 for a nested
// call. Shares may wait for one another (a barrier inside fn): the caller takes a worker's share
// only after finishing its own, and only one that its worker has not claimed.
template <typename F>
void parallel_run(const CpuContext& ctx, F&& fn) {
    const int nt = std::max(1, ctx.n_threads);
    if (nt == 1 || ThreadPool::in_task()) return (void)fn(0, 1);
    ThreadPool& pool = ctx.pool && ctx.pool->size() == nt ? *ctx.pool : shared_thread_pool(nt);
    pool.run(fn);
}

// The part [begin, end) of [0, n) that thread tid of nt owns: near-equal contiguous runs.
inline void split_work(int64_t n, int tid, int nt, int64_t& begin, int64_t& end) {
    begin = n * tid / nt;
    end = n * (tid + 1) / nt;
}

// Runs fn(i) for every i in [0, n), each share a contiguous run of i (static schedule). Runs on
// the calling thread alone when n < min_parallel (work too small to pay for waking the team).
template <typename F>
void parallel_for(const CpuContext& ctx, int64_t n, F&& fn, int64_t min_parallel = 2) {
    if (n <= 0) return;
    if (n < min_parallel || ctx.n_threads <= 1) {
        for (int64_t i = 0; i < n; ++i) fn(i);
        return;
    }
    parallel_run(ctx, [&](int tid, int nt) {
        int64_t b, e;
        split_work(n, tid, nt, b, e);
        for (int64_t i = b; i < e; ++i) fn(i);
    });
}

// Runs fn(begin, end) on near-equal contiguous parts of [0, n), one per share, every inner
// boundary a multiple of 16 (whole 64-byte lines of floats, so no two threads write one line).
// One call fn(0, n) on the calling thread when n < min_parallel.
template <typename F>
void parallel_ranges(const CpuContext& ctx, int64_t n, int64_t min_parallel, F&& fn) {
    if (n <= 0) return;
    if (n < min_parallel || ctx.n_threads <= 1) return (void)fn(int64_t{0}, n);
    parallel_run(ctx, [&](int tid, int nt) {
        constexpr int64_t line = 16;
        const int64_t lines = (n + line - 1) / line;
        int64_t b, e;
        split_work(lines, tid, nt, b, e);
        b = std::min(n, b * line);
        e = std::min(n, e * line);
        if (b < e) fn(b, e);
    });
}

}  // namespace gridlm::cpu
