// The CUDA backend (cuda_backend.h): device memory, one stream, the op launchers of ops/, cuBLAS
// for matmuls wider than the GEMV kernel takes, and decode steps replayed from CUDA graphs.
#include "engine/backend/cuda/cuda_backend.h"
#include "engine/backend/cuda/cuda_module.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <unordered_map>
#include <vector>

#include "engine/backend/cuda/cuda_check.h"
#include "engine/backend/cuda/device_memory.cuh"
#include "engine/backend/cuda/ops/add.cuh"
#include "engine/backend/cuda/ops/attention.cuh"
#include "engine/backend/cuda/ops/bias_add.cuh"
#include "engine/backend/cuda/ops/convert.cuh"
#include "engine/backend/cuda/ops/embedding.cuh"
#include "engine/backend/cuda/ops/gemm.cuh"
#include "engine/backend/cuda/ops/gemv.cuh"
#include "engine/backend/cuda/ops/kv_store.cuh"
#include "engine/backend/cuda/ops/paged_kv.cuh"
#include "engine/backend/cuda/ops/rmsnorm.cuh"
#include "engine/backend/cuda/ops/rope.cuh"
#include "engine/backend/cuda/ops/silu_mul.cuh"

namespace gridlm::cuda {

namespace {

constexpr size_t staging_bytes = size_t(4) << 20;
constexpr size_t cublas_workspace_bytes = size_t(32) << 20;

// A grow-only device buffer; every growth bumps *generation (captured graphs hold the address).
class Scratch {
public:
    explicit Scratch(uint64_t* generation) : generation_(generation) {}
    ~Scratch() { cudaFree(p_); }
    void* get(size_t bytes, bool recording) {
        if (bytes <= bytes_) return p_;
        // A recorded step is a replay of a warm-up step with the same sizes, which sized this.
        if (recording)
            throw Error(str("CUDA scratch buffer grew from ", bytes_, " to ", bytes, " bytes in a recorded step"));
        CUDA_CHECK(cudaFree(p_));
        p_ = nullptr;
        bytes_ = std::max(bytes, bytes_ * 2);
        CUDA_CHECK(cudaMalloc(&p_, bytes_));
        ++*generation_;
        return p_;
    }

private:
    uint64_t* generation_;
    void* p_ = nullptr;
    size_t bytes_ = 0;
};

class CudaBackend final : public Backend {
public:
    explicit CudaBackend(const CudaBackendOptions& o)
        : opt_(o), pool_(o.device), activations_(&generation_), attn_ws_(&generation_) {
        CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
        staging_ = std::make_unique<StagingArena>(stream_, staging_bytes);
        CUBLAS_CHECK(cublasCreate(&cublas_));
        CUBLAS_CHECK(cublasSetStream(cublas_, stream_));
        // A fixed workspace: cuBLAS then allocates nothing while a step is recorded into a graph.
        CUDA_CHECK(cudaMalloc(&cublas_ws_, cublas_workspace_bytes));
        CUBLAS_CHECK(cublasSetWorkspace(cublas_, cublas_ws_, cublas_workspace_bytes));
        CUBLAS_CHECK(cublasSetMathMode(cublas_, CUBLAS_DEFAULT_MATH));
    }
    ~CudaBackend() override {
        abandon_step();
        for (auto& [key, g] : graphs_) cudaGraphExecDestroy(g.exec);
        staging_.reset();
        cublasDestroy(cublas_);
        cudaFree(cublas_ws_);
        cudaStreamDestroy(stream_);
    }

    std::string name() const override { return "cuda"; }
    int n_threads() const override { return 1; }
    bool host_memory() const override { return false; }
    bool supports_weight(DType t) const override {
        return t == DType::dtype_f32 || t == DType::dtype_bf16 || t == DType::dtype_f16;
    }
    // The GEMV kernel (n <= gemv_max_tokens) reads f32 rows; cuBLAS reads them rounded to the
    // weight's 16-bit type. Callers size their bounds for the coarser of the two.
    DType matmul_input_type(DType weight) const override {
        return weight == DType::dtype_bf16 || weight == DType::dtype_f16 ? weight : DType::dtype_f32;
    }

    void* alloc(size_t bytes) override { return pool_.alloc(bytes); }
    void* alloc_host(size_t bytes) override {
        void* p = nullptr;
        CUDA_CHECK(cudaMallocHost(&p, std::max<size_t>(bytes, 1)));
        return p;
    }
    void free_host(void* p) override {
        if (p) cudaFreeHost(p);
    }
    void free(void* p) override { pool_.free(p); }
    void copy_from_host(void* dst, const void* src, size_t bytes) override {
        check_outside_step("copy_from_host");
        CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_));
        CUDA_CHECK(cudaStreamSynchronize(stream_));  // src may be pageable and reused at once
    }
    void copy_to_host(void* dst, const void* src, size_t bytes) override {
        check_outside_step("copy_to_host");
        CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_));
        CUDA_CHECK(cudaStreamSynchronize(stream_));
    }
    void copy(void* dst, const void* src, size_t bytes) override {
        if (replaying()) return;
        CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_));
    }

    void embedding(const Weight& table, int64_t id0, const int32_t* ids, int64_t n, float* out) override {
        for (int64_t t = 0; t < n; ++t)
            if (ids[t] < 0) throw Error(str("embedding: token id ", ids[t], " at row ", t, " is negative"));
        const auto* d_ids =
            static_cast<const int32_t*>(staging_->upload(ids, sizeof(int32_t) * (size_t)n, DeviceStaging::kind_ids));
        if (replaying() || n == 0) return;
        embedding_launch(table.data, table.dtype, table.rows, table.cols, table.stride(), id0, d_ids, n, out, stream_);
    }
    void rmsnorm(const float* x, const float* w, int64_t n_rows, int64_t n_cols, float eps, float* out) override {
        if (replaying()) return;
        rmsnorm_launch(x, w, out, n_rows, n_cols, eps, stream_);
    }
    void matmul(const float* x, const Weight& w, const float* bias, int64_t n, float* y) override {
        if (replaying() || n == 0) return;
        if (!supports_weight(w.dtype))
            throw Error(str("the CUDA backend's matmul takes f32, bf16 or f16 weights, not ", dtype_name(w.dtype)));
        if (n <= gemv_max_tokens) {
            gemv_launch(x, w.data, w.dtype, w.rows, w.cols, w.stride(), bias, n, y, stream_);
            return;
        }
        const int64_t elem = (int64_t)dtype_size(w.dtype);
        if (w.stride() % elem != 0)
            throw Error(str("weight row stride ", w.stride(), " bytes is not a whole number of ", dtype_name(w.dtype),
                            " elements"));
        const void* xin = x;
        if (w.dtype != DType::dtype_f32) {  // tensor cores read both operands in the weight's type
            void* xh = activations_.get(sizeof(uint16_t) * (size_t)(n * w.cols), recording());
            convert_f32_launch(x, xh, w.dtype, n * w.cols, stream_);
            xin = xh;
        }
        gemm_launch(cublas_, xin, w.data, w.dtype, w.rows, w.cols, w.stride() / elem, n, y);
        if (bias) bias_add_launch(y, bias, n, w.rows, stream_);
    }
    void matmul_multi(const float* x, int64_t n, std::initializer_list<MatmulOut> outs) override {
        for (const MatmulOut& o : outs) matmul(x, o.w, o.bias, n, o.y);
    }
    void rope_table(const int32_t* pos, int64_t n, int64_t head_dim, double theta, float* cs) override {
        const auto* d_pos = static_cast<const int32_t*>(
            staging_->upload(pos, sizeof(int32_t) * (size_t)n, DeviceStaging::kind_positions));
        if (replaying() || n == 0) return;
        rope_table_launch(d_pos, n, head_dim, theta, cs, stream_);
    }
    void rope(float* x, const float* cs, int64_t n, int64_t n_heads, int64_t head_dim) override {
        if (replaying() || n == 0) return;
        rope_launch(x, cs, n, n_heads, head_dim, stream_);
    }
    void kv_store(const float* k, const float* v, const AttentionSeq* seqs, int64_t n_seqs) override {
        if (n_seqs == 0) return;
        const PagedKv p = stage_paged_kv(seqs, n_seqs, *staging_);
        if (replaying() || p.n_tokens == 0) return;
        kv_store_launch(k, v, p, stream_);
    }
    void attention(const float* q, const AttentionSeq* seqs, int64_t n_seqs, const AttentionShape& shape,
                   float* out) override {
        if (n_seqs == 0) return;
        const PagedKv p = stage_paged_kv(seqs, n_seqs, *staging_);
        if (p.n_tokens == 0) return;
        const size_t ws_floats = attention_workspace_floats(p.n_tokens, shape.n_head, shape.v_dim(), p.max_positions);
        if (replaying()) return;
        float* ws = static_cast<float*>(attn_ws_.get(sizeof(float) * std::max<size_t>(ws_floats, 1), recording()));
        attention_launch(q, p, shape.n_head, shape.n_head_kv, shape.head_dim, shape.v_dim(), shape.scale, out, ws,
                         stream_);
    }
    void silu_mul(const float* gate, const float* up, int64_t n, float* out) override {
        if (replaying() || n == 0) return;
        silu_mul_launch(gate, up, n, out, stream_);
    }
    void add(float* x, const float* y, int64_t n) override {
        if (replaying() || n == 0) return;
        add_launch(x, y, n, stream_);
    }

    void begin_step(uint64_t graph_key) override;
    void end_step() override;
    bool dry_run() const override { return replaying(); }

    CudaStepCounts counts() const { return counts_; }
    cudaStream_t stream() const { return stream_; }
    int device() const { return opt_.device; }
    bool graphs() const { return opt_.graphs; }

private:
    enum class Mode { none, eager, recording, replaying };
    struct StepGraph {
        cudaGraphExec_t exec = nullptr;
        std::vector<size_t> trace;  // staging offsets of the recorded step's uploads
    };

    bool replaying() const { return mode_ == Mode::replaying; }
    bool recording() const { return mode_ == Mode::recording; }
    void check_outside_step(const char* what) const {
        if (mode_ == Mode::recording || mode_ == Mode::replaying)
            throw Error(str("CUDA backend: ", what, " inside a graph step (between begin_step and end_step)"));
    }
    void drop_graphs();
    void abandon_step();

    CudaBackendOptions opt_;
    DevicePool pool_;
    cudaStream_t stream_ = nullptr;
    cublasHandle_t cublas_ = nullptr;
    void* cublas_ws_ = nullptr;
    std::unique_ptr<StagingArena> staging_;
    uint64_t generation_ = 0;  // bumped when a buffer a graph may hold moves
    Scratch activations_;      // x rounded to bf16 / f16 for cuBLAS
    Scratch attn_ws_;          // split-key attention partials

    Mode mode_ = Mode::none;
    uint64_t step_key_ = 0;
    uint64_t graphs_generation_ = 0;
    std::unordered_map<uint64_t, StepGraph> graphs_;
    std::unordered_map<uint64_t, int> seen_;  // eager runs per key before one is recorded
    StepGraph pending_;
    bool graphs_failed_ = false;
    CudaStepCounts counts_;
};

uint64_t mix_key(uint64_t key, uint64_t generation) {
    uint64_t h = key ^ (generation + 0x9e3779b97f4a7c15ull + (key << 6) + (key >> 2));
    return h == 0 ? 1 : h;
}

void CudaBackend::drop_graphs() {
    for (auto& [key, g] : graphs_) cudaGraphExecDestroy(g.exec);
    graphs_.clear();
    seen_.clear();
}

void CudaBackend::abandon_step() {
    if (mode_ == Mode::recording) {
        cudaGraph_t g = nullptr;
        cudaStreamEndCapture(stream_, &g);
        if (g) cudaGraphDestroy(g);
        cudaGetLastError();
    }
    if (staging_) staging_->eager();
    mode_ = Mode::none;
}

void CudaBackend::begin_step(uint64_t graph_key) {
    if (mode_ != Mode::none) abandon_step();  // the previous step threw between the brackets
    staging_->reset();
    mode_ = Mode::eager;
    if (!opt_.graphs || graphs_failed_ || graph_key == 0) {
        ++counts_.eager;
        return;
    }
    const uint64_t gen = generation_ ^ (staging_->generation() << 32);
    if (gen != graphs_generation_) {  // a buffer some graph points into has moved
        drop_graphs();
        graphs_generation_ = gen;
    }
    step_key_ = mix_key(graph_key, gen);
    if (auto it = graphs_.find(step_key_); it != graphs_.end()) {
        staging_->replay(&it->second.trace);
        mode_ = Mode::replaying;
        ++counts_.replayed;
        return;
    }
    // The first step of a key runs eagerly and sizes every buffer; the second is recorded.
    if (++seen_[step_key_] < 2 || (int)graphs_.size() >= opt_.max_graphs) {
        ++counts_.eager;
        return;
    }
    pending_ = StepGraph{};
    CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
    staging_->record(&pending_.trace);
    mode_ = Mode::recording;
}

void CudaBackend::end_step() {
    const Mode mode = mode_;
    mode_ = Mode::none;
    staging_->eager();
    if (mode == Mode::replaying) {
        CUDA_CHECK(cudaGraphLaunch(graphs_.at(step_key_).exec, stream_));
        return;
    }
    if (mode != Mode::recording) return;
    cudaGraph_t graph = nullptr;
    CUDA_CHECK(cudaStreamEndCapture(stream_, &graph));
    cudaGraphExec_t exec = nullptr;
    const cudaError_t err = cudaGraphInstantiate(&exec, graph, 0);
    if (err != cudaSuccess) {
        // The step was captured, not run: without a graph it cannot be replayed, so stop using graphs.
        cudaGetLastError();
        cudaGraphDestroy(graph);
        graphs_failed_ = true;
        throw Error(
            str("CUDA graph instantiation failed (", cudaGetErrorString(err), "); rerun with --cuda-graphs off"));
    }
    CUDA_CHECK(cudaGraphDestroy(graph));
    pending_.exec = exec;
    CUDA_CHECK(cudaGraphLaunch(exec, stream_));  // the recorded step has not run yet: run it now
    graphs_[step_key_] = std::move(pending_);
    ++counts_.recorded;
}

}  // namespace

namespace module {

namespace {

void check_device(int device) {
    int count = 0;
    const cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess || count == 0) {
        cudaGetLastError();
        throw Error(str("no CUDA device on ", host_name(), " (",
                        err != cudaSuccess ? cudaGetErrorString(err) : "none found", "); use --backend cpu"));
    }
    if (device < 0 || device >= count)
        throw Error(str("CUDA device ", device, " does not exist on ", host_name(), " (", count,
                        " visible; one GPU per rank on a node: more ranks on this node than GPUs?)"));
    if (const std::string problem = device_capability_problem(device); !problem.empty())
        throw Error(str(problem, " on ", host_name(), "; use --backend cpu"));
    if (const std::string problem = kernel_image_problem(device); !problem.empty()) throw Error(problem);
}

}  // namespace

std::unique_ptr<Backend> make_cuda_backend(const CudaBackendOptions& options) {
    check_device(options.device);
    return std::make_unique<CudaBackend>(options);
}

CudaStepCounts cuda_step_counts(const Backend& backend) {
    const auto* cuda = dynamic_cast<const CudaBackend*>(&backend);
    return cuda ? cuda->counts() : CudaStepCounts{};
}

void* cuda_backend_stream(const Backend& backend) {
    const auto* cuda = dynamic_cast<const CudaBackend*>(&backend);
    return cuda ? (void*)cuda->stream() : nullptr;
}

bool cuda_backend_memory(const Backend& backend, size_t* free_bytes, size_t* total_bytes) {
    const auto* cuda = dynamic_cast<const CudaBackend*>(&backend);
    if (!cuda) return false;
    CUDA_CHECK(cudaSetDevice(cuda->device()));
    CUDA_CHECK(cudaMemGetInfo(free_bytes, total_bytes));
    return true;
}

std::string cuda_backend_device_uuid(const Backend& backend) {
    const auto* cuda = dynamic_cast<const CudaBackend*>(&backend);
    cudaDeviceProp prop{};
    if (!cuda || cudaGetDeviceProperties(&prop, cuda->device()) != cudaSuccess) return "";
    static const char hex[] = "0123456789abcdef";
    std::string id = "GPU-";
    for (unsigned char b : prop.uuid.bytes) {
        id += hex[b >> 4];
        id += hex[b & 15];
    }
    return id;
}

std::string cuda_backend_device_name(const Backend& backend) {
    const auto* cuda = dynamic_cast<const CudaBackend*>(&backend);
    cudaDeviceProp prop{};
    if (!cuda || cudaGetDeviceProperties(&prop, cuda->device()) != cudaSuccess) return "";
    return str(prop.name, ", ", (double)(prop.totalGlobalMem >> 20) / 1024.0, " GiB, compute capability ", prop.major,
               ".", prop.minor);
}

bool cuda_backend_graphs(const Backend& backend) {
    const auto* cuda = dynamic_cast<const CudaBackend*>(&backend);
    return cuda && cuda->graphs();
}

int cuda_backend_device(const Backend& backend) {
    const auto* cuda = dynamic_cast<const CudaBackend*>(&backend);
    return cuda ? cuda->device() : -1;
}

}  // namespace module

}  // namespace gridlm::cuda
