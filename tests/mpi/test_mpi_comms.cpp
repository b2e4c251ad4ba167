// MPI test (run by ctest through mpiexec): the grid's sub-communicators contain the ranks the
// topology says, and each collective gives the expected values.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdlib>
#include <numeric>
#include <string>

#include "tests/mpi/mpi_test_main.h"
#include "parallel/mpi_communicator.h"
#include "parallel/mpi_env.h"

namespace {

gridlm::GridShape shape_from_env(int world) {
    gridlm::GridShape s;
    if (const char* g = std::getenv("GRIDLM_TEST_GRID")) {  // "dp,pp,tp"
        std::sscanf(g, "%d,%d,%d", &s.dp, &s.pp, &s.tp);
    } else {
        s.tp = world;
    }
    return s;
}

int world_rank() {
    int r = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &r);
    return r;
}

}  // namespace

TEST(MpiComms, GroupsMatchTopology) {
    int world = 0;
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    gridlm::Topology topo(shape_from_env(world), world);
    auto comms = gridlm::make_grid_comms(topo);
    const int rank = world_rank();
    const auto c = topo.coord_of(rank);
    EXPECT_EQ(comms.tp->rank(), c.tp);
    EXPECT_EQ(comms.pp->rank(), c.pp);
    EXPECT_EQ(comms.dp->rank(), c.dp);
    EXPECT_EQ(comms.tp->size(), topo.shape().tp);
    EXPECT_EQ(comms.pp->size(), topo.shape().pp);
    EXPECT_EQ(comms.dp->size(), topo.shape().dp);

    // allreduce over TP sums the world ranks of the TP group.
    float v[2] = {(float)rank, 1.f};
    comms.tp->allreduce_sum(v, 2);
    auto group = topo.tp_group(rank);
    EXPECT_EQ(v[0], (float)std::accumulate(group.begin(), group.end(), 0));
    EXPECT_EQ(v[1], (float)group.size());

    // allgather over PP returns stage-ordered world ranks.
    std::vector<float> all(topo.shape().pp);
    float mine = (float)rank;
    comms.pp->allgather(&mine, 1, all.data());
    auto pipe = topo.pp_group(rank);
    for (size_t i = 0; i < pipe.size(); ++i) EXPECT_EQ(all[i], (float)pipe[i]);

    // ring send/recv along the pipeline, and broadcast over DP from replica 0.
    if (comms.pp->size() > 1) {
        const int next = (comms.pp->rank() + 1) % comms.pp->size();
        const int prev = (comms.pp->rank() + comms.pp->size() - 1) % comms.pp->size();
        int out = rank, in = -1;
        if (comms.pp->rank() % 2 == 0) {
            comms.pp->send(&out, sizeof(out), next, 7);
            comms.pp->recv(&in, sizeof(in), prev, 7);
        } else {
            comms.pp->recv(&in, sizeof(in), prev, 7);
            comms.pp->send(&out, sizeof(out), next, 7);
        }
        EXPECT_EQ(in, pipe[prev]);
    }
    int b = comms.dp->rank() == 0 ? 1000 + rank : -1;
    comms.dp->broadcast(&b, sizeof(b), 0);
    EXPECT_EQ(b, 1000 + topo.dp_group(rank)[0]);
    EXPECT_EQ(comms.world->allreduce_min(rank == 1 ? -5 : rank), world > 1 ? -5 : 0);
}

int main(int argc, char** argv) { return gridlm::test::mpi_test_main(argc, argv); }
