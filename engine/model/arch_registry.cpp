// The table of architectures. A new architecture is one file in engine/model/ (its layer
// function built from blocks.h, its layer loader and config check, plus its scratch and KV
// layout formulas) and one row here; its enum value and checkpoint names go in
// engine/core/arch.h, and io/'s config readers learn its hyper-parameters.
#include "engine/model/arch_registry.h"

#include "engine/core/error.h"
#include "engine/model/deepseek.h"
#include "engine/model/dense_decoder.h"

namespace gridlm {

namespace {

constexpr ArchSpec arch_table[] = {
    // SmolLM2, Llama 2/3: the dense decoder, no biases.
    {.arch = Arch::arch_llama,
     .check_config = check_dense_config,
     .load_layer = load_dense_layer,
     .layers = dense_decoder_layers,
     .scratch_per_token = dense_scratch_per_token,
     .kv_layout = KvLayout::gqa},
    // Qwen2 / Qwen2.5: the dense decoder with q/k/v biases (config.attn_bias).
    {.arch = Arch::arch_qwen2,
     .check_config = check_dense_config,
     .load_layer = load_dense_layer,
     .layers = dense_decoder_layers,
     .scratch_per_token = dense_scratch_per_token,
     .kv_layout = KvLayout::gqa},
    // DeepSeek-V2 / V2-Lite: MLA (plain or LoRA q), softmax-scored MoE after the leading dense layers.
    {.arch = Arch::arch_deepseek_v2,
     .check_config = check_deepseek_config,
     .load_layer = load_deepseek_layer,
     .layers = deepseek_layers,
     .scratch_per_token = deepseek_scratch_per_token,
     .kv_layout = deepseek_kv_layout,
     .host_memory_only = true},
    // DeepSeek-V3 / R1: the same decoder with sigmoid scores and group-limited (noaux_tc) routing.
    {.arch = Arch::arch_deepseek_v3,
     .check_config = check_deepseek_config,
     .load_layer = load_deepseek_layer,
     .layers = deepseek_layers,
     .scratch_per_token = deepseek_scratch_per_token,
     .kv_layout = deepseek_kv_layout,
     .host_memory_only = true},
};

constexpr bool rows_in_enum_order() {
    if (std::size(arch_table) != n_archs) return false;
    for (size_t i = 0; i < n_archs; ++i)
        if ((size_t)arch_table[i].arch != i) return false;
    return true;
}
static_assert(rows_in_enum_order(), "arch_table needs one row per Arch value, in enum order");

}  // namespace

std::span<const ArchSpec> arch_rows() { return arch_table; }

const ArchSpec& arch_spec(Arch arch) {
    GRIDLM_ASSERT((size_t)arch < std::size(arch_table));
    return arch_table[(size_t)arch];
}

const ArchSpec& arch_spec(std::string_view name) {
    const std::optional<Arch> arch = find_arch(name);
    if (!arch) throw Error(str("unsupported model architecture '", name, "' (supported: ", supported_archs(), ")"));
    return arch_spec(*arch);
}

// Every Arch has a row (rows_in_enum_order), so the registry's names are arch.h's list.
std::string supported_archs() { return arch_name_list(); }

}  // namespace gridlm
