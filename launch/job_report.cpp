// What `gridlm generate` prints about its grid and KV cache (see job_report.h).
#include "launch/job_report.h"

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "engine/core/communicator.h"
#include "engine/core/error.h"
#include "engine/core/log.h"
#include "engine/kv/kv_cache.h"
#include "engine/model/model.h"
#include "launch/generate_job.h"
#include "parallel/topology.h"

namespace gridlm {
namespace {

std::string seconds(double s) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.2f s", s);
    return buf;
}

}  // namespace

std::string report_mib(double bytes) { return str((int64_t)std::llround(bytes / (1 << 20)), " MiB"); }

void report_shards(Communicator& world, const Topology& topo, const Model& model, bool print) {
    const ModelShard& s = model.shard();
    const float mine[6] = {(float)s.layers.begin,     (float)s.layers.end(),       (float)s.tp.heads.size,
                           (float)s.tp.kv_heads.size, (float)model.weight_bytes(), (float)s.head};
    std::vector<float> all(6 * (size_t)world.size());
    world.allgather(mine, 6, all.data());
    if (!print || world.size() == 1) return;
    for (int r = 0; r < world.size(); ++r) {
        const float* v = &all[6 * (size_t)r];
        const GridCoord c = topo.coord_of(r);
        // The rank a line is about goes in shard_rank / dp_replica / pp_stage / tp_rank: rank,
        // replica and stage of the line itself name the rank that prints it.
        log_info("shard",
                 str(topo.describe(r), ": layers ", (int)v[0], "..", (int)v[1] - 1, v[5] != 0 ? " + head" : "", ", ",
                     (int)v[2], " heads, ", (int)v[3], " KV heads, ", report_mib(v[4]), " weights"),
                 {{"shard_rank", r},
                  {"dp_replica", c.dp},
                  {"pp_stage", c.pp},
                  {"tp_rank", c.tp},
                  {"layer_first", (int)v[0]},
                  {"layer_last", (int)v[1] - 1},
                  {"lm_head", v[5] != 0},
                  {"heads", (int)v[2]},
                  {"kv_heads", (int)v[3]},
                  {"weight_bytes", (int64_t)v[4]}});
    }
}

void report_grid(Communicator& world, const Topology& topo, const Model& model, const GenerateJobResult& r, bool print,
                 int micro_batches) {
    const float mine[6] = {(float)r.busy_s,         (float)r.wall_s,           (float)r.act_bytes_sent,
                           (float)model.tp_bytes(), (float)r.tokens_processed, (float)r.steps};
    std::vector<float> all(6 * (size_t)world.size());
    world.allgather(mine, 6, all.data());
    const GridShape& g = topo.shape();
    if (!print || world.size() == 1) return;
    log_info("grid",
             str("grid dp=", g.dp, " pp=", g.pp, " tp=", g.tp, ", ", micro_batches, " micro-batches per replica"),
             {{"dp", g.dp}, {"pp", g.pp}, {"tp", g.tp}, {"micro_batches", micro_batches}});
    double bubble = 0;
    for (int stage = 0; stage < g.pp; ++stage) {
        const float* v = &all[6 * (size_t)topo.rank_of({0, stage, 0})];  // replica 0, tp rank 0
        const double busy = v[1] > 0 ? v[0] / v[1] : 0.0;
        bubble += 1.0 - busy;
        std::string line = str("  stage ", stage, ": busy ", seconds(v[0]), " of ", seconds(v[1]), " (",
                               (int)std::lround(100 * busy), "%), ", (int64_t)v[5], " steps");
        nlohmann::ordered_json f = {{"pp_stage", stage},  {"busy_s", v[0]},         {"wall_s", v[1]},
                                    {"busy_share", busy}, {"steps", (int64_t)v[5]}, {"tokens", (int64_t)v[4]}};
        if (stage + 1 < g.pp && v[4] > 0) {
            line += str(", sends ", report_mib(v[2]), " (", (int64_t)std::lround(v[2] / v[4]), " B per token)");
            f["sent_bytes"] = (int64_t)v[2];
            f["sent_bytes_per_token"] = (int64_t)std::lround(v[2] / v[4]);
        }
        if (g.tp > 1 && v[4] > 0) {
            line += str(", TP collectives ", (int64_t)std::lround(v[3] / v[4]), " B per token");
            f["tp_bytes_per_token"] = (int64_t)std::lround(v[3] / v[4]);
        }
        log_info("stage_time", line, f);
    }
    if (g.pp > 1) {
        char pct[32];
        std::snprintf(pct, sizeof pct, "%.1f", 100 * bubble / g.pp);
        log_info("pipeline_bubble", str("  pipeline bubble ", pct, "% (idle share of stage time)"),
                 {{"bubble_share", bubble / g.pp}});
    }
}

void report_checkpoints(Communicator& world, const Topology& topo, const GenerateJobResult& r, bool print) {
    const float mine[2] = {(float)r.checkpoint_bytes_peak, (float)r.restore_s};
    std::vector<float> all(2 * (size_t)world.size());
    world.allgather(mine, 2, all.data());
    for (int stage = 0; print && stage < topo.shape().pp; ++stage) {
        const float* v = &all[2 * (size_t)topo.rank_of({0, stage, 0})];
        log_info("stage_checkpoints",
                 str("  stage ", stage, ": stage inputs held at most ", report_mib(v[0]),
                     ", KV rebuilt from checkpoints in ", seconds(v[1])),
                 {{"pp_stage", stage}, {"checkpoint_bytes_peak", (int64_t)v[0]}, {"restore_s", v[1]}});
    }
}

void report_kv_budget(const BlockKvCache& cache, int64_t kv_blocks) {
    log_info("kv_cache",
             str("KV cache budget: ", kv_blocks, kv_blocks == 1 ? " block of " : " blocks of ", cache.block_size(),
                 " tokens (", report_mib(cache.block_bytes()), " per block on this rank)"),
             {{"kv_blocks", kv_blocks}, {"block_tokens", cache.block_size()}, {"block_bytes", cache.block_bytes()}});
}

void report_kv_usage(const BlockKvCache& cache, const GenerateJobResult& r, int64_t kv_blocks) {
    const double allocated_bytes = (double)cache.blocks_allocated() * cache.block_bytes();
    log_info("kv_usage",
             str("KV cache (replica 0): ", r.preemptions, " preemptions, ", r.recomputed_tokens, " tokens recomputed, ",
                 cache.prefix_tokens_reused(), " prompt tokens reused from cached prefixes, ", cache.blocks_allocated(),
                 " of ", kv_blocks, " blocks allocated (", report_mib(allocated_bytes), ")"),
             {{"kv_replica", 0},
              {"preemptions", r.preemptions},
              {"recomputed_tokens", r.recomputed_tokens},
              {"prefix_tokens_reused", cache.prefix_tokens_reused()},
              {"blocks_allocated", cache.blocks_allocated()},
              {"kv_blocks", kv_blocks},
              {"allocated_bytes", (int64_t)allocated_bytes}});
}

}  // namespace gridlm
