// Unit tests of the prompt reader: the three formats, detection, validation errors with their
// line numbers, and streaming a large file; faulty records (numbers beyond a double, deep
// nesting, unknown and unsupported fields, misleading values) each stay their record's error.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "engine/core/error.h"
#include "io/prompt_reader.h"
#include "test_support.h"

using namespace gridlm;

namespace {

std::vector<ReadRecord> read_all(const std::string& text, const std::string& name, PromptReaderOptions opts = {}) {
    PromptReader r(std::make_unique<std::istringstream>(text), name, opts);
    std::vector<ReadRecord> out;
    while (auto rec = r.next()) out.push_back(std::move(*rec));
    return out;
}

const Request& req(const ReadRecord& r) {
    if (auto* e = std::get_if<RecordError>(&r)) ADD_FAILURE() << "line " << e->ref.line << ": " << e->message;
    return std::get<Request>(r);
}

const RecordError& err(const ReadRecord& r) {
    EXPECT_TRUE(std::holds_alternative<RecordError>(r)) << "expected an error record";
    return std::get<RecordError>(r);
}

// An input stream that makes its lines on demand and counts how many the reader has pulled.
class GeneratedLines : public std::streambuf {
public:
    explicit GeneratedLines(int64_t n_lines) : n_lines_(n_lines) {}
    int64_t lines_made() const { return made_; }

protected:
    int_type underflow() override {
        if (made_ == n_lines_) return traits_type::eof();
        line_ = "{\"id\": \"g" + std::to_string(made_) + "\", \"prompt\": \"generated\"}\n";
        ++made_;
        setg(line_.data(), line_.data(), line_.data() + line_.size());
        return traits_type::to_int_type(line_[0]);
    }

private:
    int64_t n_lines_;
    int64_t made_ = 0;
    std::string line_;
};

}  // namespace

TEST(PromptReader, TxtOnePromptPerLineBlankLinesSkipped) {
    PromptReaderOptions opts;
    opts.defaults.max_tokens = 7;
    auto recs = read_all("first prompt\n\n   \nsecond\r\nthird", "p.txt", opts);
    ASSERT_EQ(recs.size(), 3u);
    EXPECT_EQ(req(recs[0]).prompt, "first prompt");
    EXPECT_EQ(req(recs[0]).ref.id, "1");
    EXPECT_EQ(req(recs[1]).prompt, "second");
    EXPECT_EQ(req(recs[1]).ref.line, 4);
    EXPECT_EQ(req(recs[1]).ref.id, "4");
    EXPECT_EQ(req(recs[1]).ref.index, 1u);
    EXPECT_EQ(req(recs[2]).ref.line, 5);
    EXPECT_EQ(req(recs[2]).params.max_tokens, 7);
    EXPECT_FALSE(req(recs[2]).ref.chat);
}

TEST(PromptReader, TxtInvalidUtf8IsAnError) {
    auto recs = read_all("ok\nbad \xC3\x28 here\nok\n", "p.txt");
    ASSERT_EQ(recs.size(), 3u);
    EXPECT_EQ(err(recs[1]).ref.line, 2);
    EXPECT_EQ(err(recs[1]).code, "invalid_utf8");
    req(recs[2]);
}

TEST(PromptReader, JsonlPromptMessagesAndFields) {
    const std::string text =
        R"({"id": "a", "prompt": "Hello", "max_tokens": 5, "temperature": 0, "stop": "x", "seed": 3})"
        "\n"
        R"({"id": 17, "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": [{"type": "text", "text": "Hi"}]}], "n": 2, "logprobs": true, "top_logprobs": 3})"
        "\n"
        R"({"prompt": [1, 2, 3], "stop": ["a", "b"], "top_k": -1, "min_p": 0.1, "repetition_penalty": 1.2, "frequency_penalty": 0.5, "presence_penalty": -0.5, "stop_token_ids": [7], "ignore_eos": true, "min_tokens": 2, "top_p": 0.9, "temperature": null})"
        "\n";
    PromptReaderOptions opts;
    opts.defaults.temperature = 0.8f;
    auto recs = read_all(text, "in.jsonl", opts);
    ASSERT_EQ(recs.size(), 3u);
    const auto& a = req(recs[0]);
    EXPECT_EQ(a.ref.id, "a");
    EXPECT_EQ(a.prompt, "Hello");
    EXPECT_EQ(a.params.max_tokens, 5);
    EXPECT_EQ(a.params.temperature, 0.0f);
    EXPECT_EQ(a.params.stop, std::vector<std::string>{"x"});
    EXPECT_EQ(a.params.seed, std::optional<uint64_t>(3));
    const auto& b = req(recs[1]);
    EXPECT_EQ(b.ref.id, "17");
    EXPECT_TRUE(b.ref.chat);
    ASSERT_EQ(b.messages.size(), 2u);
    EXPECT_EQ(b.messages[1].role, "user");
    EXPECT_EQ(b.messages[1].content, "Hi");
    EXPECT_EQ(b.params.n, 2);
    EXPECT_TRUE(b.params.logprobs);
    EXPECT_EQ(b.params.top_logprobs, 3);
    EXPECT_EQ(b.params.temperature, 0.8f);
    const auto& c = req(recs[2]);
    EXPECT_EQ(c.ref.id, "3");  // no id: line number
    EXPECT_EQ(c.prompt_token_ids, (std::vector<int32_t>{1, 2, 3}));
    EXPECT_EQ(c.params.stop, (std::vector<std::string>{"a", "b"}));
    EXPECT_EQ(c.params.top_k, 0);
    EXPECT_FLOAT_EQ(c.params.min_p, 0.1f);
    EXPECT_FLOAT_EQ(c.params.repetition_penalty, 1.2f);
    EXPECT_FLOAT_EQ(c.params.frequency_penalty, 0.5f);
    EXPECT_FLOAT_EQ(c.params.presence_penalty, -0.5f);
    EXPECT_EQ(c.params.stop_token_ids, std::vector<int32_t>{7});
    EXPECT_TRUE(c.params.ignore_eos);
    EXPECT_EQ(c.params.min_tokens, 2);
    EXPECT_FLOAT_EQ(c.params.top_p, 0.9f);
    EXPECT_EQ(c.params.temperature, 0.8f);  // null = unset
}

TEST(PromptReader, OpenAiBatchFormat) {
    const std::string text =
        R"({"custom_id": "req-1", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "x", "messages": [{"role": "user", "content": "Hello"}], "max_completion_tokens": 9, "max_tokens": 4}})"
        "\n"
        R"({"custom_id": "req-2", "method": "POST", "url": "/v1/completions", "body": {"prompt": "Once", "logprobs": 2}})"
        "\n"
        R"({"custom_id": "req-3", "method": "GET", "url": "/v1/chat/completions", "body": {"messages": []}})"
        "\n"
        R"({"custom_id": "req-4", "method": "POST", "url": "/v1/embeddings", "body": {"input": "x"}})"
        "\n"
        R"({"method": "POST", "url": "/v1/completions", "body": {"prompt": "x"}})"
        "\n"
        R"({"custom_id": "req-6", "url": "/v1/chat/completions", "body": {"prompt": "x"}})"
        "\n";
    PromptReader r(std::make_unique<std::istringstream>(text), "batch.jsonl", {});
    std::vector<ReadRecord> recs;
    while (auto rec = r.next()) recs.push_back(std::move(*rec));
    EXPECT_EQ(r.format(), InputFormat::input_format_openai);
    ASSERT_EQ(recs.size(), 6u);
    const auto& a = req(recs[0]);
    EXPECT_EQ(a.ref.id, "req-1");
    EXPECT_TRUE(a.ref.chat);
    EXPECT_EQ(a.params.max_tokens, 9);  // max_completion_tokens wins
    const auto& b = req(recs[1]);
    EXPECT_FALSE(b.ref.chat);
    EXPECT_TRUE(b.params.logprobs);
    EXPECT_EQ(b.params.top_logprobs, 2);
    EXPECT_EQ(err(recs[2]).ref.line, 3);
    EXPECT_EQ(err(recs[2]).ref.id, "req-3");
    EXPECT_NE(err(recs[3]).message.find("unsupported url"), std::string::npos);
    EXPECT_EQ(err(recs[4]).code, "missing_field");
    EXPECT_EQ(err(recs[5]).ref.line, 6);
}

TEST(PromptReader, BadRecordsBecomeErrorsWithTheirLine) {
    const std::vector<std::pair<std::string, std::string>> bad = {
        {R"({"id": "a", "prompt": "x")", "malformed JSON"},
        {R"(["not", "an", "object"])", "expected a JSON object"},
        {R"({"id": "b"})", "missing 'prompt'"},
        {R"({"id": "c", "prompt": 5})", "field 'prompt'"},
        {R"({"id": ["d"], "prompt": "x"})", "field 'id'"},
        {R"({"id": "e", "prompt": "x", "max_tokens": "many"})", "must be an integer"},
        {R"({"id": "f", "prompt": "x", "max_tokens": 1.5})", "must be an integer"},
        {R"({"id": "g", "prompt": "x", "temperature": -0.5})", "temperature must be >= 0"},
        {R"({"id": "h", "prompt": "x", "top_p": 0})", "top_p must be in (0, 1]"},
        {R"({"id": "i", "prompt": "x", "top_p": 1.5})", "top_p must be in (0, 1]"},
        {R"({"id": "j", "prompt": "x", "n": 0})", "n must be in [1, 64]"},
        {R"({"id": "k", "prompt": "x", "n": 1000})", "n must be in [1, 64]"},
        {R"({"id": "l", "prompt": "x", "max_tokens": 100000})", "max_tokens must be in [1, 4096]"},
        {R"({"id": "m", "prompt": "x", "max_tokens": 0})", "max_tokens must be in"},
        {R"({"id": "n", "prompt": "x", "stop": 3})", "field 'stop'"},
        {R"({"id": "o", "prompt": "x", "stop": [""]})", "must not be empty"},
        {R"({"id": "p", "prompt": "x", "logprobs": "yes"})", "field 'logprobs'"},
        {R"({"id": "q", "prompt": "x", "top_logprobs": 50})", "top_logprobs must be in [0, 20]"},
        {R"({"id": "r", "prompt": "x", "min_p": 2})", "min_p must be in [0, 1]"},
        {R"({"id": "s", "prompt": "x", "repetition_penalty": 0})", "repetition_penalty must be > 0"},
        {R"({"id": "t", "prompt": "x", "frequency_penalty": 3})", "frequency_penalty must be in [-2, 2]"},
        {R"({"id": "u", "prompt": "x", "min_tokens": 10, "max_tokens": 5})", "min_tokens must be in"},
        {R"({"id": "v", "prompt": "x", "ignore_eos": 1})", "must be true or false"},
        {R"({"id": "w", "prompt": "x", "messages": [{"role": "user", "content": "y"}]})", "not both"},
        {R"({"id": "x", "messages": [{"role": "user", "content": 5}]})", "must be a string, null or an array"},
        {R"({"id": "y", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]})", "text"},
        {R"({"id": "z", "prompt": ""})", "is empty"},
        {"{\"id\": \"bad-utf8\", \"prompt\": \"\xff\"}", "invalid UTF-8"},
        {R"({"id": "dup", "prompt": "x"})", ""},
        {R"({"id": "dup", "prompt": "y"})", "already used"},
        {R"({"id": "neg", "prompt": [1, -2]})", "negative token id"},
    };
    std::string text = R"({"id": "first", "prompt": "ok"})"
                       "\n\n";  // line 1, then a blank line
    for (const auto& [line, _] : bad) text += line + "\n";
    PromptReaderOptions opts;
    opts.limits.max_tokens = 4096;
    auto recs = read_all(text, "x.jsonl", opts);
    ASSERT_EQ(recs.size(), bad.size() + 1);
    req(recs[0]);
    for (size_t i = 0; i < bad.size(); ++i) {
        const auto& [line, expect] = bad[i];
        if (expect.empty()) {
            req(recs[i + 1]);
            continue;
        }
        const auto& e = err(recs[i + 1]);
        EXPECT_EQ(e.ref.line, (int64_t)i + 3) << line;
        EXPECT_EQ(e.ref.index, i + 1) << line;
        EXPECT_NE(e.message.find(expect), std::string::npos) << line << " -> " << e.message;
    }
}

TEST(PromptReader, FormatDetection) {
    PromptReader a(std::make_unique<std::istringstream>("\n{\"prompt\": \"x\"}\n"), "in.data", {});
    ASSERT_TRUE(a.next());
    EXPECT_EQ(a.format(), InputFormat::input_format_jsonl);
    // A .txt file is text even when a line looks like JSON.
    PromptReader b(std::make_unique<std::istringstream>("{\"prompt\": \"x\"}\n"), "in.txt", {});
    auto rec = b.next();
    ASSERT_TRUE(rec);
    EXPECT_EQ(std::get<Request>(*rec).prompt, "{\"prompt\": \"x\"}");
    PromptReaderOptions as_txt;
    as_txt.format = InputFormat::input_format_txt;
    PromptReader c(std::make_unique<std::istringstream>("plain words\n"), "in.jsonl", as_txt);
    ASSERT_TRUE(c.next());
    EXPECT_EQ(c.format(), InputFormat::input_format_txt);
    PromptReader d(std::make_unique<std::istringstream>("plain words\n"), "prompts", {});
    ASSERT_TRUE(d.next());
    EXPECT_EQ(d.format(), InputFormat::input_format_txt);
    EXPECT_EQ(input_format_from_name("openai"), InputFormat::input_format_openai);
    EXPECT_THROW(input_format_from_name("csv"), Error);
}

TEST(PromptReader, MissingFileThrows) { EXPECT_THROW(PromptReader("/nonexistent/prompts.txt", {}), Error); }

TEST(PromptReader, StreamsALargeFile) {
    const std::string path = test::temp_dir() + "/big.jsonl";
    {
        std::ofstream f(path);
        for (int i = 0; i < 100000; ++i) f << R"({"id": "r)" << i << R"(", "prompt": "prompt number )" << i << "\"}\n";
    }
    EXPECT_EQ(count_records(path), std::optional<int64_t>(100000));
    PromptReaderOptions opts;
    opts.reject_duplicate_ids = false;
    PromptReader r(path, opts);
    int64_t n = 0;
    std::string last;
    // Records come one at a time: each is handed over and dropped before the next is read.
    while (auto rec = r.next()) {
        last = std::get<Request>(*rec).prompt;
        ++n;
    }
    EXPECT_EQ(n, 100000);
    EXPECT_EQ(last, "prompt number 99999");
    EXPECT_EQ(r.lines_read(), 100000);
}

TEST(PromptReader, PullsOneLineAtATime) {
    auto buf = std::make_unique<GeneratedLines>(100000);
    GeneratedLines* lines = buf.get();
    PromptReader r(std::make_unique<std::istream>(lines), "gen.jsonl", {});
    for (int64_t i = 0; i < 100000; ++i) {
        auto rec = r.next();
        ASSERT_TRUE(rec);
        // The reader has not looked further ahead than the record it returned and the lines
        // sampled to detect the format: memory does not grow with the file.
        ASSERT_LE(lines->lines_made(), i + 1 + format_sample_lines);
    }
    EXPECT_FALSE(r.next());
}

TEST(PromptReader, Utf8Validator) {
    EXPECT_TRUE(is_valid_utf8("plain ascii"));
    EXPECT_TRUE(is_valid_utf8("h\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"));
    size_t off = 0;
    EXPECT_FALSE(is_valid_utf8("ab\xC0\xAF", &off));  // overlong
    EXPECT_EQ(off, 2u);
    EXPECT_FALSE(is_valid_utf8("\xED\xA0\x80"));      // surrogate
    EXPECT_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));  // > U+10FFFF
    EXPECT_FALSE(is_valid_utf8("\xE2\x82"));          // truncated
}

// "completion" (for gridlm score): text or token ids; a record without one has none.
TEST(PromptReader, CompletionField) {
    const auto recs = read_all(
        R"({"id": "t", "prompt": "x", "completion": " Paris."}
{"id": "i", "prompt": "x", "completion": [5, 6]}
{"id": "n", "prompt": "x"}
{"id": "e", "prompt": "x", "completion": ""}
{"id": "b", "prompt": "x", "completion": 5}
{"id": "m", "prompt": "x", "completion": [-1]}
)",
        "c.jsonl");
    ASSERT_EQ(recs.size(), 6u);
    EXPECT_TRUE(req(recs[0]).has_completion);
    EXPECT_EQ(req(recs[0]).completion, " Paris.");
    EXPECT_EQ(req(recs[1]).completion_token_ids, (std::vector<int32_t>{5, 6}));
    EXPECT_FALSE(req(recs[2]).has_completion);
    EXPECT_NE(err(recs[3]).message.find("field 'completion' is empty"), std::string::npos);
    EXPECT_NE(err(recs[4]).message.find("field 'completion' must be a string or an array of token ids"),
              std::string::npos);
    EXPECT_NE(err(recs[5]).message.find("negative token id"), std::string::npos);
}

// --- input-record hardening: whatever one record holds, it is that record's error ----------------

namespace {

std::string message_of(const ReadRecord& r) { return err(r).message; }

// The lines between good records, each expected to become its own error naming `expect`.
void expect_each_line_fails(const std::vector<std::pair<std::string, std::string>>& bad, const std::string& name,
                            const std::string& good, PromptReaderOptions opts = {}) {
    std::string text;
    for (const auto& [line, _] : bad) text += good + "\n" + line + "\n";
    text += good + "\n";
    opts.reject_duplicate_ids = false;
    std::vector<ReadRecord> recs;
    ASSERT_NO_THROW(recs = read_all(text, name, opts));
    ASSERT_EQ(recs.size(), 2 * bad.size() + 1);
    for (size_t i = 0; i < bad.size(); ++i) {
        req(recs[2 * i]);
        const auto& e = err(recs[2 * i + 1]);
        EXPECT_EQ(e.ref.line, (int64_t)(2 * i + 2)) << bad[i].first;
        EXPECT_NE(e.message.find(bad[i].second), std::string::npos) << bad[i].first << " -> " << e.message;
    }
    req(recs.back());
}

}  // namespace

TEST(PromptReaderFaults, NumbersBeyondADoubleAnywhere) {
    expect_each_line_fails(
        {
            {R"({"prompt": "Hi", "temperature": 1e400})", "number 1e400 at byte 32 is out of range"},
            {R"({"prompt": "Hi", "ignored_by_gridlm": 1e400})", "1e400"},
            {R"({"prompt": "Hi", "temperature": -1e400})", "-1e400"},
            {R"({"messages": [{"role": "user", "content": 1e400}]})", "out of range"},
            {R"({"prompt": "Hi", "x": {"y": [1, 2, 3e999]}})", "3e999"},
            {R"({"prompt": "Hi", "max_tokens": 123456789012345678901234567890})", "must be an integer"},
        },
        "in.jsonl", R"({"prompt": "good"})");
    expect_each_line_fails(
        {
            {R"({"custom_id": "a", "body": {"prompt": "Hi", "temperature": 1e400}})", "1e400"},
            {R"({"custom_id": "b", "body": {"prompt": "Hi", "metadata": {"n": -2e308}}})", "-2e308"},
            {R"({"custom_id": "c", "body": {"messages": [{"role": "user", "content": 9e9999}]}})", "9e9999"},
        },
        "batch.jsonl", R"({"custom_id": "ok", "body": {"prompt": "good"}})");
}

TEST(PromptReaderFaults, DeepNestingIsRefusedWithoutRecursion) {
    const std::string deep(100000, '[');
    expect_each_line_fails(
        {
            {deep, "nested 100000 levels deep; at most 128"},
            {R"({"prompt": "Hi", "x": )" + deep + std::string(100000, ']') + "}", "at most 128"},
            {R"({"messages": [{"role": "user", "content": )" + std::string(5000, '{') + "}]}", "at most 128"},
        },
        "in.jsonl", R"({"prompt": "good"})");
    // Brackets inside strings are text, not nesting.
    auto recs = read_all(R"({"prompt": ")" + std::string(1000, '[') + "\"}\n", "in.jsonl");
    EXPECT_EQ(req(recs.at(0)).prompt.size(), 1000u);
}

TEST(PromptReaderFaults, ChatFileWithBadNumbersIsAnError) {
    const std::string path = test::temp_dir() + "/chat_overflow.json";
    std::ofstream(path) << R"({"messages": [{"role": "user", "content": "x"}], "chat_template_kwargs": {"a": 1e400}})";
    EXPECT_THROW(read_chat_file(path), Error);
    std::ofstream(path) << "[" + std::string(100000, '[');
    EXPECT_THROW(read_chat_file(path), Error);
    std::ofstream(path) << R"([{"role": "alien", "content": "x"}])";
    try {
        read_chat_file(path);
        ADD_FAILURE() << "an unknown role was accepted";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("\"alien\""), std::string::npos) << e.what();
    }
}

namespace {

InputFormat detect(const std::string& text, const std::string& name, std::string* note = nullptr) {
    PromptReader r(std::make_unique<std::istringstream>(text), name, {});
    if (note) *note = r.format_note();
    return r.format();
}

}  // namespace

TEST(PromptReaderFaults, FormatDetectionDoesNotHingeOnTheFirstLine) {
    const std::string batch = R"({"custom_id": "r", "method": "POST", "body": {"prompt": "x"}})"
                              "\n";
    std::string note;
    // An OpenAI batch file whose first line is broken, or lacks custom_id.
    EXPECT_EQ(detect("{\"custom_id\": \"r0\", \"body\": {\n" + batch + batch, "batch.jsonl", &note),
              InputFormat::input_format_openai);
    EXPECT_NE(note.find("openai batch (detected from 3 of 3 sampled lines, 1..3"), std::string::npos) << note;
    EXPECT_EQ(detect("{\"body\": {\"prompt\": \"x\"}}\n" + batch + batch, "batch"), InputFormat::input_format_openai);
    // A file without extension whose first prompt starts with '{' is text.
    EXPECT_EQ(detect("{name} is a placeholder\nplain prompt\nanother one\n", "prompts", &note),
              InputFormat::input_format_txt);
    EXPECT_NE(note.find("txt (detected from 3 of 3"), std::string::npos) << note;
    EXPECT_EQ(detect("{\"prompt\": \"a\"}\nnot json\n{\"prompt\": \"b\"}\n", "prompts"),
              InputFormat::input_format_jsonl);
    // Records that are well-formed JSON apart from a number beyond a double still count as JSON:
    // each gets its own error line instead of being run as text.
    EXPECT_EQ(
        detect("{\"prompt\": \"a\", \"temperature\": 1e400}\n{\"prompt\": \"b\", \"top_p\": -1e999}\n", "prompts"),
        InputFormat::input_format_jsonl);
    EXPECT_EQ(detect("{\"custom_id\": \"a\", \"body\": {\"prompt\": \"x\", \"seed\": 2e400}}\n", "batch"),
              InputFormat::input_format_openai);
    EXPECT_EQ(detect("{\"prompt\": \"a\"}\n", "in.txt"), InputFormat::input_format_txt);
    EXPECT_EQ(detect("", "in.jsonl"), InputFormat::input_format_jsonl);
    EXPECT_EQ(detect("", "in"), InputFormat::input_format_txt);
    PromptReaderOptions forced;
    forced.format = InputFormat::input_format_jsonl;
    PromptReader r(std::make_unique<std::istringstream>(batch), "b.jsonl", forced);
    EXPECT_EQ(r.format(), InputFormat::input_format_jsonl);
    EXPECT_EQ(r.format_note(), "input format: jsonl (--input-format)");
}

TEST(PromptReaderFaults, SampledLinesAreReplayedWithTheirNumbers) {
    std::string text;
    for (int i = 0; i < 150; ++i) text += str("{\"id\": \"r", i, "\", \"prompt\": \"p\"}\n", i % 7 == 0 ? "\n" : "");
    const auto recs = read_all(text, "many");
    ASSERT_EQ(recs.size(), 150u);
    int64_t line = 1;
    for (size_t i = 0; i < recs.size(); ++i) {
        EXPECT_EQ(req(recs[i]).ref.index, i);
        EXPECT_EQ(req(recs[i]).ref.id, str("r", i));
        EXPECT_EQ(req(recs[i]).ref.line, line);
        line += i % 7 == 0 ? 2 : 1;
    }
}

TEST(PromptReaderFaults, MisdetectionIsNamedInTheError) {
    // Mostly JSONL: the batch line is read as JSONL and its error says how the format was found.
    const std::string text =
        "{\"prompt\": \"a\"}\n{\"prompt\": \"b\"}\n{\"custom_id\": \"c\", \"body\": {\"prompt\": \"x\"}}\n";
    const auto recs = read_all(text, "mixed.jsonl");
    ASSERT_EQ(recs.size(), 3u);
    EXPECT_NE(message_of(recs[2]).find("detected as jsonl from lines 1..3"), std::string::npos) << message_of(recs[2]);
    EXPECT_NE(message_of(recs[2]).find("--input-format openai"), std::string::npos);
    // An explicit format is not second-guessed.
    PromptReaderOptions forced;
    forced.format = InputFormat::input_format_jsonl;
    EXPECT_EQ(message_of(read_all(text, "mixed.jsonl", forced)[2]).find("detected"), std::string::npos);
}

TEST(PromptReaderFaults, RequestFieldPolicy) {
    expect_each_line_fails(
        {
            {R"({"prompt": "x", "stream": true})", "field 'stream' is not supported by gridlm with the value true"},
            {R"({"prompt": "x", "response_format": {"type": "json_object"}})",
             "(accepted: absent or null, {\"type\":\"text\"})"},
            {R"({"prompt": "x", "tool_choice": "required"})", "\"required\""},
            {R"({"prompt": "x", "continue_final_message": true})", "continue_final_message"},
            {R"({"prompt": "x", "logit_bias": {"5": 10}})", "logit_bias"},
            {R"({"prompt": "x", "guided_json": {}})", "guided_json"},
            {R"({"prompt": "x", "best_of": 3})", "best_of"},
        },
        "in.jsonl",
        R"({"prompt": "good", "stream": false, "n": 1, "user": "u", "metadata": {"k": 1}, "tool_choice": "auto", "logit_bias": {}})");
    const auto recs = read_all(R"({"prompt": "x", "stream": true})"
                               "\n",
                               "in.jsonl");
    EXPECT_EQ(err(recs[0]).code, "unsupported_field");
    // Unknown fields are counted, once per record, and summarised.
    const std::string text =
        "{\"prompt\": \"a\", \"foo\": 1, \"bar\": 2}\n{\"prompt\": \"b\", \"foo\": 3}\n"
        "{\"prompt\": \"c\"}\n";
    PromptReader r(std::make_unique<std::istringstream>(text), "in.jsonl", {});
    while (auto rec = r.next()) req(*rec);
    EXPECT_EQ(r.records_with_unknown_fields(), 2u);
    EXPECT_EQ(
        r.unknown_fields_summary(),
        "2 records had fields gridlm does not know, ignored: foo (2), bar (1) (--strict-fields makes them errors)");
    PromptReaderOptions strict;
    strict.strict_fields = true;
    const auto s = read_all(text, "in.jsonl", strict);
    EXPECT_EQ(err(s[0]).code, "unknown_field");
    EXPECT_NE(err(s[0]).message.find("field 'foo'"), std::string::npos);
    req(s[2]);
    // In an OpenAI body: named with its place; the envelope's own fields are known.
    PromptReader b(
        std::make_unique<std::istringstream>(
            R"({"custom_id": "a", "method": "POST", "url": "/v1/completions", "body": {"prompt": "x", "model": "m", "frob": 1}})"
            "\n"),
        "b.jsonl", {});
    req(*b.next());
    EXPECT_EQ(b.unknown_fields().count("body.frob"), 1u);
    EXPECT_EQ(b.unknown_fields().size(), 1u);
}

TEST(PromptReaderFaults, ChatExtrasReachTheRequestInBothFormats) {
    const std::string tools = R"([{"type": "function", "function": {"name": "f"}}])";
    const auto j = read_all(R"({"messages": [{"role": "user", "content": "x"}], "tools": )" + tools +
                                R"(, "add_generation_prompt": false, "chat_template_kwargs": {"k": 1}})"
                                "\n",
                            "in.jsonl");
    EXPECT_EQ(req(j[0]).chat_extras.tools_json, R"([{"type":"function","function":{"name":"f"}}])");
    EXPECT_FALSE(req(j[0]).chat_extras.add_generation_prompt);
    EXPECT_EQ(req(j[0]).chat_extras.kwargs_json, R"({"k":1})");
    const auto o = read_all(
        R"({"custom_id": "a", "body": {"messages": [{"role": "user", "content": "x"}], "tools": )" + tools + "}}\n",
        "b.jsonl");
    EXPECT_EQ(req(o[0]).chat_extras.tools_json, R"([{"type":"function","function":{"name":"f"}}])");
}

TEST(PromptReaderFaults, MessagesNameTheValueAndWhatIsAccepted) {
    const std::string long_text(200, 'w');
    expect_each_line_fails(
        {
            {R"({"prompt": "x", "temperature": 1e300})", "'temperature' must be a number >= 0 within the float range"},
            {R"({"prompt": "x", "temperature": 1e300})", "got 1e+300"},
            {R"({"prompt": ["a", "b"]})", "list of strings"},
            {R"({"prompt": ["a", "b"]})", "give one string or an array of token ids"},
            {R"({"prompt": [1, "b"]})", "got \"b\" at [1]"},
            {R"({"messages": [{"role": "alien", "content": "x"}]})",
             "messages[0].role must be one of system, developer, user, assistant, tool, function, ipython, "
             "tool_results, got \"alien\""},
            {R"({"messages": [{"content": "x"}]})", "messages[0].role must be a string"},
            {R"({"prompt": "x", "max_tokens": "many"})", "field 'max_tokens' must be an integer, got \"many\""},
            {R"({"prompt": "x", "n": 99999999999})", "in [-2147483648, 2147483647], got 99999999999"},
            {R"({"prompt": "x", "top_p": "high"})", "top_p' must be a number in (0, 1], got \"high\""},
            {R"({"prompt": "x", "seed": -1})", "field 'seed' must be an integer in [0, 2^64), got -1"},
            {R"({"prompt": "x", "stop": [1]})", "got 1 in [1]"},
            {R"({"prompt": ")" + long_text + R"(", "logprobs": ")" + long_text + R"("})",
             "got \"" + long_text.substr(0, 59) + "..."},
            {R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})", "got {\"type\":\"image_url\"}"},
        },
        "in.jsonl", R"({"prompt": "good"})");
    for (const char* role : {"system", "developer", "user", "assistant", "tool", "ipython"}) {
        const auto recs =
            read_all(str(R"({"messages": [{"role": ")", role, R"(", "content": "x"}]})", "\n"), "in.jsonl");
        EXPECT_EQ(req(recs[0]).messages[0].role, role);
    }
    const auto o = read_all(R"({"custom_id": "a", "method": "GET", "body": {"prompt": "x"}})"
                            "\n",
                            "b.jsonl");
    EXPECT_NE(message_of(o[0]).find("must be \"POST\", got \"GET\""), std::string::npos) << message_of(o[0]);
}
