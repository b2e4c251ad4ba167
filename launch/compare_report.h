// The report of `gridlm compare`: per-record and summary figures of two generate outputs over the
// same records (A and B) and of the cross scores (each model's log-probabilities of the other's
// completion), the --fail-if gates over them, and report.json / report.html. Reads files only
// (no model, no MPI), so it is tested on hand-made lines.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/core/text_escape.h"

namespace gridlm {

// One model's line for one record (gridlm output shape), as the report reads it.
struct CompareSide {
    bool present = false;   // the output has a line for the record
    bool ok = false;        // a completion with "text" (a filter may have flagged or redacted it)
    bool error = false;     // an error line ("error")
    bool filtered = false;  // the line has a "filter" object
    std::string text;
    std::string finish_reason;        // "" when the line has none
    bool has_logprobs = false;        // "logprobs" was there: token_ids / tokens / logprobs are set
    std::vector<int32_t> token_ids;   // [completion tokens] from "logprobs", the stopping one included
    std::vector<std::string> tokens;  // [completion tokens] their text, for display
    std::vector<double> logprobs;     // [completion tokens] the model's own, natural log
    int64_t length = 0;               // completion tokens: token_ids' count, else usage.completion_tokens
    std::string error_message;
};

// Reads one generate line. Throws nlohmann::json::exception for a field of the wrong type.
CompareSide compare_side_from_line(const nlohmann::ordered_json& line);

// The sum of a model's log-probabilities over the other model's completion (a score line).
struct CrossScore {
    double total_logprob = 0.0;
    int64_t tokens = 0;
};

struct CompareRecord {
    std::string id;              // "" for a line that could not be read (then the error lines name its line)
    int64_t line = 0;            // 1-based line of the prompts file compare wrote (= record index + 1)
    std::string prompt_preview;  // the prompt, or the last message's text (HTML only)
    CompareSide a, b;
    std::optional<CrossScore> b_on_a, a_on_b;  // B's score of A's completion, A's of B's
};

// Fills the figures that follow from a and b alone.
struct RecordFigures {
    bool both_ok = false;
    bool equal = false;                       // both ok and the texts are equal
    std::optional<int64_t> first_divergence;  // first index where the token ids differ (the shorter
                                              // length when one is a prefix); nullopt when equal or
                                              // either side has no token ids
    // Mean per-token log-probabilities (nullopt when unknown): X on Y = model X on Y's completion.
    std::optional<double> a_on_a, b_on_a, a_on_b, b_on_b;
};
RecordFigures record_figures(const CompareRecord& r);

// Count, mean and nearest-rank percentiles (the smallest value with at least q of the values at or
// below it) of a set of values; all nullopt when there are none.
struct Distribution {
    int64_t count = 0;
    std::optional<double> mean, p50, p90;
};
Distribution distribution_of(std::vector<double> values);

// Power-of-two bins of non-negative integers: [0,0], [1,1], [2,3], [4,7], ... up to the largest.
struct HistogramBin {
    int64_t from = 0, to = 0, count = 0;
};
std::vector<HistogramBin> pow2_histogram(const std::vector<int64_t>& values);

struct SideSummary {
    int64_t ok = 0, errors = 0, filtered = 0, missing = 0;
    double error_rate = 0.0, filtered_rate = 0.0;   // over all records
    std::map<std::string, int64_t> finish_reasons;  // over ok lines
    Distribution length;                            // completion tokens of ok lines
};

struct CompareSummary {
    int64_t records = 0;
    int64_t both_ok = 0;
    int64_t exact_match = 0;
    std::optional<double> exact_match_rate;  // exact_match / both_ok
    int64_t diverged = 0;                    // both ok with a first divergence
    Distribution divergence;                 // of the first divergences
    std::vector<HistogramBin> divergence_histogram;
    // Log-probabilities per token, pooled (sum over tokens / tokens) over the records where all
    // four are known, so each pair is taken over the same tokens.
    int64_t logprob_records = 0, logprob_tokens_a = 0, logprob_tokens_b = 0;
    std::optional<double> a_on_a, b_on_a, a_on_b, b_on_b;
    std::optional<double> delta_b_on_a;  // b_on_a - a_on_a: how much less B believes A's text
    std::optional<double> delta_a_on_b;  // a_on_b - b_on_b
    std::optional<double> length_ratio;  // mean length of B / of A over the records both ok
    SideSummary a, b;
};
CompareSummary summarize(const std::vector<CompareRecord>& records);

// --fail-if METRIC OP NUMBER: true means B fails.
struct Gate {
    std::string expr;    // as given, trimmed
    std::string metric;  // one of gate_metrics()
    std::string op;      // <, <=, > or >=
    double threshold = 0.0;
};
// The metrics a gate may name, with what each is, for --help and error messages.
const std::vector<std::pair<std::string, std::string>>& gate_metrics();
// Each spec may hold several expressions separated by commas. Throws UsageError naming the
// expression, the accepted metrics and operators.
std::vector<Gate> parse_gates(const std::vector<std::string>& specs);

struct GateResult {
    Gate gate;
    std::optional<double> value;
    bool failed = false;
    std::string note;  // why a gate without a value passed or failed
};
// A gate whose metric has no value fails (B cannot be shown to pass), except divergence when
// records were compared and none diverged.
std::vector<GateResult> evaluate_gates(const std::vector<Gate>& gates, const CompareSummary& s);

struct CompareReport {
    std::string a_model, b_model;  // as given on the command line
    std::vector<CompareRecord> records;
    CompareSummary summary;
    std::vector<GateResult> gates;
    bool gates_failed() const;
};

// The files of a compare directory.
struct CompareFiles {
    std::string prompts;             // the records (write_compare_prompts)
    std::string a_output, b_output;  // generate with A, with B
    std::string b_on_a, a_on_b;      // score of A's completions with B, of B's with A
};
// Reads the files into records (a missing score file is taken as empty). Throws Error naming the
// file and line of a line that cannot be read.
std::vector<CompareRecord> read_compare_records(const CompareFiles& files);

CompareReport build_compare_report(std::string a_model, std::string b_model, std::vector<CompareRecord> records,
                                   const std::vector<Gate>& gates);

// report.json: the keys and their meaning are listed in docs/user-guide.md ("Comparing two
// checkpoints").
nlohmann::ordered_json compare_report_json(const CompareReport& report);

// report.html: one self-contained page (no external assets): summary, gates, distributions as
// inline bars, and the first max_records differing records side by side, the divergence marked.
std::string compare_report_html(const CompareReport& report, size_t max_records);

// The gates as printed at the end of a run: "gate match<0.9: match = 0.833 -> FAILED".
std::string gate_lines(const std::vector<GateResult>& gates);

}  // namespace gridlm
