# End-to-end test of a rank dying mid-job: runs `mpirun -n 2 gridlm generate --dp 2` on 40 prompts,
# SIGKILLs one rank once the first completion is on disk, and checks that mpirun ends the job
# with a non-zero status within 30 s, names the dead rank, leaves no rank behind, and that every
# line already written is a whole JSON record.
# Usage: test_killed_rank.sh GRIDLM MODELS_DIR
# Environment: GRIDLM_KILLED_RANK_TASKS (default 2): ranks of the job, all data-parallel; the last
# rank is killed. With 1 the job runs without grid options.
set -u
gridlm=$1
models=$2
. "$(dirname "$0")/lib.sh"

use_smollm2 "$models"
tasks=${GRIDLM_KILLED_RANK_TASKS:-2}
victim=$((tasks - 1))
grid=()
[ "$tasks" = 1 ] || grid=(--dp "$tasks")
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_WAIT_POLICY=passive

for i in $(seq 40); do echo "Tell me a short story about the number $i."; done >"$tmp/prompts.txt"
out=$tmp/out.jsonl

# --ignore-eos: every record takes all 64 tokens, so with batches of 4 the first line lands
# well before the job could finish.
mpirun -n "$tasks" --oversubscribe "$gridlm" generate --model "$model" --prompts "$tmp/prompts.txt" \
    --output "$out" "${grid[@]}" --max-tokens 64 --ignore-eos --temperature 0 --batch-size 4 --threads 1 -q \
    >"$tmp/mpirun.out" 2>"$tmp/mpirun.err" &
mpirun_pid=$!
rank_pids=()
comm=$(basename "$gridlm" | cut -c1-15)  # the kernel keeps 15 characters of the name
alive() { kill -0 "$1" 2>/dev/null; }
# Whatever happens, leave no process of the job behind: mpirun ends its ranks on SIGTERM; a rank
# that outlives it is killed by pid (only while it still runs gridlm).
cleanup() {
    local p
    if alive "$mpirun_pid"; then
        for p in $(pgrep -P "$mpirun_pid"); do rank_pids+=("$p"); done
        kill -TERM "$mpirun_pid" 2>/dev/null
        for _ in $(seq 50); do alive "$mpirun_pid" || break; sleep 0.1; done
        kill -KILL "$mpirun_pid" 2>/dev/null
    fi
    { wait "$mpirun_pid"; } 2>/dev/null
    for p in "${rank_pids[@]}"; do
        [ "$(cat "/proc/$p/comm" 2>/dev/null)" = "$comm" ] && kill -KILL "$p" 2>/dev/null
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
show_stderr() { sed 's/^/    /' "$tmp/mpirun.err" | tail -12; }

# --- wait for the first record on disk ------------------------------------------------------------
for _ in $(seq 600); do
    [ -s "$out" ] && grep -q . "$out" && break
    alive "$mpirun_pid" || break
    sleep 0.2
done
if ! alive "$mpirun_pid"; then
    wait "$mpirun_pid"
    echo "FAIL: the job ended (exit $?) before the rank could be killed"
    show_stderr
    exit 1
fi
[ -s "$out" ] || { echo "FAIL: no output line after 120 s"; show_stderr; exit 1; }

# --- find the ranks (children of mpirun) and kill the last one -------------------------------------
victim_pid=""
for p in $(pgrep -P "$mpirun_pid"); do
    [ "$(cat "/proc/$p/comm" 2>/dev/null)" = "$comm" ] || continue
    rank_pids+=("$p")
    r=$(tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | sed -n 's/^OMPI_COMM_WORLD_RANK=//p')
    [ "$r" = "$victim" ] && victim_pid=$p
done
[ "${#rank_pids[@]}" = "$tasks" ] || fail "found ${#rank_pids[@]} gridlm ranks under mpirun, expected $tasks"
[ -n "$victim_pid" ] || { echo "FAIL: no child of mpirun has OMPI_COMM_WORLD_RANK=$victim"; exit 1; }
lines_before=$(wc -l <"$out")
kill -KILL "$victim_pid"
t0=$(date +%s.%N)
echo "killed rank $victim (pid $victim_pid) with $lines_before line(s) written"

# --- mpirun must notice and end the job -----------------------------------------------------------
for _ in $(seq 300); do
    alive "$mpirun_pid" || break
    sleep 0.1
done
if alive "$mpirun_pid"; then
    fail "mpirun still runs 30 s after rank $victim was killed (the job hangs)"
    show_stderr
    exit 1
fi
wait "$mpirun_pid"
rc=$?
echo "mpirun exited with $rc after $(awk "BEGIN { printf \"%.1f\", $(date +%s.%N) - $t0 }") s"
[ "$rc" != 0 ] || fail "mpirun exited 0 although rank $victim was killed"
# Open MPI 4.1: "mpirun noticed that process rank 1 with PID 0 on node vm exited on signal 9 (Killed)."
grep -q "process rank $victim .*signal 9" "$tmp/mpirun.err" ||
    fail "mpirun's stderr does not name rank $victim and signal 9: $(tail -c 600 "$tmp/mpirun.err")"
# A rank may take a moment to die after mpirun; a zombie (not yet reaped) counts as gone.
running() { [ -e "/proc/$1" ] && [ "$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null)" != Z ]; }
for p in "${rank_pids[@]}"; do
    for _ in $(seq 50); do running "$p" || break; sleep 0.1; done
    running "$p" && fail "rank pid $p still runs 5 s after mpirun exited"
done

# --- what is on disk is whole records --------------------------------------------------------------
lines=$(wc -l <"$out")
[ "$lines" -ge 1 ] || fail "the output file lost its lines"
[ "$lines" -lt 40 ] || fail "all 40 records finished: the kill came too late to test anything"
bad=0
n=0
while IFS= read -r line || [ -n "$line" ]; do
    n=$((n + 1))
    if ! jq -e 'type == "object" and (.id | type == "string") and (.text | type == "string")' \
        <<<"$line" >/dev/null 2>&1; then
        bad=$((bad + 1))
        echo "    line $n is not a whole record: $(head -c 200 <<<"$line")"
    fi
done <"$out"
[ "$bad" = 0 ] || fail "$bad of $n output line(s) are not whole JSON records"
[ -z "$(tail -c 1 "$out")" ] || fail "the output file ends in the middle of a line"
echo "$n whole record(s) on disk"

finish test_killed_rank
