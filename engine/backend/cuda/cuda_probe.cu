// Device probe: runtime, driver and cuBLAS versions (NCCL is parallel/'s: parallel/nccl_info.h).
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "engine/backend/cuda/cuda_backend.h"

namespace gridlm::cuda {

CudaInfo cuda_probe() {
    CudaInfo info;
    cudaRuntimeGetVersion(&info.runtime_version);
    cudaDriverGetVersion(&info.driver_version);
    cudaError_t err = cudaGetDeviceCount(&info.device_count);
    if (err != cudaSuccess) {
        info.device_count = 0;
        info.error = cudaGetErrorString(err);
        cudaGetLastError();  // clear the sticky error so later calls start clean
        return info;
    }
    if (info.device_count == 0) {
        info.error = "no CUDA device";
        return info;
    }
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess) info.device_name = prop.name;
    cublasHandle_t handle = nullptr;
    if (cublasCreate(&handle) == CUBLAS_STATUS_SUCCESS) {
        cublasGetVersion(handle, &info.cublas_version);
        cublasDestroy(handle);
    }
    return info;
}

}  // namespace gridlm::cuda
