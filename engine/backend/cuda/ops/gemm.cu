// cuBLAS GEMM for the CUDA backend's matmul (gemm.cuh).
//
// Row-major y [n, rows] is column-major y^T [rows, n]; row-major w [rows, cols] with row stride
// ld is column-major w^T [cols, rows] with leading dimension ld. So y^T = op_T(w^T) * x^T: one
// cublasGemmEx with transa = T, m = rows, n = n, k = cols, lda = ld, ldb = cols, ldc = rows.
#include "engine/backend/cuda/ops/gemm.cuh"

#include <climits>

#include "engine/backend/cuda/cuda_check.h"

namespace gridlm::cuda {

void gemm_launch(cublasHandle_t handle, const void* x, const void* w, DType type, int64_t rows, int64_t cols,
                 int64_t ld, int64_t n, float* y) {
    GRIDLM_ASSERT(rows > 0 && cols > 0 && n > 0 && ld >= cols);
    if (rows > INT_MAX || cols > INT_MAX || n > INT_MAX || ld > INT_MAX)
        throw Error(str("matmul of ", n, " x ", cols, " by ", rows, " x ", cols, " (row stride ", ld,
                        ") exceeds cuBLAS's 32-bit dimensions"));
    cudaDataType_t ab;
    cublasComputeType_t compute;
    switch (type) {
        case DType::dtype_f32:
            ab = CUDA_R_32F;
            compute = CUBLAS_COMPUTE_32F;  // no TF32: the CPU reference sums f32 products
            break;
        case DType::dtype_bf16:
            ab = CUDA_R_16BF;
            compute = CUBLAS_COMPUTE_32F;
            break;
        case DType::dtype_f16:
            ab = CUDA_R_16F;
            compute = CUBLAS_COMPUTE_32F;
            break;
        default:
            throw Error(str("the CUDA matmul takes f32, bf16 or f16 weights, not ", dtype_name(type)));
    }
    const float alpha = 1.0f, beta = 0.0f;
    CUBLAS_CHECK(cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, (int)rows, (int)n, (int)cols, &alpha, w, ab, (int)ld, x,
                              ab, (int)cols, &beta, y, CUDA_R_32F, (int)rows, compute, CUBLAS_GEMM_DEFAULT));
}

}  // namespace gridlm::cuda
