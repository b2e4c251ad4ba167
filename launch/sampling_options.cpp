// The sampling options of `gridlm generate` (see sampling_options.h), one per row of
// sampling_fields(); each field's type picks how it is declared, read and written down.
#include "launch/sampling_options.h"

#include <optional>
#include <type_traits>
#include <variant>
#include <vector>

#include "engine/core/error.h"
#include "engine/core/sampling_fields.h"

namespace gridlm {

namespace po = boost::program_options;

namespace {

template <typename T>
using member_type = std::decay_t<decltype(std::declval<SamplingParams&>().*std::declval<T>())>;

std::string option_spelling(const SamplingField& f) {
    return f.option_short ? str(f.option_name, ",", f.option_short) : std::string(f.option_name);
}

}  // namespace

void add_sampling_options(po::options_description& opts) {
    const SamplingParams d;  // the defaults shown in --help come from the struct
    for (const SamplingField& f : sampling_fields()) {
        const po::value_semantic* value = std::visit(
            [&](auto m) -> const po::value_semantic* {
                using T = member_type<decltype(m)>;
                if constexpr (std::is_same_v<T, bool>) {
                    GRIDLM_ASSERT(!(d.*m));  // a switch can only turn a flag on
                    return po::bool_switch();
                } else if constexpr (std::is_same_v<T, std::optional<uint64_t>>) {
                    return po::value<uint64_t>()->default_value(0);  // the job seed
                } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
                    return po::value<T>()->composing();
                } else if constexpr (std::is_same_v<T, std::vector<int32_t>>) {
                    return po::value<T>()->multitoken()->composing();
                } else {
                    return po::value<T>()->default_value(d.*m);
                }
            },
            f.member);
        const std::string spelling = option_spelling(f);
        opts.add_options()(spelling.c_str(), value, f.help);
    }
}

SamplingParams sampling_params_from(const po::variables_map& vm, uint64_t* job_seed) {
    SamplingParams p;
    for (const SamplingField& f : sampling_fields()) {
        const po::variable_value& v = vm[f.option_name];
        std::visit(
            [&](auto m) {
                using T = member_type<decltype(m)>;
                if constexpr (std::is_same_v<T, std::optional<uint64_t>>) {
                    *job_seed = v.as<uint64_t>();
                } else if constexpr (std::is_same_v<T, std::vector<std::string>> ||
                                     std::is_same_v<T, std::vector<int32_t>>) {
                    if (!v.empty()) p.*m = v.as<T>();
                } else if constexpr (std::is_same_v<T, int32_t>) {
                    set_sampling_int(f, m, v.as<T>(), p);
                } else {
                    p.*m = v.as<T>();
                }
            },
            f.member);
    }
    return p;
}

std::map<std::string, std::string> sampling_manifest_options(const SamplingParams& p, uint64_t job_seed) {
    std::map<std::string, std::string> o;
    for (const SamplingField& f : sampling_fields()) {
        if (!f.changes_output) continue;
        o[f.option_name] = std::visit(
            [&](auto m) -> std::string {
                using T = member_type<decltype(m)>;
                if constexpr (std::is_same_v<T, std::optional<uint64_t>>) {
                    return str(job_seed);
                } else if constexpr (std::is_same_v<T, std::vector<std::string>> ||
                                     std::is_same_v<T, std::vector<int32_t>>) {
                    std::string r;
                    for (const auto& x : p.*m) r += (r.empty() ? "" : "\x1f") + str(x);
                    return r;
                } else {
                    return str(p.*m);
                }
            },
            f.member);
    }
    return o;
}

}  // namespace gridlm
