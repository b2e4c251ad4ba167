// The output lock (see output_lock.h).
#include "io/output_lock.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>

#include "engine/core/error.h"
#include "engine/core/log.h"

namespace gridlm {

std::string lock_path_for(const std::string& output) { return output + ".lock"; }

namespace {

#ifdef F_OFD_SETLK
constexpr int kSetLock = F_OFD_SETLK;  // per open file: two handles in one process conflict too
#else
constexpr int kSetLock = F_SETLK;
#endif

// 0 when taken; the errno otherwise (EAGAIN/EACCES: held by someone else).
int try_lock(int fd) {
    struct flock fl;
    std::memset(&fl, 0, sizeof(fl));
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    return ::fcntl(fd, kSetLock, &fl) == 0 ? 0 : errno;
}

std::string read_holder(int fd) {
    char buf[512];
    const ssize_t n = ::pread(fd, buf, sizeof(buf) - 1, 0);
    std::string s(buf, n > 0 ? (size_t)n : 0);
    while (!s.empty() && (s.back() == '\n' || s.back() == '\0')) s.pop_back();
    return s.empty() ? std::string("a process that has not written its name yet") : s;
}

std::string holder_text() {
    char host[256] = {0};
    ::gethostname(host, sizeof(host) - 1);
    char when[32] = {0};
    const std::time_t now = std::time(nullptr);
    struct tm utc;
    ::gmtime_r(&now, &utc);
    std::strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &utc);
    return str("host=", host, " pid=", (long)::getpid(), " started=", when);
}

bool same_file(int fd, const std::string& path) {
    struct stat a, b;
    return ::fstat(fd, &a) == 0 && ::stat(path.c_str(), &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

}  // namespace

std::unique_ptr<OutputLock> OutputLock::acquire(const std::string& output, const std::string& job_id) {
    const std::string path = lock_path_for(output);
    // A holder removes the file before it lets go; whoever locked the old file in between must try
    // again on the new one, or two jobs would each hold "the" lock.
    for (int attempt = 0; attempt < 100; ++attempt) {
        const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0)
            throw Error(str("cannot create the lock file ", path, " of output ", output, ": ", std::strerror(errno)));
        const int err = try_lock(fd);
        if (err == EAGAIN || err == EACCES) {
            const std::string holder = read_holder(fd);
            ::close(fd);
            throw Error(str("output ", output, " is in use by another gridlm job (", holder, "; lock file ", path,
                            "); wait for that job to end, or stop it, before starting or resuming this one"));
        }
        const bool locked = err == 0;
        if (locked && !same_file(fd, path)) {
            ::close(fd);
            continue;
        }
        if (!locked) {
            log_warning("output_lock", str("cannot lock ", path, " (", std::strerror(err),
                                           "): the file system does not support locks, so ",
                                           "nothing stops a second job from writing ", output, " at the same time"));
        }
        const std::string text = holder_text() + (job_id.empty() ? "" : " job_id=" + job_id) + "\n";
        if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, text.data(), text.size(), 0) != (ssize_t)text.size()) {
            const int e = errno;
            ::close(fd);
            throw Error(str("cannot write the lock file ", path, ": ", std::strerror(e)));
        }
        return std::unique_ptr<OutputLock>(new OutputLock(path, fd, locked));
    }
    throw Error(str("cannot take the lock ", path, ": it keeps being replaced by other jobs"));
}

OutputLock::~OutputLock() {
    if (fd_ < 0) return;
    if (same_file(fd_, path_)) ::unlink(path_.c_str());
    ::close(fd_);
}

}  // namespace gridlm
