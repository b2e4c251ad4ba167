// Job progress on stderr (see progress.h).
#include "launch/progress.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "engine/core/error.h"

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

static std::string rate(double n, double seconds) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.1f", seconds > 0 ? n / seconds : 0.0);
    return buf;
}

Progress::Progress(ProgressOptions options) : options_(options), start_(now_s()), last_print_(start_) {}

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
    if (options_.total && *options_.total > 0 && done > 0 && done < *options_.total) {
        const double eta = el / (double)done * (double)(*options_.total - done);
        s += " | ETA " + format_duration(eta);
    }
    return s;
}

void Progress::tick() {
    if (options_.quiet) return;
    const double t = now_s();
    // A terminal redraws a few times a second; a log file gets a line every interval.
    const double every = options_.tty ? 0.25 : options_.interval_s;
    if (t - last_print_ < every) return;
    last_print_ = t;
    if (options_.tty) {
        std::string bar;
        if (options_.total && *options_.total > 0) {
            const int width = 24;
            const double frac = std::min(1.0, (double)(t_.records_ok + t_.records_failed) / (double)*options_.total);
            const int fill = (int)(frac * width);
            bar = "[" + std::string(fill, '#') + std::string(width - fill, '.') + "] ";
        }
        std::fprintf(options_.out, "\r\033[K%s%s", bar.c_str(), status_line().c_str());
        drawn_ = true;
    } else {
        std::fprintf(options_.out, "gridlm: %s\n", status_line().c_str());
    }
    std::fflush(options_.out);
}

std::string Progress::summary_line() const {
    return str("gridlm: done: ", t_.records_ok, " records ok, ", t_.records_failed, " failed; ", t_.prompt_tokens,
               " prompt + ", t_.completion_tokens, " completion tokens in ", format_duration(elapsed_s()), " (",
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
    if (drawn_) std::fprintf(options_.out, "\r\033[K");
    drawn_ = false;
    std::fprintf(options_.out, "%s\n", summary_line().c_str());
    std::fflush(options_.out);
}

}  // namespace gridlm
