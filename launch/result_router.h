// Where a finished record's line goes in a grid job: the writer rank writes it (and shows progress),
// every other replica's reporter sends it to the writer, the other ranks only count it.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/core/communicator.h"
#include "launch/generate_job.h"

namespace gridlm {

class ResultWriter;
class Progress;

class ResultRouter {
public:
    // writer / progress: the writer rank's (nullptr elsewhere).
    ResultRouter(const JobGrid& grid, ResultWriter* writer, Progress* progress);

    // A finished record: ok (a completion) or not (an error line). line is the formatted JSONL
    // line on reporters (empty on other ranks). Counts it in ok / failed.
    void emit(uint64_t index, bool ok, int64_t prompt_tokens, int64_t completion_tokens, const std::string& line);
    // Writer: takes the other replicas' lines that have arrived (or, with wait, blocks for the
    // next message). Returns false when a wait got a replica's "done".
    bool poll(bool wait);
    // After the loop: reporters tell the writer they are done; the writer takes the rest of the
    // other replicas' lines and adds their counts to its own.
    void finish();

    int64_t ok() const { return ok_; }
    int64_t failed() const { return failed_; }

private:
    void write_here(uint64_t index, std::string line, bool ok, int64_t prompt_tokens, int64_t completion_tokens);

    JobGrid g_;
    ResultWriter* writer_;
    Progress* progress_;
    int64_t ok_ = 0, failed_ = 0;
    std::deque<std::pair<std::vector<char>, std::unique_ptr<PendingSend>>> outbox_;  // lines to the writer
    int replicas_done_ = 0;
    int64_t remote_ok_ = 0, remote_failed_ = 0;
};

}  // namespace gridlm
