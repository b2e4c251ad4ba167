// libgridlm_cuda.so's entry (cuda_module.h): the table of the backend's functions, and the
// executable's services the module's code calls.
#include "engine/backend/cuda/cuda_module.h"

#include <cstdio>
#include <cstdlib>

#include "engine/core/error.h"

namespace gridlm {

namespace {
const cuda::ModuleHost* g_host = nullptr;
}  // namespace

// GRIDLM_ASSERT in the module's code: reported through the executable's log (its rank context).
void assert_fail(const char* expr, const char* file, int line) {
    if (g_host && g_host->assert_fail) g_host->assert_fail(expr, file, line);
    std::fprintf(stderr, "gridlm: internal error: assertion `%s` failed at %s:%d\n", expr, file, line);
    std::abort();
}

}  // namespace gridlm

extern "C" __attribute__((visibility("default"))) const gridlm::cuda::ModuleApi* gridlm_cuda_module(
    const gridlm::cuda::ModuleHost* host) {
    using namespace gridlm::cuda;
    if (!host || host->abi != module_abi) return nullptr;
    gridlm::g_host = host;
    static const ModuleApi api = [] {
        ModuleApi a;
        a.probe = module::cuda_probe;
        a.visible_device_count = module::visible_device_count;
        a.device_capability_problem = module::device_capability_problem;
        a.kernel_image_problem = module::kernel_image_problem;
        a.make_backend = module::make_cuda_backend;
        a.device_uuid = module::cuda_backend_device_uuid;
        a.device_name = module::cuda_backend_device_name;
        a.step_counts = module::cuda_step_counts;
        a.stream = module::cuda_backend_stream;
        a.graphs = module::cuda_backend_graphs;
        a.device = module::cuda_backend_device;
        a.memory = module::cuda_backend_memory;
        a.rmsnorm_host = module::rmsnorm_host;
        return a;
    }();
    return &api;
}
