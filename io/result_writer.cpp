// Durable JSONL result writer (see result_writer.h): output shapes, input-order reordering,
// flush per line and periodic fsync so a killed job leaves every finished record on disk.
#include "io/result_writer.h"

#include "io/job_journal.h"
#include "io/prompt_reader.h"

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <nlohmann/json.hpp>

#include "engine/core/error.h"
#include "engine/core/hash.h"

namespace gridlm {

using json = nlohmann::ordered_json;  // keys in the order written: id first

OutputOrder output_order_from_name(std::string_view name) {
    if (name == "finished") return OutputOrder::output_order_finished;
    if (name == "input") return OutputOrder::output_order_input;
    throw Error(str("unknown output order '", name, "' (expected input or finished)"));
}

namespace {

// Invalid UTF-8 (a token cut in the middle of a character) is replaced by U+FFFD at dump time
// instead of throwing, so a line is always valid JSON.
std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

json byte_array(const std::string& s) {
    json a = json::array();
    for (unsigned char c : s) a.push_back((int)c);
    return a;
}

// Stable ids for the OpenAI shape: derived from the record, so reruns give the same ids.
std::string hex_id(const RecordRef& ref, uint64_t salt) {
    char buf[17];
    std::snprintf(buf, sizeof(buf), "%016llx",
                  (unsigned long long)splitmix64(fnv1a64(ref.id) ^ splitmix64(ref.index + salt)));
    return buf;
}

int64_t created_time(const ResultWriterOptions& o) { return o.created != 0 ? o.created : (int64_t)std::time(nullptr); }

// A byte-level token can be part of a UTF-8 character ("\xE4" alone): its text is not valid
// UTF-8 and would be written as U+FFFD, the same for every such token. Where the token text is all
// that names a token (the legacy shape's `tokens` and `top_logprobs` keys) it is written as
// "bytes:\xe4" instead, OpenAI's spelling for such tokens.
std::string token_label(const std::string& text) {
    if (is_valid_utf8(text)) return text;
    std::string s = "bytes:";
    char buf[5];
    for (unsigned char c : text) {
        std::snprintf(buf, sizeof(buf), "\\x%02x", c);
        s += buf;
    }
    return s;
}

// One gridlm-shape entry: token id, text, log-prob; the bytes as well when the text is not
// valid UTF-8 (so two partial characters stay apart even for a reader that ignores token_id).
json gridlm_token(int32_t id, const std::string& text, float logprob) {
    json e = {{"token_id", id}, {"token", text}, {"logprob", logprob}};
    if (!is_valid_utf8(text)) e["bytes"] = byte_array(text);
    return e;
}

json gridlm_logprobs(const std::vector<TokenLogprob>& lps) {
    json a = json::array();
    for (const auto& t : lps) {
        json e = gridlm_token(t.token_id, t.token, t.logprob);
        if (!t.top.empty()) {
            json top = json::array();
            for (const auto& x : t.top) top.push_back(gridlm_token(x.token_id, x.token, x.logprob));
            e["top_logprobs"] = std::move(top);
        }
        a.push_back(std::move(e));
    }
    return a;
}

// Chat completions: {"content": [{"token","logprob","bytes","top_logprobs":[...]}]}.
json openai_chat_logprobs(const std::vector<TokenLogprob>& lps) {
    json content = json::array();
    for (const auto& t : lps) {
        json top = json::array();
        for (const auto& x : t.top)
            top.push_back({{"token", x.token}, {"logprob", x.logprob}, {"bytes", byte_array(x.token)}});
        content.push_back(
            {{"token", t.token}, {"logprob", t.logprob}, {"bytes", byte_array(t.token)}, {"top_logprobs", top}});
    }
    return {{"content", content}, {"refusal", nullptr}};
}

// Legacy completions: parallel arrays tokens / token_logprobs / top_logprobs / text_offset.
json openai_text_logprobs(const std::vector<TokenLogprob>& lps) {
    json tokens = json::array(), token_lps = json::array(), tops = json::array(), offsets = json::array();
    size_t offset = 0;
    for (const auto& t : lps) {
        tokens.push_back(token_label(t.token));
        token_lps.push_back(t.logprob);
        // An object keyed by token text: keys must stay unique (JSON readers keep one of equal
        // keys). Partial characters get their bytes; a text that two ids share (an added token
        // equal to a vocabulary entry) is keyed "token_id:N" after its first use.
        json top = json::object();
        for (const auto& x : t.top) {
            std::string key = token_label(x.token);
            if (top.contains(key)) key = str("token_id:", x.token_id);
            if (!top.contains(key)) top[key] = x.logprob;
        }
        tops.push_back(std::move(top));
        offsets.push_back(offset);
        offset += t.token.size();
    }
    return {{"tokens", tokens}, {"token_logprobs", token_lps}, {"top_logprobs", tops}, {"text_offset", offsets}};
}

json usage_json(const Usage& u, bool with_total) {
    json j = {{"prompt_tokens", u.prompt_tokens}, {"completion_tokens", u.completion_tokens}};
    if (with_total) j["total_tokens"] = u.prompt_tokens + u.completion_tokens;
    return j;
}

json filter_json(const FilterMark& f) { return {{"rule", f.rule}, {"action", f.action}, {"where", f.where}}; }

std::string format_gridlm(const Completion& c) {
    if (c.choices.empty()) {  // the prompt was rejected by a filter rule: no text
        GRIDLM_ASSERT(c.filter.has_value());
        json j = {{"id", c.ref.id}, {"finish_reason", "content_filter"}, {"filter", filter_json(*c.filter)}};
        j["usage"] = usage_json(c.usage, false);
        return dump(j);
    }
    // "text" and "finish_reason" always describe choice 0, so readers that ignore n > 1 work.
    const Choice& first = c.choices.front();
    json j = {{"id", c.ref.id}, {"text", first.text}, {"finish_reason", finish_reason_name(first.finish_reason)}};
    if (c.choices.size() > 1) {
        json choices = json::array();
        for (const auto& ch : c.choices) {
            json e = {{"index", ch.index}, {"text", ch.text}, {"finish_reason", finish_reason_name(ch.finish_reason)}};
            if (c.logprobs) e["logprobs"] = gridlm_logprobs(ch.logprobs);
            if (ch.filter) e["filter"] = filter_json(*ch.filter);
            choices.push_back(std::move(e));
        }
        j["choices"] = std::move(choices);
    }
    if (c.filter) j["filter"] = filter_json(*c.filter);
    j["usage"] = usage_json(c.usage, false);
    if (c.logprobs) j["logprobs"] = gridlm_logprobs(first.logprobs);
    return dump(j);
}

std::string format_openai(const Completion& c, const ResultWriterOptions& o) {
    const std::string hex = hex_id(c.ref, 0);
    json choices = json::array();
    if (c.choices.empty()) {  // the prompt was rejected by a filter rule: no text
        json e = {{"index", 0}};
        if (c.ref.chat) {
            e["message"] = {{"role", "assistant"}, {"content", nullptr}, {"refusal", nullptr}};
        } else {
            e["text"] = nullptr;
        }
        e["logprobs"] = nullptr;
        e["finish_reason"] = "content_filter";
        choices.push_back(std::move(e));
    }
    for (const auto& ch : c.choices) {
        json e = {{"index", ch.index}};
        if (c.ref.chat) {
            e["message"] = {{"role", "assistant"}, {"content", ch.text}, {"refusal", nullptr}};
            e["logprobs"] = c.logprobs ? openai_chat_logprobs(ch.logprobs) : json(nullptr);
        } else {
            e["text"] = ch.text;
            e["logprobs"] = c.logprobs ? openai_text_logprobs(ch.logprobs) : json(nullptr);
        }
        e["finish_reason"] = finish_reason_name(ch.finish_reason);
        choices.push_back(std::move(e));
    }
    json body = {{"id", (c.ref.chat ? "chatcmpl-" : "cmpl-") + hex},
                 {"object", c.ref.chat ? "chat.completion" : "text_completion"},
                 {"created", created_time(o)},
                 {"model", o.model_name},
                 {"choices", std::move(choices)},
                 {"usage", usage_json(c.usage, true)}};
    json j = {
        {"id", "batch_req_" + hex},
        {"custom_id", c.ref.id},
        {"response", {{"status_code", 200}, {"request_id", "req_" + hex_id(c.ref, 1)}, {"body", std::move(body)}}},
        {"error", nullptr}};
    if (c.filter) j["filter"] = filter_json(*c.filter);
    return dump(j);
}

}  // namespace

std::string format_completion(const Completion& c, const ResultWriterOptions& options) {
    return options.shape == OutputShape::output_shape_openai ? format_openai(c, options) : format_gridlm(c);
}

std::string format_error(const RecordError& e, const ResultWriterOptions& options) {
    if (options.shape == OutputShape::output_shape_openai) {
        json j = {{"id", "batch_req_" + hex_id(e.ref, 0)},
                  {"custom_id", e.ref.id.empty() ? json(nullptr) : json(e.ref.id)},
                  {"response", nullptr},
                  {"error",
                   {{"code", e.code.empty() ? "invalid_request" : e.code},
                    {"message", str("line ", e.ref.line, ": ", e.message)}}}};
        return dump(j);
    }
    json j = json::object();
    if (!e.ref.id.empty()) j["id"] = e.ref.id;
    j["line"] = e.ref.line;
    j["error"] = e.message;
    return dump(j);
}

static double now_s() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

ResultWriter::ResultWriter(const std::string& path, ResultWriterOptions options)
    : path_(path), options_(std::move(options)), last_sync_(now_s()) {
    if (path == "-") {
        GRIDLM_ASSERT(!options_.journal && !options_.append);
        file_ = stdout;
        owns_file_ = false;
        return;
    }
    file_ = std::fopen(path.c_str(), options_.append ? "ab" : "wb");
    if (!file_) throw Error(str("cannot write output file ", path, ": ", std::strerror(errno)));
    if (options_.append) {
        std::fseek(file_, 0, SEEK_END);
        offset_ = (uint64_t)std::ftell(file_);
    }
    if (options_.journal) {
        const std::string jpath = journal_path_for(path);
        journal_ = std::fopen(jpath.c_str(), options_.append ? "ab" : "wb");
        if (!journal_) throw Error(str("cannot write the journal ", jpath, ": ", std::strerror(errno)));
    }
    advance();
}

ResultWriter::~ResultWriter() {
    if (file_ && owns_file_) std::fclose(file_);
    if (journal_) std::fclose(journal_);
}

void ResultWriter::write(const Completion& c) { put(c.ref.index, format_completion(c, options_), true); }

void ResultWriter::write(const RecordError& e) { put(e.ref.index, format_error(e, options_), false); }

void ResultWriter::advance() {
    while (options_.done.count(next_index_)) ++next_index_;
}

void ResultWriter::put(uint64_t index, std::string line, bool ok) {
    GRIDLM_ASSERT(file_ != nullptr);
    if (options_.order == OutputOrder::output_order_finished) {
        emit(index, line, ok);
        return;
    }
    GRIDLM_ASSERT(index >= next_index_);  // written twice
    if (index != next_index_) {
        GRIDLM_ASSERT(pending_.size() < options_.max_buffered);
        pending_.emplace(index, std::make_pair(std::move(line), ok));
        return;
    }
    emit(index, line, ok);
    ++next_index_;
    advance();
    for (auto it = pending_.begin(); it != pending_.end() && it->first == next_index_; it = pending_.erase(it)) {
        emit(it->first, it->second.first, it->second.second);
        ++next_index_;
        advance();
    }
}

void ResultWriter::emit(uint64_t index, const std::string& line, bool ok) {
    if (std::fwrite(line.data(), 1, line.size(), file_) != line.size() || std::fputc('\n', file_) == EOF ||
        std::fflush(file_) != 0) {
        throw Error(str("cannot write to output file ", path_, ": ", std::strerror(errno)));
    }
    ++n_written_;
    if (!ok) ++n_written_failed_;
    offset_ += line.size() + 1;
    // The journal entry follows its line: after a kill, an entry never names a line that is not there.
    if (journal_ && (std::fprintf(journal_, "%llu %llu %d\n", (unsigned long long)index, (unsigned long long)offset_,
                                  ok ? 1 : 0) < 0 ||
                     std::fflush(journal_) != 0)) {
        throw Error(str("cannot write the journal of ", path_, ": ", std::strerror(errno)));
    }
    if (owns_file_ && options_.fsync_interval_s >= 0 && now_s() - last_sync_ >= options_.fsync_interval_s) sync();
}

void ResultWriter::sync() {
    ::fsync(fileno(file_));
    if (journal_) ::fsync(fileno(journal_));
    last_sync_ = now_s();
}

void ResultWriter::close() {
    if (!file_) return;
    // Records still waiting for an earlier one that never came (a driver bug) are not lost.
    for (auto& [index, line] : pending_) emit(index, line.first, line.second);
    pending_.clear();
    if (!owns_file_) {
        std::fflush(file_);
        file_ = nullptr;
        return;
    }
    bool ok = std::fflush(file_) == 0;
    // Pipes and character devices cannot be fsync'd; that is not a failure to write.
    if (ok && ::fsync(fileno(file_)) != 0) ok = errno == EINVAL || errno == EROFS || errno == ENOTSUP;
    int err = errno;
    const bool closed = std::fclose(file_) == 0;
    file_ = nullptr;
    if (journal_) {
        // The output first, then the journal: an entry is durable only after its line is.
        ok = ok && std::fflush(journal_) == 0 && ::fsync(fileno(journal_)) == 0;
        if (!ok) err = errno;
        std::fclose(journal_);
        journal_ = nullptr;
    }
    if (!ok || !closed) throw Error(str("cannot write to output file ", path_, ": ", std::strerror(err)));
}

}  // namespace gridlm
