// Reading traces for `gridlm report` (streamed through nlohmann's SAX interface, one event at a
// time) and the per-rank figures: busy and wait time as unions of spans, spans per kind.
#include "launch/trace_report.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <unordered_map>

#include "engine/core/error.h"
#include "launch/trace.h"

namespace gridlm {

using json = nlohmann::ordered_json;

namespace {

int64_t as_int(const json& j, int64_t fallback) { return j.is_number() ? (int64_t)j.get<double>() : fallback; }

// One file's events, streamed: the fields of each event are taken as they go by (no DOM per
// event: a rank may hold millions), and only otherData is built as a JSON value.
// `pid_file` catches a rank given twice (a merged file and its per-rank files, say), which would
// count every span double.
class TraceReader : public nlohmann::json_sax<json> {
public:
    TraceReader(TraceData& out, std::map<int, std::string>& pid_file, const std::string& path)
        : out_(out), pid_file_(pid_file), path_(path) {}

    void read() {
        namespace fs = std::filesystem;
        std::error_code ec;
        if (fs::is_directory(path_, ec)) throw Error(str("cannot read the trace ", path_, ": it is a directory"));
        std::ifstream f(path_, std::ios::binary);
        if (!f) throw Error(str("cannot open the trace ", path_, ": ", std::strerror(errno)));
        json::sax_parse(f, this);
        if (f.bad()) throw Error(str("cannot read the trace ", path_, ": ", std::strerror(errno)));
        if (!top_array_ && !saw_events_)
            throw Error(str(path_,
                            " is not a trace: expected a JSON object with a traceEvents array (the Trace "
                            "Event Format) or an array of events"));
        if (other_.is_object()) read_other(other_);
    }

    // SAX events. depth_ counts the containers open; the events array is at events_depth_ and each
    // event object one deeper.
    bool null() override { return value(json()); }
    bool boolean(bool v) override { return value(v); }
    bool number_integer(number_integer_t v) override { return value(v); }
    bool number_unsigned(number_unsigned_t v) override { return value(v); }
    bool number_float(number_float_t v, const string_t&) override { return value(v); }
    bool string(string_t& v) override { return value(std::move(v)); }
    bool binary(binary_t&) override { return true; }
    bool key(string_t& k) override {
        if (depth_ == 1 && !top_array_) top_key_ = k;
        if (in_event() && depth_ == event_depth()) event_key_ = k;
        if (in_event() && depth_ == event_depth() + 1 && event_key_ == "args") args_key_ = k;
        if (!stack_.empty()) keys_.back() = std::move(k);
        return true;
    }
    bool start_object(std::size_t) override { return open(true); }
    bool start_array(std::size_t) override { return open(false); }
    bool end_object() override { return close(); }
    bool end_array() override { return close(); }
    bool parse_error(std::size_t at, const std::string&, const nlohmann::detail::exception& e) override {
        throw Error(str(path_, " is not a JSON trace: byte ", at, ": ", e.what()));
    }

private:
    bool in_events() const { return events_depth_ > 0 && depth_ >= events_depth_; }
    bool in_event() const { return events_depth_ > 0 && depth_ > events_depth_; }
    int event_depth() const { return events_depth_ + 1; }

    bool open(bool object) {
        if (depth_ == 0) top_array_ = !object;
        if (!object && ((depth_ == 0) || (depth_ == 1 && !top_array_ && top_key_ == "traceEvents"))) {
            events_depth_ = depth_ + 1;
            saw_events_ = true;
        } else if (in_events() && depth_ == events_depth_) {
            if (!object) throw Error(str(path_, ": event ", index_, " is not a JSON object"));
            ev_ = Pending{};
            event_key_.clear();
        } else if (depth_ == 1 && !top_array_ && top_key_ == "otherData") {
            other_ = object ? json::object() : json::array();
            stack_.push_back(&other_);
            keys_.emplace_back();
        } else if (!stack_.empty()) {
            json* child = add(object ? json::object() : json::array());
            stack_.push_back(child);
            keys_.emplace_back();
        }
        depth_++;
        return true;
    }

    bool close() {
        depth_--;
        if (!stack_.empty()) {
            stack_.pop_back();
            keys_.pop_back();
        }
        if (in_events() && depth_ == events_depth_) add_event();
        if (events_depth_ > 0 && depth_ < events_depth_) events_depth_ = 0;  // the events array closed
        return true;
    }

    // Adds v to the otherData value being built; returns where it went.
    json* add(json v) {
        json& parent = *stack_.back();
        if (parent.is_object()) return &(parent[keys_.back()] = std::move(v));
        parent.push_back(std::move(v));
        return &parent.back();
    }

    bool value(json v) {
        if (in_events() && depth_ == events_depth_)
            throw Error(str(path_, ": event ", index_, " is not a JSON object"));
        if (in_event() && depth_ == event_depth()) {
            const std::string& k = event_key_;
            if (k == "ph" && v.is_string()) ev_.ph = v.get<std::string>();
            if (k == "name" && v.is_string()) ev_.name = v.get<std::string>();
            if (k == "cat" && v.is_string()) ev_.cat = v.get<std::string>();
            if (k == "ts" && v.is_number()) ev_.ts = v.get<double>(), ev_.has_ts = true;
            if (k == "dur" && v.is_number()) ev_.dur = v.get<double>(), ev_.has_dur = true;
            if (k == "pid" && v.is_number()) ev_.pid = v.get<double>(), ev_.has_pid = true;
            if (k == "tid" && v.is_number()) ev_.tid = (int)v.get<double>();
        } else if (in_event() && depth_ == event_depth() + 1 && event_key_ == "args" && args_key_ == "name" &&
                   v.is_string()) {
            ev_.args_name = v.get<std::string>();
        } else if (!stack_.empty()) {
            add(std::move(v));
        } else if (depth_ == 1 && !top_array_ && top_key_ == "otherData") {
            other_ = std::move(v);
        }
        return true;
    }

    [[noreturn]] void bad_event(const std::string& what) const {
        throw Error(str(path_, ": event ", index_, " (name \"", ev_.name, "\", ph \"", ev_.ph, "\") ", what));
    }

    void add_event() {
        if (ev_.ph.empty()) bad_event("has no \"ph\" (event type)");
        const char ph = ev_.ph[0];
        if (ph == 'X' || ph == 'i' || ph == 'I' || ph == 'M') {
            if (!ev_.has_pid) bad_event("has no number \"pid\"");
            const int pid = (int)ev_.pid;
            claim(pid);
            TraceRank& r = out_.ranks[pid];
            r.rank = pid;
            if (ph == 'M') {
                if (ev_.name == "process_name" && !ev_.args_name.empty()) r.label = ev_.args_name;
            } else {
                if (!ev_.has_ts) bad_event("has no number \"ts\"");
                if (ph == 'X' && !ev_.has_dur) bad_event("has no number \"dur\"");
                if (ph == 'X' && ev_.dur < 0) bad_event(str("has a negative \"dur\" (", ev_.dur, ")"));
                TraceEvent t;
                t.pid = pid;
                t.ph = ph == 'X' ? 'X' : 'i';
                t.tid = ev_.tid;
                t.ts_us = ev_.ts;
                t.dur_us = ph == 'X' ? ev_.dur : 0;
                t.name = intern();
                t.kind = span_kind(ev_.name, ev_.cat);
                out_.events.push_back(t);
            }
        } else if (ph == 'C') {
            out_.counters++;
        }
        // Other event types (B/E pairs, flows, async) are not drawn.
        index_++;
    }

    uint32_t intern() {
        std::string key = ev_.name + '\0' + ev_.cat;
        auto [it, fresh] = name_ids_.emplace(std::move(key), (uint32_t)out_.names.size());
        if (fresh) out_.names.push_back({ev_.name, ev_.cat});
        return it->second;
    }

    void claim(int pid) {
        auto [it, fresh] = pid_file_.emplace(pid, path_);
        if (!fresh && it->second != path_)
            throw Error(str("rank ", pid, " is in both ", it->second, " and ", path_,
                            ": give either the merged trace or the per-rank files"));
    }

    void add_rank_info(const json& r) {
        if (!r.is_object() || !r.contains("rank") || !r["rank"].is_number()) return;
        TraceRank& t = out_.ranks[(int)as_int(r["rank"], 0)];
        t.rank = (int)as_int(r["rank"], 0);
        t.dropped = as_int(r.value("dropped_events", json()), 0);
        if (t.label.empty() && r.contains("rank_label") && r["rank_label"].is_string())
            t.label = r["rank_label"].get<std::string>();
    }

    void read_other(const json& other) {
        if (other.contains("ranks") && other["ranks"].is_array()) {
            for (const json& r : other["ranks"]) add_rank_info(r);
        } else {
            add_rank_info(other);
        }
        if (out_.summary.is_null() && other.contains("summary") && !other["summary"].is_null())
            out_.summary = other["summary"];
    }

    struct Pending {
        std::string ph, name, cat, args_name;
        double ts = 0, dur = 0, pid = 0;
        int tid = trace_main_tid;
        bool has_ts = false, has_dur = false, has_pid = false;
    };

    TraceData& out_;
    std::map<int, std::string>& pid_file_;
    const std::string& path_;
    std::unordered_map<std::string, uint32_t> name_ids_;
    int depth_ = 0;
    int events_depth_ = 0;  // 0: not inside the events array
    bool top_array_ = false;
    bool saw_events_ = false;
    std::string top_key_, event_key_, args_key_;
    Pending ev_;
    int64_t index_ = 0;
    json other_;
    std::vector<json*> stack_;       // otherData containers being built
    std::vector<std::string> keys_;  // the last key of each
};

// Total length of the union of [a, b) intervals, clipped to the window; sorts `iv`.
double union_length(std::vector<std::pair<double, double>>& iv, TraceWindow w) {
    std::sort(iv.begin(), iv.end());
    double total = 0, cur_a = 0, cur_b = -std::numeric_limits<double>::infinity();
    bool open = false;
    for (auto [a, b] : iv) {
        a = std::max(a, w.from_s);
        b = std::min(b, w.to_s);
        if (b <= a) continue;
        if (open && a <= cur_b) {
            cur_b = std::max(cur_b, b);
            continue;
        }
        if (open) total += cur_b - cur_a;
        cur_a = a;
        cur_b = b;
        open = true;
    }
    if (open) total += cur_b - cur_a;
    return total;
}

}  // namespace

TraceData read_trace(const std::vector<std::string>& paths) {
    TraceData out;
    std::map<int, std::string> pid_file;
    for (const std::string& p : paths) TraceReader(out, pid_file, p).read();
    for (auto& [pid, r] : out.ranks) {
        r.rank = pid;
        if (r.label.empty()) r.label = str("rank ", pid);
        out.dropped += r.dropped;
    }
    return out;
}

std::string_view span_kind_name(SpanKind kind) {
    static constexpr std::string_view names[n_span_kinds] = {
        "forward", "recv wait", "send wait", "sampling", "admission", "preemption", "checkpoint restore", "other"};
    const int i = (int)kind;
    return i >= 0 && i < n_span_kinds ? names[i] : "other";
}

SpanKind span_kind(std::string_view name, std::string_view category) {
    std::string n(name);
    for (char& c : n) c = (char)std::tolower((unsigned char)c);
    auto has = [&](const char* w) { return n.find(w) != std::string::npos; };
    if (has("recv")) return SpanKind::recv_wait;
    if (has("send")) return SpanKind::send_wait;
    if (has("preempt")) return SpanKind::preemption;
    if (has("restore")) return SpanKind::checkpoint_restore;
    if (has("admi")) return SpanKind::admission;
    if (has("sampl")) return SpanKind::sampling;
    if (has("forward")) return SpanKind::forward;
    if (category == trace_cat_compute) return SpanKind::forward;
    return SpanKind::other;
}

TraceWindow trace_extent(const TraceData& trace) {
    if (trace.events.empty()) return {0, 1};
    double lo = std::numeric_limits<double>::infinity(), hi = -lo;
    for (const TraceEvent& e : trace.events) {
        lo = std::min(lo, e.ts_us);
        hi = std::max(hi, e.ts_us + e.dur_us);
    }
    if (hi <= lo) hi = lo + 1000;  // a lone instant: a millisecond after it
    // A job's trace starts near its epoch: count from there, the job's start, so the start-up before
    // the first event shows. A trace with absolute times (another tool's) keeps its own start.
    if (lo > 0 && lo < 0.05 * hi) lo = 0;
    return {lo * 1e-6, hi * 1e-6};
}

std::vector<RankFigures> rank_figures(const TraceData& trace, TraceWindow window) {
    struct Acc {
        std::vector<std::pair<double, double>> busy, wait;
        std::set<int> lanes;
        RankFigures f;
    };
    std::map<int, Acc> acc;
    for (const auto& [pid, r] : trace.ranks) {
        acc[pid].f.rank = pid;
        acc[pid].f.label = r.label;
    }
    for (const TraceEvent& e : trace.events) {
        const double a = e.ts_us * 1e-6, b = (e.ts_us + e.dur_us) * 1e-6;
        if (b < window.from_s || a > window.to_s) continue;
        Acc& x = acc[e.pid];
        const SpanKind k = e.kind;
        x.f.spans[(int)k]++;
        if (e.ph != 'X') continue;
        if (k == SpanKind::forward || k == SpanKind::sampling) x.busy.emplace_back(a, b);
        if (k == SpanKind::recv_wait || k == SpanKind::send_wait) x.wait.emplace_back(a, b);
        if (k == SpanKind::forward && e.tid >= 0 && e.tid < trace_main_tid) x.lanes.insert(e.tid);
    }
    std::vector<RankFigures> out;
    for (auto& [pid, x] : acc) {
        x.f.rank = pid;
        if (x.f.label.empty()) x.f.label = str("rank ", pid);
        x.f.busy_s = union_length(x.busy, window);
        x.f.wait_s = union_length(x.wait, window);
        x.f.busy_share = window.length_s() > 0 ? x.f.busy_s / window.length_s() : 0;
        x.f.n_lanes = (int)x.lanes.size();
        out.push_back(std::move(x.f));
    }
    return out;
}

}  // namespace gridlm
