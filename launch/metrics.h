// `gridlm generate --metrics-file`: the job's figures as a Prometheus text file, rewritten atomically
// every few seconds for node_exporter's textfile collector (docs/user-guide.md "Metrics").
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <type_traits>
#include <vector>

namespace gridlm {

// One rank's figures since the job started. The writer rank gathers them from every rank as a
// fixed array of doubles (to_array / from_array), so the struct stays trivially copyable.
struct RankMetrics {
    int rank = 0;                 // world rank
    int replica = 0;              // data-parallel index
    int stage = 0;                // pipeline stage
    int tp_rank = 0;              // tensor-parallel index within the stage
    int peer_stage = -1;          // stage its activations / tokens go to (the next; the last sends back to 0), -1: none
    double busy_s = 0;            // seconds spent in model steps
    double wall_s = 0;            // seconds since the rank started the job loop
    double bytes_sent = 0;        // bytes sent to peer_stage
    double rss_bytes = 0;         // resident set size now (resident_bytes())
    double tokens_processed = 0;  // tokens run through this rank's layers
    double steps = 0;             // model steps run

    static constexpr size_t n_fields = 11;
    std::array<double, n_fields> to_array() const;
    static RankMetrics from_array(const std::array<double, n_fields>& a);
};
static_assert(std::is_trivially_copyable_v<RankMetrics>);

// What the writer rank knows of the whole job. Counts are since the job started (a resumed job
// starts again from 0: Prometheus treats that as a counter reset).
struct JobMetrics {
    std::string job_id;                          // default_job_id(), or what the caller gives
    std::map<std::string, std::string> info;     // extra labels of gridlm_job_info (model, grid...);
                                                 // names must match [a-zA-Z_][a-zA-Z0-9_]*
    std::map<std::string, int64_t> records;      // status -> records written: "ok", "filtered", and
                                                 // error kinds ("invalid_json", "context_length"...)
    std::map<std::string, int64_t> filter_hits;  // "ACTION/WHERE" ("redact/prompt") -> content filter hits
    int64_t records_input = -1;                  // records in the input, -1: unknown
    int64_t prompt_tokens = 0;                   // of finished records
    int64_t completion_tokens = 0;               // generated, of finished records
    double tokens_per_s = 0;                     // tokens through the model per second, job so far
    double eta_s = -1;                           // seconds left, -1: unknown
    double elapsed_s = 0;                        // seconds since the job started
    int64_t running = 0;                         // sequences in the batch now
    int64_t queued = 0;                          // requests read and waiting for a slot
    int64_t preempted_total = 0;                 // preemptions so far
    int64_t kv_blocks_used = 0;                  // KV cache blocks held now
    int64_t kv_blocks_free = -1;                 // -1: no KV budget (--kv-cache-bytes not given)
    int64_t prefix_cache_hits = 0;               // sequences that reused a cached prefix
    int64_t prefix_tokens_reused = 0;            // prompt tokens not recomputed thanks to it
    double max_error_rate = -1;                  // --max-error-rate, < 0: no breaker
    bool breaker_tripped = false;                // the job stopped on --max-error-rate
    std::vector<RankMetrics> ranks;              // every rank, any order
    bool finished = false;                       // the last write of the job
};

// The Prometheus text exposition format 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/): per family one # HELP and one
// # TYPE line, then its samples; counters end in _total; label values escape \ " and newline; no
// timestamps (the textfile collector refuses them). Every series carries job_id. Families with no
// sample (an unknown ETA, no KV budget) are left out. Throws Error on an info label name that
// Prometheus does not accept.
std::string format_prometheus(const JobMetrics& m);

// Writes the metrics file: PATH.tmp.<pid>, then rename() over PATH, so a reader (node_exporter's
// textfile collector reads *.prom in its directory) sees the old file or the new one, never half
// of one.
class MetricsFile {
public:
    // Throws Error when PATH's directory does not exist. interval_s: seconds between writes of
    // maybe_write(). now: the clock in seconds (steady clock by default; tests pass their own).
    explicit MetricsFile(std::string path, double interval_s = 5.0, std::function<double()> now = {});

    // True when no write has happened yet or interval_s has passed since the last one.
    bool due() const;
    // Writes when due(); returns whether it wrote.
    bool maybe_write(const JobMetrics& m);
    // Writes now (the end of the job, with m.finished set). Throws Error naming the file and the
    // system's reason when it cannot be written.
    void write(const JobMetrics& m);

    const std::string& path() const { return path_; }
    int64_t writes() const { return writes_; }

private:
    std::string path_;
    double interval_s_;
    std::function<double()> now_;
    double last_ = 0;
    int64_t writes_ = 0;
};

// Resident set size of this process in bytes (/proc/self/statm), 0 when unknown.
int64_t resident_bytes();

// The job id label: $SLURM_JOB_ID, else $PBS_JOBID, else $LSB_JOBID, else "<host>-<pid>-<UTC start
// time as YYYYmmddTHHMMSS>" (the same value on every call of the process).
std::string default_job_id();

}  // namespace gridlm
