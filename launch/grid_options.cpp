// Grid options and the collective start-up phase (see grid_options.h).
#include "launch/grid_options.h"

#include <exception>
#include <stdexcept>
#include <string>

#include "engine/core/error.h"
#include "engine/core/log.h"
#include "launch/cli_options.h"
#include "launch/commands.h"
#include "parallel/mpi_env.h"

namespace gridlm {

namespace po = boost::program_options;

void add_grid_options(po::options_description& opts, const char* unit) {
    // clang-format off
    opts.add_options()
        ("dp", po::value<int>()->default_value(1), str("data-parallel replicas (each takes every dp-th ", unit, ")").c_str())
        ("pp", po::value<int>()->default_value(1), "pipeline stages per replica (at most the model's layers)")
        ("tp", po::value<int>()->default_value(1),
         "tensor-parallel ranks per stage (Llama / Qwen2: must divide the attention heads, KV heads "
         "split or replicated; DeepSeek: up to the head and expert counts, experts split across the ranks)")
        ("pp-layers", po::value<std::string>(),
         "layers per stage, e.g. 10,20 (default: balance weight bytes, the LM head counting on the last stage)");
    // clang-format on
}

GridOptions grid_options_from(const po::variables_map& vm) {
    GridOptions g;
    g.shape = {vm["dp"].as<int>(), vm["pp"].as<int>(), vm["tp"].as<int>()};
    if (g.shape.dp < 1 || g.shape.pp < 1 || g.shape.tp < 1) throw UsageError("--dp, --pp and --tp must be >= 1");
    if (!vm.count("pp-layers")) return g;
    const std::string list = vm["pp-layers"].as<std::string>();
    size_t start = 0;
    for (;;) {
        const size_t comma = list.find(',', start);
        const std::string part = list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        try {
            size_t used = 0;
            g.pp_layers.push_back(std::stoll(part, &used));
            if (used != part.size()) throw std::invalid_argument(part);
        } catch (const std::exception&) {
            throw UsageError(str("--pp-layers: '", part, "' is not a number (expected e.g. 10,20)"));
        }
        if (comma == std::string::npos) return g;
        start = comma + 1;
    }
}

void collective_phase(const MpiEnv& mpi, const char* command, const std::function<void()>& phase) {
    int code = exit_ok;
    std::string msg;
    try {
        phase();
    } catch (const UsageError& e) {
        code = exit_usage;
        msg = e.what();
    } catch (const std::exception& e) {
        code = exit_fatal;
        msg = e.what();
    }
    const int worst = mpi.max_over_ranks(code);
    if (worst == exit_ok) return;
    if (code != exit_ok) {
        std::string prefix = str("gridlm ", command, ": ");
        if (mpi.size() > 1) prefix += str("rank ", mpi.rank(), " of ", mpi.size(), " (", mpi.host(), "): ");
        if (code == exit_usage) {
            log_usage_error(command, prefix, msg);
        } else {
            log_event_as(LogLevel::error, "fatal", str(prefix, "error: ", msg), msg,
                         {{"command", command}, {"exit_code", code}});
        }
    }
    throw ExitStatus{worst};
}

}  // namespace gridlm
