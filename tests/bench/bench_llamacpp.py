#!/usr/bin/env python3
# Same-machine comparison for bench_decode: llama.cpp's prefill and batch-1 decode speed on the
# test models, F32 (re-quantised with llama_model_quantize) and the original quantised file.
# Prints numbers; asserts nothing.
# Superseded by tests/bench/bench_peer.sh (llama.cpp's own tools next to gridlm, one table).
#
# Environment (Python 3.11, PyPI): pip install llama-cpp-python==0.3.36 (builds llama.cpp, ~10 min)
# Usage: python bench_llamacpp.py [--models DIR] [--threads 2] [--only smollm2|qwen]
import argparse
import ctypes
import os
import tempfile
import time

import llama_cpp

MODELS = {
    "smollm2": "SmolLM2-135M-Instruct.Q4_1.gguf",
    "qwen": "Qwen2.5-Coder-0.5B-Instruct.Q4_K_M.gguf",
}


def requantize_f32(src, dst):
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = 0  # LLAMA_FTYPE_ALL_F32
    params.allow_requantize = True
    rc = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(params))
    if rc != 0:
        raise RuntimeError(f"llama_model_quantize failed ({rc}) for {src}")


def bench(path, threads, n_prompt=128, n_decode=64):
    llm = llama_cpp.Llama(model_path=path, n_ctx=512, n_batch=512, n_threads=threads,
                          n_threads_batch=threads, verbose=False)
    prompt = [llm.token_bos() if llm.token_bos() >= 0 else 1] + [(i * 37) % 1000 + 100 for i in range(n_prompt - 1)]
    llm.reset()
    t0 = time.perf_counter()
    llm.eval(prompt)
    prefill = n_prompt / (time.perf_counter() - t0)
    tok = int(llm.scores[llm.n_tokens - 1].argmax())
    t0 = time.perf_counter()
    for _ in range(n_decode):
        llm.eval([tok])
        tok = int(llm.scores[llm.n_tokens - 1].argmax())
    decode = n_decode / (time.perf_counter() - t0)
    return prefill, decode


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=os.environ.get("GRIDLM_MODELS", "models"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", choices=sorted(MODELS))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for key, name in MODELS.items():
            if args.only and key != args.only:
                continue
            src = os.path.join(args.models, name)
            f32 = os.path.join(tmp, key + ".F32.gguf")
            requantize_f32(src, f32)
            for label, path in (("F32", f32), (name.split(".")[-2], src)):
                prefill, decode = bench(path, args.threads)
                print(f"llama.cpp {llama_cpp.__version__} {key} {label:7s} {args.threads} threads: "
                      f"prefill 128 {prefill:7.1f} tok/s, decode b=1 {decode:6.1f} tok/s", flush=True)
            os.remove(f32)


if __name__ == "__main__":
    main()
