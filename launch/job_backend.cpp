// --backend / --cuda-graphs and the per-rank backend (job_backend.h).
#include "launch/job_backend.h"

#include "engine/core/communicator.h"
#include "engine/core/error.h"
#include "launch/commands.h"
#include "parallel/mpi_env.h"
#include "parallel/nccl_communicator.h"

#ifdef GRIDLM_HAVE_CUDA
#include "engine/backend/cuda/cuda_backend.h"
#endif

namespace po = boost::program_options;

namespace gridlm {

void add_backend_options(po::options_description& opts) {
    // clang-format off
    opts.add_options()
        ("backend", po::value<std::string>()->default_value("auto"),
         "compute backend: cpu, cuda (one GPU per rank, by the rank's place on its node; weights in bf16 "
         "with --dtype auto), or auto (cuda when this build has it and a GPU is visible, else cpu)")
        ("cuda-graphs", po::value<std::string>()->default_value("on"),
         "cuda backend: record each decode batch size's step into a CUDA graph once and replay it (on), "
         "or launch every kernel each step (off)");
    // clang-format on
}

BackendSettings backend_settings_from(const po::variables_map& vm) {
    BackendSettings s;
    s.name = vm["backend"].as<std::string>();
    if (s.name != "auto" && s.name != "cpu" && s.name != "cuda")
        throw UsageError(str("--backend '", s.name, "' is not one of auto, cpu, cuda"));
    const std::string graphs = vm["cuda-graphs"].as<std::string>();
    if (graphs != "on" && graphs != "off") throw UsageError(str("--cuda-graphs '", graphs, "' is not one of on, off"));
    s.cuda_graphs = graphs == "on";
    return s;
}

std::string resolve_backend(const std::string& name) {
    if (name != "auto") return name;
#ifdef GRIDLM_HAVE_CUDA
    // Counting devices opens none: a node's ranks do not all start a context on GPU 0.
    if (cuda::visible_device_count() > 0) return "cuda";
#endif
    return "cpu";
}

std::shared_ptr<Backend> make_rank_backend(const std::string& resolved, const BackendSettings& s, int threads,
                                           const MpiEnv& mpi) {
    if (resolved == "cpu") return std::shared_ptr<Backend>(make_cpu_backend(threads));
#ifdef GRIDLM_HAVE_CUDA
    std::string why;
    const int count = cuda::visible_device_count(&why);
    if (count == 0) throw Error(str("--backend cuda: no CUDA device visible on ", mpi.host(), " (", why, ")"));
    // One GPU per rank: the rank's place on its node, or the one GPU a launcher left visible.
    const int device = count == 1 ? 0 : mpi.local_rank();
    if (device >= count)
        throw Error(str("--backend cuda: rank ", mpi.rank(), " is rank ", mpi.local_rank(), " of ", mpi.local_size(),
                        " on ", mpi.host(), ", which has ", count,
                        " visible GPUs: start at most one rank per GPU on a node"));
    cuda::CudaBackendOptions o;
    o.device = device;
    o.graphs = s.cuda_graphs;
    return std::shared_ptr<Backend>(cuda::make_cuda_backend(o));
#else
    (void)s;
    throw Error(
        str("--backend cuda: this gridlm was built without the CUDA backend (nvcc was not found at "
            "configure time, or -DGRIDLM_CUDA=OFF) on ",
            mpi.host()));
#endif
}

void check_same_backend(const MpiEnv& mpi, const std::string& resolved) {
    const int cuda = resolved == "cuda" ? 1 : 0;
    const bool some_cuda = mpi.max_over_ranks(cuda) == 1, some_cpu = mpi.max_over_ranks(1 - cuda) == 1;
    if (some_cuda && some_cpu)
        throw Error(str("the ranks disagree on --backend auto: this rank (", mpi.host(), ") chose ", resolved,
                        ", others chose ", cuda ? "cpu" : "cuda",
                        " (a GPU visible on some nodes only); give --backend"));
}

WeightPolicy weight_policy_for(const std::string& resolved, const WeightPolicy& asked) {
    if (resolved == "cuda" && asked.keep) return WeightPolicy(DType::dtype_bf16);
    return asked;
}

std::unique_ptr<Communicator> device_tp_communicator(Backend& backend, Communicator& mpi_tp) {
    if (mpi_tp.size() == 1 || backend.host_memory()) return nullptr;
#ifdef GRIDLM_HAVE_CUDA
    return make_nccl_communicator(mpi_tp, cuda::cuda_backend_device(backend), cuda::cuda_backend_stream(backend));
#else
    return nullptr;
#endif
}

}  // namespace gridlm
