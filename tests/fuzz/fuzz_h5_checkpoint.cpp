// libFuzzer target for the native HDF5 checkpoint reader. Raw byte mutations of an .h5 file mostly
// exercise libhdf5's own container parsing, which is not gridlm's code and not robust against
// corrupt files (HDF5 1.10.8 copies a corrupt global-heap length in H5HG_read, found at once).
// So the input is a program of edits instead: the first byte picks a valid base checkpoint
// (tests/fuzz/h5_base/: f32, bf16, q8_0, vocabulary-only), each following op changes it through
// the HDF5 API (set, retype or delete an attribute; replace a dataset with another type, rank,
// shape or contents; delete an object or put a group in a dataset's place), and the result,
// a well-formed HDF5 file holding any schema violation, is opened with H5Checkpoint (serial
// sec2 driver, no MPI_Init needed), its tokenizer built and its tensors read whole, by rows,
// by columns and raw. A gridlm::Error is an expected outcome; a crash, a sanitizer report, a
// leak or a hang is a bug.
//   mkdir -p /tmp/fuzz_h5_checkpoint && build-fuzz/bin/fuzz_h5_checkpoint /tmp/fuzz_h5_checkpoint
//   tests/fuzz/corpus/fuzz_h5_checkpoint
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/core/error.h"
#include "engine/tokenizer/tokenizer.h"
#include "fuzz_support.h"
#include "io/h5_checkpoint.h"
#include "io/h5_util.h"
#include "io/hf_json.h"

namespace {

using gridlm::h5::Handle;

const std::vector<std::string>& base_files() {
    static const std::vector<std::string> files = [] {
        const std::string dir = std::string(GRIDLM_SOURCE_DIR) + "/tests/fuzz/h5_base/";
        std::vector<std::string> v;
        for (const char* f : {"tiny_f32.h5", "tiny_bf16.h5", "tiny_q8_0.h5", "tiny_vocab_only.h5"}) {
            v.push_back(gridlm::hf::read_text_file(dir + f));
        }
        return v;
    }();
    return files;
}

const char* const attr_names[] = {"gridlm_format",
                                  "format_version",
                                  "vocab_only",
                                  "arch",
                                  "name",
                                  "n_vocab",
                                  "n_embd",
                                  "n_layer",
                                  "n_head",
                                  "n_head_kv",
                                  "head_dim",
                                  "n_ff",
                                  "n_ctx_train",
                                  "rope_theta",
                                  "rms_eps",
                                  "tied_embeddings",
                                  "attn_bias",
                                  "yarn_factor",
                                  "n_expert",
                                  "q_lora_rank",
                                  "kv_lora_rank",
                                  "model",
                                  "pre",
                                  "bos_id",
                                  "eos_id",
                                  "pad_id",
                                  "add_bos",
                                  "chat_template",
                                  "chat_template_tool_use",
                                  "dtype",
                                  "source_type",
                                  "block_size",
                                  "block_bytes",
                                  "shape"};

const char* const dtype_values[] = {"f32",  "f16",  "bf16", "q8_0", "q4_0", "q4_1",
                                    "q5_0", "q5_1", "q4_k", "q5_k", "q6_k", "x"};

// Number of links in a group, 0 when it cannot be read.
hsize_t n_links(hid_t group) {
    H5G_info_t info;
    return H5Gget_info(group, &info) < 0 ? 0 : info.nlinks;
}

// A path to an object of the file: the root, a group, a tokenizer dataset or the i-th tensor.
std::string pick_object(FuzzedDataProvider& in, hid_t file) {
    switch (in.ConsumeIntegralInRange<int>(0, 6)) {
        case 0:
            return "/";
        case 1:
            return "/config";
        case 2:
            return "/tokenizer";
        case 3:
            return in.PickValueInArray({"/tokenizer/tokens", "/tokenizer/token_types", "/tokenizer/merges"});
        case 4:
            return "/tensors";
        default: {
            Handle g(H5Gopen2(file, "/tensors", H5P_DEFAULT));
            const hsize_t n = g.get() < 0 ? 0 : n_links(g);
            if (n == 0) return "/tensors/model.norm.weight";
            const hsize_t i = in.ConsumeIntegralInRange<hsize_t>(0, n - 1);
            char name[512] = {0};
            if (H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof(name), H5P_DEFAULT) < 0) {
                return "/tensors/model.norm.weight";
            }
            return std::string("/tensors/") + name;
        }
    }
}

// One of the element types the reader meets or must refuse.
Handle pick_type(FuzzedDataProvider& in) {
    switch (in.ConsumeIntegralInRange<int>(0, 9)) {
        case 0:
            return Handle(H5Tcopy(H5T_IEEE_F32LE));
        case 1:
            return gridlm::h5::f16_file_type();
        case 2:
            return gridlm::h5::bf16_file_type();
        case 3:
            return Handle(H5Tcopy(H5T_STD_U8LE));
        case 4:
            return Handle(H5Tcopy(H5T_STD_I32LE));
        case 5:
            return Handle(H5Tcopy(H5T_STD_I64LE));
        case 6:
            return gridlm::h5::utf8_string_type();
        case 7: {
            Handle t(H5Tcopy(H5T_C_S1));
            H5Tset_size(t, in.ConsumeIntegralInRange<size_t>(1, 16));
            return t;
        }
        case 8:
            return Handle(H5Tcopy(H5T_IEEE_F64LE));
        default:
            return Handle(H5Tcopy(H5T_STD_I8LE));
    }
}

// Dims of rank 0..3: mostly small, sometimes huge (chunked, never written: all fill value).
std::vector<hsize_t> pick_dims(FuzzedDataProvider& in, bool* huge) {
    std::vector<hsize_t> dims(in.ConsumeIntegralInRange<int>(0, 3));
    *huge = false;
    for (hsize_t& d : dims) {
        if (in.ConsumeIntegralInRange<int>(0, 15) == 0) {
            d = in.ConsumeIntegralInRange<hsize_t>(1, hsize_t(1) << 40);
            *huge = true;
        } else {
            d = in.ConsumeIntegralInRange<hsize_t>(0, 600);
        }
    }
    return dims;
}

bool is_vlen_string(hid_t type) { return H5Tis_variable_str(type) > 0; }

// Writes `n` elements of `type` from the input (strings: each a short byte string).
void write_values(FuzzedDataProvider& in, hid_t obj, hid_t type, size_t n, bool attribute) {
    if (is_vlen_string(type)) {
        std::vector<std::string> strs(n);
        std::vector<const char*> ptrs(n);
        for (size_t i = 0; i < n; ++i) {
            strs[i] = in.ConsumeRandomLengthString(24);
            ptrs[i] = strs[i].c_str();
        }
        attribute ? H5Awrite(obj, type, ptrs.data()) : H5Dwrite(obj, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data());
        return;
    }
    std::vector<uint8_t> bytes = in.ConsumeBytes<uint8_t>(n * H5Tget_size(type));
    bytes.resize(n * H5Tget_size(type), 0);
    attribute ? H5Awrite(obj, type, bytes.data()) : H5Dwrite(obj, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, bytes.data());
}

void set_attribute(FuzzedDataProvider& in, hid_t file) {
    const std::string obj_path = pick_object(in, file);
    const std::string name =
        in.ConsumeBool() ? std::string(in.PickValueInArray(attr_names)) : in.ConsumeRandomLengthString(16);
    Handle obj(H5Oopen(file, obj_path.c_str(), H5P_DEFAULT));
    if (obj.get() < 0 || name.empty()) return;
    if (H5Aexists(obj, name.c_str()) > 0) H5Adelete(obj, name.c_str());
    Handle type;
    std::string text;
    if (name == "dtype" && in.ConsumeBool()) {
        type = gridlm::h5::utf8_string_type();
        text = in.PickValueInArray(dtype_values);
    } else {
        type = pick_type(in);
    }
    const bool scalar = !text.empty() || in.ConsumeIntegralInRange<int>(0, 3) != 0;
    const hsize_t n = scalar ? 1 : in.ConsumeIntegralInRange<hsize_t>(0, 4);
    Handle space(scalar ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &n, nullptr));
    Handle attr(H5Acreate2(obj, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT));
    if (attr.get() < 0) return;
    if (!text.empty()) {
        const char* p = text.c_str();
        H5Awrite(attr, type, &p);
        return;
    }
    write_values(in, attr, type, n, true);
}

void replace_dataset(FuzzedDataProvider& in, hid_t file) {
    std::string path = pick_object(in, file);
    if (path == "/" || path == "/config" || path == "/tokenizer" || path == "/tensors") {
        path = "/tensors/" + in.ConsumeRandomLengthString(24);
    }
    // Keep the attributes the reader looks at, so that the new dataset gets past the first checks.
    std::string dtype;
    if (H5Lexists(file, path.c_str(), H5P_DEFAULT) > 0) {
        Handle old(H5Oopen(file, path.c_str(), H5P_DEFAULT));
        if (old.get() >= 0 && gridlm::h5::has_attr(old, "dtype")) {
            try {
                dtype = gridlm::h5::read_attr_string(old, "dtype", path);
            } catch (const gridlm::Error&) {
            }
        }
        old.reset();
        H5Ldelete(file, path.c_str(), H5P_DEFAULT);
    }
    Handle type = pick_type(in);
    bool huge = false;
    const std::vector<hsize_t> dims = pick_dims(in, &huge);
    Handle space(dims.empty() ? H5Screate(H5S_SCALAR) : H5Screate_simple((int)dims.size(), dims.data(), nullptr));
    Handle dcpl(H5Pcreate(H5P_DATASET_CREATE));
    if (huge) {
        std::vector<hsize_t> chunk(dims.size(), 1);
        H5Pset_chunk(dcpl, (int)chunk.size(), chunk.data());
    }
    Handle dset(H5Dcreate2(file, path.c_str(), type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT));
    if (dset.get() < 0) return;
    if (!dtype.empty()) gridlm::h5::write_attr_string(dset, "dtype", in.ConsumeBool() ? dtype : "f32");
    size_t n = 1;
    for (hsize_t d : dims) n *= d;
    if (!huge && n <= (size_t(1) << 16)) write_values(in, dset, type, n, false);
}

void apply_edits(FuzzedDataProvider& in, const std::string& path) {
    gridlm::h5::ErrorSilencer quiet;
    Handle file(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT));
    if (file.get() < 0) __builtin_trap();  // the base files are valid: a broken harness
    for (int ops = 0; ops < 8 && in.remaining_bytes() > 0; ++ops) {
        try {
            switch (in.ConsumeIntegralInRange<int>(0, 4)) {
                case 0:
                case 1:
                    set_attribute(in, file);
                    break;
                case 2: {
                    const std::string obj = pick_object(in, file);
                    Handle o(H5Oopen(file, obj.c_str(), H5P_DEFAULT));
                    const std::string name = in.PickValueInArray(attr_names);
                    if (o.get() >= 0 && H5Aexists(o, name.c_str()) > 0) H5Adelete(o, name.c_str());
                    break;
                }
                case 3:
                    replace_dataset(in, file);
                    break;
                default: {
                    const std::string obj = pick_object(in, file);
                    if (obj == "/") break;
                    H5Ldelete(file, obj.c_str(), H5P_DEFAULT);
                    if (in.ConsumeBool()) Handle(H5Gcreate2(file, obj.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
                    break;
                }
            }
        } catch (const gridlm::Error&) {
        }
    }
    H5Eclear2(H5E_DEFAULT);
}

void read_tensor(const gridlm::H5Checkpoint& ck, const gridlm::TensorInfo& t) {
    ck.tensor_dtype(t.name);
    ck.origin_type(t.name);
    if (t.shape.empty() || t.shape[0] <= 0) return;
    // The reader allocates what a (validated) shape asks for; a file may declare a tensor far
    // larger than memory, so reads are kept to at most 1 Mi values each.
    constexpr int64_t max_values = int64_t(1) << 20;
    if (t.numel() <= max_values) ck.read_f32(t.name);
    if (t.numel() / t.shape[0] > max_values) return;
    ck.read_rows_f32(t.name, 0, 1);
    ck.read_rows_raw(t.name, 0, 1);
    if (t.shape.size() == 2 && t.shape[1] > 0 && t.shape[0] <= 4096) ck.read_cols_f32(t.name, 0, 1);
    const gridlm::DType d = ck.tensor_dtype(t.name);
    if (d == gridlm::DType::dtype_f16 || d == gridlm::DType::dtype_bf16) ck.read_raw16(t.name, 0, 1);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    FuzzedDataProvider in(data, size);
    const std::string& base = base_files()[in.ConsumeIntegralInRange<size_t>(0, base_files().size() - 1)];
    const std::string path = gridlm::fuzz::write_scratch("model.h5", base);
    apply_edits(in, path);
    try {
        const gridlm::H5Checkpoint ck(path);
        ck.format_version();
        ck.vocab_only();
        ck.config();
        try {
            const gridlm::Tokenizer tok(ck.tokenizer());
            tok.decode(tok.encode("Hello <|im_start|> wörld\n"));
        } catch (const gridlm::Error&) {
        }
        for (const gridlm::TensorInfo& t : ck.tensors()) {
            try {
                read_tensor(ck, t);
            } catch (const gridlm::Error&) {
            }
        }
    } catch (const gridlm::Error&) {
    }
    return 0;
}
