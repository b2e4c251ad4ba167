// libFuzzer target for the chat-template interpreter: any bytes as a template source, parsed and
// rendered with a small conversation. A syntax or render error is an expected outcome; a crash,
// a sanitizer report or a hang is a bug. Build and run: docs/engine.md, "Fuzzing"; in short
//   mkdir -p /tmp/fuzz_jinja && build-fuzz/bin/fuzz_jinja -dict=tests/fuzz/fuzz_jinja.dict /tmp/fuzz_jinja
//   tests/fuzz/corpus/fuzz_jinja
#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/jinja/template.h"
#include "engine/jinja/value.h"

namespace {

const gridlm::jinja::Value& messages() {
    static const gridlm::jinja::Value m = gridlm::jinja::parse_json_value(
        R"([{"role": "system", "content": "s"}, {"role": "user", "content": "u é"},
            {"role": "assistant", "content": "<think>r</think>a",
             "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": {"x": [1, 2.5]}}}]},
            {"role": "tool", "content": "t"}, {"role": "user", "content": [{"type": "text", "text": "p"}]}])");
    return m;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using gridlm::jinja::Value;
    const std::string source(reinterpret_cast<const char*>(data), size);
    try {
        const gridlm::jinja::Template t(source);
        t.render({{"messages", messages()},
                  {"tools", Value::none()},
                  {"add_generation_prompt", Value(true)},
                  {"bos_token", Value("<s>")},
                  {"eos_token", Value("</s>")}});
    } catch (const gridlm::jinja::TemplateError&) {
    }
    return 0;
}
