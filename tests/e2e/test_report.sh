# End-to-end test of `gridlm report`: a synthetic pp=2 x dp=2 job trace as per-rank files (made
# here in python3, with the busy and wait figures it expects), the stdout figures, the SVG parsed by
# python3's xml.etree with one row per rank, the merged-file form, and bad input.
# Usage: test_report.sh GRIDLM MODELS_DIR
set -u
gridlm=$1
. "$(dirname "$0")/lib.sh"

# make_trace PREFIX: writes PREFIX.rank0..3 and PREFIX.expected ("rank busy_s wait_s" lines).
make_trace() {
    python3 - "$1" <<'EOF'
import json, random, sys
prefix = sys.argv[1]
P, D, M, ROUNDS = 2, 2, 4, 6  # stages, replicas, micro-batch lanes, decode rounds
rng = random.Random(7)
events = {r: [] for r in range(P * D)}

def span(r, name, cat, a, b, lane=None, **args):
    e = {"name": name, "cat": cat, "ph": "X", "ts": round(a * 1e6, 3), "dur": round((b - a) * 1e6, 3),
         "pid": r, "tid": 1000000 if lane is None else lane}
    if args:
        e["args"] = args
    events[r].append(e)

for d in range(D):
    s0, s1 = d * P, d * P + 1
    t0 = t1 = 0.002 + 0.003 * d
    back = [0.0] * M  # when lane l's sampled tokens are back on stage 0
    for rnd in range(ROUNDS):
        span(s0, "admission", "sched", t0, t0 + 0.0008, records=M)
        t0 += 0.0008
        for l in range(M):
            if d == 1 and rnd == 3 and l == 0:
                span(s0, "checkpoint restore", "sched", t0, t0 + 0.004, sequences=1)
                events[s0].append({"name": "preemption", "cat": "sched", "ph": "i", "s": "t",
                                   "ts": round(t0 * 1e6, 3), "pid": s0, "tid": 1000000})
                t0 += 0.004
            start = max(t0, back[l])
            if start > t0:
                span(s0, "recv wait", "comm", t0, start)
            f = (0.030 if rnd == 0 else 0.010) * (1 + 0.2 * rng.random())
            span(s0, "forward", "compute", start, start + f, lane=l, micro_batch=l, tokens=64)
            end = start + f
            span(s0, "send wait", "comm", end, end + 0.0006)
            t0 = end + 0.0006
            start1 = max(t1, end + 0.0004)
            if start1 > t1:
                span(s1, "recv wait", "comm", t1, start1)
            f1 = (0.026 if rnd == 0 else 0.009) * (1 + 0.2 * rng.random())
            span(s1, "forward", "compute", start1, start1 + f1, lane=l, micro_batch=l, tokens=64)
            span(s1, "sampling", "compute", start1 + f1, start1 + f1 + 0.002, lane=l)
            e1 = start1 + f1 + 0.002
            span(s1, "send wait", "comm", e1, e1 + 0.0005)
            t1 = e1 + 0.0005
            back[l] = e1 + 0.0004

lo = min(e["ts"] for es in events.values() for e in es) * 1e-6
hi = max(e["ts"] + e.get("dur", 0) for es in events.values() for e in es) * 1e-6
if 0 < lo < 0.05 * hi:  # the report counts from the job's start then
    lo = 0
summary = {"records": D * M, "tokens": D * M * 64 * ROUNDS, "tok_per_s": round(D * M * 64 * ROUNDS / hi, 1),
           "duration_s": round(hi, 3)}
with open(prefix + ".expected", "w") as out:
    for r, es in events.items():
        busy = sum(e["dur"] for e in es if e["name"] in ("forward", "sampling")) * 1e-6
        wait = sum(e["dur"] for e in es if e["name"].endswith("wait")) * 1e-6
        out.write(f"{r} {busy:.6f} {wait:.6f} {busy / (hi - lo):.6f}\n")
for r, es in events.items():
    d, s = divmod(r, P)
    label = f"rank {r}: replica {d}, stage {s}, tp 0"
    lanes = sorted({e["tid"] for e in es})
    meta = [{"name": "process_name", "ph": "M", "pid": r, "tid": 0, "args": {"name": label}}]
    meta += [{"name": "thread_name", "ph": "M", "pid": r, "tid": t,
              "args": {"name": "main" if t == 1000000 else f"lane {t}"}} for t in lanes]
    other = {"format": "gridlm trace", "version": 1, "rank": r, "rank_label": label, "epoch_s": 1.7e9,
             "events": len(es), "dropped_events": 0, "event_cap": 2000000}
    if r == 0:
        other["summary"] = summary
    with open(f"{prefix}.rank{r}", "w") as out:
        json.dump({"traceEvents": meta + es, "displayTimeUnit": "ms", "otherData": other}, out)
EOF
}

# check_svg SVG RANKS: the file parses as XML, is an <svg>, and has one row label per rank.
check_svg() {
    python3 - "$1" "$2" <<'EOF' || fail "$1: $(head -c 300 "$tmp/svgcheck" 2>/dev/null)"
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
assert root.tag == "{http://www.w3.org/2000/svg}svg", root.tag
texts = [t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text")]
rows = [t for t in texts if t.startswith("rank ")]
assert len(rows) == int(sys.argv[2]), rows
rects = list(root.iter("{http://www.w3.org/2000/svg}rect"))
assert sum(1 for r in rects if r.get("fill") == "#eef1f5") == int(sys.argv[2]), "row bands"
assert any("records 8" in t for t in texts), "summary in the title"
EOF
}

make_trace "$tmp/job.json"
[ -f "$tmp/job.json.rank3" ] || fail "python3 did not make the synthetic trace"

# --- help ---------------------------------------------------------------------------------------------
expect_rc 0 "--help" "$gridlm" report --help
for opt in --svg --width --from --to "exit status"; do
    grep -q -- "$opt" "$tmp/stdout" || fail "--help does not document $opt"
done
"$gridlm" --help | grep -q "^  report " || fail "gridlm --help does not list report"

# --- per-rank files: figures, default picture path ------------------------------------------------------
expect_rc 0 "per-rank files" "$gridlm" report "$tmp"/job.json.rank{0,1,2,3}
cp "$tmp/stdout" "$tmp/report.txt"
grep -q "4 ranks" "$tmp/report.txt" || fail "rank count: $(head -3 "$tmp/report.txt")"
grep -Eq "^  records +8$" "$tmp/report.txt" || fail "summary records: $(head -8 "$tmp/report.txt")"
grep -Eq "^  tokens +3072$" "$tmp/report.txt" || fail "summary tokens"
[ -f "$tmp/job.svg" ] || fail "default picture job.svg not written"
# Each rank's row: busy_s, wait_s and busy% as the generator computed them.
while read -r rank busy wait share; do
    awk -v r="$rank" -v b="$busy" -v w="$wait" -v s="$share" '
        $1 == r && NF >= 13 { found = 1
            if ((($2 - b) ^ 2) > 1e-6 || (($3 - w) ^ 2) > 1e-6 || (($4 - 100 * s) ^ 2) > 0.01) {
                print "rank " r ": got " $2 " " $3 " " $4 ", expected " b " " w " " 100 * s; bad = 1 } }
        END { if (!found) print "rank " r ": no row"; exit !found || bad }' "$tmp/report.txt" ||
        fail "figures of rank $rank"
done <"$tmp/job.json.expected"
awk '$1 == 2 { exit !($6 == 24 && $11 == 1 && $12 == 1) }' "$tmp/report.txt" ||
    fail "rank 2: expected 24 forward spans, 1 preemption, 1 restore: $(grep -E '^ +2 ' "$tmp/report.txt")"
check_svg "$tmp/job.svg" 4

# --- merged file: the same figures; --svg, --width, a window --------------------------------------------
python3 - "$tmp" <<'EOF'
import json, sys
d = sys.argv[1]
parts = [json.load(open(f"{d}/job.json.rank{r}")) for r in range(4)]
json.dump({"traceEvents": [e for p in parts for e in p["traceEvents"]], "displayTimeUnit": "ms",
           "otherData": {"ranks": [p["otherData"] for p in parts], "summary": parts[0]["otherData"]["summary"]}},
          open(f"{d}/merged.json", "w"))
EOF
expect_rc 0 "merged file" "$gridlm" report "$tmp/merged.json" --svg "$tmp/m.svg" --width 900
diff <(grep -E '^ +[0-9] ' "$tmp/report.txt") <(grep -E '^ +[0-9] ' "$tmp/stdout") >/dev/null ||
    fail "merged file: figures differ from the per-rank files"
grep -q 'width="900"' "$tmp/m.svg" || fail "--width 900 not applied"
check_svg "$tmp/m.svg" 4
expect_rc 0 "window" "$gridlm" report "$tmp/merged.json" --svg "$tmp/w.svg" --from 0.1 --to 0.2
grep -q "window       0.100 to 0.200 s" "$tmp/stdout" || fail "window line: $(grep window "$tmp/stdout")"
check_svg "$tmp/w.svg" 4

# --- bad input --------------------------------------------------------------------------------------------
expect_rc 1 "missing file" "$gridlm" report "$tmp/nope.json" --svg "$tmp/x.svg"
expect_stderr "missing file" "$tmp/nope.json"
echo "not json" >"$tmp/bad.json"
expect_rc 1 "not JSON" "$gridlm" report "$tmp/bad.json" --svg "$tmp/x.svg"
expect_stderr "not JSON" "$tmp/bad.json"
echo '{"records": 3}' >"$tmp/other.json"
expect_rc 1 "not a trace" "$gridlm" report "$tmp/other.json" --svg "$tmp/x.svg"
expect_stderr "not a trace" "$tmp/other.json"
expect_rc 1 "rank given twice" "$gridlm" report "$tmp/merged.json" "$tmp/job.json.rank0" --svg "$tmp/x.svg"
expect_stderr "rank given twice" "job.json.rank0"
expect_rc 1 "unwritable picture" "$gridlm" report "$tmp/merged.json" --svg "$tmp/no/such/dir.svg"
expect_stderr "unwritable picture" "$tmp/no/such/dir.svg"
expect_rc 2 "unknown option" "$gridlm" report "$tmp/merged.json" --colour red
expect_rc 2 "bad width" "$gridlm" report "$tmp/merged.json" --width 10
expect_stderr "bad width" "--width"
expect_rc 2 "width not a number" "$gridlm" report "$tmp/merged.json" --width wide
expect_rc 2 "empty window" "$gridlm" report "$tmp/merged.json" --from 2 --to 1
expect_rc 2 "no trace" "$gridlm" report

finish test_report
