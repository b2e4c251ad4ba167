# What a job's output can never be: written by two jobs at once, or a line whose JSON object
# repeats a key. A second job on an output in use (a --resume started while the first job runs,
# the same command run twice, or on a grid) is refused naming the holder's host and pid and leaves
# the output alone; the lock dies with its holder (SIGKILL included), so --resume then completes
# the job. Byte-level tokens that are parts of UTF-8 characters keep distinct keys in the legacy
# completions' top_logprobs (checked with Python's json module, which would keep one of equal keys).
# Usage: test_output_guard.sh GRIDLM MODELS_DIR
set -u
gridlm=$1
models=$2
. "$(dirname "$0")/lib.sh"
use_smollm2 "$models"

for i in $(seq 16); do echo "{\"id\": \"s$i\", \"prompt\": \"Write a short story about the number $i.\"}"; done \
    >"$tmp/p.jsonl"
out=$tmp/out.jsonl
args=(generate --model "$model" --prompts "$tmp/p.jsonl" --output "$out" --max-tokens 48 --ignore-eos
    --temperature 0 --batch-size 2 --threads 1 -q)

# --- job A runs; B, C and D try the same output --------------------------------------------------
"$gridlm" "${args[@]}" 2>"$tmp/a.err" &
a_pid=$!
trap 'kill -KILL $a_pid 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 3000); do
    [ -s "$out" ] && break
    kill -0 "$a_pid" 2>/dev/null || break
    sleep 0.1
done
[ -s "$out" ] || { echo "FAIL: job A wrote no line in 300 s"; cat "$tmp/a.err"; exit 1; }
host=$(hostname)
expect_rc 1 "--resume while job A runs" timeout 60 "$gridlm" "${args[@]}" --resume
expect_stderr "--resume while A runs" "is in use by another gridlm job"
expect_stderr "--resume names the holder's pid" "pid=$a_pid"
expect_stderr "--resume names the holder's host" "host=$host"
expect_rc 1 "the same command again" timeout 60 "$gridlm" "${args[@]}"
expect_stderr "second fresh job" "pid=$a_pid"
expect_rc 1 "a second job on a dp=2 grid" timeout 120 mpirun -n 2 --oversubscribe "$gridlm" "${args[@]}" --dp 2 --resume
expect_stderr "grid job" "pid=$a_pid"
kill -0 "$a_pid" 2>/dev/null || fail "job A ended while the others were refused (the test needs it running)"
lines=$(wc -l <"$out")
jq -c . "$out" >/dev/null 2>&1 || fail "the output holds a line that is not JSON while A runs"

# --- A is killed: its lock goes with it, --resume completes the job ---------------------------------
kill -KILL "$a_pid"
wait "$a_pid" 2>/dev/null
[ -f "$out.lock" ] || fail "a SIGKILLed holder cannot remove its lock file; expected it left behind"
expect_rc 0 "--resume after A was killed" timeout 300 "$gridlm" "${args[@]}" --resume
[ "$(jq -r .id "$out" | sort | uniq | wc -l)" = 16 ] || fail "resume: expected 16 distinct records"
[ "$(wc -l <"$out")" = 16 ] || fail "resume: expected 16 lines, got $(wc -l <"$out") (A had written $lines)"
[ -e "$out.lock" ] && fail "the lock file outlived the job that finished"

# --- no repeated keys, partial characters distinct ---------------------------------------------------
cat >"$tmp/batch.jsonl" <<'JSONL'
{"custom_id": "zh", "method": "POST", "url": "/v1/completions", "body": {"model": "m", "prompt": "中文的历史非常悠久，汉字", "max_tokens": 12, "logprobs": 20, "temperature": 0}}
{"custom_id": "emoji", "method": "POST", "url": "/v1/completions", "body": {"model": "m", "prompt": "Emoji: 😀😃😄😁🤔🙃", "max_tokens": 12, "logprobs": 20, "temperature": 0}}
{"custom_id": "chat", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "m", "messages": [{"role": "user", "content": "用中文写一句话"}], "max_tokens": 12, "logprobs": true, "top_logprobs": 20, "temperature": 0}}
JSONL
expect_rc 0 "logprobs of byte tokens" "$gridlm" generate --model "$model" --prompts "$tmp/batch.jsonl" \
    --output "$tmp/lp.jsonl" --threads 2 -q
python3 - "$tmp/lp.jsonl" <<'PY' || fail "an output line repeats a key or lost a top_logprobs entry"
import json, sys
bad = 0
def pairs(kv):
    global bad
    keys = [k for k, _ in kv]
    if len(keys) != len(set(keys)):
        bad += 1
        print("    repeated key in", keys)
    return dict(kv)
partial = 0
for line in open(sys.argv[1], encoding="utf-8"):
    rec = json.loads(line, object_pairs_hook=pairs)
    lp = rec["response"]["body"]["choices"][0]["logprobs"]
    if "tokens" in lp:
        for top in lp["top_logprobs"]:
            if len(top) != 20:
                bad += 1
                print("    top_logprobs with", len(top), "entries, expected 20")
            partial += sum(k.startswith("bytes:") for k in top)
if partial == 0:
    bad += 1
    print("    no partial-character token among the alternatives: the check saw nothing to keep apart")
sys.exit(1 if bad else 0)
PY
finish test_output_guard
