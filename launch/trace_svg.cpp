// `gridlm report`'s picture: the trace as an SVG timeline, one row per rank. Colours are
// presentation attributes (no CSS) so every SVG renderer, ImageMagick's included, draws them.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <map>

#include "engine/core/error.h"
#include "engine/core/text_escape.h"
#include "launch/trace.h"
#include "launch/trace_report.h"

namespace gridlm {

namespace {

using json = nlohmann::ordered_json;

// Per kind (SpanKind order); forward spans with a lane take a lane shade instead.
constexpr const char* kind_fill[n_span_kinds] = {"#2e6bb8", "#f39c12", "#f7dc6f", "#27ae60",
                                                 "#8e44ad", "#d62728", "#8d6e63", "#a0a0a0"};
// Blues alternating dark and light, so neighbouring micro-batches stand apart.
constexpr int n_lane_shades = 8;
constexpr const char* lane_fill[n_lane_shades] = {"#1f4e8c", "#7fb2ea", "#2f6fbf", "#b3d1f3",
                                                  "#163a66", "#5b98dd", "#3d7fd0", "#9dc3ef"};
constexpr bool lane_dark[n_lane_shades] = {true, false, true, false, true, false, true, false};
// Style keys: kinds 0..7, then forward lane shades.
constexpr int n_keys = n_span_kinds + n_lane_shades;

const char* key_fill(int key) { return key < n_span_kinds ? kind_fill[key] : lane_fill[key - n_span_kinds]; }

// Layout in pixels.
constexpr int label_w = 210, right_w = 84, row_pitch = 44, band_h = 26, sched_gap = 3, sched_h = 9;
constexpr int rows_y0 = 70;

std::string fmt(const char* f, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, f, v);
    return buf;
}

std::string fmt_number(double v) {
    if (std::fabs(v) < 1e15 && v == std::floor(v)) return fmt("%.0f", v);
    return std::fabs(v) >= 100 ? fmt("%.1f", v) : fmt("%.3g", v);
}

std::string fmt_duration(double s) {
    if (s >= 1) return fmt("%.3f s", s);
    if (s >= 1e-3) return fmt("%.3f ms", s * 1e3);
    return fmt("%.1f us", s * 1e6);
}

// Cuts to about max_chars (at 11-13 px a character is about 6.5 px wide), never inside a UTF-8
// character (the SVG must stay well-formed).
std::string clip(std::string s, size_t max_chars) {
    if (s.size() <= max_chars || max_chars <= 3) return s;
    size_t cut = max_chars - 3;
    while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;  // a continuation byte
    return s.substr(0, cut) + "...";
}

std::string summary_text(const json& summary) {
    std::string out;
    if (!summary.is_object()) return out;
    for (const auto& [k, v] : summary.items()) {
        std::string val = v.is_number()   ? fmt_number(v.get<double>())
                          : v.is_string() ? v.get<std::string>()
                                          : v.dump(-1, ' ', false, json::error_handler_t::replace);
        out += (out.empty() ? "" : " · ") + k + " " + val;
    }
    return out;
}

// "rank 3: replica 1, stage 1, tp 0" or "rank 3 (dp 1, pp 1, tp 0)" -> the rank, then the rest.
std::pair<std::string, std::string> split_label(const std::string& label) {
    const size_t colon = label.find(": ");
    if (colon != std::string::npos) return {label.substr(0, colon), label.substr(colon + 2)};
    const size_t paren = label.find(" (");
    if (paren != std::string::npos && label.back() == ')')
        return {label.substr(0, paren), label.substr(paren + 2, label.size() - paren - 3)};
    return {label, ""};
}

struct Mapper {
    double x0, w, from, len;
    double x(double t_s) const { return x0 + (t_s - from) / len * w; }
};

struct BandSpan {
    double t0, t1;  // seconds
    int key;
    int lane;  // -1 outside a lane
    const TraceEvent* e;
};

// One band of one row: spans a pixel wide or more as rectangles of their own (lane number inside
// when it fits), narrower ones summed per pixel column and drawn as a stack of their kinds.
void draw_band(std::string& out, const std::vector<BandSpan>& spans, const std::vector<TraceName>& names, double y,
               double h, const Mapper& m) {
    const int n_cols = std::max(1, (int)std::ceil(m.w));
    std::vector<std::array<float, n_keys>> cover(n_cols, std::array<float, n_keys>{});
    std::vector<const BandSpan*> wide;
    std::map<std::pair<int, int>, const BandSpan*> instants;  // (column, key): the first instant there
    for (const BandSpan& s : spans) {
        const double a = std::clamp(m.x(s.t0), m.x0, m.x0 + m.w), b = std::clamp(m.x(s.t1), m.x0, m.x0 + m.w);
        if (s.e->ph == 'i') {
            instants.emplace(std::make_pair(std::min(n_cols - 1, (int)(a - m.x0)), s.key), &s);
            continue;
        }
        if (b - a >= 1) {
            wide.push_back(&s);
            continue;
        }
        // A narrow span: its share of the one or two columns it touches.
        const double ra = a - m.x0, rb = b - m.x0;
        const int ca = std::min(n_cols - 1, (int)ra);
        const int cb = std::min(n_cols - 1, (int)rb);
        if (ca == cb) {
            cover[ca][s.key] += (float)(rb - ra);
        } else {
            cover[ca][s.key] += (float)(ca + 1 - ra);
            cover[cb][s.key] += (float)(rb - cb);
        }
    }
    // Each column as a stack of its kinds, heights in eighths of the band by the share of the
    // column each covers (forward in its most covering lane's shade); equal neighbours merge.
    using Stack = std::vector<std::pair<int, int>>;  // (key, eighths), bottom up
    Stack run;
    int run_start = 0;
    auto flush = [&](int end_col) {
        int below = 0;
        for (const auto& [key, q] : run) {
            out += "<rect x=\"" + fmt("%.1f", m.x0 + run_start) + "\" y=\"" + fmt("%.2f", y + h * (8 - below - q) / 8) +
                   "\" width=\"" + std::to_string(end_col - run_start) + "\" height=\"" + fmt("%.2f", h * q / 8) +
                   "\" fill=\"" + key_fill(key) + "\"/>\n";
            below += q;
        }
    };
    for (int c = 0; c < n_cols; ++c) {
        const auto& cv = cover[c];
        std::array<float, n_span_kinds> by_kind{};
        float total = 0;
        for (int k = 0; k < n_keys; ++k) {
            total += cv[k];
            by_kind[k < n_span_kinds ? k : (int)SpanKind::forward] += cv[k];
        }
        int fwd_key = (int)SpanKind::forward;
        for (int k = n_span_kinds; k < n_keys; ++k)
            if (cv[k] > cv[fwd_key]) fwd_key = k;
        const float scale = total > 1 ? 1 / total : 1;  // overlapping spans
        Stack stack;
        int sum = 0, top = -1;
        for (int k = 0; k < n_span_kinds; ++k) {
            if (by_kind[k] <= 0) continue;
            if (top < 0 || by_kind[k] > by_kind[top]) top = k;
            const int q = (int)std::lround(by_kind[k] * scale * 8);
            if (q > 0) stack.emplace_back(k == (int)SpanKind::forward ? fwd_key : k, q), sum += q;
        }
        // Something happened here, however briefly: three eighths of its main kind, to be seen.
        if (sum == 0 && top >= 0) stack.emplace_back(top == (int)SpanKind::forward ? fwd_key : top, 3);
        if (stack != run) {
            flush(c);
            run = std::move(stack);
            run_start = c;
        }
    }
    flush(n_cols);
    for (const BandSpan* s : wide) {
        const double a = std::clamp(m.x(s->t0), m.x0, m.x0 + m.w), b = std::clamp(m.x(s->t1), m.x0, m.x0 + m.w);
        const std::string lane = s->lane >= 0 ? std::to_string(s->lane) : "";
        out += "<rect x=\"" + fmt("%.1f", a) + "\" y=\"" + fmt("%.1f", y) + "\" width=\"" + fmt("%.1f", b - a) +
               "\" height=\"" + fmt("%.1f", h) + "\" fill=\"" + key_fill(s->key) + "\"";
        if (b - a >= 4) out += " stroke=\"#ffffff\" stroke-width=\"0.6\"";
        out += "><title>" + html_escape(names[s->e->name].name) + (lane.empty() ? "" : ", lane " + lane) + ", " +
               fmt_duration(s->t1 - s->t0) + " from " + fmt("%.6f", s->t0) + " s</title></rect>\n";
        if (!lane.empty() && b - a >= 6 + 7.0 * lane.size() && h >= 12) {
            const bool dark = s->key >= n_span_kinds && lane_dark[s->key - n_span_kinds];
            out += "<text x=\"" + fmt("%.1f", (a + b) / 2) + "\" y=\"" + fmt("%.1f", y + h / 2 + 4) +
                   "\" font-size=\"11\" text-anchor=\"middle\" fill=\"" + (dark ? "#ffffff" : "#10243e") + "\">" +
                   lane + "</text>\n";
        }
    }
    // Instants last, over the spans: a mark taller than the band, one per column and kind.
    for (const auto& [where, s] : instants) {
        out += "<rect x=\"" + fmt("%.1f", m.x0 + where.first - 0.5) + "\" y=\"" + fmt("%.1f", y - 2) +
               "\" width=\"2\" height=\"" + fmt("%.1f", h + 4) + "\" fill=\"" + key_fill(where.second) + "\"><title>" +
               html_escape(names[s->e->name].name) + " at " + fmt("%.6f", s->t0) + " s</title></rect>\n";
    }
}

// Tick spacing of 1, 2 or 5 x 10^k seconds, about one per 110 pixels.
double tick_step(double len_s, double width_px) {
    const double raw = len_s / std::max(1.0, width_px / 110);
    const double mag = std::pow(10.0, std::floor(std::log10(raw)));
    for (double f : {1.0, 2.0, 5.0, 10.0})
        if (f * mag >= raw) return f * mag;
    return 10 * mag;
}

}  // namespace

std::string render_svg(const TraceData& trace, const SvgOptions& opt) {
    const int width = std::clamp(opt.width_px, svg_width_min, svg_width_max);
    const TraceWindow win = opt.window.length_s() > 0 ? opt.window : trace_extent(trace);
    const Mapper m{(double)label_w, (double)(width - label_w - right_w), win.from_s, win.length_s()};
    const std::vector<RankFigures> figures = rank_figures(trace, win);
    const int n_rows = (int)figures.size();
    const int axis_y = rows_y0 + n_rows * row_pitch + 2;

    // Spans per rank and band, clipped to the window.
    std::map<int, std::array<std::vector<BandSpan>, 2>> bands;
    std::map<int, std::vector<double>> dropped_at;
    int max_lane = -1;
    for (const TraceEvent& e : trace.events) {
        const double a = e.ts_us * 1e-6, b = (e.ts_us + e.dur_us) * 1e-6;
        if (b < win.from_s || a > win.to_s) continue;
        if (trace.name_of(e) == trace_dropped) {
            dropped_at[e.pid].push_back(a);
            continue;
        }
        const SpanKind k = e.kind;
        const int lane = k == SpanKind::forward && e.tid >= 0 && e.tid < trace_main_tid ? e.tid : -1;
        const int key = lane >= 0 ? n_span_kinds + lane % n_lane_shades : (int)k;
        max_lane = std::max(max_lane, lane);
        const bool compute =
            k == SpanKind::forward || k == SpanKind::recv_wait || k == SpanKind::send_wait || k == SpanKind::sampling;
        bands[e.pid][compute ? 0 : 1].push_back({std::max(a, win.from_s), std::min(b, win.to_s), key, lane, &e});
    }

    // Legend entries, laid out before the height is known.
    std::vector<std::pair<std::string, const char*>> legend;
    const int n_lanes_shown = std::min(max_lane + 1, n_lane_shades);
    for (int l = 0; l < n_lanes_shown; ++l)
        legend.emplace_back(l == 0 ? "forward, lane 0" : str("lane ", l), lane_fill[l]);
    if (max_lane + 1 > n_lane_shades) legend.emplace_back(str("(", max_lane + 1, " lanes: shades repeat)"), "#ffffff");
    for (int k = n_lanes_shown > 0 ? 1 : 0; k < n_span_kinds; ++k)
        legend.emplace_back(std::string(span_kind_name((SpanKind)k)), kind_fill[k]);
    std::vector<std::array<double, 2>> legend_xy;
    double lx = 10, ly = axis_y + 52;
    for (const auto& [text, fill] : legend) {
        const double w = 22 + 6.6 * text.size() + 14;
        if (lx + w > width - 10) lx = 10, ly += 20;
        legend_xy.push_back({lx, ly});
        lx += w;
    }
    const int height = (int)ly + 22;

    std::string out;
    out.reserve(1 << 20);
    out += str("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"", width, "\" height=\"", height, "\" viewBox=\"0 0 ",
               width, " ", height, "\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n");
    out += str("<rect x=\"0\" y=\"0\" width=\"", width, "\" height=\"", height, "\" fill=\"#ffffff\"/>\n");

    // Title: the summary; subtitle: what is shown.
    const std::string summary = summary_text(trace.summary);
    const size_t title_chars = (size_t)std::max(20.0, (width - 20) / 8.2);
    out += "<text x=\"10\" y=\"24\" font-size=\"15\" font-weight=\"bold\" fill=\"#111111\">" +
           html_escape(clip("gridlm trace" + (summary.empty() ? std::string() : ": " + summary), title_chars)) +
           "</text>\n";
    size_t n_spans = 0;
    for (const TraceEvent& e : trace.events) n_spans += e.ph == 'X';
    std::string sub = str(n_rows, n_rows == 1 ? " rank, " : " ranks, ", n_spans, " spans; showing ",
                          fmt("%.3f", win.from_s), " to ", fmt("%.3f", win.to_s),
                          " s. Each row: compute band "
                          "(forward by micro-batch lane, waits, sampling) over a scheduler band.");
    out += "<text x=\"10\" y=\"44\" font-size=\"12\" fill=\"#444444\">" +
           html_escape(clip(sub, (size_t)((width - 20) / 6.4))) + "</text>\n";
    if (trace.dropped > 0)
        out += str("<text x=\"10\" y=\"60\" font-size=\"12\" fill=\"#d62728\">", trace.dropped,
                   " events were dropped past the per-rank cap: the record ends at the red dashed line.</text>\n");

    // Grid lines and the seconds axis.
    const double step = tick_step(win.length_s(), m.w);
    const int decimals = std::max(0, (int)-std::floor(std::log10(step) + 1e-9));
    const double first = std::ceil(win.from_s / step - 1e-9) * step;
    out += str("<line x1=\"", label_w, "\" y1=\"", axis_y, "\" x2=\"", label_w + m.w, "\" y2=\"", axis_y,
               "\" stroke=\"#333333\"/>\n");
    for (double t = first; t <= win.to_s + step * 1e-9; t += step) {
        const std::string x = fmt("%.1f", m.x(t));
        out += "<line x1=\"" + x + "\" y1=\"" + std::to_string(rows_y0 - 4) + "\" x2=\"" + x + "\" y2=\"" +
               std::to_string(axis_y + 5) + "\" stroke=\"#d8d8d8\" stroke-width=\"0.8\"/>\n";
        char label[48];
        std::snprintf(label, sizeof label, "%.*f", decimals, std::fabs(t) < step * 1e-6 ? 0.0 : t);
        out += "<text x=\"" + x + "\" y=\"" + std::to_string(axis_y + 19) +
               "\" font-size=\"11\" text-anchor=\"middle\" fill=\"#333333\">" + label + "</text>\n";
    }
    out += str("<text x=\"", fmt("%.1f", label_w + m.w / 2), "\" y=\"", axis_y + 36,
               "\" font-size=\"12\" text-anchor=\"middle\" fill=\"#333333\">seconds since the job's start</text>\n");

    // Rows.
    for (int r = 0; r < n_rows; ++r) {
        const RankFigures& f = figures[r];
        const double y = rows_y0 + r * row_pitch;
        const auto [head, detail] = split_label(f.label);
        out += "<text x=\"10\" y=\"" + fmt("%.1f", y + 14) +
               "\" font-size=\"13\" font-weight=\"bold\" fill=\"#111111\">" + html_escape(clip(head, 28)) + "</text>\n";
        if (!detail.empty())
            out += "<text x=\"10\" y=\"" + fmt("%.1f", y + 30) + "\" font-size=\"11\" fill=\"#555555\">" +
                   html_escape(clip(detail, (label_w - 16) / 6)) + "</text>\n";
        out += "<rect x=\"" + std::to_string(label_w) + "\" y=\"" + fmt("%.1f", y) + "\" width=\"" + fmt("%.1f", m.w) +
               "\" height=\"" + std::to_string(band_h) + "\" fill=\"#eef1f5\"/>\n";
        out += "<rect x=\"" + std::to_string(label_w) + "\" y=\"" + fmt("%.1f", y + band_h + sched_gap) +
               "\" width=\"" + fmt("%.1f", m.w) + "\" height=\"" + std::to_string(sched_h) + "\" fill=\"#f4f4f6\"/>\n";
        auto it = bands.find(f.rank);
        if (it != bands.end()) {
            draw_band(out, it->second[0], trace.names, y, band_h, m);
            draw_band(out, it->second[1], trace.names, y + band_h + sched_gap, sched_h, m);
        }
        for (double t : dropped_at[f.rank]) {
            const std::string x = fmt("%.1f", m.x(t));
            out += "<line x1=\"" + x + "\" y1=\"" + fmt("%.1f", y - 2) + "\" x2=\"" + x + "\" y2=\"" +
                   fmt("%.1f", y + band_h + sched_gap + sched_h + 2) +
                   "\" stroke=\"#d62728\" stroke-width=\"2\" stroke-dasharray=\"4 3\"><title>events dropped from " +
                   fmt("%.3f", t) + " s</title></line>\n";
        }
        out += "<text x=\"" + fmt("%.1f", label_w + m.w + 8) + "\" y=\"" + fmt("%.1f", y + 18) +
               "\" font-size=\"12\" fill=\"#111111\">" + fmt("%.0f%% busy", 100 * f.busy_share) + "</text>\n";
    }

    for (size_t i = 0; i < legend.size(); ++i) {
        const auto [x, y] = legend_xy[i];
        out += "<rect x=\"" + fmt("%.1f", x) + "\" y=\"" + fmt("%.1f", y - 11) +
               "\" width=\"16\" height=\"12\" fill=\"" + legend[i].second +
               "\" stroke=\"#666666\" stroke-width=\"0.5\"/>\n";
        out += "<text x=\"" + fmt("%.1f", x + 22) + "\" y=\"" + fmt("%.1f", y) +
               "\" font-size=\"12\" fill=\"#222222\">" + html_escape(legend[i].first) + "</text>\n";
    }
    out += "</svg>\n";
    return out;
}

}  // namespace gridlm
