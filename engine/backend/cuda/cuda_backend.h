// CUDA backend entry points visible to host code: the device probe and the backend factory.
// Only compiled when nvcc is found; callers guard with GRIDLM_HAVE_CUDA.
//
// The backend itself is libgridlm_cuda.so, next to the executable, loaded on the first call that
// needs it (engine/backend/cuda/cuda_module.h); with it the CUDA runtime, cuBLAS and their ~120 MiB
// of pages. The calls below that take a Backend answer "not a CUDA backend" without loading it;
// visible_device_count() asks whether the NVIDIA driver is installed before it loads it. When the
// module cannot be loaded (not found, or a library it needs is missing on this node), the calls
// report that as their error: cuda_probe()'s `error`, visible_device_count()'s *why,
// make_cuda_backend() and rmsnorm_host() throw gridlm::Error with it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "engine/backend/backend.h"

namespace gridlm::cuda {

struct CudaInfo {
    int device_count = 0;     // 0 when no GPU (or no driver) is present
    int runtime_version = 0;  // e.g. 13000
    int driver_version = 0;   // 0 without a driver
    int cublas_version = 0;   // 0 when no device could be opened
    std::string device_name;  // device 0, empty without a GPU
    std::string error;        // why device_count is 0, when it is
};

// Queries runtime, driver and (when a device is present) cuBLAS versions. Never throws. Opens
// device 0 (a context there) when one is present.
CudaInfo cuda_probe();

// The CUDA devices this process sees (0 without a GPU or driver, *why then says why: "no NVIDIA
// driver (libcuda) on this node" when there is none); opens none.
int visible_device_count(std::string* why = nullptr);

// Empty when device `device` can run the CUDA backend (compute capability 8.0 or newer), else
// why not; reads its properties without opening it.
std::string device_capability_problem(int device);

// The UUID of a CUDA backend's device ("GPU-1a2b..."), the same whatever CUDA_VISIBLE_DEVICES
// calls it; empty for any other backend.
std::string cuda_backend_device_uuid(const Backend& backend);

// "NVIDIA H200, 139.8 GiB, compute capability 9.0" for a CUDA backend's device; empty otherwise.
std::string cuda_backend_device_name(const Backend& backend);

// RMSNorm over rows on the GPU, for host arrays (copies in and out; used by parity tests).
// x, y: [n_rows, n_cols]; w: [n_cols]. y = x * rsqrt(mean(x^2) + eps) * w, fp32 math.
void rmsnorm_host(const float* x, const float* w, float* y, int64_t n_rows, int64_t n_cols, float eps);

struct CudaBackendOptions {
    int device = 0;       // CUDA device index (one GPU per rank: the rank's local rank, usually)
    bool graphs = true;   // record decode steps into CUDA graphs and replay them
    int max_graphs = 64;  // distinct step shapes kept as graphs (one per decode batch size)
};

// The CUDA backend on one device: weights, KV blocks and activations in device memory, one
// stream, cuBLAS for large matmuls, the kernels of engine/backend/cuda/ops/ for the rest.
// Throws gridlm::Error naming the device and host when the device does not exist, its compute
// capability is below 8.0, this build has no kernel image for it, or it cannot be opened.
std::unique_ptr<Backend> make_cuda_backend(const CudaBackendOptions& options);

// What a CUDA backend counted so far (for logs and benchmarks): steps run eagerly, recorded into
// a graph and replayed from one. Zero for any other backend.
struct CudaStepCounts {
    int64_t eager = 0, recorded = 0, replayed = 0;
};
CudaStepCounts cuda_step_counts(const Backend& backend);

// The stream a CUDA backend runs its work on (a cudaStream_t), for a communicator that must order
// its collectives with the backend's kernels; nullptr for any other backend.
void* cuda_backend_stream(const Backend& backend);
// Whether a CUDA backend records decode steps into CUDA graphs; false for any other backend.
bool cuda_backend_graphs(const Backend& backend);
// The device a CUDA backend runs on; -1 for any other backend.
int cuda_backend_device(const Backend& backend);
// Free and total memory of a CUDA backend's device, in bytes (cudaMemGetInfo); false for any
// other backend.
bool cuda_backend_memory(const Backend& backend, size_t* free_bytes, size_t* total_bytes);

// The CUDA architectures this build has kernels for (CMAKE_CUDA_ARCHITECTURES, e.g. "80,90").
// Answered without loading the module.
std::string built_architectures();

// "libgridlm_cuda.so loads", or why it cannot be loaded on this node, for --version: without an
// NVIDIA driver it says so and loads nothing, else it loads the module.
std::string module_status();

// Empty when this build has a kernel image for `device`, else why not (the compute capability
// and the architectures built). Makes `device` current.
std::string kernel_image_problem(int device);

}  // namespace gridlm::cuda
