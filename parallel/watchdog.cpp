// The hung-rank watchdog's heartbeats over MPI (see watchdog.h; the decisions are in
// watchdog_judge.cpp).
//
// Messages on the watchdog's own communicator, all one Packet, one tag: each rank k > 0 sends
// rank 0 heartbeats and, once its main thread is in stop(), one last "finished" heartbeat; rank 0
// sends every rank heartbeats and, once every rank has finished, one "release". Between two ranks
// MPI keeps the order, so a finished heartbeat is the last message k sends and a release the last
// one k receives: nothing is left unmatched when the threads end. Waits are MPI_Test loops with
// sleeps between: a blocking call would spin a core in the progress engine.
#include "parallel/watchdog.h"

#include <mpi.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <algorithm>
#include <list>

#include "engine/core/error.h"
#include "engine/core/log.h"
#include "parallel/mpi_check.h"
#include "parallel/mpi_env.h"

namespace gridlm {
namespace {

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// The main thread's state, written by WaitScope and read by the heartbeat thread. wait packs
// (op << 32) | (peer + 1), 0 while computing; since: when the current state began.
struct MainActivity {
    std::atomic<int64_t> wait{0};
    std::atomic<double> since{now_s()};
    std::atomic<int64_t> calls{0};
    std::atomic<int64_t> steps{0};
    std::atomic<bool> finished{false};
};
MainActivity& main_activity() {
    static MainActivity a;
    return a;
}

enum PacketKind : int64_t { packet_beat = 0, packet_release = 1 };
struct Packet {
    int64_t kind = packet_beat;
    int64_t activity = 0, op = 0, peer = -1;
    double in_state_s = 0;
    int64_t calls = 0, steps = 0;
};
constexpr int tag_watchdog = 1;
constexpr int host_len = 64;

Packet packet_of(const RankBeat& b, PacketKind kind) {
    return {kind, (int64_t)b.activity, (int64_t)b.op, b.peer, b.in_state_s, b.calls, b.steps};
}
RankBeat beat_of(const Packet& p) {
    return {(RankActivity)p.activity, (WaitOp)p.op, (int)p.peer, p.in_state_s, p.calls, p.steps};
}

std::string seconds(double s) {
    char b[32];
    std::snprintf(b, sizeof(b), "%.1f", s);
    return b;
}

}  // namespace

WaitScope::WaitScope(WaitOp op, int peer) {
    MainActivity& a = main_activity();
    a.since.store(now_s(), std::memory_order_relaxed);
    a.wait.store(((int64_t)op << 32) | (int64_t)(peer + 1), std::memory_order_release);
}

WaitScope::~WaitScope() {
    MainActivity& a = main_activity();
    a.wait.store(0, std::memory_order_relaxed);
    a.since.store(now_s(), std::memory_order_relaxed);
    a.calls.fetch_add(1, std::memory_order_release);
}

void watchdog_note_step() { main_activity().steps.fetch_add(1, std::memory_order_relaxed); }

RankBeat main_thread_beat() {
    const MainActivity& a = main_activity();
    RankBeat b;
    const int64_t wait = a.wait.load(std::memory_order_acquire);
    b.in_state_s = std::max(0.0, now_s() - a.since.load(std::memory_order_relaxed));
    b.calls = a.calls.load(std::memory_order_acquire);
    b.steps = a.steps.load(std::memory_order_relaxed);
    if (a.finished.load()) {
        b.activity = RankActivity::rank_activity_finished;
    } else if (wait != 0) {
        b.activity = RankActivity::rank_activity_waiting;
        b.op = (WaitOp)(wait >> 32);
        b.peer = (int)(wait & 0xffffffff) - 1;
    }
    return b;
}

// The watchdog's communicator, the posted receive and the sends not yet complete.
struct Watchdog::Mpi {
    MPI_Comm comm = MPI_COMM_NULL;
    Packet in;
    MPI_Request recv = MPI_REQUEST_NULL;
    struct Out {
        int dest;
        Packet p;
        MPI_Request req = MPI_REQUEST_NULL;
    };
    std::list<Out> out;  // list: a packet stays in place while MPI sends it

    void post_recv(int src) { MPI_CHECK(MPI_Irecv(&in, sizeof(in), MPI_BYTE, src, tag_watchdog, comm, &recv)); }
    // The next arrived packet (source in *src), or false.
    bool take(int* src) {
        int done = 0;
        MPI_Status st;
        MPI_CHECK(MPI_Test(&recv, &done, &st));
        if (done) *src = st.MPI_SOURCE;
        return done != 0;
    }
    void send(int dest, const Packet& p) {
        out.push_back({dest, p});
        MPI_CHECK(MPI_Isend(&out.back().p, sizeof(Packet), MPI_BYTE, dest, tag_watchdog, comm, &out.back().req));
    }
    // Drops completed sends; pending[dest]: sends to dest still in flight (pending may be null).
    void reap(std::vector<int>* pending) {
        if (pending) std::fill(pending->begin(), pending->end(), 0);
        for (auto it = out.begin(); it != out.end();) {
            int done = 0;
            MPI_CHECK(MPI_Test(&it->req, &done, MPI_STATUS_IGNORE));
            if (done) {
                it = out.erase(it);
            } else {
                if (pending) ++(*pending)[(size_t)it->dest];
                ++it;
            }
        }
    }
    void wait_sends(double tick_s) {
        while (!out.empty()) {
            reap(nullptr);
            if (!out.empty()) usleep((useconds_t)(tick_s * 1e6));
        }
    }
};

bool Watchdog::available(const MpiEnv& mpi) {
    int provided = MPI_THREAD_SINGLE;
    MPI_CHECK(MPI_Query_thread(&provided));
    return provided == MPI_THREAD_MULTIPLE && mpi.size() > 1;
}

Watchdog::Watchdog(const MpiEnv& mpi, WatchdogOptions o) : mpi_(mpi), o_(std::move(o)), m_(std::make_unique<Mpi>()) {
    GRIDLM_ASSERT(available(mpi) && o_.limit_s > 0 && (int)o_.roles.size() == mpi.size());
    period_s_ = std::min(o_.limit_s / 4, 2.0);
    tick_s_ = std::min(period_s_ / 4, 0.5);
    main_activity().finished.store(false);
    MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &m_->comm));
    char host[host_len] = {0};
    std::strncpy(host, mpi.host().c_str(), host_len - 1);
    std::vector<char> hosts((size_t)host_len * mpi.size());
    MPI_CHECK(MPI_Allgather(host, host_len, MPI_CHAR, hosts.data(), host_len, MPI_CHAR, m_->comm));
    long pid = (long)getpid();
    pids_.resize((size_t)mpi.size());
    MPI_CHECK(MPI_Allgather(&pid, 1, MPI_LONG, pids_.data(), 1, MPI_LONG, m_->comm));
    for (int r = 0; r < mpi.size(); ++r) hosts_.emplace_back(hosts.data() + (size_t)r * host_len);
    thread_ = std::thread([this] { mpi_.rank() == 0 ? run_monitor() : run_watched(); });
}

Watchdog::~Watchdog() { stop(); }

void Watchdog::stop() {
    if (stopped_) return;
    stopped_ = true;
    main_activity().finished.store(true);
    stopping_.store(true);
    thread_.join();
    MPI_CHECK(MPI_Comm_free(&m_->comm));
    main_activity().finished.store(false);
}

// Between two looks: a tick, or 10 ms once this rank is at the end, so the ranks part quickly.
void Watchdog::nap() const { usleep((useconds_t)((stopping_.load() ? 0.01 : tick_s_) * 1e6)); }

void Watchdog::run_monitor() {
    const int n = mpi_.size();
    WatchdogJudge judge(n, o_.limit_s, now_s());
    std::vector<int> watched;
    for (int r = 1; r < n; ++r) watched.push_back(r);
    m_->post_recv(MPI_ANY_SOURCE);
    std::vector<int> pending((size_t)n);
    double next_beat = 0;
    for (;;) {
        const double t = now_s();
        int src = 0;
        while (m_->take(&src)) {
            judge.heard(src, beat_of(m_->in), t);
            m_->post_recv(MPI_ANY_SOURCE);
        }
        const RankBeat mine = main_thread_beat();
        judge.heard(0, mine, t);
        const bool release = stopping_.load() && judge.all_finished_but(0);
        if (release || t >= next_beat) {
            // A rank that takes no heartbeats (stopped) gets no more than two queued.
            m_->reap(&pending);
            for (int r = 1; r < n; ++r)
                if (release || pending[(size_t)r] < 2)
                    m_->send(r, packet_of(mine, release ? packet_release : packet_beat));
            next_beat = t + period_s_;
        }
        if (release) break;
        if (auto v = judge.check(t, watched, true)) fire(judge, *v);
        nap();
    }
    MPI_CHECK(MPI_Cancel(&m_->recv));
    MPI_CHECK(MPI_Wait(&m_->recv, MPI_STATUS_IGNORE));
    m_->wait_sends(tick_s_);
}

void Watchdog::run_watched() {
    WatchdogJudge judge(mpi_.size(), o_.limit_s, now_s());
    m_->post_recv(0);
    std::vector<int> pending(1);
    double next_beat = 0;
    bool finished_sent = false;
    for (;;) {
        const double t = now_s();
        int src = 0;
        bool released = false;
        while (!released && m_->take(&src)) {
            released = m_->in.kind == packet_release;
            judge.heard(0, beat_of(m_->in), t);
            if (!released) m_->post_recv(0);
        }
        if (released) break;
        if (stopping_.load() && !finished_sent) {
            m_->send(0, packet_of(main_thread_beat(), packet_beat));  // says finished: the last to rank 0
            finished_sent = true;
        } else if (!finished_sent && t >= next_beat) {
            m_->reap(&pending);
            if (pending[0] < 2) m_->send(0, packet_of(main_thread_beat(), packet_beat));
            next_beat = t + period_s_;
        }
        if (auto v = judge.check(t, {0}, false)) fire(judge, *v);
        nap();
    }
    m_->wait_sends(tick_s_);
}

std::string Watchdog::who(int rank) const {
    return str("rank ", rank, " (", o_.roles.at((size_t)rank), "; host ", hosts_.at((size_t)rank), ", pid ",
               pids_.at((size_t)rank), ")");
}

void Watchdog::fire(const WatchdogJudge& judge, const WatchdogVerdict& v) {
    const std::string limit = str("--watchdog-s ", o_.limit_s);
    const std::string tail = str("; ending the job (exit ", o_.exit_code, "). ", o_.after_abort);
    std::string msg;
    nlohmann::ordered_json fields;
    if (v.kind == WatchdogVerdict::watchdog_silent) {
        msg = str("watchdog: ", who(v.rank), " sent no heartbeat for ", seconds(v.silent_s), " s (", limit,
                  "): it is stopped or hung; it was last ", describe_beat(judge.last(v.rank)), tail);
        fields = {{"silent_rank", v.rank},
                  {"host", hosts_.at((size_t)v.rank)},
                  {"pid", pids_.at((size_t)v.rank)},
                  {"silent_s", v.silent_s}};
    } else {
        msg = str("watchdog: no rank made progress for more than ", o_.limit_s, " s (", limit, ")");
        for (size_t i = 0; i < v.waiting.size() && i < 4; ++i)
            msg += str(i == 0 ? ": " : "; ", who(v.waiting[i]), " ", describe_beat(judge.last(v.waiting[i])));
        if (v.waiting.size() > 4) msg += str("; and ", v.waiting.size() - 4, " more ranks waiting");
        fields = {{"stuck_rank", v.rank}, {"waiting_ranks", v.waiting}};
    }
    fields["watchdog_s"] = o_.limit_s;
    mpi_.abort(o_.exit_code, msg, "watchdog", fields);
}

}  // namespace gridlm
