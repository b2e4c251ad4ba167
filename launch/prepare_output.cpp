// The output file of a generate job before it starts (see prepare_output.h).
#include "launch/prepare_output.h"

#include <unistd.h>

#include <filesystem>
#include <vector>

#include "engine/core/error.h"
#include "launch/commands.h"

namespace gridlm {

namespace fs = std::filesystem;

void check_output_writable(const std::string& path) {
    if (path == "-") return;
    const fs::path p(path);
    std::error_code ec;
    if (fs::is_directory(p, ec)) throw Error(str("output '", path, "' is a directory"));
    const fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
    if (!fs::is_directory(dir, ec))
        throw Error(str("cannot write output file ", path, ": directory ", dir.string(), " does not exist"));
    const bool ok = fs::exists(p, ec) ? ::access(path.c_str(), W_OK) == 0 : ::access(dir.c_str(), W_OK) == 0;
    if (!ok) throw Error(str("cannot write output file ", path, ": permission denied"));
}

bool output_started(const std::string& output) {
    std::error_code ec;
    return (fs::exists(output, ec) && fs::file_size(output, ec) > 0) || fs::exists(journal_path_for(output), ec);
}

FreshOutputGuard::~FreshOutputGuard() {
    if (output_.empty()) return;
    std::error_code ec;
    fs::remove(manifest_path_for(output_), ec);
    for (const std::string& f : {output_, journal_path_for(output_)})
        if (fs::exists(f, ec) && fs::file_size(f, ec) == 0) fs::remove(f, ec);
}

RecoveredOutput prepare_output(const std::string& output, const std::string& prompts, const std::string& model,
                               std::map<std::string, std::string> options, bool resume, bool retry_errors) {
    if (output == "-") {
        if (resume) throw UsageError("--resume needs an output file, not standard output");
        return {};
    }
    if (resume && prompts == "-") throw UsageError("--resume needs a prompts file, not standard input");
    JobManifest now;
    now.input = prompts == "-" ? "stdin" : hash_file(prompts);
    now.checkpoint = fingerprint_file(model);
    now.options = std::move(options);
    std::error_code ec;
    const bool exists = output_started(output);
    if (exists && !resume)
        throw Error(str("output ", output, " already exists; --resume continues the job that wrote it (or remove ",
                        "it and its .journal / .manifest.json to start over)"));
    if (!exists) {
        now.write(manifest_path_for(output));
        return {};
    }
    const std::string mpath = manifest_path_for(output);
    if (!fs::exists(mpath, ec))
        throw Error(str("--resume: ", output, " has no manifest (", mpath, "); it was not written by a resumable ",
                        "gridlm job"));
    const std::vector<std::string> changes = manifest_changes(JobManifest::read(mpath), now);
    if (!changes.empty()) {
        std::string what;
        for (const auto& c : changes) what += (what.empty() ? "" : ", ") + c;
        throw Error(str("--resume: ", what, " changed since the job that wrote ", output,
                        " started; resume with the same ones, or start a new output"));
    }
    return recover_output(output, retry_errors);
}

}  // namespace gridlm
