// Writes the native HDF5 checkpoint (schema: docs/checkpoint-format.md), tensor by tensor, through
// a temporary file that is renamed into place only once complete. Also the config checks shared
// with the reader.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <optional>
#include <system_error>

#include "engine/core/arch.h"
#include "engine/core/quant_blocks.h"
#include "engine/core/quantize.h"
#include "io/h5_checkpoint.h"
#include "io/h5_util.h"

namespace gridlm {

using h5::Handle;

static std::string shape_str(const std::vector<int64_t>& shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
}

void validate_model_config(const ModelConfig& c, const std::string& where) {
    if (!find_arch(c.arch)) {
        throw Error(
            str(where, ": unsupported architecture '", c.arch, "' (gridlm runs ", arch_name_list(" and "), ")"));
    }
    if (c.kv_lora_rank > 0) {  // MLA (DeepSeek): its own sizes; n_head_kv == n_head
        const std::pair<const char*, int64_t> mla[] = {{"kv_lora_rank", c.kv_lora_rank},
                                                       {"qk_nope_dim", c.qk_nope_dim},
                                                       {"qk_rope_dim", c.qk_rope_dim},
                                                       {"v_head_dim", c.v_head_dim}};
        for (const auto& [name, v] : mla)
            if (v <= 0 || v > INT32_MAX) throw Error(str(where, ": ", name, " = ", v, " is not a valid size"));
        if (c.q_lora_rank < 0 || c.q_lora_rank > INT32_MAX)
            throw Error(str(where, ": q_lora_rank = ", c.q_lora_rank, " is not a valid size"));
    }
    if (c.n_expert < 0 || c.n_expert > INT32_MAX || c.n_expert_used < 0 || c.n_expert_used > c.n_expert ||
        (c.n_expert > 0 && (c.n_ff_expert <= 0 || c.n_expert_shared < 0 || c.n_dense_lead < 0)))
        throw Error(str(where, ": expert counts (n_expert ", c.n_expert, ", n_expert_used ", c.n_expert_used,
                        ", n_ff_expert ", c.n_ff_expert, ") are not valid"));
    const std::pair<const char*, int64_t> sizes[] = {
        {"n_vocab", c.n_vocab},     {"n_embd", c.n_embd},     {"n_layer", c.n_layer}, {"n_head", c.n_head},
        {"n_head_kv", c.n_head_kv}, {"head_dim", c.head_dim}, {"n_ff", c.n_ff},
    };
    for (const auto& [name, v] : sizes) {
        // Token ids are int32 everywhere; any dimension past 2^31 is a corrupt header, not a model.
        if (v <= 0 || v > INT32_MAX) throw Error(str(where, ": ", name, " = ", v, " is not a valid size"));
    }
    // About 9 tensors a layer plus 3 per expert: a count past 2^20 (DeepSeek-V3 has ~47K) is a corrupt
    // header, and listing its tensors (expected_tensors) would take unbounded time and memory.
    constexpr int64_t max_tensors = int64_t(1) << 20;
    if (c.n_layer > max_tensors / (9 + 3 * c.n_expert)) {
        throw Error(str(where, ": n_layer = ", c.n_layer, " with n_expert = ", c.n_expert, " makes more than ",
                        max_tensors, " tensors (a corrupt header, not a model)"));
    }
    if (c.n_head % c.n_head_kv != 0) {
        throw Error(str(where, ": n_head = ", c.n_head, " is not a multiple of n_head_kv = ", c.n_head_kv));
    }
    if (c.n_ctx_train < 0) throw Error(str(where, ": n_ctx_train = ", c.n_ctx_train, " is negative"));
    if (!(c.rope_theta > 0)) throw Error(str(where, ": rope_theta = ", c.rope_theta, " must be positive"));
    if (!(c.rms_eps > 0)) throw Error(str(where, ": rms_eps = ", c.rms_eps, " must be positive"));
}

std::vector<TensorInfo> expected_tensors(const ModelConfig& c) {
    std::vector<TensorInfo> out;
    auto add = [&](std::string name, std::vector<int64_t> shape) {
        out.push_back({std::move(name), std::move(shape), "", 0});
    };
    if (c.kv_lora_rank > 0) {  // DeepSeek-V2 / V3: MLA, MoE after the leading dense layers
        const int64_t d = c.n_embd, H = c.n_head, qd = c.qk_nope_dim + c.qk_rope_dim;
        auto mlp = [&](const std::string& p, int64_t ff) {
            add(p + "gate_proj.weight", {ff, d});
            add(p + "up_proj.weight", {ff, d});
            add(p + "down_proj.weight", {d, ff});
        };
        add("model.embed_tokens.weight", {c.n_vocab, d});
        for (int64_t l = 0; l < c.n_layer; ++l) {
            const std::string p = str("model.layers.", l, "."), a = p + "self_attn.";
            add(p + "input_layernorm.weight", {d});
            if (c.q_lora_rank > 0) {
                add(a + "q_a_proj.weight", {c.q_lora_rank, d});
                add(a + "q_a_layernorm.weight", {c.q_lora_rank});
                add(a + "q_b_proj.weight", {H * qd, c.q_lora_rank});
            } else {
                add(a + "q_proj.weight", {H * qd, d});
            }
            add(a + "kv_a_proj_with_mqa.weight", {c.kv_lora_rank + c.qk_rope_dim, d});
            add(a + "kv_a_layernorm.weight", {c.kv_lora_rank});
            add(a + "kv_b_proj.weight", {H * (c.qk_nope_dim + c.v_head_dim), c.kv_lora_rank});
            add(a + "o_proj.weight", {d, H * c.v_head_dim});
            add(p + "post_attention_layernorm.weight", {d});
            if (c.n_expert == 0 || l < c.n_dense_lead) {
                mlp(p + "mlp.", c.n_ff);
                continue;
            }
            add(p + "mlp.gate.weight", {c.n_expert, d});
            if (c.expert_score_bias) add(p + "mlp.gate.e_score_correction_bias", {c.n_expert});
            for (int64_t e = 0; e < c.n_expert; ++e) mlp(str(p, "mlp.experts.", e, "."), c.n_ff_expert);
            if (c.n_expert_shared > 0) mlp(p + "mlp.shared_experts.", c.n_expert_shared * c.n_ff_expert);
        }
        add("model.norm.weight", {d});
        if (!c.tied_embeddings) add("lm_head.weight", {c.n_vocab, d});
        return out;
    }
    const int64_t q_rows = c.n_head * c.head_dim;      // rows of q_proj
    const int64_t kv_rows = c.n_head_kv * c.head_dim;  // rows of k_proj / v_proj
    add("model.embed_tokens.weight", {c.n_vocab, c.n_embd});
    for (int64_t l = 0; l < c.n_layer; ++l) {
        const std::string p = str("model.layers.", l, ".");
        add(p + "input_layernorm.weight", {c.n_embd});
        add(p + "self_attn.q_proj.weight", {q_rows, c.n_embd});
        add(p + "self_attn.k_proj.weight", {kv_rows, c.n_embd});
        add(p + "self_attn.v_proj.weight", {kv_rows, c.n_embd});
        if (c.attn_bias) {
            add(p + "self_attn.q_proj.bias", {q_rows});
            add(p + "self_attn.k_proj.bias", {kv_rows});
            add(p + "self_attn.v_proj.bias", {kv_rows});
        }
        add(p + "self_attn.o_proj.weight", {c.n_embd, q_rows});
        add(p + "post_attention_layernorm.weight", {c.n_embd});
        add(p + "mlp.gate_proj.weight", {c.n_ff, c.n_embd});
        add(p + "mlp.up_proj.weight", {c.n_ff, c.n_embd});
        add(p + "mlp.down_proj.weight", {c.n_embd, c.n_ff});
    }
    add("model.norm.weight", {c.n_embd});
    if (!c.tied_embeddings) add("lm_head.weight", {c.n_vocab, c.n_embd});
    return out;
}

namespace {

void validate_tokenizer(const TokenizerData& t, const ModelConfig& c, const std::string& where) {
    if (t.tokens.empty()) throw Error(str(where, ": the tokenizer has no tokens"));
    if (t.tokens.size() != t.token_types.size()) {
        throw Error(
            str(where, ": tokenizer has ", t.tokens.size(), " tokens but ", t.token_types.size(), " token types"));
    }
    if ((int64_t)t.tokens.size() > c.n_vocab) {
        throw Error(str(where, ": tokenizer has ", t.tokens.size(),
                        " tokens but the model's vocabulary (n_vocab) is only ", c.n_vocab));
    }
    const std::pair<const char*, int32_t> ids[] = {{"bos_id", t.bos_id}, {"eos_id", t.eos_id}, {"pad_id", t.pad_id}};
    for (const auto& [name, id] : ids) {
        if (id < -1 || id >= (int64_t)t.tokens.size()) {
            throw Error(str(where, ": tokenizer ", name, " = ", id, " is outside the vocabulary of ", t.tokens.size()));
        }
    }
}

// Every tensor the config needs must be in the source with the config's shape; checked before
// anything is written so that a mismatch costs nothing.
void validate_weights(const TensorSource& weights, const ModelConfig& c, const std::string& where) {
    std::map<std::string, const TensorInfo*> by_name;
    for (const TensorInfo& t : weights.tensors()) by_name[t.name] = &t;
    for (const TensorInfo& want : expected_tensors(c)) {
        auto it = by_name.find(want.name);
        if (it == by_name.end()) {
            throw Error(str(where, ": the source has no tensor ", want.name, " (the config needs it with shape ",
                            shape_str(want.shape), ")"));
        }
        if (it->second->shape != want.shape) {
            throw Error(str(where, ": source tensor ", want.name, " has shape ", shape_str(it->second->shape),
                            " but the config implies ", shape_str(want.shape)));
        }
    }
}

void write_config(hid_t file, const ModelConfig& c) {
    Handle g(H5_CHECK(H5Gcreate2(file, "config", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)));
    h5::write_attr_string(g, "arch", c.arch);
    h5::write_attr_string(g, "name", c.name);
    const std::pair<const char*, int64_t> ints[] = {
        {"n_vocab", c.n_vocab},     {"n_embd", c.n_embd},     {"n_layer", c.n_layer}, {"n_head", c.n_head},
        {"n_head_kv", c.n_head_kv}, {"head_dim", c.head_dim}, {"n_ff", c.n_ff},       {"n_ctx_train", c.n_ctx_train},
    };
    for (const auto& [name, v] : ints) h5::write_attr_int(g, name, v, H5T_STD_I64LE);
    h5::write_attr_double(g, "rope_theta", c.rope_theta);
    h5::write_attr_double(g, "rms_eps", c.rms_eps);
    h5::write_attr_int(g, "tied_embeddings", c.tied_embeddings, H5T_STD_I8LE);
    h5::write_attr_int(g, "attn_bias", c.attn_bias, H5T_STD_I8LE);
    // Optional attributes (docs/checkpoint-format.md): written when the model uses them.
    if (c.yarn_factor > 0) {
        h5::write_attr_double(g, "yarn_factor", c.yarn_factor);
        h5::write_attr_int(g, "yarn_orig_ctx", c.yarn_orig_ctx, H5T_STD_I64LE);
        h5::write_attr_double(g, "yarn_beta_fast", c.yarn_beta_fast);
        h5::write_attr_double(g, "yarn_beta_slow", c.yarn_beta_slow);
        h5::write_attr_double(g, "yarn_mscale", c.yarn_mscale);
        h5::write_attr_double(g, "yarn_mscale_all_dim", c.yarn_mscale_all_dim);
    }
    if (c.kv_lora_rank > 0) {
        const std::pair<const char*, int64_t> mla[] = {{"q_lora_rank", c.q_lora_rank},
                                                       {"kv_lora_rank", c.kv_lora_rank},
                                                       {"qk_nope_dim", c.qk_nope_dim},
                                                       {"qk_rope_dim", c.qk_rope_dim},
                                                       {"v_head_dim", c.v_head_dim}};
        for (const auto& [name, v] : mla) h5::write_attr_int(g, name, v, H5T_STD_I64LE);
    }
    if (c.n_expert > 0) {
        const std::pair<const char*, int64_t> moe[] = {
            {"n_expert", c.n_expert},
            {"n_expert_used", c.n_expert_used},
            {"n_expert_shared", c.n_expert_shared},
            {"n_ff_expert", c.n_ff_expert},
            {"n_dense_lead", c.n_dense_lead},
            {"n_expert_group", c.n_expert_group},
            {"n_group_used", c.n_group_used},
        };
        for (const auto& [name, v] : moe) h5::write_attr_int(g, name, v, H5T_STD_I64LE);
        const std::pair<const char*, bool> flags[] = {{"expert_sigmoid", c.expert_sigmoid},
                                                      {"expert_group_limited", c.expert_group_limited},
                                                      {"expert_weights_norm", c.expert_weights_norm},
                                                      {"expert_score_bias", c.expert_score_bias}};
        for (const auto& [name, v] : flags) h5::write_attr_int(g, name, v, H5T_STD_I8LE);
        h5::write_attr_double(g, "expert_weights_scale", c.expert_weights_scale);
    }
}

void write_tokenizer(hid_t file, const TokenizerData& t) {
    Handle g(H5_CHECK(H5Gcreate2(file, "tokenizer", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)));
    h5::write_attr_string(g, "model", t.model);
    h5::write_attr_string(g, "pre", t.pre);
    h5::write_attr_int(g, "bos_id", t.bos_id, H5T_STD_I32LE);
    h5::write_attr_int(g, "eos_id", t.eos_id, H5T_STD_I32LE);
    h5::write_attr_int(g, "pad_id", t.pad_id, H5T_STD_I32LE);
    h5::write_attr_int(g, "add_bos", t.add_bos, H5T_STD_I8LE);
    h5::write_attr_string(g, "chat_template", t.chat_template);
    if (!t.chat_template_tool_use.empty()) h5::write_attr_string(g, "chat_template_tool_use", t.chat_template_tool_use);
    h5::write_string_dataset(g, "tokens", t.tokens, "token");
    h5::write_int32_dataset(g, "token_types", t.token_types);
    h5::write_string_dataset(g, "merges", t.merges, "merge");
}

// Narrows f32 data to the 16-bit patterns of `dtype`. f16 overflow would silently turn weights
// into inf, so it is an error that suggests bf16 instead.
std::vector<uint16_t> narrow(const std::vector<float>& src, DType dtype, const std::string& tensor) {
    std::vector<uint16_t> out(src.size());
    const int64_t n = (int64_t)src.size();
    int64_t n_overflow = 0;
    if (dtype == DType::dtype_bf16) {
        for (int64_t i = 0; i < n; ++i) out[i] = f32_to_bf16(src[i]);
    } else {
        for (int64_t i = 0; i < n; ++i) {
            out[i] = f32_to_f16(src[i]);
            n_overflow += ((out[i] & 0x7fff) == 0x7c00) && std::isfinite(src[i]);
        }
    }
    if (n_overflow) {
        throw Error(str("tensor ", tensor, " has ", n_overflow, " values beyond the f16 range (|x| > 65504); ",
                        "convert with --dtype bf16 or f32"));
    }
    return out;
}

// Chunk length near `target` that splits `dim` into equal parts: HDF5 allocates edge chunks in
// full, so 1536 columns in chunks of 1024 would waste a third of the file; 2 x 768 waste nothing.
hsize_t even_chunk(hsize_t dim, hsize_t target) {
    const hsize_t n_chunks = (dim + target - 1) / target;
    return (dim + n_chunks - 1) / n_chunks;
}

// Bytes a tensor takes when stored as `type` (a block type stores 2-D tensors only).
uint64_t stored_bytes(const TensorInfo& t, DType type) {
    if (dtype_is_quantized(type)) return (uint64_t)(t.shape[0] * row_bytes(type, t.shape[1]));
    return (uint64_t)t.numel() * dtype_size(type);
}

// The source's stored type, or none when the source cannot name it (a GGUF type outside the table).
std::optional<DType> source_type_of(const TensorSource& src, const std::string& name) {
    try {
        return src.stored_type(name);
    } catch (const Error&) {
        return std::nullopt;
    }
}

// Creates the dataset of a tensor: floats with their logical shape, block types as [rows, row
// bytes] of uint8 with the attributes that describe the blocks. Chunks are tiles of about
// [256, 1024] values; for a block type their columns are whole blocks.
Handle create_dataset(hid_t group, const TensorInfo& info, DType dtype) {
    const bool blocks = dtype_is_quantized(dtype);
    std::vector<hsize_t> dims(info.shape.begin(), info.shape.end());
    if (blocks) dims[1] = (hsize_t)row_bytes(dtype, info.shape[1]);
    const size_t rank = dims.size();
    Handle space(H5_CHECK(H5Screate_simple((int)rank, dims.data(), nullptr)));
    Handle dcpl(H5_CHECK(H5Pcreate(H5P_DATASET_CREATE)));
    if (info.numel() != 0) {
        // Tiles of about [256, 1024] elements serve both row-block and column-block hyperslabs
        // (tensor-parallel splits of q/k/v/gate/up by rows, o/down by columns); 1-D tensors in
        // runs of about 256 Ki.
        std::vector<hsize_t> chunk(rank, 1);
        if (rank == 1) {
            chunk[0] = even_chunk(dims[0], h5_chunk_rows * h5_chunk_cols);
        } else if (blocks) {
            const hsize_t bs = (hsize_t)dtype_block_size(dtype), bb = (hsize_t)dtype_block_bytes(dtype);
            const hsize_t n_blocks = dims[1] / bb, target = std::max<hsize_t>(1, h5_chunk_cols / bs);
            chunk[1] = even_chunk(n_blocks, target) * bb;
            chunk[0] = even_chunk(dims[0], h5_chunk_rows);
        } else {
            chunk[rank - 1] = even_chunk(dims[rank - 1], h5_chunk_cols);
            chunk[rank - 2] = even_chunk(dims[rank - 2], h5_chunk_rows);
        }
        H5_CHECK(H5Pset_chunk(dcpl, (int)rank, chunk.data()));
        H5_CHECK(H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER));  // every element is written below
    }
    Handle file_type;
    switch (dtype) {
        case DType::dtype_f32:
            file_type = Handle(H5_CHECK(H5Tcopy(H5T_IEEE_F32LE)));
            break;
        case DType::dtype_f16:
            file_type = h5::f16_file_type();
            break;
        case DType::dtype_bf16:
            file_type = h5::bf16_file_type();
            break;
        default:
            file_type = Handle(H5_CHECK(H5Tcopy(H5T_STD_U8LE)));
            break;
    }
    Handle dset(H5_CHECK(H5Dcreate2(group, info.name.c_str(), file_type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT)));
    h5::write_attr_string(dset, "dtype", std::string(dtype_name(dtype)));
    h5::write_attr_string(dset, "source_type", info.source_type);
    if (blocks) {
        h5::write_attr_int_array(dset, "shape", info.shape);
        h5::write_attr_int(dset, "block_size", dtype_block_size(dtype), H5T_STD_I64LE);
        h5::write_attr_int(dset, "block_bytes", dtype_block_bytes(dtype), H5T_STD_I64LE);
    }
    return dset;
}

// Memory type that hands HDF5 the stored bytes unchanged.
Handle memory_type(hid_t dset, DType dtype) {
    if (dtype == DType::dtype_f32) return Handle(H5_CHECK(H5Tcopy(H5T_NATIVE_FLOAT)));
    if (dtype_is_quantized(dtype)) return Handle(H5_CHECK(H5Tcopy(H5T_NATIVE_UINT8)));
    return Handle(H5_CHECK(H5Dget_type(dset)));  // 16-bit floats: the file's own layout
}

// Adds the error of `got` against `ref` (same length) to p.
void add_error(const float* ref, const float* got, int64_t n, ConvertProgress& p) {
    for (int64_t i = 0; i < n; ++i) {
        const double e = (double)got[i] - ref[i];
        p.sq_err += e * e;
        p.sq_ref += (double)ref[i] * ref[i];
        p.max_abs_err = std::max(p.max_abs_err, std::fabs(e));
    }
}

// Quantises [rows, cols] f32 rows to `dtype` blocks (rows in parallel) and measures the error of
// their dequantised values.
std::vector<uint8_t> quantize_rows(const std::vector<float>& data, const TensorInfo& info, DType dtype,
                                   ConvertProgress& p) {
    const int64_t rows = info.shape[0], cols = info.shape[1], rb = row_bytes(dtype, cols);
    std::vector<uint8_t> out((size_t)(rows * rb));
    std::string failure;
    double sq_err = 0, sq_ref = 0, max_abs = 0;
#pragma omp parallel reduction(+ : sq_err, sq_ref) reduction(max : max_abs)
    {
        std::vector<float> back((size_t)cols);
        ConvertProgress local;
#pragma omp for schedule(dynamic, 16)
        for (int64_t r = 0; r < rows; ++r) {
            try {
                quantize_row(dtype, data.data() + r * cols, out.data() + r * rb, cols);
                dequantize_row(dtype, out.data() + r * rb, back.data(), cols);
                add_error(data.data() + r * cols, back.data(), cols, local);
            } catch (const Error& e) {
#pragma omp critical
                if (failure.empty()) failure = str("row ", r, ": ", e.what());
            }
        }
        sq_err += local.sq_err;
        sq_ref += local.sq_ref;
        max_abs = std::max(max_abs, local.max_abs_err);
    }
    if (!failure.empty()) throw Error(str("tensor ", info.name, ", ", failure));
    p.sq_err = sq_err;
    p.sq_ref = sq_ref;
    p.max_abs_err = max_abs;
    return out;
}

// Writes one tensor as `dtype`: a copy of the source's stored rows when it already is `dtype`,
// else its f32 values narrowed or quantised. Fills the per-tensor fields of p.
void write_tensor(hid_t group, const TensorSource& src, const TensorInfo& info, DType dtype, ConvertProgress& p) {
    if (info.shape.empty())
        throw Error(str("tensor ", info.name, " is a scalar; checkpoints store arrays of rank >= 1"));
    Handle dset = create_dataset(group, info, dtype);
    p.dtype = dtype;
    p.copied = false;
    p.exact = true;
    p.sq_err = p.sq_ref = p.max_abs_err = 0;
    if (info.numel() == 0) return;
    const uint64_t bytes = stored_bytes(info, dtype);
    Handle mem = memory_type(dset, dtype);
    if (source_type_of(src, info.name) == dtype && info.shape.size() <= 2) {
        const std::vector<uint8_t> raw = src.read_rows_raw(info.name, 0, info.shape[0]);
        if (raw.size() != bytes) {
            throw Error(str("tensor ", info.name, ": the source returned ", raw.size(), " bytes of ", dtype_name(dtype),
                            " rows, expected ", bytes));
        }
        H5_CHECK(H5Dwrite(dset, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw.data()));
        p.copied = true;
        return;
    }
    const std::vector<float> data = src.read_f32(info.name);  // [numel], HF orientation
    if ((int64_t)data.size() != info.numel()) {
        throw Error(str("tensor ", info.name, ": the source returned ", data.size(), " values for shape ",
                        shape_str(info.shape)));
    }
    if (dtype == DType::dtype_f32) {
        H5_CHECK(H5Dwrite(dset, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data()));
    } else if (!dtype_is_quantized(dtype)) {
        const std::vector<uint16_t> bits = narrow(data, dtype, info.name);
        std::vector<float> back(bits.size());
        for (size_t i = 0; i < bits.size(); ++i)
            back[i] = dtype == DType::dtype_bf16 ? bf16_to_f32(bits[i]) : f16_to_f32(bits[i]);
        add_error(data.data(), back.data(), (int64_t)data.size(), p);
        p.exact = p.sq_err == 0;
        H5_CHECK(H5Dwrite(dset, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, bits.data()));
    } else {
        const std::vector<uint8_t> blocks = quantize_rows(data, info, dtype, p);
        p.exact = p.sq_err == 0;
        H5_CHECK(H5Dwrite(dset, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, blocks.data()));
    }
}

void write_file(const std::string& tmp, const ModelConfig& cfg, const TokenizerData& tok, const TensorSource* weights,
                const std::vector<DType>& plan, const ProgressFn& progress) {
    Handle fapl(H5_CHECK(H5Pcreate(H5P_FILE_ACCESS)));
    // 1.8 object formats or newer: compact link storage for groups of hundreds of tensors and
    // creation-order indexes; readable by every HDF5 since 1.8.
    H5_CHECK(H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_LATEST));
    Handle file(H5_CHECK(H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl)));
    {
        // Version 2 only where needed: float-only files stay readable by version-1 readers.
        const bool any_blocks = std::any_of(plan.begin(), plan.end(), dtype_is_quantized);
        h5::write_attr_string(file, "gridlm_format", h5_format_name);
        h5::write_attr_int(file, "format_version", any_blocks ? 2 : 1, H5T_STD_I32LE);
        h5::write_attr_int(file, "vocab_only", weights == nullptr, H5T_STD_I8LE);
        write_config(file, cfg);
        write_tokenizer(file, tok);

        Handle gcpl(H5_CHECK(H5Pcreate(H5P_GROUP_CREATE)));
        // Readers list tensors in the order they were written (the source's), not by name.
        H5_CHECK(H5Pset_link_creation_order(gcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED));
        Handle group(H5_CHECK(H5Gcreate2(file, "tensors", H5P_DEFAULT, gcpl, H5P_DEFAULT)));
        if (weights) {
            const std::vector<TensorInfo>& tensors = weights->tensors();
            ConvertProgress p;
            p.tensors_total = tensors.size();
            for (size_t i = 0; i < tensors.size(); ++i) p.bytes_total += stored_bytes(tensors[i], plan[i]);
            for (size_t i = 0; i < tensors.size(); ++i) {
                write_tensor(group, *weights, tensors[i], plan[i], p);
                p.tensors_done++;
                p.bytes_done += stored_bytes(tensors[i], plan[i]);
                p.tensor = tensors[i].name;
                if (progress) progress(p);
            }
        }
    }
    H5_CHECK(H5Fclose(file.release()));
}

// The stored type of every tensor, checked before anything is written.
std::vector<DType> make_plan(const TensorSource& weights, const TypeChooser& choose, const std::string& where) {
    std::vector<DType> plan;
    for (const TensorInfo& t : weights.tensors()) {
        if (t.name.empty() || t.name.find('/') != std::string::npos || t.name == ".") {
            throw Error(str(where, ": tensor name '", t.name, "' cannot be an HDF5 dataset name"));
        }
        const DType d = choose(t);
        if (dtype_is_quantized(d)) {
            const int64_t bs = dtype_block_size(d);
            if (t.shape.size() != 2) {
                throw Error(str(where, ": tensor ", t.name, " of shape ", shape_str(t.shape), " cannot be stored as ",
                                dtype_name(d), " (block types hold 2-D tensors only)"));
            }
            if (t.shape[1] % bs != 0) {
                throw Error(str(where, ": tensor ", t.name, " of shape ", shape_str(t.shape), " cannot be stored as ",
                                dtype_name(d), ": its rows of ", t.shape[1], " values are not whole blocks of ", bs));
            }
        }
        plan.push_back(d);
    }
    return plan;
}

}  // namespace

void write_h5_checkpoint(const std::string& path, const ModelConfig& cfg, const TokenizerData& tok,
                         const TensorSource* weights, const TypeChooser& choose, ProgressFn progress) {
    const std::string where = str("writing checkpoint ", path);
    validate_model_config(cfg, where);
    validate_tokenizer(tok, cfg, where);
    std::vector<DType> plan;
    if (weights) {
        validate_weights(*weights, cfg, where);
        plan = make_plan(*weights, choose, where);
    }

    const std::string tmp = path + ".tmp";
    h5::ErrorSilencer quiet;
    try {
        write_file(tmp, cfg, tok, weights, plan, progress);
        std::error_code ec;
        std::filesystem::rename(tmp, path, ec);
        if (ec) throw Error(str("cannot rename ", tmp, " to ", path, ": ", ec.message()));
    } catch (const Error& e) {
        std::error_code ignored;
        std::filesystem::remove(tmp, ignored);
        throw Error(str(where, ": ", e.what()));
    } catch (...) {
        std::error_code ignored;
        std::filesystem::remove(tmp, ignored);
        throw;
    }
}

void write_h5_checkpoint(const std::string& path, const ModelConfig& cfg, const TokenizerData& tok,
                         const TensorSource* weights, DType dtype, ProgressFn progress) {
    const bool blocks = dtype_is_quantized(dtype);
    write_h5_checkpoint(
        path, cfg, tok, weights,
        [&](const TensorInfo& t) { return blocks && t.shape.size() != 2 ? DType::dtype_f32 : dtype; }, progress);
}

}  // namespace gridlm
