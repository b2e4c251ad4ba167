// Native HDF5 checkpoint errors: the writer refuses bad input and leaves no file; the reader
// names the file and what is missing or wrong (files damaged here through the HDF5 API).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "checkpoint_fixtures.h"
#include "engine/core/error.h"
#include "io/h5_checkpoint.h"
#include "io/h5_util.h"
#include "test_support.h"

namespace gridlm {
namespace {

namespace fs = std::filesystem;
using h5::Handle;
using namespace gridlm::test;

TEST(H5Checkpoint, WriterRefusesBadInputAndLeavesNoFile) {
    const std::string dir = test::temp_dir();
    const std::string path = dir + "/bad.h5";
    const ModelConfig cfg = tiny_config();
    // A missing tensor is found before anything is written.
    MemorySource partial;
    partial.add("model.embed_tokens.weight", {40, 8}, std::vector<float>(320));
    std::string err = error_of([&] { write_h5_checkpoint(path, cfg, tiny_tokenizer(), &partial, DType::dtype_f32); });
    EXPECT_NE(err.find("model.layers.0.input_layernorm.weight"), std::string::npos) << err;
    // A wrong shape names both shapes.
    MemorySource wrong = tiny_weights(cfg);
    ModelConfig cfg2 = cfg;
    cfg2.n_ff = 16;
    err = error_of([&] { write_h5_checkpoint(path, cfg2, tiny_tokenizer(), &wrong, DType::dtype_f32); });
    EXPECT_NE(err.find("[12, 8]"), std::string::npos) << err;
    EXPECT_NE(err.find("[16, 8]"), std::string::npos) << err;
    // A failure halfway removes the temporary file and leaves no output.
    MemorySource failing = tiny_weights(cfg);
    failing.fail_at = 3;
    err = error_of([&] { write_h5_checkpoint(path, cfg, tiny_tokenizer(), &failing, DType::dtype_f32); });
    EXPECT_NE(err.find("simulated read failure"), std::string::npos) << err;
    EXPECT_FALSE(fs::exists(path));
    EXPECT_FALSE(fs::exists(path + ".tmp"));
    // f16 overflow would turn weights into inf: refused with a hint.
    MemorySource huge = tiny_weights(cfg);
    huge.add("extra.huge", {2}, {1.0f, 1e5f});
    err = error_of([&] { write_h5_checkpoint(path, cfg, tiny_tokenizer(), &huge, DType::dtype_f16); });
    EXPECT_NE(err.find("f16 range"), std::string::npos) << err;
    EXPECT_FALSE(fs::exists(path));
    // Tokenizer larger than the model's vocabulary.
    TokenizerData big_tok = tiny_tokenizer();
    big_tok.tokens.resize(41, "x");
    big_tok.token_types.resize(41, 1);
    err = error_of([&] { write_h5_checkpoint(path, cfg, big_tok, nullptr, DType::dtype_f32); });
    EXPECT_NE(err.find("41 tokens"), std::string::npos) << err;
}

// Writes a good checkpoint, lets `edit` damage it through the HDF5 API, and returns the error
// H5Checkpoint gives for it.
template <typename F>
std::string open_error_after(F&& edit, std::string* path_out = nullptr) {
    const std::string path = test::temp_dir() + "/edit.h5";
    const ModelConfig cfg = tiny_config();
    const MemorySource src = tiny_weights(cfg);
    write_h5_checkpoint(path, cfg, tiny_tokenizer(), &src, DType::dtype_f32);
    {
        h5::ErrorSilencer quiet;
        Handle file(H5_CHECK(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT)));
        edit(file.get());
    }
    if (path_out) *path_out = path;
    return error_of([&] { H5Checkpoint ck(path); });
}

TEST(H5Checkpoint, OpenErrorsNameFileAndProblem) {
    const std::string dir = test::temp_dir();
    expect_has(error_of([&] { H5Checkpoint ck(dir + "/nope.h5"); }), {dir + "/nope.h5", "no such file"});
    expect_has(error_of([&] { H5Checkpoint ck(dir); }), {dir, "directory"});
    std::ofstream(dir + "/text.h5") << "this is not HDF5";
    expect_has(error_of([&] { H5Checkpoint ck(dir + "/text.h5"); }), {dir + "/text.h5", "not an HDF5 file"});
    { Handle f(H5Fcreate((dir + "/plain.h5").c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT)); }
    expect_has(error_of([&] { H5Checkpoint ck(dir + "/plain.h5"); }), {dir + "/plain.h5", "not a gridlm checkpoint"});

    std::string path;
    std::string err = open_error_after(
        [](hid_t f) {
            H5_CHECK(H5Adelete(f, "format_version"));
            h5::write_attr_int(f, "format_version", 7, H5T_STD_I32LE);
        },
        &path);
    expect_has(err, {path, "format_version 7", "version 1"});
    err = open_error_after(
        [](hid_t f) { H5_CHECK(H5Ldelete(f, "tensors/model.layers.1.mlp.up_proj.weight", H5P_DEFAULT)); }, &path);
    expect_has(err, {path, "missing dataset /tensors/model.layers.1.mlp.up_proj.weight", "[12, 8]"});
    err = open_error_after([](hid_t f) { H5_CHECK(H5Ldelete(f, "tokenizer", H5P_DEFAULT)); }, &path);
    expect_has(err, {path, "missing group /tokenizer"});
    err = open_error_after([](hid_t f) { H5_CHECK(H5Adelete_by_name(f, "config", "n_head_kv", H5P_DEFAULT)); }, &path);
    expect_has(err, {path, "/config", "missing attribute 'n_head_kv'"});
    err = open_error_after([](hid_t f) { H5_CHECK(H5Ldelete(f, "tokenizer/merges", H5P_DEFAULT)); }, &path);
    expect_has(err, {path, "/tokenizer", "missing dataset 'merges'"});
    err = open_error_after(
        [](hid_t f) {
            H5_CHECK(H5Adelete_by_name(f, "config", "n_ff", H5P_DEFAULT));
            Handle g(H5_CHECK(H5Gopen2(f, "config", H5P_DEFAULT)));
            h5::write_attr_int(g, "n_ff", 16, H5T_STD_I64LE);
        },
        &path);
    expect_has(err, {path, "model.layers.0.mlp.gate_proj.weight", "[12, 8]", "[16, 8]"});

    // Unknown tensor names are errors too.
    const std::string good = test::temp_dir() + "/good.h5";
    const MemorySource src = tiny_weights(tiny_config());
    write_h5_checkpoint(good, tiny_config(), tiny_tokenizer(), &src, DType::dtype_f32);
    H5Checkpoint ck(good);
    expect_has(error_of([&] { ck.read_f32("model.layers.9.mlp.up_proj.weight"); }),
               {good, "no tensor 'model.layers.9.mlp.up_proj.weight'"});
    expect_has(error_of([&] { ck.read_raw16("extra.big"); }), {good, "f32"});
}

// Writes a version-2 checkpoint whose extra.q is a [4, 512] q4_k tensor ([4, 288] bytes), lets
// `edit` damage it through the HDF5 API, and returns the error H5Checkpoint gives for it.
template <typename F>
std::string block_open_error_after(F&& edit, std::string* path_out) {
    const std::string path = test::temp_dir() + "/blocks.h5";
    const ModelConfig cfg = tiny_config();
    MemorySource src = tiny_weights(cfg);
    src.add("extra.q", {4, 512}, test::randn(4 * 512, 3, 0.1f));
    write_h5_checkpoint(path, cfg, tiny_tokenizer(), &src,
                        [](const TensorInfo& t) { return t.name == "extra.q" ? DType::dtype_q4_k : DType::dtype_f32; });
    {
        h5::ErrorSilencer quiet;
        Handle file(H5_CHECK(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT)));
        edit(file.get());
    }
    *path_out = path;
    return error_of([&] { H5Checkpoint ck(path); });
}

// Replaces an attribute of /tensors/extra.q.
void set_attr(hid_t f, const char* name, const std::string& value) {
    Handle d(H5_CHECK(H5Dopen2(f, "tensors/extra.q", H5P_DEFAULT)));
    H5_CHECK(H5Adelete(d, name));
    h5::write_attr_string(d, name, value);
}
void set_attr(hid_t f, const char* name, int64_t value) {
    Handle d(H5_CHECK(H5Dopen2(f, "tensors/extra.q", H5P_DEFAULT)));
    H5_CHECK(H5Adelete(d, name));
    h5::write_attr_int(d, name, value, H5T_STD_I64LE);
}
void set_attr(hid_t f, const char* name, const std::vector<int64_t>& value) {
    Handle d(H5_CHECK(H5Dopen2(f, "tensors/extra.q", H5P_DEFAULT)));
    H5_CHECK(H5Adelete(d, name));
    h5::write_attr_int_array(d, name, value);
}

// A dataset of `type` and `dims` with the attributes of a q8_0 tensor of logical shape [rows, 64].
void add_fake_block_tensor(hid_t f, const char* name, hid_t type, std::vector<hsize_t> dims) {
    Handle space(H5_CHECK(H5Screate_simple((int)dims.size(), dims.data(), nullptr)));
    Handle d(H5_CHECK(
        H5Dcreate2(f, (std::string("tensors/") + name).c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)));
    h5::write_attr_string(d, "dtype", "q8_0");
    h5::write_attr_int_array(d, "shape", {(int64_t)dims[0], 64});
    h5::write_attr_int(d, "block_size", 32, H5T_STD_I64LE);
    h5::write_attr_int(d, "block_bytes", 34, H5T_STD_I64LE);
}

TEST(H5Checkpoint, BlockTensorErrorsNameFileTensorAndValues) {
    const std::string t = "/tensors/extra.q";
    // The error of a damaged file must name the file and hold every part.
    auto expect_error = [&](auto edit, std::initializer_list<std::string> parts) {
        std::string path;
        const std::string err = block_open_error_after(edit, &path);
        expect_has(err, {path});
        expect_has(err, parts);
    };
    expect_error([](hid_t f) { set_attr(f, "dtype", std::string("q3_k")); }, {t, "dtype is 'q3_k'", "q4_0", "q6_k"});
    expect_error(
        [](hid_t f) {
            H5_CHECK(H5Adelete(f, "format_version"));
            h5::write_attr_int(f, "format_version", 1, H5T_STD_I32LE);
        },
        {t, "'q4_k' needs format_version 2", "says 1"});
    expect_error([](hid_t f) { set_attr(f, "block_bytes", int64_t{140}); },
                 {t, "block_bytes is 140", "q4_k block has 144"});
    expect_error([](hid_t f) { set_attr(f, "block_size", int64_t{32}); }, {t, "block_size is 32", "has 256"});
    expect_error(
        [](hid_t f) {
            set_attr(f, "shape", std::vector<int64_t>{4, 500});
        },
        {t, "rows of 500 values", "q4_k blocks of 256"});
    expect_error(
        [](hid_t f) {
            set_attr(f, "shape", std::vector<int64_t>{4, 768});
        },
        {t, "rows of 288 bytes", "768 values takes 432", "row_bytes mismatch"});
    expect_error(
        [](hid_t f) {
            set_attr(f, "shape", std::vector<int64_t>{5, 512});
        },
        {t, "shape is [5, 512]", "4 rows"});
    expect_error(
        [](hid_t f) {
            Handle d(H5_CHECK(H5Dopen2(f, "tensors/extra.q", H5P_DEFAULT)));
            H5_CHECK(H5Adelete(d, "shape"));
        },
        {t, "missing attribute 'shape'"});
    expect_error(
        [](hid_t f) {
            add_fake_block_tensor(f, "extra.i16", H5T_STD_I16LE, {3, 68});
        },
        {"/tensors/extra.i16", "q8_0", "uint8"});
    expect_error([](hid_t f) { add_fake_block_tensor(f, "extra.flat", H5T_STD_U8LE, {68}); },
                 {"/tensors/extra.flat", "2-D dataset", "[68]"});
    // The undamaged file opens and dequantises the tensor.
    const std::string good = test::temp_dir() + "/good-blocks.h5";
    MemorySource src = tiny_weights(tiny_config());
    src.add("extra.q", {4, 512}, test::randn(4 * 512, 3, 0.1f));
    write_h5_checkpoint(good, tiny_config(), tiny_tokenizer(), &src,
                        [](const TensorInfo& i) { return i.name == "extra.q" ? DType::dtype_q4_k : DType::dtype_f32; });
    EXPECT_EQ(H5Checkpoint(good).read_f32("extra.q").size(), 2048u);
}

// A dataset whose dimensions multiply past 64 bits is refused with the dataset and shape named
// (found by fuzz_h5_checkpoint: the reader computed the element count with a signed overflow and
// opened the file; tests/fuzz/corpus/fuzz_h5_checkpoint/numel_overflow).
TEST(H5Checkpoint, HugeDatasetShapeIsAClearError) {
    std::string path;
    const std::string err = open_error_after(
        [](hid_t f) {
            const hsize_t dims[2] = {hsize_t(1) << 32, hsize_t(1) << 32};
            const hsize_t chunk[2] = {1024, 1024};
            Handle space(H5_CHECK(H5Screate_simple(2, dims, nullptr)));
            Handle dcpl(H5_CHECK(H5Pcreate(H5P_DATASET_CREATE)));
            H5_CHECK(H5Pset_chunk(dcpl, 2, chunk));  // never written: the file stays small
            Handle d(
                H5_CHECK(H5Dcreate2(f, "tensors/extra.huge", H5T_IEEE_F32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT)));
            h5::write_attr_string(d, "dtype", "f32");
        },
        &path);
    expect_has(err, {path, "/tensors/extra.huge", "[4294967296, 4294967296]", "more elements"});
}

// A tokenizer dataset claiming 2^40 entries is refused before anything is allocated (found by
// fuzz_h5_checkpoint: the reader sized a vector from the length in the file; the corpus input
// huge_token_types).
TEST(H5Checkpoint, HugeTokenizerDatasetIsAClearError) {
    for (const char* name : {"token_types", "tokens", "merges"}) {
        std::string path;
        const std::string err = open_error_after(
            [&](hid_t f) {
                const std::string ds = std::string("tokenizer/") + name;
                H5_CHECK(H5Ldelete(f, ds.c_str(), H5P_DEFAULT));
                const hsize_t dims[1] = {hsize_t(1) << 40};
                const hsize_t chunk[1] = {4096};
                Handle space(H5_CHECK(H5Screate_simple(1, dims, nullptr)));
                Handle dcpl(H5_CHECK(H5Pcreate(H5P_DATASET_CREATE)));
                H5_CHECK(H5Pset_chunk(dcpl, 1, chunk));
                Handle type =
                    std::string(name) == "token_types" ? Handle(H5Tcopy(H5T_STD_I32LE)) : h5::utf8_string_type();
                Handle d(H5_CHECK(H5Dcreate2(f, ds.c_str(), type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT)));
            },
            &path);
        expect_has(err, {path, "/tokenizer", std::string("'") + name + "'", "1099511627776", "4194304"});
    }
}

// A config claiming 2^31 - 1 layers is refused at once (found by fuzz_h5_checkpoint: the reader
// listed the tensors such a model needs, billions of names, before finding one missing).
TEST(H5Checkpoint, AbsurdLayerCountIsAClearError) {
    std::string path;
    const std::string err = open_error_after(
        [](hid_t f) {
            H5_CHECK(H5Adelete_by_name(f, "config", "n_layer", H5P_DEFAULT));
            Handle g(H5_CHECK(H5Gopen2(f, "config", H5P_DEFAULT)));
            h5::write_attr_int(g, "n_layer", INT32_MAX, H5T_STD_I64LE);
        },
        &path);
    expect_has(err, {path, "/config", "n_layer = 2147483647", "1048576 tensors"});
}

// Every tensor of SmolLM2 through GGUF -> HDF5 (f32) -> read back equals GgufTensorSource::read_f32.
}  // namespace
}  // namespace gridlm
