// Unit tests of the output lock: a second holder is refused with the first one's host and pid, the
// lock goes with its holder (released, or the holder killed), and a stale lock file does not block.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "engine/core/error.h"
#include "io/output_lock.h"
#include "test_support.h"

using namespace gridlm;
namespace fs = std::filesystem;

namespace {

std::string host_name() {
    char host[256] = {0};
    ::gethostname(host, sizeof(host) - 1);
    return host;
}

std::string refusal(const std::string& out) {
    try {
        OutputLock::acquire(out, "");
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST(OutputLock, SecondHolderIsRefusedWithTheFirstsName) {
    const std::string out = test::temp_dir() + "/out.jsonl";
    auto first = OutputLock::acquire(out, "job-42");
    ASSERT_TRUE(first->locked());
    EXPECT_TRUE(fs::exists(lock_path_for(out)));
    const std::string msg = refusal(out);
    EXPECT_NE(msg.find("in use by another gridlm job"), std::string::npos) << msg;
    EXPECT_NE(msg.find("host=" + host_name()), std::string::npos) << msg;
    EXPECT_NE(msg.find(str("pid=", (long)::getpid())), std::string::npos) << msg;
    EXPECT_NE(msg.find("job_id=job-42"), std::string::npos) << msg;
    EXPECT_NE(msg.find(lock_path_for(out)), std::string::npos) << msg;
    first.reset();  // released: the file goes and the next job gets the lock
    EXPECT_FALSE(fs::exists(lock_path_for(out)));
    EXPECT_NO_THROW(OutputLock::acquire(out, ""));
}

TEST(OutputLock, StaleLockFileDoesNotBlock) {
    const std::string out = test::temp_dir() + "/stale.jsonl";
    std::ofstream(lock_path_for(out)) << "host=elsewhere pid=1 started=2026-01-01T00:00:00Z\n";
    auto lock = OutputLock::acquire(out, "");
    EXPECT_TRUE(lock->locked());
    std::ifstream in(lock_path_for(out));
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_NE(text.find(str("pid=", (long)::getpid())), std::string::npos) << text;
}

// A holder killed with SIGKILL cannot clean up: the kernel drops its lock, so --resume can start.
TEST(OutputLock, KilledHolderReleasesTheLock) {
    const std::string out = test::temp_dir() + "/killed.jsonl";
    int ready[2];
    ASSERT_EQ(::pipe(ready), 0);
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        auto lock = OutputLock::acquire(out, "");
        char c = 1;
        (void)!::write(ready[1], &c, 1);
        for (;;) ::pause();
    }
    char c = 0;
    ASSERT_EQ(::read(ready[0], &c, 1), 1);
    const std::string msg = refusal(out);
    EXPECT_NE(msg.find(str("pid=", (long)child)), std::string::npos) << msg;
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    EXPECT_TRUE(fs::exists(lock_path_for(out)));  // left behind, but free
    EXPECT_NO_THROW(OutputLock::acquire(out, ""));
    ::close(ready[0]);
    ::close(ready[1]);
}

TEST(OutputLock, UncreatableLockFileIsAnError) {
    try {
        OutputLock::acquire(test::temp_dir() + "/no/such/dir/out.jsonl", "");
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("cannot create the lock file"), std::string::npos) << e.what();
    }
}
