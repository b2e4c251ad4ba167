// NCCL implementation of Communicator (parallel/nccl_communicator.h): every call is enqueued on the
// CUDA backend's compute stream; the unique id travels over the MPI group. Built into the module
// libgridlm_nccl.so (parallel/nccl_module.h), with the NCCL library and the CUDA runtime.
#include <cuda_runtime.h>
#include <nccl.h>
#include <unistd.h>

#include <cstdint>
#include <string>
#include <utility>

#include "engine/core/error.h"
#include "parallel/nccl_module.h"
#include "parallel/watchdog.h"

namespace gridlm {

namespace {

std::string host_name() {
    char buf[256] = {0};
    gethostname(buf, sizeof(buf) - 1);
    return buf;
}

// "group rank 1 of 2 (CUDA device 1, host h)": who failed, for every message below.
std::string where(int rank, int size, int device) {
    return str("group rank ", rank, " of ", size, " (CUDA device ", device, ", host ", host_name(), ")");
}

void check_cuda(cudaError_t e, const char* call, const std::string& who) {
    if (e != cudaSuccess) throw Error(str("CUDA error in ", call, " on ", who, ": ", cudaGetErrorString(e)));
}

void check_nccl(ncclResult_t r, const char* call, size_t bytes, ncclComm_t comm, const std::string& who) {
    if (r == ncclSuccess) return;
    const char* last = ncclGetLastError(comm);
    throw Error(str("NCCL error in ", call, " (", bytes, " bytes) on ", who, ": ", ncclGetErrorString(r),
                    last && *last ? str(" (", last, ")") : std::string()));
}

// Makes `device` the calling thread's current CUDA device for a scope (events and memory are
// created on the current device) and restores the previous one after. Never throws: set() says
// whether the device could be selected.
class DeviceScope {
public:
    explicit DeviceScope(int device) {
        if (cudaGetDevice(&prev_) != cudaSuccess) {
            prev_ = -1;
            err_ = cudaSetDevice(device);
        } else if (prev_ != device) {
            err_ = cudaSetDevice(device);
        }
        if (err_ != cudaSuccess) prev_ = -1;  // nothing to restore
    }
    ~DeviceScope() {
        int now = -1;
        if (prev_ >= 0 && cudaGetDevice(&now) == cudaSuccess && now != prev_) cudaSetDevice(prev_);
    }
    DeviceScope(const DeviceScope&) = delete;
    DeviceScope& operator=(const DeviceScope&) = delete;
    cudaError_t set() const { return err_; }

private:
    int prev_ = -1;
    cudaError_t err_ = cudaSuccess;
};

// An ncclSend in flight: an event recorded on the stream right after it. Its buffer may be reused
// by the host once the event has completed (and by later work on the stream at once).
class NcclPendingSend final : public PendingSend {
public:
    NcclPendingSend(cudaEvent_t ev, std::string who) : ev_(ev), who_(std::move(who)) {}
    ~NcclPendingSend() override {
        // As MPI's pending send: the buffer is released only once the send is done.
        if (!done_) {
            WaitScope w(WaitOp::wait_op_send_wait, -1);
            cudaEventSynchronize(ev_);
        }
        cudaEventDestroy(ev_);
    }
    void wait() override {
        if (done_) return;
        WaitScope w(WaitOp::wait_op_send_wait, -1);
        check_cuda(cudaEventSynchronize(ev_), "cudaEventSynchronize (isend wait)", who_);
        done_ = true;
    }
    bool test() override {
        if (done_) return true;
        const cudaError_t e = cudaEventQuery(ev_);
        if (e == cudaErrorNotReady) {
            (void)cudaGetLastError();  // "not ready" is no error: keep it from the next launch check
            return false;
        }
        check_cuda(e, "cudaEventQuery (isend test)", who_);
        done_ = true;
        return true;
    }

private:
    cudaEvent_t ev_;
    std::string who_;
    bool done_ = false;
};

class NcclCommunicator final : public Communicator {
public:
    NcclCommunicator(int rank, int size, int device, void* stream)
        : rank_(rank), size_(size), device_(device), stream_(static_cast<cudaStream_t>(stream)) {}
    ~NcclCommunicator() override {
        DeviceScope d(device_);
        if (comm_) ncclCommDestroy(comm_);
        if (dev_scalar_) cudaFree(dev_scalar_);
        if (host_scalar_) cudaFreeHost(host_scalar_);
    }
    NcclCommunicator(const NcclCommunicator&) = delete;
    NcclCommunicator& operator=(const NcclCommunicator&) = delete;

    // Collective over mpi_group (see make_nccl_communicator). Throws on every rank together,
    // except for a failure inside ncclCommInitRank itself.
    void init(Communicator& mpi_group) {
        who_ = where(rank_, size_, device_);
        // The device and this communicator's scalars, before any rank enters NCCL: all agree.
        std::string local;
        {
            int count = 0;
            const cudaError_t e = cudaGetDeviceCount(&count);
            if (e != cudaSuccess) {
                local = str("no CUDA device usable: cudaGetDeviceCount says ", cudaGetErrorString(e));
            } else if (device_ < 0 || device_ >= count) {
                local = str("CUDA device ", device_, " does not exist (this rank sees ", count,
                            count == 1 ? " device: 0)" : str(" devices: 0..", count - 1, ")"));
            } else {
                DeviceScope d(device_);
                cudaError_t a = d.set();
                if (a == cudaSuccess) a = cudaMalloc(&dev_scalar_, sizeof(int64_t));
                if (a == cudaSuccess) a = cudaMemset(dev_scalar_, 0, sizeof(int64_t));
                if (a == cudaSuccess) a = cudaMallocHost(&host_scalar_, sizeof(int64_t));
                if (a != cudaSuccess) local = str("cannot use CUDA device ", device_, ": ", cudaGetErrorString(a));
            }
        }
        if (mpi_group.allreduce_min(local.empty() ? 1 : 0) != 1) {
            throw Error(local.empty() ? str("NCCL communicator not made on ", who_,
                                            ": another rank of the group could not use its CUDA device (its own "
                                            "error says why)")
                                      : str("NCCL communicator not made on ", who_, ": ", local));
        }

        // Rank 0 makes the id; its status travels with it, so a failure there fails every rank.
        struct Hello {
            int32_t status = ncclSuccess;
            ncclUniqueId id{};
        } hello;
        if (rank_ == 0) hello.status = ncclGetUniqueId(&hello.id);
        mpi_group.broadcast(&hello, sizeof(hello), 0);
        if (hello.status != ncclSuccess) {
            throw Error(str("NCCL error in ncclGetUniqueId on group rank 0 (seen on ", who_,
                            "): ", ncclGetErrorString((ncclResult_t)hello.status)));
        }

        DeviceScope d(device_);
        check_cuda(d.set(), "cudaSetDevice", who_);
        WaitScope w(WaitOp::wait_op_barrier, -1);  // every rank of the group meets in the init
        ncclComm_t comm = nullptr;
        check_nccl(ncclCommInitRank(&comm, size_, hello.id, rank_), "ncclCommInitRank", 0, nullptr, who_);
        comm_ = comm;
    }

    int rank() const override { return rank_; }
    int size() const override { return size_; }
    bool device_memory() const override { return true; }

    void allreduce_sum(float* data, size_t n) override {
        if (n == 0) return;  // every rank passes the same n
        nccl_check(ncclAllReduce(data, data, n, ncclFloat, ncclSum, comm_, stream_), "ncclAllReduce",
                   n * sizeof(float));
    }
    void allgather(const float* in, size_t n, float* out) override {
        if (n == 0) return;
        nccl_check(ncclAllGather(in, out, n, ncclFloat, comm_, stream_), "ncclAllGather", n * sizeof(float));
    }
    void broadcast(void* data, size_t bytes, int root) override {
        GRIDLM_ASSERT(root >= 0 && root < size_);
        if (bytes == 0) return;
        nccl_check(ncclBroadcast(data, data, bytes, ncclUint8, root, comm_, stream_), "ncclBroadcast", bytes);
    }
    // Tags are ignored: NCCL matches by order per peer. 0 bytes enqueue nothing (the peer's
    // matching call has 0 bytes too).
    void send(const void* data, size_t bytes, int dest, int) override {
        check_peer(dest);
        if (bytes == 0) return;
        nccl_check(ncclSend(data, bytes, ncclUint8, dest, comm_, stream_), "ncclSend", bytes);
    }
    void recv(void* data, size_t bytes, int src, int) override {
        check_peer(src);
        if (bytes == 0) return;
        nccl_check(ncclRecv(data, bytes, ncclUint8, src, comm_, stream_), "ncclRecv", bytes);
    }
    std::unique_ptr<PendingSend> isend(const void* data, size_t bytes, int dest, int) override {
        check_peer(dest);
        DeviceScope d(device_);  // the event must belong to the stream's device
        check_cuda(d.set(), "cudaSetDevice", who_);
        cudaEvent_t ev = nullptr;
        check_cuda(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming), "cudaEventCreateWithFlags", who_);
        auto pending = std::make_unique<NcclPendingSend>(ev, who_);  // owns ev from here on
        if (bytes > 0) nccl_check(ncclSend(data, bytes, ncclUint8, dest, comm_, stream_), "ncclSend (isend)", bytes);
        check_cuda(cudaEventRecord(ev, stream_), "cudaEventRecord (isend)", who_);
        return pending;
    }
    std::optional<Incoming> probe(bool) override {
        throw Error(str("NCCL has no probe (", who_,
                        "): control messages and tagged traffic stay on the group's MPI communicator"));
    }
    void barrier() override {
        WaitScope w(WaitOp::wait_op_barrier, -1);
        // dev_scalar_'s value does not matter: only the meeting does (min cannot overflow).
        nccl_check(ncclAllReduce(dev_scalar_, dev_scalar_, 1, ncclInt64, ncclMin, comm_, stream_),
                   "ncclAllReduce (barrier)", sizeof(int64_t));
        check_cuda(cudaStreamSynchronize(stream_), "cudaStreamSynchronize (barrier)", who_);
    }
    int64_t allreduce_min(int64_t v) override {
        WaitScope w(WaitOp::wait_op_allreduce, -1);
        // host_scalar_ is pinned, so both copies are truly asynchronous; the previous call's copies
        // completed in its synchronisation, so writing it now races with nothing.
        *host_scalar_ = v;
        check_cuda(cudaMemcpyAsync(dev_scalar_, host_scalar_, sizeof(int64_t), cudaMemcpyHostToDevice, stream_),
                   "cudaMemcpyAsync (allreduce_min in)", who_);
        nccl_check(ncclAllReduce(dev_scalar_, dev_scalar_, 1, ncclInt64, ncclMin, comm_, stream_),
                   "ncclAllReduce (min)", sizeof(int64_t));
        check_cuda(cudaMemcpyAsync(host_scalar_, dev_scalar_, sizeof(int64_t), cudaMemcpyDeviceToHost, stream_),
                   "cudaMemcpyAsync (allreduce_min out)", who_);
        check_cuda(cudaStreamSynchronize(stream_), "cudaStreamSynchronize (allreduce_min)", who_);
        return *host_scalar_;
    }

private:
    void nccl_check(ncclResult_t r, const char* call, size_t bytes) const { check_nccl(r, call, bytes, comm_, who_); }
    void check_peer(int peer) const {
        GRIDLM_ASSERT(peer >= 0 && peer < size_ && "peer outside the group");
        GRIDLM_ASSERT(peer != rank_ && "an NCCL rank cannot send to or receive from itself outside a group call");
    }

    int rank_;
    int size_;
    int device_;
    cudaStream_t stream_;
    std::string who_;                 // where(...), for messages
    ncclComm_t comm_ = nullptr;       // null until init() succeeds
    int64_t* dev_scalar_ = nullptr;   // [1] on device_: allreduce_min's value and barrier's token
    int64_t* host_scalar_ = nullptr;  // [1] pinned host copy of it
};

}  // namespace

std::unique_ptr<Communicator> nccl_module::make_nccl_communicator(Communicator& mpi_group, int cuda_device,
                                                                  void* cuda_stream) {
    if (mpi_group.device_memory()) {
        throw Error(
            str("make_nccl_communicator: the group that carries NCCL's unique id must be a host-memory (MPI) "
                "communicator; the one given (group rank ",
                mpi_group.rank(), " of ", mpi_group.size(), ") works on device memory"));
    }
    auto c = std::make_unique<NcclCommunicator>(mpi_group.rank(), mpi_group.size(), cuda_device, cuda_stream);
    c->init(mpi_group);  // on failure, c's destructor frees what init() made
    return c;
}

}  // namespace gridlm
