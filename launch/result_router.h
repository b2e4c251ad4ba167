// Where a finished record's line goes in a grid job: the writer rank writes it (and shows progress),
// every other replica's reporter sends it to the writer, the other ranks only count it.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/core/communicator.h"
#include "engine/core/compact_sets.h"
#include "launch/generate_job.h"

namespace gridlm {

class ResultWriter;
class Progress;
class PromptReader;

// What became of a record, as the job's counts see it.
struct RecordStatus {
    bool ok = true;           // false: an error line (the job then exits 3)
    std::string kind = "ok";  // "ok", "filtered" (a filter rule rejected the prompt or the
                              // completion: not a failure), or the error line's code
    std::string filter;       // "ACTION/WHERE" of a filter rule that matched ("redact/prompt"), or ""
};

class ResultRouter {
public:
    // writer / progress: the writer rank's (nullptr elsewhere).
    ResultRouter(const JobGrid& grid, ResultWriter* writer, Progress* progress);

    // A finished record. line is the formatted JSONL line on reporters (empty on other ranks).
    // Counts it in ok / failed, and (on the writer, for every replica) by kind and filter hit.
    void emit(uint64_t index, const RecordStatus& status, int64_t prompt_tokens, int64_t completion_tokens,
              const std::string& line);
    // Writer: takes the other replicas' lines that have arrived (or, with wait, blocks for the
    // next message). Returns false when a wait got a replica's "done".
    bool poll(bool wait);
    // After the loop: reporters tell the writer they are done; the writer takes the rest of the
    // other replicas' lines and adds their counts to its own.
    void finish();

    int64_t ok() const { return ok_; }
    int64_t failed() const { return failed_; }
    // Writer: records written so far by kind ("ok", "filtered", error codes) and filter hits by
    // "ACTION/WHERE", all replicas.
    const std::map<std::string, int64_t>& kinds() const { return kinds_; }
    const std::map<std::string, int64_t>& filter_hits() const { return filter_hits_; }
    // Writer: lines in the output file this run, and of those error lines (with --order input,
    // lines held back for order are not in them yet).
    int64_t written() const;
    int64_t written_failed() const;
    // Writer, after finish(): reads the rest of `reader` (records the job never reached) and finds
    // the records with no line: not written this run (by any replica) and not in `done`. Lists at
    // most max_listed of them.
    MissingRecords missing(PromptReader& reader, const IndexSet& done, size_t max_listed) const;

private:
    void write_here(uint64_t index, std::string line, const RecordStatus& status, int64_t prompt_tokens,
                    int64_t completion_tokens);

    JobGrid g_;
    ResultWriter* writer_;
    Progress* progress_;
    int64_t ok_ = 0, failed_ = 0;
    std::deque<std::pair<std::vector<char>, std::unique_ptr<PendingSend>>> outbox_;  // lines to the writer
    int replicas_done_ = 0;
    int64_t remote_ok_ = 0, remote_failed_ = 0;
    std::map<std::string, int64_t> kinds_, filter_hits_;
    IndexSet written_;  // writer: the records given to the output this run (held back ones included)
};

}  // namespace gridlm
