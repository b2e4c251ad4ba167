// The process-wide logger (see log.h), and the report of a failed GRIDLM_ASSERT through it.
#include "engine/core/log.h"

#include <chrono>
#include <ctime>
#include <exception>
#include <mutex>

#include "engine/core/error.h"

namespace gridlm {
namespace {

using ojson = nlohmann::ordered_json;

struct Logger {
    // Recursive: an assert that fails inside a before-line hook still gets its line out.
    std::recursive_mutex mutex;
    LogFormat format = LogFormat::text;
    std::FILE* out = stderr;
    LogContext context;
    std::function<void()> before_line;
};

Logger& logger() {
    static Logger l;  // never destroyed before the last line: a function-local static
    return l;
}

int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// "2026-12-01T02:41:57.123Z"
std::string iso_time(int64_t ms) {
    const std::time_t s = (std::time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
    std::tm tm{};
    gmtime_r(&s, &tm);
    char buf[40];
    const size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    std::snprintf(buf + n, sizeof buf - n, ".%03dZ", (int)(ms - (int64_t)s * 1000));
    return buf;
}

bool is_line_key(const std::string& k) {
    static const char* const keys[] = {"time", "level", "rank", "host", "replica", "stage", "event", "message"};
    for (const char* key : keys)
        if (k == key) return true;
    return false;
}

// Writes one whole line with a single call and flushes, so that a reader never sees half of it.
void write_line(std::FILE* out, const std::string& line) {
    std::fputs(line.c_str(), out);
    std::fflush(out);
}

}  // namespace

void log_configure(LogFormat format, std::FILE* out) {
    Logger& l = logger();
    std::lock_guard<std::recursive_mutex> lock(l.mutex);
    l.format = format;
    l.out = out ? out : stderr;
}

void log_set_context(const LogContext& c) {
    Logger& l = logger();
    std::lock_guard<std::recursive_mutex> lock(l.mutex);
    l.context = c;
}

LogContext log_context() {
    Logger& l = logger();
    std::lock_guard<std::recursive_mutex> lock(l.mutex);
    return l.context;
}

LogFormat log_format() {
    Logger& l = logger();
    std::lock_guard<std::recursive_mutex> lock(l.mutex);
    return l.format;
}

LogFormat log_format_from_name(const std::string& name) {
    if (name == "text") return LogFormat::text;
    if (name == "json") return LogFormat::json;
    throw Error(str("log format '", name, "' is not text or json"));
}

const char* log_level_name(LogLevel level) {
    switch (level) {
        case LogLevel::debug:
            return "debug";
        case LogLevel::info:
            return "info";
        case LogLevel::warning:
            return "warning";
        case LogLevel::error:
            return "error";
    }
    return "info";
}

std::string log_json_line(int64_t time_ms, LogLevel level, const LogContext& context, std::string_view event,
                          std::string_view message, const ojson& fields) {
    ojson j = ojson::object();
    j["time"] = iso_time(time_ms);
    j["level"] = log_level_name(level);
    if (context.rank >= 0) j["rank"] = context.rank;
    if (!context.host.empty()) j["host"] = context.host;
    if (context.replica >= 0) j["replica"] = context.replica;
    if (context.stage >= 0) j["stage"] = context.stage;
    j["event"] = std::string(event);
    j["message"] = std::string(message);
    if (fields.is_object()) {
        for (const auto& [k, v] : fields.items()) j[is_line_key(k) ? "field_" + k : k] = v;
    } else if (!fields.is_null()) {
        j["field_value"] = fields;
    }
    // File names and record texts may hold bytes that are not UTF-8: replaced, never thrown on.
    return j.dump(-1, ' ', false, ojson::error_handler_t::replace);
}

void log_event_as(LogLevel level, std::string_view event, std::string_view text_line, std::string_view message,
                  const ojson& fields) {
    Logger& l = logger();
    std::lock_guard<std::recursive_mutex> lock(l.mutex);
    std::string line;
    try {
        if (l.format == LogFormat::json) {
            line = log_json_line(now_ms(), level, l.context, event, message, fields);
        } else {
            line = std::string(text_line);
        }
    } catch (const std::exception&) {
        // Out of memory or the like: the text still says what happened.
        line = std::string(text_line);
    }
    line += '\n';
    if (l.before_line) {
        try {
            l.before_line();
        } catch (const std::exception&) {
            // A failing bar must not stop a message (a fatal one, maybe) from being written.
        }
    }
    write_line(l.out, line);
}

void log_event(LogLevel level, std::string_view event, std::string_view text, const ojson& fields) {
    std::string line;
    line.reserve(8 + text.size());
    line += "gridlm: ";
    line += text;
    log_event_as(level, event, line, text, fields);
}

void log_set_before_line(std::function<void()> f) {
    Logger& l = logger();
    std::lock_guard<std::recursive_mutex> lock(l.mutex);
    l.before_line = std::move(f);
}

void log_locked(const std::function<void()>& f) {
    Logger& l = logger();
    std::lock_guard<std::recursive_mutex> lock(l.mutex);
    f();
}

void assert_fail(const char* expr, const char* file, int line) {
    log_event(LogLevel::error, "internal_error",
              str("internal error: assertion `", expr, "` failed at ", file, ":", line),
              ojson{{"assertion", expr}, {"file", file}, {"line", line}});
    std::abort();
}

}  // namespace gridlm
