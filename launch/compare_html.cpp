// report.html of `gridlm compare` (see compare_report.h): one page with its style inline and no
// scripts or external assets, so it can be mailed, archived as a CI artefact or opened offline.
// Every text that comes from the records or the command line goes through html_escape.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <string>

#include "engine/core/error.h"
#include "launch/compare_report.h"

namespace gridlm {
namespace {

const char* style = R"(
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 1100px; color: #1d2330; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid #d5d9e0; }
table { border-collapse: collapse; margin: 6px 0; } td, th { padding: 3px 10px; border: 1px solid #d5d9e0; text-align: left; }
th { background: #f1f3f6; font-weight: 600; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
.models { color: #4a5263; } code { font-size: 13px; }
.verdict { display: inline-block; padding: 6px 14px; border-radius: 4px; font-weight: 600; margin: 10px 0; }
.pass { background: #dff3e4; color: #16602b; } .fail { background: #fbe0e0; color: #8a1c1c; } .none { background: #eef0f3; }
.bar { display: inline-block; height: 12px; background: #5b7bd5; vertical-align: middle; }
.bar.b { background: #d58a3b; } .barcell { width: 420px; }
.rec { border: 1px solid #d5d9e0; border-radius: 4px; margin: 12px 0; padding: 8px 12px; }
.rec .head { color: #4a5263; margin-bottom: 6px; } .prompt { color: #4a5263; white-space: pre-wrap; font-size: 13px; }
.side { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; }
.text { white-space: pre-wrap; font: 13px/1.4 ui-monospace, monospace; background: #f7f8fa; padding: 6px; }
mark { background: #ffd866; } .rest { background: #fde9c9; } .err { color: #8a1c1c; }
)";

std::string num(const std::optional<double>& v, const char* format = "%.4f") {
    if (!v) return "&ndash;";
    char buf[64];
    std::snprintf(buf, sizeof(buf), format, *v);
    return buf;
}

std::string pct(const std::optional<double>& v) { return v ? num(*v * 100.0, "%.1f") + "%" : "&ndash;"; }

std::string bar(double fraction, bool b_side = false) {
    const int px = (int)std::lround(std::clamp(fraction, 0.0, 1.0) * 400.0);
    return str("<span class=\"bar", b_side ? " b" : "", "\" style=\"width:", std::max(px, fraction > 0 ? 1 : 0),
               "px\"></span>");
}

// The byte where texts a and b first differ, moved back to the start of a UTF-8 character.
size_t common_prefix(const std::string& a, const std::string& b) {
    size_t i = 0;
    while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
    while (i > 0 && i < a.size() && ((unsigned char)a[i] & 0xC0) == 0x80) --i;
    return i;
}

// A completion with its first `prefix` bytes plain, the next character marked and the rest shaded.
std::string marked_text(const std::string& text, size_t prefix) {
    size_t next = prefix;
    if (next < text.size()) {
        ++next;
        while (next < text.size() && ((unsigned char)text[next] & 0xC0) == 0x80) ++next;
    }
    // A newline or the end of the text would be an invisible mark: show a sign for it.
    const std::string at = text.substr(prefix, next - prefix);
    const std::string shown = at == "\n" ? "&#8629;\n" : at.empty() ? "&#8718;" : html_escape(at);
    return str(html_escape(text.substr(0, prefix)), "<mark>", shown, "</mark><span class=\"rest\">",
               html_escape(text.substr(next)), "</span>");
}

std::string token_at(const CompareSide& s, const std::optional<int64_t>& i) {
    if (!i || *i >= (int64_t)s.token_ids.size()) return "(end)";
    const auto k = (size_t)*i;
    // As a JSON string, so that spaces and newlines show.
    const std::string quoted =
        nlohmann::json(s.tokens[k]).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    return str("<code>", html_escape(quoted), "</code> (id ", s.token_ids[k], ", logprob ", num(s.logprobs[k], "%.3f"),
               ")");
}

std::string finish(const CompareSide& s) {
    return s.finish_reason.empty() ? std::string() : str(" (", html_escape(s.finish_reason), ")");
}

std::string side_text(const CompareSide& s, size_t prefix) {
    if (!s.present) return "<div class=\"text err\">(no line)</div>";
    if (s.error) return str("<div class=\"text err\">error: ", html_escape(s.error_message), "</div>");
    if (!s.ok) return "<div class=\"text err\">(no text: filtered)</div>";
    return str("<div class=\"text\">", marked_text(s.text, prefix), "</div>");
}

void summary_table(std::string& h, const CompareReport& r) {
    const CompareSummary& s = r.summary;
    h += "<h2>Summary</h2><table>";
    auto row = [&](const std::string& name, const std::string& value) {
        h += str("<tr><th>", name, "</th><td class=\"n\">", value, "</td></tr>");
    };
    row("records", str(s.records));
    row("completed by both", str(s.both_ok));
    row("exact match (text)", str(s.exact_match, " / ", s.both_ok, " = ", pct(s.exact_match_rate)));
    row("token ids diverge", str(s.diverged));
    row("first divergence mean / median / p90",
        str(num(s.divergence.mean, "%.1f"), " / ", num(s.divergence.p50, "%.0f"), " / ",
            num(s.divergence.p90, "%.0f")));
    row("length ratio B / A", num(s.length_ratio, "%.3f"));
    h += "</table>";

    h += str("<h2>Log-probability per token (nats), over ", s.logprob_records,
             " records</h2><table><tr><th>model \\ text</th><th>A's completions</th><th>B's completions</th></tr>");
    h += str("<tr><th>A</th><td class=\"n\">", num(s.a_on_a), "</td><td class=\"n\">", num(s.a_on_b), "</td></tr>");
    h += str("<tr><th>B</th><td class=\"n\">", num(s.b_on_a), "</td><td class=\"n\">", num(s.b_on_b), "</td></tr>");
    h += str("<tr><th>delta</th><td class=\"n\">B &minus; A: ", num(s.delta_b_on_a, "%+.4f"),
             "</td><td class=\"n\">A &minus; B: ", num(s.delta_a_on_b, "%+.4f"), "</td></tr></table>");

    h += "<h2>Per model</h2><table><tr><th></th><th>A</th><th>B</th></tr>";
    auto both = [&](const std::string& name, const std::string& a, const std::string& b) {
        h += str("<tr><th>", name, "</th><td class=\"n\">", a, "</td><td class=\"n\">", b, "</td></tr>");
    };
    both("completed", str(s.a.ok), str(s.b.ok));
    both("errors", str(s.a.errors, " (", pct(s.a.error_rate), ")"), str(s.b.errors, " (", pct(s.b.error_rate), ")"));
    both("filtered", str(s.a.filtered, " (", pct(s.a.filtered_rate), ")"),
         str(s.b.filtered, " (", pct(s.b.filtered_rate), ")"));
    both("length mean", num(s.a.length.mean, "%.1f"), num(s.b.length.mean, "%.1f"));
    both("length p50 / p90", str(num(s.a.length.p50, "%.0f"), " / ", num(s.a.length.p90, "%.0f")),
         str(num(s.b.length.p50, "%.0f"), " / ", num(s.b.length.p90, "%.0f")));
    h += "</table>";
}

void gates_section(std::string& h, const CompareReport& r) {
    h += "<h2>Gates</h2>";
    if (r.gates.empty()) {
        h += "<p>No <code>--fail-if</code> gate was given.</p>";
        return;
    }
    h += "<table><tr><th>gate (true = B fails)</th><th>value</th><th>result</th></tr>";
    for (const GateResult& g : r.gates) {
        h += str("<tr><td><code>", html_escape(g.gate.expr), "</code></td><td class=\"n\">", num(g.value),
                 g.note.empty() ? "" : " (" + html_escape(g.note) + ")", "</td><td class=\"",
                 g.failed ? "fail" : "pass", "\">", g.failed ? "FAILED" : "passed", "</td></tr>");
    }
    h += "</table>";
}

void distributions(std::string& h, const CompareReport& r) {
    const CompareSummary& s = r.summary;
    h += "<h2>First divergence (token index)</h2>";
    if (s.divergence_histogram.empty()) {
        h += "<p>No record diverged.</p>";
    } else {
        int64_t top = 1;
        for (const HistogramBin& b : s.divergence_histogram) top = std::max(top, b.count);
        h += "<table><tr><th>tokens</th><th>records</th><th class=\"barcell\"></th></tr>";
        for (const HistogramBin& b : s.divergence_histogram) {
            const std::string range = b.from == b.to ? str(b.from) : str(b.from, "&ndash;", b.to);
            h += str("<tr><td>", range, "</td><td class=\"n\">", b.count, "</td><td class=\"barcell\">",
                     bar((double)b.count / (double)top), "</td></tr>");
        }
        h += "</table>";
    }
    h += "<h2>Finish reasons</h2><table><tr><th>reason</th><th>A</th><th>B</th><th class=\"barcell\"></th></tr>";
    std::map<std::string, std::pair<int64_t, int64_t>> reasons;
    for (const auto& [k, v] : s.a.finish_reasons) reasons[k].first = v;
    for (const auto& [k, v] : s.b.finish_reasons) reasons[k].second = v;
    const double n = (double)std::max<int64_t>(1, s.records);
    for (const auto& [k, v] : reasons) {
        h += str("<tr><td>", html_escape(k), "</td><td class=\"n\">", v.first, "</td><td class=\"n\">", v.second,
                 "</td><td class=\"barcell\">", bar((double)v.first / n), "<br>", bar((double)v.second / n, true),
                 "</td></tr>");
    }
    h += "</table>";
}

void differing_records(std::string& h, const CompareReport& r, size_t max_records) {
    size_t shown = 0, differing = 0;
    std::string body;
    for (const CompareRecord& rec : r.records) {
        const RecordFigures f = record_figures(rec);
        if (f.equal || (!rec.a.ok && !rec.b.ok)) continue;
        if (++differing > max_records) continue;
        ++shown;
        const size_t prefix = f.both_ok ? common_prefix(rec.a.text, rec.b.text) : 0;
        body += str("<div class=\"rec\"><div class=\"head\"><b>id ", html_escape(rec.id), "</b> (line ", rec.line,
                    ") &middot; lengths ", rec.a.length, " / ", rec.b.length);
        if (f.first_divergence) {
            body += str(" &middot; first divergence at token ", *f.first_divergence, ": A ",
                        token_at(rec.a, f.first_divergence), " vs B ", token_at(rec.b, f.first_divergence));
        }
        body += str(" &middot; log-prob/token A on A ", num(f.a_on_a, "%.3f"), ", B on A ", num(f.b_on_a, "%.3f"),
                    ", B on B ", num(f.b_on_b, "%.3f"), ", A on B ", num(f.a_on_b, "%.3f"), "</div>");
        std::string preview =
            rec.prompt_preview.size() > 600 ? rec.prompt_preview.substr(0, 600) + " ..." : rec.prompt_preview;
        if (!preview.empty()) body += str("<div class=\"prompt\">", html_escape(preview), "</div>");
        body += str("<div class=\"side\"><div><b>A</b>", finish(rec.a), side_text(rec.a, prefix), "</div><div><b>B</b>",
                    finish(rec.b), side_text(rec.b, prefix), "</div></div></div>");
    }
    h += str("<h2>Differing records (", shown, " of ", differing, " shown)</h2>");
    if (differing == 0) h += "<p>Every record both models completed has the same text.</p>";
    h += "<p>Marked: the first character where the texts differ; shaded: the rest.</p>";
    h += body;
}

}  // namespace

std::string compare_report_html(const CompareReport& r, size_t max_records) {
    std::string h = str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>gridlm compare: ",
                        html_escape(r.a_model), " vs ", html_escape(r.b_model), "</title><style>", style,
                        "</style></head><body>\n<h1>gridlm compare</h1><div class=\"models\">A: <code>",
                        html_escape(r.a_model), "</code><br>B: <code>", html_escape(r.b_model), "</code></div>\n");
    if (r.gates.empty()) {
        h += "<div class=\"verdict none\">no gates</div>";
    } else {
        h += r.gates_failed() ? "<div class=\"verdict fail\">B FAILED a gate</div>"
                              : "<div class=\"verdict pass\">B passed every gate</div>";
    }
    summary_table(h, r);
    gates_section(h, r);
    distributions(h, r);
    differing_records(h, r, max_records);
    h += "\n</body></html>\n";
    return h;
}

}  // namespace gridlm
