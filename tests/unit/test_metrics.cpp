// The --metrics-file module (launch/metrics.h): the Prometheus text it writes, checked by hand and by
// promtool, the atomic rewrite, the interval, and the Grafana dashboard's queries against the series.
#include "launch/metrics.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "test_support.h"

using namespace gridlm;

namespace {

// A 2-replica, 2-stage, 2-way tensor-parallel job half way through.
JobMetrics realistic_job() {
    JobMetrics m;
    m.job_id = "4711";
    m.info = {{"model", "SmolLM2-135M-Instruct"}, {"grid", "2,2,2"}};
    m.records = {{"ok", 900}, {"filtered", 12}, {"invalid_json", 3}, {"context_length", 5}};
    m.filter_hits = {{"reject/prompt", 12}, {"redact/completion", 40}};
    m.records_input = 2000;
    m.prompt_tokens = 123456;
    m.completion_tokens = 65432;
    m.tokens_per_s = 1834.25;
    m.eta_s = 612.5;
    m.elapsed_s = 540.0;
    m.running = 48;
    m.queued = 16;
    m.preempted_total = 7;
    m.kv_blocks_used = 1500;
    m.kv_blocks_free = 548;
    m.prefix_cache_hits = 310;
    m.prefix_tokens_reused = 40960;
    m.max_error_rate = 0.05;
    for (int rank = 0; rank < 8; ++rank) {
        RankMetrics r;
        r.rank = rank;
        r.replica = rank / 4;
        r.stage = rank / 2 % 2;
        r.tp_rank = rank % 2;
        r.peer_stage = r.stage == 0 ? 1 : 0;
        r.wall_s = 500;
        r.busy_s = r.stage == 0 ? 400 : 300;  // replica bubble: 1 - (0.8 + 0.6) / 2 = 0.3
        r.bytes_sent = 1.5e9 + rank;
        r.rss_bytes = 7.0e8;
        r.tokens_processed = 188888;
        r.steps = 4321;
        m.ranks.push_back(r);
    }
    return m;
}

bool has_line(const std::string& text, const std::string& line) {
    return text.find("\n" + line + "\n") != std::string::npos || text.rfind(line + "\n", 0) == 0;
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> v;
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);) v.push_back(l);
    return v;
}

// The metric name of a sample line: what comes before '{' or ' '.
std::string sample_name(const std::string& line) { return line.substr(0, line.find_first_of("{ ")); }

std::set<std::string> series_names(const std::string& text) {
    std::set<std::string> names;
    for (const std::string& l : lines_of(text)) {
        if (!l.empty() && l[0] != '#') names.insert(sample_name(l));
    }
    return names;
}

struct CommandResult {
    int status = -1;
    std::string output;
};

// Runs `promtool check metrics` with text on its stdin.
CommandResult promtool_check(const std::string& text) {
    const std::string file = test::temp_dir() + "/metrics.prom";
    std::ofstream(file, std::ios::binary) << text;
    CommandResult r;
    std::FILE* p = popen(("promtool check metrics < " + file + " 2>&1").c_str(), "r");
    if (!p) return r;
    char buf[4096];
    for (size_t n; (n = std::fread(buf, 1, sizeof(buf), p)) > 0;) r.output.append(buf, n);
    const int st = pclose(p);
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return r;
}

bool have_promtool() { return std::system("command -v promtool >/dev/null 2>&1") == 0; }

}  // namespace

TEST(Metrics, JobSeriesAndLabels) {
    const std::string t = format_prometheus(realistic_job());
    EXPECT_TRUE(has_line(t, "gridlm_job_info{job_id=\"4711\",grid=\"2,2,2\",model=\"SmolLM2-135M-Instruct\"} 1")) << t;
    EXPECT_TRUE(has_line(t, "gridlm_job_finished{job_id=\"4711\"} 0"));
    EXPECT_TRUE(has_line(t, "gridlm_records_total{job_id=\"4711\",status=\"ok\"} 900"));
    EXPECT_TRUE(has_line(t, "gridlm_records_total{job_id=\"4711\",status=\"filtered\"} 12"));
    EXPECT_TRUE(has_line(t, "gridlm_records_total{job_id=\"4711\",status=\"error\",error=\"invalid_json\"} 3"));
    EXPECT_TRUE(has_line(t, "gridlm_records_total{job_id=\"4711\",status=\"error\",error=\"context_length\"} 5"));
    EXPECT_TRUE(has_line(t, "gridlm_filter_hits_total{job_id=\"4711\",action=\"redact\",where=\"completion\"} 40"));
    EXPECT_TRUE(has_line(t, "gridlm_filter_hits_total{job_id=\"4711\",action=\"reject\",where=\"prompt\"} 12"));
    EXPECT_TRUE(has_line(t, "gridlm_input_records{job_id=\"4711\"} 2000"));
    EXPECT_TRUE(has_line(t, "gridlm_tokens_per_second{job_id=\"4711\"} 1834.25"));
    EXPECT_TRUE(has_line(t, "gridlm_eta_seconds{job_id=\"4711\"} 612.5"));
    EXPECT_TRUE(has_line(t, "gridlm_kv_blocks_free{job_id=\"4711\"} 548"));
    EXPECT_TRUE(has_line(t, "gridlm_breaker_max_error_ratio{job_id=\"4711\"} 0.05"));
    EXPECT_TRUE(has_line(t, "# TYPE gridlm_records_total counter"));
    EXPECT_TRUE(has_line(t, "# TYPE gridlm_eta_seconds gauge"));
}

TEST(Metrics, RankSeriesAndBubble) {
    const std::string t = format_prometheus(realistic_job());
    const std::string r3 = "job_id=\"4711\",rank=\"3\",replica=\"0\",stage=\"1\",tp_rank=\"1\"";
    EXPECT_TRUE(has_line(t, "gridlm_rank_busy_seconds_total{" + r3 + "} 300")) << t;
    EXPECT_TRUE(has_line(t, "gridlm_rank_busy_ratio{" + r3 + "} 0.6"));
    EXPECT_TRUE(has_line(t, "gridlm_rank_sent_bytes_total{" + r3 + ",link=\"stage 1->0\"} 1500000003"));
    EXPECT_TRUE(has_line(t, "gridlm_rank_resident_memory_bytes{" + r3 + "} 700000000"));
    EXPECT_TRUE(has_line(t, "gridlm_pipeline_bubble_ratio{job_id=\"4711\",replica=\"0\"} 0.30000000000000004"));
    EXPECT_TRUE(has_line(t, "gridlm_pipeline_bubble_ratio{job_id=\"4711\",replica=\"1\"} 0.30000000000000004"));
    // Ranks come out in rank order whatever order they were gathered in.
    JobMetrics shuffled = realistic_job();
    std::reverse(shuffled.ranks.begin(), shuffled.ranks.end());
    EXPECT_EQ(format_prometheus(shuffled), t);
}

TEST(Metrics, OneHelpAndTypePerFamilyAndJobIdEverywhere) {
    const std::string t = format_prometheus(realistic_job());
    ASSERT_FALSE(t.empty());
    EXPECT_EQ(t.back(), '\n');
    std::map<std::string, int> help, type;
    std::set<std::string> closed;  // families whose samples have ended
    std::string current;
    for (const std::string& l : lines_of(t)) {
        if (l.rfind("# HELP ", 0) == 0) {
            ++help[l.substr(7, l.find(' ', 7) - 7)];
            continue;
        }
        if (l.rfind("# TYPE ", 0) == 0) {
            const std::string name = l.substr(7, l.find(' ', 7) - 7);
            ++type[name];
            const std::string kind = l.substr(l.rfind(' ') + 1);
            const bool total = name.size() > 6 && name.compare(name.size() - 6, 6, "_total") == 0;
            EXPECT_EQ(kind == "counter", total) << l;
            if (!current.empty()) closed.insert(current);
            current = name;
            continue;
        }
        const std::string name = sample_name(l);
        EXPECT_EQ(name, current) << "sample outside its family: " << l;
        EXPECT_EQ(closed.count(name), 0u) << l;
        EXPECT_EQ(name.rfind("gridlm_", 0), 0u) << l;
        EXPECT_NE(l.find("{job_id=\"4711\""), std::string::npos) << l;
    }
    EXPECT_GE(help.size(), 20u);
    for (const auto& [name, n] : help) EXPECT_EQ(n, 1) << name;
    EXPECT_EQ(help.size(), type.size());
    for (const auto& [name, n] : type) EXPECT_EQ(n, 1) << name;
}

TEST(Metrics, LabelValuesAreEscaped) {
    JobMetrics m;
    m.job_id = "a\\b\"c\nd";
    m.records = {{"bad \"kind\"", 1}};
    const std::string t = format_prometheus(m);
    EXPECT_TRUE(has_line(t, "gridlm_job_finished{job_id=\"a\\\\b\\\"c\\nd\"} 0")) << t;
    EXPECT_NE(t.find("error=\"bad \\\"kind\\\"\"} 1"), std::string::npos) << t;
    m.info = {{"bad-name", "x"}};
    test::expect_has(test::error_of([&] { format_prometheus(m); }), {"bad-name", "[a-zA-Z_][a-zA-Z0-9_]*"});
    m.info = {{"job_id", "x"}};
    test::expect_has(test::error_of([&] { format_prometheus(m); }), {"job_id"});
}

TEST(Metrics, UnknownFiguresAreLeftOutAndFinishedJobHasNoEta) {
    JobMetrics m;
    m.job_id = "j";
    m.ranks.push_back(RankMetrics{});  // wall_s 0: no busy ratio, no bubble; peer -1: no link
    std::string t = format_prometheus(m);
    for (const char* absent : {"gridlm_filter_hits_total", "gridlm_input_records", "gridlm_eta_seconds",
                               "gridlm_kv_blocks_free", "gridlm_breaker_max_error_ratio", "gridlm_rank_busy_ratio",
                               "gridlm_rank_sent_bytes_total", "gridlm_pipeline_bubble_ratio"}) {
        EXPECT_EQ(t.find(absent), std::string::npos) << absent << "\n" << t;
    }
    EXPECT_TRUE(has_line(t, "gridlm_records_total{job_id=\"j\",status=\"ok\"} 0")) << t;
    m.finished = true;
    m.eta_s = 30;
    t = format_prometheus(m);
    EXPECT_TRUE(has_line(t, "gridlm_eta_seconds{job_id=\"j\"} 0"));
    EXPECT_TRUE(has_line(t, "gridlm_job_finished{job_id=\"j\"} 1"));
    m.tokens_per_s = std::numeric_limits<double>::quiet_NaN();
    EXPECT_TRUE(has_line(format_prometheus(m), "gridlm_tokens_per_second{job_id=\"j\"} NaN"));
}

TEST(Metrics, RankMetricsTravelAsDoubles) {
    const RankMetrics r = realistic_job().ranks[5];
    const RankMetrics back = RankMetrics::from_array(r.to_array());
    EXPECT_EQ(back.to_array(), r.to_array());
    EXPECT_EQ(back.rank, 5);
    EXPECT_EQ(back.peer_stage, 1);
    EXPECT_EQ(back.bytes_sent, 1.5e9 + 5);
}

TEST(Metrics, PromtoolAcceptsTheFile) {
    ASSERT_TRUE(have_promtool()) << "promtool not found: install Debian's `prometheus` package "
                                    "(apt-get install --no-install-recommends prometheus; launch/setup.sh does)";
    JobMetrics m = realistic_job();
    const CommandResult ok = promtool_check(format_prometheus(m));
    EXPECT_EQ(ok.status, 0) << ok.output;
    EXPECT_EQ(ok.output, "");
    m.finished = true;
    m.job_id = "odd \"id\" \\ with\nnewline";
    const CommandResult odd = promtool_check(format_prometheus(m));
    EXPECT_EQ(odd.status, 0) << odd.output;
}

TEST(Metrics, PromtoolRejectsBrokenRules) {
    ASSERT_TRUE(have_promtool()) << "promtool not found: install Debian's `prometheus` package";
    const std::string t = format_prometheus(realistic_job());
    // A counter without _total: promtool's lint must object.
    std::string no_total = std::regex_replace(t, std::regex("gridlm_preemptions_total"), "gridlm_preemptions");
    CommandResult r = promtool_check(no_total);
    EXPECT_NE(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("gridlm_preemptions"), std::string::npos) << r.output;
    // An unescaped quote in a label value: the parser must fail.
    std::string bad = std::regex_replace(t, std::regex("job_id=\"4711\""), "job_id=\"47\"11\"");
    r = promtool_check(bad);
    EXPECT_NE(r.status, 0) << r.output;
}

TEST(MetricsFile, IntervalDecidesWhenToWrite) {
    const std::string path = test::temp_dir() + "/job.prom";
    double now = 100;
    MetricsFile f(path, 5.0, [&] { return now; });
    JobMetrics m = realistic_job();
    EXPECT_TRUE(f.due());
    EXPECT_TRUE(f.maybe_write(m));
    EXPECT_FALSE(f.due());
    now = 104.9;
    EXPECT_FALSE(f.maybe_write(m));
    now = 105.0;
    EXPECT_TRUE(f.due());
    m.finished = true;
    EXPECT_TRUE(f.maybe_write(m));
    now = 106;
    f.write(m);  // the end of the job writes whatever the interval says
    EXPECT_EQ(f.writes(), 3);
    EXPECT_FALSE(f.due());
    EXPECT_EQ(test::read_file(path), format_prometheus(m));
}

TEST(MetricsFile, BadPathsAreRefused) {
    const std::string dir = test::temp_dir();
    test::expect_has(test::error_of([&] { MetricsFile(dir + "/nope/job.prom"); }),
                     {"--metrics-file", dir + "/nope/job.prom", "does not exist"});
    test::expect_has(test::error_of([&] { MetricsFile(dir + "/job.prom", 0); }), {"--metrics-interval", "> 0"});
    std::filesystem::create_directory(dir + "/gone");
    MetricsFile f(dir + "/gone/job.prom");
    std::filesystem::remove(dir + "/gone");
    test::expect_has(test::error_of([&] { f.write(realistic_job()); }), {"cannot create", dir + "/gone/job.prom.tmp."});
}

// A reader polling the file while it is rewritten sees no file or one of the two whole versions.
TEST(MetricsFile, RewriteIsAtomic) {
    const std::string dir = test::temp_dir(), path = dir + "/job.prom";
    JobMetrics a = realistic_job(), b = realistic_job();
    for (int i = 8; i < 2000; ++i) {  // a file of a few MB, so a non-atomic write would show
        RankMetrics r = a.ranks[i % 8];
        r.rank = i;
        a.ranks.push_back(r);
    }
    b.ranks.resize(2);
    b.finished = true;
    const std::string text_a = format_prometheus(a), text_b = format_prometheus(b);
    ASSERT_GT(text_a.size(), 1000000u);
    std::atomic<bool> stop{false};
    std::atomic<int> seen_a{0}, seen_b{0}, seen_none{0}, seen_other{0};
    std::thread reader([&] {
        while (!stop) {
            std::ifstream in(path, std::ios::binary);
            if (!in) {
                ++seen_none;
                continue;
            }
            const std::string got((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
            if (got == text_a) {
                ++seen_a;
            } else if (got == text_b) {
                ++seen_b;
            } else {
                ++seen_other;
            }
        }
    });
    MetricsFile f(path, 5.0);
    for (int i = 0; i < 20; ++i) f.write(i % 2 ? b : a);
    stop = true;
    reader.join();
    EXPECT_EQ(seen_other, 0) << "a partial file was visible";
    EXPECT_GT(seen_a + seen_b, 0);
    std::printf("reads: %d whole, %d no file\n", seen_a + seen_b, (int)seen_none);
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
        EXPECT_EQ(e.path().filename().string(), "job.prom") << "left behind: " << e.path();
    }
}

TEST(Metrics, ResidentBytesAndJobId) {
    const int64_t rss = resident_bytes();
    EXPECT_GT(rss, 1 << 20);           // a process with libstdc++ and gtest mapped
    EXPECT_LT(rss, int64_t{1} << 40);  // and not a misread field
    std::map<std::string, std::string> saved;
    for (const char* v : {"SLURM_JOB_ID", "PBS_JOBID", "LSB_JOBID"}) {
        if (const char* s = std::getenv(v)) saved[v] = s;
        unsetenv(v);
    }
    const std::string fallback = default_job_id();
    EXPECT_NE(fallback.find(str("-", getpid(), "-")), std::string::npos) << fallback;
    EXPECT_EQ(default_job_id(), fallback);
    setenv("LSB_JOBID", "77", 1);
    EXPECT_EQ(default_job_id(), "77");
    setenv("PBS_JOBID", "12.pbs-server", 1);
    EXPECT_EQ(default_job_id(), "12.pbs-server");
    setenv("SLURM_JOB_ID", "4711", 1);
    EXPECT_EQ(default_job_id(), "4711");
    for (const char* v : {"SLURM_JOB_ID", "PBS_JOBID", "LSB_JOBID"}) unsetenv(v);
    for (const auto& [k, v] : saved) setenv(k.c_str(), v.c_str(), 1);
}

// Every gridlm_* name a dashboard query uses must be one format_prometheus writes.
TEST(Metrics, GrafanaDashboardQueriesKnownSeries) {
    std::ifstream in(GRIDLM_SOURCE_DIR "/docs/grafana-dashboard.json");
    ASSERT_TRUE(in) << "docs/grafana-dashboard.json missing";
    const nlohmann::json d = nlohmann::json::parse(in);  // throws on bad JSON
    const std::set<std::string> known = series_names(format_prometheus(realistic_job()));
    const std::regex name_re("gridlm_[a-zA-Z0-9_]+");
    std::vector<nlohmann::json> panels = d.at("panels").get<std::vector<nlohmann::json>>();
    int n_exprs = 0;
    std::set<std::string> used;
    for (size_t i = 0; i < panels.size(); ++i) {
        const nlohmann::json p = panels[i];  // a copy: panels grows below
        if (p.contains("panels")) {
            for (const auto& inner : p["panels"]) panels.push_back(inner);
        }
        if (!p.contains("targets")) continue;
        for (const auto& target : p["targets"]) {
            const std::string expr = target.at("expr");
            ++n_exprs;
            EXPECT_NE(expr.find("job_id=~\"$job_id\""), std::string::npos) << p.value("title", "") << ": " << expr;
            for (std::sregex_iterator it(expr.begin(), expr.end(), name_re), end; it != end; ++it) {
                EXPECT_TRUE(known.count(it->str())) << p.value("title", "") << ": " << it->str() << " is not written";
                used.insert(it->str());
            }
        }
    }
    EXPECT_GE(n_exprs, 10);
    for (const char* needed :
         {"gridlm_records_total", "gridlm_tokens_per_second", "gridlm_eta_seconds", "gridlm_sequences_running",
          "gridlm_sequences_queued", "gridlm_kv_blocks_used", "gridlm_kv_blocks_free",
          "gridlm_prefix_cache_reused_tokens_total", "gridlm_rank_busy_ratio", "gridlm_pipeline_bubble_ratio",
          "gridlm_rank_sent_bytes_total", "gridlm_rank_resident_memory_bytes"}) {
        EXPECT_TRUE(used.count(needed)) << needed << " has no panel";
    }
    bool job_var = false, ds_var = false;
    for (const auto& v : d.at("templating").at("list")) {
        if (v.value("name", "") == "job_id") {
            job_var = v.at("query").dump().find("label_values(gridlm_job_info, job_id)") != std::string::npos;
        }
        if (v.value("type", "") == "datasource" && v.value("query", "") == "prometheus") ds_var = true;
    }
    EXPECT_TRUE(job_var);
    EXPECT_TRUE(ds_var);
}
