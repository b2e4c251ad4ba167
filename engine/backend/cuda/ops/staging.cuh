// Host-to-device staging of the small index arrays an op call carries in host memory (token ids,
// positions, per-sequence descriptors, block tables). Launchers ask the backend for a device copy;
// the backend owns the buffers, orders the copy on the op's stream and may hand back an earlier
// copy of identical bytes (the same sequences are passed to every layer of a step).
#pragma once

#include <cstddef>

namespace gridlm::cuda {

class DeviceStaging {
public:
    virtual ~DeviceStaging() = default;
    // What an upload holds; only uploads of the same kind share a copy.
    enum Kind : int { kind_ids = 1, kind_positions, kind_block_table, kind_seqs, kind_token_seq };
    // A device copy of host[0, bytes), valid for kernels launched on the backend's stream until the
    // next begin_step of the backend. The pointer is aligned to 256 bytes; bytes == 0 gives nullptr.
    virtual const void* upload(const void* host, size_t bytes, Kind kind) = 0;
};

}  // namespace gridlm::cuda
