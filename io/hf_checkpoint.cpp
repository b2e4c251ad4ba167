// Hugging Face model directory: config.json -> ModelConfig, and the safetensors weights.
#include "io/hf_checkpoint.h"

#include <filesystem>
#include <optional>

#include "engine/core/arch.h"
#include "io/hf_json.h"

namespace gridlm {

using hf::json;

namespace {

// MLA and MoE fields of DeepseekV2Config / DeepseekV3Config (names as in their config.json).
void read_deepseek_fields(const json& j, const std::string& path, Arch arch, ModelConfig& c) {
    c.q_lora_rank = hf::opt_int(j, "q_lora_rank", path).value_or(0);
    c.kv_lora_rank = hf::get_int(j, "kv_lora_rank", path);
    c.qk_nope_dim = hf::get_int(j, "qk_nope_head_dim", path);
    c.qk_rope_dim = hf::get_int(j, "qk_rope_head_dim", path);
    c.v_head_dim = hf::get_int(j, "v_head_dim", path);
    c.head_dim = c.qk_nope_dim + c.qk_rope_dim;
    c.n_head_kv = c.n_head;  // MLA: every head has its own (decompressed) K and V
    c.n_expert = hf::opt_int(j, "n_routed_experts", path).value_or(0);
    if (c.n_expert > 0) {
        c.n_expert_used = hf::get_int(j, "num_experts_per_tok", path);
        c.n_expert_shared = hf::opt_int(j, "n_shared_experts", path).value_or(0);
        c.n_ff_expert = hf::get_int(j, "moe_intermediate_size", path);
        c.n_dense_lead = hf::opt_int(j, "first_k_dense_replace", path).value_or(0);
        c.n_expert_group = hf::opt_int(j, "n_group", path).value_or(1);
        c.n_group_used = hf::opt_int(j, "topk_group", path).value_or(1);
        c.expert_weights_norm = hf::opt_bool(j, "norm_topk_prob", path, false);
        // DeepSeek-V2's own code normalises and then skips the scaling; transformers never
        // normalises. Every released V2 config says false, so a true one is refused, not guessed.
        if (arch == Arch::arch_deepseek_v2 && c.expert_weights_norm)
            throw Error(str(path,
                            ": norm_topk_prob = true is not supported for DeepseekV2 (the reference "
                            "implementations disagree on it)"));
        c.expert_weights_scale = hf::opt_number(j, "routed_scaling_factor", path).value_or(1.0);
        if (auto every = hf::opt_int(j, "moe_layer_freq", path); every && *every != 1)
            throw Error(
                str(path, ": moe_layer_freq = ", *every, " is not supported (1: every layer after the dense ones)"));
        const std::string scoring =
            hf::opt_string(j, "scoring_func", path).value_or(arch == Arch::arch_deepseek_v3 ? "sigmoid" : "softmax");
        if (scoring != "sigmoid" && scoring != "softmax")
            throw Error(str(path, ": scoring_func '", scoring, "' is not supported (sigmoid or softmax)"));
        c.expert_sigmoid = scoring == "sigmoid";
        const std::string method =
            hf::opt_string(j, "topk_method", path).value_or(arch == Arch::arch_deepseek_v3 ? "noaux_tc" : "greedy");
        if (method != "greedy" && method != "group_limited_greedy" && method != "noaux_tc")
            throw Error(
                str(path, ": topk_method '", method, "' is not supported (greedy, group_limited_greedy or noaux_tc)"));
        c.expert_group_limited = method != "greedy";
        c.expert_score_bias = method == "noaux_tc";
    }
}

}  // namespace

ModelConfig hf_model_config(const std::string& path) {
    const json j = hf::read_json_file(path);
    ModelConfig c;
    if (!j.contains("architectures") || !j["architectures"].is_array() || j["architectures"].empty() ||
        !j["architectures"][0].is_string()) {
        throw Error(str(path, ": missing field 'architectures' (e.g. [\"Qwen2ForCausalLM\"])"));
    }
    const std::string hf_class = j["architectures"][0].get<std::string>();
    const std::optional<Arch> arch = find_arch_by_hf_class(hf_class);
    if (!arch) {
        throw Error(str(path, ": architecture ", hf_class, " is not supported (", arch_name_list(", ", true), ")"));
    }
    c.arch = arch_name(*arch);
    // Qwen2 always has q/k/v biases (none on o_proj and the MLP).
    if (*arch == Arch::arch_qwen2) c.attn_bias = true;
    c.name = hf::opt_string(j, "_name_or_path", path).value_or("");
    if (c.name.empty()) c.name = std::filesystem::path(path).parent_path().filename().string();

    c.n_vocab = hf::get_int(j, "vocab_size", path);
    c.n_embd = hf::get_int(j, "hidden_size", path);
    c.n_layer = hf::get_int(j, "num_hidden_layers", path);
    c.n_head = hf::get_int(j, "num_attention_heads", path);
    c.n_head_kv = hf::opt_int(j, "num_key_value_heads", path).value_or(c.n_head);
    c.n_ff = hf::get_int(j, "intermediate_size", path);
    c.n_ctx_train = hf::get_int(j, "max_position_embeddings", path);
    c.rms_eps = hf::get_number(j, "rms_norm_eps", path);
    c.tied_embeddings = hf::opt_bool(j, "tie_word_embeddings", path, false);
    if (auto hd = hf::opt_int(j, "head_dim", path)) {
        c.head_dim = *hd;
    } else {
        if (c.n_head <= 0 || c.n_embd % c.n_head != 0) {
            throw Error(str(path, ": hidden_size ", c.n_embd, " is not a multiple of num_attention_heads ", c.n_head,
                            " and there is no head_dim"));
        }
        c.head_dim = c.n_embd / c.n_head;
    }

    const bool deepseek = *arch == Arch::arch_deepseek_v2 || *arch == Arch::arch_deepseek_v3;
    // RoPE: transformers 4.x writes rope_theta (+ rope_scaling); 5.x writes rope_parameters. Plain
    // RoPE everywhere, YaRN for the DeepSeek architectures; any other scheme is refused rather
    // than ignored.
    c.rope_theta = hf::opt_number(j, "rope_theta", path).value_or(10000.0);
    for (const char* field : {"rope_scaling", "rope_parameters"}) {
        if (!j.contains(field) || j[field].is_null()) continue;
        const json& r = j[field];
        if (!r.is_object()) throw Error(str(path, ": field '", field, "' should be an object"));
        std::string type =
            hf::opt_string(r, "rope_type", path).value_or(hf::opt_string(r, "type", path).value_or("default"));
        if (auto theta = hf::opt_number(r, "rope_theta", path)) c.rope_theta = *theta;
        if (type == "default") continue;
        if (type != "yarn" || !deepseek) {
            throw Error(str(path, ": ", field, " type '", type, "' is not supported (",
                            deepseek ? "plain RoPE or yarn" : "only plain RoPE", ")"));
        }
        c.yarn_factor = hf::get_number(r, "factor", path);
        c.yarn_orig_ctx = hf::get_int(r, "original_max_position_embeddings", path);
        c.yarn_beta_fast = hf::opt_number(r, "beta_fast", path).value_or(32.0);
        c.yarn_beta_slow = hf::opt_number(r, "beta_slow", path).value_or(1.0);
        c.yarn_mscale = hf::opt_number(r, "mscale", path).value_or(0.0);
        c.yarn_mscale_all_dim = hf::opt_number(r, "mscale_all_dim", path).value_or(0.0);
        if (!(c.yarn_factor >= 1.0) || c.yarn_orig_ctx <= 0)
            throw Error(str(path, ": ", field, ": yarn needs factor >= 1 (got ", c.yarn_factor,
                            ") and original_max_position_embeddings > 0 (got ", c.yarn_orig_ctx, ")"));
        if (hf::opt_number(r, "attention_factor", path))
            throw Error(str(path, ": ", field, ": an explicit attention_factor is not supported"));
    }
    if (deepseek) read_deepseek_fields(j, path, *arch, c);
    if (hf::opt_bool(j, "attention_bias", path, false) && *arch == Arch::arch_llama) {
        throw Error(str(path, ": attention_bias = true is not supported for llama"));
    }
    if (hf::opt_bool(j, "use_sliding_window", path, false)) {
        throw Error(str(path, ": use_sliding_window = true is not supported"));
    }
    if (auto act = hf::opt_string(j, "hidden_act", path); act && *act != "silu") {
        throw Error(str(path, ": hidden_act '", *act, "' is not supported (silu)"));
    }
    return c;
}

HfCheckpoint::HfCheckpoint(const std::string& dir, bool need_tensor_data) : dir_(dir) {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) {
        throw Error(str("cannot open Hugging Face model directory ", dir, ": ",
                        fs::exists(dir, ec) ? "not a directory" : "no such directory"));
    }
    const fs::path config = fs::path(dir) / "config.json";
    if (!fs::exists(config, ec)) throw Error(str("no config.json in ", dir, " (not a Hugging Face model directory)"));
    cfg_ = hf_model_config(config.string());
    tok_ = hf_tokenizer_data(dir, cfg_.n_vocab);
    if (need_tensor_data) weights_ = std::make_unique<SafetensorsSource>(dir);
}

const std::vector<TensorInfo>& HfCheckpoint::tensors() const { return weights_ ? weights_->tensors() : no_tensors_; }

std::vector<float> HfCheckpoint::read_f32(const std::string& name) const {
    if (!weights_) throw Error(str(dir_, " was opened without tensor data; cannot read ", name));
    return weights_->read_f32(name);
}

DType HfCheckpoint::stored_type(const std::string& name) const {
    if (!weights_) throw Error(str(dir_, " was opened without tensor data; cannot read ", name));
    return weights_->stored_type(name);
}

std::vector<uint8_t> HfCheckpoint::read_rows_raw(const std::string& name, int64_t row0, int64_t n_rows) const {
    if (!weights_) throw Error(str(dir_, " was opened without tensor data; cannot read ", name));
    return weights_->read_rows_raw(name, row0, n_rows);
}

std::vector<std::string> HfCheckpoint::weight_files() const {
    return weights_ ? weights_->files() : std::vector<std::string>{};
}

}  // namespace gridlm
