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

// Every tensor of SmolLM2 through GGUF -> HDF5 (f32) -> read back equals GgufTensorSource::read_f32.
}  // namespace
}  // namespace gridlm
