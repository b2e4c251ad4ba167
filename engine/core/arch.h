// The model architectures gridlm runs and the names checkpoints give them. Readers in io/ parse
// names here; what the engine does per architecture is a row of engine/model/arch_registry.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>

namespace gridlm {

enum class Arch : uint8_t { arch_llama, arch_qwen2, arch_deepseek_v2, arch_deepseek_v3 };

struct ArchNames {
    Arch arch;
    std::string_view name;      // ModelConfig::arch, GGUF general.architecture, HDF5 config/arch
    std::string_view hf_class;  // config.json "architectures"[0]
};

// One entry per Arch value, in enum order.
inline constexpr ArchNames arch_names[] = {
    {Arch::arch_llama, "llama", "LlamaForCausalLM"},
    {Arch::arch_qwen2, "qwen2", "Qwen2ForCausalLM"},
    {Arch::arch_deepseek_v2, "deepseek_v2", "DeepseekV2ForCausalLM"},
    {Arch::arch_deepseek_v3, "deepseek_v3", "DeepseekV3ForCausalLM"},
};
inline constexpr size_t n_archs = std::size(arch_names);

constexpr bool arch_names_in_enum_order() {
    for (size_t i = 0; i < n_archs; ++i)
        if ((size_t)arch_names[i].arch != i) return false;
    return true;
}
static_assert(arch_names_in_enum_order(), "arch_names must list every Arch value in enum order");

inline std::string_view arch_name(Arch arch) { return arch_names[(size_t)arch].name; }
inline std::string_view arch_hf_class(Arch arch) { return arch_names[(size_t)arch].hf_class; }

// The architecture called `name` ("llama"), or nullopt for one gridlm does not run.
inline std::optional<Arch> find_arch(std::string_view name) {
    for (const ArchNames& a : arch_names)
        if (a.name == name) return a.arch;
    return std::nullopt;
}

// The architecture of an HF model class ("LlamaForCausalLM"), or nullopt.
inline std::optional<Arch> find_arch_by_hf_class(std::string_view hf_class) {
    for (const ArchNames& a : arch_names)
        if (a.hf_class == hf_class) return a.arch;
    return std::nullopt;
}

// Every architecture's name (or HF class), ", " between them and last_sep before the last one:
// "llama, qwen2", "llama or qwen2", "llama and qwen2".
inline std::string arch_name_list(std::string_view last_sep = ", ", bool hf_classes = false) {
    std::string s;
    for (size_t i = 0; i < n_archs; ++i) {
        if (i > 0) s += i + 1 == n_archs ? last_sep : std::string_view(", ");
        s += hf_classes ? arch_names[i].hf_class : arch_names[i].name;
    }
    return s;
}

}  // namespace gridlm
