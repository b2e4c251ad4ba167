// The main() of the GoogleTest programs that run on several MPI ranks: MPI up, one report (from
// rank 0), and an exit status that fails when a test failed on any rank.
#pragma once

#include <gtest/gtest.h>
#include <mpi.h>

#include "parallel/mpi_env.h"

namespace gridlm::test {

inline int mpi_test_main(int argc, char** argv) {
    gridlm::MpiEnv mpi(&argc, &argv);
    ::testing::InitGoogleTest(&argc, argv);
    if (mpi.rank() != 0) {  // failures on other ranks still fail the exit status
        delete ::testing::UnitTest::GetInstance()->listeners().Release(
            ::testing::UnitTest::GetInstance()->listeners().default_result_printer());
    }
    int failed = RUN_ALL_TESTS() != 0;
    int any = 0;
    MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    return any;
}

}  // namespace gridlm::test
