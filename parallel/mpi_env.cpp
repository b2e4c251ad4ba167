// MPI start-up and shutdown (see mpi_env.h).
#include "parallel/mpi_env.h"

#include <mpi.h>
#include <unistd.h>

#include <cstdio>

#include "parallel/mpi_check.h"

namespace gridlm {

MpiEnv::MpiEnv(int* argc, char*** argv) {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
        int provided = 0;
        MPI_CHECK(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided));
    }
    // Errors are checked at each call site and turned into messages, not left to the default
    // handler that aborts without saying which rank and call failed.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank_));
    MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size_));
    char host[256] = {0};
    gethostname(host, sizeof(host) - 1);
    host_ = host;
}

MpiEnv::~MpiEnv() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
}

void MpiEnv::abort(int code, const std::string& msg) const {
    std::fprintf(stderr, "gridlm: rank %d on %s: %s\n", rank_, host_.c_str(), msg.c_str());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);
}

bool MpiEnv::all_ok(bool ok) const {
    int mine = ok ? 1 : 0, all = 0;
    MPI_CHECK(MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD));
    return all == 1;
}

int MpiEnv::max_over_ranks(int v) const {
    int out = 0;
    MPI_CHECK(MPI_Allreduce(&v, &out, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD));
    return out;
}

}  // namespace gridlm
