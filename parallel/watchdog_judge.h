// The hung-rank watchdog's decisions, without MPI: what a heartbeat says about a rank's main
// thread, and when a rank counts as silent (no heartbeat for the limit) or the job as stuck (no
// rank made progress for the limit). parallel/watchdog.h carries the heartbeats between ranks.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace gridlm {

// What a rank's main thread is doing. waiting: inside a blocking MPI call (a receive, a send's
// completion, a collective, a probe); finished: done with the job, waiting for the other ranks
// to finish too; computing: anything else (a forward step, sampling, writing a line).
enum class RankActivity : int { rank_activity_computing = 0, rank_activity_waiting = 1, rank_activity_finished = 2 };

// The blocking MPI call a waiting rank is in.
enum class WaitOp : int {
    wait_op_none = 0,
    wait_op_send,
    wait_op_recv,
    wait_op_send_wait,  // waiting for an earlier non-blocking send to complete
    wait_op_probe,      // waiting for a message from any rank
    wait_op_allreduce,
    wait_op_allgather,
    wait_op_broadcast,
    wait_op_barrier,
};
const char* wait_op_name(WaitOp op);  // "recv", "allreduce", ...

// One heartbeat: the state of its sender's main thread when it was sent.
struct RankBeat {
    RankActivity activity = RankActivity::rank_activity_computing;
    WaitOp op = WaitOp::wait_op_none;  // while waiting
    int peer = -1;                     // world rank waited on; -1: a collective or any rank
    double in_state_s = 0;             // seconds the main thread had been in this activity (this call)
    int64_t calls = 0;                 // blocking MPI calls the main thread has completed so far
    int64_t steps = 0;                 // job loop steps done so far
};

// "waiting in recv from rank 1 for 0.4 s, 57 steps done" / "computing, 57 steps done" (no steps
// part while none are counted).
std::string describe_beat(const RankBeat& b);

struct WatchdogVerdict {
    enum Kind { watchdog_silent, watchdog_stuck } kind;
    int rank = -1;             // the silent rank; for stuck, the rank that has waited longest
    double silent_s = 0;       // watchdog_silent: seconds since its last heartbeat
    std::vector<int> waiting;  // watchdog_stuck: the ranks' waits, longest first
};

// Keeps the last heartbeat of every rank and the times it came (in the caller's clock, seconds).
class WatchdogJudge {
public:
    // ranks: the job's world size; limit_s > 0; now: the start (every rank counts as heard then).
    WatchdogJudge(int ranks, double limit_s, double now);

    // A heartbeat of `rank` arrived at `now`. Progress: its completed calls or steps changed, or it
    // is computing.
    void heard(int rank, const RankBeat& beat, double now);

    // watched: the ranks whose silence counts (the monitor watches every rank, the others watch
    // the monitor); a rank > 0 whose last heartbeat said finished is not watched any more (it
    // sends no more), rank 0 is watched until the end.
    // judge_progress: also judge whether any rank made progress within the limit (the monitor).
    // A silent rank comes first; nullopt: all is well.
    std::optional<WatchdogVerdict> check(double now, const std::vector<int>& watched, bool judge_progress) const;

    const RankBeat& last(int rank) const { return beats_.at((size_t)rank); }
    double last_heard(int rank) const { return heard_.at((size_t)rank); }
    bool all_finished_but(int rank) const;  // every rank other than `rank` said finished

private:
    double limit_s_;
    std::vector<RankBeat> beats_;
    std::vector<double> heard_;  // when each rank was last heard
    double progress_ = 0;        // when any rank last made progress
};

}  // namespace gridlm
