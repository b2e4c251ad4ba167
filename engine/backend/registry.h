// The compute backends this build knows, by name: how to make one, and why one cannot run on this
// machine. Tests run over every entry; a launcher can pick one by name.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/backend/backend.h"

namespace gridlm {

struct BackendKind {
    std::string name{};         // "cpu", "cpu-scalar", "cuda"
    std::string unavailable{};  // why it cannot run here; empty when it can
    // A backend with n_threads host threads (0: the cores this process may run on). Throws
    // gridlm::Error, naming the reason, when unavailable is not empty.
    std::function<std::unique_ptr<Backend>(int n_threads)> make{};
};

// Every backend compiled in: "cpu" (AVX2+FMA kernels when the build targets them), "cpu-scalar"
// (the portable scalar kernels) and, in CUDA builds, "cuda" (probes for a device on each call).
std::vector<BackendKind> backend_kinds();

}  // namespace gridlm
