// libFuzzer target for the safetensors reader: any bytes as a .safetensors file (written to
// /dev/shm, since the reader maps a path), opened both as a SafetensorsFile and as a
// SafetensorsSource, with every tensor read back widened to f32 and as raw rows. A gridlm::Error
// is an expected outcome; a crash, a sanitizer report, a leak or a hang is a bug.
//   mkdir -p /tmp/fuzz_safetensors && build-fuzz/bin/fuzz_safetensors -dict=tests/fuzz/fuzz_safetensors.dict
//   /tmp/fuzz_safetensors tests/fuzz/corpus/fuzz_safetensors
#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/core/error.h"
#include "fuzz_support.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string path = gridlm::fuzz::write_scratch("model.safetensors", data, size);
    try {
        const gridlm::SafetensorsFile f(path);
        for (const gridlm::SafetensorsTensor& t : f.tensors()) {
            if (f.find(t.info.name) != &t) __builtin_trap();  // the index must find each tensor
            f.read_f32(t);
        }
    } catch (const gridlm::Error&) {
    }
    try {
        gridlm::fuzz::read_every_tensor(gridlm::SafetensorsSource(path));
    } catch (const gridlm::Error&) {
    }
    return 0;
}
