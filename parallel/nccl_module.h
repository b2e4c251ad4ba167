// The boundary between the gridlm executable and libgridlm_nccl.so, the NCCL communicator built
// as a module loaded on first use (engine/core/module_loader.h), so that neither gridlm nor its
// CPU jobs need NCCL or the CUDA runtime on a node. make_nccl_communicator() and nccl_version()
// (parallel/nccl_communicator.h, parallel/nccl_info.h; parallel/nccl_loader.cpp) load it and call
// through the table below. Module and executable come from one build, so C++ types cross.
#pragma once

#include <memory>

#include "engine/core/communicator.h"
#include "parallel/watchdog_judge.h"

namespace gridlm::nccl_module {

inline constexpr int abi = 1;
inline constexpr const char* file = "libgridlm_nccl.so";
inline constexpr const char* entry = "gridlm_nccl_module";

// What the module needs from the executable: its internal-error report, and the watchdog's marks
// around a blocking wait (parallel/watchdog.h's WaitScope: begin returns the scope, end ends it).
struct Host {
    int abi = nccl_module::abi;
    void (*assert_fail)(const char* expr, const char* file, int line) = nullptr;
    void* (*wait_begin)(WaitOp op, int peer) = nullptr;
    void (*wait_end)(void* scope) = nullptr;
};

struct Api {
    int abi = nccl_module::abi;
    int (*nccl_version)() = nullptr;
    std::unique_ptr<Communicator> (*make_communicator)(Communicator& mpi_group, int cuda_device,
                                                       void* cuda_stream) = nullptr;
};

// The module's implementation of make_nccl_communicator (same contract; parallel/nccl_communicator.cpp).
std::unique_ptr<Communicator> make_nccl_communicator(Communicator& mpi_group, int cuda_device, void* cuda_stream);

}  // namespace gridlm::nccl_module

// The module's one exported symbol: its table, after recording `host`; nullptr when the abi differs.
extern "C" const gridlm::nccl_module::Api* gridlm_nccl_module(const gridlm::nccl_module::Host* host);
