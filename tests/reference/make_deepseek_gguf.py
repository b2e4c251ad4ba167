#!/usr/bin/env python3
# GGUF copies of the tiny DeepSeek checkpoints (make_deepseek_golden.py), written by llama.cpp's own
# converter, for the GGUF import tests (tests/unit/test_gguf_deepseek.cpp). The logits goldens of
# the HF directories (logits_tiny_deepseek_v3.json / _v2.json) serve for these files too: the
# weights are the same.
#
# Exact environment used (Python 3.11.7; the venv of make_deepseek_golden.py, nothing added):
#   python3 -m venv /tmp/dsenv
#   /tmp/dsenv/bin/pip install torch==2.15.0 transformers==5.24.0 safetensors==0.8.0 numpy==2.4.6
# llama.cpp: the copy vendored in llama-cpp-python 0.3.36's sdist (PyPI
# llama_cpp_python-0.3.36.tar.gz, unpacked), its convert_hf_to_gguf.py + conversion/ package with the
# gguf-py it vendors (gguf 0.19.0, imported from the sdist, not installed). The converter's own
# requirements pin torch 2.11 / transformers 4.57.6; it runs unchanged with the versions above
# (it only reads config.json, the tokenizer and the safetensors).
# Usage (from the repository root; offline, about 15 s):
#   /tmp/dsenv/bin/python tests/reference/make_deepseek_gguf.py --llama-cpp /path/to/llama_cpp_python-0.3.36/vendor/llama.cpp
#
# Outputs (under tests/reference/golden/):
#   tiny-deepseek-v3.f32.gguf   convert_hf_to_gguf.py --outtype f32 tiny-deepseek-v3-hf
#   tiny-deepseek-v2.f32.gguf   convert_hf_to_gguf.py --outtype f32 tiny-deepseek-v2-hf
#   tiny-deepseek-v3.q8_0.gguf  convert_hf_to_gguf.py --outtype q8_0 tiny-deepseek-v3-hf (the converter
#                               decides the types: Q8_0 for matrices whose rows are whole 32-blocks,
#                               F16 for attn_k_b (rows of 16 values), F32 for the router
#                               ffn_gate_inp, exp_probs_b and the norms)
#   logits_tiny_deepseek_v3_q8_0.json  the golden of make_deepseek_golden.py (same prompts, same
#                               format, its run_case) from HF transformers with the Q8_0 file's
#                               weights: each tensor dequantised by gguf-py, mapped back to its HF
#                               name with gguf-py's DEEPSEEK2 tensor-name map (kv_b_proj rebuilt from
#                               attn_k_b / attn_v_b, experts cut out of ffn_*_exps) and loaded into
#                               DeepseekV3ForCausalLM as a hub-layout safetensors checkpoint.
#
# One change to the converter's behaviour, and why: it identifies a BPE tokenizer by hashing the
# ids it gives for a fixed text and refuses hashes it does not know ("BPE pre-tokenizer was not
# recognized"). The tiny models share tiny-qwen2-hf's 512-token tokenizer (make_hf_tiny.py), whose
# pre-tokenizer is Qwen2's split regex, but whose ids (and hash) are its own. The script therefore
# wraps the converter's get_vocab_base_pre: when the hash is unknown and the tokenizer.json's split
# regex is exactly Qwen2's, it answers "qwen2" (the name llama.cpp and gridlm give that regex);
# everything else (metadata keys, tensor names, the kv_b_proj split into attn_k_b / attn_v_b, the
# stacking of the experts, the types) is the converter's own code, run unchanged.
#
# What the converter writes for deepseek2 (checked below against the safetensors with gguf-py's
# reader, and printed):
#   - deepseek2.attention.key_length = kv_lora_rank + qk_rope (the MQA view of the latent cache),
#     value_length = kv_lora_rank, key_length_mla = qk_nope + qk_rope, value_length_mla = v_head_dim,
#     head_count_kv = 1; rope.dimension_count = qk_rope_head_dim;
#     rope.scaling.yarn_log_multiplier = 0.1 * mscale_all_dim (mscale itself is not stored);
#     expert_gating_func 2 (sigmoid) / 1 (softmax) from scoring_func; expert_weights_norm only when
#     norm_topk_prob is true; expert_group_count / expert_group_used_count from n_group / topk_group.
#   - kv_b_proj [H*(nope+v), kv_lora] becomes attn_k_b, numpy shape [H, kv_lora, nope] (per head
#     W_UK transposed; GGUF dims {nope, kv_lora, H}) and attn_v_b, numpy shape [H, v, kv_lora]
#     (GGUF dims {kv_lora, v, H}).
#   - the experts' gate/up/down_proj are stacked into ffn_{gate,up,down}_exps, numpy shape
#     [E, out, in] (experts outermost); e_score_correction_bias becomes exp_probs_b.bias.
#   - no Q/K row permutation (deepseek2 uses adjacent-pair RoPE in llama.cpp).
# Rerunning writes the same bytes. llama.cpp itself reproduces the HF logits from the V3 file
# (crosscheck_deepseek_llamacpp.py; it refuses the tiny V2 file, which has no q LoRA).
import argparse
import json
import os
import runpy
import shutil
import sys
import tempfile

import numpy as np
from safetensors.numpy import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "golden")

QWEN2_REGEX = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""

OUTPUTS = [
    ("tiny-deepseek-v3-hf", "f32", "tiny-deepseek-v3.f32.gguf"),
    ("tiny-deepseek-v2-hf", "f32", "tiny-deepseek-v2.f32.gguf"),
    ("tiny-deepseek-v3-hf", "q8_0", "tiny-deepseek-v3.q8_0.gguf"),
]


def split_regex(model_dir):
    with open(os.path.join(model_dir, "tokenizer.json")) as f:
        pre = json.load(f)["pre_tokenizer"]
    for p in pre.get("pretokenizers", [pre]):
        if p.get("type") == "Split":
            return p["pattern"]["Regex"]
    return None


def patch_converter():
    from conversion import base  # the converter's package, from the llama.cpp directory on sys.path

    original = base.TextModel.get_vocab_base_pre

    def get_vocab_base_pre(self, tokenizer):
        try:
            return original(self, tokenizer)
        except NotImplementedError:
            if split_regex(str(self.dir_model)) != QWEN2_REGEX:
                raise
            print(f"{self.dir_model.name}: unknown tokenizer hash, Qwen2 split regex -> tokenizer.ggml.pre 'qwen2'")
            return "qwen2"

    base.TextModel.get_vocab_base_pre = get_vocab_base_pre


def convert(llama_cpp, model_dir, outtype, out):
    argv = sys.argv
    sys.argv = ["convert_hf_to_gguf.py", "--outtype", outtype, "--outfile", out, model_dir]
    try:
        runpy.run_path(os.path.join(llama_cpp, "convert_hf_to_gguf.py"), run_name="__main__")
    finally:
        sys.argv = argv
    os.chmod(out, 0o644)


def check(gguf, model_dir, path):
    """The converter's layout, against the safetensors (F32 files: exact)."""
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    st = load_file(os.path.join(model_dir, "model.safetensors"))
    r = gguf.GGUFReader(path)
    t = {x.name: x for x in r.tensors}
    H, nope, v, kvl = cfg["num_attention_heads"], cfg["qk_nope_head_dim"], cfg["v_head_dim"], cfg["kv_lora_rank"]
    E, L, dense = cfg["n_routed_experts"], cfg["num_hidden_layers"], cfg["first_k_dense_replace"]

    def arr(name):
        x = t[name]
        return np.asarray(x.data).reshape([int(d) for d in reversed(x.shape)])

    for il in range(L):
        kb, vb = arr(f"blk.{il}.attn_k_b.weight"), arr(f"blk.{il}.attn_v_b.weight")
        assert kb.shape == (H, kvl, nope) and vb.shape == (H, v, kvl), (kb.shape, vb.shape)
        kvb = np.concatenate([kb.transpose(0, 2, 1), vb], axis=1).reshape(H * (nope + v), kvl)
        assert np.array_equal(kvb, st[f"model.layers.{il}.self_attn.kv_b_proj.weight"]), il
        if il < dense:
            continue
        for part in ["gate", "up", "down"]:
            x = arr(f"blk.{il}.ffn_{part}_exps.weight")
            for e in range(E):
                assert np.array_equal(x[e], st[f"model.layers.{il}.mlp.experts.{e}.{part}_proj.weight"]), (il, part, e)
    q = "blk.0.attn_q_a.weight" if "blk.0.attn_q_a.weight" in t else "blk.0.attn_q.weight"
    hf_q = "q_a_proj" if q.endswith("q_a.weight") else "q_proj"
    assert np.array_equal(arr(q), st[f"model.layers.0.self_attn.{hf_q}.weight"])  # rows not permuted
    keys = {f.name: f.contents() for f in r.fields.values() if f.name.startswith("deepseek2.")}
    print(f"{os.path.basename(path)}: kv_b = attn_k_b^T | attn_v_b and experts = slices of *_exps, exactly")
    print(f"{os.path.basename(path)}: {json.dumps(keys, sort_keys=True)}")


def dequantised_hf_weights(gguf, model_dir, path):
    """The GGUF's weights, dequantised, under the HF names of model_dir's safetensors."""
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    st = load_file(os.path.join(model_dir, "model.safetensors"))
    r = gguf.GGUFReader(path)
    t = {x.name: x for x in r.tensors}
    tmap = gguf.get_tensor_name_map(gguf.MODEL_ARCH.DEEPSEEK2, cfg["num_hidden_layers"])
    H, nope, v = cfg["num_attention_heads"], cfg["qk_nope_head_dim"], cfg["v_head_dim"]

    def deq(name):
        x = t[name]
        return np.asarray(gguf.dequantize(x.data, x.tensor_type), dtype=np.float32).reshape(
            [int(d) for d in reversed(x.shape)])

    out = {}
    for name, ref in st.items():
        parts = name.split(".")
        if name.endswith("kv_b_proj.weight"):
            b = f"blk.{parts[2]}."
            kb, vb = deq(b + "attn_k_b.weight"), deq(b + "attn_v_b.weight")
            w = np.concatenate([kb.transpose(0, 2, 1), vb], axis=1).reshape(H * (nope + v), -1)
        elif ".mlp.experts." in name:  # model.layers.L.mlp.experts.E.X_proj.weight
            w = deq(f"blk.{parts[2]}.ffn_{parts[6].split('_')[0]}_exps.weight")[int(parts[5])]
        elif name.endswith("e_score_correction_bias"):
            w = deq(f"blk.{parts[2]}.exp_probs_b.bias")
        else:
            w = deq(tmap.get_name(name, try_suffixes=(".weight", ".bias")))
        assert w.shape == ref.shape, (name, w.shape, ref.shape)
        out[name] = np.ascontiguousarray(w)
    return out


def q8_golden(gguf, model_dir, path, out_name):
    sys.path.insert(0, HERE)
    import make_deepseek_golden as mdg  # its pinned transformers / torch, its run_case
    import torch

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    weights = dequantised_hf_weights(gguf, model_dir, path)
    ref = json.load(open(os.path.join(GOLDEN, "logits_tiny_deepseek_v3.json")))
    with tempfile.TemporaryDirectory() as d:
        for f in os.listdir(model_dir):
            if f != "model.safetensors":
                shutil.copyfile(os.path.join(model_dir, f), os.path.join(d, f))
        save_file(weights, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
        model = mdg.load(d)
        cases = [mdg.run_case(model, c["prompt_ids"], c["name"]) for c in ref["cases"]]
    doc = {
        "model_dir": os.path.basename(model_dir),
        "model_file": os.path.basename(path),
        "reference": "HF transformers DeepseekV3ForCausalLM with the GGUF's weights dequantised by gguf-py, float32, "
                     "eager attention, eager experts, CPU, 1 thread",
        "versions": {**mdg.versions(), "gguf": "0.19.0 (gguf-py of llama-cpp-python 0.3.36's llama.cpp)"},
        "n_greedy": ref["n_greedy"],
        "config": ref["config"],
        "cases": cases,
    }
    for c, r in zip(cases, ref["cases"]):
        print(f"{out_name}: {c['name']} greedy equal to the f32 golden's for "
              f"{next((i for i, (a, b) in enumerate(zip(c['greedy_ids'], r['greedy_ids'])) if a != b), 64)} tokens")
    out = os.path.join(GOLDEN, out_name)
    with open(out, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
    print("wrote", out, os.path.getsize(out), "bytes")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-cpp", required=True, help="llama.cpp source directory (llama-cpp-python 0.3.36 vendor/)")
    a = ap.parse_args()
    llama_cpp = os.path.abspath(a.llama_cpp)
    sys.path.insert(0, llama_cpp)
    sys.path.insert(1, os.path.join(llama_cpp, "gguf-py"))
    import gguf

    print("gguf-py", gguf.__file__)
    patch_converter()
    for model, outtype, name in OUTPUTS:
        model_dir, out = os.path.join(GOLDEN, model), os.path.join(GOLDEN, name)
        convert(llama_cpp, model_dir, outtype, out)
        if outtype == "f32":
            check(gguf, model_dir, out)
        print("wrote", out, os.path.getsize(out), "bytes", flush=True)
        if outtype == "q8_0":
            q8_golden(gguf, model_dir, out, "logits_tiny_deepseek_v3_q8_0.json")


if __name__ == "__main__":
    main()
