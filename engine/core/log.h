// The one logger of gridlm: every diagnostic line on stderr goes through it, as readable text
// (the default) or as one JSON object per line for log collectors (--log-format json).
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace gridlm {

enum class LogLevel { debug, info, warning, error };
enum class LogFormat { text, json };

// Where this process sits in the job. A negative number or an empty host means "not known yet":
// JSON lines leave that key out.
struct LogContext {
    int rank = -1;  // world rank
    int world = 0;  // ranks in the job
    std::string host;
    int replica = -1;  // dp coordinate
    int stage = -1;    // pp coordinate
    int tp_rank = -1;  // tp coordinate
};

// Process-wide; the default is text on stderr. `out` must outlive the logging (a tmpfile() in tests).
void log_configure(LogFormat format, std::FILE* out = stderr);
// Set once the grid is known (MpiEnv sets rank, world and host as soon as MPI is up).
void log_set_context(const LogContext& c);
LogContext log_context();
LogFormat log_format();
// "text" or "json"; throws gridlm::Error naming the value and "text or json" for anything else.
LogFormat log_format_from_name(const std::string& name);
// "debug", "info", "warning", "error".
const char* log_level_name(LogLevel level);

// One message. `event`: a stable snake_case name ("start", "progress", "summary", "fatal" ...);
// `text`: the human sentence; `fields`: a JSON object of machine-readable values.
// Text format writes exactly "gridlm: " + text + "\n" and ignores the fields. JSON format writes
// one object: time (UTC ISO 8601 with milliseconds), level, rank, host, replica, stage (each
// only once known), event, message (= text), then the fields' members in their order; a member
// named like one of those keys is written as "field_" + its name. One write per line under a
// lock: lines of several threads never interleave. Never throws.
void log_event(LogLevel level, std::string_view event, std::string_view text,
               const nlohmann::ordered_json& fields = nlohmann::ordered_json::object());

// The general form, for lines whose text has another prefix than "gridlm: " ("gridlm score: ...",
// "[window 3/9] ...") or more than one line: text format writes `text_line` + "\n" as it is,
// JSON format carries `message` as the message.
void log_event_as(LogLevel level, std::string_view event, std::string_view text_line, std::string_view message,
                  const nlohmann::ordered_json& fields = nlohmann::ordered_json::object());

// As log_event, without the "gridlm: " prefix in text format (the message is `text` in both).
inline void log_event_raw(LogLevel level, std::string_view event, std::string_view text,
                          const nlohmann::ordered_json& fields = nlohmann::ordered_json::object()) {
    log_event_as(level, event, text, text, fields);
}

inline void log_info(std::string_view event, std::string_view text,
                     const nlohmann::ordered_json& f = nlohmann::ordered_json::object()) {
    log_event(LogLevel::info, event, text, f);
}
inline void log_warning(std::string_view event, std::string_view text,
                        const nlohmann::ordered_json& f = nlohmann::ordered_json::object()) {
    log_event(LogLevel::warning, event, text, f);
}
inline void log_error(std::string_view event, std::string_view text,
                      const nlohmann::ordered_json& f = nlohmann::ordered_json::object()) {
    log_event(LogLevel::error, event, text, f);
}

// A hook the progress bar registers: called (under the logger's lock) before a line is written,
// to clear a bar drawn in place on a terminal. nullptr removes it.
void log_set_before_line(std::function<void()> f);

// Runs f under the logger's lock, so that what it writes (a progress bar redrawn in place) never
// lands inside a log line of another thread. f must not log.
void log_locked(const std::function<void()>& f);

// The JSON line (without "\n") log_event would write for these values at `time_ms` (milliseconds
// since the Unix epoch, UTC); for tests.
std::string log_json_line(int64_t time_ms, LogLevel level, const LogContext& context, std::string_view event,
                          std::string_view message, const nlohmann::ordered_json& fields);

}  // namespace gridlm
