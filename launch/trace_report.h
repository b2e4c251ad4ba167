// What `gridlm report` does with a trace: read one merged file or several per-rank files,
// classify spans by kind, work out per-rank busy and wait figures, and draw the timeline as SVG.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace gridlm {

enum class SpanKind : int {
    forward,
    recv_wait,
    send_wait,
    sampling,
    admission,
    preemption,
    checkpoint_restore,
    other,
};
inline constexpr int n_span_kinds = 8;
// "forward", "recv wait", ... (legend and table headings).
std::string_view span_kind_name(SpanKind kind);
// By the key words of the span's name (trace.h lists them), then its category; else other.
SpanKind span_kind(std::string_view name, std::string_view category);

// One complete ("X") or instant ("i") event; times in microseconds since the trace's epoch.
// 32 bytes: a trace of millions of events fits in memory.
struct TraceEvent {
    double ts_us = 0;
    double dur_us = 0;  // 0 for instants
    int pid = 0;        // world rank
    int tid = 0;        // micro-batch lane, or trace_main_tid
    uint32_t name = 0;  // index into TraceData::names
    SpanKind kind = SpanKind::other;
    char ph = 'X';
};

// An event's name and category, stored once per distinct pair.
struct TraceName {
    std::string name;
    std::string cat;
};

// A rank as the trace describes it (process_name metadata and otherData).
struct TraceRank {
    int rank = 0;
    std::string label;    // "rank 3: replica 0, stage 1, tp 0", or "rank 3" when none was given
    int64_t dropped = 0;  // events past the writer's cap
};

struct TraceData {
    std::vector<TraceEvent> events;  // X and i events, in file order
    std::vector<TraceName> names;    // [TraceEvent::name]
    std::map<int, TraceRank> ranks;  // by pid
    nlohmann::ordered_json summary;  // the job summary; null when no file holds one
    int64_t counters = 0;            // "C" events seen (not drawn)
    int64_t dropped = 0;             // events past the cap, all ranks
    const std::string& name_of(const TraceEvent& e) const { return names[e.name].name; }
};

// Reads a merged trace or per-rank traces (any JSON trace: an object with traceEvents, or a bare
// array of events), events streamed through a SAX handler so a large file is never held as a DOM. Throws gridlm::Error
// naming the file for a missing or unreadable file, a file that is not JSON, a JSON file that is
// not a trace, or an event without its ph / ts / dur / pid (with the event's index).
TraceData read_trace(const std::vector<std::string>& paths);

// A time range in seconds since the epoch.
struct TraceWindow {
    double from_s = 0;
    double to_s = 0;
    double length_s() const { return to_s - from_s; }
};
// First start to last end over all events, from 0 (the epoch) instead when the first event is
// within the first 5% of that; [0, 1] for a trace without events.
TraceWindow trace_extent(const TraceData& trace);

struct RankFigures {
    int rank = 0;
    std::string label;
    double busy_s = 0;                          // union of forward and sampling spans inside the window
    double wait_s = 0;                          // union of recv and send wait spans inside the window
    double busy_share = 0;                      // busy_s / window length
    int n_lanes = 0;                            // distinct micro-batch lanes with forward spans
    std::array<int64_t, n_span_kinds> spans{};  // spans of each kind that touch the window
};
// One row per rank of the trace, in rank order.
std::vector<RankFigures> rank_figures(const TraceData& trace, TraceWindow window);

struct SvgOptions {
    int width_px = 1600;  // the whole picture; the time axis gets what the labels leave
    TraceWindow window;   // the stretch of time drawn
};
inline constexpr int svg_width_min = 400;
inline constexpr int svg_width_max = 20000;

// The timeline as an SVG document: a title with the summary, one row per rank (label at left,
// busy share at right; a compute band with forward spans shaded by lane, waits and sampling, and
// a scheduler band with admission, preemption, checkpoint restore and other spans), a seconds axis
// and a legend. Spans narrower than a pixel are merged per pixel column, so the size grows with
// the width and the rank count, not with the number of events.
std::string render_svg(const TraceData& trace, const SvgOptions& options);

}  // namespace gridlm
