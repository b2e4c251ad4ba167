// Tiled attention for prefill and mixed steps: one block per (16 consecutive token rows, query
// head). The rows of a tile may belong to several sequences (a mixed batch); the block walks them
// one sequence at a time, loading that sequence's keys, then values, tile by tile into shared
// memory, with an online softmax per row (running max and sum rescaled per key tile) and the
// causal mask per row.
#include <algorithm>

#include "engine/backend/cuda/cuda_check.h"
#include "engine/backend/cuda/ops/attention.cuh"
#include "engine/backend/cuda/ops/attention_device.cuh"

namespace gridlm::cuda {

namespace {

using namespace attention_detail;

constexpr int prefill_threads = 256;
constexpr int prefill_warps = prefill_threads / warp_size;
constexpr int prefill_rows = 16;                      // query rows per block
constexpr int prefill_key_tiles[] = {64, 32, 16, 8};  // keys per tile, the widest that fits is used
constexpr size_t prefill_smem_budget = 112 * 1024;    // bytes; leaves room for 2 blocks per SM on sm_90

// A K row in shared memory is padded to an odd number of floats, so the threads of a warp, each
// on its own key, read distinct banks.
__host__ __device__ constexpr int64_t k_tile_stride(int64_t head_dim) { return head_dim | 1; }

// Dynamic shared memory of one block: 8-byte fields first, then the float arrays.
struct PrefillSmem {
    int64_t hd, vd, tk;
    __host__ __device__ int64_t kv_floats() const { return tk * (k_tile_stride(hd) > vd ? k_tile_stride(hd) : vd); }
    __host__ __device__ size_t bytes() const {
        return sizeof(void*) * 2 * tk + sizeof(int64_t) * prefill_rows +
               sizeof(float) *
                   (prefill_rows * hd + kv_floats() + prefill_rows * vd + prefill_rows * tk + 3 * prefill_rows);
    }
};

// Rows row0 .. row0 + rows - 1 of q / out (rows = min(16, n_tokens - row0)), query head h.
// grid: (ceil(n_tokens / 16), n_head); block: prefill_threads; dynamic shared memory:
// PrefillSmem{head_dim, v_head_dim, tk}.bytes()
template <KvType T>
__global__ void __launch_bounds__(prefill_threads)
    attention_prefill_kernel(const AttentionParams a, const PagedKv p, const int tk) {
    extern __shared__ __align__(16) unsigned char smem[];
    const int64_t hd = a.head_dim, vd = a.v_head_dim, ks = k_tile_stride(hd);
    const int64_t row0 = (int64_t)blockIdx.x * prefill_rows, h = blockIdx.y;
    const int rows = (int)min((int64_t)prefill_rows, p.n_tokens - row0);
    const int64_t g = h / (a.n_head / a.n_head_kv);
    const int64_t k_col = g * hd, v_col = g * vd;
    const PrefillSmem layout{hd, vd, tk};
    const uint8_t** k_ptr = reinterpret_cast<const uint8_t**>(smem);  // [tk] K row of each key
    const uint8_t** v_ptr = k_ptr + tk;                               // [tk] V row of each key
    int64_t* n_ctx = reinterpret_cast<int64_t*>(v_ptr + tk);          // [16] positions a row attends
    float* q_sh = reinterpret_cast<float*>(n_ctx + prefill_rows);     // [16][hd]
    float* kv_sh = q_sh + prefill_rows * hd;                          // [tk][ks] K tile, then [tk][vd] V tile
    float* o_sh = kv_sh + layout.kv_floats();                         // [16][vd] running output (unnormalised)
    float* s_sh = o_sh + prefill_rows * vd;                           // [16][tk] scores, then weights
    float* m_sh = s_sh + prefill_rows * tk;                           // [16] running max
    float* l_sh = m_sh + prefill_rows;                                // [16] running sum
    float* alpha_sh = l_sh + prefill_rows;                            // [16] this tile's rescale of o and l
    const int tid = threadIdx.x, warp = tid / warp_size, lane = tid % warp_size;

    if (tid < rows) {
        const PagedSeq seq = p.seqs[p.token_seq[row0 + tid]];
        n_ctx[tid] = seq.pos0 + (row0 + tid - seq.token_offset) + 1;
        m_sh[tid] = -INFINITY;
        l_sh[tid] = 0.f;
    }
    for (int64_t idx = tid; idx < rows * hd; idx += prefill_threads) {
        const int64_t r = idx / hd, i = idx % hd;
        q_sh[idx] = a.q[((row0 + r) * a.n_head + h) * hd + i];
    }
    for (int64_t idx = tid; idx < rows * vd; idx += prefill_threads) o_sh[idx] = 0.f;
    __syncthreads();

    // Rows [r0, r1) of the tile belong to one sequence; its last row has the longest context.
    for (int r0 = 0; r0 < rows;) {
        const PagedSeq seq = p.seqs[p.token_seq[row0 + r0]];
        const int r1 = (int)min((int64_t)rows, seq.token_offset + seq.n_new - row0);
        const int nr = r1 - r0;
        const int64_t ctx = n_ctx[r1 - 1];
        for (int64_t jt = 0; jt < ctx; jt += tk) {
            const int n = (int)min((int64_t)tk, ctx - jt);  // keys jt .. jt + n - 1
            if (tid < n) kv_rows<T>(p, seq, jt + tid, &k_ptr[tid], &v_ptr[tid]);
            __syncthreads();
            for (int64_t idx = tid; idx < n * hd; idx += prefill_threads) {
                const int64_t j = idx / hd, i = idx % hd;
                kv_sh[j * ks + i] = kv_load<T>(k_ptr[j], k_col + i);
            }
            __syncthreads();
            // Scores of the segment's rows, keys past a row's own position masked.
            for (int idx = tid; idx < nr * n; idx += prefill_threads) {
                const int r = r0 + idx / n, j = idx % n;
                const float* qr = q_sh + r * hd;
                const float* kr = kv_sh + j * ks;
                float dot = 0.f;
                for (int64_t i = 0; i < hd; ++i) dot += qr[i] * kr[i];
                s_sh[r * tk + j] = jt + j < n_ctx[r] ? dot * a.scale : -INFINITY;
            }
            __syncthreads();
            // The V tile replaces the K tile while each row's warp updates its running max / sum.
            for (int64_t idx = tid; idx < n * vd; idx += prefill_threads) {
                const int64_t j = idx / vd, d = idx % vd;
                kv_sh[idx] = kv_load<T>(v_ptr[j], v_col + d);
            }
            for (int r = r0 + warp; r < r1; r += prefill_warps) {
                float* s = s_sh + r * tk;
                const float m_old = m_sh[r];
                float mx = -INFINITY;
                for (int j = lane; j < n; j += warp_size) mx = fmaxf(mx, s[j]);
                const float m_new = fmaxf(m_old, warp_max(mx));
                float sum = 0.f;
                for (int j = lane; j < n; j += warp_size) {
                    const float e = exp_shifted(s[j], m_new);
                    s[j] = e;
                    sum += e;
                }
                sum = warp_sum(sum);
                __syncwarp();
                if (lane == 0) {
                    const float alpha = exp_shifted(m_old, m_new);
                    l_sh[r] = l_sh[r] * alpha + sum;
                    m_sh[r] = m_new;
                    alpha_sh[r] = alpha;
                }
            }
            __syncthreads();
            for (int64_t idx = tid; idx < nr * vd; idx += prefill_threads) {
                const int64_t r = r0 + idx / vd, d = idx % vd;
                const float* w = s_sh + r * tk;
                float o = o_sh[r * vd + d] * alpha_sh[r];
                for (int j = 0; j < n; ++j) o += w[j] * kv_sh[j * vd + d];
                o_sh[r * vd + d] = o;
            }
            __syncthreads();  // the next tile overwrites the row pointers, K / V and weights
        }
        r0 = r1;
    }
    for (int64_t idx = tid; idx < rows * vd; idx += prefill_threads) {
        const int64_t r = idx / vd, d = idx % vd;
        a.out[((row0 + r) * a.n_head + h) * vd + d] = o_sh[idx] * (1.0f / l_sh[r]);
    }
}

template <KvType T>
void prefill_launch_typed(const AttentionParams& a, const PagedKv& p, int tk, size_t smem, cudaStream_t s) {
    if (smem > 48 * 1024)
        CUDA_CHECK(
            cudaFuncSetAttribute(attention_prefill_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    const dim3 grid((unsigned)((p.n_tokens + prefill_rows - 1) / prefill_rows), (unsigned)a.n_head);
    attention_prefill_kernel<T><<<grid, prefill_threads, smem, s>>>(a, p, tk);
    CUDA_CHECK(cudaGetLastError());
}

}  // namespace

void attention_prefill_launch(const AttentionParams& a, const PagedKv& p, cudaStream_t s) {
    GRIDLM_ASSERT(p.n_tokens > 0 && (p.n_tokens + prefill_rows - 1) / prefill_rows <= INT32_MAX);
    GRIDLM_ASSERT(a.head_dim <= attention_max_head_dim && a.v_head_dim <= attention_max_v_head_dim);
    int device = 0, optin = 0;
    CUDA_CHECK(cudaGetDevice(&device));
    CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
    const size_t budget = std::min(prefill_smem_budget, (size_t)optin);
    int tk = 0;
    size_t smem = 0;
    for (int t : prefill_key_tiles) {
        smem = PrefillSmem{a.head_dim, a.v_head_dim, t}.bytes();
        if (smem <= budget) {
            tk = t;
            break;
        }
    }
    if (tk == 0)
        throw Error(str("CUDA attention: heads of ", a.head_dim, " / ", a.v_head_dim, " values need ", smem,
                        " bytes of shared memory per block; this device allows ", optin));
    switch (p.type) {
        case KvType::f32:
            prefill_launch_typed<KvType::f32>(a, p, tk, smem, s);
            break;
        case KvType::bf16:
            prefill_launch_typed<KvType::bf16>(a, p, tk, smem, s);
            break;
        case KvType::f16:
            prefill_launch_typed<KvType::f16>(a, p, tk, smem, s);
            break;
        default:
            throw Error(str("CUDA attention: KV element type ", (int)p.type, " is not supported (f32, bf16, f16)"));
    }
}

}  // namespace gridlm::cuda
