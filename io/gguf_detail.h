// Helpers shared by the GGUF model readers (gguf_model.cpp, gguf_deepseek.cpp); not for other users.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "engine/core/model_config.h"
#include "io/gguf.h"

namespace gridlm::gguf_detail {

// Throws gridlm::Error "GGUF file '<path>': <what>".
[[noreturn]] void fail(const GgufFile& f, const std::string& what);
// An integer key that must be present and positive; throws naming the file and key otherwise.
int64_t positive(const GgufFile& f, const std::string& key);
// The double whose shortest decimal is the float's: GGUF stores 1e-5 as 9.99999974e-06, HF
// configs hold the double 1e-5.
double nice_double(float f);

// Splits "blk.<layer>.<part><suffix>" (suffix: the last ".weight" / ".bias"); false for any other
// name.
bool split_block_name(std::string_view name, std::string_view& layer, std::string_view& part, std::string_view& suffix);

// DeepSeek-V2/V3 (general.architecture "deepseek2"): the MLA, MoE and YaRN fields of c, its arch,
// head sizes and n_head_kv, from the deepseek2.* keys and the tensor table (docs/architecture.md,
// "DeepSeek-V2/V3 in GGUF"). c's common fields (n_embd, n_head, ...) are read already.
void read_deepseek2_config(const GgufFile& f, ModelConfig& c);

}  // namespace gridlm::gguf_detail
