// Sizing a deployment before running it (`gridlm plan`): for every dp x pp x tp grid of a cluster,
// the weight bytes, KV-cache bytes per token and free KV tokens of a rank, and the grid to use.
// Pure functions of a ModelConfig (and, for --weights stored, a checkpoint's tensor table): no MPI,
// no weights read. The layout and the reserve are described in docs/user-guide.md, "Plan a
// deployment".
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "engine/core/dtype.h"
#include "engine/core/model_config.h"
#include "engine/core/tensor_source.h"
#include "engine/model/shard.h"

namespace gridlm {

// ---- Weight formats ----------------------------------------------------------------------------

// What the weight matrices are sized in: a type of engine/core/dtype.h's table, FP8 e4m3 (1 byte a
// value plus one f32 scale per 128 x 128 block, as DeepSeek-V3/R1 ship), or each tensor as the
// checkpoint stores it.
struct WeightFormat {
    enum class Kind : uint8_t { table, fp8, stored };
    Kind kind = Kind::table;
    DType type = DType::dtype_bf16;  // Kind::table
    std::string name() const;        // "bf16", "fp8", "stored"
};

// "bf16" -> the format; throws UsageError naming the value and the accepted ones.
WeightFormat weight_format_from_name(std::string_view name);
// A comma-separated list: "bf16,fp8,q4_k".
std::vector<WeightFormat> weight_formats_from_list(std::string_view list);
// "f32, f16, bf16, fp8, q4_0, q4_1, q5_0, q5_1, q8_0, q4_k, q5_k, q6_k, stored".
std::string weight_format_names();

// The type a matrix whose rows hold `cols` values takes when `type` is asked for, as `gridlm convert
// --dtype` stores it: `type` when a row is whole blocks of it, else llama.cpp's fallback (q4_k -> q5_0,
// q5_k -> q5_1, q6_k -> q8_0), else f32.
DType storage_type(DType type, int64_t cols);
// The LM head's (and a tied embedding's) type for `type`, as convert stores it: a float type as it is;
// for a block type q6_k, or q8_0 for q8_0 or rows that are not whole 256-blocks, f32 if not 32-blocks.
DType head_storage_type(DType type, int64_t cols);
// Bytes of a rows x cols share of a matrix whose rows hold full_cols values (table or fp8 format):
// table types by row_bytes of storage_type(type, full_cols) (a share that is not whole blocks is
// rounded up to whole blocks); fp8: rows * cols + 4 * ceil(rows / 128) * ceil(cols / 128).
int64_t matrix_bytes(const WeightFormat& f, int64_t full_cols, int64_t rows, int64_t cols);

// ---- Memory sizes ------------------------------------------------------------------------------

// parse_bytes, for --mem-per-rank and --overhead, is launch/cli_options.h's.
// "52.1 GB", "96.6 MB", "12.0 kB", "512 B" (powers of 1000, one decimal).
std::string format_size(int64_t bytes);

// ---- What a rank holds -------------------------------------------------------------------------

// How a tensor-parallel group runs MLA attention (DeepSeek-V2/V3). heads: each rank keeps a run of the
// query heads (q_b / q_proj and kv_b rows, o_proj columns; q_a and kv_a whole) and every rank sees
// every token, so each keeps the whole latent cache of the group's sequences (what `gridlm generate
// --tp` does). data_parallel: each rank keeps all of attention and runs it for its own sequences
// only, so it keeps the latent cache of those alone; MLPs and experts are split as with heads.
enum class AttentionSplit : uint8_t { heads, data_parallel };
std::string_view attention_split_name(AttentionSplit a);  // "heads" | "dp"

enum class TensorKind : uint8_t {
    matrix,     // a projection or expert matrix: sized in the weight format
    embedding,  // an untied embedding table: the weight format, but bf16 for fp8 (as V3/R1 ship it)
    lm_head,    // the LM head (or a tied table): head_storage_type, bf16 for fp8
    f32,        // norms, biases, the MoE router and its bias: f32 as the engine keeps them
};

// One tensor (HF name and orientation) and one rank's share of it; a vector is [n, 1].
struct TensorShare {
    std::string name;
    int64_t rows = 0, cols = 0;              // the whole tensor
    int64_t local_rows = 0, local_cols = 0;  // the rank's share
    TensorKind kind = TensorKind::matrix;
    int64_t numel() const { return rows * cols; }
    int64_t local_numel() const { return local_rows * local_cols; }
};

// Rank `rank` of a tp group's runs inside every layer (rank 0 has the longest of each).
struct TpShare {
    int tp = 1, rank = 0;
    AttentionSplit attention = AttentionSplit::heads;
    Range heads, kv_heads;  // query heads and (GQA) KV heads whose weights the rank keeps
    Range ff;               // dense MLP columns
    Range shared_ff;        // MoE: shared experts' columns
    Range experts;          // MoE: routed experts (expert parallelism)
    Range vocab;            // embedding / LM-head rows
};

// Llama / Qwen2: engine/model/shard.h's tp_shard with `types`. DeepSeek: near-equal runs of heads
// (all of them for data-parallel attention), of the dense MLP columns (whole blocks of types.down_proj
// when n_ff allows), of the shared experts' columns (whole 256-column blocks when they allow it) and
// of the routed experts.
TpShare tp_share(const ModelConfig& cfg, int tp, int rank, AttentionSplit attention, const TpSplitTypes& types = {});

// Layer `il`'s tensors as a rank with `share` holds them (routed experts outside its run left out).
std::vector<TensorShare> layer_tensors(const ModelConfig& cfg, int64_t il, const TpShare& share);
// Every tensor of the model once, whole (tied embeddings once; DeepSeek's MTP layer is not part of
// ModelConfig and not counted): the names and shapes of a Hugging Face checkpoint.
std::vector<TensorShare> model_tensors(const ModelConfig& cfg);

struct ParamCount {
    int64_t total = 0;
    int64_t embedding = 0, lm_head = 0;  // lm_head 0 when tied
    int64_t attention = 0;               // projections (and Qwen2 biases) of self_attn
    int64_t dense_mlp = 0;               // dense SwiGLU MLPs (all layers of a dense model)
    int64_t routed_experts = 0, shared_experts = 0, router = 0;
    int64_t norms = 0;  // every RMSNorm weight
};
ParamCount count_params(const ModelConfig& cfg);

// ---- Grids -------------------------------------------------------------------------------------

struct PlanOptions {
    int nodes = 1, ranks_per_node = 1;
    int64_t mem_per_rank = 0;
    DType kv_dtype = DType::dtype_f32;
    AttentionSplit attention = AttentionSplit::heads;
    int64_t step_tokens = 1040;  // tokens of one model step (activation reserve)
    int64_t overhead_bytes = 0;  // runtime, buffers, allocator slack per rank
    int64_t min_kv_tokens = 0;   // 0: the model's training context (n_ctx_train)
    int64_t target_kv_tokens(const ModelConfig& cfg) const;

    // gridlm plan's defaults for a cluster: the overhead is plan_default_overhead_pct of the memory.
    static PlanOptions cluster(int nodes, int ranks_per_node, int64_t mem_per_rank);
};
inline constexpr double plan_default_overhead_pct = 5.0;

inline constexpr int64_t plan_kv_block_tokens = 64;  // the KV cache's block (engine/kv/kv_cache.h)

// One pipeline stage, as its heaviest tp rank (rank 0) holds it.
struct StageSize {
    Range layers;
    int64_t weight_bytes = 0;
    int64_t kv_bytes_per_token = 0;  // the stage's layers, one token
    int64_t reserve_bytes = 0;       // overhead + activations of one step (+ logits on the last stage)
    int64_t free_bytes = 0;          // memory - weights - reserve (negative: does not fit)
    int64_t kv_tokens = 0;           // whole 64-token blocks of free_bytes, 0 when free_bytes <= 0
};

struct GridSize {
    int dp = 1, pp = 1, tp = 1;
    std::vector<StageSize> stages;
    int64_t weight_bytes = 0;           // of the rank with the least free memory
    int64_t reserve_bytes = 0;          // of that rank
    int64_t free_bytes = 0;             // least free memory of a rank
    int64_t kv_bytes_per_token = 0;     // the largest of any stage (generate sizes blocks by it)
    int64_t kv_tokens_per_rank = 0;     // fewest over the stages: what one replica's ranks can all hold
    int64_t kv_tokens_per_replica = 0;  // tokens of distinct sequences: x tp with data-parallel attention
    int64_t kv_tokens_total = 0;        // x dp
    bool fits = false;                  // every rank holds weights + reserve and the target's tokens
    std::string why_not;                // when !fits
    int model_parallel() const { return pp * tp; }
};

struct Rejection {
    int dp = 1, pp = 1, tp = 1;
    std::string reason;
};

struct FormatPlan {
    WeightFormat weights;
    int64_t model_bytes = 0;          // the whole model once in this format
    std::vector<GridSize> grids;      // every grid the rules allow, fewest model-parallel ranks first
    std::vector<Rejection> rejected;  // grids the rules refuse, with why
    int recommended = -1;             // index into grids, -1 when none fits
    std::string reason;               // why that one, or why none
};

// The grid rules (dp*pp*tp = nodes*ranks_per_node, tp divides ranks_per_node, pp <= layers, the
// model's tp rule) and, per allowed grid, its sizes and the recommendation. `stored` gives the
// checkpoint's tensors for WeightFormat::Kind::stored. Throws UsageError for bad options and
// Error for a config the engine does not run.
FormatPlan plan_grids(const ModelConfig& cfg, const WeightFormat& weights, const PlanOptions& opt,
                      const TensorSource* stored = nullptr);

}  // namespace gridlm
