// make_nccl_communicator() and nccl_version() on the executable's side: both go to
// libgridlm_nccl.so (nccl_module.h), loaded on first use; a build without CUDA has no module.
#include <mutex>

#include "engine/core/error.h"
#include "engine/core/module_loader.h"
#include "parallel/nccl_communicator.h"
#include "parallel/nccl_info.h"
#include "parallel/nccl_module.h"
#include "parallel/watchdog.h"

namespace gridlm {

namespace {

#ifdef GRIDLM_HAVE_NCCL
// The module's table, loading it on the first call; nullptr (with *why) when it cannot be loaded.
const nccl_module::Api* api(std::string* why) {
    static std::mutex mutex;
    static const nccl_module::Api* loaded = nullptr;
    std::lock_guard lock(mutex);
    if (loaded) return loaded;
    std::string err;
    void* handle = load_module(nccl_module::file, &err);
    if (!handle) {
        *why = str("the NCCL communicator cannot be loaded: ", err);
        return nullptr;
    }
    using Entry = const nccl_module::Api* (*)(const nccl_module::Host*);
    auto entry = reinterpret_cast<Entry>(module_symbol(handle, nccl_module::entry));
    static const nccl_module::Host host{nccl_module::abi, &gridlm::assert_fail,
                                        [](WaitOp op, int peer) -> void* { return new WaitScope(op, peer); },
                                        [](void* scope) { delete static_cast<WaitScope*>(scope); }};
    const nccl_module::Api* a = entry ? entry(&host) : nullptr;
    if (!a || a->abi != nccl_module::abi) {
        *why = str("the NCCL communicator cannot be loaded: ", nccl_module::file, " in ", module_search_path(),
                   " is not the one of this gridlm (another build's?); rebuild");
        return nullptr;
    }
    loaded = a;
    return loaded;
}
#endif

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(Communicator& mpi_group, int cuda_device, void* cuda_stream) {
#ifdef GRIDLM_HAVE_NCCL
    // Collective: the group agrees that every rank has the module before any enters the NCCL
    // set-up, so a rank that cannot load it (NCCL missing on its node) stops the whole group
    // instead of leaving the others waiting for it there.
    std::string why;
    const nccl_module::Api* a = api(&why);
    if (mpi_group.allreduce_min(a ? 1 : 0) != 1)
        throw Error(str("make_nccl_communicator (CUDA device ", cuda_device,
                        "): ", a ? "another rank of the group cannot load the NCCL communicator" : why));
    return a->make_communicator(mpi_group, cuda_device, cuda_stream);
#else
    (void)mpi_group;
    (void)cuda_stream;
    throw Error(str("make_nccl_communicator (CUDA device ", cuda_device,
                    "): this build has no NCCL (it was configured without the CUDA toolkit, or with "
                    "-DGRIDLM_CUDA=OFF); rebuild with CUDA to run the grid's collectives on GPUs"));
#endif
}

int nccl_version() {
#ifdef GRIDLM_HAVE_NCCL
    std::string why;
    const nccl_module::Api* a = api(&why);
    return a ? a->nccl_version() : 0;
#else
    return 0;
#endif
}

}  // namespace gridlm
