// Malformed GGUF files: each corruption gives a gridlm::Error naming the file and the problem;
// truncation or byte corruption anywhere never crashes (run under ASan/UBSan too).
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>

#include "engine/core/error.h"
#include "io/gguf.h"
#include "io/gguf_model.h"
#include "test_support.h"

using namespace gridlm;

namespace {

// Writes GGUF bytes field by field and remembers where labelled fields start, so a test can
// corrupt exactly one of them.
struct Builder {
    std::string bytes;
    std::map<std::string, size_t> at;

    void mark(const std::string& label) { at[label] = bytes.size(); }
    void raw(std::string_view s) { bytes.append(s); }
    template <typename T>
    void put(T v) {
        bytes.append(reinterpret_cast<const char*>(&v), sizeof v);
    }
    void u32(uint32_t v) { put(v); }
    void u64(uint64_t v) { put(v); }
    void str(std::string_view s) {
        u64(s.size());
        raw(s);
    }
    template <typename T>
    void set(const std::string& label, T v) {
        std::memcpy(&bytes[at.at(label)], &v, sizeof v);
    }
};

// A small valid file: 4 keys (string, string array, i32 array, alignment) and two tensors
// (F32 [2 x 32] and Q8_0 [64]).
Builder valid_file() {
    Builder b;
    b.mark("magic");
    b.raw("GGUF");
    b.mark("version");
    b.u32(3);
    b.mark("n_tensors");
    b.u64(2);
    b.mark("n_kv");
    b.u64(4);
    b.mark("kv0");
    b.str("general.architecture");
    b.mark("kv0.type");
    b.u32(8);
    b.mark("kv0.value");
    b.str("llama");
    b.mark("kv1");
    b.str("test.strings");
    b.mark("kv1.type");
    b.u32(9);
    b.mark("kv1.elem");
    b.u32(8);
    b.mark("kv1.count");
    b.u64(2);
    b.mark("kv1.s0");
    b.str("ab");
    b.mark("kv1.s1");
    b.str("c");
    b.mark("kv2");
    b.str("test.ints");
    b.u32(9);
    b.u32(5);
    b.mark("kv2.count");
    b.u64(3);
    for (int32_t v : {1, -2, 3}) b.put(v);
    b.mark("kv3");
    b.str("general.alignment");
    b.u32(4);
    b.mark("alignment");
    b.u32(32);
    b.mark("t0");
    b.str("a.weight");
    b.mark("t0.n_dims");
    b.u32(2);
    b.mark("t0.dim0");
    b.u64(32);
    b.mark("t0.dim1");
    b.u64(2);
    b.mark("t0.type");
    b.u32(0);
    b.mark("t0.offset");
    b.u64(0);
    b.mark("t1");
    b.str("b.weight");
    b.u32(1);
    b.mark("t1.dim0");
    b.u64(64);
    b.mark("t1.type");
    b.u32(8);
    b.mark("t1.offset");
    b.u64(256);
    b.mark("table_end");
    while (b.bytes.size() % 32) b.bytes.push_back(0);
    b.mark("data");
    for (int i = 0; i < 64; ++i) b.put((float)i);
    for (int blk = 0; blk < 2; ++blk) {
        b.put((uint16_t)0x3c00);  // d = 1.0
        for (int i = 0; i < 32; ++i) b.put((int8_t)(i - 16));
    }
    return b;
}

// A file of only metadata: each function writes one whole key/value.
Builder kv_file(const std::vector<std::function<void(Builder&)>>& kvs) {
    Builder b;
    b.raw("GGUF");
    b.u32(3);
    b.u64(0);
    b.u64(kvs.size());
    for (const auto& kv : kvs) kv(b);
    return b;
}

std::function<void(Builder&)> kv_string(std::string key, std::string value) {
    return [=](Builder& b) {
        b.str(key);
        b.u32(8);
        b.str(value);
    };
}

std::function<void(Builder&)> kv_u32(std::string key, uint32_t value) {
    return [=](Builder& b) {
        b.str(key);
        b.u32(4);
        b.u32(value);
    };
}

std::function<void(Builder&)> kv_strings(std::string key, std::vector<std::string> values) {
    return [=](Builder& b) {
        b.str(key);
        b.u32(9);
        b.u32(8);
        b.u64(values.size());
        for (const auto& v : values) b.str(v);
    };
}

class GgufBadFiles : public ::testing::Test {
protected:
    std::string dir = test::temp_dir();

    std::string write(const std::string& bytes, const std::string& name = "bad.gguf") {
        const std::string path = dir + "/" + name;
        std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(), (std::streamsize)bytes.size());
        return path;
    }

    // Opening must throw gridlm::Error whose message names the file and contains every phrase.
    void expect_error(const std::string& bytes, std::vector<std::string> phrases, bool need_data = true) {
        const std::string path = write(bytes);
        try {
            GgufFile f(path, need_data);
            ADD_FAILURE() << "no error; expected: " << phrases[0];
        } catch (const Error& e) {
            const std::string msg = e.what();
            EXPECT_NE(msg.find(path), std::string::npos) << msg;
            for (const auto& p : phrases)
                EXPECT_NE(msg.find(p), std::string::npos) << "missing '" << p << "' in: " << msg;
        }
    }

    template <typename F>
    void expect_call_error(F&& fn, const std::string& path, const std::string& phrase) {
        try {
            fn();
            ADD_FAILURE() << "no error; expected: " << phrase;
        } catch (const Error& e) {
            const std::string msg = e.what();
            EXPECT_NE(msg.find(path), std::string::npos) << msg;
            EXPECT_NE(msg.find(phrase), std::string::npos) << "missing '" << phrase << "' in: " << msg;
        }
    }
};

}  // namespace

TEST_F(GgufBadFiles, BuilderFileIsValid) {
    GgufFile f(write(valid_file().bytes));
    ASSERT_EQ(f.tensors().size(), 2u);
    EXPECT_EQ(f.get_string_array("test.strings"), (std::vector<std::string>{"ab", "c"}));
    EXPECT_EQ(f.get_i32_array("test.ints"), (std::vector<int32_t>{1, -2, 3}));
    std::vector<float> b(64);
    dequantize(f.tensor("b.weight").type, f.tensor_data(f.tensor("b.weight")), 64, b.data());
    EXPECT_EQ(b[0], -16.0f);
    EXPECT_EQ(b[63], 15.0f);
}

TEST_F(GgufBadFiles, MissingAndEmptyFile) {
    expect_error("", {"is empty"});
    expect_call_error([&] { GgufFile f(dir + "/nope.gguf"); }, dir + "/nope.gguf", "cannot open");
    expect_call_error([&] { GgufFile f(dir); }, dir, "not a regular file");
}

TEST_F(GgufBadFiles, TruncatedHeaderEveryByte) {
    const std::string full = valid_file().bytes;
    for (size_t n = 1; n < 24; ++n) {
        SCOPED_TRACE(n);
        expect_error(full.substr(0, n), {"header", "truncated"});
    }
}

TEST_F(GgufBadFiles, WrongMagicAndVersion) {
    Builder b = valid_file();
    b.bytes[0] = 'X';
    expect_error(b.bytes, {"not a GGUF file", "bad magic"});
    for (uint32_t v : {1u, 4u, 0x03000000u}) {
        b = valid_file();
        b.set("version", v);
        expect_error(b.bytes, {"unsupported GGUF version " + std::to_string(v)});
    }
}

TEST_F(GgufBadFiles, CountsBeyondTheFile) {
    Builder b = valid_file();
    b.set("n_kv", uint64_t(1) << 62);
    expect_error(b.bytes, {"metadata count 4611686018427387904 exceeds"});
    b = valid_file();
    b.set("n_tensors", ~uint64_t(0));
    expect_error(b.bytes, {"tensor count", "exceeds"});
    b = valid_file();
    b.set("kv1.count", uint64_t(1) << 61);
    expect_error(b.bytes, {"metadata key #1 'test.strings'", "array of 2305843009213693952 string values exceeds"});
    b = valid_file();
    b.set("kv2.count", uint64_t(1000));  // plausible count, but 4000 bytes are not there
    expect_error(b.bytes, {"metadata key #2 'test.ints'", "array of 1000 i32 values exceeds"});
}

TEST_F(GgufBadFiles, StringLengthsBeyondTheFile) {
    Builder b = valid_file();
    b.set("kv0", ~uint64_t(0) - 3);  // key length
    expect_error(b.bytes, {"metadata key #0", "key length", "exceeds"});
    b = valid_file();
    b.set("kv0.value", uint64_t(1) << 40);
    expect_error(b.bytes, {"metadata key #0 'general.architecture'", "string length 1099511627776 exceeds"});
    b = valid_file();
    b.set("kv1.s1", uint64_t(100000));
    expect_error(b.bytes, {"metadata key #1 'test.strings'", "string array element #1: length 100000 exceeds"});
    b = valid_file();
    b.set("t1", uint64_t(5000));  // tensor name length
    expect_error(b.bytes, {"tensor info #1", "name length 5000 exceeds"});
}

TEST_F(GgufBadFiles, UnknownTypes) {
    Builder b = valid_file();
    b.set("kv0.type", uint32_t(13));
    expect_error(b.bytes, {"metadata key #0 'general.architecture'", "unknown value type 13"});
    b = valid_file();
    b.set("kv1.elem", uint32_t(99));
    expect_error(b.bytes, {"metadata key #1 'test.strings'", "unknown array element type 99"});
    b = valid_file();
    b.set("t1.type", uint32_t(77));
    expect_error(b.bytes, {"tensor info #1 'b.weight'", "unknown ggml type 77"});
    b = valid_file();
    b.set("t1.type", uint32_t(4));  // a retired ggml type number
    expect_error(b.bytes, {"unknown ggml type 4"});
}

TEST_F(GgufBadFiles, BadDims) {
    Builder b = valid_file();
    b.set("t0.n_dims", uint32_t(5));
    expect_error(b.bytes, {"tensor info #0 'a.weight'", "n_dims 5 exceeds the maximum of 4"});
    b = valid_file();
    b.set("t0.dim0", uint64_t(1) << 40);
    b.set("t0.dim1", uint64_t(1) << 40);
    expect_error(b.bytes, {"tensor info #0 'a.weight'", "dimension #1", "overflow"});
    b = valid_file();
    b.set("t0.dim0", ~uint64_t(0));
    expect_error(b.bytes, {"dimension #0", "overflow"});
    b = valid_file();
    b.set("t1.dim0", uint64_t(48));
    expect_error(b.bytes, {"tensor info #1 'b.weight'", "row length 48 is not a multiple of the Q8_0 block size 32"});
    b = valid_file();  // 2^62 F32 elements: the element count fits in int64, 2^64 bytes do not
    b.set("t0.dim0", uint64_t(1) << 32);
    b.set("t0.dim1", uint64_t(1) << 30);
    expect_error(b.bytes, {"tensor info #0 'a.weight'", "byte size overflows"});
}

TEST_F(GgufBadFiles, TensorOffsets) {
    Builder b = valid_file();
    b.set("t1.offset", uint64_t(1) << 20);
    expect_error(b.bytes, {"tensor #1 'b.weight'", "past the end of the file"});
    {
        GgufFile f(write(b.bytes), /*need_tensor_data=*/false);  // tolerated for metadata reads
        EXPECT_NE(f.tensor("a.weight").data, nullptr);
        expect_call_error([&] { f.tensor_data(f.tensor("b.weight")); }, f.path(), "past the end of the file");
    }
    b = valid_file();
    b.set("t1.offset", ~uint64_t(0) - 31);  // aligned, and start + size would wrap around
    expect_error(b.bytes, {"tensor #1 'b.weight'", "past the end of the file"});
    b = valid_file();
    b.set("t1.offset", uint64_t(260));
    expect_error(b.bytes, {"tensor #1 'b.weight'", "data offset 260 is not a multiple of the alignment 32"});
}

TEST_F(GgufBadFiles, Alignment) {
    for (uint32_t a : {0u, 3u, 48u}) {
        Builder b = valid_file();
        b.set("alignment", a);
        expect_error(b.bytes, {"general.alignment", "alignment " + std::to_string(a) + " is not a power of two"});
    }
}

TEST_F(GgufBadFiles, DuplicatesAndNesting) {
    Builder b = kv_file({kv_u32("a", 1), kv_u32("a", 2)});
    expect_error(b.bytes, {"metadata key #1 'a'", "duplicate metadata key"});
    // Arrays nested 20 deep.
    b = kv_file({[](Builder& x) {
        x.str("deep");
        x.u32(9);
        for (int i = 0; i < 20; ++i) {
            x.u32(9);
            x.u64(1);
        }
        x.u32(4);
        x.u64(1);
        x.u32(7);
    }});
    expect_error(b.bytes, {"metadata key #0 'deep'", "nested deeper than"});
    b = valid_file();
    std::memcpy(&b.bytes[b.at["t1"] + 8], "a", 1);  // "b.weight" -> "a.weight"
    expect_error(b.bytes, {"tensor info #1 'a.weight'", "duplicate tensor name"});
}

TEST_F(GgufBadFiles, TruncatedTensorData) {
    const Builder b = valid_file();
    const std::string cut = b.bytes.substr(0, b.bytes.size() - 10);
    expect_error(cut, {"tensor #1 'b.weight'", "past the end of the file"});
    GgufFile f(write(cut), /*need_tensor_data=*/false);
    EXPECT_NE(f.tensor("a.weight").data, nullptr);
    EXPECT_EQ(f.tensor("b.weight").data, nullptr);
}

// Every possible truncation of the small file fails cleanly when tensor data is needed; without
// it, exactly the truncations inside header, metadata or tensor table fail.
TEST_F(GgufBadFiles, TruncationSweepSmallFile) {
    const Builder b = valid_file();
    for (size_t n = 0; n < b.bytes.size(); ++n) {
        const std::string path = write(b.bytes.substr(0, n));
        EXPECT_THROW(GgufFile(path, true), Error) << n;
        if (n < b.at.at("table_end")) {
            EXPECT_THROW(GgufFile(path, false), Error) << n;
        } else {
            EXPECT_NO_THROW(GgufFile(path, false)) << n;
        }
    }
}

// Each byte of header, metadata and tensor table overwritten with a few values: the parser
// either accepts the file or throws gridlm::Error; it never crashes or reads out of bounds.
TEST_F(GgufBadFiles, ByteCorruptionNeverCrashes) {
    const Builder b = valid_file();
    int n_errors = 0, n_ok = 0;
    for (size_t i = 0; i < b.at.at("data"); ++i) {
        for (uint8_t v : {uint8_t(0x00), uint8_t(0xff), uint8_t(0x80), uint8_t(b.bytes[i] + 1)}) {
            std::string bad = b.bytes;
            bad[i] = (char)v;
            const std::string path = write(bad);
            try {
                GgufFile f(path, false);
                for (const GgufKv& kv : f.kvs()) f.describe(kv.key);
                ++n_ok;
            } catch (const Error& e) {
                EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
                ++n_errors;
            }
        }
    }
    EXPECT_GT(n_errors, 100);
    EXPECT_GT(n_ok, 100);
}

// A real file cut at every byte of the header and at ~600 points across metadata, tensor
// table and the start of the data.
TEST_F(GgufBadFiles, TruncationSweepRealFile) {
    const std::string src = test::model_path(test::smollm2_gguf);
    uint64_t data_offset;
    {
        GgufFile f(src);
        data_offset = f.data_offset();
    }
    const uint64_t prefix = data_offset + 4096;
    std::string bytes(prefix, '\0');
    std::ifstream(src, std::ios::binary).read(bytes.data(), (std::streamsize)prefix);
    const std::string path = write(bytes, "cut.gguf");
    std::vector<uint64_t> cuts;
    for (int64_t n = (int64_t)prefix; n > 64; n -= (int64_t)prefix / 600) cuts.push_back((uint64_t)n);
    for (uint64_t n = 64; n > 0; --n) cuts.push_back(n);
    int n_meta_ok = 0;
    for (uint64_t n : cuts) {  // descending, so the one file is cut shorter each time
        std::filesystem::resize_file(path, n);
        try {
            GgufFile f(path, true);
            ADD_FAILURE() << "file cut at " << n << " opened with need_tensor_data";
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
        }
        try {
            GgufFile f(path, false);
            EXPECT_GE(n, data_offset - 32) << "cut at " << n << " inside the metadata parsed";
            EXPECT_EQ(gguf_tokenizer_data(f).tokens.size(), 49152u);
            ++n_meta_ok;
        } catch (const Error& e) {
            EXPECT_LT(n, data_offset) << e.what();
            EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
        }
    }
    EXPECT_GT(n_meta_ok, 0);
}

TEST_F(GgufBadFiles, ModelAndTokenizerErrors) {
    auto check = [&](const Builder& b, const std::function<void(const GgufFile&)>& fn, const std::string& phrase) {
        GgufFile f(write(b.bytes));
        expect_call_error([&] { fn(f); }, f.path(), phrase);
    };
    auto config = [](const GgufFile& f) { gguf_model_config(f); };
    auto tokenizer = [](const GgufFile& f) { gguf_tokenizer_data(f); };
    check(kv_file({kv_string("general.architecture", "gpt2")}), config, "architecture 'gpt2' is not supported");
    check(kv_file({}), config, "metadata key 'general.architecture' is missing");
    check(kv_file({kv_string("general.architecture", "llama")}), config,
          "metadata key 'llama.embedding_length' is missing");
    check(kv_file({kv_string("general.architecture", "llama"), kv_u32("llama.embedding_length", 0)}), config,
          "'llama.embedding_length' must be positive");
    check(kv_file({kv_string("tokenizer.ggml.model", "llama")}), tokenizer, "tokenizer model 'llama' is not supported");
    check(kv_file({kv_string("tokenizer.ggml.model", "gpt2")}), tokenizer, "'tokenizer.ggml.tokens' is missing");
    check(kv_file({kv_string("tokenizer.ggml.model", "gpt2"), kv_strings("tokenizer.ggml.tokens", {"a", "b"}),
                   kv_strings("tokenizer.ggml.merges", {}), kv_u32("tokenizer.ggml.bos_token_id", 2)}),
          tokenizer, "'tokenizer.ggml.bos_token_id' = 2 is outside the vocabulary of 2 tokens");
    check(kv_file({kv_string("tokenizer.ggml.model", "gpt2"), kv_strings("tokenizer.ggml.tokens", {"a", "b"}),
                   kv_strings("tokenizer.ggml.merges", {}),
                   [](Builder& b) {
                       b.str("tokenizer.ggml.token_type");
                       b.u32(9);
                       b.u32(5);
                       b.u64(1);
                       b.u32(1);
                   }}),
          tokenizer, "token_type has 1 entries for 2 tokens");
}
