// libgridlm_nccl.so's entry (nccl_module.h): the table, and the executable's services that the
// communicator's code calls (assertions, the watchdog's wait marks).
#include <nccl.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

#include "engine/core/error.h"
#include "parallel/nccl_module.h"
#include "parallel/watchdog.h"

namespace gridlm {

namespace {
const nccl_module::Host* g_host = nullptr;
thread_local std::vector<void*> t_scopes;  // the executable's WaitScopes this thread has open

int version() {
    int v = 0;
    return ncclGetVersion(&v) == ncclSuccess ? v : 0;
}
}  // namespace

void assert_fail(const char* expr, const char* file, int line) {
    if (g_host && g_host->assert_fail) g_host->assert_fail(expr, file, line);
    std::fprintf(stderr, "gridlm: internal error: assertion `%s` failed at %s:%d\n", expr, file, line);
    std::abort();
}

// The communicator's WaitScopes become the executable's, which the watchdog reads.
WaitScope::WaitScope(WaitOp op, int peer) { t_scopes.push_back(g_host->wait_begin(op, peer)); }
WaitScope::~WaitScope() {
    g_host->wait_end(t_scopes.back());
    t_scopes.pop_back();
}

}  // namespace gridlm

extern "C" __attribute__((visibility("default"))) const gridlm::nccl_module::Api* gridlm_nccl_module(
    const gridlm::nccl_module::Host* host) {
    using namespace gridlm;
    if (!host || host->abi != nccl_module::abi || !host->wait_begin || !host->wait_end) return nullptr;
    g_host = host;
    static const nccl_module::Api api{nccl_module::abi, version, nccl_module::make_nccl_communicator};
    return &api;
}
