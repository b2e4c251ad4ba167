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
