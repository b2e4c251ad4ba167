// A persistent team of threads for the CPU ops: started once (per CPU backend), then handed one
// task after another, instead of an OpenMP fork/join per op.
//
// A pool of size n has n - 1 worker threads; the thread that calls run() is worker 0 and runs its
// share too. run(fn) calls fn(tid, n) once for every tid in [0, n) and returns when all calls have
// returned.
//
// Handing out a task: the caller stores the task and bumps a generation counter; workers waiting
// for the counter to change pick it up. Each share tid is claimed before it runs (an atomic per
// tid): worker tid claims its own, and the caller, once its share 0 is done, claims and runs every
// share whose worker has not started yet, so a task never waits for a worker that is asleep or
// descheduled and has not begun (on shared cores that wait is a scheduler time slice). Completion:
// an atomic countdown from n - 1, one decrement per share; the caller waits for zero. Both waits spin first (the pause
// instruction), then sleep on a futex until the value changes (std::atomic::wait off Linux); a change makes the wake-up
// system call only when some thread sleeps.
//
// Spin budget: at most spin_us microseconds per wait. Each waiting thread adapts its own budget:
// a wait that ends while spinning doubles it (up to spin_us), one that has to sleep halves it
// (down to 1 us). On a quiet machine the spin catches the next op of a decode step without a
// wake-up (which costs tens of microseconds); where processes share cores (several MPI ranks on
// one node) the thread waited for is often descheduled, the spins fail, and the budget shrinks
// so a waiting thread stops burning the time slice of the thread it waits for, which is what
// makes OpenMP's spinning barriers collapse there.
//
// Environment (read when a pool is built, unless ThreadPoolOptions says otherwise):
//   GRIDLM_SPIN_US      spin budget per wait in microseconds, 0 .. 100000; 0 = sleep at once
//                       (default: default_spin_us).
//   GRIDLM_PIN_THREADS  1 = pin worker tid (1 .. n-1) to the tid-th CPU of the process's
//                       affinity mask (wrapping around); 0 or unset = no pinning. The calling
//                       thread keeps its own affinity (bind ranks with the MPI launcher).
// A malformed value throws Error from the constructor.
//
// Thread safety: run() may be called from any thread; calls from different threads take turns
// (a mutex). A run() from inside a task (any pool's) does not dispatch: it calls fn(0, 1) on the
// calling thread, so nested parallel code runs serially instead of deadlocking. An exception
// thrown by fn on any thread is caught there; after every thread has finished, run() rethrows
// the first one on the calling thread (the others are dropped). The destructor wakes and joins
// the workers; it must not run while a run() is in progress.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace gridlm::cpu {

namespace detail {
// A 32-bit word threads wait on until it changes (thread_pool.cpp: spin, then futex), and the
// number of them asleep on it, so that a change makes a wake-up system call only when needed.
struct alignas(64) WaitWord {
    std::atomic<uint32_t> value{0};
    std::atomic<uint32_t> sleepers{0};
};
}  // namespace detail

// The spin budget when neither ThreadPoolOptions nor GRIDLM_SPIN_US sets one, microseconds.
inline constexpr int default_spin_us = 50;

struct ThreadPoolOptions {
    int spin_us = -1;  // spin before sleeping, microseconds; -1: GRIDLM_SPIN_US, else default_spin_us
    int pin = -1;      // 1: pin threads to CPUs, 0: don't; -1: GRIDLM_PIN_THREADS (default off)
};

class ThreadPool {
public:
    // n_threads >= 1 (values below 1 are taken as 1). Throws Error on a malformed environment
    // variable and std::system_error when a thread cannot be started.
    explicit ThreadPool(int n_threads, ThreadPoolOptions options = {});
    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    int size() const { return n_; }
    int spin_us() const { return (int)(spin_ns_ / 1000); }
    bool pinned() const { return pinned_; }

    // Runs fn(tid, size()) once for each tid = 0 .. size() - 1 and returns when all have returned;
    // rethrows the first exception any of them threw. tid 0 runs on the calling thread, tid k on
    // worker k unless the caller got to it first (then on the calling thread, after tid 0). fn is
    // called concurrently from several threads. Inside a task: fn(0, 1) on the calling thread.
    template <typename F>
    void run(F& fn) {
        if (in_task()) return (void)fn(0, 1);
        dispatch(&call<F>, &fn);
    }

    // Whether the calling thread is running a task of some pool (or is a pool worker).
    static bool in_task();

private:
    using Task = void (*)(void* arg, int tid, int nt);
    template <typename F>
    static void call(void* arg, int tid, int nt) {
        (*static_cast<F*>(arg))(tid, nt);
    }

    void dispatch(Task task, void* arg);
    bool claim(int tid, uint32_t generation);
    void run_task(int tid) noexcept;
    void worker_main(int tid, int cpu);
    void stop_workers();

    int n_ = 1;
    int64_t spin_ns_ = 0;
    bool pinned_ = false;
    std::vector<std::thread> workers_;
    std::mutex dispatch_mu_;      // one dispatch at a time
    int64_t caller_spin_ns_ = 0;  // the dispatching thread's adapted spin budget (under dispatch_mu_)

    // The current task, written by the dispatcher before it bumps generation_ and read after a
    // share is claimed; unchanged until every share has counted down.
    Task task_ = nullptr;
    void* arg_ = nullptr;
    std::atomic<bool> stop_{false};
    std::exception_ptr error_;  // the first exception of this task; set by whoever wins failed_

    detail::WaitWord generation_;  // bumped once per task (and to stop)
    detail::WaitWord pending_;     // shares 1 .. n-1 not finished yet
    // claims_[tid].value: the last generation whose share tid somebody claimed (tid >= 1).
    std::unique_ptr<detail::WaitWord[]> claims_;
    alignas(64) std::atomic<bool> failed_{false};
};

// A process-wide pool of n_threads threads, built on first use and joined at exit; for ops called
// with a CpuContext that has no pool of its own (tests, benchmarks). Thread-safe.
ThreadPool& shared_thread_pool(int n_threads);

}  // namespace gridlm::cpu
