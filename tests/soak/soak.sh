#!/usr/bin/env bash
# Soak test: N short records (default 100000) through one `gridlm generate` job, then through a
# second job on the same input that is stopped with SIGTERM about halfway and finished with
# --resume. While the jobs run, the rank's resident memory (VmRSS and RssAnon of /proc/PID/status)
# and the records done (lines of the output journal) are sampled to a CSV. Checks:
#   - each output holds every input id exactly once (0 lost, 0 duplicated), every line whole JSON;
#   - the two outputs are the same set of lines (greedy and per-record seeded sampling);
#   - from the sample at 10 % of the records to the end, the first job's anonymous resident memory
#     (RssAnon: the heap and every other private allocation, where a leak shows) grows by less than
#     SOAK_RSS_BOUND_MB (default 4 MiB) or 5 %, whichever is larger, plus SOAK_ID_BYTES (default
#     24) per record: the reader keeps a 64-bit hash of every id to report repeated ids
#     (io/prompt_reader.h, an open-addressing table at most 3/4 full: 11-21 bytes a record, the
#     table doubling at once); anything else that grows with the records shows up beyond it.
#     VmRSS is not the measure: it also counts the pages of mapped libraries, which are read in
#     on first touch and are bounded by the libraries' size — a CUDA build's libcublasLt alone is
#     paged in by 15-60 MiB more by its destructors as the process exits, after the last record.
#   - the job's last gridlm_rank_resident_memory_bytes (--metrics-file) agrees with the sampled
#     VmRSS.
# Prints the RSS curve (records done against RSS MiB), wall times and records/s.
# Model: the tiny random-weight Qwen2 of tests/reference/golden (converted once per run): the
# engine's per-record path (parsing, scheduling, KV blocks, sampling, writing, journal) dominates.
# Usage: soak.sh GRIDLM MODELS_DIR [N]
# Environment: SOAK_DIR (keep the files there instead of a removed temporary directory),
# SOAK_INTERVAL (seconds between samples, default 2), SOAK_THREADS (default 1), SOAK_NICE (the
# jobs' niceness, default 10), SOAK_RSS_BOUND_MB and SOAK_ID_BYTES (the RSS bound, above).
set -u
export LC_ALL=C
gridlm=$(realpath "$1")
n=${3:-100000}
interval=${SOAK_INTERVAL:-2}
threads=${SOAK_THREADS:-1}
bound_mb=${SOAK_RSS_BOUND_MB:-4}
id_bytes=${SOAK_ID_BYTES:-24}
here=$(cd "$(dirname "$0")" && pwd)
if [ -n "${SOAK_DIR:-}" ]; then
    dir=$SOAK_DIR
    mkdir -p "$dir"
    rm -f "$dir"/out*.jsonl* "$dir"/*.csv "$dir"/*.prom
else
    dir=$(mktemp -d)
    trap 'rm -rf "$dir"' EXIT
fi
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
for tool in jq awk sort; do command -v "$tool" >/dev/null || { echo "FAIL: $tool is missing"; exit 1; }; done
export OMP_WAIT_POLICY=passive

model=$dir/tiny.h5
if [ ! -f "$model" ]; then
    "$gridlm" convert --from "$here/../reference/golden/tiny-qwen2-hf" --to "$model" >/dev/null 2>&1 ||
        { echo "FAIL: converting the tiny model"; exit 1; }
fi

# --- N records: varied short prompts, 4-8 tokens each, string / integer / missing ids -------------
# Ids: "s<i>" strings, integers from 10^7 up, non-ASCII strings, and none (the id is then the
# line number, below 10^7 so it meets no integer id). Some records are chats, token arrays, two
# choices, stop strings, seeded sampling or logprobs.
awk -v n="$n" 'BEGIN {
    split("cat river lamp quiet seven orange hill paper storm violin bread north window silver", w, " ")
    for (i = 1; i <= n; i++) {
        k = i % 7
        if (k == 0) id = "\"id\": \"s" i "\", "
        else if (k == 1) id = "\"id\": " (10000000 + i) ", "
        else if (k == 2) id = "\"id\": \"r\u00e9cord-" i "\", "
        else if (k == 3) id = ""
        else id = "\"id\": \"x" i "-" (i * 7919 % 1000) "\", "
        text = w[i % 14 + 1] " " w[int(i / 14) % 14 + 1] " number " i
        m = 4 + i % 5
        extra = ""
        if (i % 11 == 0) extra = ", \"n\": 2"
        if (i % 13 == 0) extra = extra ", \"temperature\": 0.8, \"seed\": " i
        if (i % 17 == 0) extra = extra ", \"logprobs\": true"
        if (i % 19 == 0) extra = extra ", \"stop\": [\"a\"]"
        if (i % 23 == 0)
            body = "\"messages\": [{\"role\": \"user\", \"content\": \"" text "\"}]"
        else if (i % 29 == 0)
            body = "\"prompt\": [" (i % 500) ", " ((i * 3) % 500) ", 7]"
        else
            body = "\"prompt\": \"" text "\""
        printf "{%s%s, \"max_tokens\": %d%s}\n", id, body, m, extra
    }
}' >"$dir/p.jsonl"
# The ids gridlm gives the records: the id as a string, else the line number.
jq -r 'if has("id") then (.id | tostring) else empty end' "$dir/p.jsonl" >"$dir/ids.part"
awk '!/"id"/ { print NR }' "$dir/p.jsonl" >>"$dir/ids.part"
sort "$dir/ids.part" >"$dir/ids.want"
[ "$(sort -u "$dir/ids.want" | wc -l)" = "$n" ] || { echo "FAIL: the generated input has duplicate ids"; exit 1; }

args=(generate --model "$model" --prompts "$dir/p.jsonl" --temperature 0 --threads "$threads"
    --max-model-len 64 --progress-interval 30)

# start_job NAME OUT [ARGS...]: starts the job in the background (niced, stderr to NAME.err);
# sets $pid.
start_job() {
    local name=$1 out=$2
    shift 2
    nice -n "${SOAK_NICE:-10}" "$gridlm" "${args[@]}" --output "$out" "$@" 2>>"$dir/$name.err" &
    pid=$!
}
# sample_until_done CSV OUT T0 [STOP_AT]: appends "seconds since T0,records done,VmRSS KiB,
# RssAnon KiB" to CSV
# every $interval s until the job $pid exits (with STOP_AT, sends it SIGTERM once OUT's journal
# has STOP_AT lines); sets $rc.
sample_until_done() {
    local csv=$1 out=$2 t0=$3 stop_at=${4:-} done_n rss t
    while kill -0 "$pid" 2>/dev/null; do
        rss=$(awk '/^VmRSS:/ { r = $2 } /^RssAnon:/ { a = $2 } END { if (r != "") print r "," a }' \
            "/proc/$pid/status" 2>/dev/null)
        done_n=0
        [ -f "$out.journal" ] && done_n=$(wc -l <"$out.journal")
        t=$(awk "BEGIN { printf \"%.1f\", $(date +%s.%N) - $t0 }")
        [ -n "$rss" ] && echo "$t,$done_n,$rss" >>"$csv"
        if [ -n "$stop_at" ] && [ "$done_n" -ge "$stop_at" ]; then
            kill -TERM "$pid"
            stop_at=""
            echo "  SIGTERM at $done_n records, $t s"
        fi
        # Until the stop is sent, look often: a small N on a fast machine is done in about a second.
        if [ -n "$stop_at" ]; then sleep 0.02; else sleep "$interval"; fi
    done
    wait "$pid"
    rc=$?
}
# check_output WHAT OUT: every id exactly once, every line whole JSON.
check_output() {
    local what=$1 out=$2 lost dup
    if ! jq -r '.id' "$out" >"$dir/ids.got" 2>"$dir/jq.err"; then
        fail "$what: a line of $out is not whole JSON: $(head -c 300 "$dir/jq.err")"
        return
    fi
    sort "$dir/ids.got" -o "$dir/ids.got"
    lost=$(comm -23 "$dir/ids.want" <(sort -u "$dir/ids.got") | wc -l)
    dup=$(uniq -d "$dir/ids.got" | wc -l)
    extra=$(comm -13 <(sort -u "$dir/ids.want") <(sort -u "$dir/ids.got") | wc -l)
    echo "$what: $(wc -l <"$out") lines; $lost lost, $dup duplicated, $extra unknown ids"
    [ "$lost" = 0 ] || fail "$what: $lost record(s) lost, e.g. $(comm -23 "$dir/ids.want" <(sort -u "$dir/ids.got") | head -3 | tr '\n' ' ')"
    [ "$dup" = 0 ] || fail "$what: $dup id(s) written more than once, e.g. $(uniq -d "$dir/ids.got" | head -3 | tr '\n' ' ')"
    [ "$extra" = 0 ] || fail "$what: $extra id(s) not in the input"
    local errors
    errors=$(jq -r 'select(has("error")) | .id' "$out" | wc -l)
    [ "$errors" = 0 ] || fail "$what: $errors error line(s): $(jq -c 'select(has("error"))' "$out" | head -2)"
}

echo "soak: $n records, model tiny-qwen2 ($model), $threads thread(s), samples every $interval s in $dir"

# --- job 1: one run over everything ------------------------------------------------------------------
t0=$(date +%s.%N)
start_job job1 "$dir/out1.jsonl" --metrics-file "$dir/job1.prom" --metrics-interval 5
sample_until_done "$dir/rss_job1.csv" "$dir/out1.jsonl" "$t0"
wall1=$(awk "BEGIN { printf \"%.1f\", $(date +%s.%N) - $t0 }")
echo "job 1: exit $rc, $wall1 s, $(awk "BEGIN { printf \"%.0f\", $n / $wall1 }") records/s"
[ "$rc" = 0 ] || { fail "job 1 exited $rc"; tail -5 "$dir/job1.err"; }
check_output "job 1" "$dir/out1.jsonl"

# --- the RSS curve and its growth --------------------------------------------------------------------
echo "job 1 RSS curve (records done, VmRSS MiB, RssAnon MiB, seconds):"
awk -F, -v n="$n" '
    { t[NR] = $1; d[NR] = $2; r[NR] = $3; a[NR] = $4 }
    END {
        # about 12 rows: the first sample, every sample that passes another twelfth, the last
        step = n / 12; next_at = 0
        for (i = 1; i <= NR; i++)
            if (i == 1 || i == NR || d[i] >= next_at) {
                printf "  %8d  %7.1f  %7.1f  %6.1f\n", d[i], r[i] / 1024, a[i] / 1024, t[i]
                while (next_at <= d[i]) next_at += step
            }
    }' "$dir/rss_job1.csv"
read -r rss10 done10 rss_end rss_max < <(awk -F, -v n="$n" '
    $2 >= n / 10 && !base { base = $4; at = $2 }
    { if ($3 > max) max = $3; last = $4 }
    END { print base + 0, at + 0, last + 0, max + 0 }' "$dir/rss_job1.csv")
if [ "$rss10" = 0 ]; then
    fail "no RssAnon sample after 10 % of the records (the job ran $wall1 s; lower SOAK_INTERVAL)"
else
    growth_kib=$((rss_end - rss10))
    limit_kib=$(awk "BEGIN { b = $bound_mb * 1024; p = $rss10 * 0.05; ids = ($n - $done10) * $id_bytes / 1024
        printf \"%d\", (p > b ? p : b) + ids }")
    mib() { awk "BEGIN { printf \"%.1f\", $1 / 1024 }"; }
    echo "job 1 RssAnon: $(mib "$rss10") MiB at $done10 records, $(mib "$rss_end") MiB at the end (peak" \
        "VmRSS $(mib "$rss_max") MiB); growth $growth_kib KiB," \
        "$(awk "BEGIN { printf \"%.0f\", $growth_kib * 1024 / ($n - $done10 + 1) }") bytes a record" \
        "(bound $limit_kib KiB: max($bound_mb MiB, 5 %) + $id_bytes bytes a record for the id hashes)"
    [ "$growth_kib" -lt "$limit_kib" ] ||
        fail "job 1: anonymous resident memory grew by $growth_kib KiB from 10 % of the records to the end (bound $limit_kib KiB)"
fi
# The metrics file's last figure is the same process's RSS near the end of the job.
metric=$(awk '/^gridlm_rank_resident_memory_bytes/ { print int($NF / 1024) }' "$dir/job1.prom")
if [ -z "$metric" ]; then
    fail "job 1: no gridlm_rank_resident_memory_bytes in the metrics file"
else
    echo "job 1 metrics: gridlm_rank_resident_memory_bytes $(awk "BEGIN { printf \"%.1f\", $metric / 1024 }") MiB"
    awk "BEGIN { d = $metric - $rss_max; exit !(d < 8192 && d > -$rss_max / 2) }" ||
        fail "job 1: the metric's RSS ($metric KiB) is far from the sampled peak ($rss_max KiB)"
fi

# --- job 2: stopped halfway with SIGTERM, then resumed -------------------------------------------------
t0=$(date +%s.%N)
start_job job2 "$dir/out2.jsonl"
sample_until_done "$dir/rss_job2.csv" "$dir/out2.jsonl" "$t0" $((n / 2))
[ "$rc" = 4 ] || fail "job 2 (SIGTERM halfway) exited $rc, expected 4"
stopped=$(wc -l <"$dir/out2.jsonl")
echo "job 2: stopped with $stopped lines, exit $rc"
start_job job2r "$dir/out2.jsonl" --resume
sample_until_done "$dir/rss_job2.csv" "$dir/out2.jsonl" "$t0"
wall2=$(awk "BEGIN { printf \"%.1f\", $(date +%s.%N) - $t0 }")
echo "job 2 + resume: exit $rc, $wall2 s in all; peak RSS $(awk -F, '$3 > m { m = $3 } END { printf "%.1f", m / 1024 }' \
    "$dir/rss_job2.csv") MiB"
[ "$rc" = 0 ] || { fail "the resumed job exited $rc"; tail -5 "$dir/job2r.err"; }
[ "$stopped" -gt 0 ] && [ "$stopped" -lt "$n" ] || fail "job 2: SIGTERM left $stopped of $n lines (not a partial run)"
check_output "job 2 + resume" "$dir/out2.jsonl"
if cmp -s <(sort "$dir/out1.jsonl") <(sort "$dir/out2.jsonl"); then
    echo "job 1 and job 2 + resume: the same $n lines"
else
    fail "the resumed job's lines differ from job 1's: $(comm -3 <(sort "$dir/out1.jsonl") <(sort "$dir/out2.jsonl") | wc -l) line(s) differ"
    comm -3 <(sort "$dir/out1.jsonl") <(sort "$dir/out2.jsonl") | head -4 | cut -c1-200 | sed 's/^/    /'
fi

if [ "$failures" != 0 ]; then
    echo "soak: $failures check(s) failed"
    exit 1
fi
echo "soak: all checks passed"
