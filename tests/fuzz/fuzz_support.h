// Helpers shared by the libFuzzer targets: a per-process scratch directory in /dev/shm (RAM) for
// the readers that only take a path, removed when the process exits.
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "engine/core/error.h"
#include "engine/core/tensor_source.h"

namespace gridlm::fuzz {

// Reads every tensor of `src` the ways the model loader does (stored type, all values as f32, the
// first row raw); a reader's refusal (gridlm::Error) of one tensor does not stop the others.
inline void read_every_tensor(const TensorSource& src) {
    for (const TensorInfo& t : src.tensors()) {
        try {
            src.stored_type(t.name);
            src.read_f32(t.name);
            if (!t.shape.empty() && t.shape[0] > 0) src.read_rows_raw(t.name, 0, 1);
        } catch (const Error&) {
        }
    }
}

// /dev/shm/gridlm-fuzz-<pid>/ (or $TMPDIR when /dev/shm is missing), created on first use.
inline const std::filesystem::path& scratch_dir() {
    struct Dir {
        std::filesystem::path path;
        Dir() {
            std::error_code ec;
            std::filesystem::path base = "/dev/shm";
            if (!std::filesystem::is_directory(base, ec)) base = std::filesystem::temp_directory_path();
            path = base / ("gridlm-fuzz-" + std::to_string(::getpid()));
            std::filesystem::create_directories(path);
        }
        ~Dir() {
            std::error_code ec;
            std::filesystem::remove_all(path, ec);
        }
    };
    static const Dir dir;
    return dir.path;
}

// Writes the bytes to scratch_dir()/name (replacing it) and returns the path. Aborts when the
// file cannot be written: that is a broken harness, not a finding.
inline std::string write_scratch(const std::string& name, const uint8_t* data, size_t size) {
    const std::string path = (scratch_dir() / name).string();
    std::FILE* f = std::fopen(path.c_str(), "wb");
    if (!f || (size > 0 && std::fwrite(data, 1, size, f) != size) || std::fclose(f) != 0) {
        std::perror(path.c_str());
        std::abort();
    }
    return path;
}

inline std::string write_scratch(const std::string& name, const std::string& text) {
    return write_scratch(name, reinterpret_cast<const uint8_t*>(text.data()), text.size());
}

}  // namespace gridlm::fuzz
