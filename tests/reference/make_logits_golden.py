#!/usr/bin/env python3
# Golden logits and greedy continuations from HF transformers (fp32) for the decoder tests
# (tests/unit/test_model_golden.cpp). Writes tests/reference/golden/logits_<model>.json.
#
# Exact environment used (Python 3.11, from PyPI):
#   pip install torch==2.15.0 transformers==5.24.0 gguf==0.19.0 accelerate==1.15.0 \
#               numpy==2.4.6 safetensors==0.8.0
# Usage:
#   python make_logits_golden.py [--models-dir DIR] [--only smollm2|qwen|tiny]
# The GGUF weights are dequantised to fp32 by transformers; the prompt ids come from the HF
# tokenizer built from the same GGUF and are stored, so the C++ tests need no tokenizer.
import argparse
import json
import os
import sys

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "golden")

PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
    "Once upon a time, in a small village by the sea,",
    "List three prime numbers greater than 100:",
    "Translate to German: The weather is nice today.",
    "import numpy as np\n\n# compute the mean of each column\n",
    "Q: Why is the sky blue?\nA:",
    "1, 1, 2, 3, 5, 8, 13,",
]
CHAT_PROMPTS = [0, 1, 3, 6]  # also run these chat-formatted (system-less user turn)
N_GREEDY = 64
TOP_K = 20


def logits_record(row, pos):
    vals, ids = torch.topk(row, TOP_K)
    return {
        "pos": pos,
        "top_ids": [int(i) for i in ids],
        "top_values": [float(v) for v in vals],
        "max": float(row.max()),
        "min": float(row.min()),
    }


@torch.no_grad()
def run_case(model, ids, name, chat, text):
    inp = torch.tensor([ids])
    out = model(inp, use_cache=True)
    logits = out.logits[0].float()  # [n, vocab]
    n = len(ids)
    positions = sorted(set(p for p in [0, 1, n // 2, n - 1] if p < n))
    rec = {
        "name": name,
        "chat": chat,
        "text": text,
        "prompt_ids": ids,
        "positions": [logits_record(logits[p], p) for p in positions],
    }
    # Greedy for exactly N_GREEDY tokens (EOS does not stop it: the engine test does the same).
    past = out.past_key_values
    nxt = int(torch.argmax(logits[-1]))
    greedy, margins = [], []
    last = logits[-1]
    for step in range(N_GREEDY):
        top2 = torch.topk(last, 2).values
        margins.append(float(top2[0] - top2[1]))
        greedy.append(nxt)
        if step + 1 == N_GREEDY:
            break
        o = model(torch.tensor([[nxt]]), past_key_values=past, use_cache=True)
        past = o.past_key_values
        last = o.logits[0, -1].float()
        nxt = int(torch.argmax(last))
    rec["greedy_ids"] = greedy
    rec["greedy_margins"] = margins  # top1 - top2 logit at each greedy step (near-ties flagged)
    # Logits of the last greedy step's input, to check positions deep into the continuation.
    rec["last_step"] = logits_record(last, n + N_GREEDY - 2)
    return rec


def versions():
    import gguf
    import numpy
    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "gguf": getattr(gguf, "__version__", "0.19.0"),
        "numpy": numpy.__version__,
    }


def make_gguf_golden(models_dir, gguf_name, out_name):
    tok = AutoTokenizer.from_pretrained(models_dir, gguf_file=gguf_name)
    model = AutoModelForCausalLM.from_pretrained(models_dir, gguf_file=gguf_name, dtype=torch.float32)
    model.eval()
    cases = []
    for i, text in enumerate(PROMPTS):
        ids = tok(text, add_special_tokens=True)["input_ids"]
        cases.append(run_case(model, ids, f"plain{i}", False, text))
        print(f"{gguf_name}: plain{i} {len(ids)} ids -> {cases[-1]['greedy_ids'][:8]}", flush=True)
    for i in CHAT_PROMPTS:
        msgs = [{"role": "user", "content": PROMPTS[i]}]
        ids = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True)
        if isinstance(ids, dict) or hasattr(ids, "keys"):
            ids = ids["input_ids"]
        ids = [int(x) for x in ids]
        cases.append(run_case(model, ids, f"chat{i}", True, PROMPTS[i]))
        print(f"{gguf_name}: chat{i} {len(ids)} ids -> {cases[-1]['greedy_ids'][:8]}", flush=True)
    doc = {
        "model_file": gguf_name,
        "reference": "HF transformers AutoModelForCausalLM(gguf_file=..., dtype=float32), eager, CPU",
        "versions": versions(),
        "n_greedy": N_GREEDY,
        "cases": cases,
    }
    path = os.path.join(GOLDEN, out_name)
    with open(path, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
    print("wrote", path, os.path.getsize(path), "bytes")


@torch.no_grad()
def make_tiny_golden():
    d = os.path.join(GOLDEN, "tiny-qwen2-hf")
    model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32)
    model.eval()
    vocab = model.config.vocab_size
    g = torch.Generator().manual_seed(1234)
    cases = []
    for i, n in enumerate([1, 5, 13]):
        ids = [int(x) for x in torch.randint(0, vocab, (n,), generator=g)]
        cases.append(run_case(model, ids, f"random{i}", False, ""))
    doc = {
        "model_dir": "tiny-qwen2-hf",
        "reference": "HF transformers AutoModelForCausalLM (safetensors), float32, CPU",
        "versions": versions(),
        "n_greedy": N_GREEDY,
        "cases": cases,
    }
    path = os.path.join(GOLDEN, "logits_tiny_qwen2.json")
    with open(path, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
    print("wrote", path, os.path.getsize(path), "bytes")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models-dir", default=os.path.join(HERE, "..", "..", "models"))
    ap.add_argument("--only", choices=["smollm2", "qwen", "tiny"])
    a = ap.parse_args()
    torch.set_num_threads(2)
    md = os.path.abspath(a.models_dir)
    if a.only in (None, "smollm2"):
        make_gguf_golden(md, "SmolLM2-135M-Instruct.Q4_1.gguf", "logits_smollm2.json")
    if a.only in (None, "qwen"):
        make_gguf_golden(md, "Qwen2.5-Coder-0.5B-Instruct.Q4_K_M.gguf", "logits_qwen2.json")
    if a.only in (None, "tiny"):
        if os.path.exists(os.path.join(GOLDEN, "tiny-qwen2-hf", "model.safetensors")):
            make_tiny_golden()
        else:
            print("tiny-qwen2-hf not present yet; skipped")


if __name__ == "__main__":
    main()
