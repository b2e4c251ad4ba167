// `gridlm generate --metrics-file`: every rank's figures (busy time, bytes sent, RSS) reach the
// writer rank as small messages every --metrics-interval, and the writer rewrites the metrics file
// (launch/metrics.h) with them and its own view of the job (records, tokens, ETA, KV blocks).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "launch/generate_job.h"
#include "launch/metrics.h"

namespace gridlm {

class Communicator;
class Progress;
class BlockKvCache;
class PendingSend;

struct JobMonitorOptions {
    std::string path;         // --metrics-file (read on the writer only)
    double interval_s = 5.0;  // --metrics-interval
    Communicator* world = nullptr;
    int writer_rank = 0;                      // world rank of the writer
    RankMetrics me;                           // this rank's place (rank, replica, stage, tp_rank, peer_stage)
    const Progress* progress = nullptr;       // writer: records and tokens
    const BlockKvCache* kv = nullptr;         // this rank's cache when it has a block budget
    int64_t kv_blocks = 0;                    // the budget in blocks, 0: none
    std::string job_id;                       // default_job_id() when empty
    std::map<std::string, std::string> info;  // labels of gridlm_job_info
    double max_error_rate = -1;
};

// A JobObserver (called by the job loop on every rank). Non-writer ranks send their RankMetrics at
// most every interval and a last one when their loop ends; the writer takes them as they come and
// writes the file at most every interval. At the end the writer waits for every rank's last
// figures, unless it stopped alone (SIGTERM, --max-error-rate), then writes what it has.
class JobMonitor final : public JobObserver {
public:
    explicit JobMonitor(JobMonitorOptions o);
    ~JobMonitor() override;

    void on_step(const JobLoopState& s) override;
    void on_end(const JobLoopState& s) override;

    // Writer: the file's last version, once the job's end is known (breaker: --max-error-rate
    // stopped it). Throws Error when the file cannot be written.
    void write_final(bool breaker);

    bool writer() const;
    const JobMetrics& metrics() const { return m_; }

private:
    using Packet = std::array<double, RankMetrics::n_fields + 1>;  // + 1: "last" flag
    void refresh_me(const JobLoopState& s);
    void send(bool last);
    void receive(bool wait);
    void fill(const JobLoopState& s);

    JobMonitorOptions o_;
    std::unique_ptr<MetricsFile> file_;  // writer
    std::vector<RankMetrics> ranks_;     // writer: by world rank
    std::vector<bool> last_seen_;        // writer: a rank's last figures have come
    int lasts_ = 0;
    JobMetrics m_;
    double start_ = 0, last_send_ = -1e300;
    Packet out_{};
    std::unique_ptr<PendingSend> pending_;
};

}  // namespace gridlm
