// The CPU backend's thread team (engine/backend/cpu/thread_pool.h) and the work sharing on top of
// it (parallel.h): coverage of every index, many back-to-back dispatches, exceptions, nesting,
// concurrent callers and destruction, with the spin-then-sleep wait and with sleeping at once; and
// the ops split over a team give the same bits as on one thread.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <future>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "engine/backend/backend.h"
#include "engine/backend/cpu/cpu_ops.h"
#include "engine/backend/cpu/parallel.h"
#include "engine/backend/cpu/thread_pool.h"
#include "engine/core/error.h"
#include "test_support.h"

using namespace gridlm;
using cpu::CpuContext;
using cpu::ThreadPool;
using cpu::ThreadPoolOptions;

namespace {

// Pool sizes to try: 1 (no workers), 2 (the usual), odd sizes and more threads than cores.
const int kSizes[] = {1, 2, 3, 4, 7};

// Spin budgets: the default spin-then-sleep and sleeping at once (every wait goes to the futex).
const int kSpins[] = {cpu::default_spin_us, 0};

// Waits (yielding) until pred() holds; false after 20 s.
template <typename P>
bool eventually(P pred) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!pred()) {
        if (std::chrono::steady_clock::now() > end) return false;
        std::this_thread::yield();
    }
    return true;
}

// Runs body on a thread of its own; a body that has not returned after `seconds` (a deadlock, a
// lost wake-up) fails the test and ends the process instead of hanging until the ctest timeout.
template <typename F>
void within(int seconds, F body) {
    std::packaged_task<void()> task(body);
    std::future<void> done = task.get_future();
    std::thread t(std::move(task));
    if (done.wait_for(std::chrono::seconds(seconds)) != std::future_status::ready) {
        ADD_FAILURE() << "still running after " << seconds << " s: deadlock or lost wake-up";
        std::fprintf(stderr, "[  FAILED  ] %s (timed out)\n",
                     ::testing::UnitTest::GetInstance()->current_test_info()->name());
        std::fflush(nullptr);
        std::_Exit(1);
    }
    t.join();
    done.get();
}

TEST(ThreadPool, RunCallsEveryTidOnceOnDistinctThreads) {
    within(120, [] {
        for (int spin : kSpins) {
            for (int n : kSizes) {
                ThreadPool pool(n, {.spin_us = spin});
                ASSERT_EQ(pool.size(), n);
                EXPECT_EQ(pool.spin_us(), spin);
                std::vector<std::atomic<int>> calls(n);
                std::vector<std::thread::id> ids(n);
                std::atomic<int> bad_nt{0}, started{0};
                bool all_started = true;
                auto fn = [&](int tid, int nt) {
                    if (nt != n || tid < 0 || tid >= n) return (void)++bad_nt;
                    ++calls[tid];
                    ids[tid] = std::this_thread::get_id();
                    ++started;
                    // Share 0 holds the caller until every worker runs its own share (no stealing).
                    if (tid == 0) all_started = eventually([&] { return started.load() == n; });
                };
                pool.run(fn);
                EXPECT_EQ(bad_nt.load(), 0);
                EXPECT_TRUE(all_started) << "n=" << n;
                for (int t = 0; t < n; ++t) EXPECT_EQ(calls[t].load(), 1) << "n=" << n << " tid=" << t;
                EXPECT_EQ(ids[0], std::this_thread::get_id()) << "tid 0 runs on the caller";
                EXPECT_EQ(std::set<std::thread::id>(ids.begin(), ids.end()).size(), (size_t)n) << "n=" << n;
            }
        }
    });
}

TEST(ThreadPool, ParallelForRunsEveryIndexExactlyOnce) {
    within(120, [] {
        const int64_t counts[] = {0, 1, 2, 3, 5, 7, 16, 17, 63, 100, 1000, 4097};
        for (int spin : kSpins) {
            for (int n : kSizes) {
                ThreadPool pool(n, {.spin_us = spin});
                const CpuContext ctx{n, &pool};
                for (int64_t count : counts) {
                    std::vector<std::atomic<int>> hits(count);
                    cpu::parallel_for(ctx, count, [&](int64_t i) { ++hits[i]; });
                    for (int64_t i = 0; i < count; ++i)
                        ASSERT_EQ(hits[i].load(), 1) << "threads=" << n << " count=" << count << " i=" << i;
                    // Ranges: a partition of [0, count) with inner boundaries on 16-element lines.
                    std::vector<std::atomic<int>> covered(count);
                    std::atomic<int> misaligned{0};
                    cpu::parallel_ranges(ctx, count, 2, [&](int64_t b, int64_t e) {
                        if (b % 16 != 0 || (e % 16 != 0 && e != count)) ++misaligned;
                        for (int64_t i = b; i < e; ++i) ++covered[i];
                    });
                    EXPECT_EQ(misaligned.load(), 0) << "threads=" << n << " count=" << count;
                    for (int64_t i = 0; i < count; ++i)
                        ASSERT_EQ(covered[i].load(), 1) << "threads=" << n << " count=" << count << " i=" << i;
                }
            }
        }
    });
}

TEST(ThreadPool, ParallelForUsesTheTeamAndStaysInlineBelowTheThreshold) {
    within(120, [] {
        ThreadPool pool(2);
        const CpuContext ctx{2, &pool};
        std::vector<std::thread::id> owner(64);
        std::atomic<bool> last_done{false};
        const auto record = [&](int64_t i) {
            owner[i] = std::this_thread::get_id();
            if (i == 63) last_done = true;
            if (i == 0) {
                EXPECT_TRUE(eventually([&] { return last_done.load(); }));  // the worker's half
            }
        };
        cpu::parallel_for(ctx, 64, record);
        EXPECT_EQ(owner.front(), std::this_thread::get_id());
        EXPECT_NE(owner.back(), std::this_thread::get_id()) << "the second half runs on the worker";
        last_done = true;
        cpu::parallel_for(ctx, 64, record, 65);
        for (const auto& id : owner) EXPECT_EQ(id, std::this_thread::get_id());
    });
}

TEST(ThreadPool, ManyTinyJobsBackToBack) {
    within(300, [] {
        for (int spin : kSpins) {
            for (int n : {2, 3}) {
                ThreadPool pool(n, {.spin_us = spin});
                const int jobs = spin > 0 ? 100000 : 20000;  // every wait of the second kind sleeps
                std::vector<int64_t> per_tid(n, 0);          // each slot written by one thread only
                auto fn = [&](int tid, int) { ++per_tid[tid]; };
                for (int j = 0; j < jobs; ++j) pool.run(fn);
                for (int t = 0; t < n; ++t)
                    EXPECT_EQ(per_tid[t], jobs) << "spin=" << spin << " n=" << n << " tid=" << t;
            }
        }
    });
}

TEST(ThreadPool, ExceptionsReachTheCaller) {
    within(120, [] {
        for (int spin : kSpins) {
            ThreadPool pool(3, {.spin_us = spin});
            for (int thrower : {0, 1, 2}) {
                std::atomic<int> finished{0};
                auto fn = [&](int tid, int) {
                    if (tid == thrower) throw Error("task " + std::to_string(tid) + " failed");
                    ++finished;
                };
                try {
                    pool.run(fn);
                    ADD_FAILURE() << "no exception from thread " << thrower;
                } catch (const Error& e) {
                    EXPECT_EQ(std::string(e.what()), "task " + std::to_string(thrower) + " failed");
                }
                EXPECT_EQ(finished.load(), 2) << "the other threads still ran";
            }
            // Every thread throws: one of them arrives; then the pool works normally again.
            auto all = [](int tid, int) { throw std::runtime_error("all " + std::to_string(tid)); };
            EXPECT_THROW(pool.run(all), std::runtime_error);
            std::atomic<int> ok{0};
            auto fine = [&](int, int) { ++ok; };
            EXPECT_NO_THROW(pool.run(fine));
            EXPECT_EQ(ok.load(), 3);
        }
    });
}

TEST(ThreadPool, ParallelForPassesExceptionsOn) {
    within(120, [] {
        ThreadPool pool(2);
        const CpuContext ctx{2, &pool};
        const auto fail_last = [](int64_t i) {
            if (i == 99) throw Error("index 99");  // share 1 (on the worker, unless the caller took it)
        };
        EXPECT_THROW(cpu::parallel_for(ctx, 100, fail_last), Error);
    });
}

TEST(ThreadPool, NestedCallsRunSeriallyOnTheCallingThread) {
    within(60, [] {
        for (int spin : kSpins) {
            ThreadPool pool(2, {.spin_us = spin});
            const CpuContext ctx{2, &pool};
            EXPECT_FALSE(ThreadPool::in_task());
            std::atomic<int> bad{0}, outer{0};
            std::vector<std::atomic<int>> hits(2 * 50);
            cpu::parallel_run(ctx, [&](int tid, int nt) {
                if (!ThreadPool::in_task()) ++bad;
                ++outer;
                const auto self = std::this_thread::get_id();
                cpu::parallel_run(ctx, [&](int itid, int int_) {
                    if (itid != 0 || int_ != 1 || std::this_thread::get_id() != self) ++bad;
                });
                cpu::parallel_for(ctx, 50, [&](int64_t i) {
                    if (std::this_thread::get_id() != self) ++bad;
                    ++hits[tid * 50 + i];
                });
                auto inner = [&](int itid, int int_) {
                    if (itid != 0 || int_ != 1) ++bad;
                };
                pool.run(inner);  // the pool itself, called from its own task
                (void)nt;
            });
            EXPECT_EQ(outer.load(), 2);
            EXPECT_EQ(bad.load(), 0);
            for (auto& h : hits) EXPECT_EQ(h.load(), 1);
            EXPECT_FALSE(ThreadPool::in_task());
            // A task of one pool calling into another pool also runs inline.
            ThreadPool other(2, {.spin_us = spin});
            const CpuContext other_ctx{2, &other};
            cpu::parallel_run(ctx, [&](int, int) {
                cpu::parallel_run(other_ctx, [&](int itid, int int_) {
                    if (itid != 0 || int_ != 1) ++bad;
                });
            });
            EXPECT_EQ(bad.load(), 0);
        }
    });
}

// A share whose worker is asleep when the caller has finished its own runs on the calling thread
// instead of waiting for the wake-up; every share still runs exactly once.
TEST(ThreadPool, CallerRunsTheSharesOfWorkersThatHaveNotStarted) {
    within(120, [] {
        ThreadPool pool(3, {.spin_us = 0});  // workers sleep between tasks
        std::vector<int> calls(3, 0);        // each entry written by one thread per task
        int on_caller = 0;
        const auto caller = std::this_thread::get_id();
        auto fn = [&](int tid, int) {
            ++calls[tid];
            if (tid > 0 && std::this_thread::get_id() == caller) ++on_caller;
        };
        const int tasks = 200;
        for (int j = 0; j < tasks; ++j) pool.run(fn);
        for (int c : calls) EXPECT_EQ(c, tasks);
        // A worker needs a wake-up (microseconds) to claim its share; the caller's own is empty.
        EXPECT_GT(on_caller, 0);
    });
}

TEST(ThreadPool, CallersOnTwoThreadsTakeTurns) {
    within(120, [] {
        ThreadPool pool(2, {.spin_us = 5});
        std::atomic<int> inside{0}, overlap{0}, total{0};
        auto fn = [&](int, int) {
            ++total;
            if (inside.fetch_add(1) >= 2) ++overlap;  // more than one task's threads at once
            inside.fetch_sub(1);
        };
        auto caller = [&] {
            for (int j = 0; j < 5000; ++j) pool.run(fn);
        };
        std::thread a(caller), b(caller);
        a.join();
        b.join();
        EXPECT_EQ(total.load(), 2 * 5000 * 2);
        EXPECT_EQ(overlap.load(), 0);
    });
}

TEST(ThreadPool, ContextWithoutPoolUsesASharedTeam) {
    within(120, [] {
        const CpuContext ctx{3};
        std::vector<std::thread::id> ids(3);
        std::atomic<int> bad{0}, started{0};
        cpu::parallel_run(ctx, [&](int tid, int nt) {
            if (nt != 3) ++bad;
            ids[tid] = std::this_thread::get_id();
            ++started;
            if (tid == 0 && !eventually([&] { return started.load() == 3; })) ++bad;  // no stealing
        });
        EXPECT_EQ(bad.load(), 0);
        EXPECT_EQ(std::set<std::thread::id>(ids.begin(), ids.end()).size(), 3u);
        EXPECT_EQ(&cpu::shared_thread_pool(3), &cpu::shared_thread_pool(3));
        // A pool of another size than n_threads is not used: the context's n_threads wins.
        ThreadPool two(2);
        const CpuContext mismatched{3, &two};
        int seen_nt = 0;
        cpu::parallel_run(mismatched, [&](int tid, int nt) {
            if (tid == 0) seen_nt = nt;
        });
        EXPECT_EQ(seen_nt, 3);
    });
}

TEST(ThreadPool, DestructionJoinsIdleWorkers) {
    within(60, [] {
        for (int spin : kSpins) {
            for (int n : kSizes) {
                auto never_used = std::make_unique<ThreadPool>(n, ThreadPoolOptions{.spin_us = spin});
                never_used.reset();
                auto used = std::make_unique<ThreadPool>(n, ThreadPoolOptions{.spin_us = spin});
                std::atomic<int> calls{0};
                auto fn = [&](int, int) { ++calls; };
                used->run(fn);
                // Long enough for the workers to be asleep in the futex wait, not spinning.
                std::this_thread::sleep_for(std::chrono::milliseconds(2));
                used.reset();
                EXPECT_EQ(calls.load(), n);
            }
        }
    });
}

TEST(ThreadPool, PinnedTeamRuns) {
    within(120, [] {
        ThreadPool pool(2, {.spin_us = 0, .pin = 1});
        EXPECT_TRUE(pool.pinned());
        std::atomic<int> calls{0};
        auto fn = [&](int, int) { ++calls; };
        pool.run(fn);
        EXPECT_EQ(calls.load(), 2);
    });
}

// The elementwise and row ops split over a team (sizes above their serial thresholds) give the
// same bits as on one thread: each output element is computed the same way on whichever thread.
TEST(ThreadPool, SplitOpsMatchOneThreadBitForBit) {
    within(120, [] {
        ThreadPool pool(2);
        const CpuContext one{1}, two{2, &pool};
        const auto same = [](const std::vector<float>& a, const std::vector<float>& b) {
            return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
        };
        {
            const int64_t n = 3 * 131072 + 17;
            const std::vector<float> y = test::randn(n, 2);
            std::vector<float> x1 = test::randn(n, 1), x2 = x1;
            cpu::add(one, x1.data(), y.data(), n);
            cpu::add(two, x2.data(), y.data(), n);
            EXPECT_TRUE(same(x1, x2)) << "add";
        }
        {
            const int64_t n = 5 * 8192 + 3;
            const std::vector<float> g = test::randn(n, 3), u = test::randn(n, 4);
            std::vector<float> o1(n), o2(n);
            cpu::silu_mul(one, g.data(), u.data(), n, o1.data());
            cpu::silu_mul(two, g.data(), u.data(), n, o2.data());
            EXPECT_TRUE(same(o1, o2)) << "silu_mul";
        }
        {
            const int64_t rows = 64, cols = 576;
            const std::vector<float> x = test::randn(rows * cols, 5), w = test::randn(cols, 6);
            std::vector<float> o1(rows * cols), o2(rows * cols);
            cpu::rmsnorm(one, x.data(), w.data(), rows, cols, 1e-5f, o1.data());
            cpu::rmsnorm(two, x.data(), w.data(), rows, cols, 1e-5f, o2.data());
            EXPECT_TRUE(same(o1, o2)) << "rmsnorm";
        }
        {
            const int64_t n = 130, heads = 9, hd = 64;
            std::vector<int32_t> pos(n);
            for (int64_t t = 0; t < n; ++t) pos[t] = (int32_t)(t * 37 % 1000);
            std::vector<float> cs1(n * hd), cs2(n * hd);
            cpu::rope_table(one, pos.data(), n, hd, 10000.0, cs1.data());
            cpu::rope_table(two, pos.data(), n, hd, 10000.0, cs2.data());
            EXPECT_TRUE(same(cs1, cs2)) << "rope_table";
            std::vector<float> x1 = test::randn(n * heads * hd, 7), x2 = x1;
            cpu::rope(one, x1.data(), cs1.data(), n, heads, hd);
            cpu::rope(two, x2.data(), cs1.data(), n, heads, hd);
            EXPECT_TRUE(same(x1, x2)) << "rope";
        }
        {
            const int64_t vocab = 50, d = 576, n = 300;
            const std::vector<float> table = test::randn(vocab * d, 8);
            std::vector<int32_t> ids(n);
            for (int64_t t = 0; t < n; ++t) ids[t] = (int32_t)(t * 7 % (vocab + 10));  // some off the shard
            const Weight w{DType::dtype_f32, vocab, d, table.data()};
            std::vector<float> o1(n * d), o2(n * d, -1.f);
            cpu::embedding(one, w, 0, ids.data(), n, o1.data());
            cpu::embedding(two, w, 0, ids.data(), n, o2.data());
            EXPECT_TRUE(same(o1, o2)) << "embedding";
        }
    });
}

// Restores an environment variable when the test ends.
class EnvVar {
public:
    EnvVar(const char* name, const char* value) : name_(name) {
        if (const char* old = std::getenv(name)) old_ = old;
        setenv(name, value, 1);
    }
    ~EnvVar() {
        if (old_.empty())
            unsetenv(name_);
        else
            setenv(name_, old_.c_str(), 1);
    }

private:
    const char* name_;
    std::string old_;
};

TEST(ThreadPool, SettingsFromTheEnvironment) {
    {
        const EnvVar spin("GRIDLM_SPIN_US", "7");
        EXPECT_EQ(ThreadPool(2).spin_us(), 7);
        EXPECT_EQ(ThreadPool(2, {.spin_us = 3}).spin_us(), 3) << "the option overrides the variable";
    }
    {
        const EnvVar spin("GRIDLM_SPIN_US", "");
        EXPECT_EQ(ThreadPool(1).spin_us(), cpu::default_spin_us);
    }
    for (const char* bad : {"-1", "fast", "10us", "100001"}) {
        const EnvVar spin("GRIDLM_SPIN_US", bad);
        test::expect_has(test::error_of([] { ThreadPool pool(2); }), {"GRIDLM_SPIN_US", bad});
    }
    {
        const EnvVar pin("GRIDLM_PIN_THREADS", "0");
        EXPECT_FALSE(ThreadPool(2).pinned());
    }
    {
        const EnvVar pin("GRIDLM_PIN_THREADS", "yes");
        test::expect_has(test::error_of([] { ThreadPool pool(2); }), {"GRIDLM_PIN_THREADS", "yes"});
    }
}

}  // namespace
