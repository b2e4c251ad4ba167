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

}  // namespace gridlm
