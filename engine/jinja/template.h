// A Jinja interpreter for chat templates: parses a template once and renders it with Python
// semantics, matching how HF transformers renders chat templates (jinja2 3.x in an
// ImmutableSandboxedEnvironment with trim_blocks, lstrip_blocks and the loopcontrols extension;
// see docs/chat-templates.md for the covered language and where it differs from jinja2).
//
//   jinja::Template t(source);                 // throws TemplateError for a syntax error
//   std::string text = t.render({{"messages", msgs}, {"add_generation_prompt", true}});
//
// Not covered: template inheritance (extends/block/include/import), autoescaping, `{% with %}`,
// mutation of lists and dicts (refused by HF's sandbox too).
#pragma once

#include <ctime>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/core/error.h"
#include "engine/jinja/value.h"

namespace gridlm::jinja {

namespace ast {
struct Stmt;
}

// A syntax or rendering error. line(): 1-based template line (0 when unknown); reason(): what is
// wrong; raised(): the template itself called raise_exception(reason).
class TemplateError : public Error {
public:
    TemplateError(int line, std::string reason, bool raised = false);
    int line() const { return line_; }
    const std::string& reason() const { return reason_; }
    bool raised() const { return raised_; }

private:
    int line_;
    std::string reason_;
    bool raised_;
};

struct RenderOptions {
    // strftime_now() formats this time (seconds since the epoch, local time zone) instead of the
    // clock's; for reproducible tests.
    std::optional<std::time_t> now;
};

class Template {
public:
    explicit Template(const std::string& source);
    ~Template();
    Template(Template&&) noexcept;
    Template& operator=(Template&&) noexcept;

    // Renders with `variables` (messages, add_generation_prompt, bos_token...) over the globals
    // HF provides: raise_exception(msg), strftime_now(fmt), plus jinja2's range, dict, namespace.
    // Throws TemplateError for an error while rendering.
    std::string render(const std::vector<std::pair<std::string, Value>>& variables,
                       const RenderOptions& options = {}) const;

private:
    std::vector<std::unique_ptr<ast::Stmt>> body_;
};

}  // namespace gridlm::jinja
