// Small-batch matmul (GEMV) on the GPU: each warp takes R consecutive weight rows (1, 2 or 4 as
// the token count grows), gemv_warps warps per block. The warp streams its rows once, in 16-byte
// loads when the rows and x are 16-byte aligned (4 f32 or 8 bf16 / f16 weights per load; the
// last cols % 4 or % 8 one at a time), else one weight per load; every (row, token) partial sum
// stays in registers, so each weight byte is read once for all n tokens. The 32 lane sums are
// combined by a butterfly of warp shuffles.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "engine/backend/cuda/cuda_check.h"
#include "engine/backend/cuda/ops/elementwise.cuh"
#include "engine/backend/cuda/ops/float_types.cuh"
#include "engine/backend/cuda/ops/gemv.cuh"

namespace gridlm::cuda {

namespace {

constexpr int gemv_warps = 4;  // rows (warps) per block
constexpr int gemv_threads = 32 * gemv_warps;

struct GemvParams {
    const float* x;    // [n, cols]
    const uint8_t* w;  // [rows, cols] of the weight type, row r at byte row_stride * r
    int64_t rows;
    int64_t cols;
    int64_t row_stride;  // bytes
    const float* bias;   // [rows] or nullptr
    float* y;            // [n, rows]
};

// How one 16-byte load of weights widens to per_vec floats (little-endian: the low half of a
// 32-bit word is the earlier element).
template <typename WT>
struct GemvWeights;

template <>
struct GemvWeights<float> {
    static constexpr int per_vec = 4;
    __device__ static void widen(const uint4& v, float (&f)[per_vec]) {
        f[0] = __uint_as_float(v.x);
        f[1] = __uint_as_float(v.y);
        f[2] = __uint_as_float(v.z);
        f[3] = __uint_as_float(v.w);
    }
};

template <>
struct GemvWeights<__nv_bfloat16> {
    static constexpr int per_vec = 8;
    __device__ static void widen(const uint4& v, float (&f)[per_vec]) {
        const uint32_t words[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
        for (int q = 0; q < 4; ++q) {
            f[2 * q] = bf16_bits_to_f32(words[q] & 0xffffu);
            f[2 * q + 1] = __uint_as_float(words[q] & 0xffff0000u);
        }
    }
};

template <>
struct GemvWeights<__half> {
    static constexpr int per_vec = 8;
    __device__ static void widen(const uint4& v, float (&f)[per_vec]) {
        const uint32_t words[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
        for (int q = 0; q < 4; ++q) {
            f[2 * q] = f16_bits_to_f32(words[q] & 0xffffu);
            f[2 * q + 1] = f16_bits_to_f32(words[q] >> 16);
        }
    }
};

// Weight rows per warp for n tokens: each x value loaded serves R rows, which keeps the x loads
// (n * 4 bytes per weight) within what L1 delivers while the weights stream at HBM speed.
constexpr int gemv_rows_per_warp(int n) { return n <= 2 ? 1 : n <= 4 ? 2 : 4; }

// N tokens, R rows per warp; VEC: the weight rows, their stride and x are 16-byte aligned and
// cols % 4 == 0, so x[t, i0 .. i0 + 3] is one float4 for every multiple of 4, i0. Each (row,
// token) sum takes the same lane split and order of additions whatever N and R are.
template <typename WT, int N, int R, bool VEC>
__global__ void __launch_bounds__(gemv_threads) gemv_kernel(GemvParams p) {
    static_assert(R * N <= 32, "one lane writes each (row, token) output");
    const int lane = threadIdx.x & 31;
    const int64_t r0 = ((int64_t)blockIdx.x * gemv_warps + (threadIdx.x >> 5)) * R;
    if (r0 >= p.rows) return;  // the whole warp leaves; no block-wide barrier follows
    // A row past the end re-reads the last row (in bounds, no divergence) and is not written.
    const uint8_t* wrow[R];
#pragma unroll
    for (int k = 0; k < R; ++k) wrow[k] = p.w + min(r0 + k, p.rows - 1) * p.row_stride;
    float acc[R][N];
#pragma unroll
    for (int k = 0; k < R; ++k)
#pragma unroll
        for (int t = 0; t < N; ++t) acc[k][t] = 0.f;

    int64_t done = 0;  // columns [0, done) are summed by the vector loop
    if constexpr (VEC) {
        constexpr int E = GemvWeights<WT>::per_vec;
        const int64_t n_vec = p.cols / E;
#pragma unroll 2
        for (int64_t j = lane; j < n_vec; j += 32) {
            float wf[R][E];
#pragma unroll
            for (int k = 0; k < R; ++k)
                GemvWeights<WT>::widen(__ldg(reinterpret_cast<const uint4*>(wrow[k]) + j), wf[k]);
            const int64_t i0 = j * E;
#pragma unroll
            for (int t = 0; t < N; ++t) {
                const float4* xv = reinterpret_cast<const float4*>(p.x + t * p.cols + i0);
#pragma unroll
                for (int q = 0; q < E / 4; ++q) {
                    const float4 xq = __ldg(xv + q);
#pragma unroll
                    for (int k = 0; k < R; ++k) {
                        acc[k][t] = fmaf(wf[k][4 * q], xq.x, acc[k][t]);
                        acc[k][t] = fmaf(wf[k][4 * q + 1], xq.y, acc[k][t]);
                        acc[k][t] = fmaf(wf[k][4 * q + 2], xq.z, acc[k][t]);
                        acc[k][t] = fmaf(wf[k][4 * q + 3], xq.w, acc[k][t]);
                    }
                }
            }
        }
        done = n_vec * E;
    }
    for (int64_t i = done + lane; i < p.cols; i += 32) {
        float wi[R];
#pragma unroll
        for (int k = 0; k < R; ++k) wi[k] = to_f32(reinterpret_cast<const WT*>(wrow[k])[i]);
#pragma unroll
        for (int t = 0; t < N; ++t) {
            const float xt = __ldg(p.x + t * p.cols + i);
#pragma unroll
            for (int k = 0; k < R; ++k) acc[k][t] = fmaf(wi[k], xt, acc[k][t]);
        }
    }

    // Butterfly: afterwards every lane holds every full sum.
#pragma unroll
    for (int k = 0; k < R; ++k)
#pragma unroll
        for (int t = 0; t < N; ++t)
#pragma unroll
            for (int off = 16; off > 0; off >>= 1) acc[k][t] += __shfl_xor_sync(0xffffffffu, acc[k][t], off);
    // Lane k * N + t writes row r0 + k, token t (constant-index selects keep acc in registers).
    float out = 0.f;
#pragma unroll
    for (int k = 0; k < R; ++k)
#pragma unroll
        for (int t = 0; t < N; ++t)
            if (lane == k * N + t) out = acc[k][t];
    const int64_t r = r0 + lane / N;
    if (lane < R * N && r < p.rows) {
        if (p.bias) out += p.bias[r];
        p.y[(int64_t)(lane % N) * p.rows + r] = out;
    }
}

template <typename WT, int N>
void gemv_as(const GemvParams& p, bool vec, cudaStream_t stream) {
    constexpr int R = gemv_rows_per_warp(N);
    constexpr int64_t rows_per_block = (int64_t)gemv_warps * R;
    const unsigned blocks = (unsigned)((p.rows + rows_per_block - 1) / rows_per_block);
    if (vec)
        gemv_kernel<WT, N, R, true><<<blocks, gemv_threads, 0, stream>>>(p);
    else
        gemv_kernel<WT, N, R, false><<<blocks, gemv_threads, 0, stream>>>(p);
}

// The one place the token count becomes a template constant (checked by gemv_launch).
template <typename WT>
void gemv_tokens(const GemvParams& p, int64_t n, bool vec, cudaStream_t stream) {
    static_assert(gemv_max_tokens == 8, "one case per token count");
    switch (n) {
        case 1:
            return gemv_as<WT, 1>(p, vec, stream);
        case 2:
            return gemv_as<WT, 2>(p, vec, stream);
        case 3:
            return gemv_as<WT, 3>(p, vec, stream);
        case 4:
            return gemv_as<WT, 4>(p, vec, stream);
        case 5:
            return gemv_as<WT, 5>(p, vec, stream);
        case 6:
            return gemv_as<WT, 6>(p, vec, stream);
        case 7:
            return gemv_as<WT, 7>(p, vec, stream);
        default:
            return gemv_as<WT, 8>(p, vec, stream);
    }
}

}  // namespace

void gemv_launch(const float* x, const void* w, DType type, int64_t rows, int64_t cols, int64_t row_stride_bytes,
                 const float* bias, int64_t n, float* y, cudaStream_t stream) {
    if (n < 1 || n > gemv_max_tokens)
        throw Error(str("gemv: ", n, " tokens; the GEMV kernel takes 1 to ", gemv_max_tokens));
    if (type != DType::dtype_f32 && type != DType::dtype_bf16 && type != DType::dtype_f16)
        throw Error(str("gemv: ", dtype_name(type), " weights are not supported by the CUDA GEMV (f32, bf16 or f16)"));
    GRIDLM_ASSERT(rows >= 0 && cols >= 1);
    GRIDLM_ASSERT((rows + gemv_warps - 1) / gemv_warps <= (int64_t)INT32_MAX);
    const int64_t elem = (int64_t)dtype_size(type);
    if (row_stride_bytes < cols * elem || row_stride_bytes % elem != 0 || !is_aligned(w, (uintptr_t)elem))
        throw Error(str("gemv: a ", dtype_name(type), " weight with row stride ", row_stride_bytes, " bytes for ", cols,
                        " columns: the stride must be a multiple of ", elem,
                        " bytes and at least a row, the weights aligned to it"));
    if (rows == 0) return;
    const GemvParams p{x, static_cast<const uint8_t*>(w), rows, cols, row_stride_bytes, bias, y};
    const bool vec = is_aligned(w, 16) && row_stride_bytes % 16 == 0 && is_aligned(x, 16) && cols % 4 == 0;
    switch (type) {
        case DType::dtype_f32:
            gemv_tokens<float>(p, n, vec, stream);
            break;
        case DType::dtype_bf16:
            gemv_tokens<__nv_bfloat16>(p, n, vec, stream);
            break;
        default:  // f16, checked above
            gemv_tokens<__half>(p, n, vec, stream);
            break;
    }
    CUDA_CHECK(cudaGetLastError());
}

}  // namespace gridlm::cuda
