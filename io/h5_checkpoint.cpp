// Reads the native HDF5 checkpoint: validates the schema on open, then serves whole tensors and
// row / column hyperslabs (the slices tensor-parallel ranks load).
#include "io/h5_checkpoint.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <map>
#include <unordered_map>

#include "engine/core/quant_blocks.h"
#include "io/h5_util.h"

namespace gridlm {

using h5::Handle;

namespace {

std::string shape_str(const std::vector<int64_t>& shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
}

struct Entry {
    TensorInfo info;  // name, logical shape, stored dtype as source_type
    DType dtype;
    std::string origin;     // source_type attribute: the type in the file this was converted from
    int64_t row_bytes = 0;  // block types: bytes per stored row (the dataset's second dimension)
};

// The dtype a dataset's dtype attribute names, or nullptr.
const DTypeTraits* dtype_by_name(const std::string& name) {
    for (const DTypeTraits& t : dtype_table)
        if (name == t.name) return &t;
    return nullptr;
}

// Most tokens or merges a checkpoint may hold: 16x the largest vocabularies in use (~262K).
constexpr size_t h5_max_vocab_entries = size_t(1) << 22;

// Throws when a tensor shape's element count overflows or could not be held as f32 values in
// memory (dimensions come from the file: a corrupt or hostile dataset may claim 2^40 x 2^40).
void check_numel(const std::vector<int64_t>& shape, const std::string& where) {
    constexpr int64_t max_numel = int64_t(1) << 60;
    int64_t n = 1;
    for (int64_t d : shape) {
        if (d < 0 || __builtin_mul_overflow(n, d, &n) || n > max_numel) {
            throw Error(
                str(where, ": shape ", shape_str(shape), " has more elements than a tensor can hold (at most 2^60)"));
        }
    }
}

std::string dtype_list() {
    std::string s;
    for (const DTypeTraits& t : dtype_table) s += (s.empty() ? "" : ", ") + std::string(t.name);
    return s;
}

}  // namespace

struct H5Checkpoint::Impl {
    std::string path;
    Handle file;
    int version = 0;
    bool vocab_only = false;
    ModelConfig cfg;
    TokenizerData tok;
    std::vector<TensorInfo> infos;
    std::vector<Entry> entries;
    std::unordered_map<std::string, size_t> index;

    std::string where(const std::string& object) const { return str("checkpoint ", path, ", ", object); }

    void open_file();
    void read_config();
    void read_tokenizer();
    void read_tensor_list();
    // Checks a block-quantised dataset ([rows, row bytes] of uint8 and its shape / block_size /
    // block_bytes attributes) and fills e's logical shape and row_bytes.
    void read_block_layout(hid_t dset, hid_t type, const std::string& w, Entry& e) const;
    void check_tensor_shapes() const;
    const Entry& entry(const std::string& name) const;
    // Reads the box [start, start + count) of a tensor into dst as `memtype`.
    void read_box(const Entry& e, const std::vector<hsize_t>& start, const std::vector<hsize_t>& count, hid_t memtype,
                  void* dst) const;
    // Rows [row0, row0+n_rows) x columns [col0, col0+n_cols) widened to f32 (cols ignored for 1-D).
    std::vector<float> read_block_f32(const Entry& e, int64_t row0, int64_t n_rows, int64_t col0, int64_t n_cols) const;
    std::vector<uint16_t> read_block_raw16(const Entry& e, int64_t row0, int64_t n_rows, int64_t col0,
                                           int64_t n_cols) const;
    // Block types: rows [row0, row0+n_rows) x bytes [byte0, byte0+n_bytes) of the dataset.
    std::vector<uint8_t> read_bytes(const Entry& e, int64_t row0, int64_t n_rows, int64_t byte0, int64_t n_bytes) const;
    // Block types: the blocks covering columns [col0, col0+n_cols) of the rows, dequantised and cut.
    std::vector<float> read_blocks_f32(const Entry& e, int64_t row0, int64_t n_rows, int64_t col0,
                                       int64_t n_cols) const;
    std::vector<hsize_t> box_start(const Entry& e, int64_t row0, int64_t col0) const;
    std::vector<hsize_t> box_count(const Entry& e, int64_t n_rows, int64_t n_cols) const;
};

void H5Checkpoint::Impl::open_file() {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (!fs::exists(path, ec)) throw Error(str("cannot open checkpoint ", path, ": no such file"));
    if (fs::is_directory(path, ec)) {
        throw Error(str("cannot open checkpoint ", path, ": it is a directory, not a .h5 file (for a Hugging Face ",
                        "model directory run gridlm convert first)"));
    }
    if (H5Fis_hdf5(path.c_str()) <= 0) {
        H5Eclear2(H5E_DEFAULT);
        throw Error(str("cannot open checkpoint ", path, ": not an HDF5 file (make one with gridlm convert)"));
    }
    Handle fapl(H5_CHECK(H5Pcreate(H5P_FILE_ACCESS)));
#if H5_VERSION_GE(1, 10, 7)
    // Read-only opens need no lock, and many ranks locking one file on a parallel or network file
    // system (where flock may be unsupported) only produces spurious "unable to lock file" errors.
    H5_CHECK(H5Pset_file_locking(fapl, false, true));
#endif
    file = Handle(H5_CHECK(H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl)));
    if (!h5::has_attr(file, "gridlm_format")) {
        throw Error(str("cannot open checkpoint ", path, ": an HDF5 file but not a gridlm checkpoint (no root ",
                        "attribute 'gridlm_format')"));
    }
    const std::string format = h5::read_attr_string(file, "gridlm_format", where("root group"));
    if (format != h5_format_name) {
        throw Error(str("cannot open checkpoint ", path, ": root attribute gridlm_format is '", format, "', expected '",
                        h5_format_name, "'"));
    }
    const int64_t v = h5::read_attr_int(file, "format_version", where("root group"));
    static_assert(h5_format_version_min == 1 && h5_format_version == 2, "update the message below");
    if (v < h5_format_version_min || v > h5_format_version) {
        throw Error(str("cannot open checkpoint ", path, ": format_version ", v,
                        " is not supported (this gridlm reads version 1, float tensors, and version 2, which ",
                        "adds block-quantised tensors); convert the model again with this gridlm"));
    }
    version = (int)v;
    vocab_only = h5::read_attr_int(file, "vocab_only", where("root group")) != 0;
    for (const char* g : {"config", "tokenizer", "tensors"}) {
        if (!h5::has_link(file, g)) throw Error(str("checkpoint ", path, ": missing group /", g));
    }
}

void H5Checkpoint::Impl::read_config() {
    Handle g(H5_CHECK(H5Gopen2(file, "config", H5P_DEFAULT)));
    const std::string w = where("group /config");
    cfg.arch = h5::read_attr_string(g, "arch", w);
    cfg.name = h5::read_attr_string(g, "name", w);
    const std::pair<const char*, int64_t*> ints[] = {
        {"n_vocab", &cfg.n_vocab}, {"n_embd", &cfg.n_embd},           {"n_layer", &cfg.n_layer},
        {"n_head", &cfg.n_head},   {"n_head_kv", &cfg.n_head_kv},     {"head_dim", &cfg.head_dim},
        {"n_ff", &cfg.n_ff},       {"n_ctx_train", &cfg.n_ctx_train},
    };
    for (const auto& [name, dst] : ints) *dst = h5::read_attr_int(g, name, w);
    cfg.rope_theta = h5::read_attr_double(g, "rope_theta", w);
    cfg.rms_eps = h5::read_attr_double(g, "rms_eps", w);
    cfg.tied_embeddings = h5::read_attr_int(g, "tied_embeddings", w) != 0;
    cfg.attn_bias = h5::read_attr_int(g, "attn_bias", w) != 0;
    // Optional attributes (absent: the field's default).
    auto opt_int = [&](const char* name, int64_t& dst) {
        if (h5::has_attr(g, name)) dst = h5::read_attr_int(g, name, w);
    };
    auto opt_double = [&](const char* name, double& dst) {
        if (h5::has_attr(g, name)) dst = h5::read_attr_double(g, name, w);
    };
    auto opt_bool = [&](const char* name, bool& dst) {
        if (h5::has_attr(g, name)) dst = h5::read_attr_int(g, name, w) != 0;
    };
    opt_double("yarn_factor", cfg.yarn_factor);
    opt_int("yarn_orig_ctx", cfg.yarn_orig_ctx);
    opt_double("yarn_beta_fast", cfg.yarn_beta_fast);
    opt_double("yarn_beta_slow", cfg.yarn_beta_slow);
    opt_double("yarn_mscale", cfg.yarn_mscale);
    opt_double("yarn_mscale_all_dim", cfg.yarn_mscale_all_dim);
    for (const auto& [name, dst] :
         std::initializer_list<std::pair<const char*, int64_t*>>{{"q_lora_rank", &cfg.q_lora_rank},
                                                                 {"kv_lora_rank", &cfg.kv_lora_rank},
                                                                 {"qk_nope_dim", &cfg.qk_nope_dim},
                                                                 {"qk_rope_dim", &cfg.qk_rope_dim},
                                                                 {"v_head_dim", &cfg.v_head_dim},
                                                                 {"n_expert", &cfg.n_expert},
                                                                 {"n_expert_used", &cfg.n_expert_used},
                                                                 {"n_expert_shared", &cfg.n_expert_shared},
                                                                 {"n_ff_expert", &cfg.n_ff_expert},
                                                                 {"n_dense_lead", &cfg.n_dense_lead},
                                                                 {"n_expert_group", &cfg.n_expert_group},
                                                                 {"n_group_used", &cfg.n_group_used}})
        opt_int(name, *dst);
    opt_bool("expert_sigmoid", cfg.expert_sigmoid);
    opt_bool("expert_group_limited", cfg.expert_group_limited);
    opt_bool("expert_weights_norm", cfg.expert_weights_norm);
    opt_bool("expert_score_bias", cfg.expert_score_bias);
    opt_double("expert_weights_scale", cfg.expert_weights_scale);
    validate_model_config(cfg, w);
}

void H5Checkpoint::Impl::read_tokenizer() {
    Handle g(H5_CHECK(H5Gopen2(file, "tokenizer", H5P_DEFAULT)));
    const std::string w = where("group /tokenizer");
    tok.model = h5::read_attr_string(g, "model", w);
    tok.pre = h5::read_attr_string(g, "pre", w);
    tok.bos_id = (int32_t)h5::read_attr_int(g, "bos_id", w);
    tok.eos_id = (int32_t)h5::read_attr_int(g, "eos_id", w);
    tok.pad_id = (int32_t)h5::read_attr_int(g, "pad_id", w);
    tok.add_bos = h5::read_attr_int(g, "add_bos", w) != 0;
    tok.chat_template = h5::read_attr_string(g, "chat_template", w);
    if (h5::has_attr(g, "chat_template_tool_use"))  // optional: files before it have none
        tok.chat_template_tool_use = h5::read_attr_string(g, "chat_template_tool_use", w);
    // Capped before reading, so that a corrupt length cannot allocate without bound; the tokens
    // are then checked against n_vocab below.
    tok.tokens = h5::read_string_dataset(g, "tokens", w, h5_max_vocab_entries);
    tok.token_types = h5::read_int32_dataset(g, "token_types", w, h5_max_vocab_entries);
    tok.merges = h5::read_string_dataset(g, "merges", w, h5_max_vocab_entries);
    if (tok.tokens.size() != tok.token_types.size()) {
        throw Error(str(w, ": ", tok.tokens.size(), " tokens but ", tok.token_types.size(), " token_types"));
    }
    if ((int64_t)tok.tokens.size() > cfg.n_vocab) {
        throw Error(str(w, ": ", tok.tokens.size(), " tokens but /config n_vocab is ", cfg.n_vocab));
    }
    for (int32_t id : {tok.bos_id, tok.eos_id, tok.pad_id}) {
        if (id < -1 || id >= (int64_t)tok.tokens.size()) {
            throw Error(str(w, ": special token id ", id, " is outside the vocabulary of ", tok.tokens.size()));
        }
    }
}

void H5Checkpoint::Impl::read_tensor_list() {
    Handle g(H5_CHECK(H5Gopen2(file, "tensors", H5P_DEFAULT)));
    H5G_info_t ginfo;
    H5_CHECK(H5Gget_info(g, &ginfo));
    // Files written by gridlm track creation order (the source's tensor order); fall back to names.
    unsigned order_flags = 0;
    {
        Handle gcpl(H5_CHECK(H5Gget_create_plist(g)));
        H5_CHECK(H5Pget_link_creation_order(gcpl, &order_flags));
    }
    const H5_index_t by = (order_flags & H5P_CRT_ORDER_INDEXED) ? H5_INDEX_CRT_ORDER : H5_INDEX_NAME;
    Handle f16 = h5::f16_file_type(), bf16 = h5::bf16_file_type();
    for (hsize_t i = 0; i < ginfo.nlinks; ++i) {
        const ssize_t len = H5_CHECK(H5Lget_name_by_idx(g, ".", by, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT));
        std::string name(len, '\0');
        H5_CHECK(H5Lget_name_by_idx(g, ".", by, H5_ITER_INC, i, name.data(), len + 1, H5P_DEFAULT));
        const std::string w = where("dataset /tensors/" + name);
        Handle obj(H5_CHECK(H5Oopen(g, name.c_str(), H5P_DEFAULT)));
        if (H5Iget_type(obj) != H5I_DATASET) throw Error(str(w, ": is not a dataset"));
        Entry e;
        e.info.name = name;
        e.info.shape = h5::dataset_shape(obj);
        check_numel(e.info.shape, w);
        const std::string dtype = h5::read_attr_string(obj, "dtype", w);
        const DTypeTraits* traits = dtype_by_name(dtype);
        if (!traits) throw Error(str(w, ": attribute dtype is '", dtype, "' (expected one of ", dtype_list(), ")"));
        e.dtype = traits->type;
        if (h5::has_attr(obj, "source_type")) e.origin = h5::read_attr_string(obj, "source_type", w);
        if (e.info.shape.empty()) throw Error(str(w, ": scalar datasets are not tensors"));
        Handle type(H5_CHECK(H5Dget_type(obj)));
        if (traits->quantized) {
            read_block_layout(obj, type, w, e);
        } else {
            // The stored type must be the float layout the dtype attribute names.
            const bool ok = H5_CHECK(H5Tequal(type, e.dtype == DType::dtype_f32   ? H5T_IEEE_F32LE
                                                    : e.dtype == DType::dtype_f16 ? f16.get()
                                                                                  : bf16.get())) > 0;
            if (!ok) {
                throw Error(
                    str(w, ": stored element type does not match its dtype attribute '", dtype_name(e.dtype), "'"));
            }
            e.info.source_bytes = (uint64_t)e.info.numel() * dtype_size(e.dtype);
        }
        e.info.source_type = traits->file_name;
        index[name] = entries.size();
        entries.push_back(std::move(e));
    }
    for (const Entry& e : entries) infos.push_back(e.info);
}

void H5Checkpoint::Impl::read_block_layout(hid_t dset, hid_t type, const std::string& w, Entry& e) const {
    const DTypeTraits& t = dtype_traits(e.dtype);
    if (version < 2) {
        throw Error(str(w, ": dtype '", t.name, "' needs format_version 2, but the file says ", version));
    }
    if (H5_CHECK(H5Tget_class(type)) != H5T_INTEGER || H5Tget_size(type) != 1 ||
        H5_CHECK(H5Tget_sign(type)) != H5T_SGN_NONE) {
        throw Error(str(w, ": a ", t.name, " tensor must be stored as bytes (uint8), not another element type"));
    }
    const std::vector<int64_t> dims = e.info.shape;
    if (dims.size() != 2) {
        throw Error(str(w, ": a ", t.name, " tensor must be a 2-D dataset [rows, row bytes], not ", shape_str(dims)));
    }
    for (const auto& [attr, want] : {std::pair{"block_size", t.block_size}, std::pair{"block_bytes", t.block_bytes}}) {
        const int64_t got = h5::read_attr_int(dset, attr, w);
        if (got != want) {
            throw Error(str(w, ": attribute ", attr, " is ", got, " but a ", t.name, " block has ", want));
        }
    }
    const std::vector<int64_t> shape = h5::read_attr_int_array(dset, "shape", w);
    if (shape.size() != 2 || shape[0] != dims[0] || shape[1] < 0) {
        throw Error(str(w, ": attribute shape is ", shape_str(shape), " but the dataset holds ", dims[0],
                        " rows (expected [", dims[0], ", columns])"));
    }
    if (shape[1] % t.block_size != 0) {
        throw Error(str(w, ": attribute shape gives rows of ", shape[1], " values, not whole ", t.name, " blocks of ",
                        t.block_size));
    }
    e.row_bytes = row_bytes(e.dtype, shape[1]);
    if (dims[1] != e.row_bytes) {
        throw Error(str(w, ": rows of ", dims[1], " bytes, but a ", t.name, " row of ", shape[1], " values takes ",
                        e.row_bytes, " bytes (row_bytes mismatch)"));
    }
    check_numel(shape, w);
    e.info.shape = shape;
    e.info.source_bytes = (uint64_t)(shape[0] * e.row_bytes);
}

void H5Checkpoint::Impl::check_tensor_shapes() const {
    for (const TensorInfo& want : expected_tensors(cfg)) {
        auto it = index.find(want.name);
        if (it == index.end()) {
            throw Error(str("checkpoint ", path, ": missing dataset /tensors/", want.name, " (the config needs shape ",
                            shape_str(want.shape), ")"));
        }
        const std::vector<int64_t>& got = entries[it->second].info.shape;
        if (got != want.shape) {
            throw Error(str("checkpoint ", path, ": dataset /tensors/", want.name, " has shape ", shape_str(got),
                            " but /config implies ", shape_str(want.shape)));
        }
    }
}

const Entry& H5Checkpoint::Impl::entry(const std::string& name) const {
    auto it = index.find(name);
    if (it == index.end()) {
        throw Error(str("checkpoint ", path, " has no tensor '", name, "'",
                        vocab_only ? " (it is a vocabulary-only checkpoint)" : ""));
    }
    return entries[it->second];
}

std::vector<hsize_t> H5Checkpoint::Impl::box_start(const Entry& e, int64_t row0, int64_t col0) const {
    std::vector<hsize_t> start(e.info.shape.size(), 0);
    start[0] = (hsize_t)row0;
    if (start.size() > 1) start.back() = (hsize_t)col0;
    return start;
}

std::vector<hsize_t> H5Checkpoint::Impl::box_count(const Entry& e, int64_t n_rows, int64_t n_cols) const {
    std::vector<hsize_t> count(e.info.shape.begin(), e.info.shape.end());
    count[0] = (hsize_t)n_rows;
    if (count.size() > 1) count.back() = (hsize_t)n_cols;
    return count;
}

void H5Checkpoint::Impl::read_box(const Entry& e, const std::vector<hsize_t>& start, const std::vector<hsize_t>& count,
                                  hid_t memtype, void* dst) const {
    for (hsize_t c : count) {
        if (c == 0) return;
    }
    Handle dset(H5_CHECK(H5Dopen2(file, ("tensors/" + e.info.name).c_str(), H5P_DEFAULT)));
    Handle fspace(H5_CHECK(H5Dget_space(dset)));
    H5_CHECK(H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr));
    Handle mspace(H5_CHECK(H5Screate_simple((int)count.size(), count.data(), nullptr)));
    H5_CHECK(H5Dread(dset, memtype, mspace, fspace, H5P_DEFAULT, dst));
}

std::vector<uint16_t> H5Checkpoint::Impl::read_block_raw16(const Entry& e, int64_t row0, int64_t n_rows, int64_t col0,
                                                           int64_t n_cols) const {
    const std::vector<hsize_t> count = box_count(e, n_rows, n_cols);
    size_t n = 1;
    for (hsize_t c : count) n *= c;
    std::vector<uint16_t> out(n);
    // Read with the file's own 16-bit float type as memory type: HDF5 copies bits, no conversion.
    Handle dset(H5_CHECK(H5Dopen2(file, ("tensors/" + e.info.name).c_str(), H5P_DEFAULT)));
    Handle type(H5_CHECK(H5Dget_type(dset)));
    read_box(e, box_start(e, row0, col0), count, type, out.data());
    return out;
}

std::vector<uint8_t> H5Checkpoint::Impl::read_bytes(const Entry& e, int64_t row0, int64_t n_rows, int64_t byte0,
                                                    int64_t n_bytes) const {
    std::vector<uint8_t> out((size_t)(n_rows * n_bytes));
    read_box(e, {(hsize_t)row0, (hsize_t)byte0}, {(hsize_t)n_rows, (hsize_t)n_bytes}, H5T_NATIVE_UINT8, out.data());
    return out;
}

std::vector<float> H5Checkpoint::Impl::read_blocks_f32(const Entry& e, int64_t row0, int64_t n_rows, int64_t col0,
                                                       int64_t n_cols) const {
    const int64_t bs = dtype_block_size(e.dtype), bb = dtype_block_bytes(e.dtype);
    const int64_t b0 = col0 / bs, b1 = (col0 + n_cols + bs - 1) / bs;  // the blocks covering the columns
    const int64_t span = (b1 - b0) * bs, skip = col0 - b0 * bs;
    std::vector<float> out((size_t)(n_rows * n_cols));
    if (out.empty()) return out;
    const std::vector<uint8_t> raw = read_bytes(e, row0, n_rows, b0 * bb, (b1 - b0) * bb);
    const uint8_t* src = raw.data();
#pragma omp parallel if (n_rows * span >= (1 << 20))
    {
        std::vector<float> row(span == n_cols ? 0 : (size_t)span);
#pragma omp for schedule(static)
        for (int64_t r = 0; r < n_rows; ++r) {
            if (row.empty()) {
                dequantize_row(e.dtype, src + r * (b1 - b0) * bb, out.data() + r * n_cols, span);
            } else {
                dequantize_row(e.dtype, src + r * (b1 - b0) * bb, row.data(), span);
                std::copy_n(row.begin() + skip, n_cols, out.begin() + r * n_cols);
            }
        }
    }
    return out;
}

std::vector<float> H5Checkpoint::Impl::read_block_f32(const Entry& e, int64_t row0, int64_t n_rows, int64_t col0,
                                                      int64_t n_cols) const {
    if (dtype_is_quantized(e.dtype)) return read_blocks_f32(e, row0, n_rows, col0, n_cols);
    if (e.dtype == DType::dtype_f32) {
        const std::vector<hsize_t> count = box_count(e, n_rows, n_cols);
        size_t n = 1;
        for (hsize_t c : count) n *= c;
        std::vector<float> out(n);
        read_box(e, box_start(e, row0, col0), count, H5T_NATIVE_FLOAT, out.data());
        return out;
    }
    const std::vector<uint16_t> bits = read_block_raw16(e, row0, n_rows, col0, n_cols);
    std::vector<float> out(bits.size());
    const int64_t n = (int64_t)bits.size();
    if (e.dtype == DType::dtype_bf16) {
        for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_f32(bits[i]);
    } else {
        for (int64_t i = 0; i < n; ++i) out[i] = f16_to_f32(bits[i]);
    }
    return out;
}

// Runs an HDF5-touching step with the error stack silenced, naming the file in HDF5 failures.
template <typename F>
static auto guarded(const std::string& path, F&& fn) {
    h5::ErrorSilencer quiet;
    try {
        return fn();
    } catch (const h5::CallError& e) {
        throw Error(str("checkpoint ", path, ": ", e.what()));
    }
}

H5Checkpoint::H5Checkpoint(const std::string& path) : impl_(std::make_unique<Impl>()) {
    impl_->path = path;
    guarded(path, [&] {
        impl_->open_file();
        impl_->read_config();
        impl_->read_tokenizer();
        impl_->read_tensor_list();
        if (!impl_->vocab_only) impl_->check_tensor_shapes();
        return 0;
    });
}

H5Checkpoint::~H5Checkpoint() {
    h5::ErrorSilencer quiet;
    impl_.reset();
}

const std::string& H5Checkpoint::path() const { return impl_->path; }
int H5Checkpoint::format_version() const { return impl_->version; }
bool H5Checkpoint::vocab_only() const { return impl_->vocab_only; }
const ModelConfig& H5Checkpoint::config() const { return impl_->cfg; }
const TokenizerData& H5Checkpoint::tokenizer() const { return impl_->tok; }
const std::vector<TensorInfo>& H5Checkpoint::tensors() const { return impl_->infos; }
bool H5Checkpoint::has_tensor(const std::string& name) const { return impl_->index.count(name) > 0; }
const TensorInfo& H5Checkpoint::tensor_info(const std::string& name) const { return impl_->entry(name).info; }
DType H5Checkpoint::tensor_dtype(const std::string& name) const { return impl_->entry(name).dtype; }
std::string H5Checkpoint::origin_type(const std::string& name) const { return impl_->entry(name).origin; }

std::vector<float> H5Checkpoint::read_f32(const std::string& name) const {
    const Entry& e = impl_->entry(name);
    const int64_t cols = e.info.shape.size() > 1 ? e.info.shape.back() : 0;
    return guarded(impl_->path, [&] { return impl_->read_block_f32(e, 0, e.info.shape[0], 0, cols); });
}

namespace {

// Rows [row0, row0 + n_rows) must lie inside the tensor.
void check_rows(const std::string& path, const std::string& name, const std::vector<int64_t>& shape, int64_t row0,
                int64_t n_rows) {
    if (row0 < 0 || n_rows < 0 || row0 > shape[0] - n_rows) {
        throw Error(str("checkpoint ", path, ": rows [", row0, ", ", row0 + n_rows, ") are outside tensor ", name,
                        " of shape ", shape_str(shape)));
    }
}

}  // namespace

std::vector<float> H5Checkpoint::read_rows_f32(const std::string& name, int64_t row0, int64_t n_rows) const {
    const Entry& e = impl_->entry(name);
    check_rows(impl_->path, name, e.info.shape, row0, n_rows);
    const int64_t cols = e.info.shape.size() > 1 ? e.info.shape.back() : 0;
    return guarded(impl_->path, [&] { return impl_->read_block_f32(e, row0, n_rows, 0, cols); });
}

std::vector<float> H5Checkpoint::read_cols_f32(const std::string& name, int64_t col0, int64_t n_cols) const {
    const Entry& e = impl_->entry(name);
    if (e.info.shape.size() != 2) {
        throw Error(str("checkpoint ", impl_->path, ": column reads need a 2-D tensor; ", name, " has shape ",
                        shape_str(e.info.shape)));
    }
    const int64_t cols = e.info.shape[1];
    if (col0 < 0 || n_cols < 0 || col0 > cols - n_cols) {
        throw Error(str("checkpoint ", impl_->path, ": columns [", col0, ", ", col0 + n_cols, ") are outside tensor ",
                        name, " of shape ", shape_str(e.info.shape)));
    }
    return guarded(impl_->path, [&] { return impl_->read_block_f32(e, 0, e.info.shape[0], col0, n_cols); });
}

std::vector<uint8_t> H5Checkpoint::read_rows_raw(const std::string& name, int64_t row0, int64_t n_rows) const {
    const Entry& e = impl_->entry(name);
    check_rows(impl_->path, name, e.info.shape, row0, n_rows);
    const int64_t cols = e.info.shape.size() > 1 ? e.info.shape.back() : 0;
    return guarded(impl_->path, [&] {
        std::vector<uint8_t> out;
        if (dtype_is_quantized(e.dtype)) {
            out = impl_->read_bytes(e, row0, n_rows, 0, e.row_bytes);
        } else if (e.dtype == DType::dtype_f32) {
            // The file's own type as memory type: HDF5 copies the bits, no conversion.
            const std::vector<hsize_t> count = impl_->box_count(e, n_rows, cols);
            size_t n = 1;
            for (hsize_t c : count) n *= c;
            out.resize(n * sizeof(float));
            impl_->read_box(e, impl_->box_start(e, row0, 0), count, H5T_IEEE_F32LE, out.data());
        } else {
            const std::vector<uint16_t> v = impl_->read_block_raw16(e, row0, n_rows, 0, cols);
            out.resize(v.size() * sizeof(uint16_t));
            if (!v.empty()) std::memcpy(out.data(), v.data(), out.size());
        }
        return out;
    });
}

std::vector<uint16_t> H5Checkpoint::read_raw16(const std::string& name, int64_t row0, int64_t n_rows) const {
    const Entry& e = impl_->entry(name);
    if (e.dtype == DType::dtype_f32 || dtype_is_quantized(e.dtype)) {
        throw Error(str("checkpoint ", impl_->path, ": tensor ", name, " is stored as ", dtype_name(e.dtype),
                        ", not as 16-bit floats"));
    }
    const int64_t rows = e.info.shape[0];
    if (n_rows < 0) n_rows = rows - row0;
    if (row0 < 0 || n_rows < 0 || row0 > rows - n_rows) {
        throw Error(str("checkpoint ", impl_->path, ": rows [", row0, ", ", row0 + n_rows, ") are outside tensor ",
                        name, " of shape ", shape_str(e.info.shape)));
    }
    const int64_t cols = e.info.shape.size() > 1 ? e.info.shape.back() : 0;
    return guarded(impl_->path, [&] { return impl_->read_block_raw16(e, row0, n_rows, 0, cols); });
}

}  // namespace gridlm
