// The boundary between the gridlm executable and libgridlm_cuda.so, the CUDA backend built as a
// module that is loaded on first use (engine/core/module_loader.h): the executable calls the
// functions of cuda_backend.h (engine/backend/cuda/cuda_loader.cpp), which load the module and
// call through the table below. The module and the executable come from one build (the same
// compiler and standard library), so the table passes C++ types; `abi` catches a module left over
// from another version of this table.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "engine/backend/backend.h"
#include "engine/backend/cuda/cuda_backend.h"

namespace gridlm::cuda {

inline constexpr int module_abi = 1;

// What the module needs from the executable: its internal-error report (engine/core/log.h's
// assert_fail, which logs with the rank's context before aborting).
struct ModuleHost {
    int abi = module_abi;
    void (*assert_fail)(const char* expr, const char* file, int line) = nullptr;
};

// The functions of cuda_backend.h, as the module implements them (same contracts).
struct ModuleApi {
    int abi = module_abi;
    CudaInfo (*probe)() = nullptr;
    int (*visible_device_count)(std::string* why) = nullptr;
    std::string (*device_capability_problem)(int device) = nullptr;
    std::string (*kernel_image_problem)(int device) = nullptr;
    std::unique_ptr<Backend> (*make_backend)(const CudaBackendOptions& options) = nullptr;
    std::string (*device_uuid)(const Backend& backend) = nullptr;
    std::string (*device_name)(const Backend& backend) = nullptr;
    CudaStepCounts (*step_counts)(const Backend& backend) = nullptr;
    void* (*stream)(const Backend& backend) = nullptr;
    bool (*graphs)(const Backend& backend) = nullptr;
    int (*device)(const Backend& backend) = nullptr;
    bool (*memory)(const Backend& backend, size_t* free_bytes, size_t* total_bytes) = nullptr;
    void (*rmsnorm_host)(const float* x, const float* w, float* y, int64_t n_rows, int64_t n_cols, float eps) = nullptr;
};

// The module's implementations (defined in the module only).
namespace module {
CudaInfo cuda_probe();
int visible_device_count(std::string* why);
std::string device_capability_problem(int device);
std::string kernel_image_problem(int device);
std::unique_ptr<Backend> make_cuda_backend(const CudaBackendOptions& options);
std::string cuda_backend_device_uuid(const Backend& backend);
std::string cuda_backend_device_name(const Backend& backend);
CudaStepCounts cuda_step_counts(const Backend& backend);
void* cuda_backend_stream(const Backend& backend);
bool cuda_backend_graphs(const Backend& backend);
int cuda_backend_device(const Backend& backend);
bool cuda_backend_memory(const Backend& backend, size_t* free_bytes, size_t* total_bytes);
void rmsnorm_host(const float* x, const float* w, float* y, int64_t n_rows, int64_t n_cols, float eps);
}  // namespace module

}  // namespace gridlm::cuda

// The module's one exported symbol: the table, after recording `host` (whose abi must match).
// Returns nullptr when host->abi differs from the module's.
extern "C" const gridlm::cuda::ModuleApi* gridlm_cuda_module(const gridlm::cuda::ModuleHost* host);
inline constexpr const char* gridlm_cuda_module_file = "libgridlm_cuda.so";
inline constexpr const char* gridlm_cuda_module_entry = "gridlm_cuda_module";
