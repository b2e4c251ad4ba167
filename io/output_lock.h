// One job per output file: the job that writes OUT holds an exclusive lock on OUT.lock for its
// whole life, and a second job started on the same OUT (a --resume while the first still runs, the
// same command submitted twice) refuses to start instead of interleaving lines with it.
//
// The lock is an open-file-description lock (fcntl F_OFD_SETLK, Linux; POSIX F_SETLK elsewhere)
// on OUT.lock: the kernel drops it when the holder exits or is killed (SIGKILL included), so a
// lock file left by a dead job never blocks its --resume. NFS and Lustre (mounted with
// `flock`) carry such locks between hosts; on a file system without locks the job warns and goes
// on. The file holds "host=<name> pid=<pid> started=<UTC time> job_id=<id>" for the refusal
// message; it is removed when the holder releases the lock.
#pragma once

#include <memory>
#include <string>

namespace gridlm {

std::string lock_path_for(const std::string& output);  // OUT.lock

class OutputLock {
public:
    // Takes the lock of OUT (never waits). Throws Error naming OUT, the lock file and the holder's
    // host, pid and start time when another process holds it, or when OUT.lock cannot be created.
    // `job_id` is written into the file (may be empty).
    static std::unique_ptr<OutputLock> acquire(const std::string& output, const std::string& job_id);
    ~OutputLock();  // removes OUT.lock, then releases the lock
    OutputLock(const OutputLock&) = delete;
    OutputLock& operator=(const OutputLock&) = delete;

    const std::string& path() const { return path_; }
    bool locked() const { return locked_; }  // false on a file system without locks (warned)

private:
    OutputLock(std::string path, int fd, bool locked) : path_(std::move(path)), fd_(fd), locked_(locked) {}
    std::string path_;
    int fd_ = -1;
    bool locked_ = false;
};

}  // namespace gridlm
