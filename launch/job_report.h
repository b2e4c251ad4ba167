// What `gridlm generate` prints on stderr about its grid and KV cache: each rank's shard, each
// stage's busy time and traffic, the KV budget and its use. Gathered from every rank, printed by one.
#pragma once

#include <cstdint>
#include <string>

namespace gridlm {

class Communicator;
class Topology;
class Model;
class BlockKvCache;
struct GenerateJobResult;

// "1234 MiB"
std::string report_mib(double bytes);

// Collective: one line per rank with its layers, heads and weight bytes, printed when `print`
// (and more than one rank).
void report_shards(Communicator& world, const Topology& topo, const Model& model, bool print);

// Collective: per-stage busy time, pipeline bubble and bytes sent, printed when `print` (and more
// than one rank).
void report_grid(Communicator& world, const Topology& topo, const Model& model, const GenerateJobResult& r, bool print,
                 int micro_batches);

// Collective: each stage's checkpoint memory and KV rebuild time (replica 0, tp rank 0), printed
// when `print`.
void report_checkpoints(Communicator& world, const Topology& topo, const GenerateJobResult& r, bool print);

// The KV budget in blocks, at start-up.
void report_kv_budget(const BlockKvCache& cache, int64_t kv_blocks);

// Preemptions, recomputed tokens, prefix reuse and blocks allocated, at the end.
void report_kv_usage(const BlockKvCache& cache, const GenerateJobResult& r, int64_t kv_blocks);

}  // namespace gridlm
