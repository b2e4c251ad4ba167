// Device probe: runtime, driver and cuBLAS versions (NCCL is parallel/'s: parallel/nccl_info.h).
// The module's side of cuda_backend.h's probe functions (cuda_module.h).
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "engine/backend/cuda/cuda_module.h"
#include "engine/core/error.h"

#ifndef GRIDLM_CUDA_ARCHITECTURES
#define GRIDLM_CUDA_ARCHITECTURES "unknown"
#endif

namespace gridlm::cuda::module {

namespace {
__global__ void image_probe_kernel() {}
}  // namespace

std::string kernel_image_problem(int device) {
    if (cudaSetDevice(device) != cudaSuccess) {
        const std::string why = cudaGetErrorString(cudaGetLastError());
        return str("cannot open CUDA device ", device, ": ", why);
    }
    cudaFuncAttributes attr{};
    const cudaError_t err = cudaFuncGetAttributes(&attr, image_probe_kernel);
    if (err == cudaSuccess) return "";
    cudaGetLastError();
    cudaDeviceProp prop{};
    cudaGetDeviceProperties(&prop, device);
    return str("this build has no kernel image for CUDA device ", device, " (", prop.name, ", compute capability ",
               prop.major, ".", prop.minor, "): built for CMAKE_CUDA_ARCHITECTURES ", GRIDLM_CUDA_ARCHITECTURES, " (",
               cudaGetErrorString(err), "); rebuild with -DCMAKE_CUDA_ARCHITECTURES=", prop.major, prop.minor);
}

int visible_device_count(std::string* why) {
    int n = 0;
    const cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess) {
        cudaGetLastError();
        int driver = 0;
        cudaDriverGetVersion(&driver);
        if (why)
            *why = driver == 0 ? std::string("no NVIDIA driver (libcuda) on this node")
                               : str(cudaGetErrorString(err), " (driver supports CUDA ", driver / 1000, ".",
                                     driver % 1000 / 10, ")");
        return 0;
    }
    if (n == 0 && why) *why = "no CUDA device";
    return n;
}

std::string device_capability_problem(int device) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, device) != cudaSuccess) {
        const std::string why = cudaGetErrorString(cudaGetLastError());
        return str("cannot read the properties of CUDA device ", device, ": ", why);
    }
    if (prop.major < 8)
        return str("CUDA device ", device, " (", prop.name, ") has compute capability ", prop.major, ".", prop.minor,
                   "; the CUDA backend needs 8.0 or newer (bf16 tensor cores)");
    return "";
}

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

}  // namespace gridlm::cuda::module
