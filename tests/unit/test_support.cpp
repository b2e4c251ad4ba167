// Helpers shared by the unit tests.
#include "test_support.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

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

std::string golden_path(const std::string& file) { return std::string(GRIDLM_GOLDEN_DIR) + "/" + file; }

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot open " + path);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::string temp_dir() {
    std::string templ = (std::filesystem::temp_directory_path() / "gridlm-test-XXXXXX").string();
    if (!mkdtemp(templ.data())) throw std::runtime_error("mkdtemp failed");
    return templ;
}

}  // namespace gridlm::test
