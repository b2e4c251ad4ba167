// Opening the checkpoint of a generate job (see open_checkpoint.h).
#include "launch/open_checkpoint.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <utility>

#include "engine/core/error.h"
#include "io/gguf_model.h"
#include "io/h5_checkpoint.h"
#include "io/hf_checkpoint.h"
#include "launch/commands.h"

namespace gridlm {

namespace fs = std::filesystem;

// A .gguf and a Hugging Face directory (config.json + safetensors) are read directly; anything
// else must be a native checkpoint.
OpenedCheckpoint open_checkpoint(const std::string& path) {
    if (!fs::exists(path)) throw Error(str("model file '", path, "' does not exist"));
    OpenedCheckpoint l;
    l.name = fs::path(path).stem().string();
    if (fs::is_directory(path)) {
        auto ck = std::make_unique<HfCheckpoint>(path);
        l.name = fs::path(path).lexically_normal().filename().string();
        if (l.name.empty()) l.name = fs::path(path).lexically_normal().parent_path().filename().string();
        l.config = ck->config();
        l.tokenizer = ck->tokenizer();
        l.weights = std::move(ck);
    } else if (fs::path(path).extension() == ".gguf") {
        l.gguf = std::make_shared<GgufFile>(path);
        l.config = gguf_model_config(*l.gguf);
        l.tokenizer = gguf_tokenizer_data(*l.gguf);
        l.weights = std::make_unique<GgufTensorSource>(l.gguf);
    } else {
        auto ck = std::make_unique<H5Checkpoint>(path);
        if (ck->vocab_only()) throw Error(str("checkpoint '", path, "' holds a vocabulary only, no weights"));
        l.config = ck->config();
        l.tokenizer = ck->tokenizer();
        l.weights = std::move(ck);
    }
    if (!l.config.name.empty()) l.name = l.config.name;
    return l;
}

WeightPolicy weight_policy_option(const std::string& name) {
    try {
        return WeightPolicy::from_name(name);
    } catch (const Error&) {
        throw UsageError(str("--dtype '", name, "' is not one of auto, f32, bf16, f16"));
    }
}

TpSplitTypes weight_split_types(const OpenedCheckpoint& ck, const WeightPolicy& policy) {
    return policy.keep && ck.weights ? tp_split_types(ck.config, *ck.weights) : TpSplitTypes{};
}

std::string weight_types_text(const std::vector<int64_t>& bytes_by_type) {
    std::vector<std::pair<int64_t, size_t>> order;
    for (size_t t = 0; t < bytes_by_type.size(); ++t)
        if (bytes_by_type[t] > 0) order.emplace_back(bytes_by_type[t], t);
    std::sort(order.rbegin(), order.rend());
    std::string text;
    for (const auto& [bytes, t] : order) {
        char mib[32];
        std::snprintf(mib, sizeof mib, "%.1f", bytes / 1048576.0);
        text += str(text.empty() ? "" : ", ", dtype_name((DType)t), " ", mib, " MiB");
    }
    return text.empty() ? "none" : text;
}

}  // namespace gridlm
