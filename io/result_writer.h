// Durable JSONL result writer: one line per input record, flushed as it is written, in the
// order records finish or (bounded reorder buffer) in input order; gridlm or OpenAI batch shape.
#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <string_view>

#include "engine/core/compact_sets.h"
#include "engine/core/request.h"

namespace gridlm {

enum class OutputShape : uint8_t {
    output_shape_gridlm,  // {"id","text","finish_reason","usage"[,"choices"][,"logprobs"]}
    output_shape_openai,  // OpenAI batch output: {"id","custom_id","response":{...},"error":null}
};

enum class OutputOrder : uint8_t {
    output_order_finished,  // as each record finishes (no buffering)
    output_order_input,     // in input order; finished records wait for the earlier ones
};

OutputOrder output_order_from_name(std::string_view name);  // "input" | "finished"; throws Error

struct ResultWriterOptions {
    OutputShape shape = OutputShape::output_shape_gridlm;
    OutputOrder order = OutputOrder::output_order_finished;
    std::string model_name = "gridlm";  // "model" of OpenAI response bodies
    int64_t created = 0;                // "created" of OpenAI bodies (unix seconds); 0 => now
    // Records held for --order input at most; the job driver admits no record further ahead
    // of the oldest unfinished one than this, so overflowing it is a bug.
    size_t max_buffered = 1 << 16;
    double fsync_interval_s = 5.0;  // also fsync'd on close
    // Resumable output (io/job_journal.h): append each line's record to OUT.journal, made
    // durable with the output.
    bool journal = false;
    // Continue an existing output (a resumed job): open OUT and its journal for appending; the
    // records in `done` are already in it (--order input skips over them).
    bool append = false;
    IndexSet done;
};

// One output line (no trailing newline) for a finished record / a failed one. Text that is not
// valid UTF-8 becomes U+FFFD, so every line is valid JSON.
std::string format_completion(const Completion& c, const ResultWriterOptions& options);
std::string format_error(const RecordError& e, const ResultWriterOptions& options);

class ResultWriter {
public:
    // Creates / truncates `path` ("-" = standard output). Throws Error when it cannot.
    ResultWriter(const std::string& path, ResultWriterOptions options);
    ~ResultWriter();
    ResultWriter(const ResultWriter&) = delete;
    ResultWriter& operator=(const ResultWriter&) = delete;

    // Each input record (ref.index 0, 1, 2, ...) must be written exactly once.
    void write(const Completion& c);
    void write(const RecordError& e);
    // A line formatted elsewhere (another rank's record, format_completion / format_error).
    void write_line(uint64_t index, std::string line, bool ok) {
        put(index, std::move(line), ok);
    }  // Flushes, fsyncs and closes. Throws Error on an I/O failure (disk full).
    void close();
    // A stopped job: lines held back for --order input are dropped instead of written out of
    // order by close(); their records are not in the journal, so a resumed job runs them again.
    void discard_pending() { pending_.clear(); }

    size_t buffered() const { return pending_.size(); }  // held back for input order
    size_t max_buffered() const { return options_.max_buffered; }
    uint64_t written() const { return n_written_; }                // lines in the file
    uint64_t written_failed() const { return n_written_failed_; }  // of which error lines

private:
    void put(uint64_t index, std::string line, bool ok);
    void emit(uint64_t index, const std::string& line, bool ok);
    void advance();  // next_index_ past records already done
    void sync();

    std::string path_;
    ResultWriterOptions options_;
    std::FILE* file_ = nullptr;
    bool owns_file_ = true;
    std::FILE* journal_ = nullptr;
    uint64_t offset_ = 0;                                       // bytes in the output file
    std::map<uint64_t, std::pair<std::string, bool>> pending_;  // index -> (line, ok), for input order
    uint64_t next_index_ = 0;
    uint64_t n_written_ = 0;
    uint64_t n_written_failed_ = 0;
    double last_sync_ = 0.0;
};

}  // namespace gridlm
