// Embedding lookup on the GPU: one block per token row (grid-stride over tokens), its threads
// copy the row's columns, widening bf16 / f16 exactly as the CPU op does.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "engine/backend/cuda/cuda_check.h"
#include "engine/backend/cuda/ops/elementwise.cuh"
#include "engine/backend/cuda/ops/embedding.cuh"
#include "engine/backend/cuda/ops/float_types.cuh"

namespace gridlm::cuda {

namespace {

struct EmbeddingParams {
    const uint8_t* table;  // [rows, cols] of T, row r at byte row_stride * r
    int64_t rows;
    int64_t cols;
    int64_t row_stride;  // bytes
    int64_t id0;         // id of table row 0
    const int32_t* ids;  // [n]
    int64_t n;
    float* out;  // [n, cols]
};

template <typename T>
__global__ void embedding_kernel(EmbeddingParams p) {
    for (int64_t t = blockIdx.x; t < p.n; t += gridDim.x) {
        float* dst = p.out + t * p.cols;
        const int64_t row = (int64_t)p.ids[t] - p.id0;
        if (row < 0 || row >= p.rows) {
            for (int64_t i = threadIdx.x; i < p.cols; i += blockDim.x) dst[i] = 0.f;
            continue;
        }
        const T* src = reinterpret_cast<const T*>(p.table + row * p.row_stride);
        for (int64_t i = threadIdx.x; i < p.cols; i += blockDim.x) dst[i] = to_f32(src[i]);
    }
}

// At most this many blocks; each handles tokens t, t + grid, ...
constexpr int64_t embedding_max_blocks = 65535;

}  // namespace

void embedding_launch(const void* table, DType type, int64_t rows, int64_t cols, int64_t row_stride_bytes, int64_t id0,
                      const int32_t* ids, int64_t n, float* out, cudaStream_t stream) {
    GRIDLM_ASSERT(rows >= 0 && cols >= 0 && n >= 0);
    if (n == 0 || cols == 0) return;
    if (type != DType::dtype_f32 && type != DType::dtype_bf16 && type != DType::dtype_f16)
        throw Error(str("embedding: a table of ", dtype_name(type),
                        " is not supported by the CUDA backend (f32, bf16 or f16)"));
    const int64_t elem = (int64_t)dtype_size(type);
    if (row_stride_bytes < cols * elem || row_stride_bytes % elem != 0 || !is_aligned(table, (uintptr_t)elem))
        throw Error(str("embedding: a ", dtype_name(type), " table with row stride ", row_stride_bytes, " bytes for ",
                        cols, " columns: the stride must be a multiple of ", elem,
                        " bytes and at least a row, the table aligned to it"));
    const EmbeddingParams p{static_cast<const uint8_t*>(table), rows, cols, row_stride_bytes, id0, ids, n, out};
    const unsigned blocks = (unsigned)std::min<int64_t>(n, embedding_max_blocks);
    switch (type) {
        case DType::dtype_f32:
            embedding_kernel<float><<<blocks, ew_threads, 0, stream>>>(p);
            break;
        case DType::dtype_bf16:
            embedding_kernel<__nv_bfloat16><<<blocks, ew_threads, 0, stream>>>(p);
            break;
        default:  // f16, checked above
            embedding_kernel<__half><<<blocks, ew_threads, 0, stream>>>(p);
            break;
    }
    CUDA_CHECK(cudaGetLastError());
}

}  // namespace gridlm::cuda
