# Faulty input records never stop a job: numbers beyond a double (in a used field, an ignored
# one, inside an OpenAI body), deep nesting, unsupported and unknown request fields, misleading
# values and roles each become that record's error line naming its line; the good records
# complete, the exit status is 3 ("some records failed"), and --resume / --retry-errors finish.
# Format detection does not hinge on the first line. Usage: test_input_faults.sh GRIDLM MODELS_DIR
set -u
gridlm=$1
models=$2
model=$models/SmolLM2-135M-Instruct.Q4_1.gguf
. "$(dirname "$0")/lib.sh"
require_files "$model"
templates=$(cd "$(dirname "$0")/../reference/chat_templates" && pwd)
gen() { timeout 120 "$gridlm" generate --model "$model" --threads 2 --max-tokens 4 --temperature 0 "$@"; }

# error_at FILE LINE TEXT: the output has an error line for input line LINE whose message holds TEXT.
error_at() {
    jq -e -s --argjson l "$2" --arg t "$3" \
        'map(select(.line == $l and .error != null and (.error | contains($t)))) | length == 1' "$1" >/dev/null ||
        fail "$1: no error line for line $2 mentioning '$3': $(jq -c "select(.line == $2)" "$1")"
}

# --- JSONL: every bad kind between good records -----------------------------------------------------
deep=$(printf '[%.0s' $(seq 200))$(printf ']%.0s' $(seq 200))
cat >"$tmp/in.jsonl" <<EOF
{"id": "g1", "prompt": "The capital of France is"}
{"id": "b1", "prompt": "Hi", "temperature": 1e400}
{"id": "b2", "prompt": "Hi", "ignored": {"deep": [-1e400]}}
{"id": "g2", "messages": [{"role": "user", "content": "Name a colour."}]}
{"id": "b3", "prompt": "Hi", "x": $deep}
{"id": "b4", "prompt": "Hi", "stream": true}
{"id": "b5", "prompt": ["a", "b"]}
{"id": "b6", "messages": [{"role": "alien", "content": "x"}]}
{"id": "b7", "prompt": "Hi", "temperature": 1e300}

{"id": "g3", "prompt": "One, two,", "foo": 1, "user": "u", "stream": false, "n": 1}
{"id": "b8", "messages": [{"role": "user", "content": "Weather?"}], "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]}
{"id": "g4", "prompt": "Monday, Tuesday,"}
EOF
expect_rc 3 "jsonl with faulty records" gen --prompts "$tmp/in.jsonl" --output "$tmp/out.jsonl" --order input
cp "$tmp/stderr" "$tmp/first.stderr"
[ "$(wc -l <"$tmp/out.jsonl")" = 12 ] || fail "jsonl: expected 12 lines, got $(wc -l <"$tmp/out.jsonl")"
jq -e -s '[.[] | select(.error == null) | .id] == ["g1", "g2", "g3", "g4"] and
    all(.[] | select(.error == null); (.text // .choices[0].text | length) > 0)' "$tmp/out.jsonl" >/dev/null ||
    fail "jsonl: the good records did not all complete: $(jq -c '{id, error}' "$tmp/out.jsonl" | tr '\n' ' ')"
error_at "$tmp/out.jsonl" 2 "number 1e400 at byte"
error_at "$tmp/out.jsonl" 3 "-1e400"
error_at "$tmp/out.jsonl" 5 "nested 201 levels deep"
error_at "$tmp/out.jsonl" 6 "field 'stream' is not supported by gridlm with the value true"
error_at "$tmp/out.jsonl" 7 "list of strings"
error_at "$tmp/out.jsonl" 8 "got \"alien\""
error_at "$tmp/out.jsonl" 9 "got 1e+300"
error_at "$tmp/out.jsonl" 12 "does not use 'tools'"
grep -qF "input format: jsonl (detected from 11 of 12 sampled lines, 1..13" "$tmp/first.stderr" ||
    fail "no input format line: $(head -c 600 "$tmp/first.stderr")"
grep -qF "1 record had fields gridlm does not know, ignored: foo (1)" "$tmp/first.stderr" ||
    fail "no unknown-field warning: $(tail -c 600 "$tmp/first.stderr")"

# --strict-fields: the unknown field is g3's error instead.
expect_rc 3 "--strict-fields" gen -q --prompts "$tmp/in.jsonl" --output "$tmp/strict.jsonl" --strict-fields
error_at "$tmp/strict.jsonl" 11 "field 'foo' is not a field gridlm knows"

# --- --resume and --retry-errors finish (no record stops them, none loops) --------------------------
expect_rc 3 "--resume of the finished job" gen -q --prompts "$tmp/in.jsonl" --output "$tmp/out.jsonl" \
    --order input --resume
[ "$(wc -l <"$tmp/out.jsonl")" = 12 ] || fail "--resume: expected 12 lines"
expect_rc 3 "--resume --retry-errors" gen -q --prompts "$tmp/in.jsonl" --output "$tmp/out.jsonl" --order input \
    --resume --retry-errors
jq -e -s 'length == 12 and (map(.id // "line \(.line)") | unique | length) == 12 and (map(select(.error)) | length) == 8' \
    "$tmp/out.jsonl" >/dev/null || fail "--retry-errors: expected 12 lines, 8 errors: $(jq -c '{id}' "$tmp/out.jsonl")"
error_at "$tmp/out.jsonl" 2 "1e400"

# --- OpenAI batch: the first line lacks custom_id; faults inside body ------------------------------
tools='[{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}}}]'
cat >"$tmp/batch.jsonl" <<EOF
{"method": "POST", "url": "/v1/chat/completions", "body": {"messages": [{"role": "user", "content": "Hi"}]}}
{"custom_id": "r2", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "m", "messages": [{"role": "user", "content": "Hi"}]}}
{"custom_id": "r3", "method": "POST", "url": "/v1/completions", "body": {"prompt": "Hi", "temperature": 1e400}}
{"custom_id": "r4", "method": "POST", "url": "/v1/completions", "body": {"prompt": "Hi", "metadata": {"x": -1e400}}}
{"custom_id": "r5", "method": "POST", "url": "/v1/chat/completions", "body": {"messages": [{"role": "user", "content": "Hi"}], "response_format": {"type": "json_object"}}}
{"custom_id": "r6", "method": "POST", "url": "/v1/completions", "body": {"prompt": "Once upon", "n": 1, "stream": false, "user": "x"}}
{"custom_id": "r7", "method": "POST", "url": "/v1/completions", "body": {"prompt": ["a", "b"]}}
{"custom_id": "r8", "method": "POST", "url": "/v1/chat/completions", "body": {"messages": [{"role": "user", "content": "Weather?"}], "tools": $tools}}
EOF
expect_rc 3 "openai batch with faulty records" gen --prompts "$tmp/batch.jsonl" --output "$tmp/batch.out" \
    --order input --chat-template "$templates/Qwen-Qwen2.5-7B-Instruct.jinja"
grep -qF "input format: openai batch (detected from 7 of 8 sampled lines" "$tmp/stderr" ||
    fail "openai: detection line: $(grep -F 'input format' "$tmp/stderr")"
[ "$(wc -l <"$tmp/batch.out")" = 8 ] || fail "openai: expected 8 lines"
jq -e -s '[.[] | select(.error == null) | .custom_id] == ["r2", "r6", "r8"] and
    all(.[] | select(.error == null); .response.status_code == 200)' "$tmp/batch.out" >/dev/null ||
    fail "openai: good records: $(jq -c '{custom_id, error}' "$tmp/batch.out" | tr '\n' ' ')"
for l in "1 missing 'custom_id'" "3 1e400" "4 -1e400" "5 json_object" "7 list of strings"; do
    jq -e -s --arg l "line ${l%% *}:" --arg t "${l#* }" \
        'map(select(.error.message // "" | startswith($l) and contains($t))) | length == 1' "$tmp/batch.out" \
        >/dev/null || fail "openai: no error for line ${l%% *} mentioning '${l#* }'"
done
expect_rc 3 "openai --resume --retry-errors" gen -q --prompts "$tmp/batch.jsonl" --output "$tmp/batch.out" \
    --order input --chat-template "$templates/Qwen-Qwen2.5-7B-Instruct.jinja" --resume --retry-errors
[ "$(jq -s 'map(select(.error)) | length' "$tmp/batch.out")" = 5 ] || fail "openai --retry-errors: expected 5 errors"

# --- a prompt list without extension whose first prompt starts with '{' is text --------------------
printf '{name} stands for a name here\nThe capital of France is\n' >"$tmp/prompts"
expect_rc 0 "text file starting with {" gen --prompts "$tmp/prompts" --output "$tmp/prompts.out"
grep -qF "input format: txt (detected from 2 of 2" "$tmp/stderr" || fail "text: $(grep -F 'input format' "$tmp/stderr")"
[ "$(jq -s 'map(select(.error == null)) | length' "$tmp/prompts.out")" = 2 ] || fail "text: expected 2 results"

finish test_input_faults
