// Job progress on stderr (see progress.h).
#include "launch/progress.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "engine/core/error.h"
#include "engine/core/log.h"

namespace gridlm {

static double now_s() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string format_duration(double seconds) {
    if (!std::isfinite(seconds) || seconds < 0) return "?";
    const int64_t s = (int64_t)std::llround(seconds);
    char buf[32];
    if (s >= 3600) {
        std::snprintf(buf, sizeof(buf), "%lldh%02lldm", (long long)(s / 3600), (long long)(s % 3600 / 60));
    } else if (s >= 60) {
        std::snprintf(buf, sizeof(buf), "%lldm%02llds", (long long)(s / 60), (long long)(s % 60));
    } else {
        std::snprintf(buf, sizeof(buf), "%llds", (long long)s);
    }
    return buf;
}

static double per_s(double n, double seconds) { return seconds > 0 ? n / seconds : 0.0; }

static std::string rate(double n, double seconds) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.1f", per_s(n, seconds));
    return buf;
}

Progress::Progress(ProgressOptions options)
    : options_(options),
      start_(now_s()),
      last_print_(start_),
      draw_bar_(options.tty && !options.quiet && log_format() == LogFormat::text) {
    // A log line of any thread first clears the bar; the next tick draws it again below the line.
    if (draw_bar_)
        log_set_before_line([this] {
            if (!drawn_) return;
            std::fputs("\r\033[K", options_.out);
            std::fflush(options_.out);
            drawn_ = false;
        });
}

Progress::~Progress() {
    if (draw_bar_) log_set_before_line(nullptr);
}

double Progress::elapsed_s() const { return now_s() - start_; }

void Progress::record_done(bool ok, int64_t prompt_tokens, int64_t completion_tokens) {
    (ok ? t_.records_ok : t_.records_failed)++;
    t_.prompt_tokens += prompt_tokens;
    t_.completion_tokens += completion_tokens;
}

void Progress::add_prefill(int64_t tokens, double seconds) {
    t_.prefill_tokens += tokens;
    t_.prefill_s += seconds;
}

void Progress::add_decode(int64_t tokens, double seconds) {
    t_.decode_tokens += tokens;
    t_.decode_s += seconds;
}

std::string Progress::status_line() const {
    const double el = elapsed_s();
    const int64_t done = t_.records_ok + t_.records_failed;
    std::string s;
    if (options_.total && *options_.total > 0) {
        const int64_t total = *options_.total;
        s = str(done, "/", total, " records");
    } else {
        s = str(done, " records");
    }
    if (t_.records_failed > 0) s += str(" (", t_.records_failed, " failed)");
    s += str(" | ", rate((double)(t_.prefill_tokens + t_.decode_tokens), el), " tok/s");
    s += str(" | ", rate((double)done, el), " rec/s");
    s += " | " + format_duration(el);
    if (const auto eta = eta_s()) s += " | ETA " + format_duration(*eta);
    return s;
}

std::optional<double> Progress::eta_s() const {
    const int64_t done = t_.records_ok + t_.records_failed;
    if (!options_.total || *options_.total <= 0 || done <= 0 || done >= *options_.total) return std::nullopt;
    return elapsed_s() / (double)done * (double)(*options_.total - done);
}

void Progress::tick() {
    if (options_.quiet) return;
    const double t = now_s();
    // A terminal redraws a few times a second; a log file gets a line every interval.
    const double every = draw_bar_ ? 0.25 : options_.interval_s;
    if (t - last_print_ < every) return;
    last_print_ = t;
    if (draw_bar_) {
        std::string bar;
        if (options_.total && *options_.total > 0) {
            const int width = 24;
            const double frac = std::min(1.0, (double)(t_.records_ok + t_.records_failed) / (double)*options_.total);
            const int fill = (int)(frac * width);
            bar = "[";
            bar.append(fill, '#').append(width - fill, '.').append("] ");
        }
        std::string text = "\r\033[K";
        text += bar;
        text += status_line();
        log_locked([&] {
            std::fputs(text.c_str(), options_.out);
            std::fflush(options_.out);
            drawn_ = true;
        });
    } else {
        log_info("progress", status_line(), status_fields());
    }
}

nlohmann::ordered_json Progress::status_fields() const {
    const double el = elapsed_s();
    const int64_t done = t_.records_ok + t_.records_failed;
    nlohmann::ordered_json f;
    f["records_done"] = done;
    if (options_.total && *options_.total > 0) f["records_total"] = *options_.total;
    f["records_failed"] = t_.records_failed;
    f["prompt_tokens"] = t_.prompt_tokens;
    f["completion_tokens"] = t_.completion_tokens;
    f["tokens_per_s"] = per_s((double)(t_.prefill_tokens + t_.decode_tokens), el);
    f["records_per_s"] = per_s((double)done, el);
    f["elapsed_s"] = el;
    if (const auto eta = eta_s()) f["eta_s"] = *eta;
    return f;
}

nlohmann::ordered_json Progress::summary_fields() const {
    const double el = elapsed_s();
    return {{"records_ok", t_.records_ok},
            {"records_failed", t_.records_failed},
            {"prompt_tokens", t_.prompt_tokens},
            {"completion_tokens", t_.completion_tokens},
            {"elapsed_s", el},
            {"generated_tokens_per_s", per_s((double)t_.completion_tokens, el)},
            {"prefill_tokens", t_.prefill_tokens},
            {"prefill_s", t_.prefill_s},
            {"prefill_tokens_per_s", per_s((double)t_.prefill_tokens, t_.prefill_s)},
            {"decode_tokens", t_.decode_tokens},
            {"decode_s", t_.decode_s},
            {"decode_tokens_per_s", per_s((double)t_.decode_tokens, t_.decode_s)},
            {"step_share", el > 0 ? std::min(1.0, (t_.prefill_s + t_.decode_s) / el) : 0.0}};
}

std::string Progress::summary_line() const { return "gridlm: " + summary_text(); }

std::string Progress::summary_text() const {
    return str("done: ", t_.records_ok, " records ok, ", t_.records_failed, " failed; ", t_.prompt_tokens, " prompt + ",
               t_.completion_tokens, " completion tokens in ", format_duration(elapsed_s()), " (",
               rate((double)t_.completion_tokens, elapsed_s()), " generated tok/s); steps of this rank: prefill ",
               rate((double)t_.prefill_tokens, t_.prefill_s), " tok/s, decode ",
               rate((double)t_.decode_tokens, t_.decode_s), " tok/s, ", step_share(), " of the run");
}

// The model steps' share of the time since the job started: what the loop around them (input,
// scheduling, sampling, detokenising, writing) leaves to the model.
std::string Progress::step_share() const {
    const double elapsed = elapsed_s();
    if (elapsed <= 0) return "0%";
    return str((int)std::lround(100 * std::min(1.0, (t_.prefill_s + t_.decode_s) / elapsed)), "%");
}

void Progress::finish() {
    // The before-line hook clears a drawn bar first.
    log_info("summary", summary_text(), summary_fields());
}

}  // namespace gridlm
