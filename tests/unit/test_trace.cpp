// Unit tests of the job trace (launch/trace.h) and `gridlm report`'s reading, figures and picture
// (launch/trace_report.h): Trace Event Format keys, the merge, the event cap, busy shares on a
// two-stage pipeline with known spans, and a well-formed SVG with one row per rank.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "io/prompt_reader.h"
#include "launch/trace.h"
#include "launch/trace_report.h"
#include "test_support.h"

using namespace gridlm;
using json = nlohmann::ordered_json;

namespace {

constexpr double epoch = 1.7e9;  // a system-clock time in seconds, as the job broadcasts it

void write_text(const std::string& path, const std::string& text) {
    std::ofstream f(path, std::ios::binary);
    f << text;
    ASSERT_TRUE(f.good()) << path;
}

// Span [a, b] seconds after the epoch.
void span(Tracer& t, std::string_view name, double a, double b, int lane = -1) {
    t.span(name, name == trace_forward || name == trace_sampling ? trace_cat_compute : trace_cat_comm, epoch + a,
           epoch + b, lane);
}

// Two stages with known spans over [0, 4] s. Stage 0: forward 0-1 (lane 0), 1-2 (lane 1), recv wait
// 2-3, forward 3-4 (lane 0): busy 3 s, wait 1 s. Stage 1: recv wait 0-1, forward 1-2 (lane 0),
// sampling 2-2.5, forward 2.5-3.5 (lane 1), send wait 3.5-4: busy 2.5 s, wait 1.5 s.
std::vector<std::string> two_stage_pipeline() {
    Tracer s0(0, "rank 0: replica 0, stage 0, tp 0", epoch), s1(1, "rank 1: replica 0, stage 1, tp 0", epoch);
    span(s0, trace_forward, 0, 1, 0);
    span(s0, trace_forward, 1, 2, 1);
    span(s0, trace_recv_wait, 2, 3);
    span(s0, trace_forward, 3, 4, 0);
    s0.instant(trace_admission, trace_cat_sched, epoch + 0.5);
    span(s1, trace_recv_wait, 0, 1);
    span(s1, trace_forward, 1, 2, 0);
    span(s1, trace_sampling, 2, 2.5, 0);
    span(s1, trace_forward, 2.5, 3.5, 1);
    span(s1, trace_send_wait, 3.5, 4);
    s0.set_summary({{"records", 8}, {"tokens", 96}, {"tok_per_s", 24.0}, {"duration_s", 4.0}});
    return {s0.serialize(), s1.serialize()};
}

// Tags open and close in order; attribute quotes are balanced. Returns "" or what is wrong.
std::string xml_problem(const std::string& x) {
    std::vector<std::string> open;
    size_t i = 0;
    while ((i = x.find('<', i)) != std::string::npos) {
        const size_t end = x.find('>', i);
        if (end == std::string::npos) return "unterminated tag";
        const std::string tag = x.substr(i + 1, end - i - 1);
        i = end + 1;
        size_t quotes = 0;
        for (char c : tag) quotes += c == '"';
        if (quotes % 2) return "odd quotes in <" + tag + ">";
        if (tag.empty()) return "empty tag";
        if (tag[0] == '?' || tag[0] == '!') continue;
        if (tag[0] == '/') {
            if (open.empty() || open.back() != tag.substr(1)) return "</" + tag.substr(1) + "> closes nothing open";
            open.pop_back();
            continue;
        }
        if (tag.back() == '/') continue;
        open.push_back(tag.substr(0, tag.find(' ')));
    }
    if (!open.empty()) return "<" + open.back() + "> is never closed";
    return "";
}

size_t count_of(const std::string& s, const std::string& what) {
    size_t n = 0;
    for (size_t i = s.find(what); i != std::string::npos; i = s.find(what, i + 1)) ++n;
    return n;
}

}  // namespace

TEST(Tracer, SerializesTheTraceEventFormat) {
    Tracer t(3, "rank 3: replica 1, stage 1, tp 0", epoch);
    ASSERT_TRUE(t.enabled());
    t.span(trace_forward, trace_cat_compute, epoch + 1.5, epoch + 1.75, 2, {{"tokens", 64}, {"micro_batch", 2}});
    t.span(trace_recv_wait, trace_cat_comm, epoch + 1.0, epoch + 1.5);
    t.instant(trace_preemption, trace_cat_sched, epoch + 2.0, -1, {{"sequences", 1}});
    t.counter("kv blocks", epoch + 2.0, {{"used", 12}, {"free", 4}});
    t.set_summary({{"records", 5}, {"tokens", 320}});
    EXPECT_EQ(t.events(), 4u);

    const json j = json::parse(t.serialize());
    ASSERT_TRUE(j["traceEvents"].is_array());
    EXPECT_EQ(j["displayTimeUnit"], "ms");
    EXPECT_EQ(j["otherData"]["rank"], 3);
    EXPECT_EQ(j["otherData"]["summary"]["tokens"], 320);
    EXPECT_EQ(j["otherData"]["dropped_events"], 0);
    std::map<std::string, json> by_name;
    std::set<std::string> thread_names;
    for (const json& e : j["traceEvents"]) {
        for (const char* key : {"name", "ph", "pid", "tid"}) EXPECT_TRUE(e.contains(key)) << key << " in " << e;
        EXPECT_EQ(e["pid"], 3);
        if (e["ph"] == "M") {
            if (e["name"] == "thread_name") thread_names.insert(e["args"]["name"].get<std::string>());
            if (e["name"] == "process_name") {
                EXPECT_EQ(e["args"]["name"], "rank 3: replica 1, stage 1, tp 0");
            }
            continue;
        }
        EXPECT_TRUE(e["ts"].is_number()) << e;
        by_name[e["name"]] = e;
    }
    EXPECT_EQ(thread_names, (std::set<std::string>{"main", "lane 2"}));
    const json& fwd = by_name.at("forward");
    EXPECT_EQ(fwd["ph"], "X");
    EXPECT_EQ(fwd["cat"], "compute");
    EXPECT_DOUBLE_EQ(fwd["ts"].get<double>(), 1.5e6);  // microseconds since the epoch
    EXPECT_DOUBLE_EQ(fwd["dur"].get<double>(), 0.25e6);
    EXPECT_EQ(fwd["tid"], 2);
    EXPECT_EQ(fwd["args"]["tokens"], 64);
    EXPECT_EQ(by_name.at("recv wait")["tid"], trace_main_tid);
    EXPECT_EQ(by_name.at("preemption")["ph"], "i");
    EXPECT_EQ(by_name.at("preemption")["s"], "t");
    EXPECT_FALSE(by_name.at("preemption").contains("dur"));
    EXPECT_EQ(by_name.at("kv blocks")["ph"], "C");
    EXPECT_EQ(by_name.at("kv blocks")["args"]["free"], 4);
}

TEST(Tracer, DisabledRecordsNothing) {
    Tracer t;
    EXPECT_FALSE(t.enabled());
    t.span(trace_forward, trace_cat_compute, 1, 2, 0);
    t.set_summary({{"records", 1}});
    EXPECT_EQ(t.events(), 0u);
    const json j = json::parse(t.serialize());
    EXPECT_TRUE(j["traceEvents"].empty());
    EXPECT_FALSE(j["otherData"].contains("summary"));
}

TEST(Tracer, MergesRanksIntoOneFile) {
    std::vector<std::string> parts;
    for (int r = 0; r < 3; ++r) {
        Tracer t(r, str("rank ", r, ": replica 0, stage ", r, ", tp 0"), epoch);
        span(t, trace_forward, r, r + 0.5, 0);
        span(t, trace_recv_wait, r + 0.5, r + 1);
        if (r == 0) t.set_summary({{"records", 7}});
        parts.push_back(t.serialize());
    }
    parts.insert(parts.begin() + 1, "");  // a rank that traced nothing
    const std::string path = test::temp_dir() + "/merged.json";
    write_merged_trace(path, parts);
    const json j = json::parse(test::read_file(path));
    std::set<int> pids, named;
    size_t spans = 0;
    for (const json& e : j["traceEvents"]) {
        pids.insert(e["pid"].get<int>());
        if (e["ph"] == "M" && e["name"] == "process_name") named.insert(e["pid"].get<int>());
        spans += e["ph"] == "X";
    }
    EXPECT_EQ(pids, (std::set<int>{0, 1, 2}));
    EXPECT_EQ(named, (std::set<int>{0, 1, 2}));
    EXPECT_EQ(spans, 6u);
    EXPECT_EQ(j["displayTimeUnit"], "ms");
    ASSERT_EQ(j["otherData"]["ranks"].size(), 3u);
    EXPECT_EQ(j["otherData"]["ranks"][2]["rank_label"], "rank 2: replica 0, stage 2, tp 0");
    EXPECT_EQ(j["otherData"]["events"], 6);
    EXPECT_EQ(j["otherData"]["summary"]["records"], 7);

    // A trace from elsewhere (not in serialize()'s framing) is parsed and merged all the same.
    write_merged_trace(path, {R"({"traceEvents": [{"name": "x", "ph": "X", "ts": 1, "dur": 2, "pid": 5, "tid": 0}]})"});
    EXPECT_EQ(json::parse(test::read_file(path))["traceEvents"][0]["pid"], 5);
}

TEST(Tracer, MergeErrorsNameThePathOrRank) {
    test::expect_has(
        test::error_of([] { write_merged_trace("/nonexistent-dir/t.json", {Tracer(0, "r", 0).serialize()}); }),
        {"/nonexistent-dir/t.json"});
    const std::string path = test::temp_dir() + "/m.json";
    test::expect_has(test::error_of([&] {
                         write_merged_trace(path, {Tracer(0, "r", 0).serialize(), "not json"});
                     }),
                     {"rank 1"});
}

TEST(Tracer, CapsEventsAndSaysHowManyWereDropped) {
    Tracer t(0, "rank 0", epoch, 10);
    for (int i = 0; i < 25; ++i) span(t, trace_forward, i, i + 0.5, i % 2);
    EXPECT_EQ(t.dropped_events(), 15u);
    const std::string dir = test::temp_dir();
    write_text(dir + "/capped.json", t.serialize());
    const json j = json::parse(test::read_file(dir + "/capped.json"));
    size_t spans = 0, markers = 0;
    for (const json& e : j["traceEvents"]) {
        spans += e["ph"] == "X";
        markers += e["name"] == trace_dropped;
    }
    EXPECT_EQ(spans, 10u);
    EXPECT_EQ(markers, 1u);
    EXPECT_EQ(j["otherData"]["dropped_events"], 15);
    EXPECT_EQ(j["otherData"]["event_cap"], 10);
    EXPECT_NE(j["otherData"]["note"].get<std::string>().find("15 events"), std::string::npos);

    const TraceData d = read_trace({dir + "/capped.json"});
    EXPECT_EQ(d.dropped, 15);
    const std::string svg = render_svg(d, {});
    EXPECT_NE(svg.find("15 events were dropped"), std::string::npos);
}

TEST(TraceReport, ClassifiesSpanNames) {
    EXPECT_EQ(span_kind(trace_forward, trace_cat_compute), SpanKind::forward);
    EXPECT_EQ(span_kind(trace_recv_wait, trace_cat_comm), SpanKind::recv_wait);
    EXPECT_EQ(span_kind(trace_send_wait, trace_cat_comm), SpanKind::send_wait);
    EXPECT_EQ(span_kind(trace_sampling, trace_cat_compute), SpanKind::sampling);
    EXPECT_EQ(span_kind(trace_admission, trace_cat_sched), SpanKind::admission);
    EXPECT_EQ(span_kind(trace_preemption, trace_cat_sched), SpanKind::preemption);
    EXPECT_EQ(span_kind(trace_restore, trace_cat_sched), SpanKind::checkpoint_restore);
    EXPECT_EQ(span_kind("MPI_Recv", ""), SpanKind::recv_wait);
    EXPECT_EQ(span_kind("prefill", trace_cat_compute), SpanKind::forward);
    EXPECT_EQ(span_kind("tokenize", "io"), SpanKind::other);
}

TEST(TraceReport, BusyShareOfATwoStagePipeline) {
    const std::vector<std::string> parts = two_stage_pipeline();
    const std::string dir = test::temp_dir();
    write_text(dir + "/t.json.rank0", parts[0]);
    write_text(dir + "/t.json.rank1", parts[1]);
    write_merged_trace(dir + "/t.json", parts);

    for (const auto& paths : {std::vector<std::string>{dir + "/t.json"},
                              std::vector<std::string>{dir + "/t.json.rank0", dir + "/t.json.rank1"}}) {
        const TraceData d = read_trace(paths);
        ASSERT_EQ(d.ranks.size(), 2u) << paths[0];
        EXPECT_EQ(d.ranks.at(1).label, "rank 1: replica 0, stage 1, tp 0");
        EXPECT_EQ(d.summary["tokens"], 96);
        const TraceWindow w = trace_extent(d);
        EXPECT_NEAR(w.from_s, 0, 1e-9);
        EXPECT_NEAR(w.to_s, 4, 1e-9);
        const std::vector<RankFigures> f = rank_figures(d, w);
        ASSERT_EQ(f.size(), 2u);
        EXPECT_NEAR(f[0].busy_s, 3.0, 1e-6);
        EXPECT_NEAR(f[0].wait_s, 1.0, 1e-6);
        EXPECT_NEAR(f[0].busy_share, 0.75, 1e-6);
        EXPECT_EQ(f[0].n_lanes, 2);
        EXPECT_EQ(f[0].spans[(int)SpanKind::forward], 3);
        EXPECT_EQ(f[0].spans[(int)SpanKind::admission], 1);
        EXPECT_NEAR(f[1].busy_s, 2.5, 1e-6);
        EXPECT_NEAR(f[1].wait_s, 1.5, 1e-6);
        EXPECT_NEAR(f[1].busy_share, 0.625, 1e-6);
        EXPECT_EQ(f[1].spans[(int)SpanKind::sampling], 1);
        EXPECT_EQ(f[1].spans[(int)SpanKind::send_wait], 1);
        // A window clips: over [1.5, 3] stage 0 computes 0.5 s and waits 1 s.
        const std::vector<RankFigures> g = rank_figures(d, {1.5, 3});
        EXPECT_NEAR(g[0].busy_s, 0.5, 1e-6);
        EXPECT_NEAR(g[0].wait_s, 1.0, 1e-6);
        EXPECT_NEAR(g[0].busy_share, 0.5 / 1.5, 1e-6);
    }
    // The same rank from the merged file and its own file would count twice.
    test::expect_has(test::error_of([&] {
                         read_trace({dir + "/t.json", dir + "/t.json.rank1"});
                     }),
                     {"rank 1 is in both", dir + "/t.json.rank1"});
}

TEST(TraceReport, ExtentCountsFromTheJobStart) {
    const std::string dir = test::temp_dir();
    // The first event 0.1 s after the epoch, the last ending at 4 s: the job's start-up counts.
    write_text(dir + "/near.json", R"([{"name": "forward", "ph": "X", "ts": 1e5, "dur": 3.9e6, "pid": 0}])");
    const TraceWindow near = trace_extent(read_trace({dir + "/near.json"}));
    EXPECT_DOUBLE_EQ(near.from_s, 0);
    EXPECT_DOUBLE_EQ(near.to_s, 4);
    // Absolute times (another tool's trace): its own first event.
    write_text(dir + "/far.json", R"([{"name": "forward", "ph": "X", "ts": 1e7, "dur": 2e6, "pid": 0}])");
    const TraceWindow far = trace_extent(read_trace({dir + "/far.json"}));
    EXPECT_DOUBLE_EQ(far.from_s, 10);
    EXPECT_DOUBLE_EQ(far.to_s, 12);
}

TEST(TraceReport, SvgIsWellFormedWithOneRowPerRank) {
    const std::vector<std::string> parts = two_stage_pipeline();
    const std::string path = test::temp_dir() + "/t.json";
    write_merged_trace(path, parts);
    const TraceData d = read_trace({path});
    const std::string svg = render_svg(d, {1200, trace_extent(d)});
    EXPECT_EQ(xml_problem(svg), "") << svg.substr(0, 2000);
    EXPECT_EQ(svg.rfind("<svg ", 0), 0u);
    EXPECT_NE(svg.find("width=\"1200\""), std::string::npos);
    EXPECT_EQ(count_of(svg, "fill=\"#eef1f5\""), 2u);  // the compute band of each row
    EXPECT_NE(svg.find(">rank 0</text>"), std::string::npos);
    EXPECT_NE(svg.find(">rank 1</text>"), std::string::npos);
    EXPECT_NE(svg.find("replica 0, stage 1, tp 0"), std::string::npos);
    EXPECT_NE(svg.find("records 8"), std::string::npos);  // the title's summary
    EXPECT_NE(svg.find("75% busy"), std::string::npos);
    EXPECT_NE(svg.find("62% busy"), std::string::npos);
    EXPECT_NE(svg.find("recv wait"), std::string::npos);                        // legend
    EXPECT_EQ(xml_problem("<svg><rect></svg>"), "</svg> closes nothing open");  // the checker can fail

    // A label in the grid's own words: the rank on the first line, its coordinates below.
    Tracer t(2, "rank 2 (dp 1, pp 0, tp 0)", epoch);
    span(t, trace_forward, 0, 1, 0);
    write_merged_trace(path, {t.serialize()});
    const std::string one = render_svg(read_trace({path}), {});
    EXPECT_NE(one.find(">rank 2</text>"), std::string::npos);
    EXPECT_NE(one.find(">dp 1, pp 0, tp 0</text>"), std::string::npos);
}

// The title is cut to the picture's width, never inside a character: "·" is two bytes, and every
// cut position must leave valid UTF-8 (an XML parser refuses the picture otherwise).
TEST(TraceReport, SvgTitleIsCutBetweenCharacters) {
    const std::string path = test::temp_dir() + "/title.json";
    for (int pad = 0; pad < 24; ++pad) {  // every cut position relative to the separators
        Tracer t(0, "rank 0 (dp 0, pp 0, tp 0)", epoch);
        span(t, trace_forward, 0, 1, 0);
        nlohmann::ordered_json summary;
        summary["pad"] = std::string((size_t)pad, 'x');
        for (int k = 0; k < 80; ++k) summary["k" + std::to_string(k)] = k;
        t.set_summary(summary);
        write_merged_trace(path, {t.serialize()});
        const std::string svg = render_svg(read_trace({path}), {});
        size_t bad = 0;
        EXPECT_TRUE(is_valid_utf8(svg, &bad))
            << "pad " << pad << ": bad byte at " << bad << ": " << svg.substr(bad > 40 ? bad - 40 : 0, 80);
    }
}

TEST(TraceReport, LongTracesStaySmall) {
    // 200,000 spans of 50 us per rank on 2 ranks: merged per pixel column, not drawn one by one.
    std::vector<std::string> parts;
    for (int r = 0; r < 2; ++r) {
        Tracer t(r, str("rank ", r), epoch);
        for (int i = 0; i < 100000; ++i) {
            span(t, trace_forward, i * 1e-4, i * 1e-4 + 5e-5, i % 4);
            span(t, trace_recv_wait, i * 1e-4 + 5e-5, (i + 1) * 1e-4);
        }
        parts.push_back(t.serialize());
    }
    const std::string path = test::temp_dir() + "/long.json";
    write_merged_trace(path, parts);
    const TraceData d = read_trace({path});
    EXPECT_EQ(d.events.size(), 400000u);
    const std::string svg = render_svg(d, {1600, trace_extent(d)});
    EXPECT_LT(svg.size(), 1u << 20) << "bytes";
    EXPECT_EQ(xml_problem(svg), "");
    // Zoomed in on a millisecond, the spans are wide again and carry their lane number.
    const std::string zoom = render_svg(d, {1600, {0.5, 0.501}});
    EXPECT_NE(zoom.find("forward, lane 3"), std::string::npos);
}

TEST(TraceReport, ReadErrorsNameTheFile) {
    const std::string dir = test::temp_dir();
    test::expect_has(test::error_of([&] { read_trace({dir + "/missing.json"}); }), {dir + "/missing.json"});
    write_text(dir + "/garbage.json", "this is not json");
    test::expect_has(test::error_of([&] { read_trace({dir + "/garbage.json"}); }), {dir + "/garbage.json", "JSON"});
    write_text(dir + "/other.json", R"({"records": [1, 2]})");
    test::expect_has(test::error_of([&] { read_trace({dir + "/other.json"}); }), {dir + "/other.json", "traceEvents"});
    write_text(dir + "/no_ts.json", R"({"traceEvents": [{"name": "a", "ph": "X", "dur": 1, "pid": 0}]})");
    test::expect_has(test::error_of([&] { read_trace({dir + "/no_ts.json"}); }),
                     {dir + "/no_ts.json", "event 0", "ts"});
    // The format's bare-array form reads.
    write_text(dir + "/array.json", R"([{"name": "forward", "ph": "X", "ts": 0, "dur": 10, "pid": 2, "tid": 1}])");
    EXPECT_EQ(read_trace({dir + "/array.json"}).ranks.at(2).label, "rank 2");
}
