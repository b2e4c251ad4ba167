// Resumable output (io/job_journal.h, the journal of io/result_writer): recovery after kills at
// every kind of point, --retry-errors, manifests and what they say changed.
#include "io/job_journal.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "io/result_writer.h"
#include "test_support.h"

using namespace gridlm;

namespace {

std::string slurp(const std::string& path) { return test::read_file(path); }

void spit(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

Completion completion(uint64_t index, const std::string& text) {
    Completion c;
    c.ref.id = "r" + std::to_string(index);
    c.ref.index = index;
    Choice ch;
    ch.text = text;
    c.choices.push_back(ch);
    return c;
}

// Writes records 0..n-1 (record 2 as an error) through a journaling writer.
std::string write_job(const std::string& dir, int n) {
    const std::string out = dir + "/out.jsonl";
    ResultWriterOptions o;
    o.journal = true;
    ResultWriter w(out, o);
    for (int i = 0; i < n; ++i) {
        if (i == 2) {
            w.write(RecordError{{"r2", 3, 2, false}, "invalid_field", "bad"});
        } else {
            w.write(completion((uint64_t)i, "text " + std::to_string(i)));
        }
    }
    w.close();
    return out;
}

std::vector<std::string> lines_of(const std::string& path) {
    std::vector<std::string> v;
    std::ifstream in(path);
    for (std::string l; std::getline(in, l);) v.push_back(l);
    return v;
}

}  // namespace

TEST(JobJournal, CleanOutputRecoversUnchanged) {
    const std::string dir = test::temp_dir(), out = write_job(dir, 5);
    const std::string before = slurp(out);
    const RecoveredOutput r = recover_output(out, false);
    EXPECT_EQ(r.kept, 5);
    EXPECT_EQ(r.failed, 1);
    EXPECT_EQ(r.cut_bytes, 0);
    EXPECT_EQ(r.done, (std::vector<uint64_t>{0, 1, 2, 3, 4}));
    EXPECT_EQ(slurp(out), before);
}

TEST(JobJournal, KilledMidLineOrBeforeTheJournalEntry) {
    const std::string dir = test::temp_dir(), out = write_job(dir, 5);
    const std::string full = slurp(out);
    const auto lines = lines_of(out);
    const size_t four = full.size() - lines[4].size() - 1;  // end of line 3
    // A torn fifth line: the output is cut back to four lines.
    spit(out, full.substr(0, full.size() - 5));
    RecoveredOutput r = recover_output(out, false);
    EXPECT_EQ(r.kept, 4);
    EXPECT_EQ(r.cut_bytes, (int64_t)(lines[4].size() + 1 - 5));
    EXPECT_EQ(slurp(out), full.substr(0, four));
    // A line written, its journal entry not: the line goes, its record runs again.
    spit(out, full.substr(0, four) + lines[4] + "\n");
    r = recover_output(out, false);
    EXPECT_EQ(r.kept, 4);
    EXPECT_EQ(slurp(out), full.substr(0, four));
    // A torn last journal entry is dropped too.
    const std::string journal = slurp(journal_path_for(out));
    spit(journal_path_for(out), journal + "4 99");
    r = recover_output(out, false);
    EXPECT_EQ(r.kept, 4);
    EXPECT_EQ(slurp(journal_path_for(out)), journal);
}

TEST(JobJournal, ResumedWriterAppendsAndSkipsDoneRecordsInInputOrder) {
    const std::string dir = test::temp_dir(), out = write_job(dir, 3);
    const RecoveredOutput r = recover_output(out, false);
    ResultWriterOptions o;
    o.journal = true;
    o.append = true;
    o.order = OutputOrder::output_order_input;
    o.done.insert(r.done.begin(), r.done.end());
    ResultWriter w(out, o);
    w.write(completion(4, "four"));  // waits for 3
    EXPECT_EQ(w.written(), 0u);
    w.write(completion(3, "three"));
    EXPECT_EQ(w.written(), 2u);
    w.close();
    const auto lines = lines_of(out);
    ASSERT_EQ(lines.size(), 5u);
    EXPECT_NE(lines[3].find("three"), std::string::npos);
    EXPECT_NE(lines[4].find("four"), std::string::npos);
    EXPECT_EQ(recover_output(out, false).kept, 5);
}

TEST(JobJournal, RetryErrorsRemovesErrorLines) {
    const std::string dir = test::temp_dir(), out = write_job(dir, 5);
    const auto before = lines_of(out);
    const RecoveredOutput r = recover_output(out, true);
    EXPECT_EQ(r.retried, 1);
    EXPECT_EQ(r.done, (std::vector<uint64_t>{0, 1, 3, 4}));
    const auto after = lines_of(out);
    ASSERT_EQ(after.size(), 4u);
    EXPECT_EQ(after[2], before[3]);
    // The rewritten journal matches the rewritten output.
    const RecoveredOutput again = recover_output(out, false);
    EXPECT_EQ(again.kept, 4);
    EXPECT_EQ(again.cut_bytes, 0);
}

TEST(JobJournal, MalformedJournalIsAnErrorNamingTheLine) {
    const std::string dir = test::temp_dir(), out = write_job(dir, 3);
    spit(journal_path_for(out), "0 10 1\nnonsense here\n2 30 1\n");
    test::expect_has(test::error_of([&] { recover_output(out, false); }), {".journal line 2", "nonsense"});
}

TEST(JobJournal, ManifestRoundTripAndChanges) {
    const std::string dir = test::temp_dir();
    JobManifest a;
    a.input = "0123456789abcdef";
    a.checkpoint = "100:fedcba9876543210";
    a.options = {{"temperature", "0"}, {"seed", "1"}};
    a.write(dir + "/m.json");
    const JobManifest b = JobManifest::read(dir + "/m.json");
    EXPECT_TRUE(manifest_changes(a, b).empty());
    JobManifest c = b;
    c.input = "x";
    c.options["temperature"] = "0.7";
    c.options["top-k"] = "5";
    const auto changes = manifest_changes(a, c);
    ASSERT_EQ(changes.size(), 3u);
    EXPECT_EQ(changes[0], "the input file");
    EXPECT_EQ(changes[1], "option temperature (0 -> 0.7)");
    EXPECT_EQ(changes[2], "option top-k ((unset) -> 5)");
    spit(dir + "/bad.json", "{\"x\": 1}");
    test::expect_has(test::error_of([&] { JobManifest::read(dir + "/bad.json"); }), {"bad.json", "unreadable"});
}

TEST(JobJournal, HashesSeeContent) {
    const std::string dir = test::temp_dir();
    spit(dir + "/a", "hello");
    spit(dir + "/b", "hellp");
    EXPECT_NE(hash_file(dir + "/a"), hash_file(dir + "/b"));
    EXPECT_EQ(hash_file(dir + "/a"), hash_file(dir + "/a"));
    std::string big(20 << 20, 'x');
    spit(dir + "/c", big);
    const std::string fc = fingerprint_file(dir + "/c");
    big[big.size() - 10] = 'y';  // in the last 4 MiB
    spit(dir + "/c", big);
    EXPECT_NE(fingerprint_file(dir + "/c"), fc);
    EXPECT_EQ(fc.substr(0, fc.find(':')), std::to_string(20 << 20));
}
