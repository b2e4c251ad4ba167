// Readers for the tab-separated golden files of tests/reference/golden (tokenizer and chat):
// hex-encoded texts and space-separated id lists, '#' lines being comments.
#pragma once

#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace gridlm::test {

inline std::vector<std::string> split_tabs(const std::string& line) {
    std::vector<std::string> fields;
    size_t start = 0;
    while (true) {
        const size_t tab = line.find('\t', start);
        fields.push_back(line.substr(start, tab == std::string::npos ? std::string::npos : tab - start));
        if (tab == std::string::npos) break;
        start = tab + 1;
    }
    return fields;
}

inline std::string from_hex(const std::string& hex) {
    if (hex.size() % 2 != 0) throw std::runtime_error("odd-length hex field: " + hex);
    std::string out;
    out.reserve(hex.size() / 2);
    for (size_t i = 0; i < hex.size(); i += 2) out += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
    return out;
}

inline std::vector<int32_t> parse_ids(const std::string& field) {
    std::vector<int32_t> ids;
    std::istringstream in(field);
    int32_t id;
    while (in >> id) ids.push_back(id);
    return ids;
}

// Non-comment, non-empty lines of a golden file, split at tabs.
inline std::vector<std::vector<std::string>> read_tsv(const std::string& text) {
    std::vector<std::vector<std::string>> rows;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#') continue;
        rows.push_back(split_tabs(line));
    }
    return rows;
}

}  // namespace gridlm::test
