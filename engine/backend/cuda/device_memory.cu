// Device memory pool and staging arena of the CUDA backend (device_memory.cuh).
#include "engine/backend/cuda/device_memory.cuh"

#include <algorithm>
#include <cstring>

#include "engine/backend/cuda/cuda_check.h"

namespace gridlm::cuda {

namespace {

constexpr size_t align_up(size_t v, size_t a) { return (v + a - 1) / a * a; }

std::string gib(size_t bytes) { return str((double)(bytes >> 20) / 1024.0, " GiB"); }

}  // namespace

std::string device_memory_note(int device) {
    size_t free_b = 0, total_b = 0;
    cudaDeviceProp prop{};
    const bool have_info = cudaMemGetInfo(&free_b, &total_b) == cudaSuccess;
    const bool have_prop = cudaGetDeviceProperties(&prop, device) == cudaSuccess;
    cudaGetLastError();
    return str(have_info ? str(gib(free_b), " free of ", gib(total_b)) : std::string("free memory unknown"),
               " on device ", device, have_prop ? str(" (", prop.name, ")") : std::string(), " of ", host_name());
}

DevicePool::~DevicePool() {
    for (auto& [p, bytes] : direct_) cudaFree(p);
    for (void* c : chunks_) cudaFree(c);
}

void* DevicePool::device_malloc(size_t bytes) {
    void* p = nullptr;
    const cudaError_t err = cudaMalloc(&p, bytes);
    if (err != cudaSuccess) {
        cudaGetLastError();
        throw Error(str("out of GPU memory: ", bytes, " more bytes asked with ", in_use_, " in use; ",
                        device_memory_note(device_),
                        " (a larger --tp or --pp spreads the weights over more GPUs; --kv-cache-bytes or "
                        "--max-seqs bound the KV cache)"));
    }
    return p;
}

void* DevicePool::alloc(size_t bytes) {
    if (bytes == 0) bytes = 1;
    const size_t size = align_up(bytes, 256);
    in_use_ += size;
    if (size > pooled_max) {
        void* p = device_malloc(size);
        direct_[p] = size;
        return p;
    }
    std::vector<void*>& list = free_[size];
    if (!list.empty()) {
        void* p = list.back();
        list.pop_back();
        size_of_[p] = size;
        return p;
    }
    if (bump_left_ < size) {
        const size_t chunk = std::max(chunk_bytes, size);
        bump_ = static_cast<char*>(device_malloc(chunk));
        chunks_.push_back(bump_);
        bump_left_ = chunk;
    }
    void* p = bump_;
    bump_ += size;
    bump_left_ -= size;
    size_of_[p] = size;
    return p;
}

void DevicePool::free(void* p) {
    if (p == nullptr) return;
    if (auto d = direct_.find(p); d != direct_.end()) {
        in_use_ -= d->second;
        direct_.erase(d);
        CUDA_CHECK(cudaFree(p));
        return;
    }
    auto it = size_of_.find(p);
    GRIDLM_ASSERT(it != size_of_.end() && "freeing memory the CUDA backend did not allocate");
    in_use_ -= it->second;
    free_[it->second].push_back(p);
    size_of_.erase(it);
}

StagingArena::StagingArena(cudaStream_t stream, size_t bytes) : stream_(stream) { grow(bytes); }

StagingArena::~StagingArena() {
    cudaFreeHost(pinned_);
    cudaFree(device_);
}

void StagingArena::grow(size_t at_least) {
    if (record_ || replay_)
        throw Error(
            str("CUDA staging arena full while a graph step runs (", capacity_, " bytes; ", at_least, " needed)"));
    CUDA_CHECK(cudaStreamSynchronize(stream_));
    const size_t cap = std::max(at_least, 2 * capacity_);
    cudaFreeHost(pinned_);
    cudaFree(device_);
    pinned_ = nullptr;
    device_ = nullptr;
    CUDA_CHECK(cudaMallocHost(&pinned_, cap));
    CUDA_CHECK(cudaMalloc(&device_, cap));
    capacity_ = cap;
    offset_ = 0;
    recent_.clear();
    ++generation_;
}

void StagingArena::reset() {
    CUDA_CHECK(cudaStreamSynchronize(stream_));
    offset_ = 0;
    recent_.clear();
}

void StagingArena::record(std::vector<size_t>* trace) {
    record_ = trace;
    replay_ = nullptr;
}

void StagingArena::replay(const std::vector<size_t>* trace) {
    replay_ = trace;
    replay_at_ = 0;
    record_ = nullptr;
}

void StagingArena::eager() {
    if (replay_ && 2 * replay_at_ != replay_->size())
        throw Error(
            str("a replayed CUDA graph step made ", replay_at_, " uploads; its recording made ", replay_->size() / 2));
    record_ = nullptr;
    replay_ = nullptr;
}

const void* StagingArena::upload(const void* host, size_t bytes, Kind kind) {
    if (bytes == 0) return nullptr;
    size_t at = SIZE_MAX;
    // The same bytes as a recent upload of this kind (most recent first): hand back that copy.
    for (auto e = recent_.rbegin(); e != recent_.rend() && at == SIZE_MAX; ++e)
        if (e->kind == kind && e->bytes == bytes && std::memcmp(pinned_ + e->offset, host, bytes) == 0) at = e->offset;
    const bool fresh = at == SIZE_MAX;
    if (fresh) {
        const size_t size = align_up(bytes, 256);
        if (offset_ + size > capacity_) {
            if (size > capacity_ || record_ || replay_) {
                grow(std::max(size, capacity_) * 2);  // throws while a graph step runs
            } else {  // wrap: the copies from the pinned buffer must be done before it is reused
                reset();
            }
        }
        at = offset_;
        offset_ += size;
        std::memcpy(pinned_ + at, host, bytes);
        if (!replay_) CUDA_CHECK(cudaMemcpyAsync(device_ + at, pinned_ + at, bytes, cudaMemcpyHostToDevice, stream_));
        recent_.push_back({at, bytes, kind});
        if (recent_.size() > 16) recent_.erase(recent_.begin());
    }
    if (record_) {
        record_->push_back(at);
        record_->push_back(bytes);
    }
    if (replay_) {
        // A step replayed must stage exactly as it did when recorded: the graph's copy nodes read
        // these offsets and sizes.
        const size_t k = 2 * replay_at_;
        if (k + 1 >= replay_->size() || (*replay_)[k] != at || (*replay_)[k + 1] != bytes)
            throw Error(str("a replayed CUDA graph step staged its upload ", replay_at_, " (", bytes,
                            " bytes) at offset ", at,
                            "; its recording staged another offset or size (the step's launches differ from the "
                            "recorded ones)"));
        ++replay_at_;
    }
    return device_ + at;
}

}  // namespace gridlm::cuda
