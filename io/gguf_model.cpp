// Llama / Qwen2 / DeepSeek-V2/V3 hyper-parameters, tokenizer data and HF-named weights from a GGUF
// file (the deepseek2 specifics are in gguf_deepseek.cpp).
#include "io/gguf_model.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <iterator>

#include "engine/core/error.h"
#include "io/gguf_detail.h"

namespace gridlm {

namespace gguf_detail {

[[noreturn]] void fail(const GgufFile& f, const std::string& what) {
    throw Error(str("GGUF file '", f.path(), "': ", what));
}

int64_t positive(const GgufFile& f, const std::string& key) {
    const int64_t v = f.get_i64(key);
    if (v <= 0) fail(f, str("metadata key '", key, "' must be positive, found ", v));
    return v;
}

double nice_double(float f) {
    char buf[64];
    const auto r = std::to_chars(buf, buf + sizeof buf, f);
    double d = f;
    std::from_chars(buf, r.ptr, d);
    return d;
}

bool split_block_name(std::string_view name, std::string_view& layer, std::string_view& part,
                      std::string_view& suffix) {
    const size_t dot = name.rfind('.');
    if (dot == std::string_view::npos || name.substr(0, 4) != "blk.") return false;
    const std::string_view rest = name.substr(4, dot - 4);
    const size_t d = rest.find('.');
    if (d == std::string_view::npos) return false;
    layer = rest.substr(0, d);
    if (layer.empty() || layer.find_first_not_of("0123456789") != std::string_view::npos) return false;
    part = rest.substr(d + 1);
    suffix = name.substr(dot);
    return true;
}

}  // namespace gguf_detail

using gguf_detail::fail;
using gguf_detail::nice_double;
using gguf_detail::positive;

namespace {

// general.architecture values gridlm reads; llama and qwen2 are also ModelConfig::arch names, a
// deepseek2 file becomes deepseek_v2 or deepseek_v3 (gguf_detail::read_deepseek2_config).
constexpr const char* gguf_archs[] = {"llama", "qwen2", "deepseek2"};
constexpr const char* gguf_arch_list = "llama, qwen2 or deepseek2";

// Optional token id: -1 when absent; must index the vocabulary when present.
int32_t token_id(const GgufFile& f, const std::string& key, size_t n_tokens) {
    if (!f.has(key)) return -1;
    const int64_t id = f.get_i64(key);
    if (id < 0 || (uint64_t)id >= n_tokens) {
        fail(f, str("metadata key '", key, "' = ", id, " is outside the vocabulary of ", n_tokens, " tokens"));
    }
    return (int32_t)id;
}

// GGUF block part -> HF module path inside model.layers.N.
struct PartName {
    const char* gguf;
    const char* hf;
};
constexpr PartName layer_parts[] = {
    {"attn_norm", "input_layernorm"},
    {"attn_q", "self_attn.q_proj"},
    {"attn_k", "self_attn.k_proj"},
    {"attn_v", "self_attn.v_proj"},
    {"attn_output", "self_attn.o_proj"},
    {"ffn_norm", "post_attention_layernorm"},
    {"ffn_gate", "mlp.gate_proj"},
    {"ffn_up", "mlp.up_proj"},
    {"ffn_down", "mlp.down_proj"},
    // deepseek2 (MLA, MoE router and shared experts)
    {"attn_q_a", "self_attn.q_a_proj"},
    {"attn_q_a_norm", "self_attn.q_a_layernorm"},
    {"attn_q_b", "self_attn.q_b_proj"},
    {"attn_kv_a_mqa", "self_attn.kv_a_proj_with_mqa"},
    {"attn_kv_a_norm", "self_attn.kv_a_layernorm"},
    {"attn_kv_b", "self_attn.kv_b_proj"},
    {"ffn_gate_inp", "mlp.gate"},
    {"ffn_gate_shexp", "mlp.shared_experts.gate_proj"},
    {"ffn_up_shexp", "mlp.shared_experts.up_proj"},
    {"ffn_down_shexp", "mlp.shared_experts.down_proj"},
};

}  // namespace

ModelConfig gguf_model_config(const GgufFile& f) {
    ModelConfig c;
    const std::string arch = f.get_string("general.architecture");
    if (std::find(std::begin(gguf_archs), std::end(gguf_archs), arch) == std::end(gguf_archs)) {
        fail(f, str("architecture '", arch, "' is not supported (expected ", gguf_arch_list, ")"));
    }
    c.arch = arch;
    const std::string p = arch + ".";
    if (f.has("general.name")) c.name = f.get_string("general.name");
    c.n_embd = positive(f, p + "embedding_length");
    c.n_layer = positive(f, p + "block_count");
    c.n_ff = positive(f, p + "feed_forward_length");
    c.n_head = positive(f, p + "attention.head_count");
    if (arch == "deepseek2") {
        gguf_detail::read_deepseek2_config(f, c);
    } else {
        c.n_head_kv = f.has(p + "attention.head_count_kv") ? positive(f, p + "attention.head_count_kv") : c.n_head;
        if (c.n_head % c.n_head_kv != 0) {
            fail(f, str("attention.head_count ", c.n_head, " is not a multiple of head_count_kv ", c.n_head_kv));
        }
        // key_length is the explicit head size; rope.dimension_count equals it for these
        // architectures (no partial rotary); older files have neither.
        if (f.has(p + "attention.key_length")) {
            c.head_dim = positive(f, p + "attention.key_length");
        } else if (f.has(p + "rope.dimension_count")) {
            c.head_dim = positive(f, p + "rope.dimension_count");
        } else {
            if (c.n_embd % c.n_head != 0) {
                fail(f, str("embedding_length ", c.n_embd, " is not a multiple of head_count ", c.n_head,
                            " and no rope.dimension_count gives the head size"));
            }
            c.head_dim = c.n_embd / c.n_head;
        }
    }
    if (f.has(p + "context_length")) c.n_ctx_train = positive(f, p + "context_length");
    if (f.has(p + "rope.freq_base")) c.rope_theta = nice_double(f.get_f32(p + "rope.freq_base"));
    c.rms_eps = nice_double(f.get_f32(p + "attention.layer_norm_rms_epsilon"));

    // Vocabulary rows come from the embedding's shape (GGUF dims [n_embd, n_vocab]); a file
    // without one falls back to the tokenizer or an explicit vocab_size.
    if (const GgufTensor* emb = f.find_tensor("token_embd.weight"); emb && emb->dims.size() == 2) {
        if (emb->dims[0] != c.n_embd) {
            fail(f, str("token_embd.weight has rows of ", emb->dims[0], " but embedding_length is ", c.n_embd));
        }
        c.n_vocab = emb->dims[1];
    } else if (f.has("tokenizer.ggml.tokens")) {
        c.n_vocab = (int64_t)f.get_array_size("tokenizer.ggml.tokens");
    } else {
        c.n_vocab = positive(f, p + "vocab_size");
    }
    c.tied_embeddings = f.find_tensor("output.weight") == nullptr;
    c.attn_bias = f.find_tensor("blk.0.attn_q.bias") != nullptr;
    return c;
}

TokenizerData gguf_tokenizer_data(const GgufFile& f) {
    TokenizerData t;
    t.model = f.get_string("tokenizer.ggml.model");
    if (t.model != "gpt2") {
        fail(f, str("tokenizer model '", t.model, "' is not supported (only byte-level BPE, \"gpt2\")"));
    }
    if (f.has("tokenizer.ggml.pre")) t.pre = f.get_string("tokenizer.ggml.pre");
    t.tokens = f.get_string_array("tokenizer.ggml.tokens");
    const size_t n = t.tokens.size();
    if (f.has("tokenizer.ggml.token_type")) {
        t.token_types = f.get_i32_array("tokenizer.ggml.token_type");
        if (t.token_types.size() != n) {
            fail(f, str("tokenizer.ggml.token_type has ", t.token_types.size(), " entries for ", n, " tokens"));
        }
        for (size_t i = 0; i < n; ++i) {
            // 0 is ggml's "undefined"; 1..6 are the TokenType values.
            if (t.token_types[i] < 0 || t.token_types[i] > (int32_t)TokenType::token_type_byte) {
                fail(f, str("tokenizer.ggml.token_type[", i, "] = ", t.token_types[i], " is not a token type"));
            }
        }
    } else {
        t.token_types.assign(n, (int32_t)TokenType::token_type_normal);
    }
    t.merges = f.get_string_array("tokenizer.ggml.merges");
    t.bos_id = token_id(f, "tokenizer.ggml.bos_token_id", n);
    t.eos_id = token_id(f, "tokenizer.ggml.eos_token_id", n);
    t.pad_id = token_id(f, "tokenizer.ggml.padding_token_id", n);
    t.add_bos = f.has("tokenizer.ggml.add_bos_token") && f.get_bool("tokenizer.ggml.add_bos_token");
    if (f.has("tokenizer.chat_template")) t.chat_template = f.get_string("tokenizer.chat_template");
    // Named templates are stored as tokenizer.chat_template.<name> (llama.cpp's converter).
    if (f.has("tokenizer.chat_template.tool_use"))
        t.chat_template_tool_use = f.get_string("tokenizer.chat_template.tool_use");
    return t;
}

std::string gguf_to_hf_name(std::string_view name) {
    const size_t dot = name.rfind('.');
    if (dot == std::string_view::npos) return std::string(name);
    const std::string_view stem = name.substr(0, dot);
    const std::string_view suffix = name.substr(dot);  // ".weight", ".bias"
    if (stem == "token_embd") return str("model.embed_tokens", suffix);
    if (stem == "output_norm") return str("model.norm", suffix);
    if (stem == "output") return str("lm_head", suffix);
    std::string_view layer, part, sfx;
    if (gguf_detail::split_block_name(name, layer, part, sfx)) {
        // The router's score correction bias is a bare parameter in HF (no ".bias").
        if (part == "exp_probs_b" && sfx == ".bias")
            return str("model.layers.", layer, ".mlp.gate.e_score_correction_bias");
        for (const PartName& pn : layer_parts) {
            if (part == pn.gguf) return str("model.layers.", layer, ".", pn.hf, sfx);
        }
    }
    return std::string(name);
}

namespace {

void check_head_rows(bool ok, int64_t rows, int64_t n_heads, const std::string& what) {
    if (!ok || n_heads <= 0 || rows % n_heads != 0 || (rows / n_heads) % 2 != 0) {
        throw Error(str(what, ": ", rows, " rows do not split into ", n_heads,
                        " heads of even size; cannot undo llama.cpp's Q/K row permutation"));
    }
}

}  // namespace

void gguf_unpermute_rows(std::vector<float>& data, int64_t rows, int64_t row_len, int64_t n_heads,
                         const std::string& what) {
    check_head_rows((int64_t)data.size() == rows * row_len, rows, n_heads, what);
    const int64_t hd = rows / n_heads, half = hd / 2;
    const std::vector<float> src = data;
    const size_t row_bytes = (size_t)row_len * sizeof(float);
    for (int64_t h = 0; h < n_heads; ++h) {
        for (int64_t r = 0; r < 2; ++r) {
            for (int64_t i = 0; i < half; ++i) {
                const int64_t hf_row = h * hd + r * half + i;
                const int64_t gguf_row = h * hd + 2 * i + r;
                std::memcpy(&data[(size_t)(hf_row * row_len)], &src[(size_t)(gguf_row * row_len)], row_bytes);
            }
        }
    }
}

int64_t gguf_row_of_hf_row(int64_t hf_row, int64_t rows, int64_t n_heads, const std::string& what) {
    check_head_rows(true, rows, n_heads, what);
    GRIDLM_ASSERT(hf_row >= 0 && hf_row < rows);
    const int64_t hd = rows / n_heads, half = hd / 2;
    const int64_t h = hf_row / hd, r = hf_row % hd / half, i = hf_row % half;
    return h * hd + 2 * i + r;
}

GgufTensorSource::GgufTensorSource(std::shared_ptr<const GgufFile> file) : file_(std::move(file)) {
    const GgufFile& f = *file_;
    const std::string arch = f.has("general.architecture") ? f.get_string("general.architecture") : "";
    // llama.cpp's converter permutes the Q/K rows of llama models only.
    int64_t n_head = 0, n_head_kv = 0;
    if (arch == "llama") {
        n_head = positive(f, "llama.attention.head_count");
        n_head_kv = f.has("llama.attention.head_count_kv") ? positive(f, "llama.attention.head_count_kv") : n_head;
    }
    ModelConfig deepseek;  // the shapes deepseek2's composite tensors must have
    if (arch == "deepseek2") deepseek = gguf_model_config(f);
    infos_.reserve(f.tensors().size());
    for (const GgufTensor& t : f.tensors()) {
        if (arch == "deepseek2" && add_deepseek2_tensor(t, deepseek)) continue;
        View v;
        v.t = &t;
        if (t.dims.size() <= 2) {  // HF rows are GGUF's outermost dimension; a 1-D tensor has rows of one value
            v.rows = t.dims.empty() ? 1 : t.dims.back();
            v.cols = t.dims.size() == 2 ? t.dims[0] : 1;
        }
        if (n_head > 0 && t.name.starts_with("blk.")) {
            if (t.name.find(".attn_q.") != std::string::npos) v.permuted_heads = n_head;
            if (t.name.find(".attn_k.") != std::string::npos) v.permuted_heads = n_head_kv;
        }
        TensorInfo info;
        info.name = gguf_to_hf_name(t.name);
        info.shape.assign(t.dims.rbegin(), t.dims.rend());  // HF lists the outermost dim first
        info.source_type = std::string(ggml_type_name(t.type));
        info.source_bytes = t.n_bytes;
        add(std::move(info), v, t.name);
    }
}

void GgufTensorSource::add(TensorInfo info, View v, const std::string& gguf_name) {
    if (!index_.emplace(info.name, infos_.size()).second) {
        fail(*file_,
             str("tensor '", gguf_name, "' maps to HF name '", info.name, "' which another tensor already has"));
    }
    infos_.push_back(std::move(info));
    views_.push_back(v);
}

const GgufTensorSource::View& GgufTensorSource::view(const std::string& name) const {
    auto it = index_.find(name);
    if (it == index_.end()) fail(*file_, str("no tensor named '", name, "'"));
    return views_[it->second];
}

const GgufTensor& GgufTensorSource::gguf_tensor(const std::string& name) const { return *view(name).t; }

std::vector<float> GgufTensorSource::read_view_f32(const View& v) const {
    const GgufTensor& t = *v.t;
    if (!ggml_can_dequantize(t.type)) {
        fail(*file_, str("tensor '", t.name, "' has type ", ggml_type_name(t.type), ", which cannot be dequantised"));
    }
    const uint8_t* data = file_->tensor_data(t);
    // An expert's slab: rows [row0, row0 + rows) of the 3-D tensor's rows of dims[0] values.
    const bool slab = t.dims.size() > 2 && v.rows > 0;
    const int64_t n = slab ? v.rows * v.cols : t.numel();
    const uint64_t offset = slab ? ggml_n_bytes(t.type, v.row0 * v.cols) : 0;
    std::vector<float> out((size_t)n);
    dequantize(t.type, data + offset, n, out.data());
    return out;
}

std::vector<float> GgufTensorSource::read_f32_raw(const std::string& name) const {
    const View& v = view(name);
    return v.v_b ? rebuild_kv_b(v) : read_view_f32(v);
}

std::vector<float> GgufTensorSource::read_f32(const std::string& name) const {
    const View& v = view(name);
    if (v.v_b) return rebuild_kv_b(v);
    std::vector<float> data = read_view_f32(v);
    if (v.permuted_heads) {
        gguf_unpermute_rows(data, v.rows, v.cols, v.permuted_heads,
                            str("GGUF file '", file_->path(), "': tensor '", v.t->name, "'"));
    }
    return data;
}

DType GgufTensorSource::stored_type(const std::string& name) const {
    const View& v = view(name);
    if (v.v_b) return DType::dtype_f32;  // rebuilt from two tensors, in f32
    const DTypeTraits* type = dtype_of_gguf_id((uint32_t)v.t->type);
    if (!type) {
        fail(*file_, str("tensor '", v.t->name, "' has type ", ggml_type_name(v.t->type),
                         ", which gridlm cannot hold in memory (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, "
                         "Q5_K or Q6_K)"));
    }
    return type->type;
}

std::vector<uint8_t> GgufTensorSource::read_rows_raw(const std::string& name, int64_t row0, int64_t n_rows) const {
    const View& v = view(name);
    if (v.v_b) return TensorSource::read_rows_raw(name, row0, n_rows);  // f32 rows of the rebuilt matrix
    const GgufTensor& t = *v.t;
    const DType type = stored_type(name);
    if (v.rows == 0) {
        fail(*file_, str("tensor '", t.name, "' has ", t.dims.size(), " dimensions; raw row reads need 1 or 2"));
    }
    if (row0 < 0 || n_rows < 0 || row0 > v.rows - n_rows) {
        fail(*file_,
             str("tensor '", t.name, "': rows [", row0, ", ", row0 + n_rows, ") are outside its ", v.rows, " rows"));
    }
    if (v.cols % dtype_block_size(type) != 0) {
        fail(*file_, str("tensor '", t.name, "': its rows of ", v.cols, " values are not whole ",
                         dtype_traits(type).file_name, " blocks of ", dtype_block_size(type)));
    }
    const int64_t bytes = row_bytes(type, v.cols);
    const uint8_t* data = file_->tensor_data(t) + v.row0 * bytes;
    std::vector<uint8_t> out((size_t)(n_rows * bytes));
    const std::string what = str("GGUF file '", file_->path(), "': tensor '", t.name, "'");
    for (int64_t i = 0; i < n_rows; ++i) {
        const int64_t src = v.permuted_heads ? gguf_row_of_hf_row(row0 + i, v.rows, v.permuted_heads, what) : row0 + i;
        std::memcpy(out.data() + i * bytes, data + src * bytes, (size_t)bytes);
    }
    return out;
}

}  // namespace gridlm
