// Entry point of the gridlm executable: dispatches to the registered subcommands and turns
// errors into messages and exit codes.
#include <algorithm>
#include <cstdio>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "engine/core/error.h"
#include "engine/core/log.h"
#include "launch/cli_options.h"
#include "launch/commands.h"
#include "launch/job_backend.h"

namespace gridlm {

std::vector<Command>& command_registry() {
    static std::vector<Command> registry;
    return registry;
}

static void print_usage(std::ostream& os) {
    auto cmds = command_registry();
    std::sort(cmds.begin(), cmds.end(), [](const Command& a, const Command& b) { return a.name < b.name; });
    os << "gridlm: large language model inference as MPI batch jobs\n\n"
          "usage: gridlm <command> [options]   (gridlm <command> --help for its options)\n\n"
          "commands:\n";
    for (const auto& c : cmds) {
        os << "  " << c.name << std::string(c.name.size() < 12 ? 12 - c.name.size() : 1, ' ') << c.summary << "\n";
    }
    os << "\nexit status: 0 success; 1 fatal error; 2 usage error; 3 job finished but some records failed;\n"
          "             4 stopped by SIGTERM or SIGINT (generate: lines written are complete, --resume continues);\n"
          "             5 generate: stopped by --max-error-rate (lines written are complete, --resume continues);\n"
          "             6 compare: a --fail-if gate failed;\n"
          "             7 generate, score: the watchdog (--watchdog-s) ended a job whose rank stopped answering\n"
          "\ngridlm --version: the version, the backends built and, for cuda, whether it can load on this node\n";
}

}  // namespace gridlm

int main(int argc, char** argv) {
    using namespace gridlm;
    if (argc < 2) {
        print_usage(std::cerr);
        return exit_usage;
    }
    const std::string name = argv[1];
    if (name == "--help" || name == "-h" || name == "help") {
        print_usage(std::cout);
        return exit_ok;
    }
    if (name == "--version") {
        std::cout << "gridlm 0.1.0; backends: " << backends_built() << "\n";
        return exit_ok;
    }
    const auto& cmds = command_registry();
    auto it = std::find_if(cmds.begin(), cmds.end(), [&](const Command& c) { return c.name == name; });
    std::vector<std::string> args(argv + 2, argv + argc);
    preconfigure_log_format(args);
    if (it == cmds.end()) {
        log_event(LogLevel::error, "usage_error", str("unknown command '", name, "'"),
                  {{"command", name}, {"exit_code", (int)exit_usage}});
        if (log_format() == LogFormat::text) {
            std::cerr << "\n";
            print_usage(std::cerr);
        }
        return exit_usage;
    }
    const std::string prefix = str("gridlm ", name, ": ");
    try {
        return it->run(args);
    } catch (const ExitStatus& e) {
        return e.code;
    } catch (const UsageError& e) {
        log_usage_error(name, prefix, e.what());
        return exit_usage;
    } catch (const Error& e) {
        log_event_as(LogLevel::error, "fatal", str(prefix, "error: ", e.what()), e.what(),
                     {{"command", name}, {"exit_code", (int)exit_fatal}});
        return exit_fatal;
    } catch (const std::exception& e) {
        log_event_as(LogLevel::error, "fatal", str(prefix, "unexpected error: ", e.what()), e.what(),
                     {{"command", name}, {"exit_code", (int)exit_fatal}, {"unexpected", true}});
        return exit_fatal;
    }
}
