#!/usr/bin/env python3
# Second, independent reference: llama.cpp on the same weights re-quantised to F32 (F32 KV cache),
# checked against the HF goldens written by make_logits_golden.py. Writes a short summary to
# tests/reference/golden/llamacpp_crosscheck.json (greedy agreement and logit differences).
#
# Exact environment used (Python 3.11, from PyPI; builds llama.cpp from source on install):
#   pip install llama-cpp-python==0.3.36 numpy==2.4.6
# Usage:
#   python crosscheck_llamacpp.py [--models-dir DIR] [--work-dir /tmp] [--only smollm2|qwen]
import argparse
import ctypes
import json
import os

import llama_cpp
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "golden")
LLAMA_FTYPE_ALL_F32 = 0
GGML_TYPE_F32 = 0


def requantize_f32(src, dst):
    if os.path.exists(dst):
        return
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = LLAMA_FTYPE_ALL_F32
    params.nthread = 2
    params.allow_requantize = True
    rc = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(params))
    if rc != 0:
        raise RuntimeError(f"llama_model_quantize failed ({rc}) for {src}")


def check(models_dir, work_dir, golden_name):
    gold = json.load(open(os.path.join(GOLDEN, golden_name)))
    src = os.path.join(models_dir, gold["model_file"])
    dst = os.path.join(work_dir, os.path.splitext(gold["model_file"])[0] + ".F32.gguf")
    requantize_f32(src, dst)
    llm = llama_cpp.Llama(dst, n_ctx=512, n_batch=512, n_threads=2, logits_all=True, type_k=GGML_TYPE_F32,
                          type_v=GGML_TYPE_F32, verbose=False)
    out = {"model_file": gold["model_file"], "cases": []}
    for c in gold["cases"]:
        ids = c["prompt_ids"]
        llm.reset()
        llm.eval(ids)
        worst = 0.0
        for rec in c["positions"]:
            row = np.asarray(llm.scores[rec["pos"]], dtype=np.float64)
            rng = rec["max"] - rec["min"]
            d = np.abs(row[rec["top_ids"]] - np.asarray(rec["top_values"])).max()
            worst = max(worst, float(d / rng))
        greedy = []
        for step in range(gold["n_greedy"]):
            t = int(np.argmax(llm.scores[llm.n_tokens - 1]))
            greedy.append(t)
            if step + 1 < gold["n_greedy"]:
                llm.eval([t])
        ref = c["greedy_ids"]
        same = next((i for i in range(len(ref)) if greedy[i] != ref[i]), len(ref))
        out["cases"].append({"name": c["name"], "max_rel_logit_diff": worst, "greedy_identical_prefix": same})
        print(f"{gold['model_file']} {c['name']}: max |dlogit|/range {worst:.2e}, greedy identical for {same}"
              f"/{len(ref)} tokens", flush=True)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models-dir", default=os.path.join(HERE, "..", "..", "models"))
    ap.add_argument("--work-dir", default="/tmp")
    ap.add_argument("--only", choices=["smollm2", "qwen"])
    a = ap.parse_args()
    res = {"llama_cpp_python": llama_cpp.__version__, "kv_cache": "F32", "weights": "re-quantised to F32",
           "models": []}
    if a.only in (None, "smollm2"):
        res["models"].append(check(a.models_dir, a.work_dir, "logits_smollm2.json"))
    if a.only in (None, "qwen"):
        res["models"].append(check(a.models_dir, a.work_dir, "logits_qwen2.json"))
    path = os.path.join(GOLDEN, "llamacpp_crosscheck.json" if a.only is None else f"llamacpp_crosscheck_{a.only}.json")
    with open(path, "w") as f:
        json.dump(res, f, indent=1)
    print("wrote", path)


if __name__ == "__main__":
    main()
