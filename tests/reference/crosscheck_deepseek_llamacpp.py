#!/usr/bin/env python3
# llama.cpp itself on the tiny DeepSeek GGUFs of make_deepseek_gguf.py, against the HF transformers
# goldens: a third implementation reading the same files as gridlm. Writes a summary to
# tests/reference/golden/llamacpp_crosscheck_deepseek.json (not read by the tests).
#
# llama.cpp: the copy vendored in llama-cpp-python 0.3.36's sdist, built in its build/ directory
# for the CPU with static libraries (CMAKE_BUILD_TYPE=Release, BUILD_SHARED_LIBS=OFF, GGML_NATIVE=ON).
# A 40-line C++ program (below) is compiled against build/src/libllama.a and build/ggml/src/*.a
# with g++ (C++17, OpenMP); it evaluates each golden prompt in one batch with an F32 KV cache and
# prints every position's logits. Python 3.11 with numpy 2.4.6.
# Usage: python3 tests/reference/crosscheck_deepseek_llamacpp.py --llama-cpp /path/to/vendor/llama.cpp
#
# Flash attention is off: with llama.cpp's default ("auto", on for the CPU) the V3 file's logits
# differ from HF by 5.4e-4 of the range, with it off by 5.7e-7. The V2 file does not load:
# llama.cpp requires deepseek2.attention.q_lora_rank unless the model has 26, 27 or 48 layers (its
# test for the "lite" models), and the tiny V2 (3 layers, plain q_proj) has none. The Q8_0 file is
# compared with the golden of its dequantised weights; llama.cpp multiplies Q8_0 weights with 8-bit
# activation blocks, so its errors are those of kept blocks (gridlm's test_gguf_deepseek.cpp).
import argparse
import json
import os
import subprocess
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "golden")

PROGRAM = r"""
#include <cstdio>
#include <cstdlib>
#include <vector>
#include "llama.h"
int main(int argc, char** argv) {  // MODEL ids...: one line of logits per position
    llama_backend_init();
    llama_model* model = llama_model_load_from_file(argv[1], llama_model_default_params());
    if (!model) return 1;
    std::vector<llama_token> ids;
    for (int i = 2; i < argc; ++i) ids.push_back(atoi(argv[i]));
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = cp.n_batch = cp.n_ubatch = 256;
    cp.n_threads = cp.n_threads_batch = 1;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    cp.type_k = cp.type_v = GGML_TYPE_F32;
    llama_context* ctx = llama_init_from_model(model, cp);
    if (!ctx) return 1;
    llama_batch b = llama_batch_init((int)ids.size(), 0, 1);
    for (size_t i = 0; i < ids.size(); ++i) {
        b.token[i] = ids[i]; b.pos[i] = (int)i; b.n_seq_id[i] = 1; b.seq_id[i][0] = 0; b.logits[i] = 1;
    }
    b.n_tokens = (int)ids.size();
    if (llama_decode(ctx, b) != 0) return 1;
    const int V = llama_vocab_n_tokens(llama_model_get_vocab(model));
    for (size_t i = 0; i < ids.size(); ++i) {
        const float* l = llama_get_logits_ith(ctx, (int)i);
        for (int v = 0; v < V; ++v) printf("%.9g%c", l[v], v + 1 == V ? '\n' : ' ');
    }
    llama_batch_free(b); llama_free(ctx); llama_model_free(model);
    return 0;
}
"""

CHECKS = [
    ("tiny-deepseek-v3.f32.gguf", "logits_tiny_deepseek_v3.json"),
    ("tiny-deepseek-v3.q8_0.gguf", "logits_tiny_deepseek_v3_q8_0.json"),
    ("tiny-deepseek-v2.f32.gguf", "logits_tiny_deepseek_v2.json"),
]


def build(llama_cpp, work):
    src, exe = os.path.join(work, "llama_logits.cpp"), os.path.join(work, "llama_logits")
    with open(src, "w") as f:
        f.write(PROGRAM)
    b = os.path.join(llama_cpp, "build")
    libs = [os.path.join(b, "src", "libllama.a")] + [os.path.join(b, "ggml", "src", f"libggml{s}.a")
                                                      for s in ("", "-cpu", "-base")]
    subprocess.run(["g++", "-std=c++17", "-O1", "-I", os.path.join(llama_cpp, "include"), "-I",
                    os.path.join(llama_cpp, "ggml", "include"), src, "-o", exe, *libs, "-fopenmp", "-lpthread", "-ldl"],
                   check=True)
    return exe


def check(exe, gguf, golden):
    d = json.load(open(os.path.join(GOLDEN, golden)))
    out = {"model_file": gguf, "golden": golden, "cases": []}
    for c in d["cases"]:
        p = subprocess.run([exe, os.path.join(GOLDEN, gguf)] + [str(i) for i in c["prompt_ids"]], capture_output=True,
                           text=True)
        if p.returncode != 0:
            out["error"] = [l for l in p.stderr.splitlines() if "error" in l][-1]
            print(f"{gguf}: llama.cpp: {out['error']}")
            return out
        rows = np.array([[float(x) for x in line.split()] for line in p.stdout.splitlines()])
        worst, agree = 0.0, 0
        for r in c["positions"]:
            row = rows[r["pos"]]
            e = max([abs(row[i] - v) for i, v in zip(r["top_ids"], r["top_values"])] +
                    [abs(row.max() - r["max"]), abs(row.min() - r["min"])])
            worst = max(worst, e / (r["max"] - r["min"]))
            agree += int(np.argmax(row) == r["top_ids"][0])
        out["cases"].append({"name": c["name"], "max_rel_logit_diff": worst, "argmax_agrees": agree,
                             "positions": len(c["positions"])})
    w = max(x["max_rel_logit_diff"] for x in out["cases"])
    print(f"{gguf} vs {golden}: max |dlogit|/range {w:.2e}, argmax agrees on "
          f"{sum(x['argmax_agrees'] for x in out['cases'])} of {sum(x['positions'] for x in out['cases'])}")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-cpp", required=True)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as work:
        exe = build(os.path.abspath(a.llama_cpp), work)
        doc = {"llama_cpp": "llama-cpp-python 0.3.36 sdist (vendor/llama.cpp), CPU, 1 thread",
               "kv_cache": "F32", "flash_attention": "off", "models": [check(exe, g, j) for g, j in CHECKS]}
    path = os.path.join(GOLDEN, "llamacpp_crosscheck_deepseek.json")
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
    print("wrote", path)


if __name__ == "__main__":
    main()
