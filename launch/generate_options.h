// `gridlm generate`'s command line: its --help text, its options and their checks, turned into
// the settings the job runs with (launch/cmd_generate.cpp).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <boost/program_options.hpp>

#include "engine/core/dtype.h"
#include "engine/core/request.h"
#include "engine/core/sampling_fields.h"
#include "engine/model/weights.h"
#include "io/prompt_reader.h"
#include "io/result_writer.h"
#include "launch/generate_job.h"
#include "launch/job_backend.h"
#include "parallel/topology.h"

namespace gridlm {

// What the options ask for, checked (a bad value throws UsageError naming it).
struct GenerateSettings {
    GenerateJobOptions job;  // scheduler, seed, --pp-slices; filled further at start-up
    SamplingParams sampling;
    SamplingLimits limits;
    int64_t max_model_len = 0;  // 0: the checkpoint's context
    int threads = 0;
    WeightPolicy weight_policy;  // as --dtype asks; weight_policy_for() fits it to the backend
    BackendSettings backend;     // --backend, --cuda-graphs
    InputFormat input_format{};
    bool strict_fields = false;  // --strict-fields: unknown record fields are errors
    OutputOrder order{};
    GridShape grid;
    std::vector<int64_t> pp_layers;  // --pp-layers, empty: balanced
    int64_t kv_bytes = 0;
    DType kv_dtype{};
    bool resume = false, retry_errors = false;
    // Operations (docs/user-guide.md "Operating a job").
    std::string metrics_file;       // --metrics-file, empty: none
    double metrics_interval_s = 5;  // --metrics-interval
    std::string trace_file;         // --trace, empty: none
    std::string filter;             // --filter FILE or "default", empty: none
    double max_error_rate = -1;     // --max-error-rate, < 0: no breaker
    int64_t min_records = 100;      // --min-records
    double watchdog_s = 300;        // --watchdog-s, 0: no hung-rank watchdog
};

// The options of `gridlm generate`, with the --help text as caption.
boost::program_options::options_description generate_options();

// Checks the parsed options; throws UsageError.
GenerateSettings generate_settings(const boost::program_options::variables_map& vm);

// The options that change what a record's line says (kept in the resume manifest).
std::map<std::string, std::string> output_options(const boost::program_options::variables_map& vm,
                                                  const SamplingParams& p, uint64_t job_seed,
                                                  const std::string& chat_template);

}  // namespace gridlm
