// The hung-rank watchdog's decisions (parallel/watchdog_judge.h), without MPI: silence, progress,
// what finished ranks count as, and the message parts.
#include <gtest/gtest.h>

#include "parallel/watchdog_judge.h"

using gridlm::RankActivity;
using gridlm::RankBeat;
using gridlm::WaitOp;
using gridlm::WatchdogJudge;
using gridlm::WatchdogVerdict;

namespace {

RankBeat computing(int64_t steps) {
    RankBeat b;
    b.steps = steps;
    return b;
}

RankBeat waiting(WaitOp op, int peer, double for_s, int64_t calls) {
    RankBeat b;
    b.activity = RankActivity::rank_activity_waiting;
    b.op = op;
    b.peer = peer;
    b.in_state_s = for_s;
    b.calls = calls;
    return b;
}

RankBeat finished() {
    RankBeat b;
    b.activity = RankActivity::rank_activity_finished;
    return b;
}

}  // namespace

TEST(WatchdogJudge, RankSilentForTheLimitIsNamed) {
    WatchdogJudge j(3, 5.0, 0.0);
    for (double t = 1; t <= 4; ++t) {
        j.heard(0, computing((int64_t)t), t);
        j.heard(1, computing((int64_t)t), t);
        j.heard(2, computing((int64_t)t), t);
    }
    EXPECT_FALSE(j.check(9.0, {1, 2}, true));  // 5 s since rank 1 and 2 were heard: not more
    j.heard(1, computing(9), 9.0);
    auto v = j.check(9.5, {1, 2}, true);
    ASSERT_TRUE(v);
    EXPECT_EQ(v->kind, WatchdogVerdict::watchdog_silent);
    EXPECT_EQ(v->rank, 2);
    EXPECT_DOUBLE_EQ(v->silent_s, 5.5);
}

TEST(WatchdogJudge, UnwatchedRanksDoNotCount) {
    WatchdogJudge j(3, 2.0, 0.0);
    j.heard(0, computing(1), 10.0);
    EXPECT_FALSE(j.check(10.0, {0}, false));  // ranks 1 and 2 are silent but not watched here
    auto v = j.check(12.5, {0}, false);
    ASSERT_TRUE(v);
    EXPECT_EQ(v->rank, 0);
}

TEST(WatchdogJudge, LongComputeIsProgress) {
    // One rank in a long prefill, the others waiting on it: nothing completes, but it computes.
    WatchdogJudge j(3, 5.0, 0.0);
    for (double t = 0.5; t < 60; t += 0.5) {
        j.heard(0, waiting(WaitOp::wait_op_recv, 2, t, 7), t);
        j.heard(1, waiting(WaitOp::wait_op_allreduce, -1, t, 7), t);
        j.heard(2, computing(3), t);
        ASSERT_FALSE(j.check(t, {1, 2}, true)) << "at " << t;
    }
}

TEST(WatchdogJudge, AllWaitingWithoutCompletedCallsIsStuck) {
    WatchdogJudge j(3, 5.0, 0.0);
    j.heard(2, computing(4), 1.0);  // the last progress
    for (double t = 1.5; t <= 6.0; t += 0.5) {
        j.heard(0, waiting(WaitOp::wait_op_recv, 1, t, 9), t);
        j.heard(1, waiting(WaitOp::wait_op_allreduce, -1, t + 3, 12), t);
        j.heard(2, waiting(WaitOp::wait_op_barrier, -1, t - 1, 5), t);
        j.heard(0, waiting(WaitOp::wait_op_recv, 1, t, 9), t);  // a repeated heartbeat changes nothing
        EXPECT_FALSE(j.check(t, {1, 2}, true)) << "at " << t;
    }
    // The calls counted first at 1.5 s were the last progress. Only the monitor judges progress.
    EXPECT_FALSE(j.check(6.5, {1, 2}, true));
    EXPECT_FALSE(j.check(7.0, {0}, false));
    auto v = j.check(7.0, {1, 2}, true);
    ASSERT_TRUE(v);
    EXPECT_EQ(v->kind, WatchdogVerdict::watchdog_stuck);
    EXPECT_EQ(v->rank, 1);  // waited longest
    EXPECT_EQ(v->waiting, (std::vector<int>{1, 0, 2}));
}

TEST(WatchdogJudge, CompletedCallsAreProgress) {
    // Every heartbeat finds the rank waiting, but its calls complete in between.
    WatchdogJudge j(2, 2.0, 0.0);
    for (int i = 1; i < 40; ++i) {
        const double t = 0.5 * i;
        j.heard(0, waiting(WaitOp::wait_op_recv, 1, 0.01, i), t);
        j.heard(1, waiting(WaitOp::wait_op_send, 0, 0.01, i), t);
        ASSERT_FALSE(j.check(t, {1}, true)) << "at " << t;
    }
}

TEST(WatchdogJudge, FinishedRanksAreNotWatchedButRankZeroIs) {
    WatchdogJudge j(3, 2.0, 0.0);
    j.heard(1, finished(), 1.0);  // rank 1 sends nothing after this
    j.heard(2, computing(1), 9.0);
    j.heard(0, finished(), 9.0);
    EXPECT_FALSE(j.check(9.0, {1, 2}, true));
    EXPECT_FALSE(j.all_finished_but(0));
    j.heard(2, finished(), 9.5);
    EXPECT_TRUE(j.all_finished_but(0));
    // A rank > 0 watching rank 0: rank 0 keeps sending after it finished, so its silence counts.
    auto v = j.check(11.5, {0}, false);
    ASSERT_TRUE(v);
    EXPECT_EQ(v->rank, 0);
}

TEST(WatchdogJudge, DescribesWhatARankDoes) {
    EXPECT_EQ(gridlm::describe_beat(waiting(WaitOp::wait_op_recv, 3, 1.3, 0)), "waiting in recv from rank 3 for 1.3 s");
    EXPECT_EQ(gridlm::describe_beat(waiting(WaitOp::wait_op_send_wait, 1, 0.5, 0)),
              "waiting in send completion to rank 1 for 0.5 s");
    EXPECT_EQ(gridlm::describe_beat(waiting(WaitOp::wait_op_allreduce, -1, 12, 0)), "waiting in allreduce for 12.0 s");
    EXPECT_EQ(gridlm::describe_beat(computing(57)), "computing, 57 steps done");
}
