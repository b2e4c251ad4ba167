// Command-line parsing shared by the subcommands: Boost.Program_options errors become usage
// errors (exit 2), and an optional config file fills what the command line left unset.
#pragma once

#include <initializer_list>
#include <string>
#include <vector>

#include <boost/program_options.hpp>

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

}  // namespace gridlm
