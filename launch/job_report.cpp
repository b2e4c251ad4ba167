// What `gridlm generate` prints about its grid and KV cache (see job_report.h).
#include "launch/job_report.h"

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "engine/core/communicator.h"
#include "engine/core/error.h"
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
        std::fprintf(stderr, "gridlm: %s: layers %d..%d%s, %d heads, %d KV heads, %s weights\n",
                     topo.describe(r).c_str(), (int)v[0], (int)v[1] - 1, v[5] != 0 ? " + head" : "", (int)v[2],
                     (int)v[3], report_mib(v[4]).c_str());
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
    std::fprintf(stderr, "gridlm: grid dp=%d pp=%d tp=%d, %d micro-batches per replica\n", g.dp, g.pp, g.tp,
                 micro_batches);
    double bubble = 0;
    for (int stage = 0; stage < g.pp; ++stage) {
        const float* v = &all[6 * (size_t)topo.rank_of({0, stage, 0})];  // replica 0, tp rank 0
        const double busy = v[1] > 0 ? v[0] / v[1] : 0.0;
        bubble += 1.0 - busy;
        std::string line = str("gridlm:   stage ", stage, ": busy ", seconds(v[0]), " of ", seconds(v[1]), " (",
                               (int)std::lround(100 * busy), "%), ", (int64_t)v[5], " steps");
        if (stage + 1 < g.pp && v[4] > 0)
            line += str(", sends ", report_mib(v[2]), " (", (int64_t)std::lround(v[2] / v[4]), " B per token)");
        if (g.tp > 1 && v[4] > 0) line += str(", TP collectives ", (int64_t)std::lround(v[3] / v[4]), " B per token");
        std::fprintf(stderr, "%s\n", line.c_str());
    }
    if (g.pp > 1)
        std::fprintf(stderr, "gridlm:   pipeline bubble %.1f%% (idle share of stage time)\n", 100 * bubble / g.pp);
}

void report_checkpoints(Communicator& world, const Topology& topo, const GenerateJobResult& r, bool print) {
    const float mine[2] = {(float)r.checkpoint_bytes_peak, (float)r.restore_s};
    std::vector<float> all(2 * (size_t)world.size());
    world.allgather(mine, 2, all.data());
    for (int stage = 0; print && stage < topo.shape().pp; ++stage) {
        const float* v = &all[2 * (size_t)topo.rank_of({0, stage, 0})];
        std::fprintf(stderr, "gridlm:   stage %d: stage inputs held at most %s, KV rebuilt from checkpoints in %s\n",
                     stage, report_mib(v[0]).c_str(), seconds(v[1]).c_str());
    }
}

void report_kv_budget(const BlockKvCache& cache, int64_t kv_blocks) {
    std::fprintf(stderr, "gridlm: KV cache budget: %lld blocks of %lld tokens (%s per block on this rank)\n",
                 (long long)kv_blocks, (long long)cache.block_size(), report_mib(cache.block_bytes()).c_str());
}

void report_kv_usage(const BlockKvCache& cache, const GenerateJobResult& r, int64_t kv_blocks) {
    std::fprintf(stderr,
                 "gridlm: KV cache (replica 0): %lld preemptions, %lld tokens recomputed, %lld prompt tokens reused "
                 "from cached prefixes, %lld of %lld blocks allocated (%s)\n",
                 (long long)r.preemptions, (long long)r.recomputed_tokens, (long long)cache.prefix_tokens_reused(),
                 (long long)cache.blocks_allocated(), (long long)kv_blocks,
                 report_mib((double)cache.blocks_allocated() * cache.block_bytes()).c_str());
}

}  // namespace gridlm
