// `gridlm inspect`: what a gridlm .h5 checkpoint holds (format, config, tokenizer summary,
// tensors with shapes, dtypes and sizes), as text or as one JSON document.
#include <boost/program_options.hpp>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/core/error.h"
#include "io/h5_checkpoint.h"
#include "launch/cli_options.h"
#include "launch/commands.h"

namespace gridlm {
namespace {

namespace po = boost::program_options;
using json = nlohmann::ordered_json;

const char* usage_head =
    "usage: gridlm inspect [--json] MODEL.h5\n\n"
    "Prints a gridlm checkpoint's format version, model config, tokenizer summary (vocabulary and\n"
    "merges counts, pre-tokenizer, BOS/EOS with their text, chat template kind) and every tensor\n"
    "(name, shape, dtype, bytes, type in the original file) with totals.\n\n"
    "exit status: 0 success; 1 unreadable or invalid checkpoint; 2 usage error\n\n"
    "options";

// A recognisable name for the common templates; the first line otherwise says enough.
std::string template_kind(const std::string& t) {
    if (t.empty()) return "none";
    if (t.find("<|im_start|>") != std::string::npos) return "chatml";
    if (t.find("<｜User｜>") != std::string::npos) return "deepseek-r1";  // fullwidth bars, U+FF5C
    if (t.find("<|start_header_id|>") != std::string::npos) return "llama3";
    return "custom";
}

std::string first_line(const std::string& t, size_t max_chars = 80) {
    std::string line = t.substr(0, t.find('\n'));
    if (line.size() > max_chars) line = line.substr(0, max_chars) + "...";
    return line;
}

std::string token_text(const TokenizerData& tok, int32_t id) {
    return id >= 0 && (size_t)id < tok.tokens.size() ? tok.tokens[id] : std::string();
}

json shape_json(const std::vector<int64_t>& shape) { return json(shape); }

std::string shape_str(const std::vector<int64_t>& shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
}

json describe(const H5Checkpoint& ck) {
    json j;
    std::error_code ec;
    j["path"] = ck.path();
    j["file_bytes"] = std::filesystem::file_size(ck.path(), ec);
    j["format"] = h5_format_name;
    j["format_version"] = ck.format_version();
    j["vocab_only"] = ck.vocab_only();
    const ModelConfig& c = ck.config();
    j["config"] = {{"arch", c.arch},
                   {"name", c.name},
                   {"n_vocab", c.n_vocab},
                   {"n_embd", c.n_embd},
                   {"n_layer", c.n_layer},
                   {"n_head", c.n_head},
                   {"n_head_kv", c.n_head_kv},
                   {"head_dim", c.head_dim},
                   {"n_ff", c.n_ff},
                   {"n_ctx_train", c.n_ctx_train},
                   {"rope_theta", c.rope_theta},
                   {"rms_eps", c.rms_eps},
                   {"tied_embeddings", c.tied_embeddings},
                   {"attn_bias", c.attn_bias}};
    // The optional fields, when the model uses them (docs/checkpoint-format.md).
    json& cj = j["config"];
    if (c.yarn_factor > 0) {
        cj["yarn_factor"] = c.yarn_factor;
        cj["yarn_orig_ctx"] = c.yarn_orig_ctx;
        cj["yarn_beta_fast"] = c.yarn_beta_fast;
        cj["yarn_beta_slow"] = c.yarn_beta_slow;
        cj["yarn_mscale"] = c.yarn_mscale;
        cj["yarn_mscale_all_dim"] = c.yarn_mscale_all_dim;
    }
    if (c.kv_lora_rank > 0) {
        cj["q_lora_rank"] = c.q_lora_rank;
        cj["kv_lora_rank"] = c.kv_lora_rank;
        cj["qk_nope_dim"] = c.qk_nope_dim;
        cj["qk_rope_dim"] = c.qk_rope_dim;
        cj["v_head_dim"] = c.v_head_dim;
    }
    if (c.n_expert > 0) {
        cj["n_expert"] = c.n_expert;
        cj["n_expert_used"] = c.n_expert_used;
        cj["n_expert_shared"] = c.n_expert_shared;
        cj["n_ff_expert"] = c.n_ff_expert;
        cj["n_dense_lead"] = c.n_dense_lead;
        cj["n_expert_group"] = c.n_expert_group;
        cj["n_group_used"] = c.n_group_used;
        cj["expert_sigmoid"] = c.expert_sigmoid;
        cj["expert_group_limited"] = c.expert_group_limited;
        cj["expert_weights_norm"] = c.expert_weights_norm;
        cj["expert_weights_scale"] = c.expert_weights_scale;
        cj["expert_score_bias"] = c.expert_score_bias;
    }
    const TokenizerData& t = ck.tokenizer();
    std::map<int32_t, int64_t> by_type;
    for (int32_t ty : t.token_types) by_type[ty]++;
    const char* type_names[] = {"?", "normal", "unknown", "control", "user_defined", "unused", "byte"};
    json types = json::object();
    for (const auto& [ty, n] : by_type) types[ty >= 1 && ty <= 6 ? type_names[ty] : std::to_string(ty)] = n;
    j["tokenizer"] = {{"model", t.model},
                      {"pre", t.pre},
                      {"n_tokens", t.tokens.size()},
                      {"token_types", types},
                      {"n_merges", t.merges.size()},
                      {"bos_id", t.bos_id},
                      {"bos", token_text(t, t.bos_id)},
                      {"eos_id", t.eos_id},
                      {"eos", token_text(t, t.eos_id)},
                      {"pad_id", t.pad_id},
                      {"pad", token_text(t, t.pad_id)},
                      {"add_bos", t.add_bos},
                      {"chat_template_kind", template_kind(t.chat_template)},
                      {"chat_template_bytes", t.chat_template.size()},
                      {"chat_template_first_line", first_line(t.chat_template)},
                      {"chat_template_tool_use_bytes", t.chat_template_tool_use.size()}};
    json tensors = json::array();
    uint64_t total_bytes = 0;
    int64_t total_params = 0;
    std::map<std::string, int64_t> by_dtype;
    for (const TensorInfo& ti : ck.tensors()) {
        const std::string dtype(dtype_name(ck.tensor_dtype(ti.name)));
        tensors.push_back({{"name", ti.name},
                           {"shape", shape_json(ti.shape)},
                           {"dtype", dtype},
                           {"bytes", ti.source_bytes},
                           {"source_type", ck.origin_type(ti.name)}});
        total_bytes += ti.source_bytes;
        total_params += ti.numel();
        by_dtype[dtype]++;
    }
    j["tensors"] = tensors;
    j["totals"] = {
        {"tensors", ck.tensors().size()}, {"params", total_params}, {"bytes", total_bytes}, {"by_dtype", by_dtype}};
    return j;
}

// Token texts may hold control characters or invalid UTF-8: print them as JSON strings.
std::string quoted(const json& s) { return s.dump(-1, ' ', false, json::error_handler_t::replace); }

void print_text(const json& j) {
    auto row = [](const std::string& k, const std::string& v) { std::printf("  %-20s %s\n", k.c_str(), v.c_str()); };
    const uint64_t file_bytes = j["file_bytes"];
    std::printf("checkpoint %s (%.1f MiB)\n", j["path"].get<std::string>().c_str(), file_bytes / 1048576.0);
    std::printf("format     %s version %d, %s\n", j["format"].get<std::string>().c_str(),
                j["format_version"].get<int>(), j["vocab_only"].get<bool>() ? "vocabulary only" : "with weights");
    std::printf("config\n");
    for (const auto& [k, v] : j["config"].items()) row(k, v.is_string() ? v.get<std::string>() : v.dump());
    const json& t = j["tokenizer"];
    std::printf("tokenizer\n");
    row("model", t["model"]);
    row("pre", t["pre"]);
    std::string types;
    for (const auto& [k, v] : t["token_types"].items()) types += (types.empty() ? "" : ", ") + k + " " + v.dump();
    row("tokens", t["n_tokens"].dump() + " (" + types + ")");
    row("merges", t["n_merges"].dump());
    for (const char* s : {"bos", "eos", "pad"}) {
        const int id = t[std::string(s) + "_id"];
        row(std::string(s) + "_id", id < 0 ? "none" : std::to_string(id) + " " + quoted(t[s]));
    }
    row("add_bos", t["add_bos"].dump());
    row("chat_template", t["chat_template_kind"].get<std::string>() + ", " + t["chat_template_bytes"].dump() +
                             " bytes; first line: " + quoted(t["chat_template_first_line"]));
    if (t["chat_template_tool_use_bytes"].get<size_t>() > 0)
        row("chat_template_tool_use",
            t["chat_template_tool_use_bytes"].dump() + " bytes (renders requests with tools)");
    std::printf("tensors\n");
    size_t width = 4;
    for (const json& ti : j["tensors"]) width = std::max(width, ti["name"].get<std::string>().size());
    for (const json& ti : j["tensors"]) {
        const std::string src = ti["source_type"];
        std::printf("  %-*s %-14s %-5s %12llu%s\n", (int)width, ti["name"].get<std::string>().c_str(),
                    shape_str(ti["shape"].get<std::vector<int64_t>>()).c_str(), ti["dtype"].get<std::string>().c_str(),
                    (unsigned long long)ti["bytes"].get<uint64_t>(), src.empty() ? "" : ("  from " + src).c_str());
    }
    const json& tot = j["totals"];
    std::string by;
    for (const auto& [k, v] : tot["by_dtype"].items()) by += (by.empty() ? "" : ", ") + k + " " + v.dump();
    std::printf("total      %s tensors, %s parameters, %s bytes (%.1f MiB)%s\n", tot["tensors"].dump().c_str(),
                tot["params"].dump().c_str(), tot["bytes"].dump().c_str(), tot["bytes"].get<uint64_t>() / 1048576.0,
                by.empty() ? "" : (" [" + by + "]").c_str());
}

int run_inspect(const std::vector<std::string>& args) {
    po::options_description opts(usage_head);
    // clang-format off
    opts.add_options()
        ("help,h", "show this help and exit")
        ("json", po::bool_switch(), "print one JSON document instead of text (default: text)");
    // clang-format on
    add_log_options(opts);
    po::options_description hidden;
    hidden.add_options()("model", po::value<std::vector<std::string>>(), "checkpoint");
    po::options_description all;
    all.add(opts).add(hidden);
    po::positional_options_description positional;
    positional.add("model", -1);
    const po::variables_map vm = parse_options(args, all, &positional);
    if (vm.count("help")) {
        std::cout << opts << "\n";
        return exit_ok;
    }
    apply_log_options(vm);
    if (!vm.count("model") || vm["model"].as<std::vector<std::string>>().size() != 1) {
        throw UsageError("give exactly one checkpoint file");
    }
    const H5Checkpoint ck(vm["model"].as<std::vector<std::string>>()[0]);
    const json j = describe(ck);
    if (vm["json"].as<bool>()) {
        std::cout << j.dump(1, ' ', false, json::error_handler_t::replace) << "\n";
    } else {
        print_text(j);
    }
    std::cout.flush();
    if (!std::cout) throw Error("cannot write the output");
    return exit_ok;
}

}  // namespace
}  // namespace gridlm

GRIDLM_COMMAND(inspect, "inspect", "show a gridlm .h5 checkpoint's config, tokenizer summary and tensors",
               gridlm::run_inspect);
