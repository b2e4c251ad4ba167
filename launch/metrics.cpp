// The Prometheus metrics file of `gridlm generate` (see metrics.h): the series, their text format
// and the atomic rewrite.
#include "launch/metrics.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <utility>

#include "engine/core/error.h"

namespace gridlm {

std::array<double, RankMetrics::n_fields> RankMetrics::to_array() const {
    return {(double)rank,       (double)replica,  (double)stage, (double)tp_rank,
            (double)peer_stage, busy_s,           wall_s,        bytes_sent,
            rss_bytes,          tokens_processed, steps};
}

RankMetrics RankMetrics::from_array(const std::array<double, n_fields>& a) {
    RankMetrics r;
    r.rank = (int)std::lround(a[0]);
    r.replica = (int)std::lround(a[1]);
    r.stage = (int)std::lround(a[2]);
    r.tp_rank = (int)std::lround(a[3]);
    r.peer_stage = (int)std::lround(a[4]);
    r.busy_s = a[5];
    r.wall_s = a[6];
    r.bytes_sent = a[7];
    r.rss_bytes = a[8];
    r.tokens_processed = a[9];
    r.steps = a[10];
    return r;
}

namespace {

using Labels = std::vector<std::pair<std::string, std::string>>;

struct Sample {
    Labels labels;
    std::string value;
};

// One metric family: its samples must stay together under a single HELP / TYPE pair.
struct Family {
    const char* name;
    const char* type;  // "counter" or "gauge"
    const char* help;
    std::vector<Sample> samples;
};

bool valid_label_name(const std::string& s) {
    if (s.empty() || s.rfind("__", 0) == 0) return false;  // __ is reserved for Prometheus itself
    for (size_t i = 0; i < s.size(); ++i) {
        const char c = s[i];
        const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
    }
    return true;
}

std::string escape_label_value(const std::string& v) {
    std::string out;
    out.reserve(v.size());
    for (char c : v) {
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '"') {
            out += "\\\"";
        } else if (c == '\n') {
            out += "\\n";
        } else {
            out += c;
        }
    }
    return out;
}

// The shortest text that reads back as the same double; Go's ParseFloat spellings for the rest.
std::string number(double v) {
    if (std::isnan(v)) return "NaN";
    if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
    // Whole numbers (byte and token counts kept as doubles) read better as integers than 7e+08.
    if (v == std::trunc(v) && std::fabs(v) < 9007199254740992.0) return std::to_string((int64_t)v);
    char buf[64];
    const auto res = std::to_chars(buf, buf + sizeof(buf), v);
    return std::string(buf, res.ptr);
}

std::string number(int64_t v) { return std::to_string(v); }

class Exposition {
public:
    explicit Exposition(std::string job_id) : job_id_(std::move(job_id)) {}

    Family& family(const char* name, const char* type, const char* help) {
        families_.push_back(Family{name, type, help, {}});
        return families_.back();
    }
    // A sample of the family just opened, labelled job_id first.
    template <typename V>
    void add(Labels labels, V value) {
        labels.insert(labels.begin(), {"job_id", job_id_});
        families_.back().samples.push_back(Sample{std::move(labels), number(value)});
    }
    // family() + add() for a series with job_id as its only label.
    template <typename V>
    void single(const char* name, const char* type, const char* help, V value) {
        family(name, type, help);
        add({}, value);
    }

    std::string text() const {
        std::string out;
        for (const Family& f : families_) {
            if (f.samples.empty()) continue;
            out += str("# HELP ", f.name, " ", f.help, "\n# TYPE ", f.name, " ", f.type, "\n");
            for (const Sample& s : f.samples) {
                out += f.name;
                out += '{';
                for (size_t i = 0; i < s.labels.size(); ++i) {
                    if (i) out += ',';
                    out += str(s.labels[i].first, "=\"", escape_label_value(s.labels[i].second), "\"");
                }
                out += str("} ", s.value, "\n");
            }
        }
        return out;
    }

private:
    std::string job_id_;
    std::vector<Family> families_;
};

Labels rank_labels(const RankMetrics& r) {
    return {{"rank", std::to_string(r.rank)},
            {"replica", std::to_string(r.replica)},
            {"stage", std::to_string(r.stage)},
            {"tp_rank", std::to_string(r.tp_rank)}};
}

double busy_ratio(const RankMetrics& r) { return std::clamp(r.busy_s / r.wall_s, 0.0, 1.0); }

void add_job_series(Exposition& e, const JobMetrics& m) {
    Labels info;
    for (const auto& [k, v] : m.info) {
        if (!valid_label_name(k) || k == "job_id") {
            throw Error(str("metrics: info label name '", k,
                            "' is not accepted (Prometheus label names match [a-zA-Z_][a-zA-Z0-9_]*, do not start "
                            "with __, and job_id is set already)"));
        }
        info.emplace_back(k, v);
    }
    e.family("gridlm_job_info", "gauge", "Always 1; labels describe the job (job_id, model, grid).");
    e.add(info, int64_t{1});
    e.single("gridlm_job_finished", "gauge", "1 once the job has written its last record, else 0.",
             int64_t{m.finished ? 1 : 0});
    e.single("gridlm_job_elapsed_seconds", "gauge", "Seconds since the job started.", m.elapsed_s);

    // ok and filtered records, then one series per error kind under status="error".
    e.family("gridlm_records_total", "counter",
             "Records written, by status (ok, filtered, error) and, for errors, the error kind.");
    for (const char* status : {"ok", "filtered"}) {
        const auto it = m.records.find(status);
        e.add({{"status", status}}, it == m.records.end() ? int64_t{0} : it->second);
    }
    for (const auto& [kind, n] : m.records) {
        if (kind != "ok" && kind != "filtered") e.add({{"status", "error"}, {"error", kind}}, n);
    }
    e.family("gridlm_filter_hits_total", "counter",
             "Content filter rule matches, by action (reject, redact, flag) and where (prompt, completion).");
    for (const auto& [key, n] : m.filter_hits) {
        const size_t slash = key.find('/');
        e.add({{"action", key.substr(0, slash)}, {"where", slash == std::string::npos ? "" : key.substr(slash + 1)}},
              n);
    }
    e.family("gridlm_input_records", "gauge", "Records in the input (absent when unknown).");
    if (m.records_input >= 0) e.add({}, m.records_input);
    e.single("gridlm_prompt_tokens_total", "counter", "Prompt tokens of finished records.", m.prompt_tokens);
    e.single("gridlm_completion_tokens_total", "counter", "Generated tokens of finished records.", m.completion_tokens);
    e.single("gridlm_tokens_per_second", "gauge", "Tokens run through the model per second, over the job so far.",
             m.tokens_per_s);
    e.family("gridlm_eta_seconds", "gauge", "Estimated seconds until the last record (absent when unknown).");
    if (m.finished) {
        e.add({}, 0.0);
    } else if (m.eta_s >= 0) {
        e.add({}, m.eta_s);
    }
    e.single("gridlm_sequences_running", "gauge", "Sequences in the running batch.", m.running);
    e.single("gridlm_sequences_queued", "gauge", "Requests read and waiting for a batch slot.", m.queued);
    e.single("gridlm_preemptions_total", "counter", "Sequences whose KV cache was dropped under the KV budget.",
             m.preempted_total);
    e.single("gridlm_kv_blocks_used", "gauge", "KV cache blocks held by sequences.", m.kv_blocks_used);
    e.family("gridlm_kv_blocks_free", "gauge", "KV cache blocks free under the budget (absent without one).");
    if (m.kv_blocks_free >= 0) e.add({}, m.kv_blocks_free);
    e.single("gridlm_prefix_cache_hits_total", "counter", "Sequences that reused a cached prompt prefix.",
             m.prefix_cache_hits);
    e.single("gridlm_prefix_cache_reused_tokens_total", "counter",
             "Prompt tokens taken from the prefix cache instead of being recomputed.", m.prefix_tokens_reused);
    e.family("gridlm_breaker_max_error_ratio", "gauge", "The --max-error-rate the job stops at (absent when not set).");
    if (m.max_error_rate >= 0) e.add({}, m.max_error_rate);
    e.single("gridlm_breaker_tripped", "gauge", "1 when the job stopped on --max-error-rate, else 0.",
             int64_t{m.breaker_tripped ? 1 : 0});
}

void add_rank_series(Exposition& e, std::vector<RankMetrics> ranks) {
    std::sort(ranks.begin(), ranks.end(), [](const RankMetrics& a, const RankMetrics& b) { return a.rank < b.rank; });
    e.family("gridlm_rank_busy_seconds_total", "counter", "Seconds the rank spent in model steps.");
    for (const RankMetrics& r : ranks) e.add(rank_labels(r), r.busy_s);
    e.family("gridlm_rank_elapsed_seconds", "gauge", "Seconds since the rank started the job loop.");
    for (const RankMetrics& r : ranks) e.add(rank_labels(r), r.wall_s);
    e.family("gridlm_rank_busy_ratio", "gauge", "Share of the rank's elapsed time spent in model steps (0 to 1).");
    for (const RankMetrics& r : ranks) {
        if (r.wall_s > 0) e.add(rank_labels(r), busy_ratio(r));
    }
    e.family("gridlm_rank_sent_bytes_total", "counter",
             "Bytes the rank sent to the next pipeline stage, by link (stage S->T).");
    for (const RankMetrics& r : ranks) {
        if (r.peer_stage < 0) continue;
        Labels l = rank_labels(r);
        l.emplace_back("link", str("stage ", r.stage, "->", r.peer_stage));
        e.add(l, r.bytes_sent);
    }
    e.family("gridlm_rank_resident_memory_bytes", "gauge", "Resident set size of the rank's process.");
    for (const RankMetrics& r : ranks) e.add(rank_labels(r), r.rss_bytes);
    e.family("gridlm_rank_processed_tokens_total", "counter", "Tokens run through the rank's layers.");
    for (const RankMetrics& r : ranks) e.add(rank_labels(r), r.tokens_processed);
    e.family("gridlm_rank_steps_total", "counter", "Model steps the rank ran.");
    for (const RankMetrics& r : ranks) e.add(rank_labels(r), r.steps);

    // Bubble of a replica: 1 - the mean over its stages of the stage's busy share (the mean over
    // its tensor-parallel ranks), as the end-of-job grid report counts it.
    std::map<int, std::map<int, std::pair<double, int>>> busy;  // replica -> stage -> (sum, n)
    for (const RankMetrics& r : ranks) {
        if (r.wall_s <= 0) continue;
        auto& s = busy[r.replica][r.stage];
        s.first += busy_ratio(r);
        s.second += 1;
    }
    e.family("gridlm_pipeline_bubble_ratio", "gauge",
             "Idle share of a replica's pipeline: 1 - mean busy ratio over its stages.");
    for (const auto& [replica, stages] : busy) {
        double sum = 0;
        for (const auto& [stage, s] : stages) sum += s.first / s.second;
        e.add({{"replica", std::to_string(replica)}}, 1.0 - sum / (double)stages.size());
    }
}

double steady_now() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

std::string format_prometheus(const JobMetrics& m) {
    Exposition e(m.job_id);
    add_job_series(e, m);
    add_rank_series(e, m.ranks);
    return e.text();
}

MetricsFile::MetricsFile(std::string path, double interval_s, std::function<double()> now)
    : path_(std::move(path)), interval_s_(interval_s), now_(now ? std::move(now) : steady_now) {
    namespace fs = std::filesystem;
    const fs::path dir = fs::absolute(fs::path(path_)).parent_path();
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) {
        throw Error(str("--metrics-file ", path_, ": directory ", dir.string(), " does not exist"));
    }
    if (!(interval_s_ > 0)) {
        throw Error(str("--metrics-interval ", interval_s_, ": expected a number of seconds > 0"));
    }
}

bool MetricsFile::due() const { return writes_ == 0 || now_() - last_ >= interval_s_; }

bool MetricsFile::maybe_write(const JobMetrics& m) {
    if (!due()) return false;
    write(m);
    return true;
}

void MetricsFile::write(const JobMetrics& m) {
    const std::string text = format_prometheus(m);
    // The temporary name does not end in .prom, so the textfile collector never reads it.
    const std::string tmp = str(path_, ".tmp.", (long long)getpid());
    std::FILE* f = std::fopen(tmp.c_str(), "wb");
    if (!f) throw Error(str("--metrics-file: cannot create ", tmp, ": ", std::strerror(errno)));
    const bool written = std::fwrite(text.data(), 1, text.size(), f) == text.size();
    const int err = errno;
    if (std::fclose(f) != 0 || !written) {
        std::remove(tmp.c_str());
        throw Error(str("--metrics-file: cannot write ", tmp, ": ", std::strerror(written ? errno : err)));
    }
    if (std::rename(tmp.c_str(), path_.c_str()) != 0) {
        const int rename_err = errno;
        std::remove(tmp.c_str());
        throw Error(str("--metrics-file: cannot rename ", tmp, " to ", path_, ": ", std::strerror(rename_err)));
    }
    last_ = now_();
    ++writes_;
}

int64_t resident_bytes() {
    // statm: size resident shared text lib data dt, in pages.
    std::ifstream in("/proc/self/statm");
    long long size = 0, resident = 0;
    if (!(in >> size >> resident)) return 0;
    const long page = sysconf(_SC_PAGESIZE);
    return page > 0 ? (int64_t)resident * page : 0;
}

std::string default_job_id() {
    for (const char* var : {"SLURM_JOB_ID", "PBS_JOBID", "LSB_JOBID"}) {
        const char* v = std::getenv(var);
        if (v && *v) return v;
    }
    static const std::string fallback = [] {
        char host[256] = {};
        if (gethostname(host, sizeof(host) - 1) != 0 || !host[0]) std::strcpy(host, "localhost");
        const std::time_t t = std::time(nullptr);
        std::tm utc{};
        gmtime_r(&t, &utc);
        char when[32];
        std::strftime(when, sizeof(when), "%Y%m%dT%H%M%S", &utc);
        return str(host, "-", (long long)getpid(), "-", when);
    }();
    return fallback;
}

}  // namespace gridlm
