# The hung-rank watchdog (--watchdog-s) on a dp=2 pp=2 job of the tiny Qwen2 (4 ranks: rank 0 the
# watchdog's monitor and replica 0's first stage, rank 1 the writer, rank 3 replica 1's last stage).
# A healthy job with --watchdog-s 1 runs to the end without the watchdog firing; then, for each of
# rank 3, rank 1 and rank 0, a job with --watchdog-s 5 has that rank SIGSTOPped once its first line
# is on disk: the job must exit 7 within 5 + 20 s with a message naming the stopped rank and its
# pid, leave only whole JSON lines, and --resume must complete it with the records of the healthy run.
# Usage: test_watchdog.sh GRIDLM MODELS_DIR
set -u
gridlm=$1
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/grid_signals.sh"
src=$(cd "$(dirname "$0")/../reference/golden" && pwd)/tiny-qwen2-hf
model=$tmp/tiny.h5
expect_rc 0 "convert" "$gridlm" convert --from "$src" --to "$model"

n=192
for i in $(seq $n); do
    echo "{\"id\": \"w$i\", \"prompt\": \"watch $i\", \"max_tokens\": 400, \"ignore_eos\": true}"
done >"$tmp/p.jsonl"
# --max-seqs 2: each replica runs its 96 records two at a time, so lines come one by one.
args=(--model "$model" --prompts "$tmp/p.jsonl" --temperature 0 --max-model-len 420 --max-seqs 2 --dp 2 --pp 2)

# --- a healthy job: steps far shorter than the limit (ms), the job twice as long as it or more ------
t0=$(date +%s.%N)
expect_rc 0 "healthy job, --watchdog-s 1" timeout 120 mpirun -n 4 --oversubscribe "$gridlm" generate --threads 1 \
    -q "${args[@]}" --watchdog-s 1 --output "$tmp/ref.jsonl"
took=$(awk "BEGIN { printf \"%.1f\", $(date +%s.%N) - $t0 }")
echo "healthy job: $took s"
grep -q "watchdog" "$tmp/stderr" && fail "the watchdog fired on a healthy job: $(grep watchdog "$tmp/stderr" | head -c 400)"
awk "BEGIN { exit !($took > 2) }" || fail "the healthy job took $took s: too short to show the watchdog stays quiet"
[ "$(jq -s length "$tmp/ref.jsonl")" = $n ] || fail "healthy job: expected $n records"

# stop_case NAME RANK: SIGSTOP world rank RANK after the first line; the watchdog must end the job.
stop_case() {
    local name=$1 victim=$2 out=$tmp/$1.jsonl err=$tmp/$1.err
    job_start 4 "$err" "${args[@]}" --watchdog-s 5 --output "$out"
    signal_case "$name" STOP "$victim" 25 "$out" "$err" || return
    [ "$job_rc" = 7 ] || fail "$name: exit $job_rc, expected 7 (the watchdog's)"
    grep -q "watchdog: rank $victim (.*pid $victim_pid).*sent no heartbeat" "$err" ||
        fail "$name: no watchdog line names rank $victim (pid $victim_pid): $(grep -v '^ *$' "$err" | tail -c 600)"
    grep -m1 "watchdog: rank" "$err" | sed 's/^/    /' | cut -c1-300
    resumed_case "$name" 4 "$tmp/ref.jsonl" "$out" $n "${args[@]}"
}

stop_case last_stage 3 # replica 1's last stage: the monitor (rank 0) hears nothing from it
stop_case writer 1     # replica 0's last stage, the rank that writes the file
stop_case monitor 0    # the monitor itself: every other rank stops hearing from it
# Below a second the heartbeat period (a quarter of it) would raise false alarms on a busy machine.
for bad in 0.5 -1 nan; do
    expect_rc 2 "--watchdog-s $bad" "$gridlm" generate --model "$model" --prompts /dev/null --output "$tmp/u.jsonl" \
        --watchdog-s "$bad"
    expect_stderr "--watchdog-s $bad" "must be 0 (off) or a number of seconds from 1 to 1e6"
done
expect_rc 2 "score --watchdog-s 0.5" "$gridlm" score --model "$model" --text /dev/null --watchdog-s 0.5
expect_stderr "score --watchdog-s 0.5" "from 1 to 1e6"
finish test_watchdog
