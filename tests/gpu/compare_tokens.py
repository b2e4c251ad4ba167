#!/usr/bin/env python3
"""Compares the generated token ids of two `gridlm generate --logprobs --top-logprobs K` outputs,
record by record (matched by id). Python standard library only.

    compare_tokens.py REF.jsonl OTHER.jsonl [--names cpu,cuda] [--tie-tol 0.1] [--exact]

Per record it prints `identical` (with the largest |logprob difference| of the chosen tokens) or
the first index where the ids differ, each side's token there and the log-prob gap each side sees
between the two candidates. A divergence is a near-tie when both gaps are known (each token is in
the other side's top-K) and at most --tie-tol nats: two rounding-different computations may pick
either; anything else is a MISMATCH. --exact: any difference, also of a log-prob, is a MISMATCH
(for two runs that must be bit-identical, e.g. CUDA graphs on and off).
Exit status: 0 when no record is a MISMATCH or missing or an error line; 1 otherwise; 2 usage.
"""
import argparse
import json
import sys


def load(path):
    recs = {}
    try:
        f = open(path, encoding="utf-8")
    except OSError as e:
        print(f"not compared: cannot read {path} ({e.strerror})")
        sys.exit(1)
    with f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                r = json.loads(line)
            except ValueError as e:
                raise SystemExit(f"{path}:{n}: not JSON ({e})")
            recs[str(r.get("id", f"line{n}"))] = r
    return recs


def logprob_of(entry, token_id):
    """The log-prob this step gives token_id: the chosen token's, else its top_logprobs entry."""
    if entry.get("token_id") == token_id:
        return entry.get("logprob")
    for t in entry.get("top_logprobs") or []:
        if t.get("token_id") == token_id:
            return t.get("logprob")
    return None


def fmt_gap(g):
    return "n/a (not in top-K)" if g is None else f"{g:.4f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("ref")
    ap.add_argument("other")
    ap.add_argument("--names", default="ref,other")
    ap.add_argument("--tie-tol", type=float, default=0.1)
    ap.add_argument("--exact", action="store_true")
    a = ap.parse_args()
    na, nb = (a.names.split(",") + ["other"])[:2]
    ra, rb = load(a.ref), load(a.other)
    counts = {"identical": 0, "near-tie": 0, "MISMATCH": 0}
    bad = 0
    for rid in sorted(set(ra) | set(rb), key=lambda k: (len(k), k)):
        x, y = ra.get(rid), rb.get(rid)
        if x is None or y is None:
            print(f"{rid}: MISSING in {na if x is None else nb}")
            bad += 1
            continue
        if "error" in x or "error" in y:
            print(f"{rid}: ERROR {na}: {x.get('error', '-')!s:.120}; {nb}: {y.get('error', '-')!s:.120}")
            bad += 1
            continue
        lx, ly = x.get("logprobs") or [], y.get("logprobs") or []
        if not lx or not ly:
            print(f"{rid}: no logprobs in {na if not lx else nb} (run generate with --logprobs --top-logprobs K)")
            bad += 1
            continue
        ids_x = [e["token_id"] for e in lx]
        ids_y = [e["token_id"] for e in ly]
        div = next((i for i in range(min(len(ids_x), len(ids_y))) if ids_x[i] != ids_y[i]), None)
        common = div if div is not None else min(len(ids_x), len(ids_y))
        dmax = max((abs(lx[i]["logprob"] - ly[i]["logprob"]) for i in range(common)), default=0.0)
        if div is None and len(ids_x) == len(ids_y):
            verdict = "identical"
            if a.exact and dmax != 0.0:
                verdict = "MISMATCH"
            print(f"{rid}: {verdict}, {len(ids_x)} tokens, max |dlogprob| {dmax:.2e}")
        elif div is None:
            verdict = "MISMATCH"
            print(f"{rid}: {verdict}: same first {common} tokens, then {na} has {len(ids_x)} and {nb} {len(ids_y)}")
        else:
            tx, ty = ids_x[div], ids_y[div]
            # Each side's preference of its own token over the other side's, in nats.
            px, qx = logprob_of(lx[div], tx), logprob_of(lx[div], ty)
            py, qy = logprob_of(ly[div], ty), logprob_of(ly[div], tx)
            gx = None if px is None or qx is None else px - qx
            gy = None if py is None or qy is None else py - qy
            tie = gx is not None and gy is not None and gx <= a.tie_tol and gy <= a.tie_tol
            verdict = "near-tie" if tie and not a.exact else "MISMATCH"
            print(f"{rid}: {verdict} at token {div} of {len(ids_x)}: {na} {tx} {lx[div].get('token')!r} "
                  f"(prefers it by {fmt_gap(gx)}), {nb} {ty} {ly[div].get('token')!r} (prefers it by {fmt_gap(gy)}); "
                  f"max |dlogprob| before it {dmax:.2e}")
        counts[verdict] += 1
        bad += verdict == "MISMATCH"
    mode = f"tie tolerance {a.tie_tol} nats" + (", exact" if a.exact else "")
    print(f"summary {na} vs {nb}: " + ", ".join(f"{v} {k}" for k, v in counts.items()) +
          f", {bad} bad of {len(set(ra) | set(rb))} records ({mode})")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
