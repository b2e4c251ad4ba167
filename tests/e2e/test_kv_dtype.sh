# `gridlm generate --kv-cache-dtype f32|bf16|f16` on SmolLM2-135M: the option's help and usage
# error; every type runs; f32 is the default; a pipelined grid with a bf16 cache writes the
# single-rank output; a bf16 / f16 cache fits twice the blocks of f32 in the same
# --kv-cache-bytes; --resume refuses another cache type.
# Usage: test_kv_dtype.sh GRIDLM MODELS_DIR
set -u
gridlm=$1
models=$2
. "$(dirname "$0")/lib.sh"
use_smollm2 "$models"
gen() { "$gridlm" generate --model "$model" --threads 2 "$@"; }

expect_rc 0 "--help" "$gridlm" generate --help
grep -q -- "--kv-cache-dtype" "$tmp/stdout" || fail "--help does not list --kv-cache-dtype"
grep -A1 -- "--kv-cache-dtype" "$tmp/stdout" | grep -q '(=f32)' || fail "--help: the default is not f32"
printf 'Hello\n' >"$tmp/one.txt"
expect_rc 2 "bad --kv-cache-dtype" gen -q --prompts "$tmp/one.txt" --output "$tmp/bad.jsonl" --kv-cache-dtype q8_0
expect_stderr "bad --kv-cache-dtype" "--kv-cache-dtype must be f32, bf16 or f16"

cat >"$tmp/p.jsonl" <<'JSONL'
{"id": "paris", "prompt": "The capital of France is", "max_tokens": 12}
{"id": "count", "prompt": "One, two, three, four,", "max_tokens": 24, "ignore_eos": true}
{"id": "chat", "messages": [{"role": "user", "content": "Name three colours."}], "max_tokens": 32}
{"id": "story", "prompt": "Once upon a time, in a small village by the sea,", "max_tokens": 48, "ignore_eos": true}
JSONL
args=(--prompts "$tmp/p.jsonl" --temperature 0 --order input)
for t in f32 bf16 f16; do
    expect_rc 0 "kv $t" gen "${args[@]}" -q --kv-cache-dtype "$t" --output "$tmp/$t.jsonl"
    jq -e -s 'length == 4 and all(.[]; (.text | length) > 0)' "$tmp/$t.jsonl" >/dev/null ||
        fail "kv $t: expected 4 results with text: $(head -c 300 "$tmp/$t.jsonl")"
    jq -e -s '.[0].text | test("Paris")' "$tmp/$t.jsonl" >/dev/null || fail "kv $t: greedy answer lacks Paris"
done
# (Greedy texts of different cache types are not compared: they part at the model's near-ties,
# which tests/unit/test_kv_dtype.cpp checks against the golden references.)
expect_rc 0 "default cache type" gen "${args[@]}" -q --output "$tmp/default.jsonl"
same_output "default cache type is f32" "$tmp/f32.jsonl" "$tmp/default.jsonl"

# Pipeline stages and replicas with a bf16 cache: the same arithmetic, the same bytes. (Tensor
# parallelism sums partial products in another order; a half-width cache can turn those last-bit
# differences into a rounding step of its own, so tensor-parallel runs are not compared here.)
expect_grid "bf16 cache, dp=2 pp=2" "$tmp/bf16.jsonl" 2 2 1 --model "$model" "${args[@]}" --kv-cache-dtype bf16

# SmolLM2: 30 layers x 2 x 192 values per token, a block of 64 tokens is 2949120 bytes in f32 and
# 1474560 in bf16 / f16; 9 MB holds 3 and 6 blocks.
for t in f32 bf16 f16; do
    expect_rc 0 "budget, kv $t" gen --prompts "$tmp/p.jsonl" --temperature 0 --order input --max-seqs 4 \
        --kv-cache-bytes 9000000 --kv-cache-dtype "$t" --progress-interval 1000 --output "$tmp/b_$t.jsonl"
    same_output "budget, kv $t" "$tmp/$t.jsonl" "$tmp/b_$t.jsonl"
done
expect_rc 0 "budget report, f32" gen --prompts "$tmp/one.txt" --kv-cache-bytes 9000000 --kv-cache-dtype f32 \
    --max-tokens 2 --output "$tmp/r32.jsonl"
expect_stderr "budget report, f32" "KV cache budget: 3 blocks of 64 tokens"
expect_rc 0 "budget report, bf16" gen --prompts "$tmp/one.txt" --kv-cache-bytes 9000000 --kv-cache-dtype bf16 \
    --max-tokens 2 --output "$tmp/r16.jsonl"
expect_stderr "budget report, bf16" "KV cache budget: 6 blocks of 64 tokens"

# The cache type changes outputs, so a resumed job must keep it.
expect_rc 1 "--resume with another cache type" gen "${args[@]}" -q --kv-cache-dtype f16 --output "$tmp/bf16.jsonl" \
    --resume
expect_stderr "--resume with another cache type" "option kv-cache-dtype (bf16 -> f16)"
finish test_kv_dtype
