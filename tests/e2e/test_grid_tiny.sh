# The grid on a small random-weight Qwen2 (4 heads, 2 KV heads, 2 layers; written by
# tests/reference/make_hf_tiny.py): tp in {1, 2, 4} (4 replicates the KV heads), with pipeline
# and data parallelism; outputs equal the single-rank run token for token. Random weights give
# nearly flat logits, so this is a strict check of the TP sums and the vocabulary gather.
# Usage: test_grid_tiny.sh GRIDLM MODELS_DIR
set -u
gridlm=$1
. "$(dirname "$0")/lib.sh"
src=$(cd "$(dirname "$0")/../reference/golden" && pwd)/tiny-qwen2-hf
model=$tmp/tiny.h5
expect_rc 0 "convert" "$gridlm" convert --from "$src" --to "$model"

cat >"$tmp/p.jsonl" <<'JSONL'
{"id": "a", "prompt": "Hello world", "max_tokens": 48, "ignore_eos": true}
{"id": "b", "prompt": "The tiny model", "max_tokens": 40, "ignore_eos": true}
{"id": "c", "prompt": [5, 17, 300, 44, 12], "max_tokens": 48, "ignore_eos": true}
{"id": "d", "prompt": "sampled", "max_tokens": 32, "ignore_eos": true, "temperature": 1.0, "seed": 4}
{"id": "e", "prompt": "abc", "max_tokens": 32, "ignore_eos": true, "temperature": 0.7, "top_k": 20, "n": 2}
JSONL
args=(--model "$model" --prompts "$tmp/p.jsonl" --temperature 0 --order input --max-model-len 256)
expect_rc 0 "single rank" "$gridlm" generate "${args[@]}" --output "$tmp/ref.jsonl" --threads 1 -q
[ "$(jq -s 'length' "$tmp/ref.jsonl")" = 5 ] || fail "single rank: expected 5 results"

expect_grid "tp=2" "$tmp/ref.jsonl" 1 1 2 "${args[@]}"
expect_grid "tp=4" "$tmp/ref.jsonl" 1 1 4 "${args[@]}"
expect_grid "pp=2" "$tmp/ref.jsonl" 1 2 1 "${args[@]}"
expect_grid "pp=2 tp=2" "$tmp/ref.jsonl" 1 2 2 "${args[@]}"
expect_grid "dp=2 pp=2 tp=2" "$tmp/ref.jsonl" 2 2 2 "${args[@]}"
expect_grid "pp=2 tp=4" "$tmp/ref.jsonl" 1 2 4 "${args[@]}"
finish test_grid_tiny
