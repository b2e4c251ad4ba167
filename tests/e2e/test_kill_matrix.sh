# SIGKILL of each role of a dp=2 pp=2 tp=2 job (8 ranks, tiny Qwen2), once its first line is on
# disk: rank 0 (replica 0's first stage, also the watchdog's monitor), rank 2 (the writer: replica
# 0's last stage, tp 0), rank 6 (replica 1's last stage, which reports its lines to the writer) and
# rank 3 (tp rank 1 of the writer's stage). World ranks: tp innermost, then pp, then dp
# (parallel/topology.h). Every case must exit non-zero within 15 s, leave only whole JSON lines,
# and --resume must complete the output with the records of an uninterrupted run. A middle stage
# needs pp >= 3, which the tiny model's 2 layers do not allow: a pp=3 job of SmolLM2 (3 ranks)
# covers it, with its own uninterrupted run.
# Usage: test_kill_matrix.sh GRIDLM MODELS_DIR
set -u
gridlm=$1
models=$2
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/grid_signals.sh"
src=$(cd "$(dirname "$0")/../reference/golden" && pwd)/tiny-qwen2-hf
tiny=$tmp/tiny.h5
expect_rc 0 "convert" "$gridlm" convert --from "$src" --to "$tiny"

# kill_case NAME RANKS VICTIM REF N ARGS...: run the job on RANKS ranks, SIGKILL world rank VICTIM
# after the first line, check the end and the lines, resume, compare with REF (N records).
kill_case() {
    local name=$1 ranks=$2 victim=$3 ref=$4 n=$5 out=$tmp/$1.jsonl err=$tmp/$1.err
    shift 5
    job_start "$ranks" "$err" "$@" --output "$out"
    signal_case "$name" KILL "$victim" 15 "$out" "$err" || return
    [ "$job_rc" != 0 ] || fail "$name: exit 0 although rank $victim was killed"
    grep -q "process rank $victim .*signal 9" "$err" ||
        fail "$name: mpirun does not name rank $victim and signal 9: $(tail -c 400 "$err")"
    resumed_case "$name" "$ranks" "$ref" "$out" "$n" "$@"
}

# --- dp=2 pp=2 tp=2, tiny Qwen2 ----------------------------------------------------------------------
n=32
for i in $(seq $n); do
    echo "{\"id\": \"k$i\", \"prompt\": \"kill $i\", \"max_tokens\": 400, \"ignore_eos\": true}"
done >"$tmp/p.jsonl"
grid=(--model "$tiny" --prompts "$tmp/p.jsonl" --temperature 0 --max-model-len 420 --max-seqs 2 --dp 2 --pp 2 --tp 2)
expect_rc 0 "uninterrupted dp=2 pp=2 tp=2" timeout 120 mpirun -n 8 --oversubscribe "$gridlm" generate --threads 1 -q \
    "${grid[@]}" --output "$tmp/ref.jsonl"
[ "$(jq -s length "$tmp/ref.jsonl")" = $n ] || fail "uninterrupted: expected $n records"

kill_case first_stage 8 0 "$tmp/ref.jsonl" $n "${grid[@]}"
kill_case writer 8 2 "$tmp/ref.jsonl" $n "${grid[@]}"
kill_case last_stage 8 6 "$tmp/ref.jsonl" $n "${grid[@]}"
kill_case tp_rank 8 3 "$tmp/ref.jsonl" $n "${grid[@]}"

# --- the middle stage of pp=3 (SmolLM2, 30 layers) -------------------------------------------------------
use_smollm2 "$models"
m=8
for i in $(seq $m); do
    echo "{\"id\": \"s$i\", \"prompt\": \"Count to $i:\", \"max_tokens\": 24, \"ignore_eos\": true}"
done >"$tmp/s.jsonl"
pp3=(--model "$model" --prompts "$tmp/s.jsonl" --temperature 0 --max-model-len 64 --max-seqs 1 --pp 3)
expect_rc 0 "uninterrupted pp=3" timeout 120 mpirun -n 3 --oversubscribe "$gridlm" generate --threads 1 -q \
    "${pp3[@]}" --output "$tmp/ref3.jsonl"
kill_case middle_stage 3 1 "$tmp/ref3.jsonl" $m "${pp3[@]}"
finish test_kill_matrix
