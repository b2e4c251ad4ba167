// `gridlm report TRACE...`: a job trace's summary and per-rank busy / wait figures on stdout, and
// its timeline as an SVG picture (one row per rank, time across).
#include <algorithm>
#include <boost/program_options.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <regex>
#include <string>
#include <vector>

#include "engine/core/error.h"
#include "launch/cli_options.h"
#include "launch/commands.h"
#include "launch/trace.h"
#include "launch/trace_report.h"

namespace gridlm {
namespace {

namespace po = boost::program_options;
using json = nlohmann::ordered_json;

const char* usage_head =
    "usage: gridlm report TRACE... [--svg OUT.svg] [--width PX] [--from S] [--to S]\n\n"
    "Reads a trace written by `gridlm generate --trace PATH` (one merged file, or the per-rank\n"
    "files PATH.rank<N>; any JSON Trace Event Format file works), prints the job summary and, per\n"
    "rank, busy time (forward and sampling spans), wait time (send and recv waits), busy share and\n"
    "events per kind, and draws the timeline as SVG: one row per rank, time across, forward spans\n"
    "shaded and numbered by micro-batch lane, waits, sampling, admission, preemption and checkpoint\n"
    "restore in their own colours. Perfetto (ui.perfetto.dev) and chrome://tracing open the trace\n"
    "itself.\n\n"
    "exit status: 0 success; 1 missing or unreadable file, not a trace, unwritable picture;\n"
    "             2 usage error\n\n"
    "options";

// TRACE.json -> TRACE.svg; PATH.rank3 -> PATH with .svg.
std::string default_svg_path(std::string p) {
    static const std::regex rank_suffix(R"(\.rank[0-9]+$)");
    p = std::regex_replace(p, rank_suffix, "");
    if (p.size() > 5 && p.compare(p.size() - 5, 5, ".json") == 0) p.resize(p.size() - 5);
    return p + ".svg";
}

std::string value_text(const json& v) {
    if (v.is_string()) return v.get<std::string>();
    if (v.is_number_float()) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "%.6g", v.get<double>());
        return buf;
    }
    return v.dump(-1, ' ', false, json::error_handler_t::replace);
}

void print_report(const TraceData& trace, const std::vector<std::string>& paths, TraceWindow win) {
    int64_t spans = 0, instants = 0;
    for (const TraceEvent& e : trace.events) (e.ph == 'X' ? spans : instants)++;
    std::printf("trace        %s%s: %zu ranks, %lld spans, %lld instants, %lld counter samples\n", paths[0].c_str(),
                paths.size() > 1 ? str(" and ", paths.size() - 1, " more").c_str() : "", trace.ranks.size(),
                (long long)spans, (long long)instants, (long long)trace.counters);
    if (trace.summary.is_object() && !trace.summary.empty()) {
        std::printf("job summary\n");
        int width = 16;
        for (const auto& [k, v] : trace.summary.items()) width = std::max(width, (int)k.size());
        for (const auto& [k, v] : trace.summary.items())
            std::printf("  %-*s %s\n", width, k.c_str(), value_text(v).c_str());
    } else {
        std::printf("job summary  none in the trace\n");
    }
    const TraceWindow all = trace_extent(trace);
    std::printf("window       %.3f to %.3f s (%.3f s; the trace spans %.3f to %.3f s)\n", win.from_s, win.to_s,
                win.length_s(), all.from_s, all.to_s);
    std::printf("%5s %9s %9s %6s %5s", "rank", "busy_s", "wait_s", "busy%", "lanes");
    const char* heads[n_span_kinds] = {"forward",   "recv_wait",  "send_wait", "sampling",
                                       "admission", "preemption", "restore",   "other"};
    for (const char* h : heads) std::printf(" %10s", h);
    std::printf("  label\n");
    for (const RankFigures& f : rank_figures(trace, win)) {
        std::printf("%5d %9.3f %9.3f %6.1f %5d", f.rank, f.busy_s, f.wait_s, 100 * f.busy_share, f.n_lanes);
        for (int64_t n : f.spans) std::printf(" %10lld", (long long)n);
        std::printf("  %s\n", f.label.c_str());
    }
    if (trace.dropped > 0) {
        std::string per_rank;
        for (const auto& [pid, r] : trace.ranks)
            if (r.dropped > 0) per_rank += str(per_rank.empty() ? "" : ", ", "rank ", pid, ": ", r.dropped);
        std::printf("warning      %lld events were dropped past the per-rank cap (%s): the figures miss them\n",
                    (long long)trace.dropped, per_rank.c_str());
    }
}

int run_report(const std::vector<std::string>& args) {
    po::options_description opts(usage_head);
    // clang-format off
    opts.add_options()
        ("help,h", "show this help and exit")
        ("svg", po::value<std::string>(), "write the picture to this file (default: the first TRACE with .svg "
                                          "for .json, and without a .rank<N> suffix)")
        ("width", po::value<int>()->default_value(1600), "picture width in pixels, 400 to 20000; spans narrower "
                                                         "than a pixel are merged")
        ("from", po::value<double>(), "start of the time shown and counted, in seconds since the job's start "
                                      "(default: 0, the job's start; the first event when that comes much later)")
        ("to", po::value<double>(), "end of the time shown and counted, in seconds (default: the last event's end)");
    // clang-format on
    add_log_options(opts);
    po::options_description hidden;
    hidden.add_options()("trace", po::value<std::vector<std::string>>(), "trace files");
    po::options_description all;
    all.add(opts).add(hidden);
    po::positional_options_description positional;
    positional.add("trace", -1);
    const po::variables_map vm = parse_options(args, all, &positional);
    if (vm.count("help")) {
        std::cout << opts << "\n";
        return exit_ok;
    }
    apply_log_options(vm);
    if (!vm.count("trace")) throw UsageError("give at least one trace file");
    const std::vector<std::string> paths = vm["trace"].as<std::vector<std::string>>();
    const int width = vm["width"].as<int>();
    if (width < svg_width_min || width > svg_width_max)
        throw UsageError(str("--width must be ", svg_width_min, " to ", svg_width_max, " pixels, got ", width));
    if (vm.count("from") && vm.count("to") && vm["from"].as<double>() >= vm["to"].as<double>())
        throw UsageError(
            str("--from (", vm["from"].as<double>(), ") must be before --to (", vm["to"].as<double>(), ")"));

    const TraceData trace = read_trace(paths);
    if (trace.events.empty())
        throw Error(str(paths[0], paths.size() > 1 ? " and the other files" : "", ": the trace has no events"));
    TraceWindow win = trace_extent(trace);
    if (vm.count("from")) win.from_s = vm["from"].as<double>();
    if (vm.count("to")) win.to_s = vm["to"].as<double>();
    if (win.length_s() <= 0)
        throw UsageError(str("the window ", win.from_s, " to ", win.to_s, " s is empty: the trace spans ",
                             trace_extent(trace).from_s, " to ", trace_extent(trace).to_s, " s"));
    print_report(trace, paths, win);

    const std::string svg_path = vm.count("svg") ? vm["svg"].as<std::string>() : default_svg_path(paths[0]);
    const std::string svg = render_svg(trace, SvgOptions{width, win});
    std::ofstream f(svg_path, std::ios::binary | std::ios::trunc);
    if (f) f << svg;
    f.close();
    if (!f) throw Error(str("cannot write the picture ", svg_path, ": ", std::strerror(errno)));
    std::printf("picture      %s (%d px wide, %.1f KiB)\n", svg_path.c_str(), width, svg.size() / 1024.0);
    std::fflush(stdout);
    if (std::ferror(stdout)) throw Error("cannot write the output");
    return exit_ok;
}

}  // namespace
}  // namespace gridlm

GRIDLM_COMMAND(report, "report", "summarise a job trace (--trace) and draw its timeline as SVG", gridlm::run_report);
