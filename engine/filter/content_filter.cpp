// Content filter: rule-file parsing, PCRE2 compilation (JIT when available), the prompt checks
// and the incremental completion scan built on PCRE2's hard partial matching (pcre2partial(3)).
#define PCRE2_CODE_UNIT_WIDTH 8
#include "engine/filter/content_filter.h"

#include <pcre2.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <new>
#include <sstream>
#include <unordered_map>

#include "engine/core/error.h"
#include "engine/filter/default_rules.h"  // generated from configs/filters/default.rules
#include "engine/tokenizer/utf8.h"

namespace gridlm {

namespace {

constexpr std::string_view default_replacement = "[REDACTED]";
constexpr std::string_view rule_syntax = "expected NAME ACTION WHERE PATTERN";

// Ill-formed UTF-8 must not make a match fail with an error (a .txt prompt may hold any bytes):
// MATCH_INVALID_UTF makes such bytes a barrier that no pattern item matches.
constexpr uint32_t compile_options = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | PCRE2_UCP | PCRE2_CASELESS;
// A rule that can match the empty string would otherwise hit every text.
constexpr uint32_t match_options = PCRE2_NOTEMPTY;

struct CodeFree {
    void operator()(pcre2_code* code) const { pcre2_code_free(code); }
};
struct MatchDataFree {
    void operator()(pcre2_match_data* data) const { pcre2_match_data_free(data); }
};
using CodePtr = std::unique_ptr<pcre2_code, CodeFree>;
using MatchDataPtr = std::unique_ptr<pcre2_match_data, MatchDataFree>;

MatchDataPtr make_match_data() {
    // Only the whole match's offsets are used: one pair is enough (rc 0 then means "matched").
    pcre2_match_data* data = pcre2_match_data_create(1, nullptr);
    if (!data) throw std::bad_alloc();
    return MatchDataPtr(data);
}

std::string pcre2_message(int code) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(code, msg, sizeof msg);
    return reinterpret_cast<const char*>(msg);
}

enum class Outcome { found, partial, none };

struct Match {
    Outcome outcome = Outcome::none;
    size_t begin = 0;
    size_t end = 0;
};

Match match(const pcre2_code* code, std::string_view subject, size_t start, uint32_t options, pcre2_match_data* data) {
    const int rc = pcre2_match(code, reinterpret_cast<PCRE2_SPTR>(subject.data()), subject.size(), start,
                               match_options | options, data, nullptr);
    // Errors (match / depth / heap limits) count as no match; see the header.
    if (rc < 0 && rc != PCRE2_ERROR_PARTIAL) return {};
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(data);
    return {rc == PCRE2_ERROR_PARTIAL ? Outcome::partial : Outcome::found, ov[0], ov[1]};
}

// Bytes to step over the character at s[pos] (1 for an ill-formed byte).
size_t char_step(std::string_view s, size_t pos) {
    const size_t n = utf8::sequence_length(s, pos);
    return n > 0 ? n : 1;
}

// End of the last whole character of `text`: a character cut off at the end (not yet complete)
// is left for the next call, since PCRE2 would read its bytes as ill-formed.
size_t whole_char_end(std::string_view text) {
    for (size_t back = 1; back <= 3 && back <= text.size(); ++back) {
        const size_t pos = text.size() - back;
        const auto b = static_cast<uint8_t>(text[pos]);
        if (b < 0x80) break;
        if ((b & 0xC0) == 0x80) continue;  // a continuation byte: its lead byte is further back
        bool truncated = false;
        utf8::sequence_length(text, pos, &truncated);
        return truncated ? pos : text.size();
    }
    return text.size();
}

// Replaces every match of `code` in `text` by `replacement`; false (text untouched) when none.
bool redact_matches(const pcre2_code* code, const std::string& replacement, std::string& text, pcre2_match_data* data) {
    std::string out;
    size_t copied = 0;
    size_t start = 0;
    bool any = false;
    while (start <= text.size()) {
        const Match m = match(code, text, start, 0, data);
        if (m.outcome != Outcome::found) break;
        if (m.end <= m.begin) {  // \K can still leave nothing to replace: move on
            if (m.begin >= text.size()) break;
            start = m.begin + char_step(text, m.begin);
            continue;
        }
        out.append(text, copied, m.begin - copied);
        out += replacement;
        copied = start = m.end;
        any = true;
    }
    if (!any) return false;
    out.append(text, copied, std::string::npos);
    text = std::move(out);
    return true;
}

bool is_blank(char c) { return c == ' ' || c == '\t'; }

std::string_view trim(std::string_view s) {
    while (!s.empty() && is_blank(s.front())) s.remove_prefix(1);
    while (!s.empty() && (is_blank(s.back()) || s.back() == '\r')) s.remove_suffix(1);
    return s;
}

// The next blank-separated field of `rest`; `rest` then starts at the field after it.
std::string_view take_field(std::string_view& rest) {
    size_t n = 0;
    while (n < rest.size() && !is_blank(rest[n])) ++n;
    const std::string_view field = rest.substr(0, n);
    rest.remove_prefix(n);
    while (!rest.empty() && is_blank(rest.front())) rest.remove_prefix(1);
    return field;
}

bool valid_name(std::string_view name) {
    for (char c : name) {
        const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
                        c == '.' || c == '-';
        if (!ok) return false;
    }
    return !name.empty();
}

}  // namespace

struct ContentFilter::Impl {
    std::string origin;
    std::vector<FilterRule> rules;
    std::vector<CodePtr> codes;              // parallel to rules
    std::vector<size_t> completion_rejects;  // indices of the reject rules checked on completions
};

const char* filter_action_name(FilterAction action) {
    switch (action) {
        case FilterAction::reject:
            return "reject";
        case FilterAction::redact:
            return "redact";
        case FilterAction::flag:
            return "flag";
    }
    return "?";
}

const char* filter_where_name(FilterWhere where) { return where == FilterWhere::prompt ? "prompt" : "completion"; }

ContentFilter::ContentFilter() : impl_(std::make_shared<Impl>()) {}
ContentFilter::ContentFilter(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
ContentFilter::~ContentFilter() = default;
ContentFilter::ContentFilter(const ContentFilter&) = default;
ContentFilter& ContentFilter::operator=(const ContentFilter&) = default;
ContentFilter::ContentFilter(ContentFilter&&) noexcept = default;
ContentFilter& ContentFilter::operator=(ContentFilter&&) noexcept = default;

std::string_view ContentFilter::default_rules_text() { return default_filter_rules; }

ContentFilter ContentFilter::from_file(const std::string& path) {
    if (path == "default") return from_text(default_rules_text(), "default");
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec)) {
        throw Error(str("filter rules '", path, "' is a directory; give a rule file or 'default'"));
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        throw Error(
            str("cannot read filter rules '", path, "': ", std::strerror(errno), "; give a rule file or 'default'"));
    }
    std::ostringstream text;
    text << in.rdbuf();
    return from_text(text.str(), path);
}

ContentFilter ContentFilter::from_text(std::string_view text, std::string origin) {
    auto impl = std::make_shared<Impl>();
    impl->origin = std::move(origin);
    std::string replacement(default_replacement);
    std::unordered_map<std::string, int> first_line;  // rule name -> line it was defined on
    int line_no = 0;
    size_t pos = 0;
    while (pos < text.size()) {
        const size_t nl = text.find('\n', pos);
        const std::string_view raw = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
        pos = nl == std::string_view::npos ? text.size() : nl + 1;
        ++line_no;
        const auto fail = [&](const auto&... parts) { return Error(str(impl->origin, ":", line_no, ": ", parts...)); };

        const std::string_view line = trim(raw);
        if (line.empty() || line.front() == '#') continue;
        if (line.starts_with("replacement")) {
            const std::string_view after = trim(line.substr(std::string_view("replacement").size()));
            if (!after.empty() && after.front() == '=') {
                replacement = std::string(trim(after.substr(1)));
                continue;
            }
        }

        std::string_view rest = line;
        const std::string_view name = take_field(rest);
        const std::string_view action = take_field(rest);
        const std::string_view where = take_field(rest);
        const std::string_view pattern = rest;
        if (where.empty()) throw fail(rule_syntax, ", got '", line, "'");
        if (!valid_name(name)) {
            throw fail("bad rule name '", name, "'; a name is letters, digits, '_', '.' and '-'");
        }
        FilterRule rule;
        rule.name = std::string(name);
        rule.line = line_no;
        rule.replacement = replacement;
        if (action == "reject") {
            rule.action = FilterAction::reject;
        } else if (action == "redact") {
            rule.action = FilterAction::redact;
        } else if (action == "flag") {
            rule.action = FilterAction::flag;
        } else {
            throw fail("rule '", name, "': unknown action '", action, "'; accepted: reject, redact, flag");
        }
        if (where == "prompt" || where == "both") rule.on_prompt = true;
        if (where == "completion" || where == "both") rule.on_completion = true;
        if (!rule.on_prompt && !rule.on_completion) {
            throw fail("rule '", name, "': unknown where '", where, "'; accepted: prompt, completion, both");
        }
        if (pattern.empty()) throw fail("rule '", name, "' has an empty pattern; ", rule_syntax);
        if (const auto [it, added] = first_line.emplace(rule.name, line_no); !added) {
            throw fail("duplicate rule name '", name, "' (first defined on line ", it->second, ")");
        }
        rule.pattern = std::string(pattern);

        int err = 0;
        PCRE2_SIZE err_offset = 0;
        CodePtr code(pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), compile_options, &err,
                                   &err_offset, nullptr));
        if (!code) {
            const size_t column = static_cast<size_t>(pattern.data() - raw.data()) + err_offset + 1;
            throw fail("rule '", name, "': pattern does not compile: ", pcre2_message(err), " at pattern offset ",
                       err_offset, " (column ", column, "); pattern: ", pattern);
        }
        // Partial-hard code for the completion scan, complete code for everything else. JIT is
        // an optimisation only: without it PCRE2's interpreter gives the same results.
        pcre2_jit_compile(code.get(), PCRE2_JIT_COMPLETE | PCRE2_JIT_PARTIAL_HARD);
        if (rule.action == FilterAction::reject && rule.on_completion) {
            impl->completion_rejects.push_back(impl->rules.size());
        }
        impl->rules.push_back(std::move(rule));
        impl->codes.push_back(std::move(code));
    }
    return ContentFilter(std::move(impl));
}

bool ContentFilter::empty() const { return impl_->rules.empty(); }
size_t ContentFilter::size() const { return impl_->rules.size(); }
const std::string& ContentFilter::origin() const { return impl_->origin; }
const std::vector<FilterRule>& ContentFilter::rules() const { return impl_->rules; }

std::optional<FilterHit> ContentFilter::apply_prompt(std::string& text) const {
    const Impl& impl = *impl_;
    if (impl.rules.empty()) return std::nullopt;
    const MatchDataPtr data = make_match_data();
    const auto hit = [](const FilterRule& rule) { return FilterHit{rule.name, rule.action, FilterWhere::prompt}; };
    for (size_t i = 0; i < impl.rules.size(); ++i) {
        const FilterRule& rule = impl.rules[i];
        if (rule.on_prompt && rule.action == FilterAction::reject &&
            match(impl.codes[i].get(), text, 0, 0, data.get()).outcome == Outcome::found) {
            return hit(rule);
        }
    }
    std::optional<FilterHit> redacted;
    for (size_t i = 0; i < impl.rules.size(); ++i) {
        const FilterRule& rule = impl.rules[i];
        if (rule.on_prompt && rule.action == FilterAction::redact &&
            redact_matches(impl.codes[i].get(), rule.replacement, text, data.get()) && !redacted) {
            redacted = hit(rule);
        }
    }
    if (redacted) return redacted;
    for (size_t i = 0; i < impl.rules.size(); ++i) {
        const FilterRule& rule = impl.rules[i];
        if (rule.on_prompt && rule.action == FilterAction::flag &&
            match(impl.codes[i].get(), text, 0, 0, data.get()).outcome == Outcome::found) {
            return hit(rule);
        }
    }
    return std::nullopt;
}

struct ContentFilter::Stream::State {
    std::shared_ptr<const Impl> impl;
    MatchDataPtr data;
    // Per completion reject rule: the earliest byte where a match may still start. Every start
    // before it failed without reaching the end of the text, so no extension can change that.
    std::vector<size_t> resume;
    size_t scanned = 0;  // bytes of the text scanned so far (whole characters)
    std::optional<FilterHit> reject;
    size_t cut = 0;
};

ContentFilter::Stream::Stream(std::shared_ptr<const Impl> impl) : state_(std::make_unique<State>()) {
    state_->resume.assign(impl->completion_rejects.size(), 0);
    if (!impl->rules.empty()) state_->data = make_match_data();
    state_->impl = std::move(impl);
}
ContentFilter::Stream::Stream(Stream&&) noexcept = default;
ContentFilter::Stream& ContentFilter::Stream::operator=(Stream&&) noexcept = default;
ContentFilter::Stream::~Stream() = default;

ContentFilter::Stream ContentFilter::stream() const { return Stream(impl_); }

size_t ContentFilter::Stream::cut_at() const { return state_->cut; }

namespace {

// One rule over the text grown since the last call. The subject is the whole text with a start
// offset, so lookbehinds (and \b) see the real characters before the resume point; PCRE2 says
// PCRE2_INFO_MAXLOOKBEHIND undercounts nested lookbehinds, so the text is never trimmed by it.
// A hard partial match stops PCRE2 at the first start that reaches the end of the text; the
// starts after it are tried in turn, so a complete match there is not held up by it.
std::optional<size_t> scan_grown(const pcre2_code* code, std::string_view subject, size_t& resume,
                                 pcre2_match_data* data) {
    size_t start = resume;
    size_t first_partial = std::string_view::npos;
    while (start <= subject.size()) {
        const Match m = match(code, subject, start, PCRE2_PARTIAL_HARD, data);
        if (m.outcome == Outcome::found) return m.begin;
        if (m.outcome == Outcome::none) break;
        if (first_partial == std::string_view::npos) first_partial = m.begin;
        if (m.begin >= subject.size()) break;
        start = m.begin + char_step(subject, m.begin);
    }
    resume = first_partial != std::string_view::npos ? first_partial : subject.size();
    return std::nullopt;
}

}  // namespace

std::optional<FilterHit> ContentFilter::Stream::push(std::string_view text_so_far) {
    State& s = *state_;
    if (s.reject || s.resume.empty()) return s.reject;
    const size_t end = whole_char_end(text_so_far);
    if (end < s.scanned) {
        // Not an extension of the last text (a caller error): stay correct by starting over.
        s.resume.assign(s.resume.size(), 0);
    } else if (end == s.scanned) {
        return std::nullopt;
    }
    s.scanned = end;
    const std::string_view subject = text_so_far.substr(0, end);
    const Impl& impl = *s.impl;
    size_t best = std::string_view::npos;
    size_t best_rule = 0;
    for (size_t k = 0; k < impl.completion_rejects.size(); ++k) {
        const size_t rule = impl.completion_rejects[k];
        const auto at = scan_grown(impl.codes[rule].get(), subject, s.resume[k], s.data.get());
        if (at && *at < best) {  // the earliest match wins, so the text kept holds none
            best = *at;
            best_rule = rule;
        }
    }
    if (best != std::string_view::npos) {
        s.reject = FilterHit{impl.rules[best_rule].name, FilterAction::reject, FilterWhere::completion};
        s.cut = best;
    }
    return s.reject;
}

std::optional<FilterHit> ContentFilter::Stream::finish(std::string& final_text) {
    State& s = *state_;
    const Impl& impl = *s.impl;
    if (impl.rules.empty()) return std::nullopt;
    if (!s.reject) {
        // The true end of the text is known now: \b, $ and lookaheads at the end can decide.
        if (final_text.size() < s.scanned) s.resume.assign(s.resume.size(), 0);
        size_t best = std::string_view::npos;
        size_t best_rule = 0;
        for (size_t k = 0; k < impl.completion_rejects.size(); ++k) {
            const size_t rule = impl.completion_rejects[k];
            const Match m = match(impl.codes[rule].get(), final_text, s.resume[k], 0, s.data.get());
            if (m.outcome == Outcome::found && m.begin < best) {
                best = m.begin;
                best_rule = rule;
            }
        }
        if (best != std::string_view::npos) {
            s.reject = FilterHit{impl.rules[best_rule].name, FilterAction::reject, FilterWhere::completion};
            s.cut = best;
        }
    }
    if (s.reject && final_text.size() > s.cut) final_text.resize(s.cut);

    const auto hit = [](const FilterRule& rule) { return FilterHit{rule.name, rule.action, FilterWhere::completion}; };
    std::optional<FilterHit> redacted;
    for (size_t i = 0; i < impl.rules.size(); ++i) {
        const FilterRule& rule = impl.rules[i];
        if (rule.on_completion && rule.action == FilterAction::redact &&
            redact_matches(impl.codes[i].get(), rule.replacement, final_text, s.data.get()) && !redacted) {
            redacted = hit(rule);
        }
    }
    if (s.reject) return s.reject;
    if (redacted) return redacted;
    for (size_t i = 0; i < impl.rules.size(); ++i) {
        const FilterRule& rule = impl.rules[i];
        if (rule.on_completion && rule.action == FilterAction::flag &&
            match(impl.codes[i].get(), final_text, 0, 0, s.data.get()).outcome == Outcome::found) {
            return hit(rule);
        }
    }
    return std::nullopt;
}

}  // namespace gridlm
