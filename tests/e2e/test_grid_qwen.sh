# The grid on Qwen2.5-Coder-0.5B (14 heads, 2 KV heads, 24 layers, q/k/v biases; tp in {1, 2}
# and 7 with the KV heads replicated): greedy and seeded sampled outputs of every grid equal the
# single-rank run with f32 weights (--dtype f32: each rank dequantises, then keeps its shard).
# With the file's own blocks kept (--dtype auto), pipeline and data-parallel grids do the same
# arithmetic as one rank and must match it too; a tensor-parallel split sums partial products in
# another order, which 8-bit activation rounding can turn into a different token at a near-tie.
# Usage: test_grid_qwen.sh GRIDLM MODELS_DIR
set -u
gridlm=$1
models=$2
. "$(dirname "$0")/lib.sh"
model=$models/Qwen2.5-Coder-0.5B-Instruct.Q4_K_M.gguf
require_files "$model"

cat >"$tmp/greedy.jsonl" <<'JSONL'
{"id": "prime", "messages": [{"role": "user", "content": "Write a Python function is_prime(n)."}], "max_tokens": 20}
{"id": "fib", "prompt": "def fibonacci(n):", "max_tokens": 16}
{"id": "sort", "prompt": "# Sort a list of numbers in C++\n#include <vector>\n", "max_tokens": 16}
{"id": "sql", "prompt": "SELECT name FROM users WHERE", "max_tokens": 10}
JSONL
cat >"$tmp/sampled.jsonl" <<'JSONL'
{"id": "s1", "prompt": "def quicksort(a):", "max_tokens": 12, "temperature": 0.8, "top_p": 0.9, "seed": 11, "n": 2}
{"id": "s2", "messages": [{"role": "user", "content": "Name a sorting algorithm."}], "max_tokens": 12, "temperature": 0.6}
JSONL
args=(--model "$model" --prompts "$tmp/greedy.jsonl" --temperature 0 --order input --dtype f32)
expect_rc 0 "single rank" "$gridlm" generate "${args[@]}" --output "$tmp/ref.jsonl" --threads 2 -q
[ "$(jq -s 'length' "$tmp/ref.jsonl")" = 4 ] || fail "single rank: expected 4 results"
jq -e -s '.[1].text | test("return")' "$tmp/ref.jsonl" >/dev/null || fail "single rank: fibonacci has no return"

expect_grid "pp=2" "$tmp/ref.jsonl" 1 2 1 "${args[@]}"
expect_grid "pp=3" "$tmp/ref.jsonl" 1 3 1 "${args[@]}"
expect_grid "tp=2" "$tmp/ref.jsonl" 1 1 2 "${args[@]}"
expect_grid "dp=2" "$tmp/ref.jsonl" 2 1 1 "${args[@]}"
expect_grid "pp=2 tp=2" "$tmp/ref.jsonl" 1 2 2 "${args[@]}"
expect_grid "dp=2 pp=2 tp=2" "$tmp/ref.jsonl" 2 2 2 "${args[@]}"
expect_grid "tp=7 (KV heads replicated)" "$tmp/ref.jsonl" 1 1 7 "${args[@]}"
expect_grid "uneven pp 20,4" "$tmp/ref.jsonl" 1 2 1 "${args[@]}" --pp-layers 20,4

qargs=(--model "$model" --prompts "$tmp/greedy.jsonl" --temperature 0 --order input --dtype auto)
expect_rc 0 "kept blocks, single rank" "$gridlm" generate "${qargs[@]}" --output "$tmp/qref.jsonl" --threads 2 -q
expect_grid "kept blocks, pp=2" "$tmp/qref.jsonl" 1 2 1 "${qargs[@]}"
expect_grid "kept blocks, dp=2" "$tmp/qref.jsonl" 2 1 1 "${qargs[@]}"

sargs=(--model "$model" --prompts "$tmp/sampled.jsonl" --order input --seed 9 --dtype f32)
expect_rc 0 "sampled, single rank" "$gridlm" generate "${sargs[@]}" --output "$tmp/sref.jsonl" --threads 2 -q
expect_grid "sampled, pp=2 tp=2" "$tmp/sref.jsonl" 1 2 2 "${sargs[@]}"
finish test_grid_qwen
