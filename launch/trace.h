// Per-rank timeline of a job (forward passes, send/recv waits, sampling, admission, preemption) in
// the JSON Trace Event Format that Perfetto and chrome://tracing open, and the merged file's writer.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace gridlm {

// Format followed: Google's "Trace Event Format" document (the JSON object form). Each event has
// name, cat, ph, ts (microseconds since the job's epoch), pid (world rank) and tid (micro-batch
// lane, or trace_main_tid for work outside a lane); complete events ("X") add dur (microseconds),
// instant events ("i") have thread scope, counter events ("C") carry their values in args, and
// metadata events ("M") name each process (process_name, process_sort_index) and thread
// (thread_name, thread_sort_index). otherData holds what Perfetto ignores and `gridlm report`
// reads: rank, rank_label, epoch_s, events, dropped_events, event_cap and the job summary.

// The track of work that belongs to no micro-batch lane (lanes are 0 .. trace_main_tid - 1).
inline constexpr int trace_main_tid = 1000000;
// Events a rank keeps; later ones are counted as dropped (otherData, the report and one
// "events dropped" instant at the first drop say so). About 60 bytes each in memory.
inline constexpr size_t trace_event_cap_default = 2000000;
// Written into otherData.format; `gridlm report` reads any trace, this just names the producer.
inline constexpr const char* trace_format_name = "gridlm trace";

// Span names and categories `gridlm report` colours by (it also accepts names that contain the
// key word: "recv", "send", "preempt", "restore", "admi", "sampl", "forward").
inline constexpr std::string_view trace_forward = "forward";             // category trace_cat_compute
inline constexpr std::string_view trace_sampling = "sampling";           // category trace_cat_compute
inline constexpr std::string_view trace_recv_wait = "recv wait";         // category trace_cat_comm
inline constexpr std::string_view trace_send_wait = "send wait";         // category trace_cat_comm
inline constexpr std::string_view trace_admission = "admission";         // category trace_cat_sched
inline constexpr std::string_view trace_preemption = "preemption";       // category trace_cat_sched
inline constexpr std::string_view trace_restore = "checkpoint restore";  // category trace_cat_sched
inline constexpr std::string_view trace_dropped = "events dropped";      // the cap's marker
inline constexpr std::string_view trace_cat_compute = "compute";
inline constexpr std::string_view trace_cat_comm = "comm";
inline constexpr std::string_view trace_cat_sched = "sched";

// Records one rank's events in memory. Calls from several threads are serialised by a mutex, which
// only an enabled tracer takes.
class Tracer {
public:
    // Disabled tracer: every call is a no-op costing one branch. (Defined with the private state.)
    Tracer() noexcept;
    // Records this rank's events in memory; epoch_s: the job's common time origin in seconds of
    // the system clock (broadcast from rank 0 so all ranks share it; clocks of different nodes
    // may still differ by their NTP offset). rank_label e.g. "rank 3: replica 0, stage 1, tp 0".
    // max_events: events kept (metadata not counted), see trace_event_cap_default.
    Tracer(int rank, std::string rank_label, double epoch_s, size_t max_events = trace_event_cap_default);
    Tracer(Tracer&&) noexcept;
    Tracer& operator=(Tracer&&) noexcept;
    ~Tracer();

    bool enabled() const { return state_ != nullptr; }
    // System clock, seconds since the Unix epoch (what span times are measured in).
    static double now_s();

    // A complete span [begin_s, end_s] (seconds, now_s()'s clock) on track `lane` (-1: the rank's
    // main track), with args (a JSON object: tokens, sequences, micro_batch, records...; null: none).
    void span(std::string_view name, std::string_view category, double begin_s, double end_s, int lane = -1,
              const nlohmann::ordered_json& args = {}) {
        if (state_) record('X', name, category, begin_s, end_s - begin_s, lane, args);
    }
    // A point in time on track `lane`.
    void instant(std::string_view name, std::string_view category, double t_s, int lane = -1,
                 const nlohmann::ordered_json& args = {}) {
        if (state_) record('i', name, category, t_s, 0, lane, args);
    }
    // A counter sample: values is an object of numbers ({"running": 12, "waiting": 30}); Perfetto
    // draws one track per counter name.
    void counter(std::string_view name, double t_s, const nlohmann::ordered_json& values) {
        if (state_) record('C', name, "", t_s, 0, -1, values);
    }
    // The job summary (records, tokens, tok_per_s, duration_s ...), stored as metadata the report
    // prints in key order. A later call replaces it.
    void set_summary(const nlohmann::ordered_json& summary);

    // This rank's events as one JSON trace object {"traceEvents": [...], "displayTimeUnit": "ms",
    // "otherData": {...}} (serialised; one event a line). A disabled tracer gives an empty trace.
    std::string serialize() const;

    size_t events() const;          // events kept
    size_t dropped_events() const;  // events past the cap

private:
    struct State;
    void record(char ph, std::string_view name, std::string_view category, double t_s, double dur_s, int lane,
                const nlohmann::ordered_json& args);
    std::unique_ptr<State> state_;
};

// Writes one trace file from every rank's serialized trace (rank order; empty strings, from ranks
// that trace nothing, are skipped), pid = rank as each Tracer set it: the merged trace Perfetto /
// chrome://tracing open. otherData gets every rank's figures under "ranks", the total
// dropped_events and the first summary set. Written to PATH.tmp, then renamed. Throws
// gridlm::Error naming the path on I/O failure, or naming the rank whose string is not a trace.
void write_merged_trace(const std::string& path, const std::vector<std::string>& rank_traces);

}  // namespace gridlm
