// Stage-boundary activations in backend memory: Model::forward_stage_in_backend on a backend that
// says its memory is not host memory (the CPU backend behind a wrapper that counts host copies),
// and the job helpers of launch/activation_io.h (buffer growth, sends over a stream-ordered or a
// host-memory communicator).
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <vector>

#include "checkpoint_fixtures.h"
#include "engine/backend/backend.h"
#include "engine/core/communicator.h"
#include "engine/kv/kv_cache.h"
#include "engine/model/model.h"
#include "launch/activation_io.h"
#include "test_support.h"

using namespace gridlm;

namespace {

// The CPU backend as if its memory were a device's: host_memory() is false, so the model takes
// its device paths, every host copy is counted, and new memory is never zero by chance.
class DeviceLikeBackend final : public Backend {
public:
    DeviceLikeBackend() : cpu_(make_cpu_backend(1)) {}
    std::string name() const override { return "device-like cpu"; }
    int n_threads() const override { return 1; }
    bool host_memory() const override { return false; }
    void* alloc(size_t bytes) override {  // never zero by chance: all bits set (NaN)
        void* p = cpu_->alloc(bytes);
        std::memset(p, 0xff, bytes);
        return p;
    }
    void free(void* p) override { cpu_->free(p); }
    void copy_from_host(void* dst, const void* src, size_t bytes) override {
        ++from_host;
        from_host_bytes += bytes;
        cpu_->copy_from_host(dst, src, bytes);
    }
    void copy_to_host(void* dst, const void* src, size_t bytes) override {
        ++to_host;
        to_host_bytes += bytes;
        cpu_->copy_to_host(dst, src, bytes);
    }
    void copy(void* dst, const void* src, size_t bytes) override { cpu_->copy(dst, src, bytes); }
    void embedding(const Weight& t, int64_t id0, const int32_t* ids, int64_t n, float* out) override {
        cpu_->embedding(t, id0, ids, n, out);
    }
    void rmsnorm(const float* x, const float* w, int64_t r, int64_t c, float eps, float* out) override {
        cpu_->rmsnorm(x, w, r, c, eps, out);
    }
    void matmul(const float* x, const Weight& w, const float* b, int64_t n, float* y) override {
        cpu_->matmul(x, w, b, n, y);
    }
    void matmul_multi(const float* x, int64_t n, std::initializer_list<MatmulOut> outs) override {
        cpu_->matmul_multi(x, n, outs);
    }
    void rope_table(const int32_t* pos, int64_t n, int64_t d, double theta, float* cs) override {
        cpu_->rope_table(pos, n, d, theta, cs);
    }
    void rope(float* x, const float* cs, int64_t n, int64_t h, int64_t d) override { cpu_->rope(x, cs, n, h, d); }
    void kv_store(const float* k, const float* v, const AttentionSeq* seqs, int64_t n) override {
        cpu_->kv_store(k, v, seqs, n);
    }
    void attention(const float* q, const AttentionSeq* seqs, int64_t n, const AttentionShape& s, float* out) override {
        cpu_->attention(q, seqs, n, s, out);
    }
    void silu_mul(const float* g, const float* u, int64_t n, float* out) override { cpu_->silu_mul(g, u, n, out); }
    void add(float* x, const float* y, int64_t n) override { cpu_->add(x, y, n); }

    void reset_counts() { from_host = to_host = 0, from_host_bytes = to_host_bytes = 0; }
    int from_host = 0, to_host = 0;
    size_t from_host_bytes = 0, to_host_bytes = 0;

private:
    std::unique_ptr<Backend> cpu_;
};

// A communicator that records which point-to-point call carried a message.
class RecordingComm final : public Communicator {
public:
    struct Pending final : PendingSend {
        void wait() override {}
        bool test() override { return true; }
    };
    explicit RecordingComm(bool device) : device_(device) {}
    int rank() const override { return 0; }
    int size() const override { return 2; }
    bool device_memory() const override { return device_; }
    void allreduce_sum(float*, size_t) override {}
    void allgather(const float*, size_t, float*) override {}
    void broadcast(void*, size_t, int) override {}
    void send(const void* d, size_t bytes, int dest, int) override { sends.push_back({d, bytes, dest}); }
    void recv(void*, size_t, int, int) override {}
    std::unique_ptr<PendingSend> isend(const void* d, size_t bytes, int dest, int) override {
        isends.push_back({d, bytes, dest});
        return std::make_unique<Pending>();
    }
    std::optional<Incoming> probe(bool) override { return std::nullopt; }
    void barrier() override {}
    int64_t allreduce_min(int64_t v) override { return v; }

    struct Call {
        const void* data;
        size_t bytes;
        int dest;
    };
    std::vector<Call> sends, isends;

private:
    bool device_;
};

}  // namespace

// A two-stage split of the tiny model on device-like backends: the activations stay in backend
// memory between the stages (no host copy on either side but the last stage's logits), and the
// logits equal the whole model's on the CPU, step after step.
TEST(StageActivations, BackendMemoryStagesMatchTheWholeModelWithoutHostCopies) {
    ModelConfig c = test::tiny_config();
    c.n_layer = 3;
    const test::MemorySource src = test::tiny_weights(c, 0.5f);
    const WeightPolicy policy(DType::dtype_f32);
    Model whole(c, src, policy, 1);
    auto be0 = std::make_shared<DeviceLikeBackend>(), be1 = std::make_shared<DeviceLikeBackend>();
    Model first(c, src, policy, be0, ModelShard::of(c, {2, 1}, 0, 1, 0), nullptr);
    Model last(c, src, policy, be1, ModelShard::of(c, {2, 1}, 1, 1, 0), nullptr);
    auto kv = whole.make_kv_cache(2, 64), kv0 = first.make_kv_cache(2, 64), kv1 = last.make_kv_cache(2, 64);

    const int64_t d = c.n_embd, V = c.n_vocab;
    BackendBuffer act0, act1;  // stage 0's output, stage 1's input
    std::vector<int32_t> ids0 = {3, 17, 5, 30}, ids1 = {11, 2};
    ForwardBatch b;
    b.add(0, ids0);
    b.add(1, ids1);
    for (int step = 0; step < 3; ++step) {
        const int64_t n = b.n_tokens(), rows = b.n_logit_rows();
        std::vector<float> want((size_t)(rows * V)), got((size_t)(rows * V));
        whole.forward(b, *kv, want.data());

        reserve_activations(*be0, act0, (size_t)(n * d));
        reserve_activations(*be1, act1, (size_t)(n * d));
        be0->reset_counts();
        be1->reset_counts();
        first.forward_stage_in_backend(b, *kv0, nullptr, act0.f32());
        EXPECT_EQ(be0->to_host, 0) << "step " << step << ": stage 0 read its activations back to the host";
        be1->copy(act1.data(), act0.data(), sizeof(float) * (size_t)(n * d));  // the "send"
        last.forward_stage_in_backend(b, *kv1, act1.f32(), got.data());
        EXPECT_EQ(be1->from_host, 0) << "step " << step << ": stage 1 took its activations from the host";
        EXPECT_EQ(be1->to_host_bytes, sizeof(float) * (size_t)(rows * V)) << "step " << step << ": only the logits";
        EXPECT_TRUE(test::bit_equal(want, got)) << "step " << step;

        ids0 = {(int32_t)(step + 7)};
        ids1 = {(int32_t)(step + 20)};
        b.clear();
        b.add(0, ids0);
        b.add(1, ids1);
    }
}

// The host-memory variant on the same backend does read the activations back: the counts above
// would see a host path.
TEST(StageActivations, HostVariantCopiesThroughTheHost) {
    ModelConfig c = test::tiny_config();
    const test::MemorySource src = test::tiny_weights(c, 0.5f);
    auto be = std::make_shared<DeviceLikeBackend>();
    Model first(c, src, WeightPolicy(DType::dtype_f32), be, ModelShard::of(c, {1, 1}, 0, 1, 0), nullptr);
    auto kv = first.make_kv_cache(1, 16);
    const std::vector<int32_t> ids = {1, 2, 3};
    ForwardBatch b;
    b.add(0, ids);
    std::vector<float> out((size_t)(3 * c.n_embd));
    be->reset_counts();
    first.forward_stage(b, *kv, nullptr, out.data());
    EXPECT_EQ(be->to_host_bytes, out.size() * sizeof(float));
}

TEST(StageActivations, ReserveGrowsZeroedAndKeepsALargeEnoughBuffer) {
    DeviceLikeBackend be;
    BackendBuffer buf;
    reserve_activations(be, buf, 6);
    ASSERT_GE(buf.bytes(), 6 * sizeof(float));
    for (int i = 0; i < 6; ++i) EXPECT_EQ(buf.f32()[i], 0.0f) << i;
    for (int i = 0; i < 6; ++i) buf.f32()[i] = (float)i + 1;
    const void* before = buf.data();
    reserve_activations(be, buf, 4);  // fits: the same memory, contents untouched
    EXPECT_EQ(buf.data(), before);
    EXPECT_EQ(buf.f32()[5], 6.0f);
    reserve_activations(be, buf, 1000);
    ASSERT_GE(buf.bytes(), 1000 * sizeof(float));
    for (int i = 0; i < 1000; ++i) ASSERT_EQ(buf.f32()[i], 0.0f) << i;
}

// Over a stream-ordered communicator a send is only enqueued: nothing to keep or wait for. Over a
// host-memory one it is an isend whose PendingSend the caller keeps.
TEST(StageActivations, SendsAreStreamOrderedOnDeviceCommunicators) {
    std::vector<float> data(10, 1.0f);
    RecordingComm device(true), host(false);
    EXPECT_EQ(send_activations(device, data.data(), 10, 1, 11), nullptr);
    ASSERT_EQ(device.sends.size(), 1u);
    EXPECT_TRUE(device.isends.empty());
    EXPECT_EQ(device.sends[0].bytes, 10 * sizeof(float));
    EXPECT_EQ(device.sends[0].dest, 1);
    EXPECT_EQ(device.sends[0].data, data.data());

    EXPECT_NE(send_activations(host, data.data() + 2, 8, 1, 11), nullptr);
    ASSERT_EQ(host.isends.size(), 1u);
    EXPECT_TRUE(host.sends.empty());
    EXPECT_EQ(host.isends[0].bytes, 8 * sizeof(float));
    EXPECT_EQ(host.isends[0].data, data.data() + 2);
}
