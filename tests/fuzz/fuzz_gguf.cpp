// libFuzzer target for the GGUF reader: any bytes as a .gguf file (written to /dev/shm, since the
// reader maps a path), opened with and without tensor data; then every metadata value is read
// through the accessor its type allows and described, the model config and tokenizer are derived
// from the metadata, and the tensors are read through GgufTensorSource. A gridlm::Error is an
// expected outcome; a crash, a sanitizer report, a leak or a hang is a bug.
//   mkdir -p /tmp/fuzz_gguf && build-fuzz/bin/fuzz_gguf -dict=tests/fuzz/fuzz_gguf.dict /tmp/fuzz_gguf
//   tests/fuzz/corpus/fuzz_gguf
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "engine/core/error.h"
#include "engine/tokenizer/tokenizer.h"
#include "fuzz_support.h"
#include "io/gguf.h"
#include "io/gguf_model.h"

namespace {

using gridlm::GgufValueType;

// Reads one metadata value the way the model loader would; a type mismatch or an out-of-range
// value is an Error.
void read_value(const gridlm::GgufFile& f, const gridlm::GgufKv& kv) {
    const std::string_view key = kv.key;
    try {
        f.describe(key);
        switch (kv.type) {
            case GgufValueType::gguf_value_type_string:
                f.get_string_view(key);
                break;
            case GgufValueType::gguf_value_type_bool:
                f.get_bool(key);
                break;
            case GgufValueType::gguf_value_type_f32:
            case GgufValueType::gguf_value_type_f64:
                f.get_f32(key);
                f.get_f64(key);
                break;
            case GgufValueType::gguf_value_type_array:
                f.get_array_size(key);
                if (kv.elem_type == GgufValueType::gguf_value_type_string) {
                    f.get_string_array(key);
                } else if (kv.elem_type == GgufValueType::gguf_value_type_f32) {
                    f.get_f32_array(key);
                } else {
                    f.get_i32_array(key);
                    f.get_i64_array(key);
                }
                break;
            default:
                f.get_u32(key);
                f.get_i32(key);
                f.get_u64(key);
                f.get_i64(key);
                break;
        }
    } catch (const gridlm::Error&) {
    }
}

void read_model(const std::shared_ptr<const gridlm::GgufFile>& f, bool need_tensor_data) {
    try {
        gridlm::gguf_model_config(*f);
    } catch (const gridlm::Error&) {
    }
    try {
        const gridlm::Tokenizer tok(gridlm::gguf_tokenizer_data(*f));
        const std::vector<int32_t> ids = tok.encode("Hello wörld 123 <|im_start|>\n");
        tok.decode(ids);
    } catch (const gridlm::Error&) {
    }
    if (!need_tensor_data) return;
    try {
        gridlm::fuzz::read_every_tensor(gridlm::GgufTensorSource(f));
    } catch (const gridlm::Error&) {
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string path = gridlm::fuzz::write_scratch("model.gguf", data, size);
    for (const bool need_tensor_data : {true, false}) {
        try {
            auto f = std::make_shared<const gridlm::GgufFile>(path, need_tensor_data);
            for (const gridlm::GgufKv& kv : f->kvs()) read_value(*f, kv);
            for (const gridlm::GgufTensor& t : f->tensors()) {
                try {
                    f->tensor_data(t);
                } catch (const gridlm::Error&) {
                }
            }
            read_model(f, need_tensor_data);
        } catch (const gridlm::Error&) {
        }
    }
    return 0;
}
