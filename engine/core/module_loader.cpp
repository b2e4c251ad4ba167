// Loading optional shared-library parts of gridlm (module_loader.h).
#include "engine/core/module_loader.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <vector>

#include "engine/core/error.h"

namespace gridlm {

namespace {

std::vector<std::string> search_dirs() {
    if (const char* dir = std::getenv("GRIDLM_MODULE_DIR"); dir && *dir) return {dir};
    std::vector<std::string> dirs;
    std::error_code ec;
    const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (!ec) dirs.push_back(exe.parent_path().string());
    return dirs;
}

}  // namespace

std::string module_search_path() {
    std::string path;
    for (const std::string& d : search_dirs()) path += (path.empty() ? "" : ":") + d;
    return path;
}

void* load_module(const std::string& file_name, std::string* why) {
    for (const std::string& dir : search_dirs()) {
        const std::string file = dir + "/" + file_name;
        if (access(file.c_str(), F_OK) != 0) continue;
        if (void* handle = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL)) return handle;
        const char* err = dlerror();
        if (why) *why = str("cannot load ", file, ": ", err ? err : "unknown dlopen error");
        return nullptr;
    }
    if (why)
        *why = str(file_name, " was not found in ", module_search_path(),
                   " (it is built next to the gridlm executable; $GRIDLM_MODULE_DIR names another folder)");
    return nullptr;
}

void* module_symbol(void* handle, const char* symbol) { return handle ? dlsym(handle, symbol) : nullptr; }

}  // namespace gridlm
