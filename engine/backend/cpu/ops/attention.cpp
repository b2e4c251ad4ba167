// Causal grouped-query attention over the KV cache: softmax(q k^T * scale) v per head, with query
// head h reading KV head h / (n_head / n_head_kv). Cached K / V values (f32, bf16 or f16) are
// widened to f32 in registers; dot products, the max-subtracted softmax and the weighted V sum are
// f32.
//
// The context of a query is cut into chunks of chunk_len positions. Each chunk gives, per query
// head, its max score m, l = sum_j exp(s_j - m) and o = sum_j exp(s_j - m) v_j; the chunks are then
// merged in order: out = sum_c e^(m_c - M) o_c / sum_c e^(m_c - M) l_c with M = max_c m_c. A chunk
// streams its K rows, then its V rows, front to back, each row read once for all query heads. The
// arithmetic for a query depends only on its position, never on the batch or the thread count:
// a step with few query rows (a decode of a few long sequences) runs each chunk (and, if still
// few, each KV head) as a work unit of its own on all threads and merges afterwards; otherwise
// each query row runs whole on one thread.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <new>
#include <vector>

#include "engine/backend/cpu/cpu_ops.h"
#include "engine/backend/cpu/parallel.h"
#include "engine/backend/cpu/simd.h"

namespace gridlm::cpu {

namespace {

constexpr int64_t chunk_len = 256;  // positions per chunk of a query's context
constexpr int64_t head_tile = 4;    // query heads whose sums stay in registers while one K / V row streams

constexpr int64_t round16(int64_t n) { return (n + 15) / 16 * 16; }

// Floats in 64-byte aligned memory (whole cache lines: vector loads and stores never split one).
class FloatBuf {
public:
    explicit FloatBuf(int64_t n)
        : p_(static_cast<float*>(std::aligned_alloc(64, (size_t)round16(std::max<int64_t>(n, 1)) * sizeof(float)))) {
        if (!p_) throw std::bad_alloc();
    }
    ~FloatBuf() { std::free(p_); }
    FloatBuf(const FloatBuf&) = delete;
    FloatBuf& operator=(const FloatBuf&) = delete;
    float* data() const { return p_; }

private:
    float* p_;
};

// One cached value (element i of a row at p) widened to f32.
template <DType D>
inline float load1(const uint8_t* p, int64_t i) {
    if constexpr (D == DType::dtype_f32) {
        return reinterpret_cast<const float*>(p)[i];
    } else if constexpr (D == DType::dtype_bf16) {
        return bf16_to_f32(reinterpret_cast<const uint16_t*>(p)[i]);
    } else {
        static_assert(D == DType::dtype_f16);
        return f16_to_f32(reinterpret_cast<const uint16_t*>(p)[i]);
    }
}

#if GRIDLM_CPU_AVX2
// Cached values i .. i + 7 of a row at p, widened in registers (bf16: a 16-bit shift; f16: F16C).
template <DType D>
inline __m256 load8(const uint8_t* p, int64_t i) {
    if constexpr (D == DType::dtype_f32) {
        return _mm256_loadu_ps(reinterpret_cast<const float*>(p) + i);
    } else if constexpr (D == DType::dtype_bf16) {
        return load_bf16x8(reinterpret_cast<const uint16_t*>(p) + i);
    } else {
        return _mm256_cvtph_ps(
            _mm_loadu_si128(reinterpret_cast<const __m128i*>(reinterpret_cast<const uint16_t*>(p) + i)));
    }
}
#endif

// s[h * s_stride] = scale * q_h . k for T query heads q_h = q + h * n, k the cached row at kp.
template <DType D, int T>
inline void dots(const float* q, int64_t n, const uint8_t* kp, float scale, float* s, int64_t s_stride) {
    float sum[T];
    int64_t i = 0;
#if GRIDLM_CPU_AVX2
    if (simd_enabled()) {
        __m256 acc[T];
        for (int h = 0; h < T; ++h) acc[h] = _mm256_setzero_ps();
        for (; i + 8 <= n; i += 8) {
            const __m256 k = load8<D>(kp, i);
            for (int h = 0; h < T; ++h) acc[h] = _mm256_fmadd_ps(_mm256_loadu_ps(q + h * n + i), k, acc[h]);
        }
        for (int h = 0; h < T; ++h) sum[h] = hsum(acc[h]);
    } else
#endif
    {
        for (int h = 0; h < T; ++h) sum[h] = 0.f;
    }
    for (; i < n; ++i) {
        const float k = load1<D>(kp, i);
        for (int h = 0; h < T; ++h) sum[h] += q[h * n + i] * k;
    }
    for (int h = 0; h < T; ++h) s[h * s_stride] = sum[h] * scale;
}

// o_h += p[h * p_stride] * v for T accumulators o_h = o + h * o_stride, v the cached row at vp.
template <DType D, int T>
inline void axpys(const float* p, int64_t p_stride, const uint8_t* vp, int64_t n, float* o, int64_t o_stride) {
    int64_t i = 0;
#if GRIDLM_CPU_AVX2
    if (simd_enabled()) {
        __m256 w[T];
        for (int h = 0; h < T; ++h) w[h] = _mm256_set1_ps(p[h * p_stride]);
        for (; i + 8 <= n; i += 8) {
            const __m256 v = load8<D>(vp, i);
            for (int h = 0; h < T; ++h) {
                float* y = o + h * o_stride + i;
                _mm256_store_ps(y, _mm256_fmadd_ps(w[h], v, _mm256_load_ps(y)));
            }
        }
    }
#endif
    for (; i < n; ++i) {
        const float v = load1<D>(vp, i);
        for (int h = 0; h < T; ++h) o[h * o_stride + i] += p[h * p_stride] * v;
    }
}

// One query row (all its heads) over its sequence's cache.
struct Item {
    const KvSeqView* kv = nullptr;
    const float* q = nullptr;  // [n_head, head_dim]
    float* out = nullptr;      // [n_head, v_dim]
    int64_t n_ctx = 0;         // positions attended: 0 .. n_ctx - 1
    int64_t parts = -1;        // first of its chunks' partials in the shared buffer; -1: none there
    int64_t n_chunks() const { return (n_ctx + chunk_len - 1) / chunk_len; }
};

// Chunks [c0, c1) of one item for KV heads [g0, g1) (and their query heads).
struct Unit {
    int64_t item = 0, c0 = 0, c1 = 0, g0 = 0, g1 = 0;
};

// One chunk's partial for every query head: o [n_head][vd_pad()], then m [n_head], then l [n_head].
struct Dims {
    int64_t n_head = 0, group = 0, hd = 0, vd = 0;
    float scale = 0.f;
    int64_t vd_pad() const { return round16(vd); }
    float* o(float* part, int64_t h) const { return part + h * vd_pad(); }
    float* m(float* part) const { return part + n_head * vd_pad(); }
    float* l(float* part) const { return m(part) + n_head; }
    int64_t part_floats() const { return round16(n_head * (vd_pad() + 2)); }
};

// Per-thread scratch: scores [n_head][chunk_len] and partials of up to max_chunks chunks.
struct Scratch {
    FloatBuf scores, parts;
    Scratch(const Dims& d, int64_t max_chunks) : scores(d.n_head * chunk_len), parts(max_chunks * d.part_floats()) {}
};

// Runs fn.template operator()<T>(h0) over the group's heads in tiles of T <= head_tile.
template <typename F>
inline void for_head_tiles(int64_t group, F&& fn) {
    for (int64_t h0 = 0; h0 < group; h0 += head_tile) {
        switch (std::min(head_tile, group - h0)) {
            case 1:
                fn.template operator()<1>(h0);
                break;
            case 2:
                fn.template operator()<2>(h0);
                break;
            case 3:
                fn.template operator()<3>(h0);
                break;
            default:
                fn.template operator()<4>(h0);
                break;
        }
    }
}

// Positions [j0, j1) of the item for the query heads of KV heads [g0, g1), into part. Each K and V
// row of the chunk is read once, front to back, for all those heads.
template <DType D>
void attend_chunk(const Item& it, const Dims& d, int64_t j0, int64_t j1, int64_t g0, int64_t g1, Scratch& sc,
                  float* part) {
    const KvSeqView& kv = *it.kv;
    const int64_t es = D == DType::dtype_f32 ? 4 : 2, bs = kv.block_size, n = j1 - j0;
    const bool latent = kv.v_row == 0;  // V is the start of the K row (one KV head)
    const int64_t k_stride = kv.k_row * es, v_stride = (latent ? kv.k_row : kv.v_row) * es;
    const int64_t k_base = kv.k_offset * es, v_base = (latent ? kv.k_offset : kv.v_offset) * es;
    const int64_t hd = d.hd, vd = d.vd, group = d.group;
    const float scale = d.scale;
    float* scores = sc.scores.data();  // [n_head][n]
    for (int64_t j = j0; j < j1;) {
        const int64_t r0 = j % bs, run = std::min(bs - r0, j1 - j);
        const uint8_t* row = kv.blocks[j / bs] + k_base + r0 * k_stride;
        for (int64_t i = 0; i < run; ++i, row += k_stride)
            for (int64_t g = g0; g < g1; ++g) {
                const uint8_t* kp = row + g * hd * es;
                const float* qg = it.q + g * group * hd;
                float* s = scores + g * group * n + (j - j0) + i;
                for_head_tiles(group,
                               [&]<int T>(int64_t h0) { dots<D, T>(qg + h0 * hd, hd, kp, scale, s + h0 * n, n); });
            }
        j += run;
    }
    float* m = d.m(part);
    float* l = d.l(part);
    for (int64_t h = g0 * group; h < g1 * group; ++h) {
        float* s = scores + h * n;
        m[h] = *std::max_element(s, s + n);
        float sum = 0.f;
        for (int64_t j = 0; j < n; ++j) sum += (s[j] = std::exp(s[j] - m[h]));
        l[h] = sum;
        std::fill(d.o(part, h), d.o(part, h) + vd, 0.f);
    }
    for (int64_t j = j0; j < j1;) {
        const int64_t r0 = j % bs, run = std::min(bs - r0, j1 - j);
        const uint8_t* row = kv.blocks[j / bs] + v_base + r0 * v_stride;
        for (int64_t i = 0; i < run; ++i, row += v_stride)
            for (int64_t g = g0; g < g1; ++g) {
                const uint8_t* vp = row + g * vd * es;
                const float* p = scores + g * group * n + (j - j0) + i;
                for_head_tiles(group, [&]<int T>(int64_t h0) {
                    axpys<D, T>(p + h0 * n, n, vp, vd, d.o(part, g * group + h0), d.vd_pad());
                });
            }
        j += run;
    }
}

// Chunks [c0, c1) of the unit's item into parts (consecutive partials).
void attend_chunks(const Item& it, const Unit& u, const Dims& d, Scratch& sc, float* parts) {
    for (int64_t c = u.c0; c < u.c1; ++c) {
        const int64_t j0 = c * chunk_len, j1 = std::min(it.n_ctx, j0 + chunk_len);
        float* part = parts + (c - u.c0) * d.part_floats();
        switch (it.kv->dtype) {
            case DType::dtype_f32:
                attend_chunk<DType::dtype_f32>(it, d, j0, j1, u.g0, u.g1, sc, part);
                break;
            case DType::dtype_bf16:
                attend_chunk<DType::dtype_bf16>(it, d, j0, j1, u.g0, u.g1, sc, part);
                break;
            default:
                attend_chunk<DType::dtype_f16>(it, d, j0, j1, u.g0, u.g1, sc, part);
                break;
        }
    }
}

// The output of query heads [h0, h1) of the item from all its chunk partials, merged in chunk order.
void merge(const Item& it, const Dims& d, float* parts, int64_t h0, int64_t h1) {
    const int64_t nc = it.n_chunks(), pf = d.part_floats();
    for (int64_t h = h0; h < h1; ++h) {
        float mx = d.m(parts)[h];
        for (int64_t c = 1; c < nc; ++c) mx = std::max(mx, d.m(parts + c * pf)[h]);
        float* o = it.out + h * d.vd;
        std::fill(o, o + d.vd, 0.f);
        float l = 0.f;
        for (int64_t c = 0; c < nc; ++c) {
            float* part = parts + c * pf;
            const float w = std::exp(d.m(part)[h] - mx);
            l += w * d.l(part)[h];
            axpy(w, d.o(part, h), o, d.vd);
        }
        const float inv = 1.0f / l;
        for (int64_t i = 0; i < d.vd; ++i) o[i] *= inv;
    }
}

}  // namespace

// q: [n_tokens, n_head, head_dim]; out: [n_tokens, n_head, v_dim]; the cache already holds the new
// tokens' keys/values.
void attention(const CpuContext& ctx, const float* q, const AttentionSeq* seqs, int64_t n_seqs,
               const AttentionShape& shape, float* out) {
    const int64_t n_head = shape.n_head, n_kv = shape.n_head_kv;
    const Dims d{n_head, n_head / n_kv, shape.head_dim, shape.v_dim(), shape.scale};
    GRIDLM_ASSERT(d.group * n_kv == n_head);
    std::vector<Item> items;
    int64_t max_chunks = 1, n_chunks = 0;
    for (int64_t s = 0; s < n_seqs; ++s) {
        const AttentionSeq& sq = seqs[s];
        if (!kv_dtype_supported(sq.kv.dtype))
            throw Error(str("attention: a KV cache of ", dtype_name(sq.kv.dtype), " is not supported"));
        for (int64_t t = 0; t < sq.n_new; ++t) {
            const int64_t row = sq.token_offset + t;
            Item it;
            it.kv = &sq.kv;
            it.q = q + row * n_head * d.hd;
            it.out = out + row * n_head * d.vd;
            it.n_ctx = sq.pos0 + t + 1;
            max_chunks = std::max(max_chunks, it.n_chunks());
            n_chunks += it.n_chunks();
            items.push_back(it);
        }
    }
    // Work units: whole items when there are enough; else each chunk on its own (its partial kept
    // in `shared` until the merge), and each KV head on its own when that is still too few.
    const int64_t want = 4 * (int64_t)ctx.n_threads;
    const bool split_chunks = (int64_t)items.size() < want && max_chunks > 1;
    const bool split_heads = (split_chunks ? n_chunks : (int64_t)items.size()) < want && n_kv > 1;
    const int64_t g_step = split_heads ? 1 : n_kv;
    std::vector<Unit> units;
    int64_t n_parts = 0;
    for (int64_t i = 0; i < (int64_t)items.size(); ++i) {
        const int64_t nc = items[i].n_chunks();
        const bool chunks_apart = split_chunks && nc > 1;
        if (chunks_apart) {
            items[i].parts = n_parts;
            n_parts += nc;
        }
        for (int64_t g = 0; g < n_kv; g += g_step) {
            if (chunks_apart) {
                for (int64_t c = 0; c < nc; ++c) units.push_back({i, c, c + 1, g, g + g_step});
            } else {
                units.push_back({i, 0, nc, g, g + g_step});
            }
        }
    }
    FloatBuf shared(n_parts * d.part_floats());
    // Longest units first, handed out one at a time: causal prefill rows differ in length.
    auto cost = [&](const Unit& u) { return std::min(items[u.item].n_ctx, u.c1 * chunk_len) - u.c0 * chunk_len; };
    std::stable_sort(units.begin(), units.end(), [&](const Unit& a, const Unit& b) { return cost(a) > cost(b); });
    std::atomic<int64_t> next{0};
    auto work = [&](int, int) {
        Scratch sc(d, split_chunks ? 1 : max_chunks);
        for (int64_t k = next++; k < (int64_t)units.size(); k = next++) {
            const Unit& u = units[k];
            const Item& it = items[u.item];
            if (it.parts >= 0) {
                attend_chunks(it, u, d, sc, shared.data() + (it.parts + u.c0) * d.part_floats());
            } else {
                attend_chunks(it, u, d, sc, sc.parts.data());
                merge(it, d, sc.parts.data(), u.g0 * d.group, u.g1 * d.group);
            }
        }
    };
    if (units.size() == 1) {
        work(0, 1);
    } else {
        parallel_run(ctx, work);
    }
    if (n_parts == 0) return;
    parallel_for(ctx, (int64_t)items.size(), [&](int64_t i) {
        if (items[i].parts >= 0) merge(items[i], d, shared.data() + items[i].parts * d.part_floats(), 0, n_head);
    });
}

}  // namespace gridlm::cpu
