// The figures, gates and report.json of `gridlm compare` (see compare_report.h); the HTML page is
// in compare_html.cpp.
#include "launch/compare_report.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "engine/core/error.h"
#include "launch/commands.h"
#include "launch/compare_inputs.h"

namespace gridlm {

using json = nlohmann::ordered_json;

namespace {

json opt(const std::optional<double>& v) { return v ? json(*v) : json(nullptr); }
json opt(const std::optional<int64_t>& v) { return v ? json(*v) : json(nullptr); }

std::string trim(std::string_view s) {
    const size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
    return b == std::string_view::npos ? std::string() : std::string(s.substr(b, e - b + 1));
}

// What a prompts record asks, in a line or two for the page: its prompt, or its last message.
std::string prompt_preview(const std::string& line) {
    json j = json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return "";
    if (auto p = j.find("prompt"); p != j.end()) return p->is_string() ? p->get<std::string>() : p->dump();
    auto m = j.find("messages");
    if (m == j.end() || !m->is_array() || m->empty()) return "";
    const json& last = m->back();
    if (!last.is_object()) return "";
    auto c = last.find("content");
    const std::string role = last.value("role", std::string("?"));
    return role + ": " + (c == last.end() ? std::string() : c->is_string() ? c->get<std::string>() : c->dump());
}

std::string side_status(const CompareSide& s) {
    if (!s.present) return "missing";
    if (s.error) return "error";
    if (s.ok) return "ok";
    return s.filtered ? "filtered" : "no_text";
}

std::optional<double> mean_of(const std::vector<double>& v) {
    if (v.empty()) return std::nullopt;
    double sum = 0.0;
    for (double x : v) sum += x;
    return sum / (double)v.size();
}

json distribution_json(const Distribution& d) {
    return {{"count", d.count}, {"mean", opt(d.mean)}, {"p50", opt(d.p50)}, {"p90", opt(d.p90)}};
}

json side_json(const std::string& model, const SideSummary& s) {
    json fr = json::object();
    for (const auto& [k, v] : s.finish_reasons) fr[k] = v;
    return {{"model", model},
            {"ok", s.ok},
            {"errors", s.errors},
            {"error_rate", s.error_rate},
            {"filtered", s.filtered},
            {"filtered_rate", s.filtered_rate},
            {"missing", s.missing},
            {"finish_reason", std::move(fr)},
            {"length", distribution_json(s.length)}};
}

std::string fmt(double v) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%.6g", v);
    return buf;
}

}  // namespace

CompareSide compare_side_from_line(const json& line) {
    CompareSide s;
    s.present = true;
    if (auto e = line.find("error"); e != line.end()) {
        s.error = true;
        s.error_message = e->is_string() ? e->get<std::string>() : e->dump();
    }
    s.filtered = line.contains("filter");
    if (auto t = line.find("text"); !s.error && t != line.end() && t->is_string()) {
        s.ok = true;
        s.text = t->get<std::string>();
    }
    if (auto f = line.find("finish_reason"); f != line.end() && f->is_string()) s.finish_reason = f->get<std::string>();
    if (auto lps = line.find("logprobs"); lps != line.end() && lps->is_array()) {
        s.has_logprobs = true;
        for (const json& t : *lps) {
            s.token_ids.push_back(t.at("token_id").get<int32_t>());
            s.tokens.push_back(t.value("token", std::string()));
            s.logprobs.push_back(t.at("logprob").get<double>());
        }
        s.length = (int64_t)s.token_ids.size();
    } else if (auto u = line.find("usage"); u != line.end() && u->is_object()) {
        s.length = u->value("completion_tokens", int64_t{0});
    }
    return s;
}

RecordFigures record_figures(const CompareRecord& r) {
    RecordFigures f;
    f.both_ok = r.a.ok && r.b.ok;
    f.equal = f.both_ok && r.a.text == r.b.text;
    if (f.both_ok && r.a.has_logprobs && r.b.has_logprobs) {
        const std::vector<int32_t>&x = r.a.token_ids, &y = r.b.token_ids;
        const size_t n = std::min(x.size(), y.size());
        size_t i = 0;
        while (i < n && x[i] == y[i]) ++i;
        if (i < n || x.size() != y.size()) f.first_divergence = (int64_t)i;
    }
    if (r.a.ok && r.a.has_logprobs) f.a_on_a = mean_of(r.a.logprobs);
    if (r.b.ok && r.b.has_logprobs) f.b_on_b = mean_of(r.b.logprobs);
    if (r.b_on_a && r.b_on_a->tokens > 0) f.b_on_a = r.b_on_a->total_logprob / (double)r.b_on_a->tokens;
    if (r.a_on_b && r.a_on_b->tokens > 0) f.a_on_b = r.a_on_b->total_logprob / (double)r.a_on_b->tokens;
    return f;
}

Distribution distribution_of(std::vector<double> v) {
    Distribution d;
    d.count = (int64_t)v.size();
    if (v.empty()) return d;
    std::sort(v.begin(), v.end());
    d.mean = mean_of(v);
    auto rank = [&](double q) { return v[(size_t)std::max(0.0, std::ceil(q * (double)v.size()) - 1.0)]; };
    d.p50 = rank(0.5);
    d.p90 = rank(0.9);
    return d;
}

std::vector<HistogramBin> pow2_histogram(const std::vector<int64_t>& values) {
    std::vector<HistogramBin> bins;
    for (int64_t v : values) {
        GRIDLM_ASSERT(v >= 0);
        size_t k = 0;  // bin k holds [2^(k-1), 2^k - 1]; bin 0 holds 0
        while (k < 63 && v >= ((int64_t)1 << k)) ++k;
        while (bins.size() <= k) {
            const size_t j = bins.size();
            bins.push_back({j == 0 ? 0 : (int64_t)1 << (j - 1), j == 0 ? 0 : ((int64_t)1 << j) - 1, 0});
        }
        ++bins[k].count;
    }
    return bins;
}

CompareSummary summarize(const std::vector<CompareRecord>& records) {
    CompareSummary s;
    s.records = (int64_t)records.size();
    std::vector<double> len_a, len_b, div;
    std::vector<int64_t> div_int;
    double sum_a_on_a = 0, sum_b_on_a = 0, sum_a_on_b = 0, sum_b_on_b = 0, both_len_a = 0, both_len_b = 0;
    auto side = [](const CompareSide& x, SideSummary& out, std::vector<double>& lengths) {
        if (!x.present) ++out.missing;
        if (x.error) ++out.errors;
        if (x.filtered) ++out.filtered;
        if (!x.ok) return;
        ++out.ok;
        if (!x.finish_reason.empty()) ++out.finish_reasons[x.finish_reason];
        lengths.push_back((double)x.length);
    };
    for (const CompareRecord& r : records) {
        side(r.a, s.a, len_a);
        side(r.b, s.b, len_b);
        const RecordFigures f = record_figures(r);
        if (!f.both_ok) continue;
        ++s.both_ok;
        both_len_a += (double)r.a.length;
        both_len_b += (double)r.b.length;
        if (f.equal) ++s.exact_match;
        if (f.first_divergence) {
            ++s.diverged;
            div.push_back((double)*f.first_divergence);
            div_int.push_back(*f.first_divergence);
        }
        // Each pair of means over the same tokens: the cross score must cover the whole completion.
        if (f.a_on_a && f.b_on_a && f.a_on_b && f.b_on_b && r.b_on_a->tokens == r.a.length &&
            r.a_on_b->tokens == r.b.length) {
            ++s.logprob_records;
            s.logprob_tokens_a += r.a.length;
            s.logprob_tokens_b += r.b.length;
            sum_a_on_a += *f.a_on_a * (double)r.a.length;
            sum_b_on_a += r.b_on_a->total_logprob;
            sum_a_on_b += r.a_on_b->total_logprob;
            sum_b_on_b += *f.b_on_b * (double)r.b.length;
        }
    }
    if (s.records > 0) {
        s.a.error_rate = (double)s.a.errors / (double)s.records;
        s.b.error_rate = (double)s.b.errors / (double)s.records;
        s.a.filtered_rate = (double)s.a.filtered / (double)s.records;
        s.b.filtered_rate = (double)s.b.filtered / (double)s.records;
    }
    s.a.length = distribution_of(len_a);
    s.b.length = distribution_of(len_b);
    if (s.both_ok > 0) s.exact_match_rate = (double)s.exact_match / (double)s.both_ok;
    s.divergence = distribution_of(div);
    s.divergence_histogram = pow2_histogram(div_int);
    if (s.logprob_tokens_a > 0 && s.logprob_tokens_b > 0) {
        s.a_on_a = sum_a_on_a / (double)s.logprob_tokens_a;
        s.b_on_a = sum_b_on_a / (double)s.logprob_tokens_a;
        s.a_on_b = sum_a_on_b / (double)s.logprob_tokens_b;
        s.b_on_b = sum_b_on_b / (double)s.logprob_tokens_b;
        s.delta_b_on_a = *s.b_on_a - *s.a_on_a;
        s.delta_a_on_b = *s.a_on_b - *s.b_on_b;
    }
    if (both_len_a > 0) s.length_ratio = both_len_b / both_len_a;
    return s;
}

const std::vector<std::pair<std::string, std::string>>& gate_metrics() {
    static const std::vector<std::pair<std::string, std::string>> m = {
        {"match", "exact-match rate of the texts over the records both models completed (0..1)"},
        {"divergence", "mean first divergence (token index) over the records whose tokens differ"},
        {"logprob_delta", "mean log-prob per token of B on A's completions minus A's own (nats; < 0: B disagrees)"},
        {"error_rate_b", "share of records that are error lines in B's output (0..1)"},
        {"filtered_rate_b", "share of records a filter rule marked in B's output (0..1)"},
        {"length_ratio", "mean completion length of B over that of A, records both completed"},
    };
    return m;
}

std::vector<Gate> parse_gates(const std::vector<std::string>& specs) {
    std::string metric_names;
    for (const auto& [name, what] : gate_metrics()) metric_names += (metric_names.empty() ? "" : ", ") + name;
    std::vector<Gate> gates;
    for (const std::string& spec : specs) {
        size_t start = 0;
        for (;;) {
            const size_t comma = spec.find(',', start);
            const std::string expr = trim(std::string_view(spec).substr(start, comma - start));
            auto bad = [&](const std::string& why) {
                return UsageError(str("--fail-if '", expr, "': ", why,
                                      " (expected METRIC OP NUMBER, e.g. 'match<0.9'; ", "METRIC: ", metric_names,
                                      "; OP: < <= > >=)"));
            };
            size_t i = 0;
            while (i < expr.size() && (std::isalnum((unsigned char)expr[i]) || expr[i] == '_')) ++i;
            Gate g;
            g.expr = expr;
            g.metric = expr.substr(0, i);
            if (g.metric.empty()) throw bad("no metric");
            if (std::none_of(gate_metrics().begin(), gate_metrics().end(),
                             [&](const auto& m) { return m.first == g.metric; }))
                throw bad(str("unknown metric '", g.metric, "'"));
            while (i < expr.size() && expr[i] == ' ') ++i;
            for (const char* op : {"<=", ">=", "<", ">"}) {
                if (expr.compare(i, std::strlen(op), op) == 0) {
                    g.op = op;
                    break;
                }
            }
            if (g.op.empty()) throw bad("no comparison operator after the metric");
            const std::string number = trim(expr.substr(i + g.op.size()));
            char* end = nullptr;
            g.threshold = number.empty() ? 0.0 : std::strtod(number.c_str(), &end);
            if (number.empty() || end != number.c_str() + number.size() || !std::isfinite(g.threshold))
                throw bad(str("'", number, "' is not a number"));
            gates.push_back(std::move(g));
            if (comma == std::string::npos) break;
            start = comma + 1;
        }
    }
    return gates;
}

std::vector<GateResult> evaluate_gates(const std::vector<Gate>& gates, const CompareSummary& s) {
    std::vector<GateResult> out;
    for (const Gate& g : gates) {
        GateResult r{g, std::nullopt, false, ""};
        if (g.metric == "match") r.value = s.exact_match_rate;
        if (g.metric == "divergence") r.value = s.divergence.mean;
        if (g.metric == "logprob_delta") r.value = s.delta_b_on_a;
        if (g.metric == "length_ratio") r.value = s.length_ratio;
        if (s.records > 0 && g.metric == "error_rate_b") r.value = s.b.error_rate;
        if (s.records > 0 && g.metric == "filtered_rate_b") r.value = s.b.filtered_rate;
        if (r.value) {
            const double v = *r.value, t = g.threshold;
            r.failed = g.op == "<" ? v < t : g.op == "<=" ? v <= t : g.op == ">" ? v > t : v >= t;
        } else if (g.metric == "divergence" && s.both_ok > 0) {
            r.note = "no record diverged";
        } else {
            r.failed = true;
            r.note = s.both_ok == 0 ? "no record was completed by both models" : "no value to compare";
        }
        out.push_back(std::move(r));
    }
    return out;
}

bool CompareReport::gates_failed() const {
    return std::any_of(gates.begin(), gates.end(), [](const GateResult& g) { return g.failed; });
}

std::vector<CompareRecord> read_compare_records(const CompareFiles& files) {
    const CompareRecordIds ids = read_compare_record_ids(files.prompts);
    std::vector<CompareRecord> records(ids.ids.size());
    {
        std::ifstream in(files.prompts, std::ios::binary);
        std::string line;
        for (size_t i = 0; i < records.size() && std::getline(in, line); ++i) {
            records[i].id = ids.ids[i];
            records[i].line = (int64_t)i + 1;
            records[i].prompt_preview = prompt_preview(line);
        }
    }
    auto side = [&](const std::string& path, CompareSide CompareRecord::*member) {
        for_each_output_line(path, ids, [&](size_t i, const json& line) {
            if ((records[i].*member).present)
                throw Error(str(path, ": two lines for record ", i + 1, " (id '", records[i].id, "')"));
            records[i].*member = compare_side_from_line(line);
        });
    };
    side(files.a_output, &CompareRecord::a);
    side(files.b_output, &CompareRecord::b);
    auto cross = [&](const std::string& path, std::optional<CrossScore> CompareRecord::*member) {
        std::error_code ec;
        if (path.empty() || !std::filesystem::exists(path, ec)) return;
        for_each_output_line(path, ids, [&](size_t i, const json& line) {
            if (line.contains("error") || !line.contains("completion_logprobs")) return;
            records[i].*member =
                CrossScore{line.at("total_logprob").get<double>(), line.at("tokens_scored").get<int64_t>()};
        });
    };
    cross(files.b_on_a, &CompareRecord::b_on_a);
    cross(files.a_on_b, &CompareRecord::a_on_b);
    return records;
}

CompareReport build_compare_report(std::string a_model, std::string b_model, std::vector<CompareRecord> records,
                                   const std::vector<Gate>& gates) {
    CompareReport r;
    r.a_model = std::move(a_model);
    r.b_model = std::move(b_model);
    r.records = std::move(records);
    r.summary = summarize(r.records);
    r.gates = evaluate_gates(gates, r.summary);
    return r;
}

json compare_report_json(const CompareReport& report) {
    const CompareSummary& s = report.summary;
    json hist = json::array();
    for (const HistogramBin& b : s.divergence_histogram)
        hist.push_back({{"from", b.from}, {"to", b.to}, {"count", b.count}});
    json gates = json::array();
    for (const GateResult& g : report.gates)
        gates.push_back({{"expr", g.gate.expr},
                         {"metric", g.gate.metric},
                         {"op", g.gate.op},
                         {"threshold", g.gate.threshold},
                         {"value", opt(g.value)},
                         {"failed", g.failed},
                         {"note", g.note}});
    json per_record = json::array();
    for (const CompareRecord& r : report.records) {
        const RecordFigures f = record_figures(r);
        per_record.push_back({{"id", r.id},
                              {"line", r.line},
                              {"equal", f.equal},
                              {"first_divergence", opt(f.first_divergence)},
                              {"status_a", side_status(r.a)},
                              {"status_b", side_status(r.b)},
                              {"len_a", r.a.length},
                              {"len_b", r.b.length},
                              {"finish_a", r.a.finish_reason},
                              {"finish_b", r.b.finish_reason},
                              {"logprob_a_on_a", opt(f.a_on_a)},
                              {"logprob_b_on_a", opt(f.b_on_a)},
                              {"logprob_a_on_b", opt(f.a_on_b)},
                              {"logprob_b_on_b", opt(f.b_on_b)}});
    }
    return {{"records", s.records},
            {"both_ok", s.both_ok},
            {"exact_match", s.exact_match},
            {"exact_match_rate", opt(s.exact_match_rate)},
            {"first_divergence",
             {{"diverged", s.diverged},
              {"mean", opt(s.divergence.mean)},
              {"median", opt(s.divergence.p50)},
              {"p90", opt(s.divergence.p90)},
              {"histogram", std::move(hist)}}},
            {"logprob",
             {{"records", s.logprob_records},
              {"tokens_a", s.logprob_tokens_a},
              {"tokens_b", s.logprob_tokens_b},
              {"a_on_a", opt(s.a_on_a)},
              {"b_on_a", opt(s.b_on_a)},
              {"a_on_b", opt(s.a_on_b)},
              {"b_on_b", opt(s.b_on_b)},
              {"delta_b_on_a", opt(s.delta_b_on_a)},
              {"delta_a_on_b", opt(s.delta_a_on_b)}}},
            {"length_ratio", opt(s.length_ratio)},
            {"a", side_json(report.a_model, s.a)},
            {"b", side_json(report.b_model, s.b)},
            {"gates", std::move(gates)},
            {"gates_failed", report.gates_failed()},
            {"per_record", std::move(per_record)}};
}

std::string gate_lines(const std::vector<GateResult>& gates) {
    std::string out;
    for (const GateResult& g : gates) {
        out += str("gate ", g.gate.expr, ": ", g.gate.metric, " = ", g.value ? fmt(*g.value) : std::string("none"),
                   g.note.empty() ? "" : " (" + g.note + ")", " -> ", g.failed ? "FAILED" : "passed", "\n");
    }
    return out;
}

}  // namespace gridlm
