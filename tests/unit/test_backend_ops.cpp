// Conformance of every Backend op on every backend in the registry (engine/backend/registry.h),
// called through the interface and checked against double-precision references written here.
// Tensors move in and out with copy_from_host / copy_to_host, so a device backend runs unchanged;
// index arrays (token ids, positions, sequences) stay in host memory, as the model passes them.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "engine/backend/cpu/cpu_ops.h"
#include "engine/backend/registry.h"
#include "engine/core/dtype.h"
#include "engine/core/error.h"
#include "engine/kv/kv_cache.h"
#include "test_support.h"

namespace gridlm {
// Failure messages show a backend by its name.
void PrintTo(const BackendKind& kind, std::ostream* os) { *os << kind.name; }
}  // namespace gridlm

using namespace gridlm;

namespace {

// Tolerances. Matmul outputs may differ from the reference by tol * (sum_i |w_i x_i| + |bias|).
// f32 weights: backends sum in f32 in any order (SIMD lanes, blocked GEMM, split sums on a GPU);
// such a sum is off by at most ~cols * 2^-24 of that magnitude, under 1e-5 for the widths here.
constexpr double tol_matmul_f32 = 1e-5;
// bf16 weights: the reference widens the very bf16 values the backend reads (exactly: a bf16 is
// the top half of an f32), so only the summation order differs and the f32 bound applies.
constexpr double tol_matmul_bf16 = 1e-5;
// f16 weights: matmul rejects them (not supported yet); embedding widens them exactly, as it does
// f32 and bf16, so embedding rows are compared bit for bit.
// Element-wise ops (rmsnorm, rope, silu_mul): a few f32 roundings each, relative to the operands.
constexpr double tol_elementwise = 1e-6;
// RoPE tables, absolute: angles must be taken in double (a float angle at position 32767 is off by
// ~1e-3 rad); only the final rounding of cos / sin to f32 remains.
constexpr double tol_rope_table = 1e-6;
// Attention, relative to 1 + max |v|: f32 dot products, exp and a weighted sum of <= 10 rows.
constexpr double tol_attention = 1e-5;

// Inputs rounded to 16 bits first (Backend::matmul_input_type: tensor-core GEMMs) add the
// rounding of each x_i, relative 2^-8 for bf16 and 2^-11 for f16, to every product.
constexpr double tol_input_bf16 = 1.0 / 256, tol_input_f16 = 1.0 / 2048;
double tol_matmul(DType dtype, DType input) {
    const double sum = dtype == DType::dtype_bf16 ? tol_matmul_bf16 : tol_matmul_f32;
    return sum + (input == DType::dtype_bf16 ? tol_input_bf16 : input == DType::dtype_f16 ? tol_input_f16 : 0.0);
}

// Host threads per backend: 3 splits rows unevenly across threads.
constexpr int test_threads = 3;

using test::randn;

// Checks |got[i] - ref[i]| <= bound[i] for all i (NaN fails); reports the count and the first few.
void expect_close(const std::vector<float>& got, const std::vector<double>& ref, const std::vector<double>& bound,
                  const std::string& what) {
    ASSERT_EQ(got.size(), ref.size()) << what;
    size_t bad = 0;
    std::string first;
    for (size_t i = 0; i < got.size(); ++i) {
        if (std::fabs(got[i] - ref[i]) <= bound[i]) continue;
        if (++bad <= 4) first += str("\n  [", i, "] got ", got[i], ", want ", ref[i], " +- ", bound[i]);
    }
    if (bad > 0) ADD_FAILURE() << what << ": " << bad << " of " << got.size() << " values off" << first;
}

// A tensor in backend memory, filled from host values; read() copies it back.
template <typename T>
class DeviceTensor {
public:
    DeviceTensor(Backend& be, const std::vector<T>& host) : be_(&be), n_(host.size()), buf_(be, n_ * sizeof(T)) {
        be.copy_from_host(buf_.data(), host.data(), n_ * sizeof(T));
    }
    T* data() const { return static_cast<T*>(buf_.data()); }
    std::vector<T> read() const {
        std::vector<T> host(n_);
        be_->copy_to_host(host.data(), buf_.data(), n_ * sizeof(T));
        return host;
    }

private:
    Backend* be_;
    size_t n_;
    BackendBuffer buf_;
};

// An output tensor, filled with NaN so that values a backend leaves unwritten fail the checks.
DeviceTensor<float> output(Backend& be, size_t n) { return DeviceTensor<float>(be, std::vector<float>(n, NAN)); }

// A weight matrix of random values rounded to dtype. values: [rows, cols] as the backend must read
// them; bytes: [rows, cols] of dtype, what it is given.
struct HostWeight {
    DType dtype;
    int64_t rows, cols;
    std::vector<float> values;
    std::vector<uint8_t> bytes;
};

HostWeight host_weight(DType dtype, int64_t rows, int64_t cols, uint32_t seed) {
    HostWeight h{dtype, rows, cols, randn(rows * cols, seed), std::vector<uint8_t>(rows * cols * dtype_size(dtype))};
    for (size_t i = 0; i < h.values.size(); ++i) {
        float& v = h.values[i];
        if (dtype == DType::dtype_f32) {
            std::memcpy(h.bytes.data() + 4 * i, &v, 4);
            continue;
        }
        const uint16_t b = dtype == DType::dtype_bf16 ? f32_to_bf16(v) : f32_to_f16(v);
        v = dtype == DType::dtype_bf16 ? bf16_to_f32(b) : f16_to_f32(b);
        std::memcpy(h.bytes.data() + 2 * i, &b, 2);
    }
    return h;
}

// A host weight copied to backend memory.
struct DeviceWeight {
    DeviceTensor<uint8_t> mem;
    Weight w;
    DeviceWeight(Backend& be, const HostWeight& h)
        : mem(be, h.bytes), w(Weight{.dtype = h.dtype, .rows = h.rows, .cols = h.cols, .data = mem.data()}) {}
};

// Checks y = x W^T (+ bias) against double sums.  x: [n, cols]; bias: [rows] or null; y: [n, rows]
void expect_matmul(const Backend& be, const std::vector<float>& y, const std::vector<float>& x, const HostWeight& w,
                   const std::vector<float>* bias, int64_t n, const std::string& what) {
    const double tol = tol_matmul(w.dtype, be.matmul_input_type(w.dtype));
    std::vector<double> ref(n * w.rows), bound(n * w.rows);
    for (int64_t t = 0; t < n; ++t) {
        for (int64_t r = 0; r < w.rows; ++r) {
            double sum = bias ? (*bias)[r] : 0.0, mag = bias ? std::fabs((*bias)[r]) : 0.0;
            for (int64_t i = 0; i < w.cols; ++i) {
                const double p = (double)w.values[r * w.cols + i] * x[t * w.cols + i];
                sum += p;
                mag += std::fabs(p);
            }
            ref[t * w.rows + r] = sum;
            bound[t * w.rows + r] = tol * mag;
        }
    }
    expect_close(y, ref, bound, what);
}

// Runs each test on one backend of the registry; a backend that cannot run here is skipped with
// the registry's reason.
class BackendOps : public ::testing::TestWithParam<BackendKind> {
protected:
    void SetUp() override {
        const BackendKind& kind = GetParam();
        if (!kind.unavailable.empty()) GTEST_SKIP() << "backend " << kind.name << ": " << kind.unavailable;
        backend_ = kind.make(test_threads);
        ASSERT_NE(backend_, nullptr);
    }
    Backend& be() { return *backend_; }

    // One attention scenario, checked by check_attention (below).
    struct AttentionCase {
        int64_t n_head = 0, n_head_kv = 0, head_dim = 0;
        int64_t v_head_dim = 0;  // 0: head_dim
        bool latent = false;     // one KV head whose K row also serves as V (v_row == 0)
        float scale = 0.f;       // 0: 1 / sqrt(head_dim)
    };
    void check_attention(const AttentionCase& c);

private:
    std::unique_ptr<Backend> backend_;
};

TEST_P(BackendOps, MemoryRoundTrip) {
    EXPECT_EQ(be().name(), GetParam().name);
    const size_t n = 1000;  // not a multiple of 64
    std::vector<uint8_t> src(n);
    for (size_t i = 0; i < n; ++i) src[i] = (uint8_t)(i * 7 + 3);
    auto* a = static_cast<uint8_t*>(be().alloc(n));
    auto* b = static_cast<uint8_t*>(be().alloc(n + 64));
    EXPECT_EQ((uintptr_t)a % 64, 0u);
    EXPECT_EQ((uintptr_t)b % 64, 0u);
    be().copy_from_host(a, src.data(), n);
    be().copy(b + 13, a, n);  // within backend memory, to an unaligned offset (the model copies rows)
    std::vector<uint8_t> back(n), part(100);
    be().copy_to_host(back.data(), b + 13, n);
    EXPECT_EQ(back, src);
    be().copy_to_host(part.data(), a + 500, part.size());
    EXPECT_TRUE(std::equal(part.begin(), part.end(), src.begin() + 500));
    be().free(a);
    be().free(b);
    be().free(nullptr);
}

// Whole tables and a vocabulary shard (rows of ids 9..16: other ids give zero rows), every dtype.
TEST_P(BackendOps, Embedding) {
    const int64_t vocab = 23, d = 37;
    const std::vector<int32_t> ids = {3, 9, 22, 0, 16, 17, 8, 12, 9};
    const int64_t n = (int64_t)ids.size();
    for (DType dtype : {DType::dtype_f32, DType::dtype_bf16, DType::dtype_f16}) {
        const HostWeight table = host_weight(dtype, vocab, d, 1);
        const std::pair<int64_t, int64_t> shards[] = {{0, vocab}, {9, 8}};  // first id, rows
        for (const auto& [id0, rows] : shards) {
            const size_t row_bytes = d * dtype_size(dtype);
            const DeviceTensor<uint8_t> mem(be(), std::vector<uint8_t>(table.bytes.begin() + id0 * row_bytes,
                                                                       table.bytes.begin() + (id0 + rows) * row_bytes));
            const Weight shard{.dtype = dtype, .rows = rows, .cols = d, .data = mem.data()};
            auto out = output(be(), n * d);
            be().embedding(shard, id0, ids.data(), n, out.data());
            const std::vector<float> got = out.read();
            std::vector<float> want(n * d, 0.f);
            for (int64_t t = 0; t < n; ++t)
                if (ids[t] >= id0 && ids[t] < id0 + rows) std::copy_n(&table.values[ids[t] * d], d, &want[t * d]);
            EXPECT_EQ(got, want) << dtype_name(dtype) << " rows " << id0 << ".." << id0 + rows - 1;
        }
        const DeviceWeight whole(be(), table);
        auto out = output(be(), d);
        const int32_t bad = -3;
        test::expect_has(test::error_of([&] { be().embedding(whole.w, 0, &bad, 1, out.data()); }), {"-3"});
    }
}

// Odd widths, one row and several, in place as the model's final norm runs it; rows small enough
// (scale 0.003) for eps to matter.
TEST_P(BackendOps, RmsNorm) {
    struct Shape {
        int64_t rows, cols;
        float scale;
    };
    for (const Shape& sh : {Shape{1, 67, 3.0f}, Shape{5, 67, 3.0f}, Shape{3, 576, 1.0f}, Shape{2, 67, 0.003f}}) {
        const int64_t rows = sh.rows, cols = sh.cols;
        const auto x = randn(rows * cols, 2, sh.scale), w = randn(cols, 3);
        const float eps = 1e-5f;
        std::vector<double> ref(rows * cols), bound(rows * cols);
        for (int64_t r = 0; r < rows; ++r) {
            double ss = 0;
            for (int64_t i = 0; i < cols; ++i) ss += (double)x[r * cols + i] * x[r * cols + i];
            const double s = 1.0 / std::sqrt(ss / cols + eps);
            for (int64_t i = 0; i < cols; ++i) {
                ref[r * cols + i] = x[r * cols + i] * s * w[i];
                bound[r * cols + i] = tol_elementwise * (1 + std::fabs(ref[r * cols + i]));
            }
        }
        DeviceTensor<float> dx(be(), x);
        const DeviceTensor<float> dw(be(), w);
        auto out = output(be(), rows * cols);
        be().rmsnorm(dx.data(), dw.data(), rows, cols, eps, out.data());
        expect_close(out.read(), ref, bound, str("rmsnorm ", rows, "x", cols, " scale ", sh.scale));
        be().rmsnorm(dx.data(), dw.data(), rows, cols, eps, dx.data());
        expect_close(dx.read(), ref, bound, str("rmsnorm in place ", rows, "x", cols, " scale ", sh.scale));
    }
}

// 1..7 tokens (the CPU's GEMV path up to 4, GEMM above), widths with and without a SIMD remainder,
// 37 rows (not a multiple of any tile), with and without bias, f32 and bf16 weights.
TEST_P(BackendOps, Matmul) {
    const int64_t rows = 37;
    for (DType dtype : {DType::dtype_f32, DType::dtype_bf16}) {
        for (int64_t cols : {67, 128}) {
            const HostWeight hw = host_weight(dtype, rows, cols, 10 + (uint32_t)cols);
            const DeviceWeight w(be(), hw);
            const auto bias = randn(rows, 11);
            const DeviceTensor<float> dbias(be(), bias);
            // 1..7 rows: a GPU's decode GEMV; 16 and 33: its GEMM (the CPU runs one kernel for all).
            for (int64_t n : {1, 2, 3, 4, 5, 6, 7, 16, 33}) {
                const auto x = randn(n * cols, 20 + (uint32_t)n);
                const DeviceTensor<float> dx(be(), x);
                for (bool with_bias : {false, true}) {
                    auto y = output(be(), n * rows);
                    be().matmul(dx.data(), w.w, with_bias ? dbias.data() : nullptr, n, y.data());
                    expect_matmul(be(), y.read(), x, hw, with_bias ? &bias : nullptr, n,
                                  str(dtype_name(dtype), " cols ", cols, " n ", n, with_bias ? " bias" : ""));
                }
            }
        }
    }
}

// f16 weights are not supported by matmul yet: a user error, alone or among others.
// f16 weights: multiplied where the backend says it supports them (the same result as f32 weights
// holding the widened values), else refused naming the type, alone or in a multi-matmul.
TEST_P(BackendOps, MatmulF16WeightsFollowSupportsWeight) {
    const int64_t rows = 5, cols = 9, n = 2;
    const HostWeight h16 = host_weight(DType::dtype_f16, rows, cols, 12);
    HostWeight h16_as_f32 = host_weight(DType::dtype_f32, rows, cols, 12);
    h16_as_f32.values = h16.values;
    std::memcpy(h16_as_f32.bytes.data(), h16.values.data(), h16.values.size() * sizeof(float));
    const DeviceWeight w16(be(), h16), w32(be(), h16_as_f32);
    const DeviceTensor<float> x(be(), randn(n * cols, 14));
    auto y = output(be(), n * rows), y2 = output(be(), n * rows);
    if (!be().supports_weight(DType::dtype_f16)) {
        test::expect_has(test::error_of([&] { be().matmul(x.data(), w16.w, nullptr, n, y.data()); }), {"f16"});
        test::expect_has(test::error_of([&] {
                             be().matmul_multi(
                                 x.data(), n,
                                 {MatmulOut{.w = w32.w, .y = y.data()}, MatmulOut{.w = w16.w, .y = y2.data()}});
                         }),
                         {"f16"});
        return;
    }
    be().matmul_multi(x.data(), n, {MatmulOut{.w = w32.w, .y = y.data()}, MatmulOut{.w = w16.w, .y = y2.data()}});
    const std::vector<float> a = y.read(), b = y2.read();
    for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-5f * (1 + std::fabs(a[i]))) << i;
}

// q/k/v-like (three outputs of different heights and dtypes, bias on two) and gate/up-like (two
// outputs) in one call each, on both CPU paths.
TEST_P(BackendOps, MatmulMulti) {
    const int64_t cols = 67;
    const HostWeight hq = host_weight(DType::dtype_f32, 21, cols, 30),
                     hk = host_weight(DType::dtype_bf16, 33, cols, 31),
                     hv = host_weight(DType::dtype_f32, 50, cols, 32),
                     hg = host_weight(DType::dtype_bf16, 45, cols, 33),
                     hu = host_weight(DType::dtype_bf16, 45, cols, 34);
    const DeviceWeight q(be(), hq), k(be(), hk), v(be(), hv), g(be(), hg), u(be(), hu);
    const auto bq = randn(21, 35), bv = randn(50, 36);
    const DeviceTensor<float> dbq(be(), bq), dbv(be(), bv);
    for (int64_t n : {1, 3, 4, 5, 7, 12}) {
        const auto x = randn(n * cols, 40 + (uint32_t)n);
        const DeviceTensor<float> dx(be(), x);
        auto yq = output(be(), n * 21), yk = output(be(), n * 33), yv = output(be(), n * 50);
        be().matmul_multi(dx.data(), n,
                          {MatmulOut{.w = q.w, .bias = dbq.data(), .y = yq.data()}, MatmulOut{.w = k.w, .y = yk.data()},
                           MatmulOut{.w = v.w, .bias = dbv.data(), .y = yv.data()}});
        expect_matmul(be(), yq.read(), x, hq, &bq, n, str("q n ", n));
        expect_matmul(be(), yk.read(), x, hk, nullptr, n, str("k n ", n));
        expect_matmul(be(), yv.read(), x, hv, &bv, n, str("v n ", n));
        auto yg = output(be(), n * 45), yu = output(be(), n * 45);
        be().matmul_multi(dx.data(), n, {MatmulOut{.w = g.w, .y = yg.data()}, MatmulOut{.w = u.w, .y = yu.data()}});
        expect_matmul(be(), yg.read(), x, hg, nullptr, n, str("gate n ", n));
        expect_matmul(be(), yu.read(), x, hu, nullptr, n, str("up n ", n));
    }
}

// cos then sin of pos * theta^(-2i / head_dim), up to a long-context position.
TEST_P(BackendOps, RopeTable) {
    const std::vector<int32_t> pos = {0, 1, 7, 63, 1000, 32767};
    const int64_t n = (int64_t)pos.size();
    for (int64_t hd : {14, 64}) {
        for (double theta : {10000.0, 1000000.0}) {
            std::vector<double> ref(n * hd);
            for (int64_t t = 0; t < n; ++t)
                for (int64_t i = 0; i < hd / 2; ++i) {
                    const double a = pos[t] * std::pow(theta, -2.0 * i / hd);
                    ref[t * hd + i] = std::cos(a);
                    ref[t * hd + hd / 2 + i] = std::sin(a);
                }
            auto cs = output(be(), n * hd);
            be().rope_table(pos.data(), n, hd, theta, cs.data());
            expect_close(cs.read(), ref, std::vector<double>(n * hd, tol_rope_table),
                         str("rope table head_dim ", hd, " theta ", theta));
        }
    }
}

// Rotate-half on every head, for a half width that is not a multiple of 8 and one that is.
TEST_P(BackendOps, Rope) {
    const int64_t n = 5, heads = 3;
    for (int64_t hd : {14, 64}) {
        const std::vector<int32_t> pos = {0, 3, 17, 400, 9000};
        std::vector<float> cs(n * hd);
        for (int64_t t = 0; t < n; ++t)
            for (int64_t i = 0; i < hd / 2; ++i) {
                const double a = pos[t] * std::pow(10000.0, -2.0 * i / hd);
                cs[t * hd + i] = (float)std::cos(a);
                cs[t * hd + hd / 2 + i] = (float)std::sin(a);
            }
        const auto x = randn(n * heads * hd, 50 + (uint32_t)hd, 2.0f);
        std::vector<double> ref(x.size()), bound(x.size());
        for (int64_t t = 0; t < n; ++t)
            for (int64_t h = 0; h < heads; ++h)
                for (int64_t i = 0; i < hd / 2; ++i) {
                    const int64_t at = (t * heads + h) * hd + i, bt = at + hd / 2;
                    const double c = cs[t * hd + i], s = cs[t * hd + hd / 2 + i], a = x[at], b = x[bt];
                    ref[at] = a * c - b * s;
                    ref[bt] = b * c + a * s;
                    bound[at] = bound[bt] = tol_elementwise * (1 + std::fabs(a) + std::fabs(b));
                }
        const DeviceTensor<float> dcs(be(), cs);
        DeviceTensor<float> dx(be(), x);
        be().rope(dx.data(), dcs.data(), n, heads, hd);
        expect_close(dx.read(), ref, bound, str("rope head_dim ", hd));
    }
}

// silu(gate) * up into a separate output and in place over gate (as the MLP runs it); x += y.
TEST_P(BackendOps, SiluMulAndAdd) {
    const int64_t n = 1001;
    const auto g = randn(n, 60, 4.0f), u = randn(n, 61);
    std::vector<double> ref(n), bound(n);
    for (int64_t i = 0; i < n; ++i) {
        ref[i] = g[i] / (1.0 + std::exp(-(double)g[i])) * u[i];
        bound[i] = tol_elementwise * (1 + std::fabs(ref[i]));
    }
    DeviceTensor<float> dg(be(), g);
    const DeviceTensor<float> du(be(), u);
    auto out = output(be(), n);
    be().silu_mul(dg.data(), du.data(), n, out.data());
    expect_close(out.read(), ref, bound, "silu_mul");
    be().silu_mul(dg.data(), du.data(), n, dg.data());
    expect_close(dg.read(), ref, bound, "silu_mul in place");

    const auto x = randn(n, 62), y = randn(n, 63);
    DeviceTensor<float> dx(be(), x);
    const DeviceTensor<float> dy(be(), y);
    be().add(dx.data(), dy.data(), n);
    std::vector<float> want(n);
    for (int64_t i = 0; i < n; ++i) want[i] = x[i] + y[i];  // one f32 rounding, the same on every backend
    EXPECT_EQ(dx.read(), want);
}

// What a cache should hold, per slot and layer: the K and V rows stored so far.  k: [len, k_row];
// v: [len, v_row]
struct KvHistory {
    std::vector<std::vector<std::vector<float>>> k, v;  // [slot][layer]
    KvHistory(int n_slots, int64_t n_layer)
        : k(n_slots, std::vector<std::vector<float>>(n_layer)), v(n_slots, std::vector<std::vector<float>>(n_layer)) {}
};

// One step of kv_store calls, one per layer: n_new[s] tokens for slot s (slots with none are left
// out), rows in slot order. Reserves, stores random rows, records them in hist and commits.
void store_step(Backend& be, BlockKvCache& cache, const KvLayout& layout, const std::vector<int64_t>& n_new,
                KvHistory& hist, uint32_t seed) {
    std::vector<int> slots;
    int64_t n_tokens = 0;
    for (int s = 0; s < (int)n_new.size(); ++s)
        if (n_new[s] > 0) {
            cache.reserve(s, n_new[s]);
            slots.push_back(s);
            n_tokens += n_new[s];
        }
    for (int64_t layer = 0; layer < layout.n_layer; ++layer) {
        const auto k = randn(n_tokens * layout.k_row, seed + 2 * (uint32_t)layer);
        const auto v = randn(n_tokens * std::max<int64_t>(layout.v_row, 1), seed + 2 * (uint32_t)layer + 1);
        std::vector<AttentionSeq> seqs;
        int64_t off = 0;
        for (int s : slots) {
            seqs.push_back({off, n_new[s], cache.length(s), cache.view(s, (int)layer)});
            auto& hk = hist.k[s][layer];
            hk.insert(hk.end(), k.begin() + off * layout.k_row, k.begin() + (off + n_new[s]) * layout.k_row);
            auto& hv = hist.v[s][layer];
            hv.insert(hv.end(), v.begin() + off * layout.v_row, v.begin() + (off + n_new[s]) * layout.v_row);
            off += n_new[s];
        }
        const DeviceTensor<float> dk(be, k), dv(be, v);
        be.kv_store(dk.data(), layout.v_row > 0 ? dv.data() : nullptr, seqs.data(), (int64_t)seqs.size());
    }
    for (int s : slots) cache.commit(s, n_new[s]);
}

// Every stored row of every slot and layer, read back through the cache's views.
void expect_cache_holds(Backend& be, const BlockKvCache& cache, const KvLayout& layout, const KvHistory& hist) {
    for (int s = 0; s < cache.n_slots(); ++s)
        for (int layer = 0; layer < (int)layout.n_layer; ++layer) {
            const KvSeqView view = cache.view(s, layer);
            std::vector<float> k(cache.length(s) * layout.k_row), v(cache.length(s) * layout.v_row);
            for (int64_t p = 0; p < cache.length(s); ++p) {
                be.copy_to_host(&k[p * layout.k_row], view.k(p), layout.k_row * sizeof(float));
                if (layout.v_row > 0) be.copy_to_host(&v[p * layout.v_row], view.v(p), layout.v_row * sizeof(float));
            }
            EXPECT_EQ(k, hist.k[s][layer]) << "K of slot " << s << " layer " << layer;
            EXPECT_EQ(v, hist.v[s][layer]) << "V of slot " << s << " layer " << layer;
        }
}

// Blocks of 4 positions; prefills and decodes that cross block boundaries, in every layer, for
// equal K and V rows, different ones and a latent cache (no V row).
TEST_P(BackendOps, KvStore) {
    for (const KvLayout layout :
         {KvLayout{.n_layer = 2, .k_row = 24, .v_row = 24}, KvLayout{.n_layer = 2, .k_row = 40, .v_row = 24},
          KvLayout{.n_layer = 3, .k_row = 21, .v_row = 0}}) {
        SCOPED_TRACE(str("K row ", layout.k_row, ", V row ", layout.v_row));
        BlockKvCache cache(be(), layout, 3, 32, 4);
        KvHistory hist(3, layout.n_layer);
        store_step(be(), cache, layout, {6, 3, 0}, hist, 70);
        store_step(be(), cache, layout, {2, 5, 1}, hist, 80);
        store_step(be(), cache, layout, {1, 1, 9}, hist, 90);
        expect_cache_holds(be(), cache, layout, hist);
    }
}

// Layer 1 of a two-layer cache in blocks of 4 positions. One call attends for: slot 0, a decode at
// position 9 (two block boundaries behind it); slot 1, a 7-token prefill; slot 2, a decode at
// position 4 (the first row of a block); slot 3, a 3-token chunk from position 5 across a boundary.
void BackendOps::check_attention(const AttentionCase& c) {
    const int64_t hd = c.head_dim, vd = c.v_head_dim > 0 ? c.v_head_dim : c.head_dim, nh = c.n_head;
    const float scale = c.scale > 0 ? c.scale : 1.0f / std::sqrt((float)hd);
    const KvLayout layout = c.latent ? KvLayout{.n_layer = 2, .k_row = hd, .v_row = 0}
                                     : KvLayout{.n_layer = 2, .k_row = c.n_head_kv * hd, .v_row = c.n_head_kv * vd};
    const int layer = 1;
    BlockKvCache cache(be(), layout, 4, 32, 4);
    KvHistory hist(4, layout.n_layer);
    store_step(be(), cache, layout, {9, 0, 4, 5}, hist, 100);
    const std::vector<int64_t> n_new = {1, 7, 1, 3};
    store_step(be(), cache, layout, n_new, hist, 110);
    std::vector<AttentionSeq> seqs;
    int64_t n_tokens = 0;
    for (int s = 0; s < 4; ++s) {
        seqs.push_back({n_tokens, n_new[s], cache.length(s) - n_new[s], cache.view(s, layer)});
        n_tokens += n_new[s];
    }

    const auto q = randn(n_tokens * nh * hd, 120);
    std::vector<double> ref(n_tokens * nh * vd);
    double max_v = 0;
    for (int s = 0; s < 4; ++s) {
        const std::vector<float>& k = hist.k[s][layer];
        const std::vector<float>& v = c.latent ? k : hist.v[s][layer];  // latent: V is the K row's start
        const int64_t v_row = c.latent ? layout.k_row : layout.v_row;
        for (float x : v) max_v = std::max(max_v, (double)std::fabs(x));
        for (int64_t t = 0; t < seqs[s].n_new; ++t) {
            const int64_t row = seqs[s].token_offset + t, n_ctx = seqs[s].pos0 + t + 1;
            for (int64_t h = 0; h < nh; ++h) {
                const int64_t g = h / (nh / c.n_head_kv);
                std::vector<double> p(n_ctx);
                double max_s = -INFINITY, sum = 0;
                for (int64_t j = 0; j < n_ctx; ++j) {
                    double dot = 0;
                    for (int64_t i = 0; i < hd; ++i)
                        dot += (double)q[(row * nh + h) * hd + i] * k[j * layout.k_row + g * hd + i];
                    p[j] = dot * scale;
                    max_s = std::max(max_s, p[j]);
                }
                for (double& x : p) sum += (x = std::exp(x - max_s));
                for (int64_t i = 0; i < vd; ++i) {
                    double o = 0;
                    for (int64_t j = 0; j < n_ctx; ++j) o += p[j] / sum * v[j * v_row + g * vd + i];
                    ref[(row * nh + h) * vd + i] = o;
                }
            }
        }
    }

    const DeviceTensor<float> dq(be(), q);
    auto out = output(be(), n_tokens * nh * vd);
    const AttentionShape shape{
        .n_head = nh, .n_head_kv = c.n_head_kv, .head_dim = hd, .scale = scale, .v_head_dim = c.v_head_dim};
    be().attention(dq.data(), seqs.data(), (int64_t)seqs.size(), shape, out.data());
    expect_close(out.read(), ref, std::vector<double>(ref.size(), tol_attention * (1 + max_v)),
                 str("attention n_head ", nh, " n_head_kv ", c.n_head_kv, " head_dim ", hd, " v_head_dim ", vd,
                     c.latent ? " latent" : ""));
}

// Query heads per KV head 1, 2 and 4; head widths with and without a SIMD remainder.
TEST_P(BackendOps, AttentionGqa) {
    check_attention({.n_head = 3, .n_head_kv = 3, .head_dim = 19});
    check_attention({.n_head = 4, .n_head_kv = 2, .head_dim = 16});
    check_attention({.n_head = 8, .n_head_kv = 2, .head_dim = 40});
}

// Value heads narrower and wider than key heads (K and V rows of different widths).
TEST_P(BackendOps, AttentionValueHeadWidth) {
    check_attention({.n_head = 4, .n_head_kv = 2, .head_dim = 24, .v_head_dim = 16});
    check_attention({.n_head = 6, .n_head_kv = 3, .head_dim = 12, .v_head_dim = 20});
}

// A latent cache: one KV head, no V row, V = the first v_head_dim values of the K row; a scale
// that is not 1 / sqrt(head_dim), as in MLA.
TEST_P(BackendOps, AttentionLatent) {
    check_attention({.n_head = 5, .n_head_kv = 1, .head_dim = 36, .v_head_dim = 28, .latent = true, .scale = 0.125f});
}

INSTANTIATE_TEST_SUITE_P(Registry, BackendOps, ::testing::ValuesIn(backend_kinds()), [](const auto& info) {
    std::string name = info.param.name;
    for (char& ch : name)
        if (!std::isalnum((unsigned char)ch)) ch = '_';
    return name;
});

// "cpu-scalar" really runs other kernels than "cpu" (their f32 sums round differently), and
// leaves the process-wide SIMD switch as it found it.
TEST(BackendRegistry, ScalarKindRunsTheScalarKernels) {
    if (!cpu::simd_compiled()) GTEST_SKIP() << "built without AVX2+FMA: both CPU kinds run the scalar kernels";
    const int64_t rows = 37, cols = 128, n = 2;
    const HostWeight hw = host_weight(DType::dtype_f32, rows, cols, 130);
    const auto x = randn(n * cols, 131);
    std::vector<std::vector<float>> y;
    for (const BackendKind& kind : backend_kinds()) {
        if (!kind.name.starts_with("cpu")) continue;
        auto be = kind.make(1);
        const DeviceWeight w(*be, hw);
        const DeviceTensor<float> dx(*be, x);
        auto out = output(*be, n * rows);
        be->matmul(dx.data(), w.w, nullptr, n, out.data());
        y.push_back(out.read());
        expect_matmul(*be, y.back(), x, hw, nullptr, n, kind.name);
        EXPECT_TRUE(cpu::simd_enabled()) << "after " << kind.name;
    }
    ASSERT_EQ(y.size(), 2u);
    EXPECT_NE(y[0], y[1]);
}

}  // namespace
