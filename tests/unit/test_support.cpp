// Helpers shared by the unit tests.
#include "test_support.h"

#include <cstdlib>
#include <filesystem>
#include <map>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "io/gguf.h"
#include "io/gguf_model.h"

namespace gridlm::test {

std::string models_dir() {
    if (const char* env = std::getenv("GRIDLM_MODELS"); env && *env) return env;
    return GRIDLM_MODELS_DEFAULT;
}

std::string model_path(const std::string& file) {
    std::string path = models_dir() + "/" + file;
    if (!std::filesystem::exists(path)) {
        throw std::runtime_error("model file " + path +
                                 " is missing: run launch/fetch_models.sh (or launch/setup.sh) first");
    }
    return path;
}

const TokenizerData& gguf_tokenizer(const std::string& file) {
    static std::map<std::string, TokenizerData> cache;
    auto it = cache.find(file);
    if (it == cache.end()) {
        GgufFile gguf(model_path(file), /*need_tensor_data=*/false);
        it = cache.emplace(file, gguf_tokenizer_data(gguf)).first;
    }
    return it->second;
}

std::time_t template_golden_now() {
    std::tm tm{};
    tm.tm_year = 2026 - 1900;
    tm.tm_mon = 0;
    tm.tm_mday = 15;
    tm.tm_hour = 10;
    tm.tm_min = 30;
    tm.tm_isdst = -1;
    return std::mktime(&tm);
}

std::string golden_path(const std::string& file) { return std::string(GRIDLM_GOLDEN_DIR) + "/" + file; }

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot open " + path);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// Directories made by temp_dir(), removed when the test process exits normally.
static std::vector<std::string>& temp_dirs() {
    static std::vector<std::string> dirs;
    return dirs;
}

static void remove_temp_dirs() {
    std::error_code ec;
    for (const auto& d : temp_dirs()) std::filesystem::remove_all(d, ec);
}

std::string temp_dir() {
    std::string templ = (std::filesystem::temp_directory_path() / "gridlm-test-XXXXXX").string();
    if (!mkdtemp(templ.data())) throw std::runtime_error("mkdtemp failed");
    if (temp_dirs().empty()) std::atexit(remove_temp_dirs);
    temp_dirs().push_back(templ);
    return templ;
}

}  // namespace gridlm::test
