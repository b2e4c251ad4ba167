// The generate job loop on one rank: reader -> tokenization -> static batches of sequences
// (chunked prefill, then batched decode until all finish) -> sampler -> detokenizer -> writer.
#pragma once

#include <cstdint>

namespace gridlm {

class PromptReader;
class ResultWriter;
class Progress;
class Model;
class KvCache;
class Tokenizer;
class ChatPrompter;

struct GenerateJobOptions {
    int batch_size = 16;            // sequences (n choices count n times) decoded together
    int64_t context = 0;            // tokens per sequence, prompt + output
    int64_t max_prompt_tokens = 0;  // longer prompts are record errors; 0 => context - 1
    int64_t prefill_chunk = 1024;   // prompt tokens per model step at most
    uint64_t seed = 0;              // job seed; records without "seed" derive theirs from it
};

struct GenerateJobResult {
    int64_t records_ok = 0;
    int64_t records_failed = 0;
};

// The model's parts the loop uses: the model itself and a KV cache with >= batch_size slots.
struct GenerateModel {
    Model& model;
    KvCache& kv;
    const Tokenizer& tokenizer;
    const ChatPrompter& chat;
};

// Runs every record of `reader`, writing one result per record to `writer`. Record problems
// become error lines; model or I/O failures throw.
GenerateJobResult run_generate_job(PromptReader& reader, ResultWriter& writer, const GenerateModel& m,
                                   Progress& progress, const GenerateJobOptions& options);

}  // namespace gridlm
