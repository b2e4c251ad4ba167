# End-to-end test of `gridlm compare` on SmolLM2-135M: the f32 checkpoint against itself (every
# text equal, log-prob deltas 0) and against its Q4_1 twin (a measured divergence), the gates' exit
# statuses, resuming, a two-rank grid run giving the single-rank figures, and score's "completion"
# field held to generate's own log-probabilities. Usage: test_compare.sh GRIDLM MODELS_DIR
set -u
gridlm=$1
models=$2
f32=$models/SmolLM2-135M-Instruct.f32.h5
q41=$models/SmolLM2-135M-Instruct.Q4_1.gguf
other_vocab=$models/Qwen2.5-Coder-0.5B-Instruct.Q4_K_M.gguf
. "$(dirname "$0")/lib.sh"
require_files "$q41"
# The f32 checkpoint the demo makes; without it, the same weights dequantised here.
if [ ! -f "$f32" ]; then
    f32=$tmp/SmolLM2-135M-Instruct.f32.h5
    "$gridlm" convert --from "$q41" --to "$f32" --dtype f32 >/dev/null 2>&1 || { echo "FAIL: cannot convert $q41 to f32"; exit 1; }
fi
# Greedy and short, so the whole test takes a few model loads and ~150 generated tokens per run.
compare() { "$gridlm" compare --max-tokens 24 --temperature 0 --threads 2 -q "$@"; }
# jq_ok WHAT FILE FILTER: FILTER is true on FILE.
jq_ok() { jq -e "$3" "$2" >/dev/null || fail "$1: $(jq -c "$3" "$2" 2>&1 | head -c 300) from $2"; }

cat >"$tmp/prompts.jsonl" <<'EOF'
{"id": "capital", "messages": [{"role": "user", "content": "What is the capital of France?"}]}
{"id": "count", "prompt": "One, two, three, four,"}
{"id": "story", "prompt": "Once upon a time, in a small village by the sea,"}
{"id": "recipe", "messages": [{"role": "user", "content": "Give me a short recipe for pancakes."}]}
{"id": "code", "prompt": "def fibonacci(n):"}
{"id": "bad", "prompt": 42}
EOF

# --- usage: help, bad gates, missing options ---------------------------------------------------
expect_rc 0 "--help" "$gridlm" compare --help
for opt in --a --b --prompts --output --fail-if --resume --report-only --dtype-a --html-records --dp --pp --tp \
    --temperature --seed match divergence logprob_delta error_rate_b length_ratio report.json "exit status"; do
    grep -q -- "$opt" "$tmp/stdout" || fail "--help does not mention $opt"
done
expect_rc 2 "bad gate operator" compare --a "$f32" --b "$f32" --prompts "$tmp/prompts.jsonl" --output "$tmp/x" \
    --fail-if 'match=0.9'
expect_stderr "bad gate operator" "--fail-if 'match=0.9'"
expect_stderr "bad gate lists the metrics" "match, divergence, logprob_delta"
expect_rc 2 "unknown gate metric" compare --a "$f32" --b "$f32" --prompts "$tmp/prompts.jsonl" --output "$tmp/x" \
    --fail-if 'match<0.9,speed>1'
expect_stderr "unknown gate metric" "unknown metric 'speed'"
expect_rc 2 "missing --b" compare --a "$f32" --prompts "$tmp/prompts.jsonl" --output "$tmp/x"
[ -e "$tmp/x" ] && fail "a usage error created the output directory"
if [ -f "$other_vocab" ]; then
    expect_rc 1 "another vocabulary" compare --a "$f32" --b "$other_vocab" --prompts "$tmp/prompts.jsonl" \
        --output "$tmp/x"
    expect_stderr "another vocabulary" "needs one vocabulary"
fi

# --- A against itself: every text equal, deltas 0 ---------------------------------------------
expect_rc 0 "self, gate match<0.99" compare --a "$f32" --b "$f32" --prompts "$tmp/prompts.jsonl" \
    --output "$tmp/self" --fail-if 'match<0.99'
grep -q "gate match<0.99: match = 1 -> passed" "$tmp/stdout" || fail "self: gate line: $(cat "$tmp/stdout")"
self=$tmp/self/report.json
for f in prompts.jsonl a.jsonl b.jsonl b_on_a.jsonl a_on_b.jsonl report.json report.html; do
    [ -s "$tmp/self/$f" ] || fail "self: $f is missing"
done
jq_ok "self: counts" "$self" '.records == 6 and .both_ok == 5 and .exact_match == 5 and .exact_match_rate == 1'
jq_ok "self: no divergence" "$self" '.first_divergence.diverged == 0 and .first_divergence.mean == null'
jq_ok "self: deltas 0" "$self" '.logprob.records == 5 and (.logprob.delta_b_on_a | fabs) < 1e-4 and
    (.logprob.delta_a_on_b | fabs) < 1e-4 and .logprob.a_on_a < 0'
jq_ok "self: the bad record is an error for both" "$self" '.a.errors == 1 and .b.errors == 1 and
    (.b.error_rate - 1/6 | fabs) < 1e-9 and .per_record[5].status_a == "error"'
jq_ok "self: lengths and finish reasons" "$self" '.a.length.count == 5 and .a.length.p90 <= 24 and
    .length_ratio == 1 and ([.a.finish_reason[]] | add) == 5 and .gates[0].failed == false and .gates_failed == false'
grep -q "<!DOCTYPE html>" "$tmp/self/report.html" || fail "self: report.html is no HTML page"
grep -q "Every record both models completed has the same text" "$tmp/self/report.html" ||
    fail "self: report.html does not say the texts are equal"

# score's "completion": each record's mean equals the mean of generate's own log-probabilities.
jq -s -r 'map(select(.logprobs)) | .[] | "\(.id) \([.logprobs[].logprob] | add / length)"' "$tmp/self/a.jsonl" |
    sort >"$tmp/own"
jq -r '"\(.id) \(.mean_logprob)"' "$tmp/self/b_on_a.jsonl" | sort >"$tmp/scored"
[ "$(wc -l <"$tmp/own")" = 5 ] || fail "self: expected 5 completions with logprobs"
join "$tmp/own" "$tmp/scored" | awk '{ d = $2 - $3; if (d < 0) d = -d; if (d > 1e-3) bad++; n++ }
    END { exit bad > 0 || n != 5 }' || fail "score's completion mean differs from generate's own: $(join "$tmp/own" "$tmp/scored")"
jq_ok "score line shape" "$tmp/self/b_on_a.jsonl" '(.completion_logprobs | length) == .tokens_scored and
    (.completion_token_ids | length) == .usage.completion_tokens and .prompt_logprobs == null'

# Resuming: an existing comparison is refused without --resume, finished with it.
expect_rc 1 "existing DIR without --resume" compare --a "$f32" --b "$f32" --prompts "$tmp/prompts.jsonl" \
    --output "$tmp/self"
expect_stderr "existing DIR without --resume" "already exists; give --resume"
cp "$self" "$tmp/self_report.json"
expect_rc 0 "--resume" compare --a "$f32" --b "$f32" --prompts "$tmp/prompts.jsonl" --output "$tmp/self" --resume
[ "$(jq -c 'del(.gates, .gates_failed)' "$self")" = "$(jq -c 'del(.gates, .gates_failed)' "$tmp/self_report.json")" ] ||
    fail "--resume changed the report"

# --- A against its Q4_1 twin: a measured divergence --------------------------------------------
expect_rc 6 "f32 vs Q4_1, gate match<0.99" compare --a "$f32" --b "$q41" --dtype auto --prompts "$tmp/prompts.jsonl" \
    --output "$tmp/q" --fail-if 'match<0.99'
grep -q "gate match<0.99: .* -> FAILED" "$tmp/stdout" || fail "q4_1: no FAILED gate line: $(cat "$tmp/stdout")"
q=$tmp/q/report.json
jq_ok "q4_1: differs" "$q" '.both_ok == 5 and (.exact_match_rate < 1 or .first_divergence.diverged > 0)'
jq_ok "q4_1: divergence positions" "$q" '[.per_record[] | select(.first_divergence != null) | .first_divergence] |
    all(. >= 0 and . <= 24)'
jq_ok "q4_1: B believes A's text less, by under a nat per token" "$q" \
    '.logprob.records > 0 and .logprob.delta_b_on_a < 0 and .logprob.delta_b_on_a > -1'
jq_ok "q4_1: gate recorded" "$q" '.gates[0].expr == "match<0.99" and .gates[0].failed and .gates_failed and
    .gates[0].value == .exact_match_rate'
echo "f32 vs Q4_1: $(jq -c '{exact_match_rate, diverged: .first_divergence.diverged, mean: .first_divergence.mean,
    delta_b_on_a: .logprob.delta_b_on_a, delta_a_on_b: .logprob.delta_a_on_b}' "$q")"
grep -q "<mark>" "$tmp/q/report.html" || fail "q4_1: report.html marks no divergence"

# --- gates on the reports alone ----------------------------------------------------------------
expect_rc 0 "report-only, self passes" compare --output "$tmp/self" --report-only --fail-if 'match<0.99,logprob_delta<-0.01'
jq_ok "report-only keeps the model names" "$self" ".a.model == \"$f32\""
expect_rc 6 "report-only, q4_1 fails" compare --output "$tmp/q" --report-only --fail-if 'logprob_delta<-0.0001'
expect_rc 6 "report-only, error rate" compare --output "$tmp/self" --report-only --fail-if 'error_rate_b>0.1'
expect_rc 0 "report-only, no gate" compare --output "$tmp/q" --report-only

# --- a grid run gives the single-rank figures --------------------------------------------------
expect_rc 6 "mpirun -n 2 --dp 2" timeout 300 mpirun -n 2 --oversubscribe "$gridlm" compare --max-tokens 24 \
    --temperature 0 --threads 1 -q --dp 2 --a "$f32" --b "$q41" --prompts "$tmp/prompts.jsonl" --output "$tmp/grid" \
    --fail-if 'match<0.99'
figures='[.records, .both_ok, .exact_match, .first_divergence.diverged, [.per_record[] | .first_divergence, .len_a,
    .len_b]]'
[ "$(jq -c "$figures" "$tmp/grid/report.json")" = "$(jq -c "$figures" "$q")" ] ||
    fail "grid figures $(jq -c "$figures" "$tmp/grid/report.json") differ from $(jq -c "$figures" "$q")"
jq -n --slurpfile g "$tmp/grid/report.json" --slurpfile s "$q" -e '[$g[0].logprob, $s[0].logprob] as [$x, $y] |
    ["a_on_a", "b_on_a", "a_on_b", "b_on_b"] | all(($x[.] - $y[.]) | fabs < 1e-4)' >/dev/null ||
    fail "grid log-probs differ from the single-rank run"

# --- score --prompts with "completion" records -------------------------------------------------
cat >"$tmp/completion.jsonl" <<'EOF'
{"id": "text", "prompt": "The capital of France is", "completion": " Paris."}
{"id": "ids", "prompt": "The capital of France is", "completion": [7042, 30]}
{"id": "empty", "prompt": "The capital of France is", "completion": ""}
{"id": "outside", "prompt": "x", "completion": [99999999]}
EOF
expect_rc 3 "score with completions" "$gridlm" score --model "$f32" --threads 2 -q --prompts "$tmp/completion.jsonl" \
    --output "$tmp/completion.out" --order input
jq -s -e 'length == 4 and (.[0].tokens_scored >= 2) and (.[0].mean_logprob < 0) and
    (.[1].completion_token_ids == [7042, 30]) and (.[1].tokens_scored == 2) and
    (.[1].total_logprob - ([.[1].completion_logprobs[].logprob] | add) | fabs) < 1e-4 and
    (.[2].error | test("completion. is empty")) and (.[3].error | test("outside the vocabulary"))' \
    "$tmp/completion.out" >/dev/null || fail "score completion lines: $(cut -c1-200 "$tmp/completion.out")"
finish test_compare
