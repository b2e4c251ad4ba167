// Hugging Face tokenizer.json (byte-level BPE) + tokenizer_config.json -> TokenizerData, including
// recognising the pre-tokenizer by its split regex.
#include <algorithm>
#include <filesystem>
#include <unordered_map>

#include "io/hf_checkpoint.h"
#include "io/hf_json.h"

namespace gridlm {

using hf::json;

namespace {

// Split regexes exactly as tokenizer.json files spell them (JSON-unescaped).
const char* const qwen2_regex =
    R"re((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";
const char* const llama3_regex =
    R"re((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";
const char* const gpt2_regex = R"re('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)re";

// Ids above this are not a vocabulary but a corrupt file: refuse before allocating.
constexpr int64_t max_token_id = 1 << 24;

std::string step_type(const json& step) {
    return step.is_object() && step.contains("type") && step["type"].is_string() ? step["type"].get<std::string>()
                                                                                 : "?";
}

// tokenizer.json pre_tokenizer -> pre kind. Byte-level BPE always ends with ByteLevel; what comes
// before it (or ByteLevel's own GPT-2 regex) decides how text is split into words.
std::string detect_pre(const json& pre, const std::string& file) {
    if (!pre.is_object()) throw Error(str(file, ": pre_tokenizer is missing; byte-level BPE needs a ByteLevel one"));
    std::vector<json> steps;
    if (step_type(pre) == "Sequence") {
        if (!pre.contains("pretokenizers") || !pre["pretokenizers"].is_array()) {
            throw Error(str(file, ": pre_tokenizer Sequence has no 'pretokenizers' array"));
        }
        for (const json& s : pre["pretokenizers"]) steps.push_back(s);
    } else {
        steps.push_back(pre);
    }
    std::string seq;
    for (const json& s : steps) seq += (seq.empty() ? "" : ", ") + step_type(s);
    if (steps.empty() || step_type(steps.back()) != "ByteLevel") {
        throw Error(
            str(file, ": pre_tokenizer [", seq, "] does not end with ByteLevel; only byte-level BPE is supported"));
    }
    const json& bl = steps.back();
    if (hf::opt_bool(bl, "add_prefix_space", file, false)) {
        throw Error(str(file, ": pre_tokenizer ByteLevel add_prefix_space = true is not supported"));
    }
    const bool bl_regex = hf::opt_bool(bl, "use_regex", file, true);
    steps.pop_back();
    if (steps.empty() && bl_regex) return "gpt2";
    if (steps.size() == 1 && bl_regex && step_type(steps[0]) == "Digits" &&
        hf::opt_bool(steps[0], "individual_digits", file, false)) {
        return "smollm";  // digits split one by one, then GPT-2's regex
    }
    if (steps.size() == 1 && !bl_regex && step_type(steps[0]) == "Split") {
        const json& split = steps[0];
        if (!split.contains("pattern") || !split["pattern"].is_object() || !split["pattern"].contains("Regex") ||
            !split["pattern"]["Regex"].is_string()) {
            throw Error(str(file, ": pre_tokenizer Split needs a pattern {\"Regex\": ...}"));
        }
        const std::string pattern = split["pattern"]["Regex"].get<std::string>();
        if (hf::opt_string(split, "behavior", file).value_or("Isolated") != "Isolated" ||
            hf::opt_bool(split, "invert", file, false)) {
            throw Error(str(file, ": pre_tokenizer Split must have behavior Isolated and invert false"));
        }
        const std::string kind = hf_pre_kind_of_regex(pattern);
        if (kind.empty()) {
            throw Error(str(file, ": unknown pre-tokenizer split regex \"", pattern,
                            "\" (gridlm knows the qwen2, llama3 and gpt2 regexes)"));
        }
        return kind;
    }
    throw Error(str(file, ": pre_tokenizer [", seq, "] (ByteLevel use_regex = ", bl_regex ? "true" : "false",
                    ") is not a combination gridlm knows (Split+ByteLevel, Digits+ByteLevel, ByteLevel)"));
}

// A special-token field of tokenizer_config.json: "text", {"content": "text", ...} or null.
std::optional<std::string> token_text(const json& cfg, const char* field, const std::string& file) {
    if (!cfg.contains(field) || cfg[field].is_null()) return std::nullopt;
    const json& v = cfg[field];
    if (v.is_string()) return v.get<std::string>();
    if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
    throw Error(str(file, ": field '", field, "' should be a token string or {\"content\": ...}"));
}

// config.json's bos/eos/pad_token_id: an int, a list of ints (the first counts) or absent.
std::optional<int64_t> config_token_id(const json& cfg, const char* field, const std::string& file) {
    if (!cfg.contains(field) || cfg[field].is_null()) return std::nullopt;
    const json& v = cfg[field];
    if (v.is_array() && !v.empty() && v[0].is_number_integer()) return v[0].get<int64_t>();
    return hf::opt_int(cfg, field, file);
}

}  // namespace

std::string hf_pre_kind_of_regex(const std::string& pattern) {
    if (pattern == qwen2_regex) return "qwen2";
    if (pattern == llama3_regex) return "llama3";
    if (pattern == gpt2_regex) return "gpt2";
    return "";
}

TokenizerData hf_tokenizer_data(const std::string& dir, int64_t n_vocab) {
    namespace fs = std::filesystem;
    std::error_code ec;
    const std::string file = (fs::path(dir) / "tokenizer.json").string();
    if (!fs::exists(file, ec)) throw Error(str("no tokenizer.json in ", dir));
    const json j = hf::read_json_file(file);
    TokenizerData t;
    t.model = "gpt2";

    if (!j.contains("model") || !j["model"].is_object()) throw Error(str(file, ": missing object 'model'"));
    const json& m = j["model"];
    const std::string type = hf::get_string(m, "type", file);
    if (type != "BPE") throw Error(str(file, ": model.type is ", type, "; only byte-level BPE is supported"));
    if (hf::opt_bool(m, "byte_fallback", file, false)) {
        throw Error(str(file, ": model.byte_fallback = true (SentencePiece-style BPE) is not supported"));
    }
    for (const char* field : {"continuing_subword_prefix", "end_of_word_suffix"}) {
        if (!hf::opt_string(m, field, file).value_or("").empty()) {
            throw Error(str(file, ": model.", field, " is set; byte-level BPE does not use it"));
        }
    }
    if (!m.contains("vocab") || !m["vocab"].is_object()) throw Error(str(file, ": missing object 'model.vocab'"));

    // id -> text from the BPE vocabulary and the added tokens; holes are filled below.
    std::vector<std::string> tokens;
    std::vector<int32_t> types;
    std::vector<bool> known;
    auto set_token = [&](int64_t id, const std::string& text, TokenType tt, const char* what) {
        if (id < 0 || id >= max_token_id || (n_vocab > 0 && id >= n_vocab)) {
            throw Error(
                str(file, ": ", what, " '", text, "' has id ", id, ", outside the model's vocabulary of ", n_vocab));
        }
        if ((size_t)id >= tokens.size()) {
            tokens.resize(id + 1);
            types.resize(id + 1, (int32_t)TokenType::token_type_unused);
            known.resize(id + 1, false);
        }
        if (known[id] && tokens[id] != text) {
            throw Error(str(file, ": id ", id, " is both '", tokens[id], "' and '", text, "'"));
        }
        tokens[id] = text;
        types[id] = (int32_t)tt;
        known[id] = true;
    };
    for (const auto& [text, id] : m["vocab"].items()) {
        if (!id.is_number_integer()) throw Error(str(file, ": model.vocab entry '", text, "' has a non-integer id"));
        set_token(id.get<int64_t>(), text, TokenType::token_type_normal, "token");
    }
    if (j.contains("added_tokens") && !j["added_tokens"].is_null()) {
        if (!j["added_tokens"].is_array()) throw Error(str(file, ": 'added_tokens' should be an array"));
        for (const json& a : j["added_tokens"]) {
            const int64_t id = hf::get_int(a, "id", file);
            const std::string text = hf::get_string(a, "content", file);
            const bool special = hf::opt_bool(a, "special", file, false);
            set_token(id, text, special ? TokenType::token_type_control : TokenType::token_type_user_defined,
                      "added token");
        }
    }
    // Unused ids (and embedding rows past the tokenizer) get placeholder names, as in llama.cpp.
    const size_t n_total = std::max<size_t>(tokens.size(), n_vocab > 0 ? (size_t)n_vocab : 0);
    tokens.resize(n_total);
    types.resize(n_total, (int32_t)TokenType::token_type_unused);
    known.resize(n_total, false);
    for (size_t id = 0; id < n_total; ++id) {
        if (!known[id]) tokens[id] = str("[PAD", id, "]");
    }
    t.tokens = std::move(tokens);
    t.token_types = std::move(types);

    if (!m.contains("merges") || !m["merges"].is_array()) throw Error(str(file, ": missing array 'model.merges'"));
    t.merges.reserve(m["merges"].size());
    for (const json& mg : m["merges"]) {
        // Older files write "left right", newer ones ["left", "right"].
        if (mg.is_string()) {
            t.merges.push_back(mg.get<std::string>());
        } else if (mg.is_array() && mg.size() == 2 && mg[0].is_string() && mg[1].is_string()) {
            t.merges.push_back(mg[0].get<std::string>() + " " + mg[1].get<std::string>());
        } else {
            throw Error(
                str(file, ": merge ", t.merges.size(), " is ", mg.dump(), "; expected \"a b\" or [\"a\", \"b\"]"));
        }
    }

    // Only NFC is accepted among normalizers: it leaves already-composed text unchanged.
    if (j.contains("normalizer") && !j["normalizer"].is_null()) {
        const std::string nt = step_type(j["normalizer"]);
        if (nt != "NFC") throw Error(str(file, ": normalizer '", nt, "' is not supported (none or NFC)"));
    }
    t.pre = detect_pre(j.contains("pre_tokenizer") ? j["pre_tokenizer"] : json(), file);

    // Special tokens, BOS policy and chat template from tokenizer_config.json, falling back on
    // config.json's token ids.
    std::unordered_map<std::string, int32_t> id_of;
    for (size_t id = 0; id < t.tokens.size(); ++id) {
        if (t.token_types[id] != (int32_t)TokenType::token_type_unused) id_of.emplace(t.tokens[id], (int32_t)id);
    }
    const std::string tc_file = (fs::path(dir) / "tokenizer_config.json").string();
    const json tc = fs::exists(tc_file, ec) ? hf::read_json_file(tc_file) : json::object();
    const std::string cfg_file = (fs::path(dir) / "config.json").string();
    const json cfg = fs::exists(cfg_file, ec) ? hf::read_json_file(cfg_file) : json::object();
    auto resolve = [&](const char* tc_field, const char* cfg_field) -> int32_t {
        if (auto text = token_text(tc, tc_field, tc_file)) {
            auto it = id_of.find(*text);
            if (it == id_of.end()) throw Error(str(tc_file, ": ", tc_field, " '", *text, "' is not in the vocabulary"));
            return it->second;
        }
        if (auto id = config_token_id(cfg, cfg_field, cfg_file)) {
            if (*id < 0 || *id >= (int64_t)t.tokens.size()) {
                throw Error(str(cfg_file, ": ", cfg_field, " ", *id, " is outside the vocabulary"));
            }
            return (int32_t)*id;
        }
        return -1;
    };
    t.bos_id = resolve("bos_token", "bos_token_id");
    t.eos_id = resolve("eos_token", "eos_token_id");
    t.pad_id = resolve("pad_token", "pad_token_id");

    if (tc.contains("add_bos_token") && !tc["add_bos_token"].is_null()) {
        t.add_bos = hf::opt_bool(tc, "add_bos_token", tc_file, false);
    } else if (j.contains("post_processor") && step_type(j["post_processor"]) == "TemplateProcessing") {
        // Llama 3 style: the BOS is added by the post-processor template instead of a flag.
        const json& pp = j["post_processor"];
        t.add_bos = pp.contains("single") && pp["single"].is_array() && !pp["single"].empty() &&
                    pp["single"][0].is_object() && pp["single"][0].contains("SpecialToken");
    }

    const fs::path jinja = fs::path(dir) / "chat_template.jinja";
    if (fs::exists(jinja, ec)) {  // transformers >= 4.47 saves the template beside the config
        t.chat_template = hf::read_text_file(jinja.string());
    } else if (tc.contains("chat_template") && !tc["chat_template"].is_null()) {
        const json& ct = tc["chat_template"];
        if (ct.is_string()) {
            t.chat_template = ct.get<std::string>();
        } else if (ct.is_array()) {  // named templates: "default" (else the first) and "tool_use"
            for (const json& e : ct) {
                if (!e.is_object() || !e.contains("template") || !e["template"].is_string()) continue;
                const std::string name = hf::opt_string(e, "name", tc_file).value_or("");
                if (name == "tool_use") t.chat_template_tool_use = e["template"].get<std::string>();
                if (t.chat_template.empty() || name == "default") t.chat_template = e["template"].get<std::string>();
            }
        } else {
            throw Error(str(tc_file, ": field 'chat_template' should be a string or a list of named templates"));
        }
    }
    // transformers >= 4.47 saves named templates beside the default one.
    const fs::path tool_use = fs::path(dir) / "additional_chat_templates" / "tool_use.jinja";
    if (fs::exists(tool_use, ec)) t.chat_template_tool_use = hf::read_text_file(tool_use.string());
    return t;
}

}  // namespace gridlm
