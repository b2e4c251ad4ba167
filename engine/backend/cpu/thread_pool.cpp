// The CPU ops' thread team: dispatch by generation counter, completion by countdown, waits that
// spin for a bounded time and then sleep on a futex.
#include "engine/backend/cpu/thread_pool.h"

#include <pthread.h>
#include <sched.h>
#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>

#include "engine/core/error.h"

namespace gridlm::cpu {

namespace {

thread_local bool t_in_task = false;

// Marks the calling thread as running a task for the scope's length.
class TaskScope {
public:
    TaskScope() : saved_(t_in_task) { t_in_task = true; }
    ~TaskScope() { t_in_task = saved_; }
    TaskScope(const TaskScope&) = delete;
    TaskScope& operator=(const TaskScope&) = delete;

private:
    bool saved_;
};

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
}

// The spin budget of one waiting thread, adapted to how its waits end: a wait that ends while
// spinning doubles it (up to max_ns), one that has to sleep halves it (down to min_ns), so a
// thread whose partners keep getting descheduled (more runnable threads than cores) soon stops
// burning its time slice, and one on a quiet machine keeps spinning through short gaps.
struct SpinBudget {
    int64_t ns = 0, min_ns = 0, max_ns = 0;
    explicit SpinBudget(int64_t max) : ns(max), min_ns(std::min<int64_t>(max, 1000)), max_ns(max) {}
};

// Sleeps until a no longer holds old (or a spurious wake-up). On Linux the futex itself:
// libstdc++'s std::atomic::wait calls sched_yield before it sleeps, which on a machine with more
// runnable threads than cores hands the core to another process for a whole time slice (measured
// on 2 shared cores: a 2-thread hand-off took ~2 ms instead of ~10-40 us).
void sleep_on(std::atomic<uint32_t>& a, uint32_t old) {
#if defined(__linux__)
    static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t) && std::atomic<uint32_t>::is_always_lock_free);
    syscall(SYS_futex, reinterpret_cast<uint32_t*>(&a), FUTEX_WAIT_PRIVATE, old, nullptr, nullptr, 0);
#else
    a.wait(old, std::memory_order_acquire);
#endif
}

// Wakes every thread asleep on w (after w.value was changed with a seq_cst RMW); no system call
// when none is.
void wake_all(detail::WaitWord& w) {
    if (w.sleepers.load(std::memory_order_seq_cst) == 0) return;
#if defined(__linux__)
    syscall(SYS_futex, reinterpret_cast<uint32_t*>(&w.value), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
#else
    w.value.notify_all();
#endif
}

// Waits until done(w.value) holds and returns the value that satisfied it: up to budget.ns of
// polling (pause between loads, the clock read every 16 polls), then sleeping until it changes.
// A sleeper registers in w.sleepers before its last look at the value, and a waker changes the
// value before it reads w.sleepers (both seq_cst), so a change never goes unseen.
template <typename Done>
uint32_t wait_until(detail::WaitWord& w, Done done, SpinBudget& budget) {
    uint32_t v = w.value.load(std::memory_order_acquire);
    if (done(v)) return v;
    if (budget.ns > 0) {
        using clk = std::chrono::steady_clock;
        const auto deadline = clk::now() + std::chrono::nanoseconds(budget.ns);
        do {
            for (int i = 0; i < 16; ++i) {
                cpu_relax();
                v = w.value.load(std::memory_order_acquire);
                if (done(v)) {
                    budget.ns = std::min(budget.max_ns, budget.ns * 2);
                    return v;
                }
            }
        } while (clk::now() < deadline);
        budget.ns = std::max(budget.min_ns, budget.ns / 2);
    }
    for (;;) {
        w.sleepers.fetch_add(1, std::memory_order_seq_cst);
        v = w.value.load(std::memory_order_seq_cst);
        if (!done(v)) sleep_on(w.value, v);
        w.sleepers.fetch_sub(1, std::memory_order_release);
        v = w.value.load(std::memory_order_acquire);
        if (done(v)) return v;
    }
}

// An integer environment variable in [lo, hi], or fallback when unset or empty.
int env_int(const char* name, int lo, int hi, int fallback) {
    const char* s = std::getenv(name);
    if (!s || !*s) return fallback;
    char* end = nullptr;
    const long v = std::strtol(s, &end, 10);
    if (*end != '\0' || v < lo || v > hi)
        throw Error(str(name, " must be a whole number from ", lo, " to ", hi, ", got '", s, "'"));
    return (int)v;
}

// The CPUs this process may run on, in order (empty when the mask cannot be read).
std::vector<int> allowed_cpus() {
    std::vector<int> cpus;
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) != 0) return cpus;
    for (int c = 0; c < CPU_SETSIZE; ++c)
        if (CPU_ISSET(c, &set)) cpus.push_back(c);
    return cpus;
}

// Pins the calling thread to one CPU; best effort (a failure leaves it unpinned).
void pin_self(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    (void)pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

}  // namespace

bool ThreadPool::in_task() { return t_in_task; }

ThreadPool::ThreadPool(int n_threads, ThreadPoolOptions options)
    : n_(n_threads > 0 ? n_threads : 1), claims_(new detail::WaitWord[n_]) {
    const int spin_us = options.spin_us >= 0 ? options.spin_us : env_int("GRIDLM_SPIN_US", 0, 100000, default_spin_us);
    spin_ns_ = (int64_t)spin_us * 1000;
    caller_spin_ns_ = spin_ns_;
    const bool pin = options.pin >= 0 ? options.pin != 0 : env_int("GRIDLM_PIN_THREADS", 0, 1, 0) != 0;
    std::vector<int> cpus;
    if (pin) cpus = allowed_cpus();
    pinned_ = !cpus.empty();
    workers_.reserve(n_ - 1);
    try {
        for (int tid = 1; tid < n_; ++tid) {
            const int cpu = pinned_ ? cpus[tid % cpus.size()] : -1;
            workers_.emplace_back([this, tid, cpu] { worker_main(tid, cpu); });
        }
    } catch (...) {
        stop_workers();
        throw;
    }
}

ThreadPool::~ThreadPool() { stop_workers(); }

void ThreadPool::stop_workers() {
    {
        const std::lock_guard<std::mutex> lock(dispatch_mu_);
        stop_.store(true, std::memory_order_relaxed);
        generation_.value.fetch_add(1, std::memory_order_seq_cst);
        wake_all(generation_);
    }
    for (std::thread& t : workers_) t.join();
    workers_.clear();
}

void ThreadPool::worker_main(int tid, int cpu) {
    t_in_task = true;  // a worker never dispatches: nested parallel code on it runs serially
    if (cpu >= 0) pin_self(cpu);
    const std::string name = "gridlm-cpu-" + std::to_string(tid);
    (void)pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
    uint32_t seen = 0;
    SpinBudget budget(spin_ns_);
    for (;;) {
        // The newest generation; one this worker slept through had its share run by the caller.
        const auto bumped = [seen](uint32_t g) { return g != seen; };
        seen = wait_until(generation_, bumped, budget);
        if (stop_.load(std::memory_order_acquire)) return;
        if (!claim(tid, seen)) continue;  // the caller runs this share
        run_task(tid);
        if (pending_.value.fetch_sub(1, std::memory_order_seq_cst) == 1) wake_all(pending_);
    }
}

// Claims share tid of the given generation for the calling thread; false when somebody already
// has (or the generation is over: a share of a finished task was claimed, since all were).
bool ThreadPool::claim(int tid, uint32_t generation) {
    std::atomic<uint32_t>& c = claims_[tid].value;
    uint32_t seen = c.load(std::memory_order_relaxed);
    while ((int32_t)(generation - seen) > 0)  // generations wrap around; claims trail by at most 1
        if (c.compare_exchange_weak(seen, generation, std::memory_order_acq_rel, std::memory_order_relaxed))
            return true;
    return false;
}

void ThreadPool::run_task(int tid) noexcept {
    try {
        task_(arg_, tid, n_);
    } catch (...) {
        bool expected = false;
        if (failed_.compare_exchange_strong(expected, true, std::memory_order_acq_rel))
            error_ = std::current_exception();
    }
}

void ThreadPool::dispatch(Task task, void* arg) {
    const std::lock_guard<std::mutex> lock(dispatch_mu_);
    task_ = task;
    arg_ = arg;
    uint32_t generation = 0;
    if (n_ > 1) {
        pending_.value.store(n_ - 1, std::memory_order_relaxed);
        // Publishes task_, arg_ and pending_ to the workers (they load generation_ with acquire).
        generation = generation_.value.fetch_add(1, std::memory_order_seq_cst) + 1;
        wake_all(generation_);
    }
    {
        const TaskScope scope;
        run_task(0);
        // The shares whose workers have not started: run here rather than wait for them.
        for (int tid = n_ - 1; tid >= 1; --tid) {
            if (!claim(tid, generation)) continue;
            run_task(tid);
            pending_.value.fetch_sub(1, std::memory_order_seq_cst);
        }
    }
    if (n_ > 1) {
        const auto all_done = [](uint32_t v) { return v == 0; };
        SpinBudget budget(spin_ns_);
        budget.ns = caller_spin_ns_;
        wait_until(pending_, all_done, budget);
        caller_spin_ns_ = budget.ns;
    }
    // Every share has finished (acquire on the countdown), so error_ is settled.
    if (failed_.load(std::memory_order_relaxed)) {
        std::exception_ptr e = std::move(error_);
        error_ = nullptr;
        failed_.store(false, std::memory_order_relaxed);
        std::rethrow_exception(e);
    }
}

ThreadPool& shared_thread_pool(int n_threads) {
    static std::mutex mu;
    static std::map<int, std::unique_ptr<ThreadPool>> pools;
    n_threads = n_threads > 0 ? n_threads : 1;
    const std::lock_guard<std::mutex> lock(mu);
    std::unique_ptr<ThreadPool>& p = pools[n_threads];
    if (!p) p = std::make_unique<ThreadPool>(n_threads);
    return *p;
}

}  // namespace gridlm::cpu
