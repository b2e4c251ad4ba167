// libFuzzer target for the Hugging Face JSON importers. The same bytes are tried as each of the
// three files of a model directory, the other two being the seed corpus's tiny model
// (tests/fuzz/corpus/fuzz_hf_json/, written by make_seed_corpus.py):
//   config.json           -> HfCheckpoint without weights (model config, then the tokenizer sized
//                            by its vocab_size);
//   tokenizer.json        -> hf_tokenizer_data, then a Tokenizer built from it encodes and decodes;
//   tokenizer_config.json -> the same.
// A gridlm::Error is an expected outcome; a crash, a sanitizer report, a leak or a hang is a bug.
//   mkdir -p /tmp/fuzz_hf_json && build-fuzz/bin/fuzz_hf_json -dict=tests/fuzz/fuzz_hf_json.dict /tmp/fuzz_hf_json
//   tests/fuzz/corpus/fuzz_hf_json
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "engine/core/error.h"
#include "engine/tokenizer/tokenizer.h"
#include "fuzz_support.h"
#include "io/hf_checkpoint.h"
#include "io/hf_json.h"

namespace {

namespace fs = std::filesystem;

const std::string& reference_file(const char* name) {
    static const std::string dir = std::string(GRIDLM_SOURCE_DIR) + "/tests/fuzz/corpus/fuzz_hf_json/";
    static const std::string config = gridlm::hf::read_text_file(dir + "config.json");
    static const std::string tokenizer = gridlm::hf::read_text_file(dir + "tokenizer.json");
    static const std::string tokenizer_config = gridlm::hf::read_text_file(dir + "tokenizer_config.json");
    const std::string n = name;
    return n == "config.json" ? config : n == "tokenizer.json" ? tokenizer : tokenizer_config;
}

// A model directory in the scratch area holding `input` as `fuzzed` and the reference files as
// the others listed.
std::string make_dir(const char* dir_name, const char* fuzzed, const std::string& input,
                     std::initializer_list<const char*> others) {
    const fs::path dir = gridlm::fuzz::scratch_dir() / dir_name;
    fs::create_directories(dir);
    gridlm::fuzz::write_scratch(std::string(dir_name) + "/" + fuzzed, input);
    for (const char* o : others) gridlm::fuzz::write_scratch(std::string(dir_name) + "/" + o, reference_file(o));
    return dir.string();
}

void use_tokenizer(const gridlm::TokenizerData& data) {
    try {
        const gridlm::Tokenizer tok(data);
        const std::vector<int32_t> ids = tok.encode("Hi <|im_start|>user\nwörld 12345!\n");
        tok.decode(ids);
        tok.decode(ids, {.skip_special = true});
        tok.end_of_generation_ids();
    } catch (const gridlm::Error&) {
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string input(reinterpret_cast<const char*>(data), size);
    try {
        const gridlm::HfCheckpoint ckpt(
            make_dir("cfg", "config.json", input, {"tokenizer.json", "tokenizer_config.json"}),
            /*need_tensor_data=*/false);
        use_tokenizer(ckpt.tokenizer());
    } catch (const gridlm::Error&) {
    }
    try {
        use_tokenizer(
            gridlm::hf_tokenizer_data(make_dir("tok", "tokenizer.json", input, {"tokenizer_config.json"}), 0));
    } catch (const gridlm::Error&) {
    }
    try {
        use_tokenizer(
            gridlm::hf_tokenizer_data(make_dir("tokcfg", "tokenizer_config.json", input, {"tokenizer.json"}), 0));
    } catch (const gridlm::Error&) {
    }
    return 0;
}
