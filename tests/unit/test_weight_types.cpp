// The weight-type table (engine/core/dtype.h) against the GGUF specification, the CPU kernel table
// (engine/backend/cpu/cpu_types.h) with row strides, and tensor-parallel splits aligned to blocks
// (engine/model/shard.h).
#include <gtest/gtest.h>

#include <cstring>
#include <limits>
#include <map>
#include <random>
#include <vector>

#include "checkpoint_fixtures.h"
#include "engine/backend/cpu/cpu_ops.h"
#include "engine/backend/cpu/cpu_types.h"
#include "engine/backend/cpu/quant/quant_kernels.h"
#include "engine/core/quant_blocks.h"
#include "engine/core/dtype.h"
#include "engine/model/shard.h"
#include "io/gguf_quant.h"
#include "test_support.h"
#include "model_configs.h"

using namespace gridlm;

namespace {

struct SpecRow {
    DType type;
    const char* file_name;
    uint32_t gguf_id;
    int64_t block_size;
    int64_t block_bytes;
    bool quantized;
};

// From the GGUF specification (ggml.h / ggml-common.h block structs).
const SpecRow spec[] = {
    {DType::dtype_f32, "F32", 0, 1, 4, false},       {DType::dtype_f16, "F16", 1, 1, 2, false},
    {DType::dtype_bf16, "BF16", 30, 1, 2, false},    {DType::dtype_q4_0, "Q4_0", 2, 32, 18, true},
    {DType::dtype_q4_1, "Q4_1", 3, 32, 20, true},    {DType::dtype_q5_0, "Q5_0", 6, 32, 22, true},
    {DType::dtype_q5_1, "Q5_1", 7, 32, 24, true},    {DType::dtype_q8_0, "Q8_0", 8, 32, 34, true},
    {DType::dtype_q4_k, "Q4_K", 12, 256, 144, true}, {DType::dtype_q5_k, "Q5_K", 13, 256, 176, true},
    {DType::dtype_q6_k, "Q6_K", 14, 256, 210, true},
};

ModelConfig smollm2() { return test::smollm2_config(); }
ModelConfig qwen05() { return test::qwen05_config(); }

using test::randn;

bool bit_equal(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// [rows, cols] copied into rows of `ld` elements whose padding holds `pad` (a NaN pattern), so a
// kernel reading past a row's end shows it in the result.
template <typename T>
std::vector<T> padded(const std::vector<T>& packed, int64_t rows, int64_t cols, int64_t ld, T pad) {
    std::vector<T> out((size_t)(rows * ld), pad);
    for (int64_t r = 0; r < rows; ++r) std::memcpy(&out[r * ld], &packed[r * cols], cols * sizeof(T));
    return out;
}

}  // namespace

TEST(WeightTypes, TableMatchesTheGgufSpecification) {
    ASSERT_EQ(dtype_count, std::size(spec));
    for (const SpecRow& s : spec) {
        const DTypeTraits& t = dtype_traits(s.type);
        EXPECT_EQ(t.type, s.type);
        EXPECT_STREQ(t.file_name, s.file_name);
        EXPECT_EQ(t.gguf_id, s.gguf_id) << s.file_name;
        EXPECT_EQ(t.block_size, s.block_size) << s.file_name;
        EXPECT_EQ(t.block_bytes, s.block_bytes) << s.file_name;
        EXPECT_EQ(t.quantized, s.quantized) << s.file_name;
        EXPECT_EQ(dtype_block_size(s.type), s.block_size);
        EXPECT_EQ(dtype_block_bytes(s.type), s.block_bytes);
        EXPECT_EQ(dtype_is_quantized(s.type), s.quantized);
        EXPECT_EQ(dtype_of_gguf_id(s.gguf_id), &t) << s.file_name;
        // The GGUF reader's own table takes the same numbers, and every type here dequantises.
        const GgmlTypeTraits* g = ggml_type_traits(s.gguf_id);
        ASSERT_NE(g, nullptr) << s.file_name;
        EXPECT_STREQ(g->name, s.file_name);
        EXPECT_EQ(g->block_size, s.block_size) << s.file_name;
        EXPECT_EQ(g->type_size, s.block_bytes) << s.file_name;
        EXPECT_TRUE(g->can_dequantize) << s.file_name;
    }
    EXPECT_EQ(dtype_of_gguf_id(10), nullptr);  // Q2_K: GGUF knows it, gridlm's table does not
    EXPECT_EQ(dtype_of_gguf_id(4), nullptr);   // a retired ggml number
}

TEST(WeightTypes, NamesAsBefore) {
    EXPECT_EQ(dtype_name(DType::dtype_f32), "f32");
    EXPECT_EQ(dtype_name(DType::dtype_f16), "f16");
    EXPECT_EQ(dtype_name(DType::dtype_bf16), "bf16");
    EXPECT_EQ(dtype_name(DType::dtype_q4_k), "q4_k");
    EXPECT_EQ(dtype_name(DType::dtype_q8_0), "q8_0");
    for (DType t : {DType::dtype_f32, DType::dtype_f16, DType::dtype_bf16}) {
        EXPECT_EQ(dtype_from_name(dtype_name(t)), t);
        EXPECT_EQ(dtype_size(t), (size_t)dtype_block_bytes(t));
    }
    // Conversion targets stay the plain types, with the same message.
    EXPECT_EQ(test::error_of([] { dtype_from_name("q4_k"); }), "unknown dtype 'q4_k' (expected f32, bf16 or f16)");
}

TEST(WeightTypes, RowBytes) {
    EXPECT_EQ(row_bytes(DType::dtype_f32, 576), 2304);
    EXPECT_EQ(row_bytes(DType::dtype_bf16, 67), 134);
    EXPECT_EQ(row_bytes(DType::dtype_f16, 0), 0);
    EXPECT_EQ(row_bytes(DType::dtype_q4_0, 576), 18 * 18);
    EXPECT_EQ(row_bytes(DType::dtype_q4_1, 64), 40);
    EXPECT_EQ(row_bytes(DType::dtype_q5_0, 896), 28 * 22);
    EXPECT_EQ(row_bytes(DType::dtype_q5_1, 32), 24);
    EXPECT_EQ(row_bytes(DType::dtype_q8_0, 896), 28 * 34);
    EXPECT_EQ(row_bytes(DType::dtype_q4_k, 4864), 19 * 144);
    EXPECT_EQ(row_bytes(DType::dtype_q5_k, 512), 2 * 176);
    EXPECT_EQ(row_bytes(DType::dtype_q6_k, 4864), 19 * 210);
    test::expect_has(test::error_of([] { row_bytes(DType::dtype_q4_k, 576); }),
                     {"576", "q4_k", "not a whole number", "256 values per block"});
    test::expect_has(test::error_of([] { row_bytes(DType::dtype_q8_0, 33); }), {"33", "q8_0", "32 values"});
    test::expect_has(test::error_of([] { row_bytes(DType::dtype_f32, -1); }), {"-1", "f32"});
}

TEST(WeightTypes, WeightStride) {
    const Weight packed{DType::dtype_bf16, 3, 10, nullptr};
    EXPECT_EQ(packed.row_bytes, 0);
    EXPECT_EQ(packed.stride(), 20);
    const Weight wide{DType::dtype_f32, 3, 10, nullptr, 64};
    EXPECT_EQ(wide.stride(), 64);
    const Weight q{DType::dtype_q4_k, 2, 512, nullptr};
    EXPECT_EQ(q.stride(), 288);
    static const uint8_t buf[1024] = {};
    EXPECT_EQ(Weight({DType::dtype_q4_k, 2, 512, buf}).row(1), buf + 288);
    EXPECT_EQ(Weight({DType::dtype_f32, 2, 8, buf, 48}).row(2), buf + 96);
}

TEST(CpuTypeTable, SaysWhatTheCpuProvides) {
    for (size_t i = 0; i < dtype_count; ++i) {
        const DType t = (DType)i;
        const cpu::CpuTypeTraits& k = cpu::cpu_type_traits(t);
        EXPECT_EQ(k.type, t);
        EXPECT_NE(k.to_float_row, nullptr) << dtype_name(t);
        EXPECT_TRUE(k.has_matmul()) << dtype_name(t);
        // Float types through the tiled kernels, block types through their integer kernels.
        const bool plain = !dtype_is_quantized(t);
        EXPECT_EQ(k.gemv != nullptr, plain) << dtype_name(t);
        EXPECT_EQ(cpu::quant_kernels(t, cpu::Isa::scalar) != nullptr, !plain) << dtype_name(t);
        EXPECT_TRUE(cpu::make_scalar_backend(1)->supports_weight(t)) << dtype_name(t);
    }
}

TEST(CpuTypeTable, MisfitInputsAreErrorsNamingTheType) {
    const cpu::CpuContext ctx{1};
    std::vector<uint8_t> data(4096);
    for (DType t : {DType::dtype_q4_0, DType::dtype_q8_0, DType::dtype_q4_k, DType::dtype_q6_k}) {
        const int64_t cols = dtype_block_size(t);
        for (int64_t n : {1, 9}) {
            // Two weights of different widths in one multi-matmul.
            std::vector<float> xs(n * cols, 1.f), y1(n * 2), y2(n * 2);
            const Weight a{t, 2, cols, data.data()}, b{t, 2, 2 * cols, data.data()};
            const MatmulOut outs[] = {{a, nullptr, y1.data()}, {b, nullptr, y2.data()}};
            test::expect_has(
                test::error_of([&] { cpu::matmul_quant(ctx, xs.data(), n, outs, 2); }),
                {"matmul", std::string(dtype_name(t)), std::to_string(2 * cols) + " columns", "does not fit"});
        }
    }
}

// A weight whose rows lie further apart than their length (a slice of a wider matrix) gives the
// same bits as its packed copy, on every GEMV width and on the GEMM path, f32 and bf16.
TEST(CpuTypeTable, MatmulUsesTheRowStride) {
    const cpu::CpuContext ctx{2};
    const int64_t rows = 37, cols = 67, ld = 80;
    const std::vector<float> w = randn(rows * cols, 1), b = randn(rows, 2);
    std::vector<uint16_t> wb(w.size());
    for (size_t i = 0; i < w.size(); ++i) wb[i] = f32_to_bf16(w[i]);
    const std::vector<float> w_pad = padded<float>(w, rows, cols, ld, std::numeric_limits<float>::quiet_NaN());
    const std::vector<uint16_t> wb_pad = padded<uint16_t>(wb, rows, cols, ld, 0x7fc1);
    for (int64_t n : {1, 2, 3, 4, 5, 17}) {
        const std::vector<float> x = randn(n * cols, 10 + (unsigned)n);
        std::vector<float> y(n * rows), y_pad(n * rows);
        cpu::matmul(ctx, x.data(), Weight{DType::dtype_f32, rows, cols, w.data()}, b.data(), n, y.data());
        cpu::matmul(ctx, x.data(), Weight{DType::dtype_f32, rows, cols, w_pad.data(), ld * 4}, b.data(), n,
                    y_pad.data());
        EXPECT_TRUE(bit_equal(y, y_pad)) << "f32 n=" << n;
        cpu::matmul(ctx, x.data(), Weight{DType::dtype_bf16, rows, cols, wb.data()}, b.data(), n, y.data());
        cpu::matmul(ctx, x.data(), Weight{DType::dtype_bf16, rows, cols, wb_pad.data(), ld * 2}, b.data(), n,
                    y_pad.data());
        EXPECT_TRUE(bit_equal(y, y_pad)) << "bf16 n=" << n;
        // f16 weights: the same arithmetic as f32 weights holding the widened values.
        std::vector<uint16_t> wh(w.size());
        std::vector<float> wh_f32(w.size());
        for (size_t i = 0; i < w.size(); ++i) {
            wh[i] = f32_to_f16(w[i]);
            wh_f32[i] = f16_to_f32(wh[i]);
        }
        const std::vector<uint16_t> wh_pad = padded<uint16_t>(wh, rows, cols, ld, 0x7e01);
        std::vector<float> y_ref(n * rows);
        cpu::matmul(ctx, x.data(), Weight{DType::dtype_f32, rows, cols, wh_f32.data()}, b.data(), n, y_ref.data());
        cpu::matmul(ctx, x.data(), Weight{DType::dtype_f16, rows, cols, wh_pad.data(), ld * 2}, b.data(), n,
                    y_pad.data());
        // The same products; the compiler may fuse a row's tail differently per weight type.
        for (size_t i = 0; i < y_ref.size(); ++i) EXPECT_NEAR(y_pad[i], y_ref[i], 1e-4f) << "f16 n=" << n;
    }
}

TEST(CpuTypeTable, EmbeddingUsesTheRowStride) {
    const cpu::CpuContext ctx{2};
    const int64_t rows = 9, d = 13, ld = 16;
    const std::vector<float> t = randn(rows * d, 3);
    std::vector<uint16_t> tb(t.size()), th(t.size());
    for (size_t i = 0; i < t.size(); ++i) {
        tb[i] = f32_to_bf16(t[i]);
        th[i] = f32_to_f16(t[i]);
    }
    const std::vector<int32_t> ids = {4, 0, 8, 4, 100};
    const struct {
        DType type;
        const void* packed;
    } cases[] = {{DType::dtype_f32, t.data()}, {DType::dtype_bf16, tb.data()}, {DType::dtype_f16, th.data()}};
    for (const auto& c : cases) {
        const int64_t elem = (int64_t)dtype_size(c.type);
        std::vector<uint8_t> wide((size_t)(rows * ld * elem), 0xff);  // NaN patterns between rows
        for (int64_t r = 0; r < rows; ++r)
            std::memcpy(&wide[r * ld * elem], static_cast<const uint8_t*>(c.packed) + r * d * elem, d * elem);
        std::vector<float> out(ids.size() * d), out_wide(ids.size() * d);
        cpu::embedding(ctx, Weight{c.type, rows, d, c.packed}, 0, ids.data(), (int64_t)ids.size(), out.data());
        cpu::embedding(ctx, Weight{c.type, rows, d, wide.data(), ld * elem}, 0, ids.data(), (int64_t)ids.size(),
                       out_wide.data());
        EXPECT_TRUE(bit_equal(out, out_wide)) << dtype_name(c.type);
        // Row 4 widened by hand.
        for (int64_t i = 0; i < d; ++i) {
            const float want = c.type == DType::dtype_f32    ? t[4 * d + i]
                               : c.type == DType::dtype_bf16 ? bf16_to_f32(tb[4 * d + i])
                                                             : f16_to_f32(th[4 * d + i]);
            EXPECT_EQ(out_wide[i], want) << dtype_name(c.type) << " " << i;
        }
    }
}

// A block-quantised table gives the rows of the reference dequantiser, bit for bit.
TEST(CpuTypeTable, EmbeddingOfBlockTypes) {
    const cpu::CpuContext ctx{2};
    for (DType t : {DType::dtype_q4_0, DType::dtype_q4_1, DType::dtype_q5_0, DType::dtype_q5_1, DType::dtype_q8_0,
                    DType::dtype_q4_k, DType::dtype_q5_k, DType::dtype_q6_k}) {
        const int64_t rows = 5, d = 2 * dtype_block_size(t), rb = row_bytes(t, d);
        std::mt19937 rng(7);
        std::vector<uint8_t> table((size_t)(rows * rb));
        for (uint8_t& b : table) b = (uint8_t)rng();
        // Scales stay small finite halves: set every block's first bytes (d, and dmin for K types).
        for (int64_t off = 0; off < rows * rb; off += dtype_block_bytes(t)) {
            const uint16_t h = f32_to_f16(0.01f);
            if (t == DType::dtype_q6_k) {
                std::memcpy(&table[off + dtype_block_bytes(t) - 2], &h, 2);
            } else {
                std::memcpy(&table[off], &h, 2);
                if (t == DType::dtype_q4_1 || t == DType::dtype_q5_1 || t == DType::dtype_q4_k ||
                    t == DType::dtype_q5_k)
                    std::memcpy(&table[off + 2], &h, 2);
            }
        }
        const std::vector<int32_t> ids = {3, 0, 9};
        std::vector<float> out(ids.size() * d), want(d);
        cpu::embedding(ctx, Weight{t, rows, d, table.data()}, 0, ids.data(), (int64_t)ids.size(), out.data());
        dequantize_row(t, table.data() + 3 * rb, want.data(), d);
        EXPECT_TRUE(bit_equal(std::vector<float>(out.begin(), out.begin() + d), want)) << dtype_name(t);
        for (int64_t i = 2 * d; i < 3 * d; ++i) EXPECT_EQ(out[i], 0.f) << "id 9 is outside the table";
    }
}

TEST(AlignedSplit, AlignOneIsSplitRange) {
    for (int64_t total : {1, 2, 7, 64, 100, 576, 1536, 4864, 49152, 151936}) {
        for (int n = 1; n <= 16 && n <= total; ++n) {
            for (int r = 0; r < n; ++r) EXPECT_EQ(split_range_aligned(total, n, r, 1), split_range(total, n, r));
        }
    }
    // And the default split types change nothing, nor do the plain types a loader converts to.
    for (const ModelConfig& c : {smollm2(), qwen05()}) {
        for (int tp : {1, 2, 3, 7, 14}) {
            if (c.n_head % tp != 0) continue;
            for (DType t : {DType::dtype_f32, DType::dtype_bf16, DType::dtype_f16}) {
                for (int r = 0; r < tp; ++r) {
                    const TpShard a = tp_shard(c, tp, r), b = tp_shard(c, tp, r, TpSplitTypes{t, t});
                    EXPECT_EQ(a.ff, split_range(c.n_ff, tp, r));
                    EXPECT_EQ(b.ff, a.ff);
                    EXPECT_EQ(b.heads, a.heads);
                    EXPECT_EQ(b.vocab, a.vocab);
                }
            }
        }
    }
}

TEST(AlignedSplit, WholeUnitsNearEqual) {
    // 19 blocks of 256 over 7 ranks: 3, 3, 3, 3, 3, 2, 2 blocks.
    const int64_t sizes[] = {3, 3, 3, 3, 3, 2, 2};
    int64_t next = 0;
    for (int r = 0; r < 7; ++r) {
        const Range part = split_range_aligned(4864, 7, r, 256);
        EXPECT_EQ(part, (Range{next, sizes[r] * 256})) << r;
        next = part.end();
    }
    EXPECT_EQ(next, 4864);
    EXPECT_EQ(split_range_aligned(1536, 3, 2, 32), (Range{1024, 512}));
}

TEST(AlignedSplit, QwenMlpOverTp7FollowsDownProjBlocks) {
    // Q4_K down_proj: every rank's MLP share (gate/up rows and down columns) is whole blocks.
    const TpSplitTypes types{DType::dtype_q8_0, DType::dtype_q4_k};
    check_tensor_parallel(qwen05(), 7, types);
    int64_t next = 0;
    for (int r = 0; r < 7; ++r) {
        const TpShard s = tp_shard(qwen05(), 7, r, types);
        EXPECT_EQ(s.ff.begin, next);
        EXPECT_EQ(s.ff.begin % 256, 0);
        EXPECT_EQ(s.ff.size % 256, 0);
        EXPECT_EQ(s.heads, tp_shard(qwen05(), 7, r).heads);
        next = s.ff.end();
    }
    EXPECT_EQ(next, 4864);
    EXPECT_EQ(tp_shard(qwen05(), 7, 3, types).ff, (Range{2304, 768}));
    EXPECT_EQ(ModelShard::of(qwen05(), {24}, 0, 7, 6, types).tp.ff, (Range{4352, 512}));
}

TEST(AlignedSplit, CutsInsideABlockAreErrors) {
    // SmolLM2's 576 attention columns: 3 heads of 64 = 192 columns a rank, not whole Q4_K blocks.
    EXPECT_EQ(test::error_of([] {
                  check_tensor_parallel(smollm2(), 3, {DType::dtype_q4_k, DType::dtype_f32});
              }),
              "tp=3 cannot split self_attn.o_proj (Q4_K, blocks of 256) along its 576 input columns: each rank's "
              "share must be a whole number of blocks (rank 0 would get columns 0..191); another tp, or --dtype f32 / "
              "bf16 / f16, avoids it");
    // ... but whole Q8_0 blocks (192 = 6 x 32).
    check_tensor_parallel(smollm2(), 3, {DType::dtype_q8_0, DType::dtype_q8_0});
    // tp = 1 cuts nothing.
    check_tensor_parallel(smollm2(), 1, {DType::dtype_q4_k, DType::dtype_q4_k});
    EXPECT_EQ(tp_shard(smollm2(), 1, 0, {DType::dtype_q4_k, DType::dtype_q4_k}).ff, (Range{0, 1536}));
    // Qwen's 896 attention columns over tp = 2: 448 a rank, not whole blocks of 256.
    test::expect_has(test::error_of([] {
                         tp_shard(qwen05(), 2, 0, {DType::dtype_q6_k, DType::dtype_q4_k});
                     }),
                     {"tp=2", "self_attn.o_proj", "Q6_K", "blocks of 256", "896 input columns"});
    // SmolLM2's 1536 MLP columns are 6 Q4_K blocks: 7 ranks would leave one without any.
    ModelConfig seven = smollm2();
    seven.n_head = 7;
    seven.n_head_kv = 7;
    seven.head_dim = 256;
    test::expect_has(test::error_of([&] {
                         check_tensor_parallel(seven, 7, {DType::dtype_f32, DType::dtype_q4_k});
                     }),
                     {"tp=7", "mlp.down_proj", "Q4_K", "blocks of 256", "1536 input columns", "rank 6 would get no"});
    // An MLP size that is not whole blocks cannot be cut at all.
    ModelConfig odd = qwen05();
    odd.n_ff = 4800;
    test::expect_has(test::error_of([&] {
                         check_tensor_parallel(odd, 2, {DType::dtype_q8_0, DType::dtype_q5_k});
                     }),
                     {"tp=2", "mlp.down_proj", "Q5_K", "4800 input columns"});
}

// tp_split_types reads the stored types of every layer's o_proj / down_proj and keeps the
// largest block.
TEST(AlignedSplit, SplitTypesFromACheckpoint) {
    class TypedSource : public test::MemorySource {
    public:
        std::map<std::string, DType> types;
        DType stored_type(const std::string& name) const override {
            auto it = types.find(name);
            return it == types.end() ? DType::dtype_f32 : it->second;
        }
    };
    ModelConfig c = qwen05();
    c.n_layer = 3;
    TypedSource src;
    for (int il = 0; il < 3; ++il) {
        for (const char* part : {"self_attn.o_proj.weight", "mlp.down_proj.weight"})
            src.add(str("model.layers.", il, ".", part), {1, 1}, {0.f});
    }
    EXPECT_EQ(tp_split_types(c, src).o_proj, DType::dtype_f32);
    src.types["model.layers.0.self_attn.o_proj.weight"] = DType::dtype_q8_0;
    src.types["model.layers.1.mlp.down_proj.weight"] = DType::dtype_q4_k;
    src.types["model.layers.2.mlp.down_proj.weight"] = DType::dtype_q5_0;
    const TpSplitTypes t = tp_split_types(c, src);
    EXPECT_EQ(t.o_proj, DType::dtype_q8_0);
    EXPECT_EQ(t.down_proj, DType::dtype_q4_k);
}
