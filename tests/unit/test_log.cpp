// Unit tests of the logger (engine/core/log.h) and of what goes through it from launch/: text lines
// byte for byte, JSON lines (keys and their order, context, fields), threads writing at once, the
// --log-format option, and the progress bar cleared before a line.
#include <gtest/gtest.h>

#include <boost/program_options.hpp>
#include <chrono>
#include <cstdio>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "engine/core/error.h"
#include "engine/core/log.h"
#include "launch/cli_options.h"
#include "launch/commands.h"
#include "launch/progress.h"

using namespace gridlm;
using ojson = nlohmann::ordered_json;

namespace {

// Sends the logger to a fresh temporary file and puts it back (text on stderr, no context, no
// hook) afterwards, so that tests run in any order in one process.
class LogTest : public ::testing::Test {
protected:
    void SetUp() override {
        file_ = std::tmpfile();
        ASSERT_NE(file_, nullptr);
        log_set_context(LogContext{});
        log_set_before_line(nullptr);
        log_configure(LogFormat::text, file_);
    }
    void TearDown() override {
        log_set_before_line(nullptr);
        log_set_context(LogContext{});
        log_configure(LogFormat::text, stderr);
        std::fclose(file_);
    }
    std::string written() {
        std::fflush(file_);
        std::rewind(file_);
        std::string s;
        char buf[4096];
        size_t n;
        while ((n = std::fread(buf, 1, sizeof buf, file_)) > 0) s.append(buf, n);
        return s;
    }
    std::vector<std::string> lines() {
        std::vector<std::string> out;
        const std::string s = written();
        size_t start = 0;
        for (size_t nl; (nl = s.find('\n', start)) != std::string::npos; start = nl + 1)
            out.push_back(s.substr(start, nl - start));
        EXPECT_EQ(start, s.size()) << "the output ends inside a line";
        return out;
    }
    static std::vector<std::string> keys(const ojson& j) {
        std::vector<std::string> k;
        for (const auto& [key, v] : j.items()) k.push_back(key);
        return k;
    }
    std::FILE* file_ = nullptr;
};

TEST_F(LogTest, TextLinesAreByteIdentical) {
    log_info("grid", "grid dp=1 pp=2 tp=1, 2 micro-batches per replica", {{"dp", 1}});
    log_warning("x", "warning: something");
    log_error("fatal", "rank 0 on node1: score failed: boom");
    log_event_raw(LogLevel::info, "window", "[window 2/9] ppl 13.1234 (+/- 0.12345), 512 tokens/s");
    log_event_as(LogLevel::error, "usage_error", "gridlm score: --ctx 1: bad\n(see gridlm score --help)",
                 "--ctx 1: bad");
    log_event(LogLevel::debug, "d", "");
    EXPECT_EQ(written(),
              "gridlm: grid dp=1 pp=2 tp=1, 2 micro-batches per replica\n"
              "gridlm: warning: something\n"
              "gridlm: rank 0 on node1: score failed: boom\n"
              "[window 2/9] ppl 13.1234 (+/- 0.12345), 512 tokens/s\n"
              "gridlm score: --ctx 1: bad\n(see gridlm score --help)\n"
              "gridlm: \n");
}

TEST_F(LogTest, JsonLineHasEveryKeyInOrder) {
    log_configure(LogFormat::json, file_);
    EXPECT_EQ(log_format(), LogFormat::json);
    log_info("summary", "done: 3 records ok", {{"records_ok", 3}, {"elapsed_s", 1.5}, {"grid", {{"dp", 2}}}});
    const auto ls = lines();
    ASSERT_EQ(ls.size(), 1u);
    const ojson j = ojson::parse(ls[0]);
    // Before log_set_context the line does not know rank, host, replica or stage.
    EXPECT_EQ(keys(j),
              (std::vector<std::string>{"time", "level", "event", "message", "records_ok", "elapsed_s", "grid"}));
    EXPECT_EQ(j["level"], "info");
    EXPECT_EQ(j["event"], "summary");
    EXPECT_EQ(j["message"], "done: 3 records ok");
    EXPECT_EQ(j["records_ok"], 3);
    EXPECT_EQ(j["elapsed_s"], 1.5);
    EXPECT_EQ(j["grid"]["dp"], 2);
    EXPECT_TRUE(std::regex_match(j["time"].get<std::string>(), std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)")))
        << j["time"];
}

TEST_F(LogTest, JsonMessageIsTheTextWithoutItsPrefix) {
    log_configure(LogFormat::json, file_);
    log_event_as(LogLevel::warning, "ctx_beyond_training", "gridlm score: warning: --ctx 9 is beyond",
                 "--ctx 9 is beyond");
    log_event_raw(LogLevel::error, "usage_error", "two\nlines \"quoted\"");
    const auto ls = lines();
    ASSERT_EQ(ls.size(), 2u);  // a newline inside a message is escaped: still one line each
    EXPECT_EQ(ojson::parse(ls[0])["message"], "--ctx 9 is beyond");
    EXPECT_EQ(ojson::parse(ls[0])["level"], "warning");
    EXPECT_EQ(ojson::parse(ls[1])["message"], "two\nlines \"quoted\"");
    EXPECT_EQ(ojson::parse(ls[1])["level"], "error");
}

TEST_F(LogTest, ContextKeysAppearOnceSet) {
    log_configure(LogFormat::json, file_);
    log_set_context({/*rank*/ 5, /*world*/ 8, "node07", /*replica*/ 1, /*stage*/ 0, /*tp_rank*/ 1});
    log_info("start", "hello", {{"ctx", 512}});
    // Rank and host known, grid not yet (as MpiEnv leaves it): replica and stage are left out.
    log_set_context({2, 4, "node03", -1, -1, -1});
    log_info("start", "again");
    const auto ls = lines();
    ASSERT_EQ(ls.size(), 2u);
    const ojson a = ojson::parse(ls[0]);
    EXPECT_EQ(keys(a), (std::vector<std::string>{"time", "level", "rank", "host", "replica", "stage", "event",
                                                 "message", "ctx"}));
    EXPECT_EQ(a["rank"], 5);
    EXPECT_EQ(a["host"], "node07");
    EXPECT_EQ(a["replica"], 1);
    EXPECT_EQ(a["stage"], 0);
    const ojson b = ojson::parse(ls[1]);
    EXPECT_EQ(keys(b), (std::vector<std::string>{"time", "level", "rank", "host", "event", "message"}));
    EXPECT_EQ(b["rank"], 2);
    EXPECT_EQ(log_context().host, "node03");
}

TEST_F(LogTest, FieldsNeverReplaceTheLineKeys) {
    log_configure(LogFormat::json, file_);
    log_set_context({0, 2, "h", 0, 1, 0});
    log_info("stage_time", "x", {{"stage", 3}, {"message", "m"}, {"busy_s", 0.5}});
    const ojson j = ojson::parse(lines().at(0));
    EXPECT_EQ(j["stage"], 1);
    EXPECT_EQ(j["message"], "x");
    EXPECT_EQ(j["field_stage"], 3);
    EXPECT_EQ(j["field_message"], "m");
    EXPECT_EQ(j["busy_s"], 0.5);
}

TEST_F(LogTest, JsonLineAtAGivenTime) {
    const std::string line =
        log_json_line(1796092917123, LogLevel::warning, LogContext{}, "kv_cache", "budget", {{"kv_blocks", 10}});
    EXPECT_EQ(line, R"({"time":"2026-12-01T02:41:57.123Z","level":"warning","event":"kv_cache","message":"budget",)"
                    R"("kv_blocks":10})");
    EXPECT_EQ(log_json_line(5, LogLevel::debug, LogContext{}, "e", "m", ojson::object()),
              R"({"time":"1970-01-01T00:00:00.005Z","level":"debug","event":"e","message":"m"})");
}

TEST_F(LogTest, BytesThatAreNotUtf8DoNotStopALine) {
    log_configure(LogFormat::json, file_);
    log_error("fatal", "cannot open prompts file bad\xff\xfename.jsonl", {{"path", "bad\xff"}});
    const ojson j = ojson::parse(lines().at(0));
    EXPECT_NE(j["message"].get<std::string>().find("cannot open prompts file bad"), std::string::npos);
}

TEST_F(LogTest, LinesOfThreadsNeverInterleave) {
    for (LogFormat format : {LogFormat::json, LogFormat::text}) {
        std::fclose(file_);
        file_ = std::tmpfile();
        log_configure(format, file_);
        const int n_threads = 8, per_thread = 200;
        std::vector<std::thread> threads;
        for (int t = 0; t < n_threads; ++t) {
            threads.emplace_back([t] {
                // Long lines: several stdio buffers' worth, so a line written in pieces would tear.
                const std::string body(3000, (char)('a' + t));
                for (int i = 0; i < per_thread; ++i) log_info("progress", body, {{"thread", t}, {"i", i}});
            });
        }
        for (auto& th : threads) th.join();
        const auto ls = lines();
        ASSERT_EQ(ls.size(), (size_t)(n_threads * per_thread));
        std::set<std::pair<int, int>> seen;
        for (const std::string& l : ls) {
            if (format == LogFormat::json) {
                const ojson j = ojson::parse(l);
                const int t = j["thread"];
                EXPECT_EQ(j["message"], std::string(3000, (char)('a' + t)));
                seen.insert({t, j["i"].get<int>()});
            } else {
                ASSERT_EQ(l.size(), 8u + 3000u);
                EXPECT_EQ(l.substr(0, 8), "gridlm: ");
                EXPECT_EQ(l.find_first_not_of(l[8], 8), std::string::npos) << "a line mixes two threads' text";
            }
        }
        if (format == LogFormat::json) {
            EXPECT_EQ(seen.size(), (size_t)(n_threads * per_thread));
        }
    }
}

TEST_F(LogTest, FormatNames) {
    EXPECT_EQ(log_format_from_name("text"), LogFormat::text);
    EXPECT_EQ(log_format_from_name("json"), LogFormat::json);
    for (const char* bad : {"xml", "JSON", ""}) {
        try {
            log_format_from_name(bad);
            ADD_FAILURE() << "accepted '" << bad << "'";
        } catch (const Error& e) {
            const std::string what = e.what();
            EXPECT_NE(what.find(std::string("'") + bad + "'"), std::string::npos) << what;
            EXPECT_NE(what.find("text or json"), std::string::npos) << what;
        }
    }
    EXPECT_STREQ(log_level_name(LogLevel::warning), "warning");
}

TEST_F(LogTest, LogFormatOption) {
    namespace po = boost::program_options;
    po::options_description opts;
    add_log_options(opts);
    po::variables_map vm = parse_options({}, opts);
    EXPECT_EQ(vm["log-format"].as<std::string>(), "text");
    apply_log_options(parse_options({"--log-format", "json"}, opts));
    EXPECT_EQ(log_format(), LogFormat::json);
    try {
        apply_log_options(parse_options({"--log-format=yaml"}, opts));
        ADD_FAILURE() << "--log-format yaml accepted";
    } catch (const UsageError& e) {
        EXPECT_EQ(std::string(e.what()), "--log-format 'yaml' is not text or json");
    }
    log_configure(LogFormat::text, file_);
    preconfigure_log_format({"--model", "m.h5", "--log-format=json"});
    EXPECT_EQ(log_format(), LogFormat::json);
    preconfigure_log_format({"--log-format", "yaml"});  // left for apply_log_options to refuse
    EXPECT_EQ(log_format(), LogFormat::json);
}

TEST_F(LogTest, UsageErrorKeepsItsTwoTextLines) {
    log_usage_error("score", "gridlm score: ", "--ctx 1: a window needs at least 3 tokens");
    EXPECT_EQ(written(), "gridlm score: --ctx 1: a window needs at least 3 tokens\n(see gridlm score --help)\n");
    std::fclose(file_);
    file_ = std::tmpfile();
    log_configure(LogFormat::json, file_);
    log_usage_error("score", "gridlm score: rank 1 of 2 (h): ", "bad");
    const ojson j = ojson::parse(lines().at(0));
    EXPECT_EQ(j["event"], "usage_error");
    EXPECT_EQ(j["message"], "bad");
    EXPECT_EQ(j["command"], "score");
    EXPECT_EQ(j["exit_code"], 2);
}

TEST_F(LogTest, BeforeLineHookRunsFirst) {
    log_set_before_line([this] { std::fputs("<clear>", file_); });
    log_info("a", "one");
    log_event_raw(LogLevel::info, "b", "two");
    log_set_before_line(nullptr);
    log_info("c", "three");
    EXPECT_EQ(written(), "<clear>gridlm: one\n<clear>two\ngridlm: three\n");
}

TEST_F(LogTest, ProgressLinesInTextAndJson) {
    ProgressOptions o;
    o.total = 4;
    o.interval_s = 0;  // a line at every tick
    {
        Progress p(o);
        p.record_done(true, 10, 5);
        p.tick();
        p.finish();
    }
    const auto text = lines();
    ASSERT_EQ(text.size(), 2u);
    EXPECT_EQ(text[0].rfind("gridlm: 1/4 records | ", 0), 0u) << text[0];
    EXPECT_EQ(text[1].rfind("gridlm: done: 1 records ok, 0 failed; 10 prompt + 5 completion tokens in ", 0), 0u)
        << text[1];

    std::fclose(file_);
    file_ = std::tmpfile();
    log_configure(LogFormat::json, file_);
    {
        o.tty = true;  // no bar in JSON: events at the interval instead
        o.out = file_;
        Progress p(o);
        p.record_done(true, 10, 5);
        p.record_done(false);
        p.tick();
        p.finish();
    }
    const auto js = lines();
    ASSERT_EQ(js.size(), 2u);
    const ojson a = ojson::parse(js[0]), b = ojson::parse(js[1]);
    EXPECT_EQ(a["event"], "progress");
    EXPECT_EQ(a["records_done"], 2);
    EXPECT_EQ(a["records_total"], 4);
    EXPECT_EQ(a["records_failed"], 1);
    EXPECT_TRUE(a.contains("eta_s") && a.contains("tokens_per_s") && a.contains("elapsed_s"));
    EXPECT_EQ(a["message"].get<std::string>().rfind("2/4 records (1 failed) | ", 0), 0u) << a["message"];
    EXPECT_EQ(b["event"], "summary");
    EXPECT_EQ(b["records_ok"], 1);
    EXPECT_EQ(b["records_failed"], 1);
    EXPECT_EQ(b["completion_tokens"], 5);
    EXPECT_EQ(b["message"].get<std::string>().rfind("done: 1 records ok, 1 failed; ", 0), 0u);
}

TEST_F(LogTest, ABarIsClearedBeforeALogLine) {
    ProgressOptions o;
    o.total = 2;
    o.tty = true;
    o.out = file_;
    Progress p(o);
    p.record_done(true);
    // tick() draws at most four times a second: wait past that.
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    p.tick();
    log_info("resume", "a line from elsewhere");
    p.finish();
    const std::string s = written();
    // bar, then the clear, then the line; the summary finds no bar left to clear.
    EXPECT_EQ(s.rfind("\r\033[K[############............] 1/2 records | ", 0), 0u) << s;
    const size_t line = s.find("\r\033[Kgridlm: a line from elsewhere\ngridlm: done: 1 records ok");
    EXPECT_NE(line, std::string::npos) << s;
}

}  // namespace
