// Project error type for user and data errors (tier 3 of the house error tiers), and the
// assert used for internal bugs (tier 1).
#pragma once

#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <stdexcept>
#include <string>

namespace gridlm {

// A problem the user can act on: a bad file, a bad option, a malformed record. The message
// names the file / line / record and what was expected. Caught at the top of launch/.
class Error : public std::runtime_error {
public:
    explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

// Builds a message from streamable parts: throw Error(str("bad value ", v, " in ", path)).
template <typename... Args>
std::string str(const Args&... args) {
    std::ostringstream os;
    (os << ... << args);
    return os.str();
}

// Reports "internal error: assertion `EXPR` failed at FILE:LINE" through the logger (log.cpp)
// and aborts.
[[noreturn]] void assert_fail(const char* expr, const char* file, int line);

}  // namespace gridlm

// Internal invariant; aborts with file/line. Never used for user input.
#define GRIDLM_ASSERT(expr) ((expr) ? (void)0 : ::gridlm::assert_fail(#expr, __FILE__, __LINE__))
