// The backend registry: the CPU backends always, the CUDA one when the build has it.
#include "engine/backend/registry.h"

#include "engine/backend/cpu/cpu_ops.h"
#include "engine/core/error.h"

#ifdef GRIDLM_HAVE_CUDA
#include "engine/backend/cuda/cuda_backend.h"
#endif

namespace gridlm {

namespace {

// An entry that cannot run here: make() reports why instead of returning a backend.
[[maybe_unused]] BackendKind unavailable_kind(const std::string& name, const std::string& why) {
    auto refuse = [name, why](int) -> std::unique_ptr<Backend> {
        throw Error(str("backend '", name, "' cannot run here: ", why));
    };
    return {.name = name, .unavailable = why, .make = refuse};
}

#ifdef GRIDLM_HAVE_CUDA
BackendKind cuda_kind() {
    const cuda::CudaInfo info = cuda::cuda_probe();
    if (info.device_count == 0) return unavailable_kind("cuda", "no CUDA device: " + info.error);
    if (const std::string problem = cuda::kernel_image_problem(0); !problem.empty())
        return unavailable_kind("cuda", problem);
    // Device 0 with graphs on; a job picks its device by local rank (launch/).
    return {.name = "cuda", .make = [](int) { return cuda::make_cuda_backend(cuda::CudaBackendOptions{}); }};
}
#endif

}  // namespace

std::vector<BackendKind> backend_kinds() {
    std::vector<BackendKind> kinds;
    kinds.push_back({.name = "cpu", .make = [](int n_threads) { return make_cpu_backend(n_threads); }});
    kinds.push_back({.name = "cpu-scalar", .make = [](int n_threads) { return cpu::make_scalar_backend(n_threads); }});
#ifdef GRIDLM_HAVE_CUDA
    kinds.push_back(cuda_kind());
#endif
    return kinds;
}

}  // namespace gridlm
