// parse_byte_count (launch/cli_options.h): the byte counts of --kv-cache-bytes.
#include <gtest/gtest.h>

#include <string>

#include "engine/core/error.h"
#include "launch/cli_options.h"
#include "launch/commands.h"

namespace gridlm {
namespace {

TEST(ParseByteCount, PlainBytesAndUnits) {
    EXPECT_EQ(parse_byte_count("kv-cache-bytes", "0"), 0);
    EXPECT_EQ(parse_byte_count("kv-cache-bytes", "17179869184"), 17179869184LL);
    EXPECT_EQ(parse_byte_count("kv-cache-bytes", "16G"), 17179869184LL);
    EXPECT_EQ(parse_byte_count("kv-cache-bytes", "16g"), 17179869184LL);
    EXPECT_EQ(parse_byte_count("kv-cache-bytes", "16GiB"), 17179869184LL);
    EXPECT_EQ(parse_byte_count("kv-cache-bytes", "16GB"), 16000000000LL);
    EXPECT_EQ(parse_byte_count("kv-cache-bytes", "512MiB"), 512LL << 20);
    EXPECT_EQ(parse_byte_count("kv-cache-bytes", "512m"), 512LL << 20);
    EXPECT_EQ(parse_byte_count("kv-cache-bytes", "64K"), 65536);
    EXPECT_EQ(parse_byte_count("kv-cache-bytes", "64kB"), 64000);
    EXPECT_EQ(parse_byte_count("kv-cache-bytes", "1.5G"), 3LL << 29);
    EXPECT_EQ(parse_byte_count("kv-cache-bytes", "2T"), 2LL << 40);
}

TEST(ParseByteCount, RefusesWhatIsNotACount) {
    for (const char* v : {"", "-1", "abc", "16X", "16GX", "16 G", "1.5", "1..5G", "1.G", ".", "G", "16iB", "1e3",
                          "99999999999999999999"}) {
        try {
            parse_byte_count("kv-cache-bytes", v);
            ADD_FAILURE() << "accepted '" << v << "'";
        } catch (const UsageError& e) {
            const std::string msg = e.what();
            EXPECT_NE(msg.find(std::string("--kv-cache-bytes '") + v + "'"), std::string::npos) << msg;
            EXPECT_NE(msg.find("e.g. 16G"), std::string::npos) << msg;
        }
    }
}

}  // namespace
}  // namespace gridlm
