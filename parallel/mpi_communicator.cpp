// MPI implementation of Communicator and the grid's MPI_Comm_split.
#include "parallel/mpi_communicator.h"

#include <mpi.h>

#include <cstring>
#include <limits>
#include <numeric>
#include <vector>

#include "engine/core/error.h"
#include "parallel/mpi_check.h"
#include "parallel/watchdog.h"

namespace gridlm {

namespace {

// Every blocking call below runs inside a WaitScope naming the call and the peer's world rank:
// the watchdog (parallel/watchdog.h) reports what a rank was waiting on.
class MpiPendingSend final : public PendingSend {
public:
    MpiPendingSend(MPI_Request r, int peer_world) : req_(r), peer_(peer_world) {}
    ~MpiPendingSend() override {
        if (req_ == MPI_REQUEST_NULL) return;
        WaitScope w(WaitOp::wait_op_send_wait, peer_);
        MPI_Wait(&req_, MPI_STATUS_IGNORE);
    }
    void wait() override {
        WaitScope w(WaitOp::wait_op_send_wait, peer_);
        MPI_CHECK(MPI_Wait(&req_, MPI_STATUS_IGNORE));
    }
    bool test() override {
        int done = 0;
        MPI_CHECK(MPI_Test(&req_, &done, MPI_STATUS_IGNORE));
        return done != 0;
    }

private:
    MPI_Request req_;
    int peer_;  // world rank
};

// MPI counts are int; large messages go in chunks.
constexpr size_t max_chunk = (size_t)std::numeric_limits<int>::max() / 8;

class MpiCommunicator final : public Communicator {
public:
    explicit MpiCommunicator(MPI_Comm comm, bool owned) : comm_(comm), owned_(owned) {
        MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
        MPI_CHECK(MPI_Comm_size(comm_, &size_));
        // World ranks of this communicator's ranks, for the watchdog's messages.
        MPI_Group group, world_group;
        MPI_CHECK(MPI_Comm_group(comm_, &group));
        MPI_CHECK(MPI_Comm_group(MPI_COMM_WORLD, &world_group));
        std::vector<int> mine((size_t)size_);
        std::iota(mine.begin(), mine.end(), 0);
        world_of_.resize((size_t)size_);
        MPI_CHECK(MPI_Group_translate_ranks(group, size_, mine.data(), world_group, world_of_.data()));
        MPI_Group_free(&group);
        MPI_Group_free(&world_group);
    }
    ~MpiCommunicator() override {
        int finalized = 0;
        MPI_Finalized(&finalized);
        if (owned_ && !finalized) MPI_Comm_free(&comm_);
    }
    int rank() const override { return rank_; }
    int size() const override { return size_; }

    void allreduce_sum(float* data, size_t n) override {
        WaitScope w(WaitOp::wait_op_allreduce, -1);
        for (size_t off = 0; off < n; off += max_chunk) {
            int count = (int)std::min(max_chunk, n - off);
            MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, data + off, count, MPI_FLOAT, MPI_SUM, comm_));
        }
    }
    void allgather(const float* in, size_t n, float* out) override {
        GRIDLM_ASSERT(n <= max_chunk);
        WaitScope w(WaitOp::wait_op_allgather, -1);
        MPI_CHECK(MPI_Allgather(in, (int)n, MPI_FLOAT, out, (int)n, MPI_FLOAT, comm_));
    }
    void broadcast(void* data, size_t bytes, int root) override {
        WaitScope w(WaitOp::wait_op_broadcast, world(root));
        for (size_t off = 0; off < bytes; off += max_chunk) {
            int count = (int)std::min(max_chunk, bytes - off);
            MPI_CHECK(MPI_Bcast((char*)data + off, count, MPI_BYTE, root, comm_));
        }
    }
    void send(const void* data, size_t bytes, int dest, int tag) override {
        WaitScope w(WaitOp::wait_op_send, world(dest));
        size_t off = 0;
        do {  // one message even for 0 bytes, so a matching recv always completes
            const int count = (int)std::min(max_chunk, bytes - off);
            MPI_CHECK(MPI_Send((const char*)data + off, count, MPI_BYTE, dest, tag, comm_));
            off += count;
        } while (off < bytes);
    }
    void recv(void* data, size_t bytes, int src, int tag) override {
        WaitScope w(WaitOp::wait_op_recv, world(src));
        size_t off = 0;
        do {
            const int count = (int)std::min(max_chunk, bytes - off);
            MPI_CHECK(MPI_Recv((char*)data + off, count, MPI_BYTE, src, tag, comm_, MPI_STATUS_IGNORE));
            off += count;
        } while (off < bytes);
    }
    std::unique_ptr<PendingSend> isend(const void* data, size_t bytes, int dest, int tag) override {
        GRIDLM_ASSERT(bytes <= (size_t)std::numeric_limits<int>::max());
        MPI_Request r;
        MPI_CHECK(MPI_Isend(data, (int)bytes, MPI_BYTE, dest, tag, comm_, &r));
        return std::make_unique<MpiPendingSend>(r, world(dest));
    }
    std::optional<Incoming> probe(bool wait) override {
        MPI_Status st;
        int found = 1;
        if (wait) {
            WaitScope w(WaitOp::wait_op_probe, -1);
            MPI_CHECK(MPI_Probe(MPI_ANY_SOURCE, MPI_ANY_TAG, comm_, &st));
        } else {
            MPI_CHECK(MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, comm_, &found, &st));
        }
        if (!found) return std::nullopt;
        int count = 0;
        MPI_CHECK(MPI_Get_count(&st, MPI_BYTE, &count));
        return Incoming{st.MPI_SOURCE, st.MPI_TAG, (size_t)count};
    }
    void barrier() override {
        WaitScope w(WaitOp::wait_op_barrier, -1);
        MPI_CHECK(MPI_Barrier(comm_));
    }
    int64_t allreduce_min(int64_t v) override {
        WaitScope w(WaitOp::wait_op_allreduce, -1);
        int64_t out = 0;
        MPI_CHECK(MPI_Allreduce(&v, &out, 1, MPI_INT64_T, MPI_MIN, comm_));
        return out;
    }

private:
    int world(int r) const { return r >= 0 && r < size_ ? world_of_[(size_t)r] : -1; }

    MPI_Comm comm_;
    bool owned_;
    std::vector<int> world_of_;  // world rank of each rank of comm_
    int rank_ = 0;
    int size_ = 1;
};

std::unique_ptr<Communicator> split(int color, int key) {
    MPI_Comm sub;
    MPI_CHECK(MPI_Comm_split(MPI_COMM_WORLD, color, key, &sub));
    return std::make_unique<MpiCommunicator>(sub, true);
}

}  // namespace

GridComms make_grid_comms(const Topology& topo) {
    int rank = 0, size = 1;
    MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size));
    if (size != topo.world_size()) {
        throw Error(str("the grid needs ", topo.world_size(), " ranks but MPI_COMM_WORLD has ", size));
    }
    const GridCoord c = topo.coord_of(rank);
    GridComms comms;
    comms.world = std::make_unique<MpiCommunicator>(MPI_COMM_WORLD, false);
    comms.tp = split(topo.tp_color(rank), c.tp);
    comms.pp = split(topo.pp_color(rank), c.pp);
    comms.dp = split(topo.dp_color(rank), c.dp);
    return comms;
}

}  // namespace gridlm
