// The grid of ranks as a value: world rank <-> (dp, pp, tp) coordinates, tp innermost.
//
// Worked example, dp=2 pp=2 tp=2 (8 ranks):
//   rank: 0 1 2 3 4 5 6 7
//   tp:   0 1 0 1 0 1 0 1     tp = rank % tp_size           (a TP group sits inside a node)
//   pp:   0 0 1 1 0 0 1 1     pp = (rank / tp_size) % pp_size
//   dp:   0 0 0 0 1 1 1 1     dp = rank / (tp_size * pp_size)
// TP group of rank 5: {4, 5}; its pipeline (same dp, same tp): {5, 7}; its DP peers: {1, 5}.
#pragma once

#include <string>
#include <vector>

namespace gridlm {

struct GridShape {
    int dp = 1;
    int pp = 1;
    int tp = 1;
    int world_size() const { return dp * pp * tp; }
};

struct GridCoord {
    int dp = 0;
    int pp = 0;
    int tp = 0;
    bool operator==(const GridCoord&) const = default;
};

class Topology {
public:
    // Throws gridlm::Error when a dimension is < 1 or the world size is not dp*pp*tp.
    Topology(GridShape shape, int world_size);

    const GridShape& shape() const { return shape_; }
    int world_size() const { return shape_.world_size(); }

    GridCoord coord_of(int rank) const;
    int rank_of(GridCoord c) const;

    // Ranks sharing the same (dp, pp): a tensor-parallel group, ordered by tp.
    std::vector<int> tp_group(int rank) const;
    // Ranks sharing the same (dp, tp): the pipeline this rank belongs to, ordered by stage.
    std::vector<int> pp_group(int rank) const;
    // Ranks sharing the same (pp, tp): data-parallel peers, ordered by replica.
    std::vector<int> dp_group(int rank) const;

    // Colors for MPI_Comm_split: equal color <=> same group; key = position in the group.
    int tp_color(int rank) const;
    int pp_color(int rank) const;
    int dp_color(int rank) const;

    std::string describe(int rank) const;  // "rank 5 (dp 1, pp 0, tp 1)"

private:
    void check_rank(int rank) const;
    GridShape shape_;
};

}  // namespace gridlm
