// cuda_backend.h on the executable's side: each call goes to libgridlm_cuda.so (cuda_module.h),
// loaded on first need. Questions about a backend that is not a CUDA one are answered without
// loading it (no CUDA backend can exist before the module is loaded), and whether a node has a
// GPU is first asked of the driver alone, so a CPU job on a node without the CUDA libraries never
// reads them.
#include <dlfcn.h>

#include <mutex>

#include "engine/backend/cuda/cuda_backend.h"
#include "engine/backend/cuda/cuda_module.h"
#include "engine/core/error.h"
#include "engine/core/module_loader.h"

#ifndef GRIDLM_CUDA_ARCHITECTURES
#define GRIDLM_CUDA_ARCHITECTURES "unknown"
#endif

namespace gridlm::cuda {

namespace {

std::mutex g_mutex;
const ModuleApi* g_api = nullptr;  // set once the module has loaded

// The module's table, loading it on the first call; nullptr (with *why) when it cannot be loaded.
// A failure is not remembered: a later call tries again (and says why again).
const ModuleApi* api(std::string* why) {
    std::lock_guard lock(g_mutex);
    if (g_api) return g_api;
    std::string err;
    void* handle = load_module(gridlm_cuda_module_file, &err);
    if (!handle) {
        if (why) *why = str("the CUDA backend cannot be loaded: ", err);
        return nullptr;
    }
    using Entry = const ModuleApi* (*)(const ModuleHost*);
    auto entry = reinterpret_cast<Entry>(module_symbol(handle, gridlm_cuda_module_entry));
    static const ModuleHost host{module_abi, &gridlm::assert_fail};
    const ModuleApi* a = entry ? entry(&host) : nullptr;
    if (!a || a->abi != module_abi) {
        if (why)
            *why = str("the CUDA backend cannot be loaded: ", gridlm_cuda_module_file, " in ", module_search_path(),
                       " is not the one of this gridlm (another build's?); rebuild");
        return nullptr;
    }
    g_api = a;
    return g_api;
}

// The module's table when it is loaded already, else nullptr (never loads it).
const ModuleApi* loaded() {
    std::lock_guard lock(g_mutex);
    return g_api;
}

bool driver_present() {
    void* h = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
    if (!h) return false;
    dlclose(h);
    return true;
}

}  // namespace

CudaInfo cuda_probe() {
    std::string why;
    if (const ModuleApi* a = api(&why)) return a->probe();
    CudaInfo info;
    info.error = why;
    return info;
}

int visible_device_count(std::string* why) {
    if (!driver_present()) {
        if (why) *why = "no NVIDIA driver (libcuda) on this node";
        return 0;
    }
    const ModuleApi* a = api(why);
    return a ? a->visible_device_count(why) : 0;
}

std::string device_capability_problem(int device) {
    std::string why;
    const ModuleApi* a = api(&why);
    return a ? a->device_capability_problem(device) : why;
}

std::string kernel_image_problem(int device) {
    std::string why;
    const ModuleApi* a = api(&why);
    return a ? a->kernel_image_problem(device) : why;
}

std::unique_ptr<Backend> make_cuda_backend(const CudaBackendOptions& options) {
    std::string why;
    const ModuleApi* a = api(&why);
    if (!a) throw Error(why);
    return a->make_backend(options);
}

std::string cuda_backend_device_uuid(const Backend& backend) {
    const ModuleApi* a = loaded();
    return a ? a->device_uuid(backend) : "";
}

std::string cuda_backend_device_name(const Backend& backend) {
    const ModuleApi* a = loaded();
    return a ? a->device_name(backend) : "";
}

CudaStepCounts cuda_step_counts(const Backend& backend) {
    const ModuleApi* a = loaded();
    return a ? a->step_counts(backend) : CudaStepCounts{};
}

void* cuda_backend_stream(const Backend& backend) {
    const ModuleApi* a = loaded();
    return a ? a->stream(backend) : nullptr;
}

bool cuda_backend_graphs(const Backend& backend) {
    const ModuleApi* a = loaded();
    return a && a->graphs(backend);
}

int cuda_backend_device(const Backend& backend) {
    const ModuleApi* a = loaded();
    return a ? a->device(backend) : -1;
}

bool cuda_backend_memory(const Backend& backend, size_t* free_bytes, size_t* total_bytes) {
    const ModuleApi* a = loaded();
    return a && a->memory(backend, free_bytes, total_bytes);
}

void rmsnorm_host(const float* x, const float* w, float* y, int64_t n_rows, int64_t n_cols, float eps) {
    std::string why;
    const ModuleApi* a = api(&why);
    if (!a) throw Error(why);
    a->rmsnorm_host(x, w, y, n_rows, n_cols, eps);
}

std::string built_architectures() { return GRIDLM_CUDA_ARCHITECTURES; }

std::string module_status() {
    if (!driver_present()) return str(gridlm_cuda_module_file, " not loaded: no NVIDIA driver (libcuda) on this node");
    std::string why;
    return api(&why) ? str(gridlm_cuda_module_file, " loads") : why;
}

}  // namespace gridlm::cuda
