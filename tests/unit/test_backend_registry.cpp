// The backend registry (engine/backend/registry.h): which kinds a build lists and what an
// entry that cannot run here says.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "engine/backend/registry.h"
#include "test_support.h"

using namespace gridlm;

namespace {

// The registry itself: both CPU kinds run everywhere; a CUDA build lists "cuda" with a reason
// whenever it cannot run.
TEST(BackendRegistry, ListsTheCompiledBackends) {
    const std::vector<BackendKind> kinds = backend_kinds();
    std::vector<std::string> names;
    for (const BackendKind& k : kinds) names.push_back(k.name);
#ifdef GRIDLM_HAVE_CUDA
    EXPECT_EQ(names, (std::vector<std::string>{"cpu", "cpu-scalar", "cuda"}));
    const BackendKind& cuda = kinds.back();
    if (cuda.unavailable.empty()) {  // a GPU is here: the entry makes a working backend
        const auto be = cuda.make(1);
        ASSERT_NE(be, nullptr);
        EXPECT_EQ(be->name(), "cuda");
        EXPECT_FALSE(be->host_memory());
    } else {
        test::expect_has(test::error_of([&] { cuda.make(1); }), {"cuda", cuda.unavailable});
    }
#else
    EXPECT_EQ(names, (std::vector<std::string>{"cpu", "cpu-scalar"}));
#endif
    for (const BackendKind& k : kinds) {
        if (k.name.starts_with("cpu")) {
            EXPECT_EQ(k.unavailable, "") << k.name;
        }
    }
}

}  // namespace
