// The generate job loop on one rank of the grid: reader -> tokenization -> micro-batches of
// sequences streamed through the pipeline stages -> sampler (last stage) -> detokenizer -> writer.
//
// Every rank of a replica (its pipeline stages and their tensor-parallel ranks) runs the same
// scheduler on the same input, so all of them agree on every step's batch without sending it:
// the schedule is a deterministic function of the records read and of the tokens sampled, and
// the last stage sends each step's sampled tokens (with finished flags) back to the earlier
// stages. Only activations and those tokens travel along a pipeline. See docs/architecture.md.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "engine/core/compact_sets.h"
#include "engine/sched/scheduler.h"

namespace gridlm {

class PromptReader;
class ResultWriter;
struct ResultWriterOptions;
class Progress;
class Model;
class KvCache;
class Tokenizer;
class ChatPrompter;
class Communicator;
class ContentFilter;
class Tracer;
struct GenerateJobResult;

// What the loop shows its observer after each step (launch/job_monitor.h turns it into metrics).
struct JobLoopState {
    const GenerateJobResult* result = nullptr;  // this rank's figures so far
    int64_t running = 0;                        // sequences holding a slot (preempted ones included)
    int64_t preempted = 0;                      // of which preempted, waiting to come back
    int64_t records_in_flight = 0;              // admitted, not finished
    // Writer rank only (nullptr elsewhere): records written so far by kind ("ok", "filtered", error
    // codes) and filter hits by "ACTION/WHERE", all replicas.
    const std::map<std::string, int64_t>* kinds = nullptr;
    const std::map<std::string, int64_t>* filter_hits = nullptr;
};

// Called by the loop on every rank: after each lane step, and once when the loop has ended.
class JobObserver {
public:
    virtual ~JobObserver() = default;
    virtual void on_step(const JobLoopState& state) = 0;
    virtual void on_end(const JobLoopState& state) = 0;
};

struct GenerateJobOptions {
    // What the replica's scheduler runs: --max-seqs (max_seqs), --micro-batches (lanes), the
    // context, chunking and step caps, static or continuous batches, the KV budget in blocks and
    // the preemption mode (engine/sched/scheduler.h).
    SchedulerOptions sched;
    uint64_t seed = 0;  // job seed; records without "seed" derive theirs from it
    // Stage-boundary activations travel as 1/tp slices, each tp rank sending its own to the same
    // tp rank of the next stage, which re-gathers them over TP: tp times fewer bytes between
    // stages (usually between nodes) for one allgather inside the receiving node.
    bool pp_slices = false;
    // Records already in the output (a resumed job): skipped.
    IndexSet done;
    // Set (by a SIGTERM handler) to stop: the writer rank leaves the loop at the next step, with
    // every line written so far complete; GenerateJobResult::interrupted says so.
    const std::atomic<bool>* stop = nullptr;
    // --filter: rules applied to every prompt (all ranks, before tokenizing) and to every
    // completion as it grows (last stage); nullptr: none.
    const ContentFilter* filter = nullptr;
    // --max-error-rate / --min-records: the writer stops the job (like `stop`, with
    // GenerateJobResult::breaker set) once min_records records are written and more than this share
    // of them are error lines; < 0: never.
    double max_error_rate = -1;
    int64_t min_records = 100;
    Tracer* tracer = nullptr;         // spans of this rank's steps, nullptr: none
    JobObserver* observer = nullptr;  // metrics, nullptr: none
};

// This rank's place in the grid. The defaults are a single rank.
struct JobGrid {
    Communicator* world = nullptr;  // all ranks (statistics at the end)
    Communicator* tp = nullptr;     // this rank's tensor-parallel group
    Communicator* pp = nullptr;     // this rank's pipeline (same replica and tp rank), by stage
    Communicator* dp = nullptr;     // ranks with the same stage and tp rank, by replica
    // Activation transport: the same groups as pp / tp, for the stage-boundary activations (and
    // their --pp-slices gather), which live in the model's backend memory. On CUDA, NCCL
    // communicators on the backend's stream (Communicator::device_memory()); else the MPI pp / tp
    // themselves (nullptr means that too). Tokens, results and control stay on pp / dp / world.
    Communicator* pp_act = nullptr;
    Communicator* tp_act = nullptr;
    int replica = 0, replicas = 1;
    int stage = 0, stages = 1;
    int tp_rank = 0;
    bool last_stage() const { return stage == stages - 1; }
    // The rank that writes the output file: replica 0's last stage, tp rank 0. Each replica's
    // last stage, tp rank 0, reports its records to it.
    bool reporter() const { return last_stage() && tp_rank == 0; }
    bool writer() const { return reporter() && replica == 0; }
};

// The writer's account of the input at the end of a job: every record read must have its line (ok
// or error). A missing one is a bug, never the record's own fault.
struct MissingRecords {
    uint64_t records = 0;         // records in the input (all read), those done by an earlier run included
    int64_t count = 0;            // of which no line, neither this run nor (done) an earlier one
    std::vector<uint64_t> first;  // the first missing ones' input indices (RecordRef::index), ascending
};

struct GenerateJobResult {
    int64_t records_ok = 0;  // the job's totals (all replicas) on the writer; this replica's elsewhere
    int64_t records_failed = 0;
    double busy_s = 0.0;                         // this rank's time in model steps and sampling
    double wall_s = 0.0;                         // this rank's time in the job loop
    int64_t steps = 0;                           // lane steps this rank ran
    int64_t tokens_processed = 0;                // tokens run through this rank's stage
    int64_t act_bytes_sent = 0;                  // activations sent to the next stage
    int64_t token_bytes_sent = 0;                // last stage: sampled tokens sent back to the earlier stages
    int64_t tokens_generated = 0;                // by this replica
    bool interrupted = false;                    // stopped by GenerateJobOptions::stop (or the breaker) before the end
    bool breaker = false;                        // writer: stopped by --max-error-rate
    int64_t records_written = 0;                 // writer: lines written this run, all replicas
    int64_t records_written_failed = 0;          // of which error lines
    MissingRecords missing;                      // writer, a job that ran to its end: records without a line
    std::map<std::string, int64_t> kinds;        // writer: records by kind (see JobLoopState)
    std::map<std::string, int64_t> filter_hits;  // writer: filter hits by "ACTION/WHERE"
    int64_t preemptions = 0;                     // sequences whose KV was dropped under the KV budget
    int64_t recomputed_tokens = 0;               // tokens they had to put through the model again
    double restore_s = 0.0;                      // checkpoint mode: time this rank spent rebuilding KV
    int64_t checkpoint_bytes_peak = 0;           // checkpoint mode: most stage-input bytes held at once
};

// The model's parts the loop uses: the model (this rank's shard) and a KV cache with
// >= batch_size slots.
struct GenerateModel {
    Model& model;
    KvCache& kv;
    const Tokenizer& tokenizer;
    const ChatPrompter& chat;
};

// Runs this replica's share of `reader`'s records (record index % replicas == replica). The
// writer rank writes every record's result to `writer` (nullptr on other ranks) and shows
// `progress` (nullptr elsewhere); reporters format lines with `format`. Record problems become
// error lines; model or I/O failures throw.
GenerateJobResult run_generate_job(PromptReader& reader, ResultWriter* writer, const ResultWriterOptions& format,
                                   const GenerateModel& m, Progress* progress, const GenerateJobOptions& options,
                                   const JobGrid& grid = {});

}  // namespace gridlm
