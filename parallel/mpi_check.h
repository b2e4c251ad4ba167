// MPI_CHECK: report a failed MPI call with expression, file, line, rank and host, then abort the job.
#pragma once

#include <mpi.h>

#include <cstdio>
#include <unistd.h>

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
            std::fprintf(stderr, "gridlm: rank %d on %s: MPI error in `%s` at %s:%d: %s\n", rank_, host_, #expr, \
                         __FILE__, __LINE__, msg_);                                                              \
            MPI_Abort(MPI_COMM_WORLD, 1);                                                                        \
        }                                                                                                        \
    } while (0)
