// MPI start-up and shutdown (see mpi_env.h).
#include "parallel/mpi_env.h"

#include <mpi.h>
#include <unistd.h>

#include <cstdlib>

#include "engine/core/error.h"
#include "engine/core/log.h"
#include "parallel/mpi_check.h"
#include "parallel/watchdog.h"

namespace gridlm {

MpiEnv::MpiEnv(int* argc, char*** argv, bool thread_multiple) {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
        int provided = 0;
        MPI_CHECK(MPI_Init_thread(argc, argv, thread_multiple ? MPI_THREAD_MULTIPLE : MPI_THREAD_FUNNELED, &provided));
        owns_init_ = true;
    }
    // Errors are checked at each call site and turned into messages, not left to the default
    // handler that aborts without saying which rank and call failed.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank_));
    MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size_));
    char host[256] = {0};
    gethostname(host, sizeof(host) - 1);
    host_ = host;
    // The ranks sharing this node's memory, in world-rank order: a rank's place among them picks
    // its GPU.
    MPI_Comm node = MPI_COMM_NULL;
    MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node));
    MPI_CHECK(MPI_Comm_rank(node, &local_rank_));
    MPI_CHECK(MPI_Comm_size(node, &local_size_));
    MPI_Comm_free(&node);
    // Every line from here on names its rank and host; the grid coordinates come later.
    LogContext context = log_context();
    context.rank = rank_;
    context.world = size_;
    context.host = host_;
    log_set_context(context);
}

MpiEnv::~MpiEnv() {
    // MPI can be initialised once per process: an inner MpiEnv leaves it to the outer one.
    if (!owns_init_) return;
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
}

void MpiEnv::abort(int code, const std::string& msg, std::string_view event,
                   const nlohmann::ordered_json& fields) const {
    // The message names rank and host itself: it may come before the logger knows them.
    nlohmann::ordered_json f = fields;
    f["exit_code"] = code;
    log_error(event, str("rank ", rank_, " on ", host_, ": ", msg), f);
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);
}

bool MpiEnv::all_ok(bool ok) const {
    int mine = ok ? 1 : 0, all = 0;
    WaitScope w(WaitOp::wait_op_allreduce, -1);
    MPI_CHECK(MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD));
    return all == 1;
}

int MpiEnv::max_over_ranks(int v) const {
    int out = 0;
    WaitScope w(WaitOp::wait_op_allreduce, -1);
    MPI_CHECK(MPI_Allreduce(&v, &out, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD));
    return out;
}

std::vector<std::string> MpiEnv::node_allgather(const std::string& value) const {
    constexpr int width = 128;  // each rank's value, cut or padded to this many bytes
    std::string mine = value.substr(0, width);
    mine.resize(width, '\0');
    std::string all((size_t)width * local_size_, '\0');
    WaitScope w(WaitOp::wait_op_allreduce, -1);
    MPI_Comm node = MPI_COMM_NULL;
    MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node));
    const int rc = MPI_Allgather(mine.data(), width, MPI_CHAR, all.data(), width, MPI_CHAR, node);
    MPI_Comm_free(&node);
    MPI_CHECK(rc);
    std::vector<std::string> out;
    for (int r = 0; r < local_size_; ++r) out.emplace_back(all.c_str() + (size_t)r * width);
    return out;
}

}  // namespace gridlm
