# --log-format json: every line gridlm writes on stderr is one JSON object (time, level, event,
# message first; rank, host, replica and stage once known) for convert, score (one rank and a
# two-rank grid), usage and fatal errors; text stays the default; a bad value exits 2 naming it.
# Usage: test_log_format.sh GRIDLM MODELS_DIR
set -u
gridlm=$1
models=$2
tiny_hf=$(cd "$(dirname "$0")/../reference/golden" && pwd)/tiny-qwen2-hf
gpl=/usr/share/common-licenses/GPL-3
. "$(dirname "$0")/lib.sh"
require_files "$gpl" "$tiny_hf/config.json"

# json_lines WHAT KEYS EVENTS...: every stderr line of the last command parses as a JSON object
# whose keys start time, level, [rank, host, replica, stage,] event, message, contains each key
# of KEYS (comma-separated, may be empty) and, taken together, the lines name every event of EVENTS.
json_lines() {
    local what=$1 keys=$2
    shift 2
    local out
    out=$(python3 - "$tmp/stderr" "$keys" "$@" <<'EOF' 2>&1
import json, sys
path, keys, events = sys.argv[1], [k for k in sys.argv[2].split(",") if k], sys.argv[3:]
lines = open(path, encoding="utf-8").read().split("\n")
if lines[-1] != "":
    sys.exit("the last line has no newline")
lines = lines[:-1]
if not lines:
    sys.exit("no line on stderr")
seen = set()
for i, line in enumerate(lines, 1):
    try:
        j = json.loads(line)
    except ValueError as e:
        sys.exit(f"line {i} is not JSON ({e}): {line[:200]!r}")
    if not isinstance(j, dict):
        sys.exit(f"line {i} is not an object: {line[:200]!r}")
    k = list(j)
    head = ["time", "level"] + [x for x in ("rank", "host", "replica", "stage") if x in j] + ["event", "message"]
    if k[: len(head)] != head:
        sys.exit(f"line {i}: keys {k[:8]}, expected them to start {head}")
    if j["level"] not in ("debug", "info", "warning", "error"):
        sys.exit(f"line {i}: level {j['level']!r}")
    if not (len(j["time"]) == 24 and j["time"].endswith("Z") and j["time"][10] == "T"):
        sys.exit(f"line {i}: time {j['time']!r}")
    for key in keys:
        if key not in j:
            sys.exit(f"line {i} has no {key}: {line[:200]!r}")
    seen.add(j["event"])
missing = [e for e in events if e not in seen]
if missing:
    sys.exit(f"no line with event {missing} (events seen: {sorted(seen)})")
EOF
    ) || fail "$what: $out"
}

# --- convert: a start line and progress events; text is unchanged --------------------------------
expect_rc 0 "convert, json" "$gridlm" convert --from "$tiny_hf" --to "$tmp/tiny.h5" --log-format json
json_lines "convert, json" "" start progress
grep -q '"event":"progress".*"tensors_done":' "$tmp/stderr" || fail "convert progress has no tensors_done field"
grep -q '^converted ' "$tmp/stdout" || fail "convert's summary left stdout"
expect_rc 0 "convert, text" "$gridlm" convert --from "$tiny_hf" --to "$tmp/tiny2.h5"
head -n 1 "$tmp/stderr" | grep -q '^converting .*tiny-qwen2-hf' || fail "text convert: $(head -c 300 "$tmp/stderr")"
grep -q '^{' "$tmp/stderr" && fail "text convert wrote JSON on stderr"

# --- score: start, windows, summary; a warning (--ctx beyond the tiny model's 4096) ---------------
score() { "$gridlm" score --model "$tmp/tiny.h5" --threads 1 "$@"; }
head -c 20000 "$gpl" >"$tmp/text.txt"
expect_rc 0 "score, json" score --text "$tmp/text.txt" --ctx 64 --log-format json
json_lines "score, json" "rank,host,replica,stage" start window summary
grep -q '"event":"summary".*"perplexity":' "$tmp/stderr" || fail "score summary has no perplexity field"
tail -n 1 "$tmp/stdout" | jq -e '.perplexity > 0' >/dev/null || fail "score's result line is not on stdout"
expect_rc 0 "score, text" score --text "$tmp/text.txt" --ctx 64
grep -q '^gridlm score: perplexity ' "$tmp/stderr" || fail "text score: $(tail -c 300 "$tmp/stderr")"
grep -q '^\[window 1/' "$tmp/stderr" || fail "text score has no [window 1/...] line"
expect_rc 0 "score, ctx beyond training, json" score --text "$tmp/text.txt" --ctx 4100 --log-format json
json_lines "score, ctx beyond training, json" "" ctx_beyond_training
grep -q '"level":"warning".*"event":"ctx_beyond_training".*"n_ctx_train":4096' "$tmp/stderr" ||
    fail "no warning line for --ctx 4100: $(head -c 600 "$tmp/stderr")"

# --- errors: fatal, usage (the parse's own error too), bad value --------------------------------
expect_rc 1 "missing text, json" score --text "$tmp/none.txt" --log-format json
json_lines "missing text, json" "command,exit_code" fatal
grep -q "cannot open text file $tmp/none.txt" "$tmp/stderr" || fail "fatal line does not name the file"
expect_rc 2 "unknown option, json" score --log-format json --no-such-option
json_lines "unknown option, json" "hint" usage_error
expect_rc 2 "unknown option, text" score --no-such-option
grep -q '^(see gridlm score --help)$' "$tmp/stderr" || fail "text usage error lost its hint line"
expect_rc 2 "bad --log-format" score --text "$tmp/text.txt" --log-format xml
expect_stderr "bad --log-format" "--log-format 'xml' is not text or json"
expect_rc 2 "bad --log-format, inspect" "$gridlm" inspect --log-format=yaml "$tmp/tiny.h5"
expect_stderr "bad --log-format, inspect" "'yaml'"
expect_rc 1 "inspect missing file, json" "$gridlm" inspect --log-format json "$tmp/none.h5"
json_lines "inspect missing file, json" "" fatal

# --- two ranks: each failing rank's line names its rank -----------------------------------------
expect_rc 1 "grid error, json" timeout 120 mpirun -n 2 --oversubscribe "$gridlm" score --model "$tmp/tiny.h5" \
    --threads 1 --text "$tmp/none.txt" --dp 2 --log-format json
# mpirun adds its own text about the exit status: gridlm's lines are those starting with "{".
grep -q '^gridlm' "$tmp/stderr" && fail "grid error: a text line from gridlm: $(grep -m1 '^gridlm' "$tmp/stderr")"
grep '^{' "$tmp/stderr" >"$tmp/stderr.gridlm"
mv "$tmp/stderr.gridlm" "$tmp/stderr"
json_lines "grid error, json" "rank,host" fatal
[ "$(grep -o '"rank":[0-9]*' "$tmp/stderr" | sort -u | wc -l)" = 2 ] ||
    fail "grid error: expected lines from ranks 0 and 1: $(head -c 600 "$tmp/stderr")"

finish test_log_format
