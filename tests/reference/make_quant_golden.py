#!/usr/bin/env python3
# Golden data for the reference quantisers (engine/core/quantize.h, tests/unit/test_quantize.cpp):
# fixed-seed f32 rows and the blocks two independent implementations make of them:
#   - the `gguf` Python package (gguf.quants.quantize) for Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 (it has no
#     quantiser for the K types);
#   - llama.cpp's own C reference quantisers (ggml_quantize_chunk without an importance matrix,
#     i.e. quantize_row_*_ref) for every type, Q4_K / Q5_K / Q6_K included, when --ggml-build
#     names a llama.cpp build tree. The script then also checks that both references agree on
#     the legacy types.
#
# Pinned versions (the ones the committed golden file was made with):
#   python 3.11.7, gguf==0.19.0, numpy==2.4.6; llama.cpp as vendored in the PyPI sdist
#   llama_cpp_python==0.3.36 (ggml 0.25.3), configured with plain `cmake -S vendor/llama.cpp -B
#   build -DCMAKE_BUILD_TYPE=Release` and built far enough for ggml/src/libggml-base.a (its
#   quantisers are compiled for baseline x86-64, without FMA), GCC 12.
# Run from the repository root (a few seconds):
#   pip install gguf==0.19.0 numpy==2.4.6
#   python tests/reference/make_quant_golden.py --ggml-build LLAMA_CPP/build
# Writes tests/reference/golden/quant_blocks.json:
#   rows:  [{name, n, x}] with x the row's little-endian f32 bytes in hex
#   types: {q8_0: {source, blocks: [hex per row]}, ...} (lower-case gridlm type names)
import argparse
import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as QT

GOLDEN = Path(__file__).resolve().parent / "golden" / "quant_blocks.json"
LEGACY = [QT.Q8_0, QT.Q4_0, QT.Q4_1, QT.Q5_0, QT.Q5_1]
K_TYPES = [QT.Q4_K, QT.Q5_K, QT.Q6_K]

HELPER_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include "ggml.h"
/* argv: ggml type number, rows, values per row; f32 rows on stdin -> blocks on stdout */
int main(int argc, char ** argv) {
    if (argc != 4) return 2;
    const int type = atoi(argv[1]);
    const long rows = atol(argv[2]), n = atol(argv[3]);
    float * x = malloc(sizeof(float) * rows * n);
    if (fread(x, sizeof(float), rows * n, stdin) != (size_t)(rows * n)) return 3;
    const size_t bytes = ggml_row_size((enum ggml_type)type, n) * rows;
    void * y = malloc(bytes);
    if (ggml_quantize_chunk((enum ggml_type)type, x, y, 0, rows, n, NULL) != bytes) return 4;
    fwrite(y, 1, bytes, stdout);
    return 0;
}
"""


def make_rows() -> list[tuple[str, np.ndarray]]:
    """Rows of 256 or 512 values that reach the quantisers' corner cases."""
    rng = np.random.default_rng(20260117)
    rows = []

    def add(name, x):
        rows.append((name, np.ascontiguousarray(x, dtype=np.float32)))

    add("normal", rng.standard_normal(512))
    add("weights_0.02", 0.02 * rng.standard_normal(256))
    add("small_1e-3", 1e-3 * rng.standard_normal(256))
    outl = 0.05 * rng.standard_normal(256)
    outl[[3, 77, 130, 201]] = [2.5, -3.0, 1.75, -0.9]
    add("outliers", outl)
    add("heavy_tail", 0.1 * rng.standard_t(3, 256))
    add("zeros", np.zeros(256))
    add("constant_pos", np.full(256, 0.5))
    add("constant_neg", np.full(256, -0.25))
    add("positive", rng.uniform(0.0, 1.0, 256))
    add("negative", -rng.uniform(0.1, 2.0, 256))
    add("tiny_1e-6", 1e-6 * rng.standard_normal(256))
    add("tiny_1e-9", 1e-9 * rng.standard_normal(256))
    add("quarter_grid", rng.integers(-16, 17, 256) / 4.0)
    add("large_1e3", 1e3 * rng.standard_normal(256))
    sparse = np.zeros(256)
    sparse[rng.choice(256, 12, replace=False)] = rng.standard_normal(12)
    add("sparse", sparse)
    mixed = rng.standard_normal(256)
    mixed[:32] = 0.0
    mixed[32:64] = 1e-4 * rng.standard_normal(32)
    add("mixed_blocks", mixed)
    return rows


def ggml_blocks(build: Path, qtype: QT, x: np.ndarray, exe: Path) -> bytes:
    out = subprocess.run([str(exe), str(int(qtype)), "1", str(x.size)], input=x.astype("<f4").tobytes(),
                         capture_output=True, check=True)
    return out.stdout


def build_helper(build: Path, tmp: Path) -> Path:
    src_root = build.parent
    (tmp / "q.c").write_text(HELPER_C)
    exe = tmp / "ggml_quantize"
    subprocess.run(["cc", "-O1", "-std=c11", "-I", str(src_root / "ggml" / "include"), str(tmp / "q.c"),
                    str(build / "ggml" / "src" / "libggml-base.a"), "-lstdc++", "-lm", "-fopenmp", "-lpthread",
                    "-o", str(exe)], check=True)
    return exe


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ggml-build", type=Path, help="llama.cpp build tree (ggml/src/libggml-base.a inside)")
    args = ap.parse_args()
    rows = make_rows()
    out = {"generator": "tests/reference/make_quant_golden.py",
           "versions": {"gguf": "0.19.0", "numpy": np.__version__, "llama.cpp": "llama_cpp_python 0.3.36 (ggml 0.25.3)"},
           "rows": [{"name": n, "n": int(x.size), "x": x.astype("<f4").tobytes().hex()} for n, x in rows],
           "types": {}}
    for t in LEGACY:
        blocks = [gguf.quants.quantize(x.reshape(1, -1), t).tobytes().hex() for _, x in rows]
        out["types"][t.name.lower()] = {"source": "gguf 0.19.0 gguf.quants.quantize", "blocks": blocks}
    if args.ggml_build:
        with tempfile.TemporaryDirectory() as d:
            exe = build_helper(args.ggml_build.resolve(), Path(d))
            for t in LEGACY:
                got = [ggml_blocks(args.ggml_build, t, x, exe).hex() for _, x in rows]
                mine = out["types"][t.name.lower()]["blocks"]
                bad = [rows[i][0] for i in range(len(rows)) if got[i] != mine[i]]
                if bad:
                    raise SystemExit(f"{t.name}: gguf and ggml disagree on rows {bad}")
                out["types"][t.name.lower()]["source"] += "; ggml_quantize_chunk agrees"
            for t in K_TYPES:
                blocks = [ggml_blocks(args.ggml_build, t, x, exe).hex() for _, x in rows]
                out["types"][t.name.lower()] = {"source": "llama.cpp ggml_quantize_chunk (quantize_row_*_ref)",
                                                "blocks": blocks}
    GOLDEN.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {GOLDEN} ({GOLDEN.stat().st_size} bytes): {len(rows)} rows, types {sorted(out['types'])}")


if __name__ == "__main__":
    main()
