// Device memory for the CUDA backend: a pool that carves small allocations (KV blocks, norm
// vectors, most weight matrices) out of large cudaMalloc chunks and reuses freed ones of the same
// size, and the staging arena through which op calls send their host index arrays.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include <cuda_runtime.h>

#include "engine/backend/cuda/ops/staging.cuh"

namespace gridlm::cuda {

// Allocations of at most pooled_max bytes come from chunks of chunk_bytes (or bigger, for a
// request larger than a chunk); larger ones are cudaMalloc'd each. Sizes round up to 256 bytes,
// and a freed block waits for the next request of its rounded size. Memory goes back to the
// device when the pool is destroyed. Not thread-safe (one backend, one thread).
class DevicePool {
public:
    static constexpr size_t pooled_max = size_t(64) << 20;
    static constexpr size_t chunk_bytes = size_t(512) << 20;

    explicit DevicePool(int device) : device_(device) {}
    ~DevicePool();
    DevicePool(const DevicePool&) = delete;
    DevicePool& operator=(const DevicePool&) = delete;

    // Throws gridlm::Error naming the bytes asked, the device's free and total memory and the
    // host when the device has no room.
    void* alloc(size_t bytes);
    void free(void* p);  // nullptr is ignored; pointers not from this pool are an error
    size_t bytes_in_use() const { return in_use_; }

private:
    void* device_malloc(size_t bytes);

    int device_;
    std::vector<void*> chunks_;  // every cudaMalloc'd chunk
    char* bump_ = nullptr;       // next free byte of the newest chunk
    size_t bump_left_ = 0;
    std::unordered_map<void*, size_t> size_of_;            // live pooled block -> rounded size
    std::unordered_map<void*, size_t> direct_;             // live direct allocation -> bytes
    std::unordered_map<size_t, std::vector<void*>> free_;  // rounded size -> freed blocks
    size_t in_use_ = 0;
};

// Pinned host memory and device memory of one size; upload() copies through them on the stream.
// Uploads go one after another and are reused when the same bytes come again (the sequences of a
// step go to every layer); reset() starts over at offset 0 after the stream has drained, so a
// step's uploads land at the same offsets each time it runs (what a replayed graph relies on).
// In record-only mode upload() fills the pinned buffer but enqueues no copy: the copy is a node
// of the graph that replays the step.
class StagingArena final : public DeviceStaging {
public:
    StagingArena(cudaStream_t stream, size_t bytes);
    ~StagingArena() override;
    StagingArena(const StagingArena&) = delete;
    StagingArena& operator=(const StagingArena&) = delete;

    const void* upload(const void* host, size_t bytes, Kind kind) override;
    // Waits for the stream, then starts again at offset 0 with no reusable uploads.
    void reset();

    // Graph modes. record(trace): uploads run as usual, may not wrap or grow (that throws), and
    // their offsets and sizes are appended to *trace (two entries each). replay(trace): uploads fill the pinned buffer
    // only (the graph holds the copies) and must land at the recorded offsets, else they throw. eager(): back to plain
    // uploads.
    void record(std::vector<size_t>* trace);
    void replay(const std::vector<size_t>* trace);
    void eager();
    // Changes whenever the device buffer moves (a captured graph holds its address).
    uint64_t generation() const { return generation_; }

private:
    struct Entry {
        size_t offset, bytes;
        Kind kind;
    };
    void grow(size_t at_least);

    cudaStream_t stream_;
    size_t capacity_ = 0, offset_ = 0;
    char* pinned_ = nullptr;
    char* device_ = nullptr;
    std::vector<Entry> recent_;                    // uploads since the last reset or wrap, for reuse
    std::vector<size_t>* record_ = nullptr;        // recording: offsets of this step's uploads
    const std::vector<size_t>* replay_ = nullptr;  // replaying: where each upload must land
    size_t replay_at_ = 0;
    uint64_t generation_ = 0;
};

// The device's free and total memory, in a sentence ("12.5 GiB free of 139.8 GiB on device 0 (NAME)").
std::string device_memory_note(int device);

}  // namespace gridlm::cuda
