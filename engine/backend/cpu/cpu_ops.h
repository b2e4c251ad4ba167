// The CPU ops, one file each under engine/backend/cpu/ops/. Shapes as in engine/backend/backend.h;
// every op splits its work over ctx.n_threads threads of ctx.pool (parallel.h). Called from inside
// another op's task, an op runs serially on that thread.
#pragma once

#include <cstdint>
#include <memory>

#include "engine/backend/backend.h"

namespace gridlm::cpu {

class ThreadPool;

// What an op runs on. pool: the backend's team (thread_pool.h), not owned, used when its size is
// n_threads; null (or another size): a process-wide team of n_threads (shared_thread_pool).
struct CpuContext {
    int n_threads = 1;
    ThreadPool* pool = nullptr;
};

// The number of CPUs this process may run on (sched_getaffinity), at least 1.
int default_thread_count();

// SIMD level the kernels use. Compiled in when the build targets AVX2+FMA+F16C (-march=native on
// x86-64); set_simd_enabled(false) forces the portable scalar kernels (tests compare the two).
namespace detail {
inline bool simd_on = true;  // set once before running ops (tests); read in hot loops
}
constexpr bool simd_compiled() {
#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
    return true;
#else
    return false;
#endif
}
inline bool simd_enabled() { return simd_compiled() && detail::simd_on; }
inline void set_simd_enabled(bool on) { detail::simd_on = on; }

// A CPU backend whose calls run the portable scalar kernels whatever the build supports (the
// registry's "cpu-scalar", so conformance tests cover both kernel sets).
std::unique_ptr<Backend> make_scalar_backend(int n_threads = 0);

void embedding(const CpuContext& ctx, const Weight& table, int64_t id0, const int32_t* ids, int64_t n, float* out);
void rmsnorm(const CpuContext& ctx, const float* x, const float* w, int64_t n_rows, int64_t n_cols, float eps,
             float* out);

// y = x W^T (+ bias) for any number of tokens; a token's outputs are bitwise the same in any batch
// (the float tiles of ops/matmul.cpp and the integer kernels of ops/matmul_quant.cpp alike).
void matmul(const CpuContext& ctx, const float* x, const Weight& w, const float* bias, int64_t n, float* y);
void matmul_multi(const CpuContext& ctx, const float* x, int64_t n, const MatmulOut* outs, int64_t n_outs);

void rope_table(const CpuContext& ctx, const int32_t* pos, int64_t n, int64_t head_dim, double theta, float* cs);
void rope(const CpuContext& ctx, float* x, const float* cs, int64_t n, int64_t n_heads, int64_t head_dim);
void kv_store(const CpuContext& ctx, const float* k, const float* v, const AttentionSeq* seqs, int64_t n_seqs);
void attention(const CpuContext& ctx, const float* q, const AttentionSeq* seqs, int64_t n_seqs,
               const AttentionShape& shape, float* out);
void silu_mul(const CpuContext& ctx, const float* gate, const float* up, int64_t n, float* out);
void add(const CpuContext& ctx, float* x, const float* y, int64_t n);

}  // namespace gridlm::cpu
