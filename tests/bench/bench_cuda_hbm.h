// Device-memory bandwidth of one CUDA device, measured in the run that uses it as a roofline
// (bench_cuda). Built only with the CUDA backend.
#pragma once

#include <cstddef>
#include <string>

namespace gridlm::bench {

struct HbmBandwidth {
    double read_gbs = 0;  // a kernel streaming the buffer once (16-byte loads): bytes read / s, 1e9
    double copy_gbs = 0;  // cudaMemcpy device to device of half the buffer: (read + written) / s, 1e9
    double bytes = 0;     // size of the buffer used
    std::string error;    // empty on success, else the CUDA call and its error
};

// Best of `reps` timed passes (CUDA events) after one warm-up, over a buffer of `bytes` bytes
// (rounded down to 64 KiB; use several GiB: far beyond the L2 cache) on `device`. Never throws:
// a CUDA failure (no device, out of memory) is reported in .error.
HbmBandwidth measure_hbm_bandwidth(int device, size_t bytes, int reps = 10);

}  // namespace gridlm::bench
