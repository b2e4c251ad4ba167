// CUDA backend entry points visible to host code: device probe and op launchers.
// Only compiled when nvcc is found; callers guard with GRIDLM_HAVE_CUDA.
#pragma once

#include <cstdint>
#include <string>

namespace gridlm::cuda {

struct CudaInfo {
    int device_count = 0;     // 0 when no GPU (or no driver) is present
    int runtime_version = 0;  // e.g. 13000
    int driver_version = 0;   // 0 without a driver
    int cublas_version = 0;   // 0 when no device could be opened
    std::string device_name;  // device 0, empty without a GPU
    std::string error;        // why device_count is 0, when it is
};

// Queries runtime, driver and (when a device is present) cuBLAS versions. Never throws.
CudaInfo cuda_probe();

// RMSNorm over rows on the GPU, for host arrays (copies in and out; used by parity tests).
// x, y: [n_rows, n_cols]; w: [n_cols]. y = x * rsqrt(mean(x^2) + eps) * w, fp32 math.
void rmsnorm_host(const float* x, const float* w, float* y, int64_t n_rows, int64_t n_cols, float eps);

}  // namespace gridlm::cuda
