# Resumable jobs: a job killed at random points (SIGTERM and SIGKILL, several times, on one rank
# and on a grid) and started again with --resume ends with the same file as an uninterrupted run:
# every record exactly once, in input order, every line whole JSON. Also: an existing output is
# never overwritten, a changed input or option is refused by name, --retry-errors.
# Usage: test_resume.sh GRIDLM MODELS_DIR
set -u
gridlm=$1
models=$2
. "$(dirname "$0")/lib.sh"
use_smollm2 "$models"
RANDOM=7  # the kill points are random but the same on every run of the test

for i in $(seq 20); do
    echo "{\"id\": \"r$i\", \"prompt\": \"Fact number $i about the moon:\", \"max_tokens\": $((8 + (i * 7) % 33))}"
done >"$tmp/p.jsonl"
echo '{"id": "bad", "prompt": "x", "top_k": -5}' >>"$tmp/p.jsonl"
common=(--model "$model" --order input -q --max-seqs 2)
args=("${common[@]}" --prompts "$tmp/p.jsonl" --temperature 0)
expect_rc 3 "uninterrupted" "$gridlm" generate "${args[@]}" --output "$tmp/ref.jsonl" --threads 2
[ "$(wc -l <"$tmp/ref.jsonl")" = 21 ] || fail "uninterrupted: expected 21 lines"

# --- refusals -------------------------------------------------------------------------------------
expect_rc 1 "existing output without --resume" "$gridlm" generate "${args[@]}" --output "$tmp/ref.jsonl"
expect_stderr "existing output" "already exists; --resume continues"
cmp -s "$tmp/ref.jsonl" <(head -21 "$tmp/ref.jsonl") || fail "the refused run touched the output"
expect_rc 1 "--resume with another temperature" "$gridlm" generate "${common[@]}" --prompts "$tmp/p.jsonl" \
    --output "$tmp/ref.jsonl" --resume --temperature 0.5
expect_stderr "changed option" "option temperature (0 -> 0.5) changed"
cp "$tmp/p.jsonl" "$tmp/p2.jsonl"
echo '{"id": "extra", "prompt": "y"}' >>"$tmp/p2.jsonl"
expect_rc 1 "--resume with another input" "$gridlm" generate "${common[@]}" --prompts "$tmp/p2.jsonl" \
    --temperature 0 --output "$tmp/ref.jsonl" --resume
expect_stderr "changed input" "the input file changed"
expect_rc 2 "--retry-errors alone" "$gridlm" generate "${args[@]}" --output "$tmp/x.jsonl" --retry-errors

# wait_for_progress PID JOURNAL LINES: waits (up to 60 s) until JOURNAL has LINES lines while PID
# runs; fails when PID ends first. Kills keyed to progress, not to a clock, interrupt the job on a
# fast machine and a slow one alike.
wait_for_progress() {
    local pid=$1 journal=$2 want=$3 i
    for i in $(seq 1200); do
        kill -0 "$pid" 2>/dev/null || return 1
        [ -f "$journal" ] && [ "$(wc -l <"$journal")" -ge "$want" ] && return 0
        sleep 0.05
    done
    return 1
}

# resume_until_done NAME OUT KILLER: runs the job with --resume, interrupting it with KILLER
# (a function given the job's pid and the attempt number) until a run finishes.
resume_until_done() {
    local name=$1 out=$2 killer=$3 attempt rc interrupted=0
    shift 3
    for attempt in $(seq 12); do
        local done_before=0
        [ -f "$out.journal" ] && done_before=$(wc -l <"$out.journal")
        "$@" --output "$out" --resume 2>>"$tmp/$name.err" &
        local pid=$!
        if [ "$attempt" -le 4 ] && wait_for_progress "$pid" "$out.journal" "$((done_before + 1))"; then
            # a random moment after the first new record: sometimes mid-record, sometimes mid-write
            sleep "$(awk -v r=$RANDOM 'BEGIN { printf "%.2f", (r % 40) / 100 }')"
            $killer "$pid" "$attempt"
        fi
        { wait "$pid"; } 2>/dev/null
        rc=$?
        case $rc in
            0 | 3) break ;;
            *) interrupted=$((interrupted + 1)) ;;
        esac
    done
    [ "$rc" = 3 ] || fail "$name: the last run exited $rc, expected 3 (one bad record)"
    [ "$interrupted" -ge 2 ] || fail "$name: only $interrupted runs were interrupted; the kills came too late"
    echo "$name: finished after $interrupted interrupted runs"
    same_output "$name" "$tmp/ref.jsonl" "$out"
    jq -e -s 'length == 21' "$out" >/dev/null 2>&1 || fail "$name: not 21 whole JSON lines"
    [ "$(wc -l <"$(dirname "$out")/$(basename "$out").journal")" = 21 ] || fail "$name: journal does not list 21 records"
}

# --- one rank: SIGTERM and SIGKILL in turn -----------------------------------------------------------
kill_one() {  # odd attempts SIGTERM (clean stop, exit 4), even ones SIGKILL
    if [ $(($2 % 2)) = 1 ]; then kill -TERM "$1"; else kill -KILL "$1"; fi
}
resume_until_done one_rank "$tmp/one.jsonl" kill_one "$gridlm" generate "${args[@]}" --threads 2
grep -q "stopped by a signal" "$tmp/one_rank.err" || fail "one rank: no run reported a clean stop on SIGTERM"

# --- a grid (dp=2, then pp=2 on resume: outputs do not depend on the grid) -----------------------------
kill_grid() {  # SIGTERM to mpirun, or SIGKILL to the writer rank (the last one)
    if [ $(($2 % 2)) = 1 ]; then
        kill -TERM "$1"
    else
        local p
        for p in $(pgrep -P "$1"); do
            if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx 'OMPI_COMM_WORLD_RANK=1'; then kill -KILL "$p"; fi
        done
    fi
}
# exec: the background job's pid is mpirun's, so the kills reach it and its ranks.
grid_job() { exec mpirun -n 2 --oversubscribe "$gridlm" generate "${args[@]}" --threads 1 "$@"; }
resume_until_done "grid" "$tmp/grid.jsonl" kill_grid grid_job --pp 2

# --- --retry-errors: the error line is removed and its record runs again --------------------------------
expect_rc 3 "--retry-errors" "$gridlm" generate "${args[@]}" --output "$tmp/one.jsonl" --resume --retry-errors
[ "$(jq -s 'length' "$tmp/one.jsonl")" = 21 ] || fail "--retry-errors: expected 21 lines"
[ "$(jq -s 'map(select(.error)) | length' "$tmp/one.jsonl")" = 1 ] || fail "--retry-errors: expected one error line"
cmp -s <(sort "$tmp/ref.jsonl") <(sort "$tmp/one.jsonl") || fail "--retry-errors: lines differ from the reference"
finish test_resume
