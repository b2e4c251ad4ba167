// Content filter: named PCRE2 rules that reject, redact or flag text in prompts (after chat
// rendering, before tokenizing) and in completions (checked as they grow, so a reject stops
// generation at once). `gridlm generate --filter FILE|default` loads one; docs/user-guide.md.
//
// Rule file format (one rule per line; blank lines and lines whose first non-blank character is
// `#` are skipped; fields are separated by spaces or tabs):
//
//   NAME  ACTION  WHERE  PATTERN
//
//   NAME     [A-Za-z0-9_.-]+, unique in the file; the name the output line reports.
//   ACTION   reject | redact | flag.
//   WHERE    prompt | completion | both.
//   PATTERN  the rest of the line (trailing blanks dropped: write a final space as `\x20`), in
//            PCRE2 syntax (pcre2pattern(3)), matched in UTF mode with Unicode properties (UCP).
//            Caseless unless the pattern starts with `(?-i)`. An empty match never counts.
//
//   replacement = TEXT
//            sets what the redact rules below this line put in place of each match (until the
//            next such line; TEXT is trimmed and may be empty). Before any: "[REDACTED]".
//
// Errors (gridlm::Error, "FILE:LINE: ..."): a missing field, a bad name, an unknown action or
// where, a duplicate name, a pattern that does not compile (PCRE2's message and byte offset).
// Ill-formed UTF-8 in the text never matches any pattern item (PCRE2_MATCH_INVALID_UTF). A
// match that runs past PCRE2's match limits counts as no match: filtering never fails a record.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace gridlm {

enum class FilterAction { reject, redact, flag };  // most severe first
enum class FilterWhere { prompt, completion };

const char* filter_action_name(FilterAction action);  // "reject" | "redact" | "flag"
const char* filter_where_name(FilterWhere where);     // "prompt" | "completion"

struct FilterRule {
    std::string name;
    FilterAction action = FilterAction::flag;
    bool on_prompt = false;
    bool on_completion = false;
    std::string pattern;
    std::string replacement;  // what a redact rule puts in place of each match
    int line = 0;             // 1-based line in the rule file
};

// What a filtered record's output line reports: "filter": {"rule", "action", "where"}.
struct FilterHit {
    std::string rule;
    FilterAction action = FilterAction::flag;
    FilterWhere where = FilterWhere::prompt;
    bool operator==(const FilterHit&) const = default;
};

class ContentFilter {
    struct Impl;

public:
    ContentFilter();  // no rules: nothing is ever filtered
    ~ContentFilter();
    ContentFilter(const ContentFilter&);
    ContentFilter& operator=(const ContentFilter&);
    ContentFilter(ContentFilter&&) noexcept;
    ContentFilter& operator=(ContentFilter&&) noexcept;

    // Reads a rule file; "default" is the shipped set (configs/filters/default.rules, compiled
    // into the binary; write ./default for a file of that name). Throws gridlm::Error when the
    // file cannot be read or a line is bad.
    static ContentFilter from_file(const std::string& path);
    // Parses rule text; `origin` names it in errors ("origin:LINE: ...") and in origin().
    static ContentFilter from_text(std::string_view text, std::string origin);
    // The shipped rule text, as compiled in.
    static std::string_view default_rules_text();

    bool empty() const;
    size_t size() const;
    const std::string& origin() const;
    const std::vector<FilterRule>& rules() const;

    // Prompt rules on `text` (the rendered prompt). The first reject rule (file order) that
    // matches gives the hit and `text` is left as it is. Otherwise every redact rule's matches
    // are replaced in `text` (rules in file order, each on the previous one's result) and the
    // first that matched gives the hit; with none, the first flag rule that matches does.
    std::optional<FilterHit> apply_prompt(std::string& text) const;

    // One sequence's completion, checked as it grows. Cheap to create (a few small allocations);
    // keeps the filter's compiled rules alive, so it may outlive the ContentFilter.
    class Stream {
    public:
        Stream(Stream&&) noexcept;
        Stream& operator=(Stream&&) noexcept;
        ~Stream();

        // `text_so_far`: the completion's text kept so far (each call extends the last; the
        // text a stop string removes is not part of it). Returns a reject hit once a reject rule
        // has a complete match, i.e. when its last byte arrives (a pattern that ends in \b, $ or
        // a lookahead needs the next character, or finish(), to decide); cut_at() is then where
        // the match starts, and the hit is returned again by every later call. Cost per call:
        // the new bytes plus the longest partial match still open (PCRE2_PARTIAL_HARD), not the
        // whole text.
        std::optional<FilterHit> push(std::string_view text_so_far);
        // After a reject: the byte offset where the match starts; the text kept is [0, cut_at).
        size_t cut_at() const;
        // The final text (the last push's text or an extension of it; a shorter one, say with a
        // stop string cut off, is rescanned from its start): reject rules are settled
        // at the true end of the text (a reject cuts final_text to [0, cut_at)), then redact
        // rules are applied to it and flag rules checked. Returns the most severe hit of the
        // whole completion (reject > redact > flag), if any.
        std::optional<FilterHit> finish(std::string& final_text);

    private:
        friend class ContentFilter;
        struct State;
        explicit Stream(std::shared_ptr<const Impl> impl);
        std::unique_ptr<State> state_;
    };
    Stream stream() const;

private:
    explicit ContentFilter(std::shared_ptr<const Impl> impl);
    std::shared_ptr<const Impl> impl_;
};

}  // namespace gridlm
