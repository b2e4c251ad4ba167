// Job progress on stderr: a redrawn bar (records, tokens/s, ETA) on a terminal, plain periodic
// lines otherwise (batch logs), and the end-of-job summary. Lines go through the logger: with
// --log-format json each is a "progress" or "summary" event and no bar is drawn.
#pragma once

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace gridlm {

struct ProgressOptions {
    std::optional<int64_t> total;  // records in the input, when known
    bool tty = false;              // redraw one line in place (text log format only)
    double interval_s = 10.0;      // seconds between plain lines (non-tty, or JSON events)
    bool quiet = false;            // only the final summary
    std::FILE* out = stderr;       // where the bar is drawn; lines go to the logger's stream
};

struct ProgressTotals {
    int64_t records_ok = 0;
    int64_t records_failed = 0;
    int64_t prompt_tokens = 0;  // of finished records
    int64_t completion_tokens = 0;
    int64_t prefill_tokens = 0;  // tokens run through the model, and the time it took
    double prefill_s = 0.0;
    int64_t decode_tokens = 0;
    double decode_s = 0.0;
};

class Progress {
public:
    explicit Progress(ProgressOptions options);
    ~Progress();  // removes the bar-clearing hook from the logger
    Progress(const Progress&) = delete;
    Progress& operator=(const Progress&) = delete;

    void record_done(bool ok, int64_t prompt_tokens = 0, int64_t completion_tokens = 0);
    void add_prefill(int64_t tokens, double seconds);
    void add_decode(int64_t tokens, double seconds);
    // Redraws / prints a line when one is due; cheap to call every step.
    void tick();
    // Clears the bar and prints the summary.
    void finish();
    // "87%": the model steps' share of the run so far (the rest is the job loop's own cost).
    std::string step_share() const;

    const ProgressTotals& totals() const { return t_; }
    // Records this run has to do, when known.
    std::optional<int64_t> records_total() const { return options_.total; }
    // Seconds left at the pace so far: known once a record is done and while some are left.
    std::optional<double> eta_s() const;
    double elapsed_s() const;
    // The line tick() would print now (without the bar's carriage return); for tests.
    std::string status_line() const;
    std::string summary_line() const;  // "gridlm: done: ..."
    // The numbers of status_line / summary_line for a JSON log line: records_done, records_total
    // (when known), records_failed, tokens_per_s, records_per_s, elapsed_s, eta_s (when known) ...
    nlohmann::ordered_json status_fields() const;
    nlohmann::ordered_json summary_fields() const;

private:
    ProgressOptions options_;
    ProgressTotals t_;
    double start_;
    double last_print_;
    bool draw_bar_ = false;  // tty and text format
    bool drawn_ = false;     // a bar is on screen and must be cleared before other output (under the log lock)

    std::string summary_text() const;  // summary_line without "gridlm: "
};

// "1h02m", "3m12s", "41s".
std::string format_duration(double seconds);

}  // namespace gridlm
