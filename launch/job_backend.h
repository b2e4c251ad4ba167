// The compute backend a job runs on (--backend, --cuda-graphs): which one "auto" means here, one
// GPU per rank by its place on the node, and the weight types that go with it.
#pragma once

#include <memory>
#include <string>

#include <boost/program_options.hpp>

#include "engine/backend/backend.h"
#include "engine/model/weights.h"

namespace gridlm {

class MpiEnv;
class Communicator;

struct BackendSettings {
    std::string name = "auto";       // --backend: auto, cpu or cuda
    bool cuda_graphs = true;         // --cuda-graphs on|off
    bool cuda_graphs_given = false;  // --cuda-graphs was on the command line (not its default)
};

// "cpu, cuda (sm 80,90)": the backends this build has, for --version.
std::string backends_built();

// Adds --backend and --cuda-graphs.
void add_backend_options(boost::program_options::options_description& opts);
// Reads them back; throws UsageError for another value ("--backend 'gpu' is not one of auto, cpu, cuda").
BackendSettings backend_settings_from(const boost::program_options::variables_map& vm);

// "cpu" or "cuda": what `name` means on this rank ("auto": cuda when this build has the CUDA
// backend and a GPU of compute capability 8.0 or newer is visible, else cpu, and *why then says
// why not: no driver, no device, an older GPU, a build without CUDA).
std::string resolve_backend(const std::string& name, std::string* why = nullptr);

// The backend of this rank: the CPU one with `threads` threads, or the CUDA one on GPU
// local_rank (the only visible GPU when just one is visible, as under Slurm's --gpus-per-task).
// Throws gridlm::Error naming the rank's node when there is no such GPU, the build has no CUDA
// backend, or the device cannot run it. Call inside a collective start-up phase.
std::shared_ptr<Backend> make_rank_backend(const std::string& resolved, const BackendSettings& s, int threads,
                                           const MpiEnv& mpi);

// One line for the log ("backend cuda: one GPU per rank ... (this rank: device 0, NVIDIA H200, ...),
// CUDA graphs on; weights bf16"), with why --backend auto chose the CPU when it did, and that
// --cuda-graphs does nothing on the CPU when it was given there.
std::string backend_note(const Backend& backend, const WeightPolicy& weights, const std::string& auto_reason,
                         const BackendSettings& settings);

// Throws gridlm::Error when two ranks of a node run on one GPU (several ranks and one visible GPU
// each, all the same one). A collective over every rank; call it once every rank has its backend.
void check_distinct_gpus(const MpiEnv& mpi, const Backend& backend);

// Throws gridlm::Error when the ranks resolved --backend differently (some see a GPU, some do
// not). A collective over every rank.
void check_same_backend(const MpiEnv& mpi, const std::string& resolved);

// The weight policy for a backend: --dtype auto keeps what the backend multiplies as stored; on
// CUDA, auto converts every matrix to bf16.
WeightPolicy weight_policy_for(const std::string& resolved, const WeightPolicy& asked);

// The KV cache budget when --kv-cache-bytes is 0: none (0) on the CPU, where the cache grows in
// host memory; on CUDA the device memory still free after the weights, less a reserve of
// max(1 GiB, 5% of the device) for activations, cuBLAS and graphs (a GPU cache cannot grow
// past its device).
int64_t default_kv_budget(const Backend& backend);

// The tensor-parallel communicator for the backend: on CUDA with tp > 1, a NCCL communicator on
// the backend's stream built over `mpi_tp` (collective over the group), else nullptr (keep MPI).
std::unique_ptr<Communicator> device_tp_communicator(Backend& backend, Communicator& mpi_tp);

// The pipeline's activation communicator (JobGrid::pp_act): on CUDA with pp > 1, a NCCL
// communicator on the backend's stream built over `mpi_pp` (the same stages in the same order;
// collective over the group, made after device_tp_communicator on every rank), else nullptr
// (activations travel over `mpi_pp`).
std::unique_ptr<Communicator> device_pp_communicator(Backend& backend, Communicator& mpi_pp);

}  // namespace gridlm
