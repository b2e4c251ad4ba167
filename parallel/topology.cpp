// Grid topology: pure rank <-> coordinate arithmetic, no MPI.
#include "parallel/topology.h"

#include "engine/core/error.h"

namespace gridlm {

Topology::Topology(GridShape shape, int world_size) : shape_(shape) {
    if (shape.dp < 1 || shape.pp < 1 || shape.tp < 1) {
        throw Error(str("grid dimensions must be >= 1, got dp=", shape.dp, " pp=", shape.pp, " tp=", shape.tp));
    }
    if (shape.world_size() != world_size) {
        throw Error(str("the grid dp=", shape.dp, " x pp=", shape.pp, " x tp=", shape.tp, " needs ", shape.world_size(),
                        " ranks, but the job has ", world_size, " (start it with mpirun -n ", shape.world_size(), ")"));
    }
}

void Topology::check_rank(int rank) const { GRIDLM_ASSERT(rank >= 0 && rank < world_size()); }

GridCoord Topology::coord_of(int rank) const {
    check_rank(rank);
    return {rank / (shape_.tp * shape_.pp), (rank / shape_.tp) % shape_.pp, rank % shape_.tp};
}

int Topology::rank_of(GridCoord c) const {
    GRIDLM_ASSERT(c.dp >= 0 && c.dp < shape_.dp && c.pp >= 0 && c.pp < shape_.pp && c.tp >= 0 && c.tp < shape_.tp);
    return (c.dp * shape_.pp + c.pp) * shape_.tp + c.tp;
}

std::vector<int> Topology::tp_group(int rank) const {
    GridCoord c = coord_of(rank);
    std::vector<int> out;
    for (int t = 0; t < shape_.tp; ++t) out.push_back(rank_of({c.dp, c.pp, t}));
    return out;
}

std::vector<int> Topology::pp_group(int rank) const {
    GridCoord c = coord_of(rank);
    std::vector<int> out;
    for (int p = 0; p < shape_.pp; ++p) out.push_back(rank_of({c.dp, p, c.tp}));
    return out;
}

std::vector<int> Topology::dp_group(int rank) const {
    GridCoord c = coord_of(rank);
    std::vector<int> out;
    for (int d = 0; d < shape_.dp; ++d) out.push_back(rank_of({d, c.pp, c.tp}));
    return out;
}

int Topology::tp_color(int rank) const {
    GridCoord c = coord_of(rank);
    return c.dp * shape_.pp + c.pp;
}

int Topology::pp_color(int rank) const {
    GridCoord c = coord_of(rank);
    return c.dp * shape_.tp + c.tp;
}

int Topology::dp_color(int rank) const {
    GridCoord c = coord_of(rank);
    return c.pp * shape_.tp + c.tp;
}

std::string Topology::describe(int rank) const {
    GridCoord c = coord_of(rank);
    return str("rank ", rank, " (dp ", c.dp, ", pp ", c.pp, ", tp ", c.tp, ")");
}

}  // namespace gridlm
