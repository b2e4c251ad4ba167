// MPI test (run by ctest through mpiexec): the NCCL communicator over MPI_COMM_WORLD, on device
// buffers, one GPU per rank. Skipped (GTEST_SKIP, on every rank together) where the build has no
// CUDA or a node has fewer GPUs than ranks on it (NCCL refuses two ranks on one GPU).
#include <gtest/gtest.h>
#include <mpi.h>

#include <numeric>
#include <string>
#include <vector>

#ifdef GRIDLM_HAVE_CUDA
#include <cuda_runtime.h>
#endif

#include "tests/mpi/mpi_test_main.h"
#include "parallel/mpi_communicator.h"
#include "parallel/mpi_env.h"
#include "parallel/nccl_communicator.h"

namespace {

#ifdef GRIDLM_HAVE_CUDA

#define TEST_CUDA(expr)                                                        \
    do {                                                                       \
        const cudaError_t e_ = (expr);                                         \
        ASSERT_EQ(e_, cudaSuccess) << #expr << ": " << cudaGetErrorString(e_); \
    } while (0)

// Positions where got differs from want (0 when equal); values are checked without leaving the
// test early, so that no rank skips a collective the others then wait in.
size_t mismatches(const std::vector<float>& got, const std::vector<float>& want) {
    size_t bad = 0;
    for (size_t i = 0; i < got.size() && i < want.size(); ++i) bad += got[i] != want[i];
    return bad + (got.size() > want.size() ? got.size() - want.size() : want.size() - got.size());
}

// Whether every rank has a GPU of its own (else why not, on this rank), and this rank's device.
struct DevicePlan {
    bool ok = false;
    std::string why;
    int device = -1;
};

DevicePlan plan_devices() {
    MPI_Comm node;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
    int local_rank = 0, local_size = 1;
    MPI_Comm_rank(node, &local_rank);
    MPI_Comm_size(node, &local_size);
    MPI_Comm_free(&node);
    DevicePlan p;
    int count = 0;
    const cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        p.why = std::string("no CUDA device: ") + cudaGetErrorString(e);
    } else if (count < local_size) {
        p.why = std::to_string(local_size) + " ranks on this node but " + std::to_string(count) +
                " CUDA device(s): NCCL needs one GPU per rank";
    } else {
        p.ok = true;
        p.device = local_rank;
    }
    int mine = p.ok ? 1 : 0, all = 0;
    MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);  // skip together, or none waits in NCCL
    if (p.ok && !all) p.why = "another rank has no CUDA device of its own";
    p.ok = all == 1;
    return p;
}

// A device buffer of floats filled from / read back to the host.
struct DeviceFloats {
    float* ptr = nullptr;
    explicit DeviceFloats(size_t n) { cudaMalloc(&ptr, n * sizeof(float)); }
    ~DeviceFloats() { cudaFree(ptr); }
    DeviceFloats(const DeviceFloats&) = delete;
    DeviceFloats& operator=(const DeviceFloats&) = delete;
};

// Every rank of the job as one host-memory (MPI) group, this rank and the last one.
struct WorldGroup {
    gridlm::GridComms comms;
    int rank = 0, last = 0;
    WorldGroup() {
        int world = 0;
        MPI_Comm_size(MPI_COMM_WORLD, &world);
        gridlm::GridShape shape;
        shape.tp = world;
        comms = gridlm::make_grid_comms(gridlm::Topology(shape, world));
        rank = comms.world->rank();
        last = world - 1;
    }
};

// What make_nccl_communicator over the group throws on this rank (empty when it does not throw).
std::string nccl_error(WorldGroup& g, int cuda_device) {
    try {
        gridlm::make_nccl_communicator(*g.comms.world, cuda_device, nullptr);
    } catch (const gridlm::Error& e) {
        return e.what();
    }
    return "";
}

// Runs everywhere (no GPU needed), first in this program, before any rank has loaded the NCCL
// module: the last rank cannot load it (GRIDLM_MODULE_DIR names an empty folder). Every rank must
// throw at once, agreed before anyone enters the NCCL set-up, the last naming the missing file and
// the others that another rank could not load it; a failed load is not remembered, so the tests
// below load it there afterwards.
TEST(NcclComms, ModuleMissingOnOneRankFailsEveryRank) {
    WorldGroup g;
    const int rank = g.rank, last = g.last;
    if (rank == last) setenv("GRIDLM_MODULE_DIR", "/nonexistent-gridlm-modules", 1);
    const std::string msg = nccl_error(g, 0);
    if (rank == last) unsetenv("GRIDLM_MODULE_DIR");
    if (rank == last) {
        EXPECT_NE(msg.find("libgridlm_nccl.so was not found in /nonexistent-gridlm-modules"), std::string::npos) << msg;
    } else {
        EXPECT_NE(msg.find("another rank of the group cannot load the NCCL communicator"), std::string::npos) << msg;
    }
}

// Runs everywhere (no GPU needed): the last rank names a device that cannot exist. Every rank must
// throw, from the status agreed before anyone enters NCCL (a rank left in ncclCommInitRank would
// hang the test instead), the last one saying why and the others that another rank failed.
TEST(NcclComms, BadDeviceFailsOnEveryRankBeforeNccl) {
    WorldGroup g;
    const int rank = g.rank, last = g.last, world = g.last + 1;
    const std::string msg = nccl_error(g, rank == last ? -1 : 0);
    (void)cudaGetLastError();
    const std::string who =
        "NCCL communicator not made on group rank " + std::to_string(rank) + " of " + std::to_string(world);
    EXPECT_NE(msg.find(who), std::string::npos) << msg;
    if (rank == last) {
        // Without a usable driver the count fails first; with one, device -1 is named.
        EXPECT_TRUE(msg.find("CUDA device -1 does not exist") != std::string::npos ||
                    msg.find("no CUDA device usable") != std::string::npos)
            << msg;
    }
}

TEST(NcclComms, CollectivesAndSendRecvOnDeviceBuffers) {
    const DevicePlan plan = plan_devices();
    if (!plan.ok) GTEST_SKIP() << plan.why;
    TEST_CUDA(cudaSetDevice(plan.device));
    cudaStream_t stream = nullptr;
    TEST_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));

    gridlm::GridShape shape;
    int world = 0;
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    shape.tp = world;
    auto mpi = gridlm::make_grid_comms(gridlm::Topology(shape, world));
    {
        auto nccl = gridlm::make_nccl_communicator(*mpi.world, plan.device, stream);
        EXPECT_TRUE(nccl->device_memory());
        EXPECT_FALSE(mpi.world->device_memory());
        const int rank = nccl->rank(), size = nccl->size();
        ASSERT_EQ(rank, mpi.world->rank());
        ASSERT_EQ(size, world);

        // allreduce_sum: element i of rank r is r * 1000 + i; sum over ranks is known.
        const size_t n = 3000;
        std::vector<float> h(n), want(n);
        const float rank_sum = (float)(1000 * (size * (size - 1) / 2));
        for (size_t i = 0; i < n; ++i) {
            h[i] = (float)(rank * 1000 + (int)i);
            want[i] = rank_sum + (float)size * (float)i;  // exact: every value is an integer below 2^24
        }
        DeviceFloats d(n);
        ASSERT_NE(d.ptr, nullptr);
        TEST_CUDA(cudaMemcpyAsync(d.ptr, h.data(), n * sizeof(float), cudaMemcpyHostToDevice, stream));
        nccl->allreduce_sum(d.ptr, n);
        TEST_CUDA(cudaMemcpyAsync(h.data(), d.ptr, n * sizeof(float), cudaMemcpyDeviceToHost, stream));
        TEST_CUDA(cudaStreamSynchronize(stream));
        EXPECT_EQ(mismatches(h, want), 0u) << "allreduce_sum over " << size << " ranks";

        // allgather: 5 floats per rank, rank-ordered.
        const size_t m = 5;
        std::vector<float> mine(m), all((size_t)size * m, -1.f);
        for (size_t i = 0; i < m; ++i) mine[i] = (float)(rank * 10 + (int)i);
        DeviceFloats din(m), dout((size_t)size * m);
        TEST_CUDA(cudaMemcpyAsync(din.ptr, mine.data(), m * sizeof(float), cudaMemcpyHostToDevice, stream));
        nccl->allgather(din.ptr, m, dout.ptr);
        TEST_CUDA(cudaMemcpyAsync(all.data(), dout.ptr, all.size() * sizeof(float), cudaMemcpyDeviceToHost, stream));
        TEST_CUDA(cudaStreamSynchronize(stream));
        std::vector<float> want_all(all.size());
        for (size_t j = 0; j < all.size(); ++j) want_all[j] = (float)((int)(j / m) * 10 + (int)(j % m));
        EXPECT_EQ(mismatches(all, want_all), 0u) << "allgather of " << m << " floats per rank";

        // broadcast from the last rank: 7 bytes.
        const int root = size - 1;
        std::vector<unsigned char> b(7);
        for (size_t i = 0; i < b.size(); ++i) b[i] = (unsigned char)(rank == root ? 200 + i : 0);
        DeviceFloats db(2);  // 8 bytes of device memory
        TEST_CUDA(cudaMemcpyAsync(db.ptr, b.data(), b.size(), cudaMemcpyHostToDevice, stream));
        nccl->broadcast(db.ptr, b.size(), root);
        std::vector<unsigned char> got(b.size(), 0);
        TEST_CUDA(cudaMemcpyAsync(got.data(), db.ptr, got.size(), cudaMemcpyDeviceToHost, stream));
        TEST_CUDA(cudaStreamSynchronize(stream));
        for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], 200 + i) << "byte " << i;

        // send/recv along a ring (even ranks send first), then isend back the other way.
        if (size > 1) {
            const int next = (rank + 1) % size, prev = (rank + size - 1) % size;
            const size_t k = 1000;
            std::vector<float> out(k), in(k, -1.f);
            for (size_t i = 0; i < k; ++i) out[i] = (float)(rank * 100000 + (int)i);
            DeviceFloats dsend(k), drecv(k);
            TEST_CUDA(cudaMemcpyAsync(dsend.ptr, out.data(), k * sizeof(float), cudaMemcpyHostToDevice, stream));
            if (rank % 2 == 0) {
                nccl->send(dsend.ptr, k * sizeof(float), next, 0);
                nccl->recv(drecv.ptr, k * sizeof(float), prev, 0);
            } else {
                nccl->recv(drecv.ptr, k * sizeof(float), prev, 0);
                nccl->send(dsend.ptr, k * sizeof(float), next, 0);
            }
            TEST_CUDA(cudaMemcpyAsync(in.data(), drecv.ptr, k * sizeof(float), cudaMemcpyDeviceToHost, stream));
            TEST_CUDA(cudaStreamSynchronize(stream));
            std::vector<float> want_in(k);
            for (size_t i = 0; i < k; ++i) want_in[i] = (float)(prev * 100000 + (int)i);
            EXPECT_EQ(mismatches(in, want_in), 0u) << "recv from rank " << prev;

            if (rank % 2 == 0) {
                auto pending = nccl->isend(dsend.ptr, k * sizeof(float), prev, 0);
                nccl->recv(drecv.ptr, k * sizeof(float), next, 0);
                pending->wait();
                EXPECT_TRUE(pending->test());
            } else {
                nccl->recv(drecv.ptr, k * sizeof(float), next, 0);
                auto pending = nccl->isend(dsend.ptr, k * sizeof(float), prev, 0);
                pending->wait();
            }
            TEST_CUDA(cudaMemcpyAsync(in.data(), drecv.ptr, k * sizeof(float), cudaMemcpyDeviceToHost, stream));
            TEST_CUDA(cudaStreamSynchronize(stream));
            for (size_t i = 0; i < k; ++i) want_in[i] = (float)(next * 100000 + (int)i);
            EXPECT_EQ(mismatches(in, want_in), 0u) << "recv (of an isend) from rank " << next;
        }

        // Host-synchronising calls: min over ranks, barrier; probe is refused.
        EXPECT_EQ(nccl->allreduce_min(rank == size - 1 ? -7 : 100 + rank), -7);
        nccl->barrier();
        EXPECT_THROW(nccl->probe(false), gridlm::Error);
    }
    TEST_CUDA(cudaStreamDestroy(stream));
}

#else

TEST(NcclComms, NotBuilt) {
    // Without CUDA the factory must say so instead of returning a communicator.
    int world = 0;
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    gridlm::GridShape shape;
    shape.tp = world;
    auto mpi = gridlm::make_grid_comms(gridlm::Topology(shape, world));
    EXPECT_THROW(gridlm::make_nccl_communicator(*mpi.world, 0, nullptr), gridlm::Error);
    GTEST_SKIP() << "built without CUDA/NCCL (nvcc not found or GRIDLM_CUDA=OFF)";
}

#endif

}  // namespace

int main(int argc, char** argv) { return gridlm::test::mpi_test_main(argc, argv); }
