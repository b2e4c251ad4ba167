// The compute backend interface the model code calls: memory (allocate, copy) and the ops of a
// Llama/Qwen2 decoder. The CPU backend is the reference; a CUDA one implements the same calls.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <initializer_list>
#include <memory>
#include <new>
#include <string>

#include "engine/core/dtype.h"

namespace gridlm {

// A weight matrix in backend memory, HF orientation: [rows = out, cols = in], row-major.
// The element type travels with it so matmul picks the kernel; model code never branches on it.
// A row of a block-quantised type is cols / block_size blocks (engine/core/dtype.h); rows may be
// further apart than that (a slice of a wider matrix), which row_bytes says.
struct Weight {
    DType dtype = DType::dtype_f32;
    int64_t rows = 0;
    int64_t cols = 0;
    const void* data = nullptr;  // [rows, cols] of dtype, row r at byte stride() * r
    int64_t row_bytes = 0;       // bytes from one row to the next; 0: packed rows

    // The row stride in bytes: row_bytes, or the packed size of a row.
    int64_t stride() const { return row_bytes > 0 ? row_bytes : gridlm::row_bytes(dtype, cols); }
    const void* row(int64_t r) const { return static_cast<const uint8_t*>(data) + r * stride(); }
};

// One output of a multi-matmul: y = x w^T (+ bias).  bias: [w.rows] or nullptr; y: [n, w.rows]
struct MatmulOut {
    Weight w;
    const float* bias = nullptr;
    float* y = nullptr;
};

// One sequence's keys and values for one layer, stored in fixed-size blocks so that a paged
// cache can hand out the same view. Position p lives in block p / block_size at row
// p % block_size; each block holds, per layer, K as [block_size, k_row] then V as
// [block_size, v_row], all of element type dtype (f32, bf16 or f16: kv_store rounds to it,
// attention widens it back to f32). K and V rows may differ in width. v_row == 0 is a latent
// cache (MLA, see shared/DEEPSEEK-V3.md): one row per token (576 values for DeepSeek-V3) whose
// first values also serve as V, so v(pos) == k(pos).
struct KvSeqView {
    uint8_t* const* blocks = nullptr;  // [n_blocks] block base pointers (backend memory)
    DType dtype = DType::dtype_f32;    // element type of every K and V value
    int64_t block_size = 0;            // positions per block
    int64_t k_offset = 0;              // element offset of this layer's K inside a block
    int64_t v_offset = 0;              // element offset of this layer's V inside a block (unused when v_row == 0)
    int64_t k_row = 0;                 // elements per position of K: n_head_kv * head_dim for GQA
    int64_t v_row = 0;                 // elements per position of V; 0: V is read from the K row
    int64_t max_length = 0;            // positions a sequence of this cache may reach; 0: not known

    // Bytes per element (4 for f32, 2 for bf16 / f16).
    int64_t elem_bytes() const { return (int64_t)dtype_size(dtype); }
    // The first element of position pos's K / V row (k_row / v_row elements of dtype).
    void* k(int64_t pos) const {
        return blocks[pos / block_size] + (k_offset + (pos % block_size) * k_row) * elem_bytes();
    }
    void* v(int64_t pos) const {
        return v_row == 0 ? k(pos) : blocks[pos / block_size] + (v_offset + (pos % block_size) * v_row) * elem_bytes();
    }
};

// The element types a KV cache (KvSeqView::dtype) may hold: f32, bf16 and f16.
inline bool kv_dtype_supported(DType t) {
    return t == DType::dtype_f32 || t == DType::dtype_bf16 || t == DType::dtype_f16;
}

// One sequence's share of a batched attention call: its queries are rows
// [token_offset, token_offset + n_new) of q / out, at positions pos0 .. pos0 + n_new - 1, and
// attend causally over the cached positions 0 .. pos0 + n_new - 1 (the new keys already stored).
struct AttentionSeq {
    int64_t token_offset = 0;
    int64_t n_new = 0;
    int64_t pos0 = 0;
    KvSeqView kv;
};

struct AttentionShape {
    int64_t n_head = 0;
    int64_t n_head_kv = 0;   // divides n_head (GQA: n_head / n_head_kv query heads per KV head)
    int64_t head_dim = 0;    // width of a query / key head (the dot product)
    float scale = 0.f;       // usually 1 / sqrt(head_dim)
    int64_t v_head_dim = 0;  // width of a value head and of an output head; 0: head_dim

    int64_t v_dim() const { return v_head_dim > 0 ? v_head_dim : head_dim; }
};

class Backend {
public:
    virtual ~Backend() = default;
    virtual std::string name() const = 0;
    virtual int n_threads() const = 0;
    // True when backend memory is host memory (callers may then skip staging copies).
    virtual bool host_memory() const = 0;
    // True when matmul (and embedding) take weights of this type as they are.
    virtual bool supports_weight(DType type) const { return type == DType::dtype_f32 || type == DType::dtype_bf16; }
    // The type matmul may round its input rows to before multiplying them by weights of type
    // `weight`: f32 (no rounding) on the CPU; a tensor-core GEMM reads bf16 / f16 inputs for bf16 /
    // f16 weights. Products are summed in f32 either way. Tests size their tolerances by it.
    virtual DType matmul_input_type(DType weight) const {
        (void)weight;
        return DType::dtype_f32;
    }

    // Step brackets, for backends that replay recorded launch sequences (CUDA graphs). The model
    // calls begin_step before the device work of one forward step and end_step after it; work
    // between them may run when end_step returns. graph_key != 0 promises that the step's launches
    // are those of every earlier step with that key: the same op calls with the same sizes on the
    // same buffers, only the contents of the host index arrays (ids, positions, block tables)
    // differ. A backend may then record the step once and replay it; while it replays, dry_run()
    // is true and op calls only stage their host inputs, so the caller must not read device memory
    // or run device collectives of its own between the brackets (see Model::forward_stage).
    virtual void begin_step(uint64_t graph_key) { (void)graph_key; }
    virtual void end_step() {}
    virtual bool dry_run() const { return false; }

    // Memory. alloc returns memory aligned to 64 bytes; free accepts nullptr.
    virtual void* alloc(size_t bytes) = 0;
    virtual void free(void* p) = 0;
    virtual void copy_from_host(void* dst, const void* src, size_t bytes) = 0;
    virtual void copy_to_host(void* dst, const void* src, size_t bytes) = 0;
    virtual void copy(void* dst, const void* src, size_t bytes) = 0;  // within backend memory
    // Host memory copy_to_host / copy_from_host move data to and from fastest: page-locked
    // (pinned) memory on a GPU, plain 64-byte aligned memory here. free_host accepts nullptr.
    virtual void* alloc_host(size_t bytes) {
        void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64 + 64);
        if (!p) throw std::bad_alloc();
        return p;
    }
    virtual void free_host(void* p) { std::free(p); }

    // out[t, :] = table[ids[t] - id0, :] widened to f32. The table holds the rows of ids
    // [id0, id0 + table.rows) (all of them, or one rank's vocabulary shard); other ids give zero
    // rows, negative ids are an error.  table: [rows, n_embd]; out: [n, n_embd]
    virtual void embedding(const Weight& table, int64_t id0, const int32_t* ids, int64_t n, float* out) = 0;
    // out = x * rsqrt(mean(x^2) + eps) * w per row, fp32.  x, out: [n_rows, n_cols]; w: [n_cols]
    virtual void rmsnorm(const float* x, const float* w, int64_t n_rows, int64_t n_cols, float eps, float* out) = 0;
    // y = x W^T (+ bias).  x: [n, w.cols]; bias: [w.rows] or nullptr; y: [n, w.rows]
    virtual void matmul(const float* x, const Weight& w, const float* bias, int64_t n, float* y) = 0;
    // Several matmuls of the same input (q/k/v, gate/up) in one call, so a backend can run them
    // as one launch / one thread fork.  x: [n, cols of every weight]
    virtual void matmul_multi(const float* x, int64_t n, std::initializer_list<MatmulOut> outs) = 0;
    // cos/sin table for rotate-half RoPE: cs[t, i] = cos(pos[t] * theta^(-2i/d)) for i < d/2, then
    // the d/2 sines.  pos: [n]; cs: [n, head_dim]
    virtual void rope_table(const int32_t* pos, int64_t n, int64_t head_dim, double theta, float* cs) = 0;
    // Rotates every head of every token in place.  x: [n, n_heads, head_dim]; cs: [n, head_dim]
    virtual void rope(float* x, const float* cs, int64_t n, int64_t n_heads, int64_t head_dim) = 0;
    // Writes new keys / values into the cache at positions pos0 .. pos0 + n_new - 1 of each seq,
    // rounded to nearest even when the view's dtype is bf16 or f16.
    // k: [n_tokens, kv.k_row], v: [n_tokens, kv.v_row] (ignored, may be nullptr, for a latent
    // cache with v_row == 0), rows ordered as the seqs' token_offset say.
    virtual void kv_store(const float* k, const float* v, const AttentionSeq* seqs, int64_t n_seqs) = 0;
    // Causal GQA attention: query head h reads KV head h / (n_head / n_head_kv), at column
    // (h / group) * head_dim of the K row and (h / group) * v_dim() of the V row. The cached
    // values are widened to f32; products, softmax and sums are f32.
    // q: [n_tokens, n_head, head_dim]; out: [n_tokens, n_head, v_dim()]
    virtual void attention(const float* q, const AttentionSeq* seqs, int64_t n_seqs, const AttentionShape& shape,
                           float* out) = 0;
    // out = silu(gate) * up.  gate, up, out: [n]
    virtual void silu_mul(const float* gate, const float* up, int64_t n, float* out) = 0;
    // x += y.  x, y: [n]
    virtual void add(float* x, const float* y, int64_t n) = 0;
};

// Host memory from a backend's alloc_host (for logits read back every step), freed with it.
class HostBuffer {
public:
    HostBuffer() = default;
    HostBuffer(Backend& be, size_t bytes) : be_(&be), bytes_(bytes), p_(be.alloc_host(bytes)) {}
    HostBuffer(HostBuffer&& o) noexcept { swap(o); }
    HostBuffer& operator=(HostBuffer&& o) noexcept {
        HostBuffer t(std::move(o));
        swap(t);
        return *this;
    }
    HostBuffer(const HostBuffer&) = delete;
    HostBuffer& operator=(const HostBuffer&) = delete;
    ~HostBuffer() {
        if (be_) be_->free_host(p_);
    }
    float* f32() const { return static_cast<float*>(p_); }
    size_t bytes() const { return bytes_; }
    // At least `bytes` long (contents not kept when it grows).
    void reserve(Backend& be, size_t bytes) {
        if (be_ != &be || bytes_ < bytes) *this = HostBuffer(be, bytes);
    }

private:
    void swap(HostBuffer& o) noexcept {
        std::swap(be_, o.be_);
        std::swap(bytes_, o.bytes_);
        std::swap(p_, o.p_);
    }
    Backend* be_ = nullptr;
    size_t bytes_ = 0;
    void* p_ = nullptr;
};

// The CPU backend with n_threads OpenMP threads (0: the cores this process may run on).
std::unique_ptr<Backend> make_cpu_backend(int n_threads = 0);

// A buffer in a backend's memory, freed with it.
class BackendBuffer {
public:
    BackendBuffer() = default;
    BackendBuffer(Backend& be, size_t bytes) : be_(&be), bytes_(bytes), p_(be.alloc(bytes)) {}
    BackendBuffer(BackendBuffer&& o) noexcept { swap(o); }
    BackendBuffer& operator=(BackendBuffer&& o) noexcept {
        BackendBuffer t(std::move(o));
        swap(t);
        return *this;
    }
    BackendBuffer(const BackendBuffer&) = delete;
    BackendBuffer& operator=(const BackendBuffer&) = delete;
    ~BackendBuffer() {
        if (be_) be_->free(p_);
    }
    void* data() const { return p_; }
    float* f32() const { return static_cast<float*>(p_); }
    size_t bytes() const { return bytes_; }

private:
    void swap(BackendBuffer& o) noexcept {
        std::swap(be_, o.be_);
        std::swap(bytes_, o.bytes_);
        std::swap(p_, o.p_);
    }
    Backend* be_ = nullptr;
    size_t bytes_ = 0;
    void* p_ = nullptr;
};

}  // namespace gridlm
