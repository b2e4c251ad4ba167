// Device-memory bandwidth for bench_cuda: a streaming read kernel and a device-to-device copy,
// timed with CUDA events (bench_cuda_hbm.h).
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "tests/bench/bench_cuda_hbm.h"

namespace gridlm::bench {

namespace {

// Each thread reads 4 independent 16-byte words per iteration over a grid-stride loop and folds
// them into one register; the result is stored only when it equals a value random data never
// gives, so the loads cannot be dropped and nothing is written.
__global__ void read_kernel(const uint4* __restrict__ p, size_t n, unsigned magic, unsigned* out) {
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    unsigned acc = 0;
    for (; i + 3 * stride < n; i += 4 * stride) {
        const uint4 a = p[i], b = p[i + stride], c = p[i + 2 * stride], d = p[i + 3 * stride];
        acc ^= a.x ^ a.y ^ a.z ^ a.w ^ b.x ^ b.y ^ b.z ^ b.w ^ c.x ^ c.y ^ c.z ^ c.w ^ d.x ^ d.y ^ d.z ^ d.w;
    }
    for (; i < n; i += stride) {
        const uint4 a = p[i];
        acc ^= a.x ^ a.y ^ a.z ^ a.w;
    }
    if (acc == magic) *out = acc;
}

const char* failed(cudaError_t e) { return e == cudaSuccess ? nullptr : cudaGetErrorString(e); }

}  // namespace

HbmBandwidth measure_hbm_bandwidth(int device, size_t bytes, int reps) {
    HbmBandwidth r;
    bytes = bytes / 65536 * 65536;
    r.bytes = (double)bytes;
    void* buf = nullptr;
    unsigned* out = nullptr;
    cudaEvent_t e0 = nullptr, e1 = nullptr;
    auto check = [&](cudaError_t e, const char* what) {
        if (e == cudaSuccess || !r.error.empty()) return e == cudaSuccess;
        r.error = std::string(what) + ": " + failed(e);
        return false;
    };
    int sms = 0;
    bool ok = check(cudaSetDevice(device), "cudaSetDevice") &&
              check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device), "cudaDeviceGetAttribute") &&
              check(cudaMalloc(&buf, bytes), "cudaMalloc") && check(cudaMalloc(&out, sizeof(unsigned)), "cudaMalloc") &&
              check(cudaMemset(buf, 0x5a, bytes), "cudaMemset") && check(cudaEventCreate(&e0), "cudaEventCreate") &&
              check(cudaEventCreate(&e1), "cudaEventCreate");
    const size_t n16 = bytes / 16, half = bytes / 2;
    const int threads = 512, blocks = std::max(1, sms) * 4;
    for (int rep = 0; ok && rep <= reps; ++rep) {  // rep 0 warms up
        float ms = 0;
        ok = check(cudaEventRecord(e0), "cudaEventRecord");
        read_kernel<<<blocks, threads>>>(static_cast<const uint4*>(buf), n16, 0x9e3779b9u, out);
        ok = ok && check(cudaGetLastError(), "read kernel launch") && check(cudaEventRecord(e1), "cudaEventRecord") &&
             check(cudaEventSynchronize(e1), "read kernel") && check(cudaEventElapsedTime(&ms, e0, e1), "elapsed");
        if (ok && rep > 0 && ms > 0) r.read_gbs = std::max(r.read_gbs, (double)bytes / (ms * 1e-3) / 1e9);
        ok = ok && check(cudaEventRecord(e0), "cudaEventRecord") &&
             check(cudaMemcpyAsync(static_cast<char*>(buf) + half, buf, half, cudaMemcpyDeviceToDevice), "copy") &&
             check(cudaEventRecord(e1), "cudaEventRecord") && check(cudaEventSynchronize(e1), "copy") &&
             check(cudaEventElapsedTime(&ms, e0, e1), "elapsed");
        if (ok && rep > 0 && ms > 0) r.copy_gbs = std::max(r.copy_gbs, 2.0 * (double)half / (ms * 1e-3) / 1e9);
    }
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    cudaFree(out);
    cudaFree(buf);
    return r;
}

}  // namespace gridlm::bench
