// MPI start-up and shutdown for the gridlm executable. Works under mpirun/srun and as a
// singleton (a plain `gridlm generate` with no launcher is one rank).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace gridlm {

class MpiEnv {
public:
    // MPI_Init_thread(FUNNELED) unless MPI is already up: a command run inside another (gridlm
    // compare runs generate and score) then shares the outer MpiEnv's MPI. thread_multiple: ask
    // for MPI_THREAD_MULTIPLE instead (the watchdog's heartbeat thread calls MPI; check what was
    // given with parallel/watchdog.h's Watchdog::available).
    MpiEnv(int* argc, char*** argv, bool thread_multiple = false);
    ~MpiEnv();  // MPI_Finalize when this MpiEnv initialised MPI (and it is not finalised yet)
    MpiEnv(const MpiEnv&) = delete;
    MpiEnv& operator=(const MpiEnv&) = delete;

    int rank() const { return rank_; }
    int size() const { return size_; }
    const std::string& host() const { return host_; }
    // This rank's place among the ranks on its node (MPI_COMM_TYPE_SHARED), and their count.
    int local_rank() const { return local_rank_; }
    int local_size() const { return local_size_; }
    // Every value of the ranks on this node, by local rank (each cut to 128 bytes); a collective
    // over every rank of the job.
    std::vector<std::string> node_allgather(const std::string& value) const;

    // Ends every rank of the job with `code` after logging `msg` prefixed by rank and host as an
    // error line of `event` with `fields` (a JSON object) and the exit code. Any thread may call it.
    [[noreturn]] void abort(int code, const std::string& msg, std::string_view event = "fatal",
                            const nlohmann::ordered_json& fields = nlohmann::ordered_json::object()) const;

    // True when every rank passes ok == true; a collective (all ranks must call it).
    bool all_ok(bool ok) const;
    // The largest v over all ranks; a collective.
    int max_over_ranks(int v) const;

private:
    int rank_ = 0;
    int size_ = 1;
    int local_rank_ = 0, local_size_ = 1;
    std::string host_;
    bool owns_init_ = false;  // this MpiEnv called MPI_Init_thread
};

}  // namespace gridlm
