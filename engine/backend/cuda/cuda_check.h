// Error checks for CUDA runtime, cuBLAS and NCCL calls: report expression, file, line and host.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <unistd.h>

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "engine/core/error.h"

namespace gridlm::cuda {

inline std::string host_name() {
    char buf[256] = {0};
    gethostname(buf, sizeof(buf) - 1);
    return buf;
}

}  // namespace gridlm::cuda

#define CUDA_CHECK(expr)                                                                                          \
    do {                                                                                                          \
        cudaError_t err_ = (expr);                                                                                \
        if (err_ != cudaSuccess)                                                                                  \
            throw ::gridlm::Error(::gridlm::str("CUDA error ", cudaGetErrorString(err_), " in `", #expr, "` at ", \
                                                __FILE__, ":", __LINE__, " on ", ::gridlm::cuda::host_name()));   \
    } while (0)

#define CUBLAS_CHECK(expr)                                                                                         \
    do {                                                                                                           \
        cublasStatus_t st_ = (expr);                                                                               \
        if (st_ != CUBLAS_STATUS_SUCCESS)                                                                          \
            throw ::gridlm::Error(::gridlm::str("cuBLAS error ", (int)st_, " in `", #expr, "` at ", __FILE__, ":", \
                                                __LINE__, " on ", ::gridlm::cuda::host_name()));                   \
    } while (0)
