// The Jinja interpreter against Python jinja2, feature by feature: each case of
// tests/reference/golden/jinja_cases.json (made by tests/reference/make_jinja_cases_golden.py) is
// rendered and must give jinja2's text byte for byte, or fail where jinja2 fails. Then the
// interpreter's own error messages, and malformed input that must be an error, never a crash.
#include <gtest/gtest.h>

#include <ctime>
#include <random>
#include <string>

#include "engine/jinja/template.h"
#include "engine/jinja/value.h"
#include "test_support.h"

namespace gridlm {
namespace {

using jinja::Value;

std::string render_case(const std::string& source, const Value& vars) {
    const jinja::Template t(source);
    std::vector<std::pair<std::string, Value>> v;
    for (const auto& [k, x] : vars.entries()) v.emplace_back(k.as_string(), x);
    jinja::RenderOptions opts;
    opts.now = test::template_golden_now();
    return t.render(v, opts);
}

TEST(JinjaCases, EveryCaseMatchesJinja2) {
    const Value golden = jinja::parse_json_value(test::read_file(test::golden_path("jinja_cases.json")));
    const Value* cases = golden.find("cases");
    ASSERT_TRUE(cases && cases->is_list());
    ASSERT_GE(cases->items().size(), 140u);
    int n_text = 0, n_error = 0;
    for (const Value& c : cases->items()) {
        const std::string name = c.find("name")->as_string();
        const std::string source = c.find("template")->as_string();
        const Value vars = *c.find("vars");
        if (const Value* text = c.find("text")) {
            ++n_text;
            try {
                EXPECT_EQ(render_case(source, vars), text->as_string()) << name << "\n" << source;
            } catch (const std::exception& e) {
                ADD_FAILURE() << name << ": jinja2 renders it, we fail: " << e.what() << "\n" << source;
            }
        } else {
            ++n_error;
            const std::string expected = c.find("error")->as_string();
            try {
                const std::string got = render_case(source, vars);
                ADD_FAILURE() << name << ": jinja2 fails (" << expected << "), we render: " << got;
            } catch (const jinja::TemplateError& e) {
                EXPECT_FALSE(e.reason().empty()) << name;
            }
        }
    }
    EXPECT_GE(n_text, 120);
    EXPECT_GE(n_error, 15);
}

TEST(JinjaErrors, SyntaxErrorsNameTheLineAndTheProblem) {
    auto error_of = [](const std::string& source) -> std::pair<int, std::string> {
        try {
            jinja::Template t(source);
            t.render({});
        } catch (const jinja::TemplateError& e) {
            return {e.line(), e.reason()};
        }
        return {-1, ""};
    };
    auto [line, reason] = error_of("a\nb\n{% if x %}\nc");
    EXPECT_EQ(line, 3);
    EXPECT_NE(reason.find("unclosed '{% if %}'"), std::string::npos) << reason;

    std::tie(line, reason) = error_of("line one\n{{ messages | nosuch }}");
    EXPECT_EQ(line, 2);
    EXPECT_NE(reason.find("no filter named 'nosuch'"), std::string::npos) << reason;

    std::tie(line, reason) = error_of("{% for m in messages %}\n{% endif %}");
    EXPECT_EQ(line, 2);
    EXPECT_NE(reason.find("endif"), std::string::npos) << reason;

    std::tie(line, reason) = error_of("x\n\n{{ 'abc }}");
    EXPECT_EQ(line, 3);
    EXPECT_NE(reason.find("unterminated string"), std::string::npos) << reason;

    std::tie(line, reason) = error_of("{% do x %}");
    EXPECT_NE(reason.find("unknown tag 'do'"), std::string::npos) << reason;
}

TEST(JinjaErrors, RaiseExceptionIsMarkedAsRaisedWithItsLine) {
    const jinja::Template t("ok\n{{ raise_exception('roles must alternate') }}");
    try {
        t.render({});
        FAIL() << "expected TemplateError";
    } catch (const jinja::TemplateError& e) {
        EXPECT_TRUE(e.raised());
        EXPECT_EQ(e.line(), 2);
        EXPECT_EQ(e.reason(), "roles must alternate");
    }
}

TEST(JinjaErrors, RunawayRecursionIsAnError) {
    const jinja::Template t("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}");
    EXPECT_THROW(t.render({}), jinja::TemplateError);
}

// Where Python would run on or grow without bound, a render stops with an error: a batch job's
// rank must not hang or run out of memory on one record's template.
TEST(JinjaErrors, RunawayTemplatesAreStopped) {
    auto reason_of = [](const std::string& source) {
        try {
            jinja::Template(source).render({});
        } catch (const jinja::TemplateError& e) {
            return e.reason();
        }
        return std::string("(rendered)");
    };
    EXPECT_NE(reason_of("{% for i in range(1000000) %}{% for j in range(1000000) %}{% endfor %}{% endfor %}")
                  .find("more than 2,000,000 steps"),
              std::string::npos);
    EXPECT_NE(
        reason_of("{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}")
            .find("more than 64 MiB"),
        std::string::npos);
    EXPECT_NE(reason_of("{% for i in range(100) %}{{ 'x' * 1000000 }}{% endfor %}").find("wrote more than 64 MiB"),
              std::string::npos);
    EXPECT_NE(reason_of("{{ 'ab' * 100000000 }}").find("repetition"), std::string::npos);
    EXPECT_NE(reason_of("{{ 9223372036854775807 + 1 }}").find("integer overflow"), std::string::npos);
    EXPECT_NE(reason_of("{{ range(10000000) | length }}").find("million"), std::string::npos);
}

// Random mutations of real templates: the parser and the renderer may refuse them, but must
// neither crash nor hang (tests/fuzz/fuzz_jinja.cpp runs the same under libFuzzer).
TEST(JinjaErrors, MutatedTemplatesNeverCrash) {
    const std::string seeds[] = {
        test::read_file(std::string(GRIDLM_SOURCE_DIR) +
                        "/tests/reference/chat_templates/Qwen-Qwen2.5-7B-Instruct.jinja"),
        test::read_file(std::string(GRIDLM_SOURCE_DIR) +
                        "/tests/reference/chat_templates/meta-llama-Llama-3.1-8B-Instruct.jinja"),
    };
    const Value messages = jinja::parse_json_value(
        R"([{"role": "system", "content": "s"}, {"role": "user", "content": "u"},
            {"role": "assistant", "content": "a", "tool_calls": [{"function": {"name": "f", "arguments": {"x": 1}}}]},
            {"role": "tool", "content": "t"}])");
    const char* pieces[] = {"{%", "%}", "{{",    "}}",  "{#",     "#}",   "-",   "(", ")", "[", "]", "'",    "\"", "|",
                            ".",  "if", "endif", "for", "endfor", "else", "set", "=", ",", ":", "~", "loop", "not"};
    std::mt19937 rng(12345);
    int parsed = 0, rendered = 0;
    for (int iter = 0; iter < 1500; ++iter) {
        std::string s = seeds[iter % 2];
        const int n_edits = 1 + static_cast<int>(rng() % 4);
        for (int e = 0; e < n_edits; ++e) {
            const size_t at = rng() % (s.size() + 1);
            switch (rng() % 3) {
                case 0:
                    s.erase(at, 1 + rng() % 8);
                    break;
                case 1:
                    s.insert(at, pieces[rng() % (sizeof(pieces) / sizeof(pieces[0]))]);
                    break;
                default:
                    s.insert(at, s.substr(rng() % s.size(), rng() % 40));
                    break;
            }
        }
        try {
            jinja::Template t(s);
            ++parsed;
            t.render({{"messages", messages}, {"add_generation_prompt", Value(true)}, {"tools", Value::none()}});
            ++rendered;
        } catch (const jinja::TemplateError&) {
        }
    }
    // Both outcomes occur: the mutations reach the renderer and the error paths alike.
    EXPECT_GT(parsed, 100);
    EXPECT_LT(rendered, 1500);
}

}  // namespace
}  // namespace gridlm
