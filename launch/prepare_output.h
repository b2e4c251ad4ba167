// The output file of `gridlm generate` before the job starts: checked writable, never
// overwritten, and with --resume checked against its manifest and recovered.
#pragma once

#include <map>
#include <string>

#include "io/job_journal.h"

namespace gridlm {

// Fails before the model is loaded when OUT cannot be created, without truncating it yet.
void check_output_writable(const std::string& path);

// Writer rank, before the output is opened: refuses to overwrite an existing output, or (--resume)
// checks the manifest (input, checkpoint and the output-changing `options`) and recovers the
// output; writes the manifest of a fresh job. Throws UsageError or Error.
RecoveredOutput prepare_output(const std::string& output, const std::string& prompts, const std::string& model,
                               std::map<std::string, std::string> options, bool resume, bool retry_errors);

// Whether OUT holds a job's work already: a non-empty output file, or its journal. A job on such an
// output needs --resume; any other starts fresh.
bool output_started(const std::string& output);

// The files a fresh job prepared before its start-up finished (the manifest; the output and its
// journal, while still empty): removed by the destructor unless start-up got through (started()),
// so a job that stops at start-up leaves nothing behind. Not armed for "-" or a resumed output.
class FreshOutputGuard {
public:
    FreshOutputGuard() = default;
    FreshOutputGuard(const FreshOutputGuard&) = delete;
    FreshOutputGuard& operator=(const FreshOutputGuard&) = delete;
    ~FreshOutputGuard();
    void arm(const std::string& output) { output_ = output; }
    void started() { output_.clear(); }

private:
    std::string output_;  // empty: nothing to remove
};

}  // namespace gridlm
