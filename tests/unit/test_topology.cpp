// Topology: rank <-> (dp, pp, tp) arithmetic and group membership, without MPI.
#include <gtest/gtest.h>

#include <set>

#include "engine/core/error.h"
#include "parallel/topology.h"

using gridlm::GridCoord;
using gridlm::GridShape;
using gridlm::Topology;

TEST(Topology, WorkedExampleFromHeader) {
    Topology t({2, 2, 2}, 8);
    EXPECT_EQ(t.coord_of(5), (GridCoord{1, 0, 1}));
    EXPECT_EQ(t.tp_group(5), (std::vector<int>{4, 5}));
    EXPECT_EQ(t.pp_group(5), (std::vector<int>{5, 7}));
    EXPECT_EQ(t.dp_group(5), (std::vector<int>{1, 5}));
}

TEST(Topology, RoundTripAndTpInnermost) {
    for (GridShape s : {GridShape{1, 1, 1}, GridShape{1, 3, 1}, GridShape{2, 1, 3}, GridShape{3, 2, 4}}) {
        Topology t(s, s.world_size());
        for (int r = 0; r < s.world_size(); ++r) {
            GridCoord c = t.coord_of(r);
            EXPECT_EQ(t.rank_of(c), r);
            EXPECT_EQ(c.tp, r % s.tp);  // consecutive ranks (same node) form a TP group
        }
    }
}

TEST(Topology, GroupsPartitionTheWorldAndColorsAgree) {
    GridShape s{2, 3, 2};
    Topology t(s, s.world_size());
    for (int r = 0; r < s.world_size(); ++r) {
        for (int q = 0; q < s.world_size(); ++q) {
            auto in = [&](const std::vector<int>& g) { return std::set<int>(g.begin(), g.end()).count(q) == 1; };
            EXPECT_EQ(in(t.tp_group(r)), t.tp_color(r) == t.tp_color(q));
            EXPECT_EQ(in(t.pp_group(r)), t.pp_color(r) == t.pp_color(q));
            EXPECT_EQ(in(t.dp_group(r)), t.dp_color(r) == t.dp_color(q));
        }
        EXPECT_EQ((int)t.tp_group(r).size(), s.tp);
        EXPECT_EQ((int)t.pp_group(r).size(), s.pp);
        EXPECT_EQ((int)t.dp_group(r).size(), s.dp);
    }
}

TEST(Topology, RejectsWrongWorldSize) {
    try {
        Topology t({1, 2, 2}, 3);
        FAIL() << "expected an error";
    } catch (const gridlm::Error& e) {
        EXPECT_NE(std::string(e.what()).find("needs 4 ranks, but the job has 3"), std::string::npos) << e.what();
    }
    EXPECT_THROW(Topology({0, 1, 1}, 0), gridlm::Error);
}
