// Command-line parsing shared by the subcommands (see cli_options.h).
#include "launch/cli_options.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include <fstream>

#include "engine/core/error.h"
#include "engine/core/log.h"
#include "launch/commands.h"

namespace gridlm {

namespace po = boost::program_options;

po::variables_map parse_options(const std::vector<std::string>& args, const po::options_description& options,
                                const po::positional_options_description* positional, const char* config_option) {
    po::variables_map vm;
    try {
        po::command_line_parser parser(args);
        parser.options(options);
        if (positional) parser.positional(*positional);
        po::store(parser.run(), vm);
        if (config_option && vm.count(config_option)) {
            const std::string cfg = vm[config_option].as<std::string>();
            std::ifstream in(cfg);
            if (!in) throw UsageError(str("cannot open config file '", cfg, "'"));
            // po::store keeps values already set, so storing the file second lets the command line win.
            po::store(po::parse_config_file(in, options), vm);
        }
        po::notify(vm);
    } catch (const po::error& e) {
        throw UsageError(e.what());
    }
    return vm;
}

void require_options(const po::variables_map& vm, std::initializer_list<const char*> names) {
    for (const char* name : names) {
        if (!vm.count(name)) throw UsageError(str("--", name, " is required"));
    }
}

void add_kv_cache_dtype_option(po::options_description& opts) {
    opts.add_options()("kv-cache-dtype",
                       po::value<std::string>()->default_value(std::string(dtype_name(kv_cache_dtype_default))),
                       "element type of the KV cache: f32, bf16 or f16 (bf16 / f16 take half the memory and "
                       "bandwidth of f32; attention still computes in f32)");
}

DType kv_cache_dtype_from(const po::variables_map& vm) {
    const std::string name = vm.count("kv-cache-dtype") ? vm["kv-cache-dtype"].as<std::string>()
                                                        : std::string(dtype_name(kv_cache_dtype_default));
    if (name != "f32" && name != "bf16" && name != "f16") throw UsageError("--kv-cache-dtype must be f32, bf16 or f16");
    return dtype_from_name(name);
}

void add_log_options(po::options_description& opts) {
    opts.add_options()("log-format", po::value<std::string>()->default_value("text"),
                       "text: readable lines on stderr; json: one JSON object per line (time, level, rank, host, "
                       "replica, stage, event, message, fields) for log collectors");
}

void apply_log_options(const po::variables_map& vm) {
    const std::string name = vm.count("log-format") ? vm["log-format"].as<std::string>() : std::string("text");
    LogFormat format;
    try {
        format = log_format_from_name(name);
    } catch (const Error&) {
        throw UsageError(str("--log-format '", name, "' is not text or json"));
    }
    log_configure(format);
}

void preconfigure_log_format(const std::vector<std::string>& args) {
    const std::string opt = "--log-format";
    for (size_t i = 0; i < args.size(); ++i) {
        std::string value;
        if (args[i] == opt && i + 1 < args.size()) {
            value = args[i + 1];
        } else if (args[i].rfind(opt + "=", 0) == 0) {
            value = args[i].substr(opt.size() + 1);
        } else {
            continue;
        }
        try {
            log_configure(log_format_from_name(value));
        } catch (const Error&) {
            // Left to apply_log_options, which names the value in a usage error.
        }
    }
}

void log_usage_error(const std::string& command, const std::string& prefix, const std::string& msg) {
    const std::string hint = str("(see gridlm ", command, " --help)");
    log_event_as(LogLevel::error, "usage_error", str(prefix, msg, "\n", hint), msg,
                 {{"command", command}, {"exit_code", (int)exit_usage}, {"hint", hint}});
}

int64_t parse_byte_count(const std::string& option, const std::string& value) {
    const auto bad = [&](const char* why) {
        return UsageError(str("--", option, " '", value, "' ", why,
                              ": give bytes (17179869184) or a number with a unit: K, M, G, T or KiB, MiB, GiB, TiB "
                              "(powers of 1024), kB, MB, GB, TB (powers of 1000), e.g. 16G"));
    };
    size_t at = 0;
    while (at < value.size() && (std::isdigit((unsigned char)value[at]) || value[at] == '.')) ++at;
    if (at == 0 || std::count(value.begin(), value.begin() + at, '.') > 1 || value[at - 1] == '.')
        throw bad("is not a byte count");
    std::string unit = value.substr(at);
    for (char& c : unit) c = (char)std::toupper((unsigned char)c);
    static const char* const prefixes = "KMGT";
    double scale = 1;
    if (!unit.empty()) {
        const char* p = std::strchr(prefixes, unit[0]);
        const std::string rest = unit.substr(1);
        if (!p || unit[0] == '\0' || (rest != "" && rest != "IB" && rest != "B")) throw bad("has an unknown unit");
        scale = std::pow(rest == "B" ? 1000.0 : 1024.0, (double)(p - prefixes + 1));
    } else if (value.find('.') != std::string::npos) {
        throw bad("is a fraction of a byte");
    }
    const double bytes = std::strtod(value.substr(0, at).c_str(), nullptr) * scale;
    if (!(bytes < 9.2e18)) throw bad("is too large");
    return (int64_t)std::llround(bytes);
}

}  // namespace gridlm
