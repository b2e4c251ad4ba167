// The trace writer: events kept compactly in memory per rank, serialised in the Trace Event
// Format, and the merge of every rank's serialised trace into one file.
#include "launch/trace.h"

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <mutex>
#include <unordered_map>

#include "engine/core/error.h"

namespace gridlm {

using json = nlohmann::ordered_json;

namespace {

// Fixed framing of serialize(): write_merged_trace splices rank traces by it without parsing
// their events (a rank may hold millions).
constexpr std::string_view frame_head = "{\"traceEvents\":[\n";
constexpr std::string_view frame_tail = "\n],\n\"displayTimeUnit\":\"ms\",\n\"otherData\":";

struct SvHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

// JSON string literal; invalid UTF-8 becomes U+FFFD instead of an exception mid-job.
std::string quote(std::string_view s) {
    return json(std::string(s)).dump(-1, ' ', false, json::error_handler_t::replace);
}

void append_number(std::string& out, double v) {
    char buf[40];
    const int n = std::snprintf(buf, sizeof buf, "%.3f", v);
    out.append(buf, n > 0 ? (size_t)n : 0);
}

std::string metadata(std::string_view name, int pid, int tid, const json& args) {
    return str("{\"name\":", quote(name), ",\"ph\":\"M\",\"pid\":", pid, ",\"tid\":", tid,
               ",\"args\":", args.dump(-1, ' ', false, json::error_handler_t::replace), "}");
}

}  // namespace

struct Tracer::State {
    struct Event {
        double ts_us;
        double dur_us;
        int32_t tid;
        uint32_t name;  // index into strings
        uint32_t cat;
        char ph;
        std::string args;  // serialised JSON object, or empty
    };
    int rank = 0;
    std::string label;
    double epoch_s = 0;
    size_t max_events = 0;
    size_t dropped = 0;
    std::vector<Event> events;
    std::vector<std::string> strings;
    std::unordered_map<std::string, uint32_t, SvHash, std::equal_to<>> string_ids;
    std::vector<char> lanes_used;  // [lane] 1 when some event sits on that lane
    bool main_used = false;
    json summary;
    mutable std::mutex mutex;

    uint32_t intern(std::string_view s) {
        auto it = string_ids.find(s);
        if (it != string_ids.end()) return it->second;
        const uint32_t id = (uint32_t)strings.size();
        strings.emplace_back(s);
        string_ids.emplace(strings.back(), id);
        return id;
    }
};

Tracer::Tracer(int rank, std::string rank_label, double epoch_s, size_t max_events) : state_(new State) {
    state_->rank = rank;
    state_->label = std::move(rank_label);
    state_->epoch_s = epoch_s;
    state_->max_events = max_events;
}

Tracer::Tracer() noexcept = default;
Tracer::Tracer(Tracer&&) noexcept = default;
Tracer& Tracer::operator=(Tracer&&) noexcept = default;
Tracer::~Tracer() = default;

double Tracer::now_s() {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

void Tracer::record(char ph, std::string_view name, std::string_view category, double t_s, double dur_s, int lane,
                    const json& args) {
    State& s = *state_;
    std::lock_guard<std::mutex> lock(s.mutex);
    const int tid = lane < 0 || lane >= trace_main_tid ? trace_main_tid : lane;
    if (s.events.size() >= s.max_events) {
        // One marker past the cap shows in the timeline where the record stops.
        if (s.dropped++ == 0) {
            s.events.push_back({(t_s - s.epoch_s) * 1e6, 0, trace_main_tid, s.intern(trace_dropped),
                                s.intern(trace_cat_sched), 'i', str("{\"cap\":", s.max_events, "}")});
            s.main_used = true;
        }
        return;
    }
    State::Event e{(t_s - s.epoch_s) * 1e6, dur_s * 1e6, tid, s.intern(name), s.intern(category), ph, {}};
    if (args.is_object() && !args.empty()) {
        e.args = args.dump(-1, ' ', false, json::error_handler_t::replace);
    } else if (!args.is_null() && !args.is_object()) {
        e.args = json{{"value", args}}.dump(-1, ' ', false, json::error_handler_t::replace);
    }
    if (tid == trace_main_tid) {
        s.main_used = true;
    } else {
        if ((size_t)tid >= s.lanes_used.size()) s.lanes_used.resize(tid + 1, 0);
        s.lanes_used[tid] = 1;
    }
    s.events.push_back(std::move(e));
}

void Tracer::set_summary(const json& summary) {
    if (!state_) return;
    std::lock_guard<std::mutex> lock(state_->mutex);
    state_->summary = summary;
}

size_t Tracer::events() const {
    if (!state_) return 0;
    std::lock_guard<std::mutex> lock(state_->mutex);
    return state_->events.size();
}

size_t Tracer::dropped_events() const {
    if (!state_) return 0;
    std::lock_guard<std::mutex> lock(state_->mutex);
    return state_->dropped;
}

std::string Tracer::serialize() const {
    std::string out(frame_head);
    json other = {{"format", trace_format_name}, {"version", 1}};
    if (!state_) {
        out += frame_tail;
        return out + other.dump() + "}\n";
    }
    const State& s = *state_;
    std::lock_guard<std::mutex> lock(s.mutex);
    std::vector<std::string> meta;
    meta.push_back(metadata("process_name", s.rank, 0, {{"name", s.label}}));
    meta.push_back(metadata("process_sort_index", s.rank, 0, {{"sort_index", s.rank}}));
    if (s.main_used) {
        meta.push_back(metadata("thread_name", s.rank, trace_main_tid, {{"name", "main"}}));
        meta.push_back(metadata("thread_sort_index", s.rank, trace_main_tid, {{"sort_index", -1}}));
    }
    for (size_t lane = 0; lane < s.lanes_used.size(); ++lane) {
        if (!s.lanes_used[lane]) continue;
        meta.push_back(metadata("thread_name", s.rank, (int)lane, {{"name", str("lane ", lane)}}));
        meta.push_back(metadata("thread_sort_index", s.rank, (int)lane, {{"sort_index", lane}}));
    }
    std::vector<std::string> quoted;
    quoted.reserve(s.strings.size());
    for (const std::string& x : s.strings) quoted.push_back(quote(x));
    out.reserve(out.size() + s.events.size() * 110);
    bool first = true;
    for (const std::string& m : meta) {
        if (!first) out += ",\n";
        first = false;
        out += m;
    }
    const std::string pid = std::to_string(s.rank);
    for (const State::Event& e : s.events) {
        if (!first) out += ",\n";
        first = false;
        out += "{\"name\":";
        out += quoted[e.name];
        if (!s.strings[e.cat].empty()) {
            out += ",\"cat\":";
            out += quoted[e.cat];
        }
        out += ",\"ph\":\"";
        out += e.ph;
        out += "\",\"ts\":";
        append_number(out, e.ts_us);
        if (e.ph == 'X') {
            out += ",\"dur\":";
            append_number(out, e.dur_us);
        } else if (e.ph == 'i') {
            out += ",\"s\":\"t\"";
        }
        out += ",\"pid\":";
        out += pid;
        out += ",\"tid\":";
        out += std::to_string(e.tid);
        if (!e.args.empty()) {
            out += ",\"args\":";
            out += e.args;
        }
        out += '}';
    }
    out += frame_tail;
    other["rank"] = s.rank;
    other["rank_label"] = s.label;
    other["epoch_s"] = s.epoch_s;
    other["events"] = s.events.size();
    other["dropped_events"] = s.dropped;
    other["event_cap"] = s.max_events;
    if (s.dropped > 0) other["note"] = str(s.dropped, " events past the cap of ", s.max_events, " were not recorded");
    if (!s.summary.is_null()) other["summary"] = s.summary;
    return out + other.dump(-1, ' ', false, json::error_handler_t::replace) + "}\n";
}

namespace {

// One rank's trace split into its events (serialised, comma-separated) and its otherData.
struct RankPart {
    std::string body;
    json other;
};

RankPart split_rank_trace(const std::string& trace, size_t index) {
    RankPart part;
    const size_t tail = trace.rfind(frame_tail);
    if (trace.compare(0, frame_head.size(), frame_head) == 0 && tail != std::string::npos &&
        tail >= frame_head.size()) {
        part.body = trace.substr(frame_head.size(), tail - frame_head.size());
        std::string rest = trace.substr(tail + frame_tail.size());
        while (!rest.empty() && (rest.back() == '\n' || rest.back() == ' ')) rest.pop_back();
        if (!rest.empty() && rest.back() == '}') {
            rest.pop_back();
            part.other = json::parse(rest, nullptr, false);
            if (!part.other.is_discarded()) return part;
        }
    }
    // Not in serialize()'s framing (written by something else): parse it whole.
    const json j = json::parse(trace, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("traceEvents") || !j["traceEvents"].is_array())
        throw Error(str("the trace of rank ", index, " is not a JSON trace object with a traceEvents array"));
    part.body.clear();
    for (const json& e : j["traceEvents"]) {
        if (!part.body.empty()) part.body += ",\n";
        part.body += e.dump(-1, ' ', false, json::error_handler_t::replace);
    }
    part.other = j.value("otherData", json::object());
    return part;
}

}  // namespace

void write_merged_trace(const std::string& path, const std::vector<std::string>& rank_traces) {
    json ranks = json::array();
    json summary;
    uint64_t events = 0, dropped = 0;
    const std::string tmp = path + ".tmp";
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) throw Error(str("cannot write the trace ", path, ": ", std::strerror(errno)));
    f << frame_head;
    bool first = true;
    for (size_t i = 0; i < rank_traces.size(); ++i) {
        if (rank_traces[i].empty()) continue;
        RankPart part = split_rank_trace(rank_traces[i], i);
        if (!part.body.empty()) {
            if (!first) f << ",\n";
            first = false;
            f << part.body;
        }
        if (!part.other.is_object()) continue;
        if (summary.is_null() && part.other.contains("summary")) summary = part.other["summary"];
        part.other.erase("summary");
        part.other.erase("format");
        part.other.erase("version");
        events += part.other.value("events", (uint64_t)0);
        dropped += part.other.value("dropped_events", (uint64_t)0);
        ranks.push_back(std::move(part.other));
    }
    json other = {{"format", trace_format_name},
                  {"version", 1},
                  {"ranks", ranks},
                  {"events", events},
                  {"dropped_events", dropped}};
    if (dropped > 0) other["note"] = str(dropped, " events past the per-rank cap were not recorded");
    if (!summary.is_null()) other["summary"] = summary;
    f << frame_tail << other.dump(-1, ' ', false, json::error_handler_t::replace) << "}\n";
    f.close();
    if (!f) {
        const int err = errno;
        std::remove(tmp.c_str());
        throw Error(str("cannot write the trace ", path, ": ", std::strerror(err)));
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
        const int err = errno;
        std::remove(tmp.c_str());
        throw Error(str("cannot write the trace ", path, ": ", std::strerror(err)));
    }
}

}  // namespace gridlm
