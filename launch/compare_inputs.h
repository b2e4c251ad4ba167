// The files `gridlm compare` hands to generate and score, and how their lines are matched back to
// records: the prompts rewritten as one JSONL record per line (so both runs, the score inputs and
// the report see the same records under the same ids), and the score inputs that put one model's
// completions after the prompts.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/prompt_reader.h"

namespace gridlm {

// Writes `out`: one line per record of `prompts` (txt, JSONL or OpenAI batch input, as generate
// reads it; `format` as --input-format), in order:
//   txt     {"id": "<line number>", "prompt": "<the line>"}
//   JSONL   the record, with "id" set to its line number when it has none
//   OpenAI  the body's fields with "id": custom_id
// and "logprobs": true in every record (the report compares token ids and log-probabilities).
// A line that is not a JSON object (or not valid UTF-8) is copied as it is, so generate reports it
// as an error line for both models. Blank lines are skipped as generate skips them. Returns the
// number of records. Throws Error when a file cannot be read or written.
int64_t write_compare_prompts(const std::string& prompts, InputFormat format, const std::string& out);

// The records of a file written by write_compare_prompts: record i is its line i + 1.
struct CompareRecordIds {
    std::vector<std::string> ids;                   // record i's id as generate reports it; "" if none
    std::unordered_map<std::string, size_t> index;  // id -> the first record with it
};
CompareRecordIds read_compare_record_ids(const std::string& prompts);

// Calls fn(record index, line) for each line of `output`, a generate or score output over those
// records: a line with "line" (an error line) is record line - 1, another one the record of its
// "id". Throws Error naming the file and line for a line that is not a JSON object or names no
// record of the prompts.
void for_each_output_line(const std::string& output, const CompareRecordIds& records,
                          const std::function<void(size_t index, const nlohmann::ordered_json& line)>& fn);

// Writes `out`, the --prompts input of `gridlm score` that scores the completions of `generated`
// (a generate output in gridlm shape over the records of `prompts`): for each line with
// "logprobs" token ids, the prompts record with "completion": [those ids], in record order. Error
// lines and empty completions are left out. Returns the number of records written.
int64_t write_cross_score_input(const std::string& prompts, const std::string& generated, const std::string& out);

}  // namespace gridlm
