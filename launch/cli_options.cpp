// Command-line parsing shared by the subcommands (see cli_options.h).
#include "launch/cli_options.h"

#include <fstream>

#include "engine/core/error.h"
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

}  // namespace gridlm
