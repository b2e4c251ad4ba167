# Helpers of the end-to-end scripts that signal one rank of a running grid job (sourced after
# lib.sh, with $gridlm set): start the job under mpirun in the background, wait for its first
# line, find a rank's pid by its world rank, wait for the job's end with a bound, check the lines
# on disk and compare outputs as sets of records. Leaves no process behind: the EXIT trap resumes
# (SIGCONT) and kills every rank still running gridlm, then removes $tmp.

job_pid=""
job_ranks=()
job_comm=$(basename "$gridlm" | cut -c1-15) # the kernel keeps 15 characters of the name

job_alive() { kill -0 "$1" 2>/dev/null; }

# A rank may take a moment to die after mpirun; a zombie (not yet reaped) counts as gone.
job_running() { [ -e "/proc/$1" ] && [ "$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null)" != Z ]; }

# The ranks of the running job (children of mpirun that run gridlm), remembered for the cleanup.
job_collect_ranks() {
    local p
    [ -n "$job_pid" ] || return 0
    for p in $(pgrep -P "$job_pid"); do
        [ "$(cat "/proc/$p/comm" 2>/dev/null)" = "$job_comm" ] && job_ranks+=("$p")
    done
}

# Ends the current job and every rank of it, stopped ones included.
job_cleanup() {
    local p
    if [ -n "$job_pid" ] && job_alive "$job_pid"; then
        job_collect_ranks
        for p in "${job_ranks[@]}"; do kill -CONT "$p" 2>/dev/null; done
        kill -TERM "$job_pid" 2>/dev/null
        for _ in $(seq 50); do job_alive "$job_pid" || break; sleep 0.1; done
        kill -KILL "$job_pid" 2>/dev/null
    fi
    [ -n "$job_pid" ] && { wait "$job_pid"; } 2>/dev/null
    for p in "${job_ranks[@]}"; do
        if [ "$(cat "/proc/$p/comm" 2>/dev/null)" = "$job_comm" ]; then
            kill -CONT "$p" 2>/dev/null
            kill -KILL "$p" 2>/dev/null
        fi
    done
    job_pid=""
    job_ranks=()
}
trap 'job_cleanup; rm -rf "$tmp"' EXIT

# job_start RANKS ERRFILE ARGS...: `mpirun -n RANKS gridlm generate --threads 1 -q ARGS` in the
# background; $job_pid is mpirun's pid, stderr goes to ERRFILE.
job_start() {
    local ranks=$1 err=$2
    shift 2
    job_ranks=()
    mpirun -n "$ranks" --oversubscribe "$gridlm" generate --threads 1 -q "$@" >/dev/null 2>"$err" &
    job_pid=$!
}

# job_wait_line OUT: waits (up to 120 s) for the first whole line in OUT while the job runs.
# Returns 1 (after reporting why) when the job ended first or no line came.
job_wait_line() {
    local out=$1
    for _ in $(seq 1200); do
        [ -s "$out" ] && grep -q . "$out" && break
        job_alive "$job_pid" || break
        sleep 0.1
    done
    if ! job_alive "$job_pid"; then
        fail "the job ended before a rank could be signalled"
        return 1
    fi
    [ -s "$out" ] || { fail "no output line after 120 s"; return 1; }
}

# job_rank_pid R: the pid of world rank R of the running job (empty when not found).
job_rank_pid() {
    local p r
    for p in $(pgrep -P "$job_pid"); do
        [ "$(cat "/proc/$p/comm" 2>/dev/null)" = "$job_comm" ] || continue
        r=$(tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | sed -n 's/^OMPI_COMM_WORLD_RANK=//p')
        [ "$r" = "$1" ] && { echo "$p"; return; }
    done
}

# job_wait_end LIMIT_S: waits for mpirun to exit; sets job_rc (124 when it still ran after
# LIMIT_S seconds: the job is then ended) and job_took_s (seconds since job_wait_end was called).
job_wait_end() {
    local limit=$1 t0
    t0=$(date +%s.%N)
    job_collect_ranks
    for _ in $(seq $((limit * 10))); do
        job_alive "$job_pid" || break
        sleep 0.1
    done
    job_took_s=$(awk "BEGIN { printf \"%.1f\", $(date +%s.%N) - $t0 }")
    if job_alive "$job_pid"; then
        job_rc=124
        job_cleanup
        return
    fi
    wait "$job_pid"
    job_rc=$?
    local p
    for p in "${job_ranks[@]}"; do
        for _ in $(seq 50); do job_running "$p" || break; sleep 0.1; done
        job_running "$p" && fail "rank pid $p still runs 5 s after mpirun exited"
    done
    job_pid=""
    job_ranks=()
}

# signal_case NAME SIGNAL VICTIM LIMIT_S OUT ERR: once the job started by job_start has its first
# line in OUT, sends SIGNAL to world rank VICTIM and waits up to LIMIT_S for the job to end (see
# job_wait_end). Sets $victim_pid and $lines_before. Returns 1 (after reporting) when no line came,
# no rank VICTIM was found or the job still ran after LIMIT_S.
signal_case() {
    local name=$1 sig=$2 victim=$3 limit=$4 out=$5 err=$6
    job_wait_line "$out" || return 1
    victim_pid=$(job_rank_pid "$victim")
    [ -n "$victim_pid" ] || { fail "$name: no rank of the job has OMPI_COMM_WORLD_RANK=$victim"; return 1; }
    lines_before=$(wc -l <"$out")
    kill -"$sig" "$victim_pid"
    job_wait_end "$limit"
    echo "$name: rank $victim (pid $victim_pid) got SIG$sig with $lines_before line(s) on disk;" \
        "mpirun exited $job_rc after $job_took_s s"
    if [ "$job_rc" = 124 ]; then
        fail "$name: the job still ran $limit s after rank $victim got SIG$sig: $(tail -c 400 "$err")"
        return 1
    fi
}

# resumed_case NAME RANKS REF OUT N ARGS...: after signal_case: the lines on disk are whole and
# fewer than N, and `--resume` on RANKS ranks completes OUT with exactly the records of REF.
resumed_case() {
    local name=$1 ranks=$2 ref=$3 out=$4 n=$5
    shift 5
    whole_lines "$name" "$out"
    [ "$lines_before" -lt "$n" ] || fail "$name: all $n records were written: the signal came too late"
    expect_rc 0 "$name: --resume" timeout 120 mpirun -n "$ranks" --oversubscribe "$gridlm" generate --threads 1 -q \
        "$@" --output "$out" --resume
    same_records "$name" "$ref" "$out"
    [ "$(wc -l <"$out")" = "$n" ] || fail "$name: $(wc -l <"$out") lines after --resume, expected $n"
}

# whole_lines WHAT OUT: every line of OUT is a whole JSON record and the file ends with a newline.
whole_lines() {
    local what=$1 out=$2 bad
    bad=$(jq -R -c '(fromjson? // null) | if type == "object" and (.id | type) == "string" then empty else 1 end' \
        "$out" | wc -l)
    [ "$bad" = 0 ] || fail "$what: $bad line(s) of $out are not whole JSON records"
    [ -z "$(tail -c 1 "$out")" ] || fail "$what: $out ends in the middle of a line"
}

# same_records WHAT REF OUT: the two outputs hold the same records (compared sorted by id).
same_records() {
    if ! cmp -s <(jq -c -S . "$2" | sort) <(jq -c -S . "$3" | sort); then
        fail "$1: the records differ from the uninterrupted run"
        diff <(jq -c -S . "$2" | sort | cut -c1-160) <(jq -c -S . "$3" | sort | cut -c1-160) | head -6 | sed 's/^/    /'
    fi
}
