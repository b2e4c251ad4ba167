// Communicator over NCCL for the CUDA backend: the grid's collectives and point-to-point transfers
// run between GPU buffers, enqueued on the backend's compute stream. Control traffic (probe, tags,
// host data) stays on the MPI communicators of parallel/mpi_communicator.h.
#pragma once

#include <memory>

#include "engine/core/communicator.h"

namespace gridlm {

// A Communicator over the same ranks as `mpi_group`, in the same order, for device memory
// (device_memory() is true: every pointer passed to it is memory of `cuda_device`).
//
// Collective over `mpi_group`, which must be a host-memory communicator (an MPI one): its rank 0
// makes the ncclUniqueId and broadcasts it on `mpi_group`; then every rank selects `cuda_device`
// and joins with ncclCommInitRank. A rank whose device cannot be selected makes every rank throw
// (the status is agreed on `mpi_group` first), so no rank is left waiting in ncclCommInitRank.
// Two ranks on one GPU are refused by NCCL (an Error from ncclCommInitRank). A failure inside
// ncclCommInitRank itself is not agreed on: it throws on the ranks that see it, and the others may
// stay in the init until the job is aborted (as the launcher does on an error of any rank).
// The calling thread's current CUDA device is left as it was (switched to cuda_device only while
// making events and memory). The destructor calls ncclCommDestroy, which may wait for operations
// still on the stream; it never throws.
//
// cuda_stream: the cudaStream_t (passed as void* so that this header needs no CUDA header) on
// which every operation is enqueued; nullptr is the legacy default stream. The stream must
// outlive the communicator.
//
// Stream ordering: every call only enqueues work on cuda_stream and returns (except where said
// below). The operation runs after the work enqueued on the stream before it (the kernels that
// produced its input) and before the work enqueued after it (the kernels that read its output);
// the host gets no synchronisation. "Blocking" in the Communicator interface means, here, that
// the buffer may be reused by later work on the same stream; the host must synchronise the
// stream before it touches the buffer itself. Calls of 0 elements or bytes enqueue nothing (every
// rank, or the peer, passes 0 too). allreduce_sum, allgather, broadcast, send and recv
// may be captured into a CUDA graph; isend's wait/test, allreduce_min and barrier synchronise the
// host with the stream and may not.
//
// Point-to-point: NCCL matches a send with the peer's recv by order per pair of ranks: `tag` is
// ignored, and both sides must issue their calls to each other in the same order with the same
// byte counts. As with MPI's synchronous sends, two ranks that both send to each other first
// (large messages) wait forever. Sending to oneself is a caller bug (an assert). probe() throws:
// NCCL has none.
//
// Errors: a failing NCCL or CUDA call throws gridlm::Error naming the call, the NCCL (or CUDA)
// error string and this rank. Errors that happen later on the GPU (a peer that died mid-transfer)
// are not polled (no ncclCommGetAsyncError loop): the stream then stops at that operation, and the
// host sees it as a wait that never ends in the next stream synchronisation. The calls here that
// synchronise (isend's wait, allreduce_min, barrier) mark it as a wait for the watchdog
// (parallel/watchdog.h), which can then call the job stuck; a synchronisation elsewhere (in the
// backend) counts as computing.
//
// The communicator is the module libgridlm_nccl.so (parallel/nccl_module.h), loaded by the first
// call; the group first agrees that every rank could load it (else every rank throws, the ones
// that could not naming the missing file or library). Without NCCL in the build (no CUDA toolkit
// at configure time) this throws gridlm::Error.
std::unique_ptr<Communicator> make_nccl_communicator(Communicator& mpi_group, int cuda_device, void* cuda_stream);

}  // namespace gridlm
