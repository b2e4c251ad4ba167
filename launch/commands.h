// Subcommand registry of the gridlm executable: each launch/cmd_*.cpp registers one command.
#pragma once

#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace gridlm {

// Exit statuses shared by all subcommands (documented in --help).
enum ExitCode : int {
    exit_ok = 0,           // everything done
    exit_fatal = 1,        // fatal error: bad checkpoint, unreadable input, I/O failure
    exit_usage = 2,        // bad command line or config option
    exit_partial = 3,      // job finished but some records failed
    exit_interrupted = 4,  // stopped by SIGTERM; every line written is complete, --resume continues
    exit_error_rate = 5,   // generate stopped by --max-error-rate; lines written are complete, resumable
    // compare: a --fail-if gate held (B is worse than the gate allows); its own status, so a
    // pipeline can tell a rollback verdict from a job with failed records (3).
    exit_gate_failed = 6,
    // generate / score on several ranks: the watchdog (--watchdog-s) found a rank silent (stopped,
    // hung) or no rank making progress and ended the job; lines written are complete, resumable.
    exit_watchdog = 7,
};

// A usage problem (bad option, missing argument): reported with a hint to --help, exit 2.
struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Ends the command with `code` and no further message (the command already reported why; used
// when the ranks of a job agree to stop).
struct ExitStatus {
    int code;
};

struct Command {
    std::string name;
    std::string summary;                                           // one line for `gridlm --help`
    std::function<int(const std::vector<std::string>& args)> run;  // args after the command name
};

std::vector<Command>& command_registry();

struct CommandRegistrar {
    CommandRegistrar(std::string name, std::string summary, std::function<int(const std::vector<std::string>&)> run) {
        command_registry().push_back({std::move(name), std::move(summary), std::move(run)});
    }
};

}  // namespace gridlm

#define GRIDLM_COMMAND(ident, name, summary, fn) \
    static ::gridlm::CommandRegistrar gridlm_command_##ident(name, summary, fn)
