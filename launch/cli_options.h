// Command-line parsing shared by the subcommands: Boost.Program_options errors become usage
// errors (exit 2), and an optional config file fills what the command line left unset.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include <boost/program_options.hpp>

#include "engine/core/dtype.h"

namespace gridlm {

// Parses args against `options` (+ `positional` when given). With `config_option` set and
// present on the command line, the file it names is read after the command line, so the command
// line wins. Throws UsageError on any parse problem or an unreadable config file.
boost::program_options::variables_map parse_options(
    const std::vector<std::string>& args, const boost::program_options::options_description& options,
    const boost::program_options::positional_options_description* positional = nullptr,
    const char* config_option = nullptr);

// Throws UsageError "--NAME is required" for the first missing option.
void require_options(const boost::program_options::variables_map& vm, std::initializer_list<const char*> names);

// --kv-cache-dtype f32|bf16|f16: the element type of the KV cache (commands that run the model).
// kv_cache_dtype_default is what a command line without the option gets: f32, because a bf16 or
// f16 cache, though half the bytes, moves a greedy continuation of the golden references at a
// near-tie (tests/unit/test_kv_dtype.cpp).
inline constexpr DType kv_cache_dtype_default = DType::dtype_f32;
// Adds the option (with its default and help) to opts.
void add_kv_cache_dtype_option(boost::program_options::options_description& opts);
// The parsed option; throws UsageError "--kv-cache-dtype must be f32, bf16 or f16" for another value.
DType kv_cache_dtype_from(const boost::program_options::variables_map& vm);

// A memory size given on the command line (--kv-cache-bytes, plan's --mem-per-rank): "80G" /
// "141GB" (powers of 1000), "80Gi" / "80GiB" (powers of 1024), "85899345920" (bytes), also K, M, T
// and fractions ("1.5T"); at least one byte. Throws UsageError naming --option, the value and the
// accepted forms.
int64_t parse_bytes(std::string_view text, std::string_view option);

// --log-format text|json, shared by every command: text (the default) writes readable lines on
// stderr, json one JSON object per line (engine/core/log.h).
void add_log_options(boost::program_options::options_description& opts);
// Configures the logger from the parsed option; throws UsageError naming the value and the accepted
// ones ("--log-format 'xml' is not text or json").
void apply_log_options(const boost::program_options::variables_map& vm);
// Reads --log-format from a command's raw arguments ("--log-format json" or "--log-format=json")
// before they are parsed, so that the parse's own errors come out in that format. A bad or missing
// value changes nothing (apply_log_options refuses a bad one).
void preconfigure_log_format(const std::vector<std::string>& args);
// Reports a UsageError of `command` (exit 2): in text format "PREFIX" + msg + "\n(see gridlm
// COMMAND --help)", PREFIX being "gridlm COMMAND: " or a rank's longer prefix; event "usage_error".
void log_usage_error(const std::string& command, const std::string& prefix, const std::string& msg);

}  // namespace gridlm
