// Stage-boundary activations of the generate and score jobs: buffers in the model's backend
// memory and their sends over the grid's activation communicator (JobGrid::pp_act).
#pragma once

#include <cstddef>
#include <memory>

#include "engine/backend/backend.h"
#include "engine/core/communicator.h"

namespace gridlm {

// Makes buf hold at least n floats of be's memory. A buffer that grows is replaced by a new one
// whose n floats are zero, so the padding of a --pp-slices send is never uninitialised memory;
// a large enough one is kept as it is. The old buffer is freed at once: the caller has waited
// for any host-memory send from it (a stream-ordered send is ordered before later reuse).
void reserve_activations(Backend& be, BackendBuffer& buf, size_t n);

// Sends n floats of backend memory to group rank dest over comm. A stream-ordered communicator
// (device_memory()) only enqueues a send that the backend's later work (the next write of the
// buffer) follows, so nothing is left to wait for: returns nullptr. Otherwise an isend whose
// PendingSend the caller keeps, and waits for, before it writes or frees the buffer.
std::unique_ptr<PendingSend> send_activations(Communicator& comm, const float* data, size_t n, int dest, int tag);

}  // namespace gridlm
