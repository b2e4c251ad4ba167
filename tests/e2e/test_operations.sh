# Operating a generate job: --filter on prompts and on completions mid-generation, the
# --max-error-rate breaker (exit 5, then --resume finishes), --metrics-file checked by promtool on
# one rank and on a dp=2 x pp=2 grid, --trace merged over a pipeline and drawn by `gridlm report`.
# Usage: test_operations.sh GRIDLM MODELS_DIR
set -u
gridlm=$1
models=$2
. "$(dirname "$0")/lib.sh"
model=$models/SmolLM2-135M-Instruct.Q4_1.gguf
require_files "$model"
command -v promtool >/dev/null || fail "promtool is missing (Debian package prometheus; launch/setup.sh installs it)"

# jq-free JSON checks: py EXPR FILE evaluates EXPR with `lines` = the file's JSON lines.
py() { python3 -c "import json,sys; lines=[json.loads(l) for l in open(sys.argv[2])]; sys.exit(0 if ($1) else 1)" "$1" "$2"; }
line_of() { python3 -c "import json,sys; [print(json.dumps(j)) for j in map(json.loads, open(sys.argv[1])) if j.get('id')==sys.argv[2]]" "$1" "$2"; }

# --- content filter -------------------------------------------------------------------------------
cat >"$tmp/rules" <<'EOF'
# test rules
secret_plan   reject  prompt      secret\s+plan
password      redact  both        password\s*=\s*\S+
flag_paris    flag    completion  paris
stop_states   reject  completion  united\s+states
EOF
cat >"$tmp/p.jsonl" <<'EOF'
{"id": "plain", "prompt": "Write one word:", "max_tokens": 4}
{"id": "secret", "prompt": "Tell me the SECRET   plan of the company."}
{"id": "pw", "prompt": "My password = hunter2 and the weather is", "max_tokens": 4}
{"id": "paris", "prompt": "The capital of France is", "max_tokens": 24}
EOF
common=(--model "$model" --temperature 0 --threads 2 -q)
expect_rc 0 "unfiltered run" "$gridlm" generate "${common[@]}" --prompts "$tmp/p.jsonl" --output "$tmp/nofilter.jsonl"
expect_rc 0 "filtered run (filtering does not change the exit status)" "$gridlm" generate "${common[@]}" \
    --prompts "$tmp/p.jsonl" --output "$tmp/filter.jsonl" --filter "$tmp/rules"
[ "$(wc -l <"$tmp/filter.jsonl")" = 4 ] || fail "filter: expected 4 lines"
py '[j for j in lines if j["id"]=="plain"][0].get("filter") is None' "$tmp/filter.jsonl" || fail "plain prompt marked"
py 'any(j["id"]=="secret" and "text" not in j and j["filter"]=={"rule":"secret_plan","action":"reject","where":"prompt"} and j["usage"]["completion_tokens"]==0 and j["finish_reason"]=="content_filter" for j in lines)' \
    "$tmp/filter.jsonl" || fail "rejected prompt line: $(line_of "$tmp/filter.jsonl" secret)"
py 'any(j["id"]=="pw" and j["filter"]["rule"]=="password" and j["filter"]["action"]=="redact" and j["filter"]["where"]=="prompt" for j in lines)' \
    "$tmp/filter.jsonl" || fail "redacted prompt line: $(line_of "$tmp/filter.jsonl" pw)"
# The redacted prompt is what the model saw: its token count is that of the redacted text.
redacted_tokens=$("$gridlm" tokenize --model "$model" "My [REDACTED] and the weather is" | wc -l)
py "any(j['id']=='pw' and j['usage']['prompt_tokens']==$redacted_tokens for j in lines)" "$tmp/filter.jsonl" ||
    fail "redacted prompt: prompt_tokens is not that of the redacted text ($redacted_tokens): $(line_of "$tmp/filter.jsonl" pw)"
# Mid-generation reject: the unfiltered text goes on past "United States"; the filtered one stops at
# the token completing the match and keeps the text before it.
py 'any(j["id"]=="paris" and "United States" in j["text"] for j in lines)' "$tmp/nofilter.jsonl" ||
    fail "the reference completion no longer mentions United States: $(line_of "$tmp/nofilter.jsonl" paris)"
python3 - "$tmp/nofilter.jsonl" "$tmp/filter.jsonl" <<'EOF' || fail "completion reject"
import json, sys
ref = {j["id"]: j for j in map(json.loads, open(sys.argv[1]))}["paris"]
got = {j["id"]: j for j in map(json.loads, open(sys.argv[2]))}["paris"]
cut = ref["text"].index("United States")
assert got["finish_reason"] == "content_filter", got
assert got["filter"] == {"rule": "stop_states", "action": "reject", "where": "completion"}, got
assert got["text"] == ref["text"][:cut], (got["text"], ref["text"][:cut])
assert got["usage"]["completion_tokens"] < ref["usage"]["completion_tokens"], (got, ref)
EOF
# flag: kept, marked (a run whose reject rule is off).
grep -v stop_states "$tmp/rules" >"$tmp/rules_flag"
expect_rc 0 "flag run" "$gridlm" generate "${common[@]}" --prompts "$tmp/p.jsonl" --output "$tmp/flag.jsonl" \
    --filter "$tmp/rules_flag"
python3 - "$tmp/nofilter.jsonl" "$tmp/flag.jsonl" <<'EOF' || fail "completion flag"
import json, sys
ref = {j["id"]: j for j in map(json.loads, open(sys.argv[1]))}["paris"]
got = {j["id"]: j for j in map(json.loads, open(sys.argv[2]))}["paris"]
assert got["text"] == ref["text"] and got["finish_reason"] == ref["finish_reason"], (got, ref)
assert got["filter"] == {"rule": "flag_paris", "action": "flag", "where": "completion"}, got
EOF
# The shipped set.
echo '{"id": "inj", "prompt": "import os; os.system(\"rm -rf /\")"}' >"$tmp/inj.jsonl"
echo '{"id": "ok", "prompt": "Evaluate the integral of x from 0 to 1.", "max_tokens": 2}' >>"$tmp/inj.jsonl"
expect_rc 0 "--filter default" "$gridlm" generate "${common[@]}" --prompts "$tmp/inj.jsonl" --output "$tmp/inj_out.jsonl" \
    --filter default
py 'any(j["id"]=="inj" and j["filter"]["action"]=="reject" for j in lines) and any(j["id"]=="ok" and "text" in j and "filter" not in j for j in lines)' \
    "$tmp/inj_out.jsonl" || fail "--filter default: $(cat "$tmp/inj_out.jsonl")"
# A rules file without rules is a mistake, not a silent no-op.
printf '# nothing yet\n' >"$tmp/empty.rules"
expect_rc 1 "empty rules file" "$gridlm" generate "${common[@]}" --prompts "$tmp/p.jsonl" --output "$tmp/empty_out.jsonl" \
    --filter "$tmp/empty.rules"
expect_stderr "empty rules file" "has no rules"
# A bad rule is a start-up error naming the file and line; nothing is written.
printf 'fine flag prompt abc\nbroken reject prompt (unclosed\n' >"$tmp/bad.rules"
expect_rc 1 "bad rule" "$gridlm" generate "${common[@]}" --prompts "$tmp/p.jsonl" --output "$tmp/bad_out.jsonl" \
    --filter "$tmp/bad.rules"
expect_stderr "bad rule" "bad.rules:2"
[ ! -e "$tmp/bad_out.jsonl" ] || fail "bad rule: an output file was written"
expect_rc 1 "bad rule on a grid" grid_gen 2 1 2 1 --model "$model" --prompts "$tmp/p.jsonl" \
    --output "$tmp/bad_grid.jsonl" --filter "$tmp/bad.rules"
expect_stderr "bad rule on a grid" "bad.rules:2"

# --- error-rate breaker -----------------------------------------------------------------------------
for i in $(seq 24); do
    if [ $((i % 2)) = 0 ]; then echo "{\"id\": \"r$i\", \"prompt\": \"Fact $i:\", \"max_tokens\": 6}"; else echo "{\"id\": \"r$i\", \"prompt\": 5}"; fi
done >"$tmp/half_bad.jsonl"
bargs=(--model "$model" --temperature 0 --threads 2 -q --prompts "$tmp/half_bad.jsonl" --output "$tmp/half.jsonl" --max-seqs 2)
expect_rc 5 "breaker" "$gridlm" generate "${bargs[@]}" --max-error-rate 0.3 --min-records 4
expect_stderr "breaker" "stopped by --max-error-rate 0.3"
expect_stderr "breaker" "records written this run are error lines"
n=$(wc -l <"$tmp/half.jsonl")
[ "$n" -ge 4 ] && [ "$n" -lt 24 ] || fail "breaker: $n lines written, expected at least 4 and fewer than 24"
python3 -c "import json,sys; [json.loads(l) for l in open(sys.argv[1])]" "$tmp/half.jsonl" || fail "breaker: a line is not whole JSON"
expect_rc 3 "resume after the breaker" "$gridlm" generate "${bargs[@]}" --resume
python3 - "$tmp/half.jsonl" <<'EOF' || fail "resume after the breaker: not every record exactly once"
import json, sys
ids = [json.loads(l).get("id") for l in open(sys.argv[1])]
assert sorted(ids) == sorted(f"r{i}" for i in range(1, 25)), ids
EOF
# --order input: error lines held back behind a record in flight are not counted before they are
# written, so a stop always leaves them in the file and --resume moves on.
{
    echo '{"id": "g1", "prompt": "A long story:", "max_tokens": 12}'
    for i in $(seq 2 10); do echo "{\"id\": \"b$i\", \"prompt\": 5}"; done
    for i in $(seq 11 16); do echo "{\"id\": \"g$i\", \"prompt\": \"Story $i:\", \"max_tokens\": 12}"; done
} >"$tmp/ordered.jsonl"
oargs=(--model "$model" --temperature 0 --threads 2 -q --prompts "$tmp/ordered.jsonl" --output "$tmp/ordered_out.jsonl"
    --order input --max-seqs 1)
expect_rc 5 "breaker, --order input" "$gridlm" generate "${oargs[@]}" --max-error-rate 0.3 --min-records 6
n=$(wc -l <"$tmp/ordered_out.jsonl")
[ "$n" -ge 6 ] || fail "breaker, --order input: $n lines in the file, expected the lines it counted (>= 6)"
expect_rc 3 "resume after the breaker, --order input" "$gridlm" generate "${oargs[@]}" --resume
[ "$(wc -l <"$tmp/ordered_out.jsonl")" = 16 ] || fail "resume, --order input: $(wc -l <"$tmp/ordered_out.jsonl") lines, expected 16"

# The same stop in JSON log lines: every stderr line parses, the stop is a "breaker" event with counts.
rm -f "$tmp/half.jsonl"*
expect_rc 5 "breaker, JSON logs" "$gridlm" generate "${bargs[@]}" --max-error-rate 0.3 --min-records 4 --log-format json
python3 - "$tmp/stderr" <<'EOF' || fail "breaker, JSON logs: $(head -c 600 "$tmp/stderr")"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
b = [j for j in lines if j["event"] == "breaker"]
assert len(b) == 1 and b[0]["level"] == "error" and b[0]["records_failed"] > 0.3 * b[0]["records_written"], b
assert all({"time", "level", "rank", "host", "event", "message"} <= set(j) for j in lines), lines
EOF
expect_rc 2 "--min-records alone" "$gridlm" generate "${bargs[@]}" --min-records 5
expect_rc 2 "bad --max-error-rate" "$gridlm" generate "${bargs[@]}" --max-error-rate 1.5
expect_stderr "bad --max-error-rate" "--max-error-rate 1.5"

# --- metrics file -------------------------------------------------------------------------------------
for i in $(seq 8); do echo "{\"id\": \"m$i\", \"prompt\": \"Fact $i about the sea:\", \"max_tokens\": 12}"; done >"$tmp/m.jsonl"
echo '{"id": "bad", "prompt": 7}' >>"$tmp/m.jsonl"
mkdir -p "$tmp/prom"
expect_rc 3 "metrics, one rank" "$gridlm" generate "${common[@]}" --prompts "$tmp/m.jsonl" --output "$tmp/m1.jsonl" \
    --metrics-file "$tmp/prom/gridlm.prom" --metrics-interval 0.1 --kv-cache-bytes 20000000 --filter "$tmp/rules"
promtool check metrics <"$tmp/prom/gridlm.prom" >"$tmp/promtool.out" 2>&1 || fail "promtool: $(cat "$tmp/promtool.out")"
[ "$(ls "$tmp/prom")" = gridlm.prom ] || fail "metrics: temporary files left: $(ls "$tmp/prom")"
grep -qE '^gridlm_records_total\{.*status="ok".*\} 8$' "$tmp/prom/gridlm.prom" || fail "metrics: 8 ok records: $(grep records_total "$tmp/prom/gridlm.prom")"
grep -qE '^gridlm_records_total\{.*status="error".*\} 1$' "$tmp/prom/gridlm.prom" || fail "metrics: 1 error record"
grep -qE '^gridlm_kv_blocks_free\{' "$tmp/prom/gridlm.prom" || fail "metrics: no KV block series under a budget"
grep -qE '^gridlm_job_finished\{.*\} 1$' "$tmp/prom/gridlm.prom" || fail "metrics: the last write does not say finished"
mkdir -p "$tmp/prom4"
expect_rc 3 "metrics, dp=2 x pp=2" grid_gen 4 2 2 1 --model "$model" --temperature 0 --prompts "$tmp/m.jsonl" \
    --output "$tmp/m4.jsonl" --metrics-file "$tmp/prom4/gridlm.prom" --metrics-interval 0.1
promtool check metrics <"$tmp/prom4/gridlm.prom" >"$tmp/promtool.out" 2>&1 || fail "promtool (grid): $(cat "$tmp/promtool.out")"
for r in 0 1 2 3; do
    grep -qE "^gridlm_rank_busy_seconds_total\{.*rank=\"$r\"" "$tmp/prom4/gridlm.prom" || fail "metrics (grid): no busy time of rank $r"
    grep -qE "^gridlm_rank_resident_memory_bytes\{.*rank=\"$r\".*\} [1-9]" "$tmp/prom4/gridlm.prom" || fail "metrics (grid): no RSS of rank $r"
done
grep -qE '^gridlm_records_total\{.*status="ok".*\} 8$' "$tmp/prom4/gridlm.prom" || fail "metrics (grid): 8 ok records over both replicas"
expect_rc 1 "metrics file in a missing directory" "$gridlm" generate "${common[@]}" --prompts "$tmp/m.jsonl" \
    --output "$tmp/m_missing.jsonl" --metrics-file "$tmp/nodir/x.prom"
expect_stderr "metrics file in a missing directory" "does not exist"

# --- trace and report ----------------------------------------------------------------------------------
expect_rc 3 "trace, pp=2" grid_gen 2 1 2 1 --model "$model" --temperature 0 --prompts "$tmp/m.jsonl" \
    --output "$tmp/t.jsonl" --trace "$tmp/trace.json" --max-seqs 4
python3 - "$tmp/trace.json" <<'EOF' || fail "trace content"
import json, sys
t = json.load(open(sys.argv[1]))
ev = t["traceEvents"]
pids = {e["pid"] for e in ev if e["ph"] == "X"}
assert pids == {0, 1}, pids
names = {(e["pid"], e["name"]) for e in ev if e["ph"] == "X"}
for need in [(0, "forward"), (1, "forward"), (1, "sampling"), (1, "recv wait"), (0, "admission")]:
    assert need in names, (need, sorted(names))
lanes = {e["tid"] for e in ev if e["ph"] == "X" and e["name"] == "forward"}
assert len(lanes) >= 2, lanes  # the pipeline's micro-batches are separate tracks
EOF
expect_rc 0 "report" "$gridlm" report "$tmp/trace.json" --svg "$tmp/trace.svg"
python3 -c "import xml.etree.ElementTree as E,sys; E.parse(sys.argv[1])" "$tmp/trace.svg" || fail "report: the SVG does not parse"
grep -q "records_written" "$tmp/stdout" || fail "report: no job summary on stdout: $(head -5 "$tmp/stdout")"

finish test_operations
