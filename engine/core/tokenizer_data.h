// Everything a byte-level BPE tokenizer needs, independent of the file it came from
// (GGUF metadata, HF tokenizer.json, or the native HDF5 checkpoint).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace gridlm {

// Token kinds, numbered as GGUF's tokenizer.ggml.token_type.
enum class TokenType : int32_t {
    token_type_normal = 1,
    token_type_unknown = 2,
    token_type_control = 3,       // special tokens (<|im_start|>, BOS/EOS): matched before BPE
    token_type_user_defined = 4,  // added tokens: matched before BPE too
    token_type_unused = 5,
    token_type_byte = 6,
};

struct TokenizerData {
    std::string model = "gpt2";        // only byte-level BPE ("gpt2") is supported
    std::string pre;                   // pre-tokenizer kind: smollm, qwen2, deepseek-r1-qwen, llama3, gpt2
    std::vector<std::string> tokens;   // id -> token text in GPT-2 byte-to-unicode form
    std::vector<int32_t> token_types;  // id -> TokenType value; same length as tokens
    std::vector<std::string> merges;   // rank order, "left right"
    int32_t bos_id = -1;
    int32_t eos_id = -1;
    int32_t pad_id = -1;
    bool add_bos = false;       // prepend BOS when encoding a prompt
    std::string chat_template;  // the checkpoint's Jinja source, kept verbatim
    // Its named "tool_use" template (Command R, Hermes...), kept verbatim; empty if none. As HF
    // does, a request with tools is rendered with it.
    std::string chat_template_tool_use;
};

}  // namespace gridlm
