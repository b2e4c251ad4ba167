# The grid on SmolLM2-135M (9 heads, 3 KV heads, 30 layers; tp in {1, 3}): greedy and seeded
# sampled outputs of pipeline, tensor- and data-parallel runs equal the single-rank run.
# Usage: test_grid_smollm2.sh GRIDLM MODELS_DIR
set -u
gridlm=$1
models=$2
. "$(dirname "$0")/lib.sh"
gguf=$models/SmolLM2-135M-Instruct.Q4_1.gguf
require_files "$gguf"
model=$models/SmolLM2-135M-Instruct.f32.h5  # native checkpoint: ranks read hyperslabs
if [ ! -f "$model" ]; then
    model=$tmp/smollm2.h5
    "$gridlm" convert --from "$gguf" --to "$model" --dtype f32 >/dev/null || fail "convert"
fi

cat >"$tmp/greedy.jsonl" <<'JSONL'
{"id": "capital", "prompt": "The capital of France is", "max_tokens": 20}
{"id": "haiku", "messages": [{"role": "user", "content": "Write a haiku about the sea."}], "max_tokens": 24}
{"id": "code", "prompt": "def fibonacci(n):", "max_tokens": 24}
{"id": "count", "prompt": "1, 2, 3, 4,", "max_tokens": 12}
{"id": "story", "prompt": "Once upon a time", "max_tokens": 24}
{"id": "long", "prompt": "Explain in one paragraph why the sky is blue, for a child of eight who likes questions.", "max_tokens": 16}
JSONL
cat >"$tmp/sampled.jsonl" <<'JSONL'
{"id": "s1", "prompt": "My favourite food is", "max_tokens": 16, "temperature": 0.9, "top_p": 0.95, "seed": 7, "n": 2}
{"id": "s2", "messages": [{"role": "user", "content": "Name three animals."}], "max_tokens": 16, "temperature": 0.7, "top_k": 40}
{"id": "s3", "prompt": "Rain is", "max_tokens": 12, "temperature": 1.0, "min_p": 0.05, "seed": 3}
JSONL
args=(--model "$model" --prompts "$tmp/greedy.jsonl" --temperature 0 --order input)
expect_rc 0 "single rank" "$gridlm" generate "${args[@]}" --output "$tmp/ref.jsonl" --threads 2 -q
[ "$(jq -s 'length' "$tmp/ref.jsonl")" = 6 ] || fail "single rank: expected 6 results"
jq -e -s '.[0].text | test("Paris")' "$tmp/ref.jsonl" >/dev/null || fail "single rank: no Paris"

expect_grid "pp=2" "$tmp/ref.jsonl" 1 2 1 "${args[@]}"
expect_grid "pp=3" "$tmp/ref.jsonl" 1 3 1 "${args[@]}"
expect_grid "tp=3" "$tmp/ref.jsonl" 1 1 3 "${args[@]}"
expect_grid "dp=2" "$tmp/ref.jsonl" 2 1 1 "${args[@]}"
expect_grid "pp=2 tp=3" "$tmp/ref.jsonl" 1 2 3 "${args[@]}"
expect_grid "dp=2 pp=2 tp=3" "$tmp/ref.jsonl" 2 2 3 "${args[@]}"
expect_grid "pp=2 tp=3, activations in 1/tp slices" "$tmp/ref.jsonl" 1 2 3 "${args[@]}" --pp-slices
expect_grid "uneven pp 4,26" "$tmp/ref.jsonl" 1 2 1 "${args[@]}" --pp-layers 4,26
expect_grid "pp=2, 1 micro-batch" "$tmp/ref.jsonl" 1 2 1 "${args[@]}" --micro-batches 1
expect_grid "dp=2, batch 2" "$tmp/ref.jsonl" 2 1 1 "${args[@]}" --batch-size 2

# Uneven replicas: replica 0 gets the long records, replica 1 the short ones; input order holds.
python3 - >"$tmp/uneven.jsonl" <<'PY'
import json
for i in range(12):
    print(json.dumps({"id": f"u{i}", "prompt": f"Item {i}: the", "max_tokens": 40 if i % 2 == 0 else 2}))
PY
uargs=(--model "$model" --prompts "$tmp/uneven.jsonl" --temperature 0 --order input)
expect_rc 0 "uneven, single rank" "$gridlm" generate "${uargs[@]}" --output "$tmp/uref.jsonl" --threads 2 -q
expect_grid "uneven replicas, dp=2" "$tmp/uref.jsonl" 2 1 1 "${uargs[@]}" --batch-size 2
[ "$(jq -s 'length' "$tmp/uref.jsonl")" = 12 ] || fail "uneven: expected 12 results"

# Bad records: each replica writes its own records' error lines; the job exits 3 on every grid.
cat >"$tmp/bad.jsonl" <<'JSONL'
{"id": "ok1", "prompt": "Hello", "max_tokens": 4}
{"id": "bad1", "prompt": "x", "top_p": 1.5}
{broken json
{"id": "ok2", "prompt": "Goodbye", "max_tokens": 4}
{"id": "long", "prompt": "one two three four five six seven eight nine ten", "max_tokens": 4}
JSONL
bargs=(--model "$model" --prompts "$tmp/bad.jsonl" --temperature 0 --order input --max-prompt-tokens 8)
expect_rc 3 "bad records, single rank" "$gridlm" generate "${bargs[@]}" --output "$tmp/bref.jsonl" --threads 2 -q
[ "$(jq -s 'map(select(.error)) | length' "$tmp/bref.jsonl")" = 3 ] || fail "bad records: expected 3 error lines"
expect_rc 3 "bad records, dp=2 pp=2" grid_gen 4 2 2 1 "${bargs[@]}" --output "$tmp/bgrid.jsonl"
same_output "bad records, dp=2 pp=2" "$tmp/bref.jsonl" "$tmp/bgrid.jsonl"

# Seeded sampling: every record has its own generator, so the grid draws the same tokens.
sargs=(--model "$model" --prompts "$tmp/sampled.jsonl" --order input --seed 5)
expect_rc 0 "sampled, single rank" "$gridlm" generate "${sargs[@]}" --output "$tmp/sref.jsonl" --threads 2 -q
expect_grid "sampled, pp=2 tp=3" "$tmp/sref.jsonl" 1 2 3 "${sargs[@]}"
expect_grid "sampled, dp=2 pp=2" "$tmp/sref.jsonl" 2 2 1 "${sargs[@]}"

# The grid from a config file; the job summary reports the stages and the bubble.
printf 'dp = 1\npp = 2\ntp = 3\ntemperature = 0\norder = input\n' >"$tmp/grid.cfg"
expect_rc 0 "grid from --config" timeout 240 mpirun -n 6 --oversubscribe "$gridlm" generate --threads 1 \
    --model "$model" --prompts "$tmp/greedy.jsonl" --output "$tmp/cfg.jsonl" --config "$tmp/grid.cfg"
same_output "grid from --config" "$tmp/ref.jsonl" "$tmp/cfg.jsonl"
expect_stderr "summary" "grid dp=1 pp=2 tp=3"
expect_stderr "summary" "pipeline bubble"
expect_stderr "load report" "layers 0..18, 3 heads, 1 KV heads"
finish test_grid_smollm2
