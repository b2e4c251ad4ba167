// Activation buffers and sends of the pipeline (activation_io.h).
#include "launch/activation_io.h"

#include <vector>

namespace gridlm {

void reserve_activations(Backend& be, BackendBuffer& buf, size_t n) {
    const size_t bytes = n * sizeof(float);
    if (buf.bytes() >= bytes) return;
    buf = BackendBuffer();  // free first: the old and the new one need not fit together
    buf = BackendBuffer(be, bytes);
    const std::vector<float> zero(n, 0.0f);
    be.copy_from_host(buf.data(), zero.data(), bytes);
}

std::unique_ptr<PendingSend> send_activations(Communicator& comm, const float* data, size_t n, int dest, int tag) {
    if (comm.device_memory()) {
        comm.send(data, n * sizeof(float), dest, tag);
        return nullptr;
    }
    return comm.isend(data, n * sizeof(float), dest, tag);
}

}  // namespace gridlm
