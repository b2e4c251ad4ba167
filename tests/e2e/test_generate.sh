# End-to-end test of `gridlm generate` on SmolLM2-135M: formats, output shapes, exit statuses,
# seeded determinism across batch sizes, --order input, --config. Usage: test_generate.sh GRIDLM MODELS_DIR
set -u
gridlm=$1
models=$2
model=$models/SmolLM2-135M-Instruct.Q4_1.gguf
. "$(dirname "$0")/lib.sh"
require_files "$model"
gen() { "$gridlm" generate --model "$model" --threads 2 -q "$@"; }

# --- usage and fatal errors stop at once, before the model is loaded ---------------------------
printf 'Hello\n' >"$tmp/one.txt"
expect_rc 0 "--help" "$gridlm" generate --help
grep -q "exit status" "$tmp/stdout" || fail "--help does not document the exit statuses"
grep -q -- "--max-tokens" "$tmp/stdout" || fail "--help does not list --max-tokens"
expect_rc 2 "missing --prompts" gen --output "$tmp/o.jsonl"
expect_rc 2 "bad option value" gen --prompts "$tmp/one.txt" --output "$tmp/o.jsonl" --top-p 0
expect_rc 2 "unknown option" gen --prompts "$tmp/one.txt" --output "$tmp/o.jsonl" --bogus
expect_rc 2 "bad --order" gen --prompts "$tmp/one.txt" --output "$tmp/o.jsonl" --order random
expect_rc 1 "missing input" gen --prompts "$tmp/none.txt" --output "$tmp/o.jsonl"
expect_rc 1 "unwritable output" gen --prompts "$tmp/one.txt" --output "$tmp/no/such/dir/o.jsonl"
expect_rc 1 "missing model" "$gridlm" generate --model "$tmp/none.h5" --prompts "$tmp/one.txt" --output "$tmp/o.jsonl"

# --- txt input, greedy ----------------------------------------------------------------------------
printf 'The capital of France is\n\nOne, two, three,\n' >"$tmp/p.txt"
expect_rc 0 "txt greedy" gen --prompts "$tmp/p.txt" --output "$tmp/txt.jsonl" --max-tokens 6 --temperature 0
[ "$(wc -l <"$tmp/txt.jsonl")" = 2 ] || fail "txt: expected 2 result lines"
jq -e -s '.[0].id == "1" and .[1].id == "3" and all(.[]; .finish_reason == "length" and
    .usage.completion_tokens == 6 and (.text | length) > 0)' "$tmp/txt.jsonl" >/dev/null ||
    fail "txt: unexpected results: $(cat "$tmp/txt.jsonl")"
jq -e -s '.[0].text | test("Paris")' "$tmp/txt.jsonl" >/dev/null || fail "txt: greedy answer lacks Paris"

# --- JSONL with bad records: exit 3, error lines name the line; --order input -------------------
cat >"$tmp/in.jsonl" <<'EOF'
{"id": "a", "prompt": "Once upon a time", "max_tokens": 5, "temperature": 0.8, "seed": 11}
{"id": "b", "prompt": "x", "top_p": 1.5}
{"id": "c", "messages": [{"role": "user", "content": "Name a colour."}], "max_tokens": 5, "n": 2, "logprobs": true, "top_logprobs": 2}
{broken json

{"id": "e", "prompt": "Counting: 1, 2, 3,", "max_tokens": 8, "temperature": 0, "stop": [","]}
EOF
expect_rc 3 "jsonl with bad records" gen --prompts "$tmp/in.jsonl" --output "$tmp/in.out" --order input --batch-size 3
jq -e -s 'length == 5 and (map(.id // "?") == ["a", "b", "c", "?", "e"])' "$tmp/in.out" >/dev/null ||
    fail "jsonl: wrong ids / order: $(jq -c '.id' "$tmp/in.out" | tr '\n' ' ')"
jq -e -s '.[1].line == 2 and (.[1].error | test("top_p")) and .[3].line == 4 and (.[3].error | test("JSON"))' \
    "$tmp/in.out" >/dev/null || fail "jsonl: error lines wrong: $(sed -n '2p;4p' "$tmp/in.out")"
jq -e -s '.[2].choices | length == 2' "$tmp/in.out" >/dev/null || fail "jsonl: n=2 should give 2 choices"
jq -e -s '.[2].logprobs | length > 0 and all(.[]; .logprob <= 0 and (.top_logprobs | length) == 2)' \
    "$tmp/in.out" >/dev/null || fail "jsonl: logprobs missing or malformed"
jq -e -s '.[4] | .finish_reason == "stop" and (.text | contains(",") | not)' "$tmp/in.out" >/dev/null ||
    fail "jsonl: stop string not applied: $(sed -n 5p "$tmp/in.out")"

# --- the same seeded records give the same text whatever the batch size --------------------------
expect_rc 3 "jsonl batch 1" gen --prompts "$tmp/in.jsonl" --output "$tmp/in1.out" --order input --batch-size 2
# (Texts, not logprobs: batched matrix products may round the last bits differently.)
texts() { jq -c '{id, text, choices: [.choices[]?.text]}' "$1"; }
if ! cmp -s <(texts "$tmp/in.out") <(texts "$tmp/in1.out"); then
    fail "outputs differ between batch sizes 3 and 2"
    diff <(texts "$tmp/in.out") <(texts "$tmp/in1.out") | head -6
fi
# ... and whatever the schedule: static batches, or a token budget that splits prompts into
# many small chunks mixed with decodes.
expect_rc 3 "static schedule" gen --prompts "$tmp/in.jsonl" --output "$tmp/in2.out" --order input --max-seqs 3 \
    --schedule static
expect_rc 3 "token budget" gen --prompts "$tmp/in.jsonl" --output "$tmp/in3.out" --order input --max-seqs 3 \
    --max-batched-tokens 4
for f in in2 in3; do
    cmp -s <(texts "$tmp/in.out") <(texts "$tmp/$f.out") || fail "$f: outputs differ from the continuous run"
done
expect_rc 2 "--schedule bad" gen --prompts "$tmp/in.jsonl" --output "$tmp/in4.out" --schedule random
expect_rc 2 "--batch-size and --max-seqs disagree" gen --prompts "$tmp/in.jsonl" --output "$tmp/in4.out" \
    --batch-size 2 --max-seqs 3

# --- OpenAI batch in, OpenAI batch out; options from --config -------------------------------------
cat >"$tmp/batch.jsonl" <<'EOF'
{"custom_id": "r1", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "m", "messages": [{"role": "user", "content": "Hi"}], "max_completion_tokens": 4}}
{"custom_id": "r2", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "m", "messages": "oops"}}
EOF
printf 'temperature = 0\nmax-tokens = 100\nmodel-name = smol\n' >"$tmp/gen.cfg"
expect_rc 3 "openai batch" gen --config "$tmp/gen.cfg" --prompts "$tmp/batch.jsonl" --output "$tmp/batch.out"
jq -e -s '.[] | select(.custom_id == "r1") | .error == null and .response.status_code == 200 and
    .response.body.object == "chat.completion" and .response.body.model == "smol" and
    .response.body.usage.completion_tokens <= 4 and
    .response.body.choices[0].message.role == "assistant"' "$tmp/batch.out" >/dev/null ||
    fail "openai: success line has the wrong shape: $(head -c 400 "$tmp/batch.out")"
jq -e -s '.[] | select(.custom_id == "r2") | .response == null and (.error.message | test("messages"))' \
    "$tmp/batch.out" >/dev/null || fail "openai: error line has the wrong shape"

finish test_generate
