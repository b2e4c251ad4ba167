// The hung-rank watchdog of a multi-rank job (--watchdog-s). Every rank runs a heartbeat thread on
// its own duplicate of MPI_COMM_WORLD: each sends rank 0 a heartbeat every limit/4 (at most 2 s)
// saying what its main thread is doing (computing, or waiting in which MPI call on which rank and
// for how long, and the steps done); rank 0 answers every rank with its own. Rank 0 watches every
// rank, every rank watches rank 0, so a stopped monitor is caught too. When a watched rank sends
// nothing for the limit (SIGSTOP, a dead node that MPI does not notice), or no rank makes progress
// for the limit (all wait in calls that never complete: a stuck collective or receive), the
// detecting rank logs one `watchdog` line naming the rank (world rank, host, pid, grid role, what
// it was last doing) and ends the job with MPI_Abort(exit code). Needs MPI_THREAD_MULTIPLE.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "parallel/watchdog_judge.h"

namespace gridlm {

class MpiEnv;

// The main thread's side: marks the time it spends inside a blocking MPI call (the communicators
// of parallel/ do this around each one) and counts the job loop's steps. Lock-free; cheap enough
// for every call.
class WaitScope {
public:
    WaitScope(WaitOp op, int peer);  // peer: world rank, -1 for a collective or any rank
    ~WaitScope();
    WaitScope(const WaitScope&) = delete;
    WaitScope& operator=(const WaitScope&) = delete;
};
void watchdog_note_step();    // the job loop finished a step
RankBeat main_thread_beat();  // the main thread's state now (as a heartbeat would carry it)

struct WatchdogOptions {
    double limit_s = 300;  // > 0: seconds of silence, or of no progress anywhere, before the abort
    int exit_code = 1;     // of the aborted job
    // Each world rank's place, for the message: "replica 0, stage 2 of 2, tp rank 1, writer".
    std::vector<std::string> roles;
    // The sentence after the abort message: how to go on.
    std::string after_abort = "The lines written are complete: --resume continues the job.";
};

class Watchdog {
public:
    // True when the watchdog can run: MPI gives MPI_THREAD_MULTIPLE and the job has > 1 rank.
    static bool available(const MpiEnv& mpi);

    // Collective over MPI_COMM_WORLD, on the main thread of every rank: duplicates the
    // communicator, gathers every rank's host and pid on rank 0 and starts the heartbeat thread.
    // Requires available(mpi); roles must have one entry per rank.
    Watchdog(const MpiEnv& mpi, WatchdogOptions o);
    ~Watchdog();  // stop()
    Watchdog(const Watchdog&) = delete;
    Watchdog& operator=(const Watchdog&) = delete;

    // The end of the job on this rank: returns once every rank has called stop() (rank 0 lets all
    // go together), the heartbeat thread ended and the communicator is freed. A rank that never
    // comes is named by the watchdog as above. Idempotent.
    void stop();

private:
    void run_monitor();  // rank 0's thread
    void run_watched();  // the other ranks' thread
    void nap() const;
    [[noreturn]] void fire(const WatchdogJudge& judge, const WatchdogVerdict& v);
    std::string who(int rank) const;  // "rank 3 (replica 0, stage 2 of 2, tp rank 1; host h, pid 42)"

    struct Mpi;  // the communicator and requests (kept out of this header: no mpi.h here)
    const MpiEnv& mpi_;
    WatchdogOptions o_;
    double period_s_, tick_s_;
    std::vector<std::string> hosts_;  // rank 0: every rank's; elsewhere: rank 0's only
    std::vector<long> pids_;
    std::unique_ptr<Mpi> m_;
    std::atomic<bool> stopping_{false};
    std::thread thread_;
    bool stopped_ = false;
};

}  // namespace gridlm
