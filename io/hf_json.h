// JSON helpers for the Hugging Face importers: whole-file parsing and typed field access whose
// errors name the file and the field.
#pragma once

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>

#include "engine/core/error.h"

namespace gridlm::hf {

using json = nlohmann::json;

// A whole file's bytes; Error naming the file when it cannot be opened.
inline std::string read_text_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(str("cannot open ", path, ": ", std::strerror(errno)));
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

inline json read_json_file(const std::string& path) {
    const std::string text = read_text_file(path);
    try {
        json j = json::parse(text);
        if (!j.is_object()) throw Error(str(path, ": expected a JSON object at the top level"));
        return j;
    } catch (const json::exception& e) {
        throw Error(str(path, " is not valid JSON: ", e.what()));
    }
}

// Absent or null fields give nullopt; present fields of the wrong type are errors.
inline std::optional<int64_t> opt_int(const json& obj, const char* field, const std::string& file) {
    if (!obj.contains(field) || obj[field].is_null()) return std::nullopt;
    const json& v = obj[field];
    if (!v.is_number_integer()) throw Error(str(file, ": field '", field, "' should be an integer, not ", v.dump()));
    return v.get<int64_t>();
}

inline int64_t get_int(const json& obj, const char* field, const std::string& file) {
    auto v = opt_int(obj, field, file);
    if (!v) throw Error(str(file, ": missing integer field '", field, "'"));
    return *v;
}

inline std::optional<double> opt_number(const json& obj, const char* field, const std::string& file) {
    if (!obj.contains(field) || obj[field].is_null()) return std::nullopt;
    const json& v = obj[field];
    if (!v.is_number()) throw Error(str(file, ": field '", field, "' should be a number, not ", v.dump()));
    return v.get<double>();
}

inline double get_number(const json& obj, const char* field, const std::string& file) {
    auto v = opt_number(obj, field, file);
    if (!v) throw Error(str(file, ": missing number field '", field, "'"));
    return *v;
}

inline std::optional<std::string> opt_string(const json& obj, const char* field, const std::string& file) {
    if (!obj.contains(field) || obj[field].is_null()) return std::nullopt;
    const json& v = obj[field];
    if (!v.is_string()) throw Error(str(file, ": field '", field, "' should be a string, not ", v.dump()));
    return v.get<std::string>();
}

inline std::string get_string(const json& obj, const char* field, const std::string& file) {
    auto v = opt_string(obj, field, file);
    if (!v) throw Error(str(file, ": missing string field '", field, "'"));
    return *v;
}

inline bool opt_bool(const json& obj, const char* field, const std::string& file, bool dflt) {
    if (!obj.contains(field) || obj[field].is_null()) return dflt;
    const json& v = obj[field];
    if (!v.is_boolean()) throw Error(str(file, ": field '", field, "' should be true or false, not ", v.dump()));
    return v.get<bool>();
}

}  // namespace gridlm::hf
