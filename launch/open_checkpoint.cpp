// Opening the checkpoint of a generate job (see open_checkpoint.h).
#include "launch/open_checkpoint.h"

#include <filesystem>

#include "engine/core/error.h"
#include "io/gguf_model.h"
#include "io/h5_checkpoint.h"

namespace gridlm {

namespace fs = std::filesystem;

// A .gguf is read directly (dequantised on load); anything else must be a native checkpoint.
OpenedCheckpoint open_checkpoint(const std::string& path) {
    if (!fs::exists(path)) throw Error(str("model file '", path, "' does not exist"));
    OpenedCheckpoint l;
    l.name = fs::path(path).stem().string();
    if (fs::path(path).extension() == ".gguf") {
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

}  // namespace gridlm
