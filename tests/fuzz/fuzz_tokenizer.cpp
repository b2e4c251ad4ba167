// libFuzzer target for the byte-level BPE tokenizer, built from the tiny test model's
// tokenizer.json (tests/reference/golden/tiny-qwen2-hf: all 256 byte tokens, 252 merges, three
// control tokens) with each pre-tokenizer kind. The first input byte picks the kind and the encode
// options, the rest is the text. Checked on every input:
//   - every id is inside the vocabulary;
//   - decode(encode(text)) == utf8::sanitize(text): byte-level BPE loses nothing but ill-formed
//     UTF-8, which reads as U+FFFD (so for well-formed text the round trip is exact);
//   - the streaming decoder's pieces join to decode()'s text;
//   - the raw bytes of the tokens, joined and sanitised, are decode()'s text too.
// A failed check traps; so does a crash, a sanitizer report, a leak or a hang.
//   mkdir -p /tmp/fuzz_tokenizer && build-fuzz/bin/fuzz_tokenizer /tmp/fuzz_tokenizer tests/fuzz/corpus/fuzz_tokenizer
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/core/error.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/tokenizer/utf8.h"
#include "io/hf_checkpoint.h"

namespace {

constexpr const char* pre_kinds[] = {"qwen2", "llama3", "gpt2", "smollm", "deepseek-r1-qwen"};
constexpr size_t n_kinds = sizeof(pre_kinds) / sizeof(pre_kinds[0]);

const gridlm::Tokenizer& tokenizer(size_t kind) {
    static const std::vector<std::unique_ptr<gridlm::Tokenizer>> all = [] {
        gridlm::TokenizerData data =
            gridlm::hf_tokenizer_data(std::string(GRIDLM_SOURCE_DIR) + "/tests/reference/golden/tiny-qwen2-hf", 0);
        std::vector<std::unique_ptr<gridlm::Tokenizer>> v;
        for (const char* k : pre_kinds) {
            data.pre = k;
            v.push_back(std::make_unique<gridlm::Tokenizer>(data));
        }
        return v;
    }();
    return *all[kind];
}

void check(bool ok) {
    if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    const uint8_t mode = data[0];
    const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
    const gridlm::Tokenizer& tok = tokenizer(mode % n_kinds);
    gridlm::EncodeOptions opts;
    opts.add_bos = false;
    opts.parse_special = (mode & 0x80) != 0;

    const std::vector<int32_t> ids = tok.encode(text, opts);
    for (int32_t id : ids) check(id >= 0 && id < tok.n_vocab());
    const std::string decoded = tok.decode(ids);
    check(decoded == gridlm::utf8::sanitize(text));

    std::string streamed;
    gridlm::StreamDecoder stream(tok);
    for (int32_t id : ids) {
        streamed += stream.push(id);
        check(stream.pending_bytes() <= 3);
    }
    streamed += stream.flush();
    check(streamed == decoded);

    std::string raw;
    for (int32_t id : ids) raw += tok.token_bytes(id);
    check(gridlm::utf8::sanitize(raw) == decoded);

    // BOS and skip_special only add or drop control tokens: exercised, not compared.
    opts.add_bos = true;
    const std::vector<int32_t> with_bos = tok.encode(text, opts);
    tok.decode(with_bos, {.skip_special = true});
    tok.pre_tokenize(text);
    return 0;
}
