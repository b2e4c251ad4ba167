// Resumable job output: manifest, journal and recovery after a kill (see job_journal.h).
#include "io/job_journal.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/core/error.h"

namespace gridlm {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::string journal_path_for(const std::string& output) { return output + ".journal"; }
std::string manifest_path_for(const std::string& output) { return output + ".manifest.json"; }

namespace {

uint64_t fnv_update(uint64_t h, const char* p, size_t n) {
    for (size_t i = 0; i < n; ++i) {
        h ^= (unsigned char)p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

std::string hex(uint64_t h) {
    char buf[17];
    std::snprintf(buf, sizeof(buf), "%016llx", (unsigned long long)h);
    return buf;
}

std::FILE* open_or_throw(const std::string& path, const char* mode, const char* what) {
    std::FILE* f = std::fopen(path.c_str(), mode);
    if (!f) throw Error(str("cannot ", what, " ", path, ": ", std::strerror(errno)));
    return f;
}

// Bytes [off, off + n) of an open file (fewer at its end).
std::string read_at(std::FILE* f, uint64_t off, size_t n) {
    std::string buf(n, '\0');
    if (fseeko(f, (off_t)off, SEEK_SET) != 0) return {};
    buf.resize(std::fread(buf.data(), 1, n, f));
    return buf;
}

struct Entry {
    uint64_t index = 0;
    uint64_t end = 0;
    bool ok = true;
};

}  // namespace

std::string hash_file(const std::string& path) {
    std::FILE* f = open_or_throw(path, "rb", "read");
    uint64_t h = 0xcbf29ce484222325ull;
    std::vector<char> buf(1 << 20);
    size_t n;
    while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) h = fnv_update(h, buf.data(), n);
    const bool bad = std::ferror(f) != 0;
    std::fclose(f);
    if (bad) throw Error(str("cannot read ", path));
    return hex(h);
}

std::string fingerprint_file(const std::string& path) {
    std::FILE* f = open_or_throw(path, "rb", "read");
    struct stat st {};
    ::fstat(fileno(f), &st);
    const uint64_t size = (uint64_t)st.st_size;
    constexpr uint64_t edge = 4 << 20, block = 64 << 10, blocks = 64;
    uint64_t h = fnv_update(0xcbf29ce484222325ull, reinterpret_cast<const char*>(&size), sizeof(size));
    auto take = [&](uint64_t off, uint64_t n) {
        const std::string b = read_at(f, off, (size_t)n);
        h = fnv_update(h, b.data(), b.size());
    };
    take(0, edge);
    if (size > 2 * edge) {
        for (uint64_t i = 0; i < blocks; ++i) take(edge + (size - 2 * edge) / blocks * i, block);
        take(size - edge, edge);
    }
    std::fclose(f);
    return str(size, ":", hex(h));
}

std::string JobManifest::to_json() const {
    json j = {{"gridlm_manifest", 1}, {"input", input}, {"checkpoint", checkpoint}, {"options", options}};
    return j.dump(2) + "\n";
}

JobManifest JobManifest::read(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(str("cannot read the job manifest ", path));
    std::stringstream ss;
    ss << in.rdbuf();
    try {
        const json j = json::parse(ss.str());
        if (!j.is_object() || j.value("gridlm_manifest", 0) != 1) throw Error("not a gridlm manifest");
        JobManifest m;
        m.input = j.at("input").get<std::string>();
        m.checkpoint = j.at("checkpoint").get<std::string>();
        m.options = j.at("options").get<std::map<std::string, std::string>>();
        return m;
    } catch (const std::exception& e) {
        throw Error(str("job manifest ", path, " is unreadable: ", e.what()));
    }
}

void JobManifest::write(const std::string& path) const {
    const std::string tmp = path + ".tmp";
    std::FILE* f = open_or_throw(tmp, "wb", "write");
    const std::string text = to_json();
    const bool ok =
        std::fwrite(text.data(), 1, text.size(), f) == text.size() && std::fflush(f) == 0 && ::fsync(fileno(f)) == 0;
    std::fclose(f);
    if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0)
        throw Error(str("cannot write the job manifest ", path, ": ", std::strerror(errno)));
}

std::vector<std::string> manifest_changes(const JobManifest& before, const JobManifest& now) {
    std::vector<std::string> out;
    if (before.input != now.input) out.push_back("the input file");
    if (before.checkpoint != now.checkpoint) out.push_back("the checkpoint");
    auto value = [](const std::map<std::string, std::string>& m, const std::string& k) {
        auto it = m.find(k);
        return it == m.end() ? std::string("(unset)") : it->second;
    };
    std::map<std::string, std::string> keys = before.options;
    keys.insert(now.options.begin(), now.options.end());
    for (const auto& [k, v] : keys) {
        const std::string a = value(before.options, k), b = value(now.options, k);
        if (a != b) out.push_back(str("option ", k, " (", a, " -> ", b, ")"));
    }
    return out;
}

RecoveredOutput recover_output(const std::string& output, bool retry_errors) {
    RecoveredOutput r;
    const std::string jpath = journal_path_for(output);
    std::error_code ec;
    const uint64_t out_size = fs::exists(output, ec) ? (uint64_t)fs::file_size(output, ec) : 0;
    std::vector<Entry> entries;
    if (fs::exists(jpath, ec)) {
        std::ifstream in(jpath, std::ios::binary);
        std::string line;
        int64_t line_no = 0;
        uint64_t prev = 0;
        while (std::getline(in, line)) {
            ++line_no;
            Entry e;
            int ok = 0;
            char extra = 0;
            if (std::sscanf(line.c_str(), "%llu %llu %d %c", (unsigned long long*)&e.index, (unsigned long long*)&e.end,
                            &ok, &extra) != 3 ||
                (ok != 0 && ok != 1) || e.end <= prev) {
                if (in.peek() == EOF) break;  // the last entry, torn by a kill
                throw Error(str(jpath, " line ", line_no, ": not a journal entry: '", line.substr(0, 80), "'"));
            }
            if (e.end > out_size) break;  // its line did not reach the disk
            e.ok = ok == 1;
            entries.push_back(e);
            prev = e.end;
        }
    }
    const uint64_t keep = entries.empty() ? 0 : entries.back().end;
    r.cut_bytes = (int64_t)(out_size - keep);

    if (retry_errors && std::any_of(entries.begin(), entries.end(), [](const Entry& e) { return !e.ok; })) {
        // Rewrite OUT without the error lines, and the journal with the new offsets.
        const std::string tmp_out = output + ".retry.tmp", tmp_j = jpath + ".tmp";
        std::FILE* in = open_or_throw(output, "rb", "read");
        std::FILE* out = open_or_throw(tmp_out, "wb", "write");
        std::FILE* jo = open_or_throw(tmp_j, "wb", "write");
        uint64_t start = 0, written = 0;
        bool good = true;
        std::vector<Entry> kept;
        for (const Entry& e : entries) {
            if (e.ok) {
                const std::string bytes = read_at(in, start, (size_t)(e.end - start));
                good = good && bytes.size() == e.end - start &&
                       std::fwrite(bytes.data(), 1, bytes.size(), out) == bytes.size();
                written += bytes.size();
                std::fprintf(jo, "%llu %llu 1\n", (unsigned long long)e.index, (unsigned long long)written);
                kept.push_back({e.index, written, true});
            } else {
                ++r.retried;
            }
            start = e.end;
        }
        good = good && std::fflush(out) == 0 && ::fsync(fileno(out)) == 0 && std::fflush(jo) == 0 &&
               ::fsync(fileno(jo)) == 0;
        std::fclose(in);
        std::fclose(out);
        std::fclose(jo);
        if (!good || std::rename(tmp_out.c_str(), output.c_str()) != 0 ||
            std::rename(tmp_j.c_str(), jpath.c_str()) != 0)
            throw Error(str("cannot rewrite ", output, " for --retry-errors: ", std::strerror(errno)));
        entries = std::move(kept);
    } else {
        if (out_size != keep && ::truncate(output.c_str(), (off_t)keep) != 0)
            throw Error(str("cannot cut ", output, " back to its last complete line: ", std::strerror(errno)));
        // The journal is rewritten too, so that a torn or excess entry does not stay in it.
        const std::string tmp_j = jpath + ".tmp";
        std::FILE* jo = open_or_throw(tmp_j, "wb", "write");
        for (const Entry& e : entries)
            std::fprintf(jo, "%llu %llu %d\n", (unsigned long long)e.index, (unsigned long long)e.end, e.ok ? 1 : 0);
        const bool good = std::fflush(jo) == 0 && ::fsync(fileno(jo)) == 0;
        std::fclose(jo);
        if (!good || std::rename(tmp_j.c_str(), jpath.c_str()) != 0)
            throw Error(str("cannot rewrite the journal ", jpath, ": ", std::strerror(errno)));
    }
    for (const Entry& e : entries) {
        r.done.push_back(e.index);
        r.failed += e.ok ? 0 : 1;
    }
    r.kept = (int64_t)entries.size();
    r.size = entries.empty() ? 0 : entries.back().end;
    return r;
}

}  // namespace gridlm
