// The step protocol of backend.h (begin_step / end_step / dry_run) from the model's side, on the
// CPU. The CUDA backend records the second decode step of a graph key into a CUDA graph and
// replays it for later steps of that key; between the brackets of a replayed step, op calls only
// stage their host index arrays. ReplayBackend does the same with closures over the CPU backend:
//   - key 0, or the first step of a key: every call runs at once (eager);
//   - the second step of a key is recorded: each call is captured, not run, as a closure over
//     the same buffers that reads its host index arrays (ids, positions, per-sequence descriptors,
//     block tables) from copies the backend owns; end_step then runs the closures (as the CUDA
//     backend launches the graph it just captured);
//   - later steps of the key are dry runs: each call only copies its host arrays into the copies
//     of the recorded call at the same place in the step, and end_step runs the closures.
// A call that differs from its recording (another op, buffer, size or array length) throws, so a
// graph key that promises too much fails loudly here instead of replaying stale launches.
// Block tables are copied into a fixed-size array per sequence (KvSeqView::max_length /
// block_size entries): a step of the same key needs one more block whenever a sequence crosses a
// block boundary.
//
// Tensor parallelism stays out (tp = 1): a dry run skips StepContext::reduce, so a TP replay
// would need the collectives inside the closures, which this emulation does not record.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <vector>

#include "checkpoint_fixtures.h"
#include "engine/backend/backend.h"
#include "engine/core/error.h"
#include "engine/kv/kv_cache.h"
#include "engine/model/model.h"
#include "io/gguf.h"
#include "io/gguf_model.h"
#include "test_support.h"

using namespace gridlm;

namespace {

// One recorded call's host index arrays, owned by the backend.
struct Staged {
    std::vector<uint8_t> bytes;                 // token ids or positions
    std::vector<AttentionSeq> seqs;             // descriptors; each view's blocks point into tables
    std::vector<std::vector<uint8_t*>> tables;  // [n_seqs][max_length / block_size] block pointers
    int64_t blocks_used = 0;                    // block pointers the call reads, over its sequences
};

Staged stage_bytes(const void* p, size_t n) {
    Staged s;
    s.bytes.assign(static_cast<const uint8_t*>(p), static_cast<const uint8_t*>(p) + n);
    return s;
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

Staged stage_seqs(const AttentionSeq* seqs, int64_t n_seqs) {
    Staged s;
    s.seqs.assign(seqs, seqs + n_seqs);
    s.tables.resize((size_t)n_seqs);
    for (int64_t i = 0; i < n_seqs; ++i) {
        const AttentionSeq& a = seqs[i];
        if (a.kv.max_length <= 0 || a.kv.block_size <= 0)
            throw Error(str("sequence ", i, ": KV view with max_length ", a.kv.max_length, " and block size ",
                            a.kv.block_size, "; a replayed step needs both positive to size its block table"));
        const int64_t cap = ceil_div(a.kv.max_length, a.kv.block_size),
                      used = ceil_div(a.pos0 + a.n_new, a.kv.block_size);
        if (used > cap) throw Error(str("sequence ", i, " needs ", used, " blocks; its cache allows ", cap));
        s.tables[i].assign((size_t)cap, nullptr);
        std::copy_n(a.kv.blocks, used, s.tables[i].begin());
        s.seqs[i].kv.blocks = s.tables[i].data();
        s.blocks_used += used;
    }
    return s;
}

// The lengths of a call's staged arrays, which every dry run of the call must reproduce.
std::string shape_of(const Staged& s) {
    std::string r = str(s.bytes.size(), " bytes, ", s.seqs.size(), " sequences, block tables of");
    for (const std::vector<uint8_t*>& t : s.tables) r += str(" ", t.size());
    return r;
}

uint64_t u(const void* p) { return (uint64_t)(uintptr_t)p; }
uint64_t u(double x) {
    uint64_t r;
    std::memcpy(&r, &x, sizeof r);
    return r;
}

void add_weight(std::vector<uint64_t>& sig, const Weight& w) {
    sig.insert(sig.end(), {(uint64_t)w.dtype, (uint64_t)w.rows, (uint64_t)w.cols, u(w.data), (uint64_t)w.stride()});
}

// What a launch over these sequences keeps fixed: token runs and KV layout (positions and block
// tables travel through staging).
void add_seqs(std::vector<uint64_t>& sig, const AttentionSeq* seqs, int64_t n_seqs) {
    sig.push_back((uint64_t)n_seqs);
    for (int64_t i = 0; i < n_seqs; ++i) {
        const AttentionSeq& a = seqs[i];
        sig.insert(sig.end(), {(uint64_t)a.token_offset, (uint64_t)a.n_new, (uint64_t)a.kv.dtype,
                               (uint64_t)a.kv.block_size, (uint64_t)a.kv.k_offset, (uint64_t)a.kv.v_offset,
                               (uint64_t)a.kv.k_row, (uint64_t)a.kv.v_row, (uint64_t)a.kv.max_length});
    }
}

class ReplayBackend final : public Backend {
public:
    struct Counts {
        int64_t eager = 0, recorded = 0, replayed = 0;
        int64_t table_changes = 0;  // replayed steps whose block tables had another length than the step before
    };

    explicit ReplayBackend(int n_threads) : cpu_(make_cpu_backend(n_threads)) {}

    Counts counts() const { return counts_; }
    uint64_t last_key() const { return last_key_; }

    std::string name() const override { return "replay"; }
    int n_threads() const override { return cpu_->n_threads(); }
    // Like a device backend: the model keys its decode steps only then.
    bool host_memory() const override { return false; }
    bool supports_weight(DType t) const override { return cpu_->supports_weight(t); }
    DType matmul_input_type(DType w) const override { return cpu_->matmul_input_type(w); }

    void begin_step(uint64_t key) override {
        if (mode_ != Mode::none) throw Error("begin_step while the previous step is still open (no end_step)");
        last_key_ = key;
        table_changed_ = false;
        mode_ = Mode::eager;
        if (key == 0) {
            ++counts_.eager;
            return;
        }
        Recording& r = graphs_[key];
        rec_ = &r;
        at_ = 0;
        if (r.done) {
            mode_ = Mode::replaying;
            ++counts_.replayed;
        } else if (++r.seen < 2) {
            ++counts_.eager;
        } else {
            mode_ = Mode::recording;
            ++counts_.recorded;
        }
    }
    void end_step() override {
        if (mode_ == Mode::none) throw Error("end_step without begin_step");
        const Mode m = mode_;
        mode_ = Mode::none;
        if (m == Mode::eager) return;
        if (m == Mode::replaying && at_ != rec_->calls.size())
            fail(str("a replayed step made ", at_, " op calls; its recording made ", rec_->calls.size()));
        if (m == Mode::recording) rec_->done = true;
        if (table_changed_) ++counts_.table_changes;
        for (const Call& c : rec_->calls) c.run(*c.staged);
    }
    bool dry_run() const override { return mode_ == Mode::replaying; }

    void* alloc(size_t bytes) override {
        outside_graph("alloc");
        return cpu_->alloc(bytes);
    }
    void free(void* p) override { cpu_->free(p); }  // called by destructors: never throws
    void copy_from_host(void* dst, const void* src, size_t bytes) override {
        outside_graph("copy_from_host");
        cpu_->copy_from_host(dst, src, bytes);
    }
    void copy_to_host(void* dst, const void* src, size_t bytes) override {
        outside_graph("copy_to_host");
        cpu_->copy_to_host(dst, src, bytes);
    }
    void copy(void* dst, const void* src, size_t bytes) override {
        plain("copy", {u(dst), u(src), bytes}, [=, this] { cpu_->copy(dst, src, bytes); });
    }

    void embedding(const Weight& table, int64_t id0, const int32_t* ids, int64_t n, float* out) override {
        std::vector<uint64_t> sig{(uint64_t)id0, (uint64_t)n, u(out)};
        add_weight(sig, table);
        op(
            "embedding", std::move(sig), [&] { cpu_->embedding(table, id0, ids, n, out); },
            [&] { return stage_bytes(ids, sizeof(int32_t) * (size_t)n); },
            [=, this](const Staged& s) {
                cpu_->embedding(table, id0, reinterpret_cast<const int32_t*>(s.bytes.data()), n, out);
            });
    }
    void rmsnorm(const float* x, const float* w, int64_t n_rows, int64_t n_cols, float eps, float* out) override {
        plain("rmsnorm", {u(x), u(w), (uint64_t)n_rows, (uint64_t)n_cols, u((double)eps), u(out)},
              [=, this] { cpu_->rmsnorm(x, w, n_rows, n_cols, eps, out); });
    }
    void matmul(const float* x, const Weight& w, const float* bias, int64_t n, float* y) override {
        std::vector<uint64_t> sig{u(x), u(bias), (uint64_t)n, u(y)};
        add_weight(sig, w);
        plain("matmul", std::move(sig), [=, this] { cpu_->matmul(x, w, bias, n, y); });
    }
    void matmul_multi(const float* x, int64_t n, std::initializer_list<MatmulOut> outs) override {
        std::vector<uint64_t> sig{u(x), (uint64_t)n, outs.size()};
        for (const MatmulOut& o : outs) {
            add_weight(sig, o.w);
            sig.insert(sig.end(), {u(o.bias), u(o.y)});
        }
        if (mode_ == Mode::none || mode_ == Mode::eager) return cpu_->matmul_multi(x, n, outs);
        if (outs.size() > 4) fail(str("ReplayBackend records matmul_multi of 1 to 4 outputs, not ", outs.size()));
        const std::vector<MatmulOut> v(outs);
        plain("matmul_multi", std::move(sig), [=, this] {  // an initializer_list cannot be built from v
            if (v.size() == 1) return cpu_->matmul_multi(x, n, {v[0]});
            if (v.size() == 2) return cpu_->matmul_multi(x, n, {v[0], v[1]});
            if (v.size() == 3) return cpu_->matmul_multi(x, n, {v[0], v[1], v[2]});
            cpu_->matmul_multi(x, n, {v[0], v[1], v[2], v[3]});
        });
    }
    void rope_table(const int32_t* pos, int64_t n, int64_t head_dim, double theta, float* cs) override {
        op(
            "rope_table", {(uint64_t)n, (uint64_t)head_dim, u(theta), u(cs)},
            [&] { cpu_->rope_table(pos, n, head_dim, theta, cs); },
            [&] { return stage_bytes(pos, sizeof(int32_t) * (size_t)n); },
            [=, this](const Staged& s) {
                cpu_->rope_table(reinterpret_cast<const int32_t*>(s.bytes.data()), n, head_dim, theta, cs);
            });
    }
    void rope(float* x, const float* cs, int64_t n, int64_t n_heads, int64_t head_dim) override {
        plain("rope", {u(x), u(cs), (uint64_t)n, (uint64_t)n_heads, (uint64_t)head_dim},
              [=, this] { cpu_->rope(x, cs, n, n_heads, head_dim); });
    }
    void kv_store(const float* k, const float* v, const AttentionSeq* seqs, int64_t n_seqs) override {
        std::vector<uint64_t> sig{u(k), u(v)};
        add_seqs(sig, seqs, n_seqs);
        op(
            "kv_store", std::move(sig), [&] { cpu_->kv_store(k, v, seqs, n_seqs); },
            [&] { return stage_seqs(seqs, n_seqs); },
            [=, this](const Staged& s) { cpu_->kv_store(k, v, s.seqs.data(), n_seqs); });
    }
    void attention(const float* q, const AttentionSeq* seqs, int64_t n_seqs, const AttentionShape& shape,
                   float* out) override {
        std::vector<uint64_t> sig{u(q), u(out), u((double)shape.scale)};
        sig.insert(sig.end(), {(uint64_t)shape.n_head, (uint64_t)shape.n_head_kv, (uint64_t)shape.head_dim,
                               (uint64_t)shape.v_head_dim});
        add_seqs(sig, seqs, n_seqs);
        op(
            "attention", std::move(sig), [&] { cpu_->attention(q, seqs, n_seqs, shape, out); },
            [&] { return stage_seqs(seqs, n_seqs); },
            [=, this](const Staged& s) { cpu_->attention(q, s.seqs.data(), n_seqs, shape, out); });
    }
    void silu_mul(const float* gate, const float* up, int64_t n, float* out) override {
        plain("silu_mul", {u(gate), u(up), (uint64_t)n, u(out)}, [=, this] { cpu_->silu_mul(gate, up, n, out); });
    }
    void add(float* x, const float* y, int64_t n) override {
        plain("add", {u(x), u(y), (uint64_t)n}, [=, this] { cpu_->add(x, y, n); });
    }

private:
    enum class Mode { none, eager, recording, replaying };
    struct Call {
        const char* name;
        std::vector<uint64_t> sig;  // what the recorded launch keeps: its buffers and sizes
        std::unique_ptr<Staged> staged;
        std::function<void(const Staged&)> run;
    };
    struct Recording {
        int seen = 0;
        bool done = false;
        std::vector<Call> calls;
    };
    static Staged none() { return {}; }
    // An op without host arrays: the same call now or from the recording.
    void plain(const char* name, std::vector<uint64_t> sig, std::function<void()> fn) {
        op(name, std::move(sig), fn, none, [fn](const Staged&) { fn(); });
    }

    void outside_graph(const char* what) const {
        if (mode_ == Mode::recording || mode_ == Mode::replaying)
            fail(str("ReplayBackend: ", what, " inside a recorded or replayed step"));
    }
    // Abandons the open step (as the CUDA backend does when a step throws) and throws.
    [[noreturn]] void fail(const std::string& what) const {
        mode_ = Mode::none;
        throw Error(what);
    }

    // One op call: run it (eager), capture it with a copy of its host arrays (recording), or
    // copy its host arrays into the recorded call's copies (dry run).
    template <class Direct, class Stage>
    void op(const char* name, std::vector<uint64_t> sig, Direct direct, Stage stage,
            std::function<void(const Staged&)> run) {
        if (mode_ == Mode::none || mode_ == Mode::eager) return direct();
        Staged s;
        try {
            s = stage();
        } catch (const Error& e) {
            fail(e.what());
        }
        if (mode_ == Mode::recording) {
            rec_->calls.push_back({name, std::move(sig), std::make_unique<Staged>(std::move(s)), std::move(run)});
        } else {
            if (at_ >= rec_->calls.size())
                fail(str("dry run: op call ", at_, " (", name, ") is beyond the ", rec_->calls.size(),
                         " calls of the recording"));
            Call& c = rec_->calls[at_];
            if (c.name != std::string(name) || c.sig != sig)
                fail(str("dry run: op call ", at_, " (", name, ") differs from the recording (", c.name,
                         "): other buffers or sizes"));
            if (shape_of(s) != shape_of(*c.staged))
                fail(str("dry run: op call ", at_, " (", name,
                         ") stages host arrays of other lengths than its recording (", shape_of(s), "; recorded ",
                         shape_of(*c.staged), ")"));
            if (s.blocks_used != c.staged->blocks_used) table_changed_ = true;
            *c.staged = std::move(s);  // the views keep pointing into the moved tables
            ++at_;
        }
    }

    std::unique_ptr<Backend> cpu_;
    mutable Mode mode_ = Mode::none;
    std::map<uint64_t, Recording> graphs_;
    Recording* rec_ = nullptr;
    size_t at_ = 0;  // next call of a dry run
    bool table_changed_ = false;
    uint64_t last_key_ = 0;
    Counts counts_;
};

// One request of a lockstep run: joins the first free slot at step `arrive` or later, prefills
// its prompt (at least 2 tokens, so the prefill is never decode-shaped) and generates `gen`
// tokens greedily (the prefill step gives the first), then leaves.
struct Request {
    int arrive;
    std::vector<int32_t> prompt;
    int gen;
};

struct RunStats {
    int prefill = 0, mixed = 0, decode = 0;
    std::map<int64_t, int> replays_by_batch;  // decode batch size -> steps replayed
};

std::vector<int32_t> random_ids(int n, int64_t n_vocab, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<int32_t> v((size_t)n);
    for (int32_t& t : v) t = (int32_t)(rng() % (uint32_t)n_vocab);
    return v;
}

// Runs the requests through the reference model (plain CPU backend) and the model on rb, one step
// each in lockstep, tokens chosen from the reference's logits. Every step's logits must be
// bit-identical; prefill and mixed steps must run with key 0 and be neither recorded nor replayed.
RunStats run_lockstep(Model& ref, KvCache& kv_ref, Model& rep, KvCache& kv_rep, const ReplayBackend& rb,
                      const std::vector<Request>& reqs) {
    struct Active {
        int req = -1, produced = 0;
        int32_t last = 0;
    };
    std::vector<Active> slots((size_t)kv_ref.n_slots());
    size_t next = 0;
    const int64_t V = ref.config().n_vocab;
    RunStats st;
    for (int step = 0; step < 1000; ++step) {
        for (Active& a : slots)
            if (a.req < 0 && next < reqs.size() && reqs[next].arrive <= step) a = Active{(int)next++, 0, 0};
        ForwardBatch b;
        bool prompt = false, decode = false;
        for (size_t s = 0; s < slots.size(); ++s) {
            const Active& a = slots[s];
            if (a.req < 0) continue;
            if (a.produced == 0) {
                b.add((int)s, reqs[(size_t)a.req].prompt);
                prompt = true;
            } else {
                b.add((int)s, {&a.last, 1});
                decode = true;
            }
        }
        if (b.seqs.empty()) {
            if (next == reqs.size()) return st;
            continue;
        }
        const int64_t rows = b.n_logit_rows();
        std::vector<float> want((size_t)(rows * V)), got((size_t)(rows * V), -1.0f);
        const ReplayBackend::Counts before = rb.counts();
        ref.forward(b, kv_ref, want.data());
        rep.forward(b, kv_rep, got.data());
        const ReplayBackend::Counts after = rb.counts();
        EXPECT_TRUE(test::bit_equal(want, got)) << "step " << step << " (" << b.seqs.size() << " sequences, "
                                                << b.n_tokens() << " tokens): logits differ from the CPU backend's";
        if (prompt) {
            ++(decode ? st.mixed : st.prefill);
            EXPECT_EQ(rb.last_key(), 0u) << "step " << step << " (prefill or mixed) has a graph key";
            EXPECT_EQ(after.eager, before.eager + 1) << "step " << step;
            EXPECT_EQ(after.recorded, before.recorded) << "step " << step;
            EXPECT_EQ(after.replayed, before.replayed) << "step " << step;
        } else {
            ++st.decode;
            EXPECT_NE(rb.last_key(), 0u) << "decode step " << step << " has no graph key";
            if (after.replayed > before.replayed) ++st.replays_by_batch[(int64_t)b.seqs.size()];
        }
        if (testing::Test::HasFailure()) return st;
        for (size_t i = 0; i < b.seqs.size(); ++i) {
            Active& a = slots[(size_t)b.seqs[i].slot];
            const float* row = want.data() + i * V;
            a.last = (int32_t)(std::max_element(row, row + V) - row);
            if (++a.produced == reqs[(size_t)a.req].gen) {
                kv_ref.clear(b.seqs[i].slot);
                kv_rep.clear(b.seqs[i].slot);
                a = Active{};
            }
        }
    }
    ADD_FAILURE() << "the requests did not finish in 1000 steps";
    return st;
}

// One model on the plain CPU backend and the same on a ReplayBackend, each with a KV cache of
// block_size positions per block.
struct Pair {
    std::shared_ptr<ReplayBackend> rb;
    std::unique_ptr<Model> ref, rep;
    std::unique_ptr<KvCache> kv_ref, kv_rep;

    Pair(const ModelConfig& c, const TensorSource& src, WeightPolicy policy, int n_slots, int64_t max_length,
         int64_t block_size, DType kv_dtype = DType::dtype_f32, int n_threads = 1)
        : rb(std::make_shared<ReplayBackend>(n_threads)) {
        ref = std::make_unique<Model>(c, src, policy, n_threads);
        rep = std::make_unique<Model>(c, src, policy, rb);
        KvLayout layout = KvLayout::gqa(c);
        layout.dtype = kv_dtype;
        kv_ref = std::make_unique<BlockKvCache>(ref->backend(), layout, n_slots, max_length, block_size);
        kv_rep = std::make_unique<BlockKvCache>(*rb, layout, n_slots, max_length, block_size);
    }
    ~Pair() {  // the caches go back to their backends before the models (and backends) go
        kv_ref.reset();
        kv_rep.reset();
    }
    RunStats run(const std::vector<Request>& reqs) { return run_lockstep(*ref, *kv_ref, *rep, *kv_rep, *rb, reqs); }
};

// The tiny qwen2 config (q/k/v biases, GQA) with a third layer; the tests give it random weights.
ModelConfig tiny() {
    ModelConfig c = test::tiny_config();
    c.n_layer = 3;
    return c;
}

}  // namespace

// Three slots, sequences of different prompt lengths finishing and new ones joining: decode
// batches of 3 and 2 recur, each recorded once and then replayed, every step bit-identical to
// the CPU backend.
TEST(StepGraphs, ReplayedDecodeMatchesCpuAcrossChangingBatches) {
    const ModelConfig c = tiny();
    const test::MemorySource src = test::tiny_weights(c, 0.5f);
    Pair p(c, src, DType::dtype_f32, 3, 128, 16);
    const int64_t V = c.n_vocab;
    const RunStats st = p.run({{0, random_ids(5, V, 1), 8},
                               {0, random_ids(2, V, 2), 24},
                               {0, random_ids(7, V, 3), 14},
                               {11, random_ids(3, V, 4), 6},
                               {17, random_ids(4, V, 5), 7}});
    const ReplayBackend::Counts n = p.rb->counts();
    EXPECT_GE(st.decode, 20);
    EXPECT_GE(st.mixed, 2);
    EXPECT_EQ(n.recorded, 2) << "one recording per decode batch size (3 and 2)";
    EXPECT_GT(n.replayed, 10);
    EXPECT_GE(st.replays_by_batch.size(), 2u) << "replays of more than one batch size";
}

// Blocks of 4 positions: sequences cross block boundaries during replays (their block tables
// grow and, once a sequence leaves, blocks are reused by the next one), bf16 KV values.
TEST(StepGraphs, BlockTablesTravelThroughStagingAcrossBlockBoundaries) {
    const ModelConfig c = tiny();
    const test::MemorySource src = test::tiny_weights(c, 0.5f);
    Pair p(c, src, DType::dtype_f32, 2, 64, 4, DType::dtype_bf16);
    const int64_t V = c.n_vocab;
    p.run({{0, random_ids(3, V, 11), 30}, {0, random_ids(6, V, 12), 20}, {21, random_ids(5, V, 13), 9}});
    const ReplayBackend::Counts n = p.rb->counts();
    EXPECT_GT(n.replayed, 20);
    EXPECT_GE(n.table_changes, 5) << "replayed steps whose sequences crossed into a new block";
}

// A prompt longer than any step before grows the model's workspace: decode steps of the same
// batch size after it run on new buffers, so they get a new key and are recorded again.
TEST(StepGraphs, DecodeIsRecordedAgainAfterTheWorkspaceGrows) {
    const ModelConfig c = tiny();
    const test::MemorySource src = test::tiny_weights(c, 0.5f);
    Pair p(c, src, DType::dtype_f32, 3, 128, 16);
    const int64_t V = c.n_vocab;
    // Decode of 2 at steps 1-5, a 40-token prompt joins at step 6 and leaves, decode of 2 at 7-13.
    const RunStats st =
        p.run({{0, random_ids(2, V, 61), 14}, {0, random_ids(3, V, 62), 14}, {6, random_ids(40, V, 63), 1}});
    EXPECT_EQ(st.decode, 12);
    EXPECT_EQ(st.mixed, 1);
    const ReplayBackend::Counts n = p.rb->counts();
    EXPECT_EQ(n.recorded, 2);
    EXPECT_EQ(n.replayed, 3 + 5);
}

// Prefill and mixed steps get key 0 even when the same shapes repeat: they run eagerly every
// time. A repeated decode shape on the same model is recorded and replayed.
TEST(StepGraphs, PrefillAndMixedStepsAreNeverRecorded) {
    const ModelConfig c = tiny();
    const test::MemorySource src = test::tiny_weights(c, 0.5f);
    Pair p(c, src, DType::dtype_f32, 3, 128, 16);
    const int64_t V = c.n_vocab;
    // Three identical prefills of two 3-token prompts, one pair per step (each leaves after it).
    std::vector<Request> prefills;
    for (int i = 0; i < 3; ++i)
        for (int s = 0; s < 2; ++s) prefills.push_back({i, random_ids(3, V, 20 + s), 1});
    RunStats st = p.run(prefills);
    EXPECT_EQ(st.prefill, 3);
    EXPECT_EQ(st.decode, 0);
    ReplayBackend::Counts n = p.rb->counts();
    EXPECT_EQ(n.eager, 3);
    EXPECT_EQ(n.recorded, 0);
    EXPECT_EQ(n.replayed, 0);

    // One long sequence decoding while 2-token prompts join another slot one after another,
    // each leaving after its prefill: every step after the first is a mixed step of one shape.
    std::vector<Request> mixed{{0, random_ids(4, V, 30), 7}};
    for (int i = 0; i < 6; ++i) mixed.push_back({1 + i, random_ids(2, V, 31 + i), 1});
    st = p.run(mixed);
    EXPECT_EQ(st.prefill, 1);
    EXPECT_EQ(st.mixed, 6);
    EXPECT_EQ(st.decode, 0);
    n = p.rb->counts();
    EXPECT_EQ(n.eager, 3 + 7);
    EXPECT_EQ(n.recorded, 0);
    EXPECT_EQ(n.replayed, 0);

    // Decode steps of one shape on the same backend: eager, recorded, then replayed.
    st = p.run({{0, random_ids(3, V, 40), 5}, {0, random_ids(2, V, 41), 5}});
    EXPECT_EQ(st.decode, 4);
    n = p.rb->counts();
    EXPECT_EQ(n.eager, 3 + 7 + 1 + 1);
    EXPECT_EQ(n.recorded, 1);
    EXPECT_EQ(n.replayed, 2);
}

// The emulation itself: a dry run computes the new positions from its staging copies, and a step
// whose calls differ from its recording, or an unclosed step, fails loudly.
TEST(StepGraphs, ReplayBackendRejectsAStepUnlikeItsRecording) {
    ReplayBackend rb(1);
    auto cpu = make_cpu_backend(1);
    const int64_t hd = 4;
    BackendBuffer cs(*cpu, sizeof(float) * 3 * hd);  // host memory, freed after the failed step
    auto step = [&](std::vector<int32_t> pos) {
        rb.begin_step(42);
        rb.rope_table(pos.data(), (int64_t)pos.size(), hd, 1e4, cs.f32());
        pos.assign(pos.size(), -7);  // the caller's array is gone when the closures run
        rb.end_step();
    };
    std::vector<float> want(2 * hd);
    for (const std::vector<int32_t>& pos : {std::vector<int32_t>{0, 1}, {1, 2}, {5, 9}}) {
        step(pos);
        cpu->rope_table(pos.data(), 2, hd, 1e4, want.data());
        EXPECT_EQ(0, std::memcmp(want.data(), cs.f32(), sizeof(float) * 2 * hd)) << "positions " << pos[0];
    }
    const ReplayBackend::Counts n = rb.counts();
    EXPECT_EQ(n.eager, 1);
    EXPECT_EQ(n.recorded, 1);
    EXPECT_EQ(n.replayed, 1);
    test::expect_has(test::error_of([&] { step({0, 1, 2}); }), {"rope_table", "differs from the recording"});

    ReplayBackend rb2(1);
    rb2.begin_step(0);
    test::expect_has(test::error_of([&] { rb2.begin_step(0); }), {"no end_step"});
}

// The same on SmolLM2-135M (Q4_1 weights as stored, 30 layers), when the model file is present.
TEST(StepGraphs, SmolLM2ReplayedDecodeMatchesCpu) {
    const std::string path = test::models_dir() + "/" + test::smollm2_gguf;
    if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " not found";
    auto file = std::make_shared<const GgufFile>(path);
    const GgufTensorSource src(file);
    const ModelConfig c = gguf_model_config(*file);
    Pair p(c, src, WeightPolicy::keep_stored(), 3, 256, 8, DType::dtype_f32, 2);
    const int64_t V = c.n_vocab;
    // Decode batches of 3 (steps 1-5), 2 (6-8) and 1 (9-11): each recorded once.
    const RunStats st =
        p.run({{0, random_ids(6, V, 51), 6}, {0, random_ids(3, V, 52), 12}, {0, random_ids(9, V, 53), 9}});
    EXPECT_EQ(st.decode, 11);
    const ReplayBackend::Counts n = p.rb->counts();
    EXPECT_EQ(n.recorded, 3);
    EXPECT_EQ(n.replayed, 5);
}
