# The KV cache under a budget: with --kv-cache-bytes far below what the batch would use,
# sequences are admitted by the blocks their prompts need and preempted (KV dropped, recomputed
# later) when decoding runs out; outputs stay identical to an unconstrained run, on one rank and
# on a grid. Prompts sharing a long system prompt reuse its cached blocks. A record that cannot
# fit the budget at all becomes an error line. With 2 or 3 micro-batches (and on pp=2) under a
# 3-block budget every record still gets exactly one line. A budget given with a unit, a bad one,
# and one that holds no block (start-up stops, leaving no file).
# Usage: test_kv_budget.sh GRIDLM MODELS_DIR
set -u
gridlm=$1
models=$2
. "$(dirname "$0")/lib.sh"
use_smollm2 "$models"

for i in $(seq 10); do
    echo "{\"id\": \"k$i\", \"prompt\": \"Question $i: what is $i times $i? Explain the steps.\", \"max_tokens\": $((40 + i * 6)), \"ignore_eos\": true}"
done >"$tmp/p.jsonl"
# f32 weights: tensor-parallel grids then give the single-rank tokens (see test_grid_qwen.sh).
args=(--model "$model" --prompts "$tmp/p.jsonl" --temperature 0 --order input --max-seqs 8 --dtype f32)
expect_rc 0 "unconstrained" "$gridlm" generate "${args[@]}" --output "$tmp/ref.jsonl" --threads 2 -q

# SmolLM2 f32: a block of 64 tokens is 2.95 MB on one rank, so 16 MB holds 5 blocks (320 tokens)
# for 8 sequences of up to ~120 tokens.
expect_rc 0 "16 MB budget" "$gridlm" generate "${args[@]}" --output "$tmp/b.jsonl" --threads 2 \
    --kv-cache-bytes 16000000 --progress-interval 1000
same_output "16 MB budget" "$tmp/ref.jsonl" "$tmp/b.jsonl"
n=$(grep -o 'KV cache (replica 0): [0-9]* preemptions' "$tmp/stderr" | grep -o '[0-9]* preemptions' | grep -o '[0-9]*')
[ "${n:-0}" -ge 10 ] || fail "16 MB budget: expected many preemptions, got '${n:-none}'"
expect_stderr "budget report" "KV cache budget: 5 blocks of 64 tokens"

expect_grid "16 MB budget, dp=2 pp=2" "$tmp/ref.jsonl" 2 2 1 "${args[@]}" --kv-cache-bytes 16000000

# A size with a suffix, as gridlm plan takes them: 16MB is 16000000 bytes (16MiB would be 16 * 2^20).
expect_rc 2 "--kv-cache-bytes 16X" "$gridlm" generate "${args[@]}" --output "$tmp/x.jsonl" --kv-cache-bytes 16X
expect_stderr "--kv-cache-bytes 16X" "--kv-cache-bytes '16X' is not a memory size"
# A budget that holds no block stops the job at start-up, after the output was prepared: the
# files it prepared (manifest, empty output) are removed again.
expect_rc 1 "--kv-cache-bytes 1000" "$gridlm" generate "${args[@]}" --output "$tmp/tiny.jsonl" --kv-cache-bytes 1000
expect_stderr "--kv-cache-bytes 1000" "--kv-cache-bytes 1000 holds no KV block"
ls "$tmp"/tiny.jsonl* >/dev/null 2>&1 && fail "a refused start-up left files: $(ls "$tmp" | grep tiny | tr '\n' ' ')"
# Activation checkpoints: each stage rebuilds its own KV from the inputs it kept.
expect_rc 0 "16 MB budget, checkpoints" "$gridlm" generate "${args[@]}" --output "$tmp/c.jsonl" --threads 2 \
    --kv-cache-bytes 16MB --preempt checkpoint --progress-interval 1000
same_output "16 MB budget, checkpoints" "$tmp/ref.jsonl" "$tmp/c.jsonl"
expect_stderr "checkpoint report" "KV rebuilt from checkpoints in"
expect_stderr "16MB is 16000000 bytes" "KV cache budget: 5 blocks of 64 tokens"
expect_grid "8 MB budget, pp=3, checkpoints" "$tmp/ref.jsonl" 1 3 1 "${args[@]}" --kv-cache-bytes 8000000 \
    --preempt checkpoint
expect_grid "8 MB budget, dp=2 pp=2 tp=3, checkpoints" "$tmp/ref.jsonl" 2 2 3 "${args[@]}" --kv-cache-bytes 8000000 \
    --preempt checkpoint
expect_grid "8 MB budget, tp=3" "$tmp/ref.jsonl" 1 1 3 "${args[@]}" --kv-cache-bytes 8000000

# A shared system prompt longer than a block is computed once.
python3 - >"$tmp/sys.jsonl" <<'PY'
import json
system = "You are a careful assistant for a space agency. " * 12
for i in range(8):
    print(json.dumps({"id": f"s{i}", "messages": [{"role": "system", "content": system},
                      {"role": "user", "content": f"Give one fact about planet number {i}."}], "max_tokens": 16}))
PY
sargs=(--model "$model" --prompts "$tmp/sys.jsonl" --temperature 0 --order input --max-seqs 4)
expect_rc 0 "system prompt, unconstrained" "$gridlm" generate "${sargs[@]}" --output "$tmp/sref.jsonl" --threads 2 -q
expect_rc 0 "system prompt, 40 MB" "$gridlm" generate "${sargs[@]}" --output "$tmp/s.jsonl" --threads 2 \
    --kv-cache-bytes 40000000 --progress-interval 1000
same_output "system prompt" "$tmp/sref.jsonl" "$tmp/s.jsonl"
reused=$(grep -o '[0-9]* prompt tokens reused' "$tmp/stderr" | grep -o '^[0-9]*')
[ "${reused:-0}" -ge 256 ] || fail "system prompt: expected cached prefix blocks to be reused, got '${reused:-none}'"

# A record longer than the whole budget: an error line, the others run.
printf '%s\n' '{"id": "big", "prompt": "Tell a long story.", "max_tokens": 400, "ignore_eos": true}' \
    '{"id": "small", "prompt": "Hi", "max_tokens": 4}' >"$tmp/big.jsonl"
expect_rc 3 "record larger than the budget" "$gridlm" generate --model "$model" --prompts "$tmp/big.jsonl" \
    --output "$tmp/big.out" --threads 2 -q --kv-cache-bytes 16000000 --order input
jq -e -s '.[0].error | test("more KV cache than --kv-cache-bytes")' "$tmp/big.out" >/dev/null ||
    fail "record larger than the budget: no error line: $(head -c 300 "$tmp/big.out")"
jq -e -s '.[1].text | length > 0' "$tmp/big.out" >/dev/null || fail "record larger than the budget: the small one did not run"

# Micro-batches competing for a tight budget, on the tiny Qwen2 (fast): a block of 64 tokens takes
# 32 KiB on one rank (16 KiB per stage on pp=2), so 100000 bytes (50000 per stage) hold 3 blocks.
# A lane whose sequences all step back for blocks that another lane frees in the same pass must
# run them later: every input record gets exactly one line, the same as with one micro-batch.
# (A lost record also fails the job: "records_missing", exit 1.)
expect_rc 0 "tiny: convert" "$gridlm" convert --from "$(dirname "$0")/../reference/golden/tiny-qwen2-hf" \
    --to "$tmp/tiny.h5"
for i in $(seq 0 23); do
    echo "{\"id\": \"t$i\", \"prompt\": \"Record $i says\", \"max_tokens\": $((50 + i * 37 % 90)), \"ignore_eos\": true}"
done >"$tmp/t.jsonl"
targs=(--model "$tmp/tiny.h5" --prompts "$tmp/t.jsonl" --temperature 0 --order input --progress-interval 1000)
one_line_each() {
    local want got
    want=$(jq -r .id "$tmp/t.jsonl" | sort)
    got=$(jq -r .id "$2" 2>/dev/null | sort)
    [ "$want" = "$got" ] || fail "$1: not one line per record; without a line: $(comm -23 <(echo "$want") \
        <(echo "$got") | tr '\n' ' ')more than one: $(echo "$got" | uniq -d | tr '\n' ' ')"
}
expect_rc 0 "tiny, 3 blocks, 1 micro-batch" "$gridlm" generate "${targs[@]}" --output "$tmp/t1.jsonl" --threads 2 \
    --kv-cache-bytes 100000
one_line_each "tiny, 3 blocks, 1 micro-batch" "$tmp/t1.jsonl"
for mb in 2 3; do
    expect_rc 0 "tiny, 3 blocks, $mb micro-batches" "$gridlm" generate "${targs[@]}" --output "$tmp/t$mb.jsonl" \
        --threads 2 --kv-cache-bytes 100000 --micro-batches "$mb"
    n=$(grep -o '[0-9]* preemptions' "$tmp/stderr" | grep -o '[0-9]*')
    [ "${n:-0}" -ge 20 ] || fail "tiny, $mb micro-batches: expected many preemptions, got '${n:-none}'"
    one_line_each "tiny, 3 blocks, $mb micro-batches" "$tmp/t$mb.jsonl"
    same_output "tiny, 3 blocks, $mb micro-batches" "$tmp/t1.jsonl" "$tmp/t$mb.jsonl"
done
expect_rc 0 "tiny, 3 blocks, pp=2, 2 micro-batches" grid_gen 2 1 2 1 "${targs[@]}" --output "$tmp/tp.jsonl" \
    --kv-cache-bytes 50000 --micro-batches 2
one_line_each "tiny, 3 blocks, pp=2, 2 micro-batches" "$tmp/tp.jsonl"
same_output "tiny, 3 blocks, pp=2, 2 micro-batches" "$tmp/t1.jsonl" "$tmp/tp.jsonl"
finish test_kv_budget
