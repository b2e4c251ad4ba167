// What makes a generate job resumable: next to OUT (the JSONL output) the job keeps
//   OUT.journal        one line per output line, "<record index> <end offset in OUT> <1 ok | 0 error>",
//                      appended after the line and made durable with it (fsync at an interval);
//   OUT.manifest.json  what produced OUT: a hash of the input file, a fingerprint of the
//                      checkpoint and the options that change outputs.
// A resumed job checks the manifest, cuts OUT back to its last journaled line (a line torn by a
// kill goes), and skips the records the journal lists. docs/user-guide.md ("Resuming").
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace gridlm {

std::string journal_path_for(const std::string& output);   // OUT.journal
std::string manifest_path_for(const std::string& output);  // OUT.manifest.json

// FNV-1a 64 of a whole file, as 16 hex digits. Throws Error when it cannot be read.
std::string hash_file(const std::string& path);
// A checkpoint's fingerprint without reading all of it: its size and a hash of its first and last
// 4 MiB and of 64 blocks of 64 KiB spread over the rest. Throws Error when it cannot be read.
std::string fingerprint_file(const std::string& path);

struct JobManifest {
    std::string input;                           // hash_file of the prompts
    std::string checkpoint;                      // fingerprint_file of the model
    std::map<std::string, std::string> options;  // output-changing options, name -> value

    std::string to_json() const;
    // Throws Error naming the file when it is not a manifest.
    static JobManifest read(const std::string& path);
    void write(const std::string& path) const;  // via a temporary file and rename
};

// What differs between the manifest of the first run and this run, for a message ("the input
// file", "option temperature (0.7 -> 0)"); empty when nothing does.
std::vector<std::string> manifest_changes(const JobManifest& before, const JobManifest& now);

struct RecoveredOutput {
    std::vector<uint64_t> done;  // records whose lines stay in the output
    int64_t kept = 0;            // lines kept
    int64_t failed = 0;          // of which error lines
    int64_t cut_bytes = 0;       // bytes cut from the end (unjournaled or torn lines)
    int64_t retried = 0;         // error lines removed for --retry-errors
    uint64_t size = 0;           // output size afterwards (the journal's last offset)
};

// Brings OUT and OUT.journal back to a consistent state after a kill: journal entries past the
// end of OUT are dropped, OUT is cut to the last journaled line. With retry_errors, error lines
// are removed too (OUT and the journal are rewritten), so those records run again. Throws Error
// naming the file and line when the journal is malformed.
RecoveredOutput recover_output(const std::string& output, bool retry_errors);

}  // namespace gridlm
