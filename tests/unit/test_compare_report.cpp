// Unit tests of `gridlm compare`'s report (launch/compare_report.h, compare_inputs.h): the figures
// of hand-made generate and score lines (divergence positions, match rate, distributions, error
// and filter rates, pooled log-probabilities), gate parsing and evaluation, HTML escaping, and the
// rewritten prompts and score inputs.
#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

#include "launch/commands.h"
#include "launch/compare_inputs.h"
#include "launch/compare_report.h"
#include "test_support.h"

using namespace gridlm;
using json = nlohmann::ordered_json;

namespace {

// A generate line in gridlm shape: text, finish reason and per-token ids with log-probabilities.
json gen_line(const std::string& id, const std::string& text, std::vector<int> ids, std::vector<double> lps,
              const std::string& finish = "stop") {
    json l = json::array();
    for (size_t i = 0; i < ids.size(); ++i)
        l.push_back({{"token_id", ids[i]}, {"token", "t" + std::to_string(ids[i])}, {"logprob", lps[i]}});
    return {{"id", id},
            {"text", text},
            {"finish_reason", finish},
            {"usage", {{"prompt_tokens", 5}, {"completion_tokens", (int)ids.size()}}},
            {"logprobs", l}};
}

CompareRecord rec(const std::string& id, const json& a, const json& b) {
    CompareRecord r;
    r.id = id;
    r.a = compare_side_from_line(a);
    r.b = compare_side_from_line(b);
    return r;
}

void write(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

std::vector<json> read_lines(const std::string& path) {
    std::vector<json> out;
    std::ifstream in(path);
    for (std::string line; std::getline(in, line);) out.push_back(json::parse(line));
    return out;
}

}  // namespace

TEST(CompareReport, SideFromLines) {
    const CompareSide ok = compare_side_from_line(gen_line("a", "hi there", {7, 8, 2}, {-0.5, -1.0, -0.25}));
    EXPECT_TRUE(ok.present && ok.ok && ok.has_logprobs);
    EXPECT_FALSE(ok.error || ok.filtered);
    EXPECT_EQ(ok.token_ids, (std::vector<int32_t>{7, 8, 2}));
    EXPECT_EQ(ok.length, 3);
    EXPECT_EQ(ok.finish_reason, "stop");
    const CompareSide err = compare_side_from_line(json{{"id", "b"}, {"line", 2}, {"error", "too long"}});
    EXPECT_TRUE(err.error && !err.ok);
    EXPECT_EQ(err.error_message, "too long");
    const CompareSide rejected = compare_side_from_line(
        json{{"id", "c"}, {"finish_reason", "content_filter"}, {"filter", {{"rule", "r"}}}, {"usage", {}}});
    EXPECT_TRUE(rejected.filtered && !rejected.ok && !rejected.error);
    json flagged = gen_line("d", "x", {1}, {-1});
    flagged["filter"] = {{"rule", "r"}, {"action", "flag"}};
    const CompareSide f = compare_side_from_line(flagged);
    EXPECT_TRUE(f.filtered && f.ok);  // a flagged completion still has its text to compare
}

TEST(CompareReport, FirstDivergence) {
    auto div = [](std::vector<int> a, std::vector<int> b, std::string ta, std::string tb) {
        return record_figures(rec("x", gen_line("x", ta, a, std::vector<double>(a.size(), -1.0)),
                                  gen_line("x", tb, b, std::vector<double>(b.size(), -1.0))));
    };
    const RecordFigures same = div({1, 2, 3}, {1, 2, 3}, "abc", "abc");
    EXPECT_TRUE(same.equal);
    EXPECT_FALSE(same.first_divergence.has_value());
    EXPECT_EQ(div({1, 2, 3, 4}, {1, 2, 9, 4}, "abcd", "abzd").first_divergence, 2);
    EXPECT_EQ(div({5}, {6}, "a", "b").first_divergence, 0);
    // One a prefix of the other: they part where the shorter one ends.
    const RecordFigures prefix = div({1, 2}, {1, 2, 3, 4}, "ab", "abcd");
    EXPECT_FALSE(prefix.equal);
    EXPECT_EQ(prefix.first_divergence, 2);
    // A side that failed: nothing to compare.
    const RecordFigures failed =
        record_figures(rec("x", gen_line("x", "a", {1}, {-1}), json{{"id", "x"}, {"line", 1}, {"error", "e"}}));
    EXPECT_FALSE(failed.both_ok || failed.equal || failed.first_divergence.has_value());
}

TEST(CompareReport, DistributionsAndHistogram) {
    const Distribution d = distribution_of({4, 1, 3, 2});
    EXPECT_EQ(d.count, 4);
    EXPECT_DOUBLE_EQ(*d.mean, 2.5);
    EXPECT_DOUBLE_EQ(*d.p50, 2);  // nearest rank: the 2nd of 4
    EXPECT_DOUBLE_EQ(*d.p90, 4);  // the 4th of 4
    EXPECT_DOUBLE_EQ(*distribution_of({7}).p90, 7);
    EXPECT_FALSE(distribution_of({}).mean.has_value());
    const std::vector<HistogramBin> h = pow2_histogram({0, 1, 2, 3, 4, 9, 3});
    ASSERT_EQ(h.size(), 5u);
    const int64_t want[5][3] = {{0, 0, 1}, {1, 1, 1}, {2, 3, 3}, {4, 7, 1}, {8, 15, 1}};
    for (size_t i = 0; i < 5; ++i) {
        EXPECT_EQ(h[i].from, want[i][0]) << i;
        EXPECT_EQ(h[i].to, want[i][1]) << i;
        EXPECT_EQ(h[i].count, want[i][2]) << i;
    }
}

// Five records: two equal, two diverging (at 1 and at 3), one an error in B; one B line is
// filtered (flagged, text kept). Cross scores for the first three.
std::vector<CompareRecord> five_records() {
    std::vector<CompareRecord> r;
    r.push_back(rec("r1", gen_line("r1", "ab", {1, 2}, {-1, -1}), gen_line("r1", "ab", {1, 2}, {-1, -1})));
    r.push_back(rec("r2", gen_line("r2", "abcd", {1, 2, 3, 4}, {-0.5, -0.5, -0.5, -0.5}, "length"),
                    gen_line("r2", "abxyz", {1, 2, 3, 9, 9}, {-1, -1, -1, -2, -2})));
    r.push_back(rec("r3", gen_line("r3", "q", {5, 6}, {-2, -2}), gen_line("r3", "w", {7, 6}, {-1, -1})));
    json flagged = gen_line("r4", "same", {4}, {-0.1});
    flagged["filter"] = {{"rule", "r"}, {"action", "flag"}};
    r.push_back(rec("r4", gen_line("r4", "same", {4}, {-0.1}), flagged));
    r.push_back(rec("r5", gen_line("r5", "z", {3}, {-3}), json{{"id", "r5"}, {"line", 5}, {"error", "e"}}));
    // B on A's completions, A on B's: sums over each completion.
    r[0].b_on_a = CrossScore{-2.0, 2};
    r[0].a_on_b = CrossScore{-2.0, 2};
    r[1].b_on_a = CrossScore{-4.0, 4};   // B: -1 per token on A's text (A itself: -0.5)
    r[1].a_on_b = CrossScore{-10.0, 5};  // A: -2 per token on B's text (B itself: -1.4)
    r[2].b_on_a = CrossScore{-6.0, 2};
    r[2].a_on_b = CrossScore{-3.0, 2};
    return r;
}

TEST(CompareReport, Summary) {
    const CompareSummary s = summarize(five_records());
    EXPECT_EQ(s.records, 5);
    EXPECT_EQ(s.both_ok, 4);
    EXPECT_EQ(s.exact_match, 2);
    EXPECT_DOUBLE_EQ(*s.exact_match_rate, 0.5);
    EXPECT_EQ(s.diverged, 2);
    EXPECT_DOUBLE_EQ(*s.divergence.mean, 1.5);  // positions 3 (r2) and 0 (r3)
    EXPECT_DOUBLE_EQ(*s.divergence.p50, 0);
    EXPECT_EQ(s.a.errors, 0);
    EXPECT_EQ(s.b.errors, 1);
    EXPECT_DOUBLE_EQ(s.b.error_rate, 0.2);
    EXPECT_EQ(s.b.filtered, 1);
    EXPECT_DOUBLE_EQ(s.b.filtered_rate, 0.2);
    EXPECT_EQ(s.a.finish_reasons.at("stop"), 4);
    EXPECT_EQ(s.a.finish_reasons.at("length"), 1);
    EXPECT_EQ(s.b.finish_reasons.at("stop"), 4);
    // Lengths of ok lines: A 2,4,2,1,1; B 2,5,2,1.
    EXPECT_DOUBLE_EQ(*s.a.length.mean, 2.0);
    EXPECT_DOUBLE_EQ(*s.a.length.p50, 2);
    EXPECT_DOUBLE_EQ(*s.a.length.p90, 4);
    EXPECT_DOUBLE_EQ(*s.b.length.mean, 2.5);
    // Over the records both completed: B 10 tokens, A 9.
    EXPECT_DOUBLE_EQ(*s.length_ratio, 10.0 / 9.0);
    // Pooled over r1..r3 (r4 has no cross scores): A's texts 8 tokens, B's 9.
    EXPECT_EQ(s.logprob_records, 3);
    EXPECT_EQ(s.logprob_tokens_a, 8);
    EXPECT_EQ(s.logprob_tokens_b, 9);
    EXPECT_DOUBLE_EQ(*s.a_on_a, (-2.0 - 2.0 - 4.0) / 8);
    EXPECT_DOUBLE_EQ(*s.b_on_a, (-2.0 - 4.0 - 6.0) / 8);
    EXPECT_DOUBLE_EQ(*s.b_on_b, (-2.0 - 7.0 - 2.0) / 9);
    EXPECT_DOUBLE_EQ(*s.a_on_b, (-2.0 - 10.0 - 3.0) / 9);
    EXPECT_DOUBLE_EQ(*s.delta_b_on_a, -0.5);
    EXPECT_DOUBLE_EQ(*s.delta_a_on_b, (-15.0 + 11.0) / 9);
}

TEST(CompareReport, SelfComparisonIsAMatch) {
    std::vector<CompareRecord> r;
    for (int i = 0; i < 3; ++i) {
        const json l = gen_line(std::to_string(i), "t", {1, 2, 3}, {-0.5, -1, -1.5});
        r.push_back(rec(std::to_string(i), l, l));
        r.back().b_on_a = r.back().a_on_b = CrossScore{-3.0, 3};
    }
    const CompareSummary s = summarize(r);
    EXPECT_DOUBLE_EQ(*s.exact_match_rate, 1.0);
    EXPECT_EQ(s.diverged, 0);
    EXPECT_FALSE(s.divergence.mean.has_value());
    EXPECT_DOUBLE_EQ(*s.delta_b_on_a, 0.0);
    EXPECT_DOUBLE_EQ(*s.delta_a_on_b, 0.0);
    EXPECT_DOUBLE_EQ(*s.length_ratio, 1.0);
}

TEST(CompareReport, ParseGates) {
    const std::vector<Gate> g =
        parse_gates({"match<0.9", " divergence >= 4 , length_ratio<=1.5", "logprob_delta<-0.1"});
    ASSERT_EQ(g.size(), 4u);
    EXPECT_EQ(g[0].metric, "match");
    EXPECT_EQ(g[0].op, "<");
    EXPECT_DOUBLE_EQ(g[0].threshold, 0.9);
    EXPECT_EQ(g[1].expr, "divergence >= 4");
    EXPECT_EQ(g[1].op, ">=");
    EXPECT_EQ(g[2].op, "<=");
    EXPECT_DOUBLE_EQ(g[3].threshold, -0.1);
    for (const char* bad : {"foo<1", "match=0.9", "match<abc", "", "match<", "<0.9", "match<0.9x", "match<inf"}) {
        try {
            parse_gates({bad});
            ADD_FAILURE() << "accepted '" << bad << "'";
        } catch (const UsageError& e) {
            test::expect_has(e.what(), {"--fail-if", "match, divergence, logprob_delta", "< <= > >="});
        }
    }
    try {
        parse_gates({"foo<1"});
    } catch (const UsageError& e) {
        test::expect_has(e.what(), {"'foo<1'", "unknown metric 'foo'"});
    }
}

TEST(CompareReport, EvaluateGates) {
    const CompareSummary s = summarize(five_records());  // match 0.5, divergence 1.5, delta -0.5
    const std::vector<GateResult> r =
        evaluate_gates(parse_gates({"match<0.9", "match<0.5", "match<=0.5", "divergence<1", "logprob_delta<-0.2",
                                    "error_rate_b>0.1", "filtered_rate_b>0.5", "length_ratio>1.2"}),
                       s);
    const bool want[] = {true, false, true, false, true, true, false, false};
    ASSERT_EQ(r.size(), 8u);
    for (size_t i = 0; i < r.size(); ++i) EXPECT_EQ(r[i].failed, want[i]) << r[i].gate.expr;
    EXPECT_DOUBLE_EQ(*r[0].value, 0.5);

    // No record diverged: a divergence gate passes; nothing completed by both: a match gate fails.
    CompareSummary equal;
    equal.records = equal.both_ok = 3;
    equal.exact_match_rate = 1.0;
    EXPECT_FALSE(evaluate_gates(parse_gates({"divergence<5"}), equal)[0].failed);
    CompareSummary none;
    none.records = 3;
    const GateResult m = evaluate_gates(parse_gates({"match<0.9"}), none)[0];
    EXPECT_TRUE(m.failed);
    EXPECT_NE(m.note.find("no record was completed by both"), std::string::npos);
    EXPECT_TRUE(evaluate_gates(parse_gates({"divergence<5"}), none)[0].failed);
}

TEST(CompareReport, HtmlEscapesRecordText) {
    EXPECT_EQ(html_escape("<a href=\"x\">&'</a>"), "&lt;a href=&#34;x&#34;&gt;&amp;&#39;&lt;/a&gt;");
    std::vector<CompareRecord> r = five_records();
    r[2] = rec("<id>", gen_line("<id>", "x<script>alert(1)</script>", {5}, {-1}),
               gen_line("<id>", "<b>bold</b> & more", {6}, {-1}));
    r[2].prompt_preview = "say <script>";
    r.push_back(rec("nl", gen_line("nl", "ab\ncd", {1, 2}, {-1, -1}), gen_line("nl", "abxd", {1, 3}, {-1, -1})));
    const CompareReport report = build_compare_report("a<1>.h5", "b&.gguf", r, parse_gates({"match<0.9"}));
    const std::string h = compare_report_html(report, 10);
    EXPECT_EQ(h.find("<script"), std::string::npos);
    EXPECT_EQ(h.find("<b>bold"), std::string::npos);
    test::expect_has(h, {"&lt;script&gt;alert(1)&lt;/script&gt;", "b&gt;bold&lt;/b&gt; &amp; more", "a&lt;1&gt;.h5",
                         "b&amp;.gguf", "say &lt;script&gt;", "id &lt;id&gt;", "B FAILED a gate", "<mark>"});
    // r2: the texts part after "ab": the common prefix is plain, the next character marked.
    test::expect_has(h, {"ab<mark>c</mark>", "ab<mark>x</mark>"});
    // A newline where the texts part is marked with a sign; tokens are shown as JSON strings.
    test::expect_has(h, {"ab<mark>&#8629;\n</mark>", "A <code>&#34;t2&#34;</code> (id 2"});
    // Only max_records differing records are shown.
    test::expect_has(compare_report_html(report, 1), {"(1 of 4 shown)"});
}

TEST(CompareReport, JsonKeys) {
    const CompareReport report = build_compare_report("A.h5", "B.gguf", five_records(), parse_gates({"match<0.9"}));
    const json j = compare_report_json(report);
    EXPECT_EQ(j["records"], 5);
    EXPECT_EQ(j["both_ok"], 4);
    EXPECT_DOUBLE_EQ(j["exact_match_rate"].get<double>(), 0.5);
    EXPECT_EQ(j["first_divergence"]["diverged"], 2);
    EXPECT_DOUBLE_EQ(j["logprob"]["delta_b_on_a"].get<double>(), -0.5);
    EXPECT_EQ(j["a"]["model"], "A.h5");
    EXPECT_DOUBLE_EQ(j["b"]["error_rate"].get<double>(), 0.2);
    EXPECT_EQ(j["b"]["finish_reason"]["stop"], 4);
    EXPECT_EQ(j["gates"][0]["failed"], true);
    EXPECT_EQ(j["gates_failed"], true);
    ASSERT_EQ(j["per_record"].size(), 5u);
    EXPECT_EQ(j["per_record"][1]["first_divergence"], 3);
    EXPECT_TRUE(j["per_record"][0]["first_divergence"].is_null());
    EXPECT_EQ(j["per_record"][4]["status_b"], "error");
    EXPECT_DOUBLE_EQ(j["per_record"][1]["logprob_b_on_a"].get<double>(), -1.0);
}

TEST(CompareInputs, RewritesPromptsOfEachFormat) {
    const std::string dir = test::temp_dir();
    write(dir + "/p.txt", "first prompt\n\n  \nsecond\r\n");
    EXPECT_EQ(write_compare_prompts(dir + "/p.txt", InputFormat::input_format_auto, dir + "/t.jsonl"), 2);
    std::vector<json> t = read_lines(dir + "/t.jsonl");
    ASSERT_EQ(t.size(), 2u);
    EXPECT_EQ(t[0], (json{{"id", "1"}, {"prompt", "first prompt"}, {"logprobs", true}}));
    EXPECT_EQ(t[1]["id"], "4");  // the line number, as generate names a .txt record
    EXPECT_EQ(t[1]["prompt"], "second");

    write(dir + "/p.jsonl",
          "{\"id\": 7, \"prompt\": \"x\", \"logprobs\": false}\n{\"messages\": [{\"role\": \"user\", \"content\": "
          "\"hi\"}]}\nnot json\n");
    EXPECT_EQ(write_compare_prompts(dir + "/p.jsonl", InputFormat::input_format_auto, dir + "/j.jsonl"), 3);
    std::ifstream in(dir + "/j.jsonl");
    std::string l1, l2, l3;
    std::getline(in, l1), std::getline(in, l2), std::getline(in, l3);
    EXPECT_EQ(json::parse(l1), (json{{"id", 7}, {"prompt", "x"}, {"logprobs", true}}));
    EXPECT_EQ(json::parse(l2)["id"], "2");
    EXPECT_EQ(l3, "not json");  // left for generate to report as an error line
    const CompareRecordIds ids = read_compare_record_ids(dir + "/j.jsonl");
    EXPECT_EQ(ids.ids, (std::vector<std::string>{"7", "2", ""}));

    write(dir + "/p.openai",
          "{\"custom_id\": \"c1\", \"method\": \"POST\", \"url\": \"/v1/chat/completions\", \"body\": {\"messages\": "
          "[{\"role\": \"user\", \"content\": \"hi\"}], \"max_completion_tokens\": 5}}\n");
    write_compare_prompts(dir + "/p.openai", InputFormat::input_format_auto, dir + "/o.jsonl");
    const json o = read_lines(dir + "/o.jsonl").at(0);
    EXPECT_EQ(o["id"], "c1");
    EXPECT_EQ(o["max_completion_tokens"], 5);
    EXPECT_EQ(o["logprobs"], true);
    EXPECT_FALSE(o.contains("custom_id") || o.contains("body"));
}

TEST(CompareInputs, CrossScoreInputAndRecords) {
    const std::string dir = test::temp_dir();
    write(dir + "/prompts.jsonl",
          "{\"id\": \"a\", \"prompt\": \"one\"}\nbad line\n{\"id\": \"c\", \"prompt\": \"three\"}\n");
    // generate --order finished may write in any order; error lines name their line.
    write(dir + "/a.jsonl", gen_line("c", "z", {9, 2}, {-1, -2}).dump() + "\n" +
                                json{{"line", 2}, {"error", "malformed JSON"}}.dump() + "\n" +
                                gen_line("a", "y", {4}, {-0.5}).dump() + "\n");
    write(dir + "/b.jsonl", gen_line("a", "y", {4}, {-0.5}).dump() + "\n" +
                                json{{"line", 2}, {"error", "malformed JSON"}}.dump() + "\n" +
                                gen_line("c", "zz", {9, 3}, {-1, -1}).dump() + "\n");
    EXPECT_EQ(write_cross_score_input(dir + "/prompts.jsonl", dir + "/a.jsonl", dir + "/in.jsonl"), 2);
    const std::vector<json> in = read_lines(dir + "/in.jsonl");
    ASSERT_EQ(in.size(), 2u);
    EXPECT_EQ(in[0], (json{{"id", "a"}, {"prompt", "one"}, {"completion", {4}}}));
    EXPECT_EQ(in[1]["completion"], (json{9, 2}));
    write(dir + "/b_on_a.jsonl",
          "{\"id\": \"c\", \"completion_logprobs\": [], \"total_logprob\": -5.0, "
          "\"tokens_scored\": 2}\n");
    const std::vector<CompareRecord> r = read_compare_records(
        {dir + "/prompts.jsonl", dir + "/a.jsonl", dir + "/b.jsonl", dir + "/b_on_a.jsonl", dir + "/none.jsonl"});
    ASSERT_EQ(r.size(), 3u);
    EXPECT_EQ(r[0].id, "a");
    EXPECT_EQ(r[0].prompt_preview, "one");
    EXPECT_TRUE(r[0].a.ok && r[0].b.ok && record_figures(r[0]).equal);
    EXPECT_TRUE(r[1].a.error && r[1].b.error);
    EXPECT_EQ(r[2].line, 3);
    EXPECT_EQ(record_figures(r[2]).first_divergence, 1);
    ASSERT_TRUE(r[2].b_on_a.has_value());
    EXPECT_DOUBLE_EQ(r[2].b_on_a->total_logprob, -5.0);
    EXPECT_FALSE(r[2].a_on_b.has_value());
    // A line that names no record of the prompts is an error naming the file and line.
    write(dir + "/x.jsonl", gen_line("nope", "y", {4}, {-0.5}).dump() + "\n");
    const std::string msg = test::error_of([&] {
        read_compare_records({dir + "/prompts.jsonl", dir + "/x.jsonl", dir + "/b.jsonl", "", ""});
    });
    test::expect_has(msg, {dir + "/x.jsonl line 1", "id 'nope'"});
}
