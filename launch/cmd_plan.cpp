// `gridlm plan`: which dp x pp x tp grids of a cluster hold a model, with the weight bytes, KV bytes
// per token and free KV tokens of a rank for each, and the one to use (sizing in launch/plan.h).
#include <boost/program_options.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/core/error.h"
#include "io/gguf.h"
#include "io/gguf_model.h"
#include "io/h5_checkpoint.h"
#include "io/hf_checkpoint.h"
#include "io/safetensors.h"
#include "launch/cli_options.h"
#include "launch/commands.h"
#include "launch/plan.h"

namespace gridlm {
namespace {

namespace po = boost::program_options;
namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

const char* usage_head =
    "usage: gridlm plan --model MODEL --nodes N --ranks-per-node R --mem-per-rank BYTES [options]\n\n"
    "Lists the dp x pp x tp grids of the cluster that hold the model, with per rank the weight bytes,\n"
    "the KV-cache bytes per token and the free KV tokens (memory left after the weights and a reserve\n"
    "for the runtime and one step's activations), and recommends one: the fewest model-parallel ranks\n"
    "that leave --min-kv-tokens free, so the most data-parallel replicas. Inside a pipeline stage the\n"
    "tp ranks split attention heads, dense MLPs and the vocabulary (Megatron) and, for mixture-of-\n"
    "experts models, the routed experts (each rank holds n_expert/tp of them). Reads the config (and\n"
    "for --weights stored the tensor table), never the weights; see docs/user-guide.md, \"Plan a\n"
    "deployment\".\n\n"
    "exit status: 0 success (also when no grid fits); 1 unreadable or unsupported model; 2 usage error\n\n"
    "options";

struct PlanInput {
    ModelConfig config;
    std::string name;
    std::shared_ptr<const GgufFile> gguf;
    std::unique_ptr<TensorSource> weights;  // nullptr: a config alone
};

// A .gguf, a gridlm .h5, a Hugging Face directory or a config.json; its tensor table (for --weights
// stored) only when need_weights and the model has weights.
PlanInput open_plan_input(const std::string& path, bool need_weights) {
    std::error_code ec;
    if (!fs::exists(path, ec))
        throw Error(str("model '", path,
                        "' does not exist (give a .gguf, a gridlm .h5, a Hugging Face model directory or a "
                        "config.json)"));
    PlanInput in;
    const fs::path p(path);
    const bool dir = fs::is_directory(p, ec);
    if (dir || p.extension() == ".json") {
        const fs::path config = dir ? p / "config.json" : p;
        if (!fs::exists(config, ec))
            throw Error(str("no config.json in ", path, " (not a Hugging Face model directory)"));
        in.config = hf_model_config(config.string());
        // A bare config named after its model (configs/deepseek-r1.json) gives the name; a config.json its directory.
        in.name = config.filename() == "config.json" ? in.config.name : p.stem().string();
        const fs::path home = config.parent_path().empty() ? fs::path(".") : config.parent_path();
        if (need_weights &&
            (fs::exists(home / "model.safetensors", ec) || fs::exists(home / "model.safetensors.index.json", ec)))
            in.weights = std::make_unique<SafetensorsSource>(home.string());
    } else if (p.extension() == ".gguf") {
        in.gguf = std::make_shared<GgufFile>(path, false);
        in.config = gguf_model_config(*in.gguf);
        if (need_weights) in.weights = std::make_unique<GgufTensorSource>(in.gguf);
        in.name = in.config.name.empty() ? p.stem().string() : in.config.name;
    } else {
        auto ck = std::make_unique<H5Checkpoint>(path);
        in.config = ck->config();
        in.name = in.config.name.empty() ? p.stem().string() : in.config.name;
        if (need_weights && !ck->vocab_only()) in.weights = std::move(ck);
    }
    if (in.name.empty()) in.name = "model";
    return in;
}

std::string grouped(int64_t n) {
    std::string digits = std::to_string(n < 0 ? -n : n), out;
    for (size_t i = 0; i < digits.size(); ++i) {
        if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
        out += digits[i];
    }
    return n < 0 ? "-" + out : out;
}

std::string billions(int64_t n) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f B", (double)n / 1e9);
    return buf;
}

std::vector<int64_t> stage_layers(const GridSize& g) {
    std::vector<int64_t> v;
    for (const StageSize& s : g.stages) v.push_back(s.layers.size);
    return v;
}

std::string layers_text(const GridSize& g) {
    const std::vector<int64_t> v = stage_layers(g);
    if (v.size() > 6) {
        const auto [lo, hi] = std::minmax_element(v.begin(), v.end());
        return str(*lo, "..", *hi, " x", v.size());
    }
    std::string s;
    for (int64_t n : v) s += str(s.empty() ? "" : ",", n);
    return s;
}

json model_json(const PlanInput& in, const ParamCount& n) {
    const ModelConfig& c = in.config;
    json j = {{"record", "model"},
              {"name", in.name},
              {"arch", c.arch},
              {"n_layer", c.n_layer},
              {"dense_layers", c.n_expert > 0 ? c.n_dense_lead : c.n_layer},
              {"moe_layers", c.n_expert > 0 ? c.n_layer - c.n_dense_lead : 0},
              {"n_ctx_train", c.n_ctx_train},
              {"params", n.total}};
    j["params_by_part"] = {{"embedding", n.embedding},
                           {"lm_head", n.lm_head},
                           {"attention", n.attention},
                           {"dense_mlp", n.dense_mlp},
                           {"routed_experts", n.routed_experts},
                           {"shared_experts", n.shared_experts},
                           {"router", n.router},
                           {"norms", n.norms}};
    return j;
}

json grid_json(const FormatPlan& plan, const GridSize& g) {
    json stages = json::array();
    for (const StageSize& s : g.stages)
        stages.push_back({{"layers", {s.layers.begin, s.layers.end()}},
                          {"weight_bytes", s.weight_bytes},
                          {"kv_bytes_per_token", s.kv_bytes_per_token},
                          {"reserve_bytes", s.reserve_bytes},
                          {"free_bytes", s.free_bytes},
                          {"kv_tokens", s.kv_tokens}});
    json j = {{"record", "grid"},
              {"weights", plan.weights.name()},
              {"dp", g.dp},
              {"pp", g.pp},
              {"tp", g.tp},
              {"ranks", g.dp * g.pp * g.tp},
              {"stage_layers", stage_layers(g)},
              {"weight_bytes_per_rank", g.weight_bytes},
              {"kv_bytes_per_token_per_rank", g.kv_bytes_per_token},
              {"reserve_bytes_per_rank", g.reserve_bytes},
              {"free_bytes_per_rank", g.free_bytes},
              {"free_kv_tokens_per_rank", g.kv_tokens_per_rank},
              {"kv_tokens_per_replica", g.kv_tokens_per_replica},
              {"kv_tokens_total", g.kv_tokens_total},
              {"fits", g.fits}};
    if (!g.fits) j["why_not"] = g.why_not;
    j["stages"] = stages;
    return j;
}

json recommendation_json(const FormatPlan& plan) {
    json j = {{"record", "recommendation"}, {"weights", plan.weights.name()}, {"model_bytes", plan.model_bytes}};
    j["fits"] = plan.recommended >= 0;
    if (plan.recommended >= 0) {
        const GridSize& g = plan.grids[plan.recommended];
        j["dp"] = g.dp, j["pp"] = g.pp, j["tp"] = g.tp;
        j["weight_bytes_per_rank"] = g.weight_bytes;
        j["kv_bytes_per_token_per_rank"] = g.kv_bytes_per_token;
        j["free_kv_tokens_per_rank"] = g.kv_tokens_per_rank;
        j["kv_tokens_total"] = g.kv_tokens_total;
        j["kv_cache_bytes"] = g.free_bytes;
    } else {
        j["dp"] = nullptr, j["pp"] = nullptr, j["tp"] = nullptr;
    }
    j["reason"] = plan.reason;
    return j;
}

void print_header(const PlanInput& in, const ParamCount& n, const PlanOptions& opt) {
    const ModelConfig& c = in.config;
    std::printf("model    %s (%s): %s parameters: embedding %s, LM head %s, attention %s, dense MLP %s",
                in.name.c_str(), c.arch.c_str(), billions(n.total).c_str(), billions(n.embedding).c_str(),
                c.tied_embeddings ? "tied" : billions(n.lm_head).c_str(), billions(n.attention).c_str(),
                billions(n.dense_mlp).c_str());
    if (c.n_expert > 0)
        std::printf(", routed experts %s, shared experts %s, router %s", billions(n.routed_experts).c_str(),
                    billions(n.shared_experts).c_str(), billions(n.router).c_str());
    std::printf(", norms %s\n", billions(n.norms).c_str());
    std::printf("         %lld layers", (long long)c.n_layer);
    if (c.n_expert > 0)
        std::printf(" (%lld dense, %lld MoE of %lld experts, %lld per token)", (long long)c.n_dense_lead,
                    (long long)(c.n_layer - c.n_dense_lead), (long long)c.n_expert, (long long)c.n_expert_used);
    if (c.kv_lora_rank > 0)
        std::printf("; latent KV cache: %lld values per token and layer", (long long)(c.kv_lora_rank + c.qk_rope_dim));
    else
        std::printf("; KV cache: %lld values per token and layer", (long long)(2 * c.n_head_kv * c.head_dim));
    std::printf(" (%s)\n", std::string(dtype_name(opt.kv_dtype)).c_str());
    const int world = opt.nodes * opt.ranks_per_node;
    std::printf("cluster  %d node%s x %d ranks = %d ranks, %s per rank (%s bytes), %s in all\n", opt.nodes,
                opt.nodes == 1 ? "" : "s", opt.ranks_per_node, world, format_size(opt.mem_per_rank).c_str(),
                grouped(opt.mem_per_rank).c_str(), format_size(opt.mem_per_rank * world).c_str());
    if (c.kv_lora_rank > 0 && opt.attention == AttentionSplit::heads)
        std::printf(
            "layout   tp splits attention heads (each rank keeps the whole latent cache of the group's "
            "sequences)%s;\n",
            c.n_expert > 0 ? ", routed experts (n_expert/tp each), shared experts and dense MLPs" : "");
    else if (c.kv_lora_rank > 0)
        std::printf(
            "layout   tp runs attention data-parallel (whole attention on each rank, latent cache of its own "
            "sequences only)%s;\n",
            c.n_expert > 0 ? " and splits routed experts (n_expert/tp each), shared experts and dense MLPs"
                           : " and splits the MLPs");
    else
        std::printf("layout   tp splits attention heads, KV heads, MLP columns and the vocabulary (Megatron);\n");
    std::printf(
        "         pp splits the layers as gridlm generate does (embedding on the first stage, final norm "
        "and LM head on the last)\n");
    std::printf(
        "reserve  %s per rank (--overhead) + activations of a %lld-token step (--step-tokens): "
        "reserve/rank below\n",
        format_size(opt.overhead_bytes).c_str(), (long long)opt.step_tokens);
    std::printf("target   %s free KV tokens per rank%s\n", grouped(opt.target_kv_tokens(c)).c_str(),
                opt.min_kv_tokens > 0 ? "" : " (the model's training context)");
}

void print_plan(const FormatPlan& plan, bool verbose, bool sizing_only) {
    std::printf("\nweights %s: %s for the whole model\n", plan.weights.name().c_str(),
                format_size(plan.model_bytes).c_str());
    bool table = false;
    for (const GridSize& g : plan.grids) {
        if (!g.fits && !verbose) continue;
        if (!table)
            std::printf(
                "   dp  pp  tp  layers/stage   weights/rank  reserve/rank  KV bytes/token/rank  "
                "free KV tokens/rank  KV tokens in all\n");
        table = true;
        std::printf("  %3d %3d %3d  %-13s %13s %13s %20s %20s %17s%s\n", g.dp, g.pp, g.tp, layers_text(g).c_str(),
                    format_size(g.weight_bytes).c_str(), format_size(g.reserve_bytes).c_str(),
                    grouped(g.kv_bytes_per_token).c_str(), grouped(g.kv_tokens_per_rank).c_str(),
                    grouped(g.kv_tokens_total).c_str(), g.fits ? "" : ("  does not fit: " + g.why_not).c_str());
    }
    if (verbose)
        for (const Rejection& r : plan.rejected)
            std::printf("  rejected dp=%d pp=%d tp=%d: %s\n", r.dp, r.pp, r.tp, r.reason.c_str());
    if (plan.recommended < 0) {
        std::printf("  no grid fits: %s\n", plan.reason.c_str());
        return;
    }
    const GridSize& g = plan.grids[plan.recommended];
    if (sizing_only) {  // data-parallel attention: a layout gridlm does not run, so no command
        std::printf(
            "  recommended: dp=%d pp=%d tp=%d (%s free KV tokens per rank; sizing of data-parallel attention "
            "only: gridlm generate splits heads)\n    why: %s\n",
            g.dp, g.pp, g.tp, grouped(g.kv_tokens_per_rank).c_str(), plan.reason.c_str());
        return;
    }
    std::printf(
        "  recommended: dp=%d pp=%d tp=%d (%s free KV tokens per rank; gridlm generate --dp %d --pp %d --tp %d "
        "--kv-cache-bytes %lld)\n    why: %s\n",
        g.dp, g.pp, g.tp, grouped(g.kv_tokens_per_rank).c_str(), g.dp, g.pp, g.tp, (long long)g.free_bytes,
        plan.reason.c_str());
}

int64_t positive_option(const po::variables_map& vm, const char* name) {
    const int64_t v = vm[name].as<int64_t>();
    if (v < 1) throw UsageError(str("--", name, " must be >= 1, got ", v));
    return v;
}

// --overhead: "5%" of the rank's memory, or bytes as --mem-per-rank takes them ("0" for none).
int64_t overhead_option(const std::string& text, int64_t mem_per_rank) {
    if (text == "0") return 0;
    if (!text.empty() && text.back() == '%') {
        const std::string number = text.substr(0, text.size() - 1);
        char* end = nullptr;
        const double pct = std::strtod(number.c_str(), &end);
        if (number.empty() || *end != '\0' || !(pct >= 0 && pct < 100))
            throw UsageError(str("--overhead '", text, "' is not a percentage in [0, 100) or a memory size"));
        return (int64_t)((double)mem_per_rank * pct / 100.0);
    }
    return parse_bytes(text, "overhead");
}

int run_plan(const std::vector<std::string>& args) {
    po::options_description opts(usage_head);
    // clang-format off
    opts.add_options()
        ("help,h", "show this help and exit")
        ("model,m", po::value<std::string>(),
         "the model: a .gguf, a gridlm .h5, a Hugging Face directory or a bare config.json (required)")
        ("nodes", po::value<int64_t>()->default_value(1), "nodes in the cluster")
        ("ranks-per-node", po::value<int64_t>(), "ranks (GPUs or CPU sockets) per node; tp stays inside a node (required)")
        ("mem-per-rank", po::value<std::string>(),
         "memory of one rank: bytes, or with a suffix K, M, G, T (powers of 1000, also KB..TB) or Ki, Mi, Gi, Ti "
         "(powers of 1024, also KiB..TiB), e.g. 80G, 141GB, 80GiB (required)")
        ("weights", po::value<std::string>(),
         "what to size the weight matrices in, one or a comma-separated list: f32, f16, bf16, fp8 (e4m3 plus an f32 "
         "scale per 128x128 block), q4_0, q4_1, q5_0, q5_1, q8_0, q4_k, q5_k, q6_k (GGUF blocks), or stored (as the "
         "checkpoint stores each tensor); norms and the MoE router stay f32 (default: stored for a checkpoint with "
         "weights, else bf16)")
        ("attention", po::value<std::string>()->default_value("heads"),
         "MLA models with tp > 1: heads (tp ranks split the heads and each keeps the whole latent cache, as gridlm "
         "generate runs) or dp (data-parallel attention: whole attention weights on each rank, the latent cache of "
         "its own sequences only; the layout of SGLang and TensorRT-LLM, which gridlm does not run)");
    add_kv_cache_dtype_option(opts);
    opts.add_options()
        ("min-kv-tokens", po::value<int64_t>()->default_value(0),
         "free KV tokens a rank must have for a grid to fit; 0 = the model's training context")
        ("step-tokens", po::value<int64_t>()->default_value(1040),
         "tokens of one model step, for the activation reserve (default: generate's --prefill-chunk 1024 + "
         "--max-seqs 16)")
        ("overhead", po::value<std::string>()->default_value(str(plan_default_overhead_pct, "%")),
         "memory per rank kept for the runtime, communication buffers and allocator slack, besides one step's "
         "activations: a percentage of --mem-per-rank or a memory size (e.g. 4GiB, 0)")
        ("json", po::bool_switch(), "JSON lines: a model record, one record per grid, then the recommendation, per "
         "weight format")
        ("verbose,v", po::bool_switch(), "also list the grids that do not fit and those the rules refuse, with why");
    // clang-format on
    add_log_options(opts);
    const po::variables_map vm = parse_options(args, opts);
    if (vm.count("help")) {
        std::cout << opts << "\n";
        return exit_ok;
    }
    apply_log_options(vm);
    require_options(vm, {"model", "ranks-per-node", "mem-per-rank"});
    PlanOptions opt;
    const int64_t nodes = positive_option(vm, "nodes"), rpn = positive_option(vm, "ranks-per-node");
    if (nodes * rpn > 1 << 20)
        throw UsageError(str("--nodes x --ranks-per-node = ", nodes * rpn, " is too many ranks"));
    opt.nodes = (int)nodes, opt.ranks_per_node = (int)rpn;
    opt.mem_per_rank = parse_bytes(vm["mem-per-rank"].as<std::string>(), "mem-per-rank");
    opt.overhead_bytes = overhead_option(vm["overhead"].as<std::string>(), opt.mem_per_rank);
    opt.kv_dtype = kv_cache_dtype_from(vm);
    const std::string attention = vm["attention"].as<std::string>();
    if (attention != "heads" && attention != "dp")
        throw UsageError(str("--attention '", attention, "' is not one of heads, dp"));
    opt.attention = attention == "heads" ? AttentionSplit::heads : AttentionSplit::data_parallel;
    opt.min_kv_tokens = vm["min-kv-tokens"].as<int64_t>();
    if (opt.min_kv_tokens < 0) throw UsageError("--min-kv-tokens must be >= 0");
    opt.step_tokens = positive_option(vm, "step-tokens");

    std::vector<WeightFormat> formats;
    if (vm.count("weights")) formats = weight_formats_from_list(vm["weights"].as<std::string>());
    bool need_weights = formats.empty();
    for (const WeightFormat& f : formats) need_weights |= f.kind == WeightFormat::Kind::stored;
    const PlanInput in = open_plan_input(vm["model"].as<std::string>(), need_weights);
    if (formats.empty()) formats = {weight_format_from_name(in.weights ? "stored" : "bf16")};
    const ParamCount params = count_params(in.config);

    std::vector<FormatPlan> plans;
    for (const WeightFormat& f : formats) plans.push_back(plan_grids(in.config, f, opt, in.weights.get()));
    const bool verbose = vm["verbose"].as<bool>();
    if (vm["json"].as<bool>()) {
        std::cout << model_json(in, params).dump() << "\n";
        for (const FormatPlan& plan : plans) {
            for (const GridSize& g : plan.grids)
                if (g.fits || verbose) std::cout << grid_json(plan, g).dump() << "\n";
            if (verbose)
                for (const Rejection& r : plan.rejected)
                    std::cout << json{{"record", "rejected"}, {"weights", plan.weights.name()},
                                      {"dp", r.dp},           {"pp", r.pp},
                                      {"tp", r.tp},           {"reason", r.reason}}
                                     .dump()
                              << "\n";
            std::cout << recommendation_json(plan).dump() << "\n";
        }
    } else {
        print_header(in, params, opt);
        std::fflush(stdout);
        for (const FormatPlan& plan : plans)
            print_plan(plan, verbose, in.config.kv_lora_rank > 0 && opt.attention == AttentionSplit::data_parallel);
        std::fflush(stdout);
    }
    std::cout.flush();
    if (!std::cout || std::ferror(stdout)) throw Error("cannot write the output");
    return exit_ok;
}

}  // namespace
}  // namespace gridlm

GRIDLM_COMMAND(plan, "plan", "size a cluster for a model: the dp x pp x tp grids that fit, and the one to use",
               gridlm::run_plan);
