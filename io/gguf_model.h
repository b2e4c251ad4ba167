// Llama, Qwen2 and DeepSeek-V2/V3 models from GGUF: hyper-parameters, tokenizer data, and the
// weights as a TensorSource in HF naming, orientation and (for llama) HF rotate-half Q/K row order.
// DeepSeek files (general.architecture "deepseek2") are served as the HF checkpoint: each 3-D
// expert tensor as per-expert matrices, attn_k_b + attn_v_b as one kv_b_proj
// (docs/architecture.md, "DeepSeek-V2/V3 in GGUF").
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "engine/core/model_config.h"
#include "engine/core/tokenizer_data.h"
#include "io/gguf.h"
#include "engine/core/tensor_source.h"

namespace gridlm {

// From the {arch}.* metadata (arch = general.architecture: llama, qwen2 or deepseek2) and the
// tensor table. A deepseek2 file becomes "deepseek_v3" when its expert_gating_func is sigmoid, else
// "deepseek_v2". Works on files opened with need_tensor_data = false.
ModelConfig gguf_model_config(const GgufFile& file);

// From tokenizer.* metadata; tokenizer.ggml.model must be "gpt2" (byte-level BPE).
TokenizerData gguf_tokenizer_data(const GgufFile& file);

// HF name of a GGUF tensor name ("blk.3.ffn_up.weight" -> "model.layers.3.mlp.up_proj.weight",
// "blk.3.exp_probs_b.bias" -> "model.layers.3.mlp.gate.e_score_correction_bias"); names outside the
// llama / qwen2 / deepseek2 scheme come back unchanged, and so do the tensors that do not map one to
// one (deepseek2's 3-D ffn_*_exps, attn_k_b, attn_v_b), which GgufTensorSource rebuilds.
std::string gguf_to_hf_name(std::string_view gguf_name);

class GgufTensorSource : public TensorSource {
public:
    // Throws gridlm::Error naming the file and tensor when two tensors map to one HF name, and for a
    // deepseek2 file whose expert or attn_k_b / attn_v_b tensors do not have the shapes its
    // metadata gives (naming the keys).
    explicit GgufTensorSource(std::shared_ptr<const GgufFile> file);

    // deepseek2: the per-expert matrices model.layers.N.mlp.experts.E.{gate,up,down}_proj.weight in
    // place of ffn_{gate,up,down}_exps (or the fused ffn_gate_up_exps), and
    // model.layers.N.self_attn.kv_b_proj.weight in place of attn_k_b + attn_v_b.
    const std::vector<TensorInfo>& tensors() const override { return infos_; }
    // Dequantised, HF orientation; llama Q/K rows (weights and biases) un-permuted; deepseek2's
    // kv_b_proj rebuilt per head from attn_k_b (transposed back) and attn_v_b.
    std::vector<float> read_f32(const std::string& name) const override;
    // Dequantised in the file's own row order, without un-permutation (for tests and
    // inspection). `name` is the HF name, as in tensors(); a rebuilt kv_b_proj comes as read_f32.
    std::vector<float> read_f32_raw(const std::string& name) const;
    // The tensor's GGUF type (an expert matrix: its 3-D tensor's); throws for a type outside
    // engine/core/dtype.h's table (Q2_K, IQ*, ...). A rebuilt kv_b_proj is f32.
    DType stored_type(const std::string& name) const override;
    // Rows as stored (blocks unchanged), in HF row order: llama Q/K rows are picked through the
    // same row permutation read_f32 undoes, so dequantising them gives read_rows_f32's values; an
    // expert matrix's rows are its slab of the 3-D tensor, as stored.
    std::vector<uint8_t> read_rows_raw(const std::string& name, int64_t row0, int64_t n_rows) const override;

    const GgufFile& file() const { return *file_; }
    // The GGUF tensor behind an HF name (an expert matrix: its 3-D tensor; a rebuilt kv_b_proj:
    // attn_k_b); throws when unknown.
    const GgufTensor& gguf_tensor(const std::string& name) const;

private:
    // What an HF tensor is made of.
    struct View {
        const GgufTensor* t = nullptr;    // the GGUF tensor (a rebuilt kv_b_proj: attn_k_b)
        const GgufTensor* v_b = nullptr;  // attn_v_b when this is a rebuilt kv_b_proj
        int64_t row0 = 0;                 // first row of an expert's slab in t (rows of dims[0] values)
        int64_t rows = 0, cols = 0;       // HF [rows, cols] of a 1-D / 2-D view (1-D: cols = 1)
        int64_t permuted_heads = 0;       // llama Q/K rows permuted by llama.cpp in this many heads
    };
    void add(TensorInfo info, View v, const std::string& gguf_name);
    // Adds the HF tensors a deepseek2 composite (ffn_*_exps, attn_k_b, attn_v_b) stands for and
    // returns true; false for any other tensor. c: the file's config, for the shape checks.
    bool add_deepseek2_tensor(const GgufTensor& t, const ModelConfig& c);
    const View& view(const std::string& name) const;
    std::vector<float> read_view_f32(const View& v) const;  // dequantised, the file's row order
    std::vector<float> rebuild_kv_b(const View& v) const;

    std::shared_ptr<const GgufFile> file_;
    std::vector<TensorInfo> infos_;
    std::vector<View> views_;                        // parallel to infos_
    std::unordered_map<std::string, size_t> index_;  // HF name -> position in infos_
};

// llama.cpp's converter stores row h*hd + 2i + r of a llama Q/K weight where HF has row
// h*hd + r*hd/2 + i. Undoes that for `rows` rows of `row_len` floats in n_heads heads.
// Throws gridlm::Error when rows do not split into heads of even size.
void gguf_unpermute_rows(std::vector<float>& data, int64_t rows, int64_t row_len, int64_t n_heads,
                         const std::string& what);
// The GGUF row holding HF row hf_row of such a tensor of `rows` rows in n_heads heads (the
// permutation gguf_unpermute_rows undoes). Throws as gguf_unpermute_rows does.
int64_t gguf_row_of_hf_row(int64_t hf_row, int64_t rows, int64_t n_heads, const std::string& what);

}  // namespace gridlm
