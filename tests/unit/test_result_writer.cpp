// Unit tests of the result writer: both output shapes exactly, input order with out-of-order
// completion, and invalid UTF-8 always giving valid JSON.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "engine/core/error.h"
#include "io/result_writer.h"
#include "test_support.h"

using namespace gridlm;
using json = nlohmann::json;

namespace {

Completion make_completion(const std::string& id, uint64_t index, const std::string& text, int n = 1) {
    Completion c;
    c.ref = RecordRef{id, (int64_t)index + 1, index, false};
    for (int i = 0; i < n; ++i) {
        Choice ch;
        ch.index = i;
        ch.text = i == 0 ? text : text + std::to_string(i);
        ch.token_ids = {1, 2};
        ch.finish_reason = i == 0 ? FinishReason::finish_reason_stop : FinishReason::finish_reason_length;
        c.choices.push_back(ch);
    }
    c.usage = {5, 2 * n};
    return c;
}

std::vector<json> read_lines(const std::string& path) {
    std::istringstream in(test::read_file(path));
    std::vector<json> out;
    std::string line;
    while (std::getline(in, line)) out.push_back(json::parse(line));  // throws on invalid JSON
    return out;
}

}  // namespace

TEST(ResultWriter, GridlmShape) {
    ResultWriterOptions o;
    json j = json::parse(format_completion(make_completion("a", 0, "hello"), o));
    EXPECT_EQ(j, json::parse(R"({"id": "a", "text": "hello", "finish_reason": "stop",
                                 "usage": {"prompt_tokens": 5, "completion_tokens": 2}})"));
    // Key order is part of the contract for people reading the file.
    EXPECT_EQ(format_completion(make_completion("a", 0, "hello"), o),
              R"({"id":"a","text":"hello","finish_reason":"stop","usage":{"prompt_tokens":5,"completion_tokens":2}})");
}

TEST(ResultWriter, GridlmChoicesAndLogprobs) {
    ResultWriterOptions o;
    Completion c = make_completion("b", 0, "x", 2);
    c.logprobs = true;
    c.choices[0].logprobs = {{1, "x", -0.5f, {{1, "x", -0.5f}, {9, "y", -1.5f}}}, {2, "", -0.25f, {}}};
    c.choices[1].logprobs = {{3, "x1", -1.0f, {}}};
    json j = json::parse(format_completion(c, o));
    EXPECT_EQ(j["text"], "x");
    EXPECT_EQ(j["finish_reason"], "stop");
    ASSERT_EQ(j["choices"].size(), 2u);
    EXPECT_EQ(j["choices"][1], json::parse(R"({"index": 1, "text": "x1", "finish_reason": "length",
        "logprobs": [{"token_id": 3, "token": "x1", "logprob": -1.0}]})"));
    EXPECT_EQ(j["logprobs"][0], json::parse(R"({"token_id": 1, "token": "x", "logprob": -0.5,
        "top_logprobs": [{"token_id": 1, "token": "x", "logprob": -0.5}, {"token_id": 9, "token": "y", "logprob": -1.5}]})"));
    EXPECT_EQ(j["usage"]["completion_tokens"], 4);
}

TEST(ResultWriter, GridlmError) {
    ResultWriterOptions o;
    EXPECT_EQ(format_error(RecordError{{"r7", 12, 3, false}, "invalid_field", "top_p must be in (0, 1], got 0"}, o),
              R"({"id":"r7","line":12,"error":"top_p must be in (0, 1], got 0"})");
    EXPECT_EQ(format_error(RecordError{{"", 4, 0, false}, "invalid_json", "malformed JSON"}, o),
              R"({"line":4,"error":"malformed JSON"})");
}

// A filter rule's mark: a rejected prompt has no text (no choices), a completion keeps its text.
TEST(ResultWriter, FilterMarks) {
    ResultWriterOptions o;
    Completion rejected;
    rejected.ref.id = "r";
    rejected.ref.chat = true;
    rejected.filter = FilterMark{"code.eval", "reject", "prompt"};
    EXPECT_EQ(format_completion(rejected, o),
              R"({"id":"r","finish_reason":"content_filter","filter":{"rule":"code.eval","action":"reject",)"
              R"("where":"prompt"},"usage":{"prompt_tokens":0,"completion_tokens":0}})");
    Completion flagged = make_completion("f", 0, "hello");
    flagged.filter = FilterMark{"greeting", "flag", "completion"};
    json j = json::parse(format_completion(flagged, o));
    EXPECT_EQ(j["text"], "hello");
    EXPECT_EQ(j["filter"], json::parse(R"({"rule": "greeting", "action": "flag", "where": "completion"})"));

    o.shape = OutputShape::output_shape_openai;
    j = json::parse(format_completion(rejected, o));
    EXPECT_EQ(j["filter"]["rule"], "code.eval");
    const json& choice = j["response"]["body"]["choices"].at(0);
    EXPECT_EQ(choice["finish_reason"], "content_filter");
    EXPECT_TRUE(choice["message"]["content"].is_null());
    EXPECT_EQ(json::parse(format_completion(flagged, o))["filter"]["action"], "flag");
}

TEST(ResultWriter, OpenAiChatShape) {
    ResultWriterOptions o;
    o.shape = OutputShape::output_shape_openai;
    o.model_name = "SmolLM2";
    o.created = 1700000000;
    Completion c = make_completion("request-1", 0, "Hi there");
    c.ref.chat = true;
    json j = json::parse(format_completion(c, o));
    ASSERT_TRUE(j["id"].is_string());
    EXPECT_EQ(j["id"].get<std::string>().rfind("batch_req_", 0), 0u);
    EXPECT_EQ(j["custom_id"], "request-1");
    EXPECT_TRUE(j["error"].is_null());
    const json& resp = j["response"];
    EXPECT_EQ(resp["status_code"], 200);
    EXPECT_TRUE(resp["request_id"].is_string());
    const json& body = resp["body"];
    EXPECT_EQ(body["object"], "chat.completion");
    EXPECT_EQ(body["id"].get<std::string>().rfind("chatcmpl-", 0), 0u);
    EXPECT_EQ(body["created"], 1700000000);
    EXPECT_EQ(body["model"], "SmolLM2");
    EXPECT_EQ(body["choices"], json::parse(R"([{"index": 0, "message": {"role": "assistant", "content": "Hi there",
        "refusal": null}, "logprobs": null, "finish_reason": "stop"}])"));
    EXPECT_EQ(body["usage"], json::parse(R"({"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7})"));
    // Ids are stable across runs.
    EXPECT_EQ(json::parse(format_completion(c, o))["id"], j["id"]);
}

TEST(ResultWriter, OpenAiLogprobsAndCompletions) {
    ResultWriterOptions o;
    o.shape = OutputShape::output_shape_openai;
    Completion c = make_completion("r", 0, "ab");
    c.ref.chat = true;
    c.logprobs = true;
    c.choices[0].logprobs = {{1, "a", -0.1f, {{1, "a", -0.1f}}}, {2, "b", -0.2f, {}}};
    json lp = json::parse(format_completion(c, o))["response"]["body"]["choices"][0]["logprobs"];
    EXPECT_EQ(lp["content"][0], json::parse(R"({"token": "a", "logprob": -0.10000000149011612, "bytes": [97],
        "top_logprobs": [{"token": "a", "logprob": -0.10000000149011612, "bytes": [97]}]})"));
    EXPECT_EQ(lp["content"][1]["top_logprobs"], json::array());
    c.ref.chat = false;
    json body = json::parse(format_completion(c, o))["response"]["body"];
    EXPECT_EQ(body["object"], "text_completion");
    EXPECT_EQ(body["choices"][0]["text"], "ab");
    EXPECT_EQ(body["choices"][0]["logprobs"]["tokens"], json::parse(R"(["a", "b"])"));
    EXPECT_EQ(body["choices"][0]["logprobs"]["text_offset"], json::parse("[0, 1]"));
}

TEST(ResultWriter, OpenAiError) {
    ResultWriterOptions o;
    o.shape = OutputShape::output_shape_openai;
    json j = json::parse(format_error(RecordError{{"req-9", 9, 8, true}, "invalid_field", "n must be in [1, 64]"}, o));
    EXPECT_EQ(j["custom_id"], "req-9");
    EXPECT_TRUE(j["response"].is_null());
    EXPECT_EQ(j["error"], json::parse(R"({"code": "invalid_field", "message": "line 9: n must be in [1, 64]"})"));
    EXPECT_EQ(j.size(), 4u);
}

TEST(ResultWriter, InvalidUtf8GivesValidJson) {
    ResultWriterOptions o;
    Completion c = make_completion("u", 0, std::string("ok \xF0\x9F\x98") + " \xFF end");
    c.logprobs = true;
    c.choices[0].logprobs = {{1, "\xE2\x82", -1.0f, {}}};
    const std::string line = format_completion(c, o);
    json j = json::parse(line);
    EXPECT_EQ(j["text"], "ok \xEF\xBF\xBD \xEF\xBF\xBD end");
    EXPECT_EQ(j["logprobs"][0]["token"], "\xEF\xBF\xBD");
    o.shape = OutputShape::output_shape_openai;
    EXPECT_NO_THROW(json::parse(format_completion(c, o)));
    EXPECT_NO_THROW(json::parse(format_error(RecordError{{"\xC3", 1, 0, false}, "x", "bad \xC3"}, o)));
}

// Keys that repeat inside one JSON object of `line` ("a.b" paths); parsers would keep only one.
std::vector<std::string> duplicate_keys(const std::string& line) {
    struct Sax : nlohmann::json_sax<json> {
        std::vector<std::set<std::string>> keys;  // one set per open object (arrays push none)
        std::vector<bool> is_object;
        std::vector<std::string> dups;
        bool null() override { return true; }
        bool boolean(bool) override { return true; }
        bool number_integer(number_integer_t) override { return true; }
        bool number_unsigned(number_unsigned_t) override { return true; }
        bool number_float(number_float_t, const string_t&) override { return true; }
        bool string(string_t&) override { return true; }
        bool binary(binary_t&) override { return true; }
        bool start_object(std::size_t) override {
            keys.emplace_back();
            return true;
        }
        bool end_object() override {
            keys.pop_back();
            return true;
        }
        bool start_array(std::size_t) override { return true; }
        bool end_array() override { return true; }
        bool key(string_t& k) override {
            if (!keys.back().insert(k).second) dups.push_back(k);
            return true;
        }
        bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override { return false; }
    } sax;
    EXPECT_TRUE(json::sax_parse(line, &sax)) << line;
    return sax.dups;
}

// Byte-level tokens that are parts of UTF-8 characters all read U+FFFD as text: every output shape
// keeps them apart (no repeated key, the bytes or ids present), as does a text two ids share.
TEST(ResultWriter, PartialUtf8TokensStayDistinct) {
    Completion c = make_completion("p", 0, "\xE4\xB8\xAD");
    c.logprobs = true;
    c.choices[0].logprobs = {
        {100,
         "\xE4",
         -0.5f,
         {{100, "\xE4", -0.5f}, {101, "\xE5", -1.0f}, {102, "\xE4\xB8", -2.0f}, {7, "x", -3.0f}, {8, "x", -4.0f}}},
        {103, "\xB8\xAD", -0.1f, {}}};
    for (auto shape : {OutputShape::output_shape_gridlm, OutputShape::output_shape_openai}) {
        for (bool chat : {false, true}) {
            ResultWriterOptions o;
            o.shape = shape;
            c.ref.chat = chat;
            const std::string line = format_completion(c, o);
            EXPECT_EQ(duplicate_keys(line), std::vector<std::string>()) << line;
        }
    }
    ResultWriterOptions o;
    o.shape = OutputShape::output_shape_openai;
    c.ref.chat = false;
    json lp = json::parse(format_completion(c, o))["response"]["body"]["choices"][0]["logprobs"];
    EXPECT_EQ(lp["tokens"], json::parse(R"(["bytes:\\xe4", "bytes:\\xb8\\xad"])"));
    EXPECT_EQ(lp["top_logprobs"][0],
              json::parse(R"({"bytes:\\xe4": -0.5, "bytes:\\xe5": -1.0, "bytes:\\xe4\\xb8": -2.0, "x": -3.0,
                              "token_id:8": -4.0})"));
    EXPECT_EQ(lp["text_offset"], json::parse("[0, 1]"));  // byte offsets, as before
    // gridlm shape: the id always, the bytes where the text is not UTF-8 on its own.
    json g = json::parse(format_completion(c, ResultWriterOptions{}))["logprobs"][0];
    EXPECT_EQ(g["bytes"], json::parse("[228]"));
    EXPECT_EQ(g["top_logprobs"][2]["bytes"], json::parse("[228, 184]"));
    EXPECT_FALSE(g["top_logprobs"][3].contains("bytes"));
}

TEST(ResultWriter, InputOrderWithOutOfOrderCompletion) {
    const std::string path = test::temp_dir() + "/out.jsonl";
    ResultWriterOptions o;
    o.order = OutputOrder::output_order_input;
    ResultWriter w(path, o);
    w.write(make_completion("r2", 2, "two"));
    w.write(make_completion("r1", 1, "one"));
    EXPECT_EQ(w.written(), 0u);
    EXPECT_EQ(w.buffered(), 2u);
    w.write(RecordError{{"r0", 1, 0, false}, "invalid_field", "bad"});
    EXPECT_EQ(w.written(), 3u);              // 0 unblocks 1 and 2
    EXPECT_EQ(read_lines(path).size(), 3u);  // flushed as written, before close
    w.write(make_completion("r4", 4, "four"));
    w.write(make_completion("r3", 3, "three"));
    w.close();
    auto lines = read_lines(path);
    ASSERT_EQ(lines.size(), 5u);
    EXPECT_EQ(lines[0]["error"], "bad");
    for (int i = 1; i < 5; ++i) EXPECT_EQ(lines[i]["id"], "r" + std::to_string(i));
}

TEST(ResultWriter, FinishedOrderWritesAtOnce) {
    const std::string path = test::temp_dir() + "/out.jsonl";
    ResultWriter w(path, {});
    w.write(make_completion("r2", 2, "two"));
    w.write(make_completion("r0", 0, "zero"));
    w.close();
    auto lines = read_lines(path);
    ASSERT_EQ(lines.size(), 2u);
    EXPECT_EQ(lines[0]["id"], "r2");
    EXPECT_EQ(lines[1]["id"], "r0");
}

TEST(ResultWriter, UnwritableOutputThrows) {
    EXPECT_THROW(ResultWriter("/nonexistent-dir/out.jsonl", {}), Error);
    EXPECT_EQ(output_order_from_name("input"), OutputOrder::output_order_input);
    EXPECT_THROW(output_order_from_name("random"), Error);
}
