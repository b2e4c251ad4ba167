// Split-key decode attention (every sequence adds one token): one block per (token, key chunk,
// KV head, group of up to 8 of its query heads); each cached K / V row of the chunk is read once
// for those query heads. A chunk's online-softmax partial (max, sum, unnormalised output) goes to
// the workspace and a combine kernel merges the chunks in order; with one chunk the decode kernel
// writes the output itself.
#include <algorithm>

#include "engine/backend/cuda/cuda_check.h"
#include "engine/backend/cuda/ops/attention.cuh"
#include "engine/backend/cuda/ops/attention_device.cuh"

namespace gridlm::cuda {

namespace {

using namespace attention_detail;

constexpr int decode_threads = 256;
constexpr int decode_warps = decode_threads / warp_size;
constexpr int decode_key_tile = 64;   // keys per tile: two scores per lane in the softmax step
constexpr int decode_head_group = 8;  // query heads per block (one softmax warp each)
constexpr int decode_v_slots = (int)((attention_max_v_head_dim + decode_threads - 1) / decode_threads);
constexpr int combine_threads = 128;

static_assert(decode_key_tile == 2 * warp_size, "the softmax step gives each lane two keys");
static_assert(decode_head_group <= decode_warps, "one softmax warp per query head");

// Query heads h0 .. h0 + hg - 1 (one KV head g) of token row t, keys [j0, j1) of its context.
// Partial layout in ws: [n_tokens][n_head][n_chunks][2 + vd] = (max, sum, output[vd]).
// grid: (n_tokens, n_chunks, n_head_kv * ceil(group / decode_head_group)); block: decode_threads
template <KvType T>
__global__ void __launch_bounds__(decode_threads)
    attention_decode_kernel(const AttentionParams a, const PagedKv p, const AttentionSplit split) {
    const int64_t t = blockIdx.x, c = blockIdx.y;
    const int64_t hd = a.head_dim, vd = a.v_head_dim, group = a.n_head / a.n_head_kv;
    const int64_t n_sub = (group + decode_head_group - 1) / decode_head_group;
    const int64_t g = blockIdx.z / n_sub;
    const int64_t h0 = g * group + (blockIdx.z % n_sub) * decode_head_group;
    const int hg = (int)min((int64_t)decode_head_group, g * group + group - h0);
    const PagedSeq seq = p.seqs[p.token_seq[t]];
    const int64_t n_ctx = seq.pos0 + (t - seq.token_offset) + 1;  // positions 0 .. n_ctx - 1
    const int64_t j0 = c * split.chunk_len;
    if (j0 >= n_ctx) return;  // the whole block: this chunk lies past the sequence's context
    const int64_t j1 = min(n_ctx, j0 + split.chunk_len);

    __shared__ float q_sh[decode_head_group * attention_max_head_dim];  // [hg][hd]
    __shared__ float s_sh[decode_head_group][decode_key_tile];          // scores, then weights
    __shared__ const uint8_t* k_sh[decode_key_tile];                    // K / V row of each key
    __shared__ const uint8_t* v_sh[decode_key_tile];
    __shared__ float alpha_sh[decode_head_group];  // rescale of the running output per tile
    __shared__ float m_sh[decode_head_group], l_sh[decode_head_group];
    const int tid = threadIdx.x, warp = tid / warp_size, lane = tid % warp_size;

    const float* q = a.q + (t * a.n_head + h0) * hd;  // heads h0 .. h0 + hg - 1 are adjacent
    for (int64_t i = tid; i < hg * hd; i += decode_threads) q_sh[i] = q[i];

    float acc[decode_v_slots][decode_head_group];  // output column tid + k * decode_threads per head
#pragma unroll
    for (int k = 0; k < decode_v_slots; ++k)
#pragma unroll
        for (int h = 0; h < decode_head_group; ++h) acc[k][h] = 0.f;
    float m = -INFINITY, l = 0.f;  // running max and sum of query head h0 + warp (warps < hg)
    const int64_t k_col = g * hd, v_col = g * vd;

    for (int64_t jt = j0; jt < j1; jt += decode_key_tile) {
        const int n = (int)min((int64_t)decode_key_tile, j1 - jt);
        __syncthreads();  // the previous tile's rows and weights are no longer read
        if (tid < n) kv_rows<T>(p, seq, jt + tid, &k_sh[tid], &v_sh[tid]);
        __syncthreads();
        // Scores: a warp per key, lanes across the head's columns, one dot per query head.
        for (int j = warp; j < n; j += decode_warps) {
            const uint8_t* kr = k_sh[j];
            float dot[decode_head_group];
#pragma unroll
            for (int h = 0; h < decode_head_group; ++h) dot[h] = 0.f;
            for (int64_t i = lane; i < hd; i += warp_size) {
                const float kv = kv_load<T>(kr, k_col + i);
#pragma unroll
                for (int h = 0; h < decode_head_group; ++h)
                    if (h < hg) dot[h] += q_sh[h * hd + i] * kv;
            }
#pragma unroll
            for (int h = 0; h < decode_head_group; ++h)
                if (h < hg) {
                    const float d = warp_sum(dot[h]);
                    if (lane == 0) s_sh[h][j] = d * a.scale;
                }
        }
        __syncthreads();
        // Online softmax: warp h rescales its head's running sum to the new max.
        if (warp < hg) {
            const float s0 = lane < n ? s_sh[warp][lane] : -INFINITY;
            const float s1 = lane + warp_size < n ? s_sh[warp][lane + warp_size] : -INFINITY;
            const float m_new = fmaxf(m, warp_max(fmaxf(s0, s1)));
            const float p0 = exp_shifted(s0, m_new), p1 = exp_shifted(s1, m_new);
            const float alpha = exp_shifted(m, m_new);
            l = l * alpha + warp_sum(p0 + p1);
            m = m_new;
            if (lane < n) s_sh[warp][lane] = p0;
            if (lane + warp_size < n) s_sh[warp][lane + warp_size] = p1;
            if (lane == 0) alpha_sh[warp] = alpha;
        }
        __syncthreads();
        // Weighted V: threads across the output columns, each V row read once for all heads.
#pragma unroll
        for (int k = 0; k < decode_v_slots; ++k) {
            const int64_t d = tid + (int64_t)k * decode_threads;
            if (d >= vd) continue;
#pragma unroll
            for (int h = 0; h < decode_head_group; ++h)
                if (h < hg) acc[k][h] *= alpha_sh[h];
            for (int j = 0; j < n; ++j) {
                const float vv = kv_load<T>(v_sh[j], v_col + d);
#pragma unroll
                for (int h = 0; h < decode_head_group; ++h)
                    if (h < hg) acc[k][h] += s_sh[h][j] * vv;
            }
        }
    }
    if (warp < hg && lane == 0) {
        m_sh[warp] = m;
        l_sh[warp] = l;
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < decode_v_slots; ++k) {
        const int64_t d = tid + (int64_t)k * decode_threads;
        if (d >= vd) continue;
#pragma unroll
        for (int h = 0; h < decode_head_group; ++h) {
            if (h >= hg) continue;
            const int64_t row = t * a.n_head + h0 + h;  // (token, query head)
            if (split.n_chunks == 1) {
                a.out[row * vd + d] = acc[k][h] * (1.0f / l_sh[h]);
            } else {
                float* part = a.workspace + (row * split.n_chunks + c) * (vd + 2);
                part[2 + d] = acc[k][h];
                if (d == 0) {
                    part[0] = m_sh[h];
                    part[1] = l_sh[h];
                }
            }
        }
    }
}

// out[t, h, :] from the chunk partials of (t, h), merged in chunk order:
// out = sum_c w_c o_c / sum_c w_c l_c with w_c = exp(m_c - max_c m_c).
// grid: (n_tokens, n_head); block: combine_threads
__global__ void __launch_bounds__(combine_threads)
    attention_combine_kernel(const AttentionParams a, const PagedKv p, const AttentionSplit split) {
    const int64_t t = blockIdx.x, h = blockIdx.y, vd = a.v_head_dim;
    const PagedSeq seq = p.seqs[p.token_seq[t]];
    const int64_t n_ctx = seq.pos0 + (t - seq.token_offset) + 1;
    const int64_t nc = min((n_ctx + split.chunk_len - 1) / split.chunk_len, split.n_chunks);  // chunks written
    const int64_t row = t * a.n_head + h, part_floats = vd + 2;
    const float* parts = a.workspace + row * split.n_chunks * part_floats;
    __shared__ float w_sh[attention_decode_max_chunks];
    __shared__ float max_sh, inv_sh;
    if (threadIdx.x == 0) {
        float mx = parts[0];
        for (int64_t c = 1; c < nc; ++c) mx = fmaxf(mx, parts[c * part_floats]);
        max_sh = mx;
    }
    __syncthreads();
    for (int64_t c = threadIdx.x; c < nc; c += combine_threads) w_sh[c] = expf(parts[c * part_floats] - max_sh);
    __syncthreads();
    if (threadIdx.x == 0) {
        float sum = 0.f;
        for (int64_t c = 0; c < nc; ++c) sum += w_sh[c] * parts[c * part_floats + 1];
        inv_sh = 1.0f / sum;
    }
    __syncthreads();
    for (int64_t d = threadIdx.x; d < vd; d += combine_threads) {
        float o = 0.f;
        for (int64_t c = 0; c < nc; ++c) o += w_sh[c] * parts[c * part_floats + 2 + d];
        a.out[row * vd + d] = o * inv_sh;
    }
}

template <KvType T>
void decode_launch_typed(const AttentionParams& a, const PagedKv& p, const AttentionSplit& split, cudaStream_t s) {
    const int64_t group = a.n_head / a.n_head_kv;
    const int64_t n_sub = (group + decode_head_group - 1) / decode_head_group;
    const dim3 grid((unsigned)p.n_tokens, (unsigned)split.n_chunks, (unsigned)(a.n_head_kv * n_sub));
    attention_decode_kernel<T><<<grid, decode_threads, 0, s>>>(a, p, split);
    CUDA_CHECK(cudaGetLastError());
}

}  // namespace

void attention_decode_launch(const AttentionParams& a, const PagedKv& p, cudaStream_t s) {
    GRIDLM_ASSERT(p.max_new == 1 && p.n_tokens > 0 && p.n_tokens <= INT32_MAX);
    GRIDLM_ASSERT(a.head_dim <= attention_max_head_dim && a.v_head_dim <= attention_max_v_head_dim);
    const AttentionSplit split = attention_decode_split(p.n_tokens, a.n_head, p.max_positions);
    GRIDLM_ASSERT(split.n_chunks >= 1 && split.n_chunks <= attention_decode_max_chunks && split.chunk_len > 0);
    // n_head_kv * ceil(group / 8) <= n_head <= 65535 (checked by attention_launch): a valid gridDim.z.
    if (split.n_chunks > 1 && a.workspace == nullptr)
        throw Error(str("CUDA attention: the decode of ", p.n_tokens, " tokens over up to ", p.max_positions,
                        " positions needs a workspace of ",
                        attention_workspace_floats(p.n_tokens, a.n_head, a.v_head_dim, p.max_positions),
                        " floats; none was given"));
    switch (p.type) {
        case KvType::f32:
            decode_launch_typed<KvType::f32>(a, p, split, s);
            break;
        case KvType::bf16:
            decode_launch_typed<KvType::bf16>(a, p, split, s);
            break;
        case KvType::f16:
            decode_launch_typed<KvType::f16>(a, p, split, s);
            break;
        default:
            throw Error(str("CUDA attention: KV element type ", (int)p.type, " is not supported (f32, bf16, f16)"));
    }
    if (split.n_chunks > 1) {
        attention_combine_kernel<<<dim3((unsigned)p.n_tokens, (unsigned)a.n_head), combine_threads, 0, s>>>(a, p,
                                                                                                            split);
        CUDA_CHECK(cudaGetLastError());
    }
}

}  // namespace gridlm::cuda
