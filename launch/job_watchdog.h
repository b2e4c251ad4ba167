// --watchdog-s of a multi-rank job: starts the hung-rank watchdog (parallel/watchdog.h) with every
// rank's grid role for its messages, and counts the job loop's steps for it.
#pragma once

#include <memory>

#include "launch/generate_job.h"

namespace gridlm {

class MpiEnv;
class Topology;
class Watchdog;

class JobWatchdog final : public JobObserver {
public:
    // Collective over every rank of the job. limit_s: --watchdog-s; 0 (off), a single rank or an
    // MPI without MPI_THREAD_MULTIPLE (the writer logs a warning then) start nothing: active()
    // is false. inner: the observer the loop had before (the metrics monitor), or nullptr.
    // `after_abort`: the abort message's last sentence, how to go on (empty: "--resume continues").
    JobWatchdog(const MpiEnv& mpi, const Topology& topo, int writer_rank, double limit_s, JobObserver* inner,
                const std::string& after_abort = "");
    ~JobWatchdog() override;  // stop()

    bool active() const { return watchdog_ != nullptr; }
    // The observer the job loop gets: this one when active (it passes every call on to inner), else inner.
    JobObserver* observer() { return active() ? this : inner_; }
    // The end of the job on this rank: returns once every rank got here (see Watchdog::stop).
    void stop();

    void on_step(const JobLoopState& s) override;
    void on_end(const JobLoopState& s) override;

private:
    std::unique_ptr<Watchdog> watchdog_;
    JobObserver* inner_;
};

}  // namespace gridlm
