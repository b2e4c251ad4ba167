# End-to-end test of the Slurm launch path: starts a real single-node Slurm (launch/slurm_local.sh),
# submits launch/gridlm.sbatch with `sbatch -O -n 4` (dp=2 pp=2 tp=1) and `sbatch -O -n 6`
# (dp=2 pp=1 tp=3; SmolLM2's 9 heads allow tp 1, 3 or 9) on a few prompts with greedy decoding;
# the ranks start under `srun --mpi=pmix`. Checks one JSON line per prompt and the same
# completions as a single-rank run, and that the batch script refuses a task count the grid does
# not divide. Usage: test_slurm.sh GRIDLM MODELS_DIR
# Environment: GRIDLM_SLURM_GRIDS, the jobs as TASKS:DP:PP:TP words (default "4:2:2:1 6:2:1:3");
# a bare TASKS leaves the grid to gridlm.sbatch's defaults and to GRIDLM_DP / GRIDLM_PP /
# GRIDLM_TP. GRIDLM_SLURM_TASKS=N is short for GRIDLM_SLURM_GRIDS=N (N=1: one rank, no grid options).
# Needs root or passwordless sudo (the Slurm daemons run as root); skipped, with exit status 0,
# only when neither is available. Installs slurm-wlm and munge with apt-get when missing.
set -u
gridlm=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
models=$2
repo=$(cd "$(dirname "$0")/../.." && pwd)
. "$(dirname "$0")/lib.sh"

sudo_cmd=""
if [ "$(id -u)" != 0 ]; then
    if ! sudo -n true 2>/dev/null; then
        echo "skipped: test_slurm needs root or passwordless sudo to run the Slurm daemons"
        exit 0
    fi
    sudo_cmd="sudo -n"
fi

model=$models/SmolLM2-135M-Instruct.f32.h5
if [ ! -f "$model" ]; then
    require_files "$models/SmolLM2-135M-Instruct.Q4_1.gguf"
    model=$tmp/smollm2.f32.h5
    "$gridlm" convert --from "$models/SmolLM2-135M-Instruct.Q4_1.gguf" --to "$model" --dtype f32 >/dev/null ||
        { echo "FAIL: gridlm convert"; exit 1; }
fi

if [ -n "${GRIDLM_SLURM_TASKS:-}" ]; then
    grids=$GRIDLM_SLURM_TASKS
else
    grids=${GRIDLM_SLURM_GRIDS:-"4:2:2:1 6:2:1:3"}
fi
read -r -a grids <<<"$grids"
export GRIDLM_BIN=$gridlm OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

cat >"$tmp/prompts.jsonl" <<'EOF'
{"id": "p1", "prompt": "The capital of France is"}
{"id": "p2", "messages": [{"role": "user", "content": "Name three colours."}]}
{"id": "p3", "prompt": "One, two, three,"}
{"id": "p4", "prompt": "def fibonacci(n):"}
EOF
n_prompts=4
gen_opts=(--temperature 0 --max-tokens 16 -q)

# --- the single-rank reference ------------------------------------------------------------------
expect_rc 0 "single-rank reference run" "$gridlm" generate --model "$model" --prompts "$tmp/prompts.jsonl" \
    --output "$tmp/ref.jsonl" --threads 2 "${gen_opts[@]}"

# --- a local Slurm, stopped (its jobs cancelled) on exit ----------------------------------------
# Under /tmp whatever TMPDIR is: munged runs as the munge user and must reach its directory.
slurm_dir=$(mktemp -d /tmp/gridlm-slurm.XXXXXX)
chmod 0711 "$slurm_dir"
trap 'bash "$repo/launch/slurm_local.sh" stop "$slurm_dir" >/dev/null 2>&1; $sudo_cmd rm -rf "$slurm_dir" "$tmp"' EXIT
if ! bash "$repo/launch/slurm_local.sh" start "$slurm_dir" >"$tmp/slurm_start.out" 2>"$tmp/slurm_start.err"; then
    echo "FAIL: launch/slurm_local.sh start"
    sed 's/^/    /' "$tmp/slurm_start.err" | tail -20
    exit 1
fi
. "$slurm_dir/env"
sinfo -h -o '%P %a %D %t %c' | sed 's/^/slurm: /'
srun --mpi=list 2>&1 | grep -qw pmix || echo "note: this Slurm has no pmix plugin; gridlm.sbatch falls back to mpirun"

# submit JOBNAME TASKS ARGS...: sbatch gridlm.sbatch on TASKS tasks and wait for the job, 5 minutes
# at most (polling scontrol: `sbatch --wait` looks only every 10 s). Sets $rc to the job's exit
# status; its log is $tmp/JOBNAME.log.
submit() {
    local name=$1 tasks=$2 jobid state=""
    shift 2
    rc=""
    if ! jobid=$(sbatch --parsable -O -n "$tasks" -c 1 --job-name="$name" --chdir="$tmp" \
        --output="$tmp/$name.log" "$repo/launch/gridlm.sbatch" "$@" 2>"$tmp/$name.sbatch"); then
        fail "$name: sbatch refused the job: $(cat "$tmp/$name.sbatch")"
        return
    fi
    local deadline=$((SECONDS + 300))
    while [ $SECONDS -lt $deadline ]; do
        state=$(scontrol -o show job "$jobid" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | cut -d= -f2)
        case $state in PENDING | CONFIGURING | RUNNING | COMPLETING) sleep 0.3 ;; *) break ;; esac
    done
    if [ "$SECONDS" -ge "$deadline" ]; then
        scancel "$jobid"
        fail "$name: job $jobid did not finish within 300 s"
        return
    fi
    rc=$(scontrol -o show job "$jobid" 2>/dev/null | grep -o ' ExitCode=[0-9]*' | cut -d= -f2)
    [ -n "$rc" ] || fail "$name: job $jobid ended ($state) without an exit code"
}

# --- a grid the task count does not divide is refused before anything starts ------------------
tasks=${grids[0]%%:*}
GRIDLM_PP=$((tasks + 1)) GRIDLM_TP=1 GRIDLM_DP="" submit bad_grid "$tasks" --model "$model" \
    --prompts "$tmp/prompts.jsonl" --output "$tmp/bad.jsonl"
[ "$rc" = 2 ] || fail "bad grid: job exit $rc, expected 2"
grep -q "cannot form a grid" "$tmp/bad_grid.log" 2>/dev/null ||
    fail "bad grid: log does not explain: $(head -c 400 "$tmp/bad_grid.log" 2>/dev/null)"
[ ! -e "$tmp/bad.jsonl" ] || fail "bad grid: gridlm ran anyway"

# --- the grid jobs -------------------------------------------------------------------------------
# Greedy decoding: the same tokens as one rank, so the same text, length and finish reason.
summary() { jq -s -c 'sort_by(.id) | .[] | {id, text, finish_reason, n: .usage.completion_tokens}' "$1"; }
for g in "${grids[@]}"; do
    IFS=: read -r tasks dp pp tp <<<"$g"
    name=grid_${g//:/_}
    out=$tmp/$name.jsonl
    t0=$(date +%s)
    if [ -n "$tp" ]; then
        GRIDLM_DP=$dp GRIDLM_PP=$pp GRIDLM_TP=$tp submit "$name" "$tasks" --model "$model" \
            --prompts "$tmp/prompts.jsonl" --output "$out" "${gen_opts[@]}"
    else
        submit "$name" "$tasks" --model "$model" --prompts "$tmp/prompts.jsonl" --output "$out" "${gen_opts[@]}"
    fi
    echo "slurm job $name ($tasks tasks): exit $rc in $(($(date +%s) - t0)) s"
    grep '^gridlm.sbatch:' "$tmp/$name.log" 2>/dev/null | sed 's/^/    /'
    if [ "$rc" != 0 ]; then
        fail "$name: exit $rc, expected 0"
        sed 's/^/    /' "$tmp/$name.sbatch" "$tmp/$name.log" 2>/dev/null | tail -20
    fi
    if [ -n "$tp" ]; then
        grep -q "dp=$dp pp=$pp tp=$tp" "$tmp/$name.log" ||
            fail "$name: the job log does not report dp=$dp pp=$pp tp=$tp"
    fi
    if [ ! -f "$out" ]; then
        fail "$name: no output file"
        continue
    fi
    lines=$(wc -l <"$out")
    [ "$lines" = "$n_prompts" ] || fail "$name: $lines output lines, expected $n_prompts"
    bad=0
    while IFS= read -r line || [ -n "$line" ]; do
        jq -e 'type == "object"' <<<"$line" >/dev/null 2>&1 || bad=$((bad + 1))
    done <"$out"
    [ "$bad" = 0 ] || fail "$name: $bad output line(s) are not JSON objects"
    jq -e -s 'map(.id) | sort == ["p1", "p2", "p3", "p4"]' "$out" >/dev/null ||
        fail "$name: ids are not p1..p4: $(jq -c .id "$out" | tr '\n' ' ')"
    jq -e -s 'all(.[]; .error == null and (.text | type == "string" and length > 0))' "$out" >/dev/null ||
        fail "$name: an error line or an empty text: $(head -c 400 "$out")"
    if ! cmp -s <(summary "$tmp/ref.jsonl") <(summary "$out"); then
        fail "$name: completions differ from the single-rank run"
        diff <(summary "$tmp/ref.jsonl") <(summary "$out") | head -8 | sed 's/^/    /'
    fi
done

finish test_slurm
