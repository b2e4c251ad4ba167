// The hung-rank watchdog's decisions (see watchdog_judge.h).
#include "parallel/watchdog_judge.h"

#include <algorithm>
#include <cstdio>

#include "engine/core/error.h"

namespace gridlm {

const char* wait_op_name(WaitOp op) {
    switch (op) {
        case WaitOp::wait_op_none:
            return "nothing";
        case WaitOp::wait_op_send:
            return "send";
        case WaitOp::wait_op_recv:
            return "recv";
        case WaitOp::wait_op_send_wait:
            return "send completion";
        case WaitOp::wait_op_probe:
            return "probe";
        case WaitOp::wait_op_allreduce:
            return "allreduce";
        case WaitOp::wait_op_allgather:
            return "allgather";
        case WaitOp::wait_op_broadcast:
            return "broadcast";
        case WaitOp::wait_op_barrier:
            return "barrier";
    }
    return "unknown call";
}

std::string describe_beat(const RankBeat& b) {
    char secs[32];
    std::snprintf(secs, sizeof(secs), "%.1f", b.in_state_s);
    std::string s;
    switch (b.activity) {
        case RankActivity::rank_activity_computing:
            s = "computing";
            break;
        case RankActivity::rank_activity_finished:
            s = "finished, waiting for the other ranks";
            break;
        case RankActivity::rank_activity_waiting: {
            const bool to = b.op == WaitOp::wait_op_send || b.op == WaitOp::wait_op_send_wait;
            s = str("waiting in ", wait_op_name(b.op));
            if (b.peer >= 0) s += str(to ? " to rank " : " from rank ", b.peer);
            s += str(" for ", secs, " s");
            break;
        }
    }
    return b.steps > 0 ? str(s, ", ", b.steps, " steps done") : s;
}

WatchdogJudge::WatchdogJudge(int ranks, double limit_s, double now)
    : limit_s_(limit_s), beats_((size_t)ranks), heard_((size_t)ranks, now), progress_(now) {
    GRIDLM_ASSERT(ranks >= 1 && limit_s > 0);
}

void WatchdogJudge::heard(int rank, const RankBeat& beat, double now) {
    RankBeat& old = beats_.at((size_t)rank);
    if (beat.calls != old.calls || beat.steps != old.steps || beat.activity == RankActivity::rank_activity_computing)
        progress_ = std::max(progress_, now);
    old = beat;
    heard_[(size_t)rank] = std::max(heard_[(size_t)rank], now);
}

bool WatchdogJudge::all_finished_but(int rank) const {
    for (size_t r = 0; r < beats_.size(); ++r)
        if ((int)r != rank && beats_[r].activity != RankActivity::rank_activity_finished) return false;
    return true;
}

std::optional<WatchdogVerdict> WatchdogJudge::check(double now, const std::vector<int>& watched,
                                                    bool judge_progress) const {
    std::optional<WatchdogVerdict> silent;
    for (int r : watched) {
        // A finished heartbeat is the last a rank > 0 sends; rank 0 goes on until it lets all go.
        if (r != 0 && beats_.at((size_t)r).activity == RankActivity::rank_activity_finished) continue;
        const double quiet = now - heard_[(size_t)r];
        if (quiet > limit_s_ && (!silent || quiet > silent->silent_s))
            silent = WatchdogVerdict{WatchdogVerdict::watchdog_silent, r, quiet, {}};
    }
    if (silent || !judge_progress || now - progress_ <= limit_s_) return silent;
    // No progress anywhere for the limit: every rank waits (or has finished) and none of the
    // calls completed. Name the waits, longest first.
    WatchdogVerdict v{WatchdogVerdict::watchdog_stuck, -1, 0, {}};
    for (size_t r = 0; r < beats_.size(); ++r)
        if (beats_[r].activity == RankActivity::rank_activity_waiting) v.waiting.push_back((int)r);
    std::stable_sort(v.waiting.begin(), v.waiting.end(),
                     [&](int a, int b) { return beats_[(size_t)a].in_state_s > beats_[(size_t)b].in_state_s; });
    v.rank = v.waiting.empty() ? 0 : v.waiting.front();
    return v;
}

}  // namespace gridlm
