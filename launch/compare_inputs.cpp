// The input files of `gridlm compare` and the matching of output lines to records (see compare_inputs.h).
#include "launch/compare_inputs.h"

#include <fstream>
#include <optional>

#include "engine/core/error.h"

namespace gridlm {

using json = nlohmann::ordered_json;

namespace {

bool is_blank(const std::string& s) { return s.find_first_not_of(" \t\r\n\f\v") == std::string::npos; }

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// Line by line as the prompt reader reads: '\r' stripped, a UTF-8 BOM on the first line dropped.
class LineReader {
public:
    explicit LineReader(const std::string& path) : path_(path), in_(path, std::ios::binary) {
        if (!in_) throw Error(str("cannot open ", path));
    }
    bool next(std::string& line) {
        if (!std::getline(in_, line)) {
            if (in_.bad()) throw Error(str("read error on ", path_, " after line ", line_no_));
            return false;
        }
        ++line_no_;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line_no_ == 1 && line.compare(0, 3, "\xEF\xBB\xBF") == 0) line.erase(0, 3);
        return true;
    }
    // The next line that is not blank.
    bool next_content(std::string& line) {
        while (next(line))
            if (!is_blank(line)) return true;
        return false;
    }
    int64_t line_no() const { return line_no_; }

private:
    std::string path_;
    std::ifstream in_;
    int64_t line_no_ = 0;
};

class LineWriter {
public:
    explicit LineWriter(const std::string& path) : path_(path), out_(path, std::ios::binary | std::ios::trunc) {
        if (!out_) throw Error(str("cannot create ", path));
    }
    void put(const std::string& line) { out_ << line << '\n'; }
    void close() {
        out_.close();
        if (!out_) throw Error(str("cannot write ", path_));
    }

private:
    std::string path_;
    std::ofstream out_;
};

// The JSON object of a line, or nullopt when it is none (bad JSON, bad UTF-8, another value).
std::optional<json> parse_object(const std::string& line) {
    if (!is_valid_utf8(line)) return std::nullopt;
    json j = json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return std::nullopt;
    return j;
}

// A record's id as the prompt reader gives it: a string as it is, an integer in decimal.
std::string record_id(const json& record) {
    auto it = record.find("id");
    if (it == record.end()) return "";
    if (it->is_string()) return it->get<std::string>();
    if (it->is_number_integer()) return it->dump();
    return "";
}

}  // namespace

int64_t write_compare_prompts(const std::string& prompts, InputFormat format, const std::string& out) {
    if (format == InputFormat::input_format_auto) format = PromptReader(prompts, PromptReaderOptions{}).format();
    LineReader in(prompts);
    LineWriter w(out);
    int64_t n = 0;
    std::string line;
    while (in.next_content(line)) {
        ++n;
        const std::string line_id = std::to_string(in.line_no());
        if (format == InputFormat::input_format_txt) {
            if (!is_valid_utf8(line)) {
                w.put(line);  // not UTF-8: the record fails in generate as it would from the .txt
                continue;
            }
            w.put(dump(json{{"id", line_id}, {"prompt", line}, {"logprobs", true}}));
            continue;
        }
        std::optional<json> j = parse_object(line);
        if (!j) {
            w.put(line);
            continue;
        }
        if (format == InputFormat::input_format_openai) {
            auto cid = j->find("custom_id");
            auto body = j->find("body");
            if (cid == j->end() || !cid->is_string() || body == j->end() || !body->is_object()) {
                w.put(line);  // generate's reader says what is missing
                continue;
            }
            json r = {{"id", *cid}};
            for (auto it = body->begin(); it != body->end(); ++it)
                if (it.key() != "id") r[it.key()] = it.value();
            j = std::move(r);
        } else if (!j->contains("id")) {
            (*j)["id"] = line_id;  // the reader's rule for a record without id, kept after the rewrite
        }
        (*j)["logprobs"] = true;
        w.put(dump(*j));
    }
    w.close();
    return n;
}

CompareRecordIds read_compare_record_ids(const std::string& prompts) {
    CompareRecordIds r;
    LineReader in(prompts);
    std::string line;
    while (in.next(line)) {
        std::optional<json> j = parse_object(line);
        r.ids.push_back(j ? record_id(*j) : std::string());
        if (!r.ids.back().empty()) r.index.emplace(r.ids.back(), r.ids.size() - 1);
    }
    return r;
}

void for_each_output_line(const std::string& output, const CompareRecordIds& records,
                          const std::function<void(size_t, const json&)>& fn) {
    LineReader in(output);
    std::string line;
    while (in.next_content(line)) {
        const std::string where = str(output, " line ", in.line_no());
        std::optional<json> j = parse_object(line);
        if (!j) throw Error(str(where, ": not a JSON object"));
        size_t index = 0;
        if (auto l = j->find("line"); l != j->end() && l->is_number_integer()) {
            const int64_t v = l->get<int64_t>();
            if (v < 1 || v > (int64_t)records.ids.size())
                throw Error(
                    str(where, ": \"line\" ", v, " is not a line of the prompts (", records.ids.size(), " records)"));
            index = (size_t)(v - 1);
        } else {
            auto id = j->find("id");
            if (id == j->end() || !id->is_string()) throw Error(str(where, ": no \"id\" string and no \"line\""));
            auto it = records.index.find(id->get<std::string>());
            if (it == records.index.end())
                throw Error(str(where, ": id '", id->get<std::string>(), "' is no record of the prompts"));
            index = it->second;
        }
        try {
            fn(index, *j);
        } catch (const json::exception& e) {  // a field of an unexpected type
            throw Error(str(where, ": ", e.what()));
        }
    }
}

int64_t write_cross_score_input(const std::string& prompts, const std::string& generated, const std::string& out) {
    const CompareRecordIds records = read_compare_record_ids(prompts);
    std::vector<json> completion(records.ids.size());  // null: not scored
    for_each_output_line(generated, records, [&](size_t i, const json& line) {
        auto lps = line.find("logprobs");
        if (line.contains("error") || !line.contains("text") || lps == line.end() || !lps->is_array() || lps->empty())
            return;
        json ids = json::array();
        for (const json& t : *lps) ids.push_back(t.at("token_id"));
        completion[i] = std::move(ids);
    });
    LineReader in(prompts);
    LineWriter w(out);
    int64_t n = 0;
    std::string line;
    for (size_t i = 0; in.next(line) && i < completion.size(); ++i) {
        if (completion[i].is_null()) continue;
        std::optional<json> j = parse_object(line);
        GRIDLM_ASSERT(j.has_value());  // a record that produced a completion is an object
        (*j)["completion"] = std::move(completion[i]);
        w.put(dump(*j));
        ++n;
    }
    w.close();
    return n;
}

}  // namespace gridlm
