// MPI_CHECK: report a failed MPI call with expression, file, line, rank and host, then abort the job.
#pragma once

#include <mpi.h>

#include <unistd.h>

#include "engine/core/error.h"
#include "engine/core/log.h"

#define MPI_CHECK(expr)                                                                                          \
    do {                                                                                                         \
        int rc_ = (expr);                                                                                        \
        if (rc_ != MPI_SUCCESS) {                                                                                \
            char msg_[MPI_MAX_ERROR_STRING];                                                                     \
            int len_ = 0, rank_ = -1;                                                                            \
            char host_[256] = {0};                                                                               \
            MPI_Error_string(rc_, msg_, &len_);                                                                  \
            MPI_Comm_rank(MPI_COMM_WORLD, &rank_);                                                               \
            gethostname(host_, sizeof(host_) - 1);                                                               \
            ::gridlm::log_error("fatal",                                                                         \
                                ::gridlm::str("rank ", rank_, " on ", host_, ": MPI error in `", #expr, "` at ", \
                                              __FILE__, ":", __LINE__, ": ", msg_),                              \
                                {{"mpi_call", #expr}, {"mpi_error", msg_}});                                     \
            MPI_Abort(MPI_COMM_WORLD, 1);                                                                        \
        }                                                                                                        \
    } while (0)
