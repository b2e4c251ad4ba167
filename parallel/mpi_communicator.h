// Communicator over an MPI communicator, and the grid's sub-communicators built with
// MPI_Comm_split from a Topology.
#pragma once

#include <memory>

#include "engine/core/communicator.h"
#include "parallel/topology.h"

namespace gridlm {

struct GridComms {
    std::unique_ptr<Communicator> world;
    std::unique_ptr<Communicator> tp;  // ranks with the same (dp, pp)
    std::unique_ptr<Communicator> pp;  // ranks with the same (dp, tp): one pipeline
    std::unique_ptr<Communicator> dp;  // ranks with the same (pp, tp)
};

// Collective over MPI_COMM_WORLD: every rank must call it with the same topology.
GridComms make_grid_comms(const Topology& topo);

}  // namespace gridlm
