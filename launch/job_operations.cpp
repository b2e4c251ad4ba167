// --filter, --metrics-file and --trace of a generate job (see job_operations.h).
#include "launch/job_operations.h"

#include <filesystem>
#include <vector>

#include "engine/core/communicator.h"
#include "engine/core/error.h"
#include "engine/filter/content_filter.h"
#include "launch/generate_options.h"
#include "launch/job_monitor.h"
#include "launch/trace.h"
#include "parallel/topology.h"

namespace gridlm {
namespace {

// Trace strings travel to the writer on the world communicator, after the monitor's last message.
enum Tag : int { tag_trace_size = 41, tag_trace = 42 };

void check_directory(const std::string& path, const char* option) {
    const std::filesystem::path dir = std::filesystem::absolute(path).parent_path();
    if (!std::filesystem::is_directory(dir))
        throw Error(str(option, " ", path, ": the directory ", dir.string(), " does not exist"));
}

}  // namespace

JobOperations::JobOperations() = default;
JobOperations::~JobOperations() = default;

JobObserver* JobOperations::observer() const { return monitor_.get(); }

void JobOperations::load_filter(const GenerateSettings& s) {
    if (s.filter.empty()) return;
    filter_ = std::make_unique<ContentFilter>(ContentFilter::from_file(s.filter));
    if (filter_->empty()) throw Error(str("--filter ", s.filter, ": the file has no rules"));
}

void JobOperations::start(const GenerateSettings& s, Communicator& world, const Topology& topo, int writer_rank,
                          const Progress* progress, const BlockKvCache* kv, int64_t kv_blocks,
                          std::map<std::string, std::string> info) {
    world_ = &world;
    writer_rank_ = writer_rank;
    double epoch = Tracer::now_s();
    world.broadcast(&epoch, sizeof(epoch), 0);
    const int rank = world.rank();
    const bool writer = rank == writer_rank;
    if (!s.trace_file.empty()) {
        trace_path_ = s.trace_file;
        if (writer) check_directory(trace_path_, "--trace");
        tracer_ = std::make_unique<Tracer>(rank, topo.describe(rank), epoch);
    }
    if (s.metrics_file.empty()) return;
    if (writer) check_directory(s.metrics_file, "--metrics-file");
    const GridCoord c = topo.coord_of(rank);
    JobMonitorOptions o;
    o.path = s.metrics_file;
    o.interval_s = s.metrics_interval_s;
    o.world = &world;
    o.writer_rank = writer_rank;
    o.me.rank = rank;
    o.me.replica = c.dp;
    o.me.stage = c.pp;
    o.me.tp_rank = c.tp;
    // Activations go to the next stage; the last stage sends sampled tokens back to the first.
    o.me.peer_stage = topo.shape().pp == 1 ? -1 : (c.pp + 1) % topo.shape().pp;
    o.progress = progress;
    o.kv = kv;
    o.kv_blocks = kv_blocks;
    o.info = std::move(info);
    o.max_error_rate = s.max_error_rate;
    monitor_ = std::make_unique<JobMonitor>(std::move(o));
}

void JobOperations::finish(const GenerateJobResult& r, bool alone, const nlohmann::ordered_json& summary) {
    const bool writer = world_ != nullptr && world_->rank() == writer_rank_;
    if (monitor_) monitor_->write_final(r.breaker);
    if (!tracer_) return;
    if (writer) tracer_->set_summary(summary);
    std::string mine = tracer_->serialize();
    // The writer takes the monitor's messages with a probe for any tag: no trace may arrive
    // before it has taken the last of them.
    if (!alone) world_->barrier();
    if (!writer) {
        if (alone) return;
        const int64_t n = (int64_t)mine.size();
        world_->send(&n, sizeof(n), writer_rank_, tag_trace_size);
        world_->send(mine.data(), mine.size(), writer_rank_, tag_trace);
        return;
    }
    std::vector<std::string> traces((size_t)world_->size());
    for (int src = 0; src < world_->size() && !alone; ++src) {
        if (src == writer_rank_) continue;
        int64_t n = 0;
        world_->recv(&n, sizeof(n), src, tag_trace_size);
        traces[(size_t)src].resize((size_t)n);
        world_->recv(traces[(size_t)src].data(), (size_t)n, src, tag_trace);
    }
    traces[(size_t)writer_rank_] = std::move(mine);
    write_merged_trace(trace_path_, traces);
}

}  // namespace gridlm
