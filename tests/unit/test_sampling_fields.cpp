// Unit tests of the sampling-field table: every field round-trips through the prompt reader and
// the generate options, defaults are the struct's, and each rule rejects with its message.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <type_traits>
#include <variant>

#include <boost/program_options.hpp>

#include "engine/core/sampling_fields.h"
#include "io/prompt_reader.h"
#include "launch/sampling_options.h"

using namespace gridlm;
namespace po = boost::program_options;
using json = nlohmann::json;

namespace {

template <typename M>
using member_type = std::decay_t<decltype(std::declval<SamplingParams&>().*std::declval<M>())>;

const SamplingField& row(const std::string& json_name) {
    for (const SamplingField& f : sampling_fields()) {
        if (json_name == f.json_name) return f;
    }
    throw std::runtime_error("no sampling field " + json_name);
}

// True when p and q hold the same value in row f's member.
bool same_member(const SamplingField& f, const SamplingParams& p, const SamplingParams& q) {
    return std::visit([&](auto m) { return p.*m == q.*m; }, f.member);
}

// A valid value other than the default for every field, set in row f's member of p.
void set_sample(const SamplingField& f, SamplingParams& p) {
    std::visit(
        [&](auto m) {
            using T = member_type<decltype(m)>;
            if constexpr (std::is_same_v<T, int32_t>) {
                p.*m = 3;
            } else if constexpr (std::is_same_v<T, float>) {
                p.*m = 0.5f;
            } else if constexpr (std::is_same_v<T, bool>) {
                p.*m = true;
            } else if constexpr (std::is_same_v<T, std::optional<uint64_t>>) {
                p.*m = 42;
            } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
                p.*m = {"a", "bc"};
            } else {
                p.*m = {5, 7};
            }
        },
        f.member);
}

// Row f's member of p as a record field value.
json json_value(const SamplingField& f, const SamplingParams& p) {
    return std::visit(
        [&](auto m) -> json {
            if constexpr (std::is_same_v<member_type<decltype(m)>, std::optional<uint64_t>>) {
                return *(p.*m);
            } else {
                return p.*m;
            }
        },
        f.member);
}

// Row f's member of p as command-line arguments.
std::vector<std::string> option_args(const SamplingField& f, const SamplingParams& p) {
    const std::string flag = std::string("--") + f.option_name;
    return std::visit(
        [&](auto m) -> std::vector<std::string> {
            using T = member_type<decltype(m)>;
            if constexpr (std::is_same_v<T, bool>) {
                return {flag};
            } else if constexpr (std::is_same_v<T, std::optional<uint64_t>>) {
                return {flag, std::to_string(*(p.*m))};
            } else if constexpr (std::is_same_v<T, std::vector<std::string>> ||
                                 std::is_same_v<T, std::vector<int32_t>>) {
                std::vector<std::string> args;
                for (const auto& x : p.*m) {
                    std::ostringstream os;
                    os << x;
                    args.insert(args.end(), {flag, os.str()});
                }
                return args;
            } else {
                std::ostringstream os;
                os << p.*m;
                return {flag, os.str()};
            }
        },
        f.member);
}

std::variant<Request, RecordError> read_one(const json& record, PromptReaderOptions opts = {}) {
    PromptReader r(std::make_unique<std::istringstream>(record.dump() + "\n"), "t.jsonl", opts);
    auto rec = r.next();
    if (!rec) throw std::runtime_error("no record read");
    return *rec;
}

SamplingParams read_params(const json& record) {
    auto rec = read_one(record);
    if (auto* e = std::get_if<RecordError>(&rec)) {
        ADD_FAILURE() << record.dump() << ": " << e->message;
        return {};
    }
    return std::get<Request>(rec).params;
}

std::string read_error(const json& record, PromptReaderOptions opts = {}) {
    auto rec = read_one(record, opts);
    if (auto* e = std::get_if<RecordError>(&rec)) return e->message;
    ADD_FAILURE() << record.dump() << " was accepted";
    return "";
}

po::variables_map parse_sampling_args(const std::vector<std::string>& args) {
    po::options_description opts;
    add_sampling_options(opts);
    po::variables_map vm;
    po::store(po::command_line_parser(args).options(opts).run(), vm);
    po::notify(vm);
    return vm;
}

}  // namespace

TEST(SamplingFields, NamesAreUniqueAndFollowOneSpelling) {
    const std::vector<std::string> expected = {"max_tokens",
                                               "min_tokens",
                                               "temperature",
                                               "top_p",
                                               "top_k",
                                               "min_p",
                                               "repetition_penalty",
                                               "frequency_penalty",
                                               "presence_penalty",
                                               "seed",
                                               "stop",
                                               "stop_token_ids",
                                               "ignore_eos",
                                               "n",
                                               "logprobs",
                                               "top_logprobs"};
    std::vector<std::string> names;
    std::set<std::string> options;
    for (const SamplingField& f : sampling_fields()) {
        names.push_back(f.json_name);
        std::string option = f.json_name;
        for (char& c : option) c = c == '_' ? '-' : c;
        EXPECT_EQ(f.option_name, option);
        EXPECT_TRUE(options.insert(f.option_name).second) << f.option_name;
        EXPECT_TRUE(f.changes_output) << f.json_name;  // every sampling field changes the output today
        EXPECT_NE(std::string(f.help), "") << f.json_name;
    }
    EXPECT_EQ(names, expected);
    EXPECT_STREQ(row("max_tokens").json_alias, "max_completion_tokens");
}

TEST(SamplingFields, DefaultsAreTheStructs) {
    const SamplingParams d;
    // A record without sampling fields gets the reader's defaults, which are the struct's.
    const SamplingParams read = read_params({{"prompt", "x"}});
    // The command line without sampling options gives the struct's defaults and job seed 0.
    uint64_t job_seed = 99;
    const SamplingParams from_options = sampling_params_from(parse_sampling_args({}), &job_seed);
    EXPECT_EQ(job_seed, 0u);
    for (const SamplingField& f : sampling_fields()) {
        EXPECT_TRUE(same_member(f, read, d)) << f.json_name;
        EXPECT_TRUE(same_member(f, from_options, d)) << f.option_name;
    }
    // The defaults --help shows.
    po::options_description opts;
    add_sampling_options(opts);
    EXPECT_EQ(opts.find("max-tokens", false).format_parameter(), "arg (=256)");
    EXPECT_EQ(opts.find("temperature", false).format_name(), "-t [ --temperature ]");
    EXPECT_EQ(opts.find("top-p", false).format_parameter(), "arg (=1)");
    EXPECT_EQ(opts.find("seed", false).format_parameter(), "arg (=0)");
    EXPECT_EQ(opts.find("stop", false).format_parameter(), "arg");
    EXPECT_EQ(opts.find("ignore-eos", false).format_parameter(), "");
}

TEST(SamplingFields, EveryFieldRoundTripsThroughTheReaderAndTheOptions) {
    for (const SamplingField& f : sampling_fields()) {
        SamplingParams want;
        set_sample(f, want);
        ASSERT_FALSE(same_member(f, want, SamplingParams{})) << f.json_name << ": the sample is the default";

        const SamplingParams read = read_params({{"prompt", "x"}, {f.json_name, json_value(f, want)}});
        EXPECT_TRUE(same_member(f, read, want)) << "record field " << f.json_name;
        if (f.json_alias) {
            const SamplingParams alias = read_params({{"prompt", "x"}, {f.json_alias, json_value(f, want)}});
            EXPECT_TRUE(same_member(f, alias, want)) << "record field " << f.json_alias;
        }

        uint64_t job_seed = 0;
        const SamplingParams from_options = sampling_params_from(parse_sampling_args(option_args(f, want)), &job_seed);
        if (std::holds_alternative<std::optional<uint64_t> SamplingParams::*>(f.member)) {
            EXPECT_EQ(job_seed, *want.seed);  // --seed is the job seed; records derive theirs from it
            EXPECT_FALSE(from_options.seed.has_value());
        } else {
            EXPECT_TRUE(same_member(f, from_options, want)) << "option --" << f.option_name;
        }
    }
}

TEST(SamplingFields, ReaderPeculiarities) {
    // The alias is read after the name and wins.
    EXPECT_EQ(read_params({{"prompt", "x"}, {"max_tokens", 5}, {"max_completion_tokens", 9}}).max_tokens, 9);
    EXPECT_EQ(read_params({{"prompt", "x"}, {"top_k", -1}}).top_k, 0);
    const SamplingParams lp = read_params({{"prompt", "x"}, {"logprobs", 4}});
    EXPECT_TRUE(lp.logprobs);
    EXPECT_EQ(lp.top_logprobs, 4);
    EXPECT_TRUE(read_params({{"prompt", "x"}, {"logprobs", false}, {"top_logprobs", 2}}).logprobs);
    EXPECT_EQ(read_params({{"prompt", "x"}, {"stop", "end"}}).stop, std::vector<std::string>{"end"});
    // Messages give the value as the record gave it (JSON text) and what is accepted.
    EXPECT_EQ(read_error({{"prompt", "x"}, {"max_completion_tokens", "many"}}),
              "field 'max_completion_tokens' must be an integer, got \"many\"");
    EXPECT_EQ(read_error({{"prompt", "x"}, {"logprobs", 0.5}}),
              "field 'logprobs' must be true, false or an integer, got 0.5");
    EXPECT_EQ(read_error({{"prompt", "x"}, {"ignore_eos", 1}}), "field 'ignore_eos' must be true or false, got 1");
    EXPECT_EQ(read_error({{"prompt", "x"}, {"stop", {"a", 1}}}),
              "field 'stop' must be a string or an array of strings, got 1 in [\"a\",1]");
    EXPECT_EQ(read_error({{"prompt", "x"}, {"stop", 3}}),
              "field 'stop' must be a string or an array of strings, got 3");
    EXPECT_EQ(read_error({{"prompt", "x"}, {"temperature", "hot"}}),
              "field 'temperature' must be a number >= 0, got \"hot\"");

    const auto o = parse_sampling_args({"--top-k", "-1", "--top-logprobs", "2"});
    uint64_t job_seed = 0;
    const SamplingParams p = sampling_params_from(o, &job_seed);
    EXPECT_EQ(p.top_k, 0);
    EXPECT_TRUE(p.logprobs);
}

TEST(SamplingFields, EachRuleRejectsItsOutOfRangeValueWithItsMessage) {
    SamplingLimits limits;
    limits.max_tokens = 4096;
    const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
    struct Case {
        const char* field;
        std::function<void(SamplingParams&)> set;
        json value;  // the same value as a record field; null where a record cannot hold it
        std::string message;
    };
    const std::vector<Case> cases = {
        {"max_tokens", [](SamplingParams& p) { p.max_tokens = 0; }, 0, "max_tokens must be in [1, 4096], got 0"},
        {"max_tokens", [](SamplingParams& p) { p.max_tokens = 4097; }, 4097,
         "max_tokens must be in [1, 4096], got 4097"},
        {"min_tokens", [](SamplingParams& p) { p.min_tokens = 257; }, 257,
         "min_tokens must be in [0, max_tokens=256], got 257"},
        {"min_tokens", [](SamplingParams& p) { p.min_tokens = -1; }, -1,
         "min_tokens must be in [0, max_tokens=256], got -1"},
        {"temperature", [](SamplingParams& p) { p.temperature = -0.5f; }, -0.5, "temperature must be >= 0, got -0.5"},
        {"temperature", [&](SamplingParams& p) { p.temperature = inf; }, nullptr, "temperature must be >= 0, got inf"},
        {"top_p", [](SamplingParams& p) { p.top_p = 0; }, 0, "top_p must be in (0, 1], got 0"},
        {"top_p", [](SamplingParams& p) { p.top_p = 1.5f; }, 1.5, "top_p must be in (0, 1], got 1.5"},
        {"top_p", [&](SamplingParams& p) { p.top_p = nan; }, nullptr, "top_p must be in (0, 1], got nan"},
        {"top_k", [](SamplingParams& p) { p.top_k = -2; }, -2, "top_k must be >= 0 (0 or -1 = off), got -2"},
        {"min_p", [](SamplingParams& p) { p.min_p = 2; }, 2, "min_p must be in [0, 1], got 2"},
        {"min_p", [](SamplingParams& p) { p.min_p = -0.25f; }, -0.25, "min_p must be in [0, 1], got -0.25"},
        {"repetition_penalty", [](SamplingParams& p) { p.repetition_penalty = 0; }, 0,
         "repetition_penalty must be > 0, got 0"},
        {"repetition_penalty", [&](SamplingParams& p) { p.repetition_penalty = inf; }, nullptr,
         "repetition_penalty must be > 0, got inf"},
        {"frequency_penalty", [](SamplingParams& p) { p.frequency_penalty = 3; }, 3,
         "frequency_penalty must be in [-2, 2], got 3"},
        {"presence_penalty", [](SamplingParams& p) { p.presence_penalty = -2.5f; }, -2.5,
         "presence_penalty must be in [-2, 2], got -2.5"},
        {"stop",
         [](SamplingParams& p) {
             p.stop = {"a", ""};
         },
         {"a", ""},
         "stop strings must not be empty"},
        // A record's negative token id is refused while it is read ("holds a negative token id").
        {"stop_token_ids",
         [](SamplingParams& p) {
             p.stop_token_ids = {3, -1};
         },
         nullptr, "stop_token_ids must be >= 0, got -1"},
        {"n", [](SamplingParams& p) { p.n = 0; }, 0, "n must be in [1, 64], got 0"},
        {"n", [](SamplingParams& p) { p.n = 65; }, 65, "n must be in [1, 64], got 65"},
        {"top_logprobs", [](SamplingParams& p) { p.top_logprobs = 21; }, 21, "top_logprobs must be in [0, 20], got 21"},
    };
    std::set<std::string> covered;
    PromptReaderOptions opts;
    opts.limits = limits;
    for (const Case& c : cases) {
        covered.insert(c.field);
        SamplingParams p;
        c.set(p);
        EXPECT_EQ(validate_sampling_params(p, limits).value_or("(accepted)"), c.message) << c.field;
        EXPECT_EQ(sampling_field_problem(row(c.field), p, limits).value_or("(accepted)"), c.message) << c.field;
        if (!c.value.is_null()) {
            EXPECT_EQ(read_error({{"prompt", "x"}, {c.field, c.value}}, opts), c.message) << c.field;
        }
    }
    for (const SamplingField& f : sampling_fields()) {
        const bool checked = f.check != SamplingCheck::sampling_check_none;
        EXPECT_EQ(covered.count(f.json_name) == 1, checked) << f.json_name << ": a rule without a case, or the reverse";
    }
}

TEST(SamplingFields, BoundsAreAcceptedAndNumbersAreCheckedBeforeLists) {
    SamplingLimits limits;
    limits.max_tokens = 4096;
    SamplingParams p;
    p.max_tokens = 4096;
    p.min_tokens = 4096;
    p.temperature = 0;
    p.top_p = 1;
    p.min_p = 1;
    p.repetition_penalty = 1e-6f;
    p.frequency_penalty = -2;
    p.presence_penalty = 2;
    p.n = 64;
    p.top_logprobs = 20;
    p.stop_token_ids = {0};
    EXPECT_EQ(validate_sampling_params(p, limits), std::nullopt);
    p.stop = {""};
    p.n = 0;
    EXPECT_EQ(validate_sampling_params(p, limits).value_or(""), "n must be in [1, 64], got 0");
}

TEST(SamplingFields, ManifestEntriesKeepTheirNamesAndFormat) {
    SamplingParams p;
    p.temperature = 0.5f;
    p.stop = {"a", "bc"};
    p.stop_token_ids = {5, 7};
    p.ignore_eos = true;
    p.seed = 1234;  // a record's seed: not what the manifest records
    const auto o = sampling_manifest_options(p, 42);
    const std::map<std::string, std::string> expected = {{"max-tokens", "256"},
                                                         {"min-tokens", "0"},
                                                         {"temperature", "0.5"},
                                                         {"top-p", "1"},
                                                         {"top-k", "0"},
                                                         {"min-p", "0"},
                                                         {"repetition-penalty", "1"},
                                                         {"frequency-penalty", "0"},
                                                         {"presence-penalty", "0"},
                                                         {"seed", "42"},
                                                         {"stop",
                                                          "a\x1f"
                                                          "bc"},
                                                         {"stop-token-ids",
                                                          "5\x1f"
                                                          "7"},
                                                         {"ignore-eos", "1"},
                                                         {"n", "1"},
                                                         {"logprobs", "0"},
                                                         {"top-logprobs", "0"}};
    EXPECT_EQ(o, expected);
}
