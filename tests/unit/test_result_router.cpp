// The writer's end-of-job account (ResultRouter::missing): every record read from the input must
// have a line, written this run or (a resumed job) by an earlier one; the rest of the input is
// read first, so records the job never reached count as missing too.
#include <gtest/gtest.h>

#include <memory>
#include <sstream>
#include <string>

#include "io/prompt_reader.h"
#include "io/result_writer.h"
#include "launch/result_router.h"
#include "test_support.h"

using namespace gridlm;

namespace {

// Records r0 .. r{n-1}, one JSONL line each.
std::unique_ptr<PromptReader> reader_of(int n) {
    std::string text;
    for (int i = 0; i < n; ++i) text += "{\"id\": \"r" + std::to_string(i) + "\", \"prompt\": \"x\"}\n";
    return std::make_unique<PromptReader>(std::make_unique<std::istringstream>(text), "in.jsonl",
                                          PromptReaderOptions{});
}

struct Job {
    explicit Job(OutputOrder order = OutputOrder::output_order_finished) {
        ResultWriterOptions o;
        o.order = order;
        writer = std::make_unique<ResultWriter>(test::temp_dir() + "/router_out.jsonl", o);
        router = std::make_unique<ResultRouter>(JobGrid{}, writer.get(), nullptr);
    }
    void line(uint64_t index, bool ok = true) {
        router->emit(index, RecordStatus{ok, ok ? "ok" : "invalid_prompt", ""}, 1, 1, "{}");
    }
    std::unique_ptr<ResultWriter> writer;
    std::unique_ptr<ResultRouter> router;
};

TEST(ResultRouter, EveryRecordWithALineLeavesNothingMissing) {
    Job job;
    auto reader = reader_of(4);
    for (uint64_t i : {2, 0, 3, 1}) job.line(i, i != 3);  // error lines count as lines
    job.router->finish();
    const MissingRecords m = job.router->missing(*reader, IndexSet{}, 20);
    EXPECT_EQ(m.records, 4u);
    EXPECT_EQ(m.count, 0);
    EXPECT_TRUE(m.first.empty());
}

TEST(ResultRouter, ARecordReadWithoutALineIsMissing) {
    Job job(OutputOrder::output_order_input);
    auto reader = reader_of(5);
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(reader->next());
    IndexSet done;
    done.insert(4);  // written by an earlier run of a resumed job
    for (uint64_t i : {0, 1, 3}) job.line(i);
    job.router->finish();
    const MissingRecords m = job.router->missing(*reader, done, 20);
    EXPECT_EQ(m.records, 5u);
    EXPECT_EQ(m.count, 1);
    EXPECT_EQ(m.first, (std::vector<uint64_t>{2}));
}

TEST(ResultRouter, RecordsTheJobNeverReadAreMissingAndTheListIsCapped) {
    Job job;
    auto reader = reader_of(30);
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(reader->next());  // the job stopped reading after 3
    for (uint64_t i : {0, 1, 2}) job.line(i);
    job.router->finish();
    const MissingRecords m = job.router->missing(*reader, IndexSet{}, 4);
    EXPECT_EQ(m.records, 30u);
    EXPECT_EQ(m.count, 27);
    EXPECT_EQ(m.first, (std::vector<uint64_t>{3, 4, 5, 6}));
}

}  // namespace
