// The CPU backend: host memory and the ops in engine/backend/cpu/ops/, on one persistent thread
// team (thread_pool.h) started with the backend and joined when it is destroyed.
#include <sched.h>

#include <cstdlib>
#include <cstring>
#include <new>

#include "engine/backend/backend.h"
#include "engine/backend/cpu/cpu_ops.h"
#include "engine/backend/cpu/cpu_types.h"
#include "engine/backend/cpu/thread_pool.h"

namespace gridlm {

namespace cpu {

int default_thread_count() {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
        const int n = CPU_COUNT(&set);
        if (n > 0) return n;
    }
    return 1;
}

}  // namespace cpu

namespace {

// The SIMD switch is process-wide (cpu::set_simd_enabled, read inside the kernels); a scalar
// backend turns it off for the length of each of its calls and restores it after. Backends are
// driven from one thread, so a scalar and a SIMD backend never run at the same time.
class ScalarScope {
public:
    explicit ScalarScope(bool scalar) : scalar_(scalar), saved_(cpu::detail::simd_on) {
        if (scalar_) cpu::set_simd_enabled(false);
    }
    ~ScalarScope() {
        if (scalar_) cpu::set_simd_enabled(saved_);
    }
    ScalarScope(const ScalarScope&) = delete;
    ScalarScope& operator=(const ScalarScope&) = delete;

private:
    bool scalar_, saved_;
};

class CpuBackend final : public Backend {
public:
    // scalar: run the portable scalar kernels even when SIMD ones are compiled in.
    // Starts the n_threads - 1 worker threads (see thread_pool.h for the environment it reads).
    CpuBackend(int n_threads, bool scalar)
        : pool_(n_threads > 0 ? n_threads : cpu::default_thread_count()), scalar_(scalar) {
        ctx_.n_threads = pool_.size();
        ctx_.pool = &pool_;
    }

    std::string name() const override { return scalar_ ? "cpu-scalar" : "cpu"; }
    int n_threads() const override { return ctx_.n_threads; }
    bool host_memory() const override { return true; }
    bool supports_weight(DType type) const override { return cpu::cpu_type_traits(type).has_matmul(); }

    void* alloc(size_t bytes) override {
        // 64-byte alignment: whole cache lines for the streaming kernels.
        void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64 + 64);
        if (!p) throw std::bad_alloc();
        return p;
    }
    void free(void* p) override { std::free(p); }
    void copy_from_host(void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes); }
    void copy_to_host(void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes); }
    void copy(void* dst, const void* src, size_t bytes) override { std::memmove(dst, src, bytes); }

    void embedding(const Weight& table, int64_t id0, const int32_t* ids, int64_t n, float* out) override {
        const ScalarScope scope(scalar_);
        cpu::embedding(ctx_, table, id0, ids, n, out);
    }
    void rmsnorm(const float* x, const float* w, int64_t n_rows, int64_t n_cols, float eps, float* out) override {
        const ScalarScope scope(scalar_);
        cpu::rmsnorm(ctx_, x, w, n_rows, n_cols, eps, out);
    }
    void matmul(const float* x, const Weight& w, const float* bias, int64_t n, float* y) override {
        const ScalarScope scope(scalar_);
        cpu::matmul(ctx_, x, w, bias, n, y);
    }
    void matmul_multi(const float* x, int64_t n, std::initializer_list<MatmulOut> outs) override {
        const ScalarScope scope(scalar_);
        cpu::matmul_multi(ctx_, x, n, outs.begin(), (int64_t)outs.size());
    }
    void rope_table(const int32_t* pos, int64_t n, int64_t head_dim, double theta, float* cs) override {
        const ScalarScope scope(scalar_);
        cpu::rope_table(ctx_, pos, n, head_dim, theta, cs);
    }
    void rope(float* x, const float* cs, int64_t n, int64_t n_heads, int64_t head_dim) override {
        const ScalarScope scope(scalar_);
        cpu::rope(ctx_, x, cs, n, n_heads, head_dim);
    }
    void kv_store(const float* k, const float* v, const AttentionSeq* seqs, int64_t n_seqs) override {
        const ScalarScope scope(scalar_);
        cpu::kv_store(ctx_, k, v, seqs, n_seqs);
    }
    void attention(const float* q, const AttentionSeq* seqs, int64_t n_seqs, const AttentionShape& shape,
                   float* out) override {
        const ScalarScope scope(scalar_);
        cpu::attention(ctx_, q, seqs, n_seqs, shape, out);
    }
    void silu_mul(const float* gate, const float* up, int64_t n, float* out) override {
        const ScalarScope scope(scalar_);
        cpu::silu_mul(ctx_, gate, up, n, out);
    }
    void add(float* x, const float* y, int64_t n) override {
        const ScalarScope scope(scalar_);
        cpu::add(ctx_, x, y, n);
    }

private:
    cpu::ThreadPool pool_;
    cpu::CpuContext ctx_;
    bool scalar_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(int n_threads) { return std::make_unique<CpuBackend>(n_threads, false); }

std::unique_ptr<Backend> cpu::make_scalar_backend(int n_threads) {
    return std::make_unique<CpuBackend>(n_threads, true);
}

}  // namespace gridlm
