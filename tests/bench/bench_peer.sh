#!/usr/bin/env bash
# gridlm next to llama.cpp, in one run on the same machine and the same cores: prefill, batch-1
# decode, bulk generation throughput and perplexity of the shipped GGUF files and of their Q8_0
# and F32 twins, with the machine's read bandwidth as the decode roofline. Prints one table and
# writes it as JSON; keeps every step's raw output in a work directory. tests/bench/README.md
# explains the metrics.
#
#   bash tests/bench/bench_peer.sh [--threads N] [--models DIR] [--quick] [--json OUT.json]
#                                  [--work DIR] [--only smollm2|qwen] [--dtype auto|f32|bf16]
#                                  [--text FILE]
#   bash tests/bench/bench_peer.sh --report WORKDIR [--json OUT.json]   (table of an earlier run)
#
# --threads   threads for both engines (default: the number of cores)
# --models    directory with the shipped GGUF files (default: models/)
# --quick     small counts (a smoke run; its numbers are only indicative)
# --json      also write the table as JSON here
# --work      keep raw outputs here (default: a new directory under ${TMPDIR:-/tmp})
# --dtype     gridlm's weight type in memory (default auto: the file's own types; an engine build
#             that rejects it falls back to f32 with a warning)
# --text      perplexity text (default: /usr/share/common-licenses/GPL-3 then Apache-2.0)
# Environment: GRIDLM_BIN (default build/bin/gridlm), BENCH_DECODE_BIN and BENCH_BANDWIDTH_BIN
# (default: next to GRIDLM_BIN), GRIDLM_LLAMACPP_BIN / GRIDLM_PEER_DIR (see build_llamacpp.sh;
# without them the peer is built on first use, several minutes), GRIDLM_PEER_TWINS (where the Q8_0
# and F32 twins are cached, default $GRIDLM_PEER_DIR/models), GRIDLM_BULK_SEQS (gridlm's --max-seqs
# in the bulk job, default: all its prompts at once).
# Exit status: 0 all measured; 1 a tool or input is missing, or a measurement failed (its cell
# reads FAILED, its log is in the work directory); 2 usage error.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
usage() { sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}" >&2; exit 2; }
die() { echo "bench_peer: error: $*" >&2; exit 1; }
note() { echo "bench_peer: $*" >&2; }

threads=$(nproc)
models_dir=$repo/models
quick=0
json_out=""
work=""
only=""
dtype=${GRIDLM_DTYPE:-auto}
text_file=""
report_only=""
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads=${2:?}; shift 2 ;;
    --models) models_dir=${2:?}; shift 2 ;;
    --quick) quick=1; shift ;;
    --json) json_out=${2:?}; shift 2 ;;
    --work) work=${2:?}; shift 2 ;;
    --only) only=${2:?}; shift 2 ;;
    --dtype) dtype=${2:?}; shift 2 ;;
    --text) text_file=${2:?}; shift 2 ;;
    --report) report_only=${2:?}; shift 2 ;;
    -h|--help) usage ;;
    *) echo "bench_peer: unknown option $1" >&2; usage ;;
  esac
done
[[ $threads =~ ^[1-9][0-9]*$ ]] || die "--threads must be a positive integer"
[ -z "$only" ] || [ "$only" = smollm2 ] || [ "$only" = qwen ] || die "--only takes smollm2 or qwen"
command -v python3 >/dev/null || die "python3 not found (it parses the outputs)"
[ -z "$json_out" ] || json_out=$(realpath -m "$json_out")

# ---------------------------------------------------------------------------------------------
# The report: reads the work directory, prints the table, writes the JSON. Exit 1 if any cell
# failed. Standard library only.
report() {
  python3 - "$1" "$json_out" <<'PY'
import json, math, os, re, struct, sys

work, json_out = sys.argv[1], sys.argv[2]
meta = json.load(open(os.path.join(work, "meta.json")))


def path(*p):
    return os.path.join(work, *p)


def read(p):
    try:
        with open(p, errors="replace") as f:
            return f.read()
    except OSError:
        return None


def status(step):
    """'ok', 'failed', 'skipped: why' or None (not run), from STEP.status."""
    s = read(path(step + ".status"))
    return s.strip() if s is not None else None


def gguf_tensor_bytes(fn):
    """{tensor name: bytes of its data} from a GGUF file's header (sizes from the data offsets)."""
    with open(fn, "rb") as f:
        data = f.read(64 << 20)  # header, vocabulary and tensor infos fit in this for these models
        size = os.fstat(f.fileno()).st_size
    pos = 0

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return v[0]

    def string():
        nonlocal pos
        n = take("Q")
        s = data[pos:pos + n].decode("utf-8", "replace")
        pos += n
        return s

    scalar = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}

    def value(t):
        nonlocal pos
        if t in scalar:
            return take(scalar[t])
        if t == 8:
            return string()
        if t == 9:
            et, n = take("I"), take("Q")
            if et in scalar:
                pos += n * struct.calcsize("<" + scalar[et])
                return None
            for _ in range(n):
                value(et)
            return None
        raise ValueError(f"{fn}: GGUF value type {t}")

    if data[:4] != b"GGUF":
        raise ValueError(f"{fn}: not a GGUF file")
    pos = 4
    take("I")
    n_tensors, n_kv = take("Q"), take("Q")
    align = 32
    for _ in range(n_kv):
        k = string()
        v = value(take("I"))
        if k == "general.alignment":
            align = v
    infos = []
    for _ in range(n_tensors):
        name = string()
        nd = take("I")
        pos += 8 * nd
        take("I")
        infos.append((take("Q"), name))
    data_start = (pos + align - 1) // align * align
    infos.sort()
    out = {}
    for i, (off, name) in enumerate(infos):
        end = infos[i + 1][0] if i + 1 < len(infos) else size - data_start
        out[name] = end - off
    return out


def decode_bytes(fn):
    """Weight bytes a batch-1 decode step reads: every tensor except the token embedding table
    (one row of it is read), unless the model ties its LM head to it (no output.weight)."""
    t = gguf_tensor_bytes(fn)
    total = sum(t.values())
    if "output.weight" in t:
        total -= t.get("token_embd.weight", 0)
    return total, sum(t.values())


def llama_bench(step):
    """{('pp', n) or ('tg', n): avg tok/s} from llama-bench -o json."""
    if status(step) != "ok":
        return None
    out = {}
    for r in json.loads(read(path(step + ".out"))):
        if r.get("n_gen", 0) == 0:
            out[("pp", r["n_prompt"])] = r["avg_ts"]
        elif r.get("n_prompt", 0) == 0:
            out[("tg", r["n_gen"])] = r["avg_ts"]
    return out


def batched_bench(step):
    """[(npl, total tok/s, generated tok/s)] from llama-batched-bench (jsonl or markdown table)."""
    if status(step) != "ok":
        return None
    rows = []
    for line in (read(path(step + ".out")) or "").splitlines() + (read(path(step + ".err")) or "").splitlines():
        line = line.strip()
        if line.startswith("{") and '"speed"' in line:
            r = json.loads(line)
            rows.append((r["pl"], r["speed"], r["speed_tg"]))
        elif line.startswith("|") and not line.startswith("|    PP") and "---" not in line:
            c = [x.strip() for x in line.strip("|").split("|")]
            if len(c) == 10 and c[0].isdigit():
                rows.append((int(c[2]), float(c[9]), float(c[7])))
    return rows or None


def llama_ppl(step):
    if status(step) != "ok":
        return None
    text = (read(path(step + ".err")) or "") + (read(path(step + ".out")) or "")
    m = re.search(r"Final estimate: PPL = ([0-9.]+) \+/- ([0-9.]+)", text)
    if not m:
        return None
    chunks = re.search(r"calculating perplexity over (\d+) chunks", text)
    return {"ppl": float(m.group(1)), "stderr": float(m.group(2)),
            "windows": int(chunks.group(1)) if chunks else None}


def bench_decode(step):
    """prefill {n: tok/s}, decode {batch: tok/s}, weights dtype, from bench_decode's text."""
    if status(step) != "ok":
        return None
    text = read(path(step + ".out")) or ""
    pre = {int(n): float(v) for n, v in re.findall(r"prefill +(\d+) tokens:\s+([0-9.]+) tok/s", text)}
    dec = {int(b): float(v) for b, v in re.findall(r"decode batch\s+(\d+):\s+([0-9.]+) tok/s", text)}
    dt = re.search(r"weights (\S+)(?: = (\S+))? \(", text)
    out = {"prefill": pre, "decode": dec,
           "dtype": (dt.group(1) + (" = " + dt.group(2) if dt.group(2) else "")) if dt else None}
    for line in text.splitlines():  # --json line of a bench_decode that writes one: exact figures
        if line.startswith("{") and '"tg1"' in line:
            j = json.loads(line)
            out["json"] = j
            pre.update({n: j[f"pp{n}"] for n in (128, 512) if j.get(f"pp{n}")})
            dec.update({b: j[f"tg{b}"] for b in (1, 16, 64) if j.get(f"tg{b}")})
    return out


def generate_job(step):
    """From a gridlm generate job: totals from its output, wall seconds, step rates, dtype."""
    if status(step) != "ok":
        return None
    p = c = n = 0
    for line in open(path(step + ".jsonl")):
        r = json.loads(line)
        if "error" in r:
            return None
        p += r["usage"]["prompt_tokens"]
        c += r["usage"]["completion_tokens"]
        n += 1
    wall = float(read(path(step + ".wall")))
    log = read(path(step + ".err")) or ""
    m = re.search(r"steps of this rank: prefill ([0-9.]+) tok/s, decode ([0-9.]+) tok/s", log)
    # Job header: "(llama, f32 weights)" or "(llama; weights q4_1 63.3 MiB, q8_0 28.7 MiB)".
    dt = re.search(r"\(\w+, (\w+) weights\)", log) or re.search(r"\(\w+; weights ([^)]*)\)", log)
    return {"records": n, "prompt_tokens": p, "completion_tokens": c, "wall_s": wall,
            "prefill_step_tok_s": float(m.group(1)) if m else None,
            "decode_step_tok_s": float(m.group(2)) if m else None,
            "dtype": dt.group(1) if dt else None}


def gridlm_score(step):
    s = status(step)
    if s is None or s.startswith("skipped"):
        return s
    if s != "ok":
        return None
    lines = [l for l in (read(path(step + ".out")) or "").splitlines() if l.strip()]
    try:
        return json.loads(lines[-1])
    except (IndexError, ValueError):
        return None


bw = [json.loads(l) for f in ("bandwidth.start.out", "bandwidth.end.out")
      for l in [(read(path(f)) or "").strip()] if l.startswith("{")]
bw_gbs = max((max(b["read_gbs"], b["read_gbs_1t"]) for b in bw), default=None)  # best seen
c = meta["counts"]
rows, failed, notes = [], [], []


def row(model, ftype, metric, unit, g, l, roof_bytes=None, note=""):
    """g, l: numbers, None (failed: shown FAILED) or a string (shown as is, e.g. skipped)."""
    r = {"model": model, "file_type": ftype, "metric": metric, "unit": unit,
         "gridlm": g if isinstance(g, (int, float)) else None,
         "llamacpp": l if isinstance(l, (int, float)) else None}
    if isinstance(g, (int, float)) and isinstance(l, (int, float)) and l:
        r["ratio"] = g / l
    if roof_bytes and bw_gbs:
        for side, v in (("gridlm", g), ("llamacpp", l)):
            if isinstance(v, (int, float)):
                r["roofline_" + side] = v * roof_bytes / (bw_gbs * 1e9)
    for side, v in (("gridlm", g), ("llamacpp", l)):
        if v is None:
            failed.append(f"{model} {ftype} {metric} ({side})")
        elif isinstance(v, str):
            r[side + "_note"] = v
    if note:
        r["note"] = note
    rows.append(r)


def loss(x, ref):
    """Per cent by which perplexity x exceeds ref; None when either is missing."""
    ok = isinstance(x, (int, float)) and isinstance(ref, (int, float))
    return 100 * (x / ref - 1) if ok else None


results = {}
peer_build = None
for f in sorted(os.listdir(path("peer"))):
    if f.endswith(".bench.out") and status("peer/" + f[:-4]) == "ok":
        r = json.loads(read(path("peer", f)))[0]
        peer_build = f"llama.cpp build {r.get('build_number')} ({r.get('build_commit')})"
        break
for m in meta["models"]:
    key, name = m["key"], m["name"]
    ppl = {}
    for v in m["variants"]:
        tag = f"{key}.{v['var']}"
        ft = v["type"]
        dbytes, all_bytes = decode_bytes(v["path"])
        lb = llama_bench(f"peer/{tag}.bench")
        bd = bench_decode(f"gridlm/{tag}.decode")
        g512 = generate_job(f"gridlm/{tag}.prefill512")
        results[tag] = {"file": v["path"], "tensor_bytes": all_bytes, "decode_bytes_per_token": dbytes,
                        "llama_bench": None if lb is None else {f"{k[0]}{k[1]}": x for k, x in lb.items()},
                        "bench_decode": bd, "gridlm_prefill512_job": g512}
        gd = bd["dtype"] if bd else None
        for n in c["prefill"]:
            g = bd["prefill"].get(n) if bd else None
            src = "bench_decode"
            if g is None and n == c["gen_prefill_len"] and status(f"gridlm/{tag}.prefill512") is not None:
                # bench_decode without this prompt length: a generate job of such prompts, timed
                # by gridlm's own step timer (load excluded).
                g = g512.get("prefill_step_tok_s") if g512 else None
                src = f"`gridlm generate` step timer, {c['gen_prefill_n']} prompts of {n}"
            elif g is None and bd is not None and bd["prefill"]:
                g = "n/a"
            row(name, ft, f"prefill {n}", "tok/s", g, lb.get(("pp", n)) if lb else None,
                note="" if src == "bench_decode" else f"gridlm: {src}")
        g = bd["decode"].get(1) if bd else None
        row(name, ft, f"decode b=1, {c['tg']} tokens", "tok/s", g,
            lb.get(("tg", c["tg"])) if lb else None, roof_bytes=dbytes,
            note=f"{dbytes / 1e6:.0f} MB read per token" + (f"; gridlm weights {gd}" if gd else "")
            + (f", {bd['json']['streamed_bytes'] / 1e6:.0f} MB read per step by its count"
               if bd and bd.get("json", {}).get("streamed_bytes") else ""))
        bb = batched_bench(f"peer/{tag}.batched")
        gj = generate_job(f"gridlm/{tag}.bulk")
        results[tag]["batched_bench"] = bb
        results[tag]["gridlm_bulk_job"] = gj
        l = max(bb, key=lambda x: x[1]) if bb else None
        note = ""
        g = None
        if gj:
            g = (gj["prompt_tokens"] + gj["completion_tokens"]) / gj["wall_s"]
            if gj["completion_tokens"] != c["bulk_n"] * c["bulk_gen"]:
                note += f"gridlm generated {gj['completion_tokens']} tokens, not {c['bulk_n'] * c['bulk_gen']}; "
            note += f"gridlm: whole job {gj['wall_s']:.1f} s incl. load, weights {gj['dtype'] or '?'}"
        if l:
            note += f"; llama.cpp: best of npl {','.join(str(x[0]) for x in bb)} is npl {l[0]}"
            missing = sorted(set(int(x) for x in c["npl"].split(",")) - set(x[0] for x in bb))
            if missing:  # llama-batched-bench skips a batch whose KV does not fit in -c, silently
                note += f" (npl {','.join(map(str, missing))} NOT RUN: context too small?)"
        row(name, ft, f"bulk {c['bulk_n']}x{c['bulk_prompt']}+{c['bulk_gen']} total", "tok/s", g,
            l[1] if l else None, note=note)
        lp = llama_ppl(f"peer/{tag}.ppl")
        gs = gridlm_score(f"gridlm/{tag}.score")
        results[tag]["llama_perplexity"] = lp
        results[tag]["gridlm_score"] = gs
        gp = gs.get("perplexity") if isinstance(gs, dict) else gs
        note = ""
        if isinstance(gs, dict) or lp:
            note = "windows " + "/".join(str(x) for x in (
                gs.get("windows") if isinstance(gs, dict) else "-", lp.get("windows") if lp else "-"))
        row(name, ft, f"perplexity ctx {c['ppl_ctx']}", "ppl", gp, lp["ppl"] if lp else None, note=note)
        ppl[ft] = rows[-1]
    # Quality lost to quantisation: each engine's perplexity on a quantised file against its own on
    # the F32 twin (rows added after the F32 ones; the sort below puts each after its file's ppl).
    ref = ppl.get("F32", {})
    for ft, r in ppl.items():
        if ft != "F32":
            rows.append({"model": name, "file_type": ft, "metric": "ppl vs F32", "unit": "%",
                         "gridlm": loss(r["gridlm"], ref.get("gridlm")),
                         "llamacpp": loss(r["llamacpp"], ref.get("llamacpp"))})

# Order: by model, file type as listed, then metric as produced ("ppl vs F32" comes last).
order = {(m["name"], v["type"]): (i, j) for i, m in enumerate(meta["models"]) for j, v in enumerate(m["variants"])}
rows = [r for _, r in sorted(enumerate(rows), key=lambda ir: (order[(ir[1]["model"], ir[1]["file_type"])], ir[0]))]


def fmt(v, unit, side_note=None):
    if v is None:
        return side_note if side_note else "FAILED"
    if unit == "%":
        return f"{v:+.2f}%"
    if unit == "ppl":
        return f"{v:.4f}"
    return f"{v:.1f}" if v < 1000 else f"{v:.0f}"


hdr = ["model", "file", "metric", "gridlm", "llama.cpp", "ratio", "roof g", "roof l"]
table = []
for r in rows:
    derived = r["metric"] == "ppl vs F32"  # missing when a ppl is: "-", not a second FAILED
    g, l = ("-" if derived and r[s] is None else fmt(r[s], r["unit"], r.get(s + "_note")) for s in ("gridlm", "llamacpp"))
    unit = "" if r["unit"] in ("ppl", "%") else " " + r["unit"]
    table.append([r["model"], r["file_type"], r["metric"] + unit, g, l,
                  f"{r['ratio']:.2f}x" if "ratio" in r else "",
                  f"{r['roofline_gridlm']:.0%}" if "roofline_gridlm" in r else "",
                  f"{r['roofline_llamacpp']:.0%}" if "roofline_llamacpp" in r else ""])
w = [max(len(str(x[i])) for x in table + [hdr]) for i in range(len(hdr))]
right = {3, 4, 5, 6, 7}


def line(cells):
    return "  ".join(str(x).rjust(w[i]) if i in right else str(x).ljust(w[i]) for i, x in enumerate(cells))


print()
print(f"gridlm vs {peer_build or 'llama.cpp'}, {meta['threads']} threads, {meta['cpu']} ({meta['cores']} cores)"
      + (", QUICK counts" if meta["quick"] else ""))
if bw:
    print("read bandwidth (bench_bandwidth, start / end of run): "
          + " / ".join(f"{b['read_gbs']:.1f}" for b in bw) + f" GB/s at {meta['threads']} threads "
          + "(" + " / ".join(f"{b['read_gbs_1t']:.1f}" for b in bw) + f" GB/s on 1); roofline: {bw_gbs:.1f} GB/s")
print(line(hdr))
print(line(["-" * x for x in w]))
prev = None
for t, r in zip(table, rows):
    if prev is not None and (r["model"], r["file_type"]) != prev:
        print()
    prev = (r["model"], r["file_type"])
    print(line(t))
print()
print("ratio = gridlm / llama.cpp (tok/s: > 1 means gridlm is faster; perplexity: about 1 expected).")
print("roof g / roof l = tok/s x weight bytes read per token (file's tensor data without the token")
print("embedding table, unless the LM head is tied to it) / read bandwidth: share of the decode roofline.")
print("bulk total = (prompt + generated tokens) / time: llama-batched-bench's S t/s (its timed decode")
print("calls); for gridlm the whole `gridlm generate` job's wall time (load, tokenizer, output included).")
for r in rows:
    if r.get("note"):
        print(f"  {r['model']} {r['file_type']} {r['metric']}: {r['note']}")
for msg in meta.get("warnings", []):
    print("warning: " + msg)
print(f"raw outputs: {work}")
if failed:
    print("FAILED: " + "; ".join(failed))
out = {"machine": {"cpu": meta["cpu"], "cores": meta["cores"], "bandwidth": bw, "read_gbs_used": bw_gbs},
       "config": {k: meta[k] for k in ("threads", "quick", "dtype", "counts", "tools")}
       | {"llamacpp_build": peer_build},
       "warnings": meta.get("warnings", []), "rows": rows, "raw": results, "work_dir": work,
       "failed": failed}
if json_out:
    with open(json_out, "w") as f:
        json.dump(out, f, indent=1)
    print(f"JSON: {json_out}")
sys.exit(1 if failed else 0)
PY
}

if [ -n "$report_only" ]; then
  [ -f "$report_only/meta.json" ] || die "$report_only has no meta.json (not a bench_peer work directory)"
  report "$(cd "$report_only" && pwd)"
  exit
fi

# ---------------------------------------------------------------------------------------------
# Tools and inputs: all checked before anything runs.
gridlm=${GRIDLM_BIN:-$repo/build/bin/gridlm}
bench_decode=${BENCH_DECODE_BIN:-$(dirname "$gridlm")/bench_decode}
bench_bandwidth=${BENCH_BANDWIDTH_BIN:-$(dirname "$gridlm")/bench_bandwidth}
gridlm=$(realpath -m "$gridlm") bench_decode=$(realpath -m "$bench_decode") bench_bandwidth=$(realpath -m "$bench_bandwidth")
for t in "$gridlm" "$bench_decode" "$bench_bandwidth"; do
  [ -x "$t" ] || die "$t not found: build it (cmake --build build --target gridlm bench_decode" \
    "bench_bandwidth) or set GRIDLM_BIN / BENCH_DECODE_BIN / BENCH_BANDWIDTH_BIN"
done
peer_bin=$(bash "$repo/tests/bench/build_llamacpp.sh") || die "no llama.cpp tools (tests/bench/build_llamacpp.sh failed)"
for t in llama-bench llama-batched-bench llama-perplexity llama-quantize; do
  [ -x "$peer_bin/$t" ] || die "$peer_bin/$t not found"
done
peer_dir=${GRIDLM_PEER_DIR:-$HOME/.cache/gridlm-peer}
twins=${GRIDLM_PEER_TWINS:-$peer_dir/models}
mkdir -p "$twins"
twins=$(cd "$twins" && pwd)
case "$twins/" in "$repo"/*) die "the twin cache ($twins) is inside the repository" ;; esac
if [ -z "$text_file" ]; then
  for f in /usr/share/common-licenses/GPL-3 /usr/share/common-licenses/Apache-2.0; do
    [ -f "$f" ] || die "$f not found (Debian package base-files); give a text with --text"
  done
else
  [ -f "$text_file" ] || die "--text $text_file not found"
fi
models=("smollm2|SmolLM2-135M-Instruct.Q4_1.gguf|Q4_1" "qwen|Qwen2.5-Coder-0.5B-Instruct.Q4_K_M.gguf|Q4_K_M")
for m in "${models[@]}"; do
  IFS='|' read -r key file _ <<<"$m"
  [ -z "$only" ] || [ "$only" = "$key" ] || continue
  [ -f "$models_dir/$file" ] || die "$models_dir/$file not found (--models DIR)"
done

# Counts. The llama.cpp and gridlm sides of a row always use the same ones.
if [ "$quick" = 1 ]; then
  lb_reps=1 tg=32 decode_steps=32 bulk_n=8 bulk_prompt=32 bulk_gen=32 npl=1,8 p512_n=2 text_bytes=8000
else
  lb_reps=5 tg=128 decode_steps=128 bulk_n=64 bulk_prompt=128 bulk_gen=128 npl=1,16,64 p512_n=3 text_bytes=0
fi
bulk_seqs=${GRIDLM_BULK_SEQS:-$bulk_n}
ppl_ctx=512
bb_ctx=$((bulk_n * (bulk_prompt + bulk_gen)))

[ -n "$work" ] || work=$(mktemp -d "${TMPDIR:-/tmp}/gridlm-bench-peer.$(date +%Y%m%d-%H%M%S).XXXX")
mkdir -p "$work/peer" "$work/gridlm" "$work/models"
work=$(cd "$work" && pwd)
[ -z "$(find "$work/peer" "$work/gridlm" -mindepth 1 | head -1)" ] ||
  die "--work $work already holds a run; give an empty directory"
note "raw outputs in $work"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
warnings=()

# Perplexity text: GPL-3 then Apache-2.0 (quick: the first $text_bytes bytes).
if [ -n "$text_file" ]; then
  cp "$text_file" "$work/text.full.txt"
else
  cat /usr/share/common-licenses/GPL-3 /usr/share/common-licenses/Apache-2.0 >"$work/text.full.txt"
fi
if [ "$text_bytes" -gt 0 ]; then
  head -c "$text_bytes" "$work/text.full.txt" >"$work/text.txt"
else
  cp "$work/text.full.txt" "$work/text.txt"
fi

# Prompts as token ids (exact lengths whatever the tokenizer; ids 1000..20999 are ordinary tokens
# in both vocabularies), every record generating exactly its max_tokens.
python3 - "$bulk_n" "$bulk_prompt" "$bulk_gen" >"$work/bulk.prompts.jsonl" <<'PY'
import json, random, sys
n, p, g = map(int, sys.argv[1:])
rng = random.Random(20240917)
for i in range(n):
    print(json.dumps({"id": f"b{i}", "prompt": [1000 + rng.randrange(20000) for _ in range(p)],
                      "max_tokens": g, "ignore_eos": True}))
PY
python3 - "$p512_n" >"$work/prefill512.prompts.jsonl" <<'PY'
import json, random, sys
rng = random.Random(512)
for i in range(int(sys.argv[1])):
    print(json.dumps({"id": f"p{i}", "prompt": [1000 + rng.randrange(20000) for _ in range(512)],
                      "max_tokens": 1, "ignore_eos": True}))
PY

# JSON string and list of strings, for meta.json.
jstr() { python3 -c 'import json, sys; print(json.dumps(sys.argv[1]))' "$1"; }
jlist() { python3 -c 'import json, sys; print(json.dumps(sys.argv[1:]))' "$@"; }

# run STEP CMD...: stdout to STEP.out, stderr to STEP.err, the command line to STEP.cmd, the wall
# seconds to STEP.wall; STEP.status is ok or failed. Returns the command's exit status.
run() {
  local step=$1 rc=0 t0 t1
  shift
  printf '%q ' "$@" >"$work/$step.cmd"
  echo >>"$work/$step.cmd"
  t0=$(date +%s.%N)
  "$@" >"$work/$step.out" 2>"$work/$step.err" || rc=$?
  t1=$(date +%s.%N)
  python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.3f}')" "$t0" "$t1" >"$work/$step.wall"
  local how="FAILED (exit $rc, see $work/$step.err)"
  if [ $rc = 0 ]; then echo ok >"$work/$step.status"; how=ok; else echo failed >"$work/$step.status"; fi
  note "$(printf '%-32s %s in %6.1f s' "$step" "$how" "$(cat "$work/$step.wall")")"
  return $rc
}

# with_dtype STEP COMMAND ARGS...: runs `gridlm COMMAND ARGS... --dtype D`, D being the dtype for
# COMMAND (at first --dtype's; no option when empty). When the binary rejects D (a usage error
# naming the dtype) it runs again with f32 and keeps f32 for COMMAND from then on, with a warning.
# A generate job's output (STEP.jsonl) is removed before each try.
declare -A dtype_of=([generate]=$dtype [score]=$dtype)
with_dtype() {
  local step=$1 cmd=$2 rc=0 dt=()
  shift 2
  [ -z "${dtype_of[$cmd]}" ] || dt=(--dtype "${dtype_of[$cmd]}")
  rm -f "$work/$step.jsonl" "$work/$step.jsonl".*
  run "$step" "$gridlm" "$cmd" "$@" "${dt[@]}" || rc=$?
  if [ $rc = 2 ] && [ ${#dt[@]} = 2 ] && [ "${dtype_of[$cmd]}" != f32 ] && grep -qi -- dtype "$work/$step.err"; then
    warnings+=("gridlm $cmd rejected --dtype ${dtype_of[$cmd]} ($(grep -i -m1 dtype "$work/$step.err")): ran f32")
    note "warning: gridlm $cmd rejected --dtype ${dtype_of[$cmd]}; using f32"
    dtype_of[$cmd]=f32
    rm -f "$work/$step.jsonl" "$work/$step.jsonl".*
    run "$step" "$gridlm" "$cmd" "$@" --dtype f32 || true
  fi
  return 0
}

# gridlm_generate STEP MODEL PROMPTS [options]: a greedy `gridlm generate` job; output STEP.jsonl.
gridlm_generate() {
  local step=$1 model=$2 prompts=$3
  shift 3
  with_dtype "$step" generate --model "$model" --prompts "$prompts" --output "$work/$step.jsonl" \
    --temperature 0 --ignore-eos --threads "$threads" --progress-interval 100000 "$@"
}

# bench_decode on one file: it benchmarks fixed file names under --models, so each variant gets a
# directory with a link under the shipped name. --dtype as for generate: a binary that does not
# know the asked type prints no model section, and the step runs again with f32. --json goes last:
# a bench_decode without it reads options in pairs and ignores a lone last word.
bddtype=$dtype
run_bench_decode() {
  local step=$1 key=$2 dir=$3
  run "$step" "$bench_decode" --models "$dir" --only "$key" --threads "$threads" --steps "$decode_steps" \
    --dtype "$bddtype" --json || return 0
  if ! grep -q "prefill [0-9]* tokens: .* tok/s" "$work/$step.out" && ! grep -q "skipped" "$work/$step.out"; then
    if [ "$bddtype" != f32 ]; then
      warnings+=("bench_decode ran no model with --dtype $bddtype: ran f32")
      note "warning: bench_decode does not run --dtype $bddtype; using f32"
      bddtype=f32
      run "$step" "$bench_decode" --models "$dir" --only "$key" --threads "$threads" --steps "$decode_steps" \
        --dtype "$bddtype" --json || return 0
    fi
  fi
  if grep -q "skipped" "$work/$step.out" || ! grep -q "prefill [0-9]* tokens: .* tok/s" "$work/$step.out"; then
    echo failed >"$work/$step.status"
    note "$step: FAILED ($(grep -m1 skipped "$work/$step.out" || echo 'no results'))"
  fi
}

score_help=$("$gridlm" score --help 2>&1) && have_score=1 || have_score=0
[ "$have_score" = 1 ] || warnings+=("gridlm has no score subcommand: gridlm perplexity skipped")
if [ "$have_score" = 1 ] && ! grep -q -- "--dtype" <<<"$score_help"; then
  dtype_of[score]=""
  warnings+=("gridlm score has no --dtype option: it ran with its default weight type")
fi

run bandwidth.start "$bench_bandwidth" --threads "$threads" || die "bench_bandwidth failed"

# Twins: F32 and Q8_0 of each shipped file, made once and cached outside the repository.
models_json=()
for m in "${models[@]}"; do
  IFS='|' read -r key file ftype <<<"$m"
  [ -z "$only" ] || [ "$only" = "$key" ] || continue
  stem=${file%."$ftype".gguf}
  variants=("file|$ftype|$models_dir/$file")
  for tt in Q8_0 F32; do
    twin=$twins/$stem.$tt.gguf
    if [ ! -s "$twin" ] || [ "$twin" -ot "$models_dir/$file" ]; then
      run "peer/$key.quantize_$tt" "$peer_bin/llama-quantize" --allow-requantize "$models_dir/$file" \
        "$twins/$stem.$tt.part.gguf" "$tt" "$threads" || die "llama-quantize to $tt failed"
      mv "$twins/$stem.$tt.part.gguf" "$twin"
    fi
    variants+=("${tt,,}|$tt|$twin")
  done
  vjson=()
  for v in "${variants[@]}"; do
    IFS='|' read -r var vtype vpath <<<"$v"
    mkdir -p "$work/models/$var"
    ln -sf "$vpath" "$work/models/$var/$file"
    vjson+=("{\"var\": \"$var\", \"type\": \"$vtype\", \"path\": $(jstr "$vpath")}")
  done
  models_json+=("{\"key\": \"$key\", \"name\": \"${stem}\", \"file\": \"$file\", \"variants\": [$(IFS=,; echo "${vjson[*]}")]}")

  # Each file: the peer's measurements, then gridlm's, back to back.
  for v in "${variants[@]}"; do
    IFS='|' read -r var vtype vpath <<<"$v"
    tag=$key.$var
    note "--- $stem $vtype ($vpath)"
    run "peer/$tag.bench" "$peer_bin/llama-bench" -m "$vpath" -p 128,512 -n "$tg" -t "$threads" -r "$lb_reps" \
      -o json || true
    run "peer/$tag.batched" "$peer_bin/llama-batched-bench" -m "$vpath" -npp "$bulk_prompt" -ntg "$bulk_gen" \
      -npl "$npl" -c "$bb_ctx" -t "$threads" -tb "$threads" --output-format jsonl || true
    run "peer/$tag.ppl" "$peer_bin/llama-perplexity" -m "$vpath" -f "$work/text.txt" -c "$ppl_ctx" \
      -t "$threads" -tb "$threads" || true
    run_bench_decode "gridlm/$tag.decode" "$key" "$work/models/$var"
    if ! grep -q "prefill 512 tokens" "$work/gridlm/$tag.decode.out" 2>/dev/null; then
      gridlm_generate "gridlm/$tag.prefill512" "$vpath" "$work/prefill512.prompts.jsonl" --max-seqs 1 \
        --prefill-chunk 512
    fi
    gridlm_generate "gridlm/$tag.bulk" "$vpath" "$work/bulk.prompts.jsonl" --max-seqs "$bulk_seqs" --order input
    if [ "$have_score" = 1 ]; then
      with_dtype "gridlm/$tag.score" score --model "$vpath" --text "$work/text.txt" --ctx "$ppl_ctx" \
        --threads "$threads"
    else
      echo "skipped" >"$work/gridlm/$tag.score.status"
    fi
  done
done

run bandwidth.end "$bench_bandwidth" --threads "$threads" || die "bench_bandwidth failed"

cat >"$work/meta.json" <<EOF
{"threads": $threads, "quick": $quick, "dtype": $(jstr "$dtype"), "cores": $(nproc),
 "cpu": $(jstr "$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)"),
 "tools": {"gridlm": $(jstr "$gridlm"), "bench_decode": $(jstr "$bench_decode"),
           "bench_bandwidth": $(jstr "$bench_bandwidth"), "llama.cpp": $(jstr "$peer_bin"),
           "gridlm_dtype_generate": $(jstr "${dtype_of[generate]}"), "gridlm_dtype_score": $(jstr "${dtype_of[score]}"),
           "gridlm_dtype_bench_decode": $(jstr "$bddtype")},
 "counts": {"prefill": [128, 512], "gen_prefill_len": 512, "gen_prefill_n": $p512_n, "tg": $tg,
            "decode_steps": $decode_steps, "llama_bench_reps": $lb_reps, "bulk_n": $bulk_n,
            "bulk_prompt": $bulk_prompt, "bulk_gen": $bulk_gen, "bulk_seqs": $bulk_seqs, "npl": "$npl",
            "ppl_ctx": $ppl_ctx, "text_bytes": $(wc -c <"$work/text.txt")},
 "warnings": $(jlist "${warnings[@]}"),
 "models": [$(IFS=,; echo "${models_json[*]}")]}
EOF
report "$work"
