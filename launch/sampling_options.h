// The sampling options of `gridlm generate`, declared, read and recorded in the resume manifest
// from the one table of sampling fields (engine/core/sampling_fields.h).
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include <boost/program_options.hpp>

#include "engine/core/request.h"

namespace gridlm {

// Adds one option per sampling field, with the struct's defaults, in the table's order.
void add_sampling_options(boost::program_options::options_description& opts);

// The job's default SamplingParams from parsed options; *job_seed gets --seed (a record without
// its own seed derives one from it), while the returned seed stays unset.
SamplingParams sampling_params_from(const boost::program_options::variables_map& vm, uint64_t* job_seed);

// The output-changing sampling options as the resume manifest records them, keyed by option name
// (e.g. "temperature" -> "0.5"; lists joined with \x1f; the seed is the job seed).
std::map<std::string, std::string> sampling_manifest_options(const SamplingParams& p, uint64_t job_seed);

}  // namespace gridlm
