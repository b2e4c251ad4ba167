// What --filter, --metrics-file and --trace add to a generate job: the rule set loaded at start-up,
// the per-rank tracer and metrics monitor handed to the job loop, and the files written at the end.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

namespace gridlm {

class Communicator;
class Topology;
class Progress;
class BlockKvCache;
class ContentFilter;
class Tracer;
class JobMonitor;
class JobObserver;
struct GenerateSettings;
struct GenerateJobResult;

class JobOperations {
public:
    JobOperations();
    ~JobOperations();

    // Start-up (inside a collective phase): loads --filter's rules. Throws Error naming the file
    // and line of a bad rule.
    void load_filter(const GenerateSettings& s);

    // Collective, once the grid exists: the tracer (every rank shares rank 0's clock origin) and
    // the metrics monitor (the writer checks that the metrics file's directory exists: throws
    // Error). progress: the writer's; kv: this rank's block cache (nullptr for another kind).
    void start(const GenerateSettings& s, Communicator& world, const Topology& topo, int writer_rank,
               const Progress* progress, const BlockKvCache* kv, int64_t kv_blocks,
               std::map<std::string, std::string> info);

    const ContentFilter* filter() const { return filter_.get(); }
    Tracer* tracer() const { return tracer_.get(); }
    JobObserver* observer() const;  // the metrics monitor, nullptr without --metrics-file

    // The end: the metrics file's last version and the merged trace (every rank's events sent to
    // the writer, which writes --trace). Collective, unless `alone`: the writer stopped without
    // the others (SIGTERM, --max-error-rate) and writes what it has (its own events only).
    // summary: the job's figures, kept in the trace for `gridlm report`.
    void finish(const GenerateJobResult& r, bool alone, const nlohmann::ordered_json& summary);

private:
    std::unique_ptr<ContentFilter> filter_;
    std::unique_ptr<Tracer> tracer_;
    std::unique_ptr<JobMonitor> monitor_;
    Communicator* world_ = nullptr;
    int writer_rank_ = 0;
    std::string trace_path_;
};

}  // namespace gridlm
