// --backend / --cuda-graphs and the per-rank backend (job_backend.h).
#include "launch/job_backend.h"

#include <algorithm>

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

std::string backends_built() {
#ifdef GRIDLM_HAVE_CUDA
    return str("cpu, cuda (CUDA architectures ", cuda::built_architectures(), "; ", cuda::module_status(), ")");
#else
    return "cpu (built without the CUDA backend)";
#endif
}

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
    s.cuda_graphs_given = !vm["cuda-graphs"].defaulted();
    return s;
}

std::string resolve_backend(const std::string& name, std::string* why) {
    if (name != "auto") return name;
#ifdef GRIDLM_HAVE_CUDA
    // Counting devices and reading their properties opens none: a node's ranks do not all start a
    // context on GPU 0.
    std::string reason;
    const int count = cuda::visible_device_count(&reason);
    for (int d = 0; d < count; ++d) {
        const std::string problem = cuda::device_capability_problem(d);
        if (problem.empty()) return "cuda";
        reason = problem;
    }
    if (why) *why = reason;
#else
    if (why) *why = "this gridlm was built without the CUDA backend";
#endif
    return "cpu";
}

std::shared_ptr<Backend> make_rank_backend(const std::string& resolved, const BackendSettings& s, int threads,
                                           const MpiEnv& mpi) {
    if (resolved == "cpu") return std::shared_ptr<Backend>(make_cpu_backend(threads));
#ifdef GRIDLM_HAVE_CUDA
    std::string why;
    const int count = cuda::visible_device_count(&why);
    if (count == 0 && why.rfind("the CUDA backend cannot be loaded", 0) == 0)
        throw Error(str("--backend cuda on ", mpi.host(), ": ", why, "; use --backend cpu"));
    if (count == 0)
        throw Error(str("--backend cuda: no CUDA device visible on ", mpi.host(), " (", why, "); use --backend cpu"));
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

std::string backend_note(const Backend& backend, const WeightPolicy& weights, const std::string& auto_reason,
                         const BackendSettings& settings) {
    const std::string w = weights.keep ? "weights as stored" : str("weights ", dtype_name(weights.dtype));
    const std::string why = auto_reason.empty() ? "" : str(" (--backend auto: ", auto_reason, ")");
#ifdef GRIDLM_HAVE_CUDA
    const int device = cuda::cuda_backend_device(backend);
    if (device >= 0) {
        return str("backend cuda: one GPU per rank by its place on the node (this rank: device ", device, ", ",
                   cuda::cuda_backend_device_name(backend), "), CUDA graphs ",
                   cuda::cuda_backend_graphs(backend) ? "on" : "off", "; ", w);
    }
#endif
    const int n = backend.n_threads();
    const std::string graphs =
        settings.cuda_graphs_given ? "; --cuda-graphs has no effect on this backend (CUDA graphs are the GPU's)" : "";
    return str("backend ", backend.name(), ": ", n, n == 1 ? " thread" : " threads", " per rank; ", w, why, graphs);
}

void check_distinct_gpus(const MpiEnv& mpi, const Backend& backend) {
    std::string mine;
#ifdef GRIDLM_HAVE_CUDA
    mine = cuda::cuda_backend_device_uuid(backend);
#else
    (void)backend;
#endif
    const std::vector<std::string> all = mpi.node_allgather(mine);
    if (mine.empty()) return;
    for (int r = 0; r < (int)all.size(); ++r)
        if (r != mpi.local_rank() && all[(size_t)r] == mine)
            throw Error(str("ranks ", std::min(r, mpi.local_rank()), " and ", std::max(r, mpi.local_rank()), " of the ",
                            mpi.local_size(), " on ", mpi.host(), " run on the same GPU (", mine,
                            "): start at most one rank per GPU, each seeing its own (Slurm --gpus-per-task=1, or "
                            "CUDA_VISIBLE_DEVICES), or all GPUs (then a rank takes its local rank's)"));
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

int64_t default_kv_budget(const Backend& backend) {
#ifdef GRIDLM_HAVE_CUDA
    size_t free_b = 0, total_b = 0;
    if (cuda::cuda_backend_memory(backend, &free_b, &total_b)) {
        const int64_t reserve = std::max<int64_t>(int64_t(1) << 30, (int64_t)(total_b / 20));
        return std::max<int64_t>((int64_t)free_b - reserve, 1);
    }
#else
    (void)backend;
#endif
    return 0;
}

namespace {

// A NCCL communicator over `mpi_group` on the backend's device and stream; nullptr for a group of
// one rank or a host-memory backend.
std::unique_ptr<Communicator> device_communicator(Backend& backend, Communicator& mpi_group) {
    if (mpi_group.size() == 1 || backend.host_memory()) return nullptr;
#ifdef GRIDLM_HAVE_CUDA
    return make_nccl_communicator(mpi_group, cuda::cuda_backend_device(backend), cuda::cuda_backend_stream(backend));
#else
    return nullptr;
#endif
}

}  // namespace

std::unique_ptr<Communicator> device_tp_communicator(Backend& backend, Communicator& mpi_tp) {
    return device_communicator(backend, mpi_tp);
}

std::unique_ptr<Communicator> device_pp_communicator(Backend& backend, Communicator& mpi_pp) {
    return device_communicator(backend, mpi_pp);
}

}  // namespace gridlm
