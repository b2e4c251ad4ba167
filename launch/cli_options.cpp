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

int64_t parse_bytes(std::string_view text, std::string_view option) {
    auto bad = [&]() {
        return UsageError(str("--", option, " '", text,
                              "' is not a memory size: give bytes as a number with an optional suffix K, M, G, T "
                              "(powers of 1000; also KB, MB, GB, TB) or Ki, Mi, Gi, Ti (powers of 1024; also KiB, "
                              "MiB, GiB, TiB), e.g. 80G, 141GB or 80GiB"));
    };
    size_t i = 0;
    while (i < text.size() && (std::isdigit((unsigned char)text[i]) || text[i] == '.')) ++i;
    const std::string number(text.substr(0, i));
    if (number.empty() || number.find('.') != number.rfind('.') || number == ".") throw bad();
    std::string suffix(text.substr(i));
    for (char& ch : suffix) ch = (char)std::tolower((unsigned char)ch);
    double scale = 0;
    const char* letters = "kmgt";
    if (suffix.empty() || suffix == "b") {
        scale = 1;
    } else if (const char* p = std::strchr(letters, suffix[0]); p && *p) {
        const int power = (int)(p - letters) + 1;
        const std::string rest = suffix.substr(1);
        if (rest.empty() || rest == "b") scale = std::pow(1000.0, power);
        if (rest == "i" || rest == "ib") scale = std::pow(1024.0, power);
    }
    if (scale == 0) throw bad();
    const double bytes = std::stod(number) * scale;
    if (!(bytes >= 1) || bytes > 9.0e18) throw bad();
    return (int64_t)bytes;
}

}  // namespace gridlm
