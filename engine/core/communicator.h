// Communicator: the interface through which model code talks to the other ranks of its group (TP, PP or DP), without
// seeing MPI or NCCL. Passed explicitly; there is no global communicator.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <vector>

#include "engine/core/error.h"

namespace gridlm {

// A non-blocking send in flight; its buffer must stay untouched until wait() / test() says done.
class PendingSend {
public:
    virtual ~PendingSend() = default;
    virtual void wait() = 0;
    virtual bool test() = 0;  // true once complete (then wait() returns at once)
};

// A message waiting to be received: recv(buffer of `bytes`, bytes, source, tag) takes it.
struct Incoming {
    int source = 0;
    int tag = 0;
    size_t bytes = 0;
};

class Communicator {
public:
    virtual ~Communicator() = default;
    virtual int rank() const = 0;  // position inside this group
    virtual int size() const = 0;
    // True when the buffers passed to this communicator's collectives and point-to-point calls are
    // device memory of this rank's GPU (operations are then ordered on the compute stream, see the
    // implementation: parallel/nccl_communicator.h); false for host memory (MPI, single rank).
    virtual bool device_memory() const { return false; }

    // In-place sum over the group. data: [n]
    virtual void allreduce_sum(float* data, size_t n) = 0;
    // Every rank contributes n floats; out receives size()*n floats ordered by group rank.
    virtual void allgather(const float* in, size_t n, float* out) = 0;
    // Raw bytes from group rank `root` to all.
    virtual void broadcast(void* data, size_t bytes, int root) = 0;
    // Point-to-point within the group (blocking).
    virtual void send(const void* data, size_t bytes, int dest, int tag) = 0;
    virtual void recv(void* data, size_t bytes, int src, int tag) = 0;
    // Starts a send and returns at once (bytes < 2 GiB).
    virtual std::unique_ptr<PendingSend> isend(const void* data, size_t bytes, int dest, int tag) = 0;
    // A message from any rank with any tag: waits for one when `wait`, else nullopt when none is there.
    virtual std::optional<Incoming> probe(bool wait) = 0;
    virtual void barrier() = 0;
    // Integer min over the group: used to agree on an error status before leaving a collective phase.
    virtual int64_t allreduce_min(int64_t v) = 0;
};

// A communicator for a single rank: every collective is the identity. Lets the engine run
// the same code path with tp = 1 without MPI.
class SelfCommunicator final : public Communicator {
public:
    int rank() const override { return 0; }
    int size() const override { return 1; }
    void allreduce_sum(float*, size_t) override {}
    void allgather(const float* in, size_t n, float* out) override {
        if (out != in) std::memcpy(out, in, n * sizeof(float));
    }
    void broadcast(void*, size_t, int) override {}
    void send(const void*, size_t, int dest, int) override {
        GRIDLM_ASSERT(dest == 0 && "a single-rank group has no peer to send to");
    }
    void recv(void*, size_t, int src, int) override {
        GRIDLM_ASSERT(src == 0 && "a single-rank group has no peer to receive from");
    }
    std::unique_ptr<PendingSend> isend(const void*, size_t, int dest, int) override {
        GRIDLM_ASSERT(dest == 0 && "a single-rank group has no peer to send to");
        return nullptr;
    }
    std::optional<Incoming> probe(bool) override { return std::nullopt; }
    void barrier() override {}
    int64_t allreduce_min(int64_t v) override { return v; }
};

}  // namespace gridlm
