// --watchdog-s of a multi-rank job (see job_watchdog.h).
#include "launch/job_watchdog.h"

#include <string>
#include <vector>

#include "engine/core/error.h"
#include "engine/core/log.h"
#include "launch/commands.h"
#include "parallel/mpi_env.h"
#include "parallel/topology.h"
#include "parallel/watchdog.h"

namespace gridlm {
namespace {

// "dp 0, pp 1 (last stage), tp 1, writer"
std::string role(const Topology& topo, int rank, int writer_rank) {
    const GridCoord c = topo.coord_of(rank);
    const int stages = topo.shape().pp;
    const char* stage = stages == 1          ? ""
                        : c.pp == 0          ? " (first stage)"
                        : c.pp == stages - 1 ? " (last stage)"
                                             : " (middle stage)";
    return str("dp ", c.dp, ", pp ", c.pp, stage, ", tp ", c.tp, rank == writer_rank ? ", writer" : "");
}

}  // namespace

JobWatchdog::JobWatchdog(const MpiEnv& mpi, const Topology& topo, int writer_rank, double limit_s, JobObserver* inner,
                         const std::string& after_abort)
    : inner_(inner) {
    if (limit_s <= 0 || mpi.size() == 1) return;
    if (!Watchdog::available(mpi)) {
        if (mpi.rank() == writer_rank)
            log_warning("watchdog", "the MPI library gives no MPI_THREAD_MULTIPLE: --watchdog-s is off for this job");
        return;
    }
    WatchdogOptions o;
    o.limit_s = limit_s;
    o.exit_code = exit_watchdog;
    if (!after_abort.empty()) o.after_abort = after_abort;
    for (int r = 0; r < mpi.size(); ++r) o.roles.push_back(role(topo, r, writer_rank));
    watchdog_ = std::make_unique<Watchdog>(mpi, std::move(o));
}

JobWatchdog::~JobWatchdog() { stop(); }

void JobWatchdog::stop() {
    if (watchdog_) watchdog_->stop();
}

void JobWatchdog::on_step(const JobLoopState& s) {
    watchdog_note_step();
    if (inner_) inner_->on_step(s);
}

void JobWatchdog::on_end(const JobLoopState& s) {
    if (inner_) inner_->on_end(s);
}

}  // namespace gridlm
