# Shared helpers of the end-to-end scripts (sourced, not run). Gives $tmp (removed on exit),
# fail, expect_rc, expect_stderr, require_files and finish.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# expect_rc WANT DESCRIPTION CMD...: run CMD (stdout/stderr kept in $tmp) and check its exit status.
expect_rc() {
    local want=$1 what=$2
    shift 2
    "$@" >"$tmp/stdout" 2>"$tmp/stderr"
    local rc=$?
    if [ "$rc" != "$want" ]; then
        fail "$what: exit $rc, expected $want"
        sed 's/^/    /' "$tmp/stderr" | tail -5
    fi
}

# expect_stderr DESCRIPTION TEXT: the last command's stderr mentions TEXT.
expect_stderr() {
    grep -qF -- "$2" "$tmp/stderr" || fail "$1: stderr does not mention '$2': $(head -c 400 "$tmp/stderr")"
}

# require_files FILE...: a missing model file fails the test (it is never skipped).
require_files() {
    local f
    for f in "$@"; do
        if [ ! -f "$f" ]; then
            echo "FAIL: $f is missing (run launch/fetch_models.sh)"
            exit 1
        fi
    done
}

# finish NAME: report and exit non-zero when any check failed.
finish() {
    if [ "$failures" != 0 ]; then
        echo "$1: $failures check(s) failed"
        exit 1
    fi
    echo "$1: all checks passed"
}

# Grid runs under Open MPI on a small machine: root allowed, ranks may outnumber the cores.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMP_WAIT_POLICY=passive

# grid_gen RANKS DP PP TP ARGS...: `gridlm generate ARGS` on a dp x pp x tp grid of RANKS ranks,
# one thread each, under a time limit (a hang fails instead of blocking the suite).
grid_gen() {
    local ranks=$1 dp=$2 pp=$3 tp=$4
    shift 4
    timeout 240 mpirun -n "$ranks" --oversubscribe "$gridlm" generate --threads 1 -q \
        --dp "$dp" --pp "$pp" --tp "$tp" "$@"
}

# same_output WHAT REF OUT: the two result files are byte-identical (same records, same texts).
same_output() {
    if ! cmp -s "$2" "$3"; then
        fail "$1: output differs from the single-rank run"
        diff <(cut -c1-160 "$2") <(cut -c1-160 "$3") | head -6 | sed 's/^/    /'
    fi
}

# expect_grid WHAT REF DP PP TP ARGS...: the grid run succeeds and writes exactly REF.
expect_grid() {
    local what=$1 ref=$2 dp=$3 pp=$4 tp=$5
    shift 5
    local out=$tmp/grid_${dp}_${pp}_${tp}_$RANDOM.jsonl
    expect_rc 0 "$what" grid_gen $((dp * pp * tp)) "$dp" "$pp" "$tp" --output "$out" "$@"
    same_output "$what" "$ref" "$out"
}

# use_smollm2 MODELS_DIR: sets $model to SmolLM2's native f32 checkpoint when the demo has made
# one, else to its GGUF (dequantised on load: the same weights); a missing file fails the test.
use_smollm2() {
    model=$1/SmolLM2-135M-Instruct.f32.h5
    [ -f "$model" ] || model=$1/SmolLM2-135M-Instruct.Q4_1.gguf
    require_files "$model"
}
