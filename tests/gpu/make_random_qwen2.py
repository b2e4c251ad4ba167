#!/usr/bin/env python3
"""Writes a Hugging Face Qwen2 directory with random bf16 weights (config.json, model.safetensors)
and the tokenizer files of another directory, for backend comparisons where no real model is at
hand. Python standard library only; about a second per 100 M parameters.

    make_random_qwen2.py OUT_DIR --tokenizer-from DIR [--hidden 896] [--heads 14] [--kv-heads 2]
                         [--ff 4864] [--layers 4] [--seed 1]

Values: matrices and biases have magnitudes in [2^-7, 2^-5) with random signs (about 0.018
RMS); the LM head ones are 16 times larger, so that the logits spread wider and greedy choices
are seldom near-ties; norm weights are 1. The vocabulary size is the tokenizer's; the other
fields of the tokenizer directory's config.json (token ids, RoPE theta) are kept.
"""
import argparse
import json
import os
import random
import shutil
import struct
import sys


def random_bf16(rng, n, high):
    """n bf16 values, little-endian: a random low byte (lowest exponent bit and mantissa) under the
    high byte `high` (sign 0, upper exponent bits) with a random sign."""
    lo = rng.randbytes(n)
    table = bytes(high | ((b & 1) << 7) for b in range(256))
    hi = rng.randbytes(n).translate(table)
    out = bytearray(2 * n)
    out[0::2] = lo
    out[1::2] = hi
    return out


def ones_bf16(n):
    return b"\x80\x3f" * n  # 1.0 = 0x3f80


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--tokenizer-from", required=True, help="HF directory with config.json and tokenizer.json (tokenizer_config.json is copied too)")
    ap.add_argument("--hidden", type=int, default=896)
    ap.add_argument("--heads", type=int, default=14)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--ff", type=int, default=4864)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    if a.hidden % a.heads or a.heads % a.kv_heads:
        sys.exit(f"make_random_qwen2: hidden {a.hidden} must divide into {a.heads} heads, "
                 f"and the heads into {a.kv_heads} KV heads")

    with open(os.path.join(a.tokenizer_from, "tokenizer.json"), encoding="utf-8") as f:
        tok = json.load(f)
    vocab = len(tok["model"]["vocab"]) + sum(
        1 for t in tok.get("added_tokens", []) if t["content"] not in tok["model"]["vocab"])
    with open(os.path.join(a.tokenizer_from, "config.json"), encoding="utf-8") as f:
        base = json.load(f)
    vocab = max(vocab, base.get("vocab_size", 0))

    head_dim = a.hidden // a.heads
    kv = a.kv_heads * head_dim
    d, ff = a.hidden, a.ff
    tensors = [("model.embed_tokens.weight", [vocab, d], 0x3C)]
    for i in range(a.layers):
        p = f"model.layers.{i}."
        tensors += [
            (p + "input_layernorm.weight", [d], None),
            (p + "self_attn.q_proj.weight", [d, d], 0x3C),
            (p + "self_attn.q_proj.bias", [d], 0x3C),
            (p + "self_attn.k_proj.weight", [kv, d], 0x3C),
            (p + "self_attn.k_proj.bias", [kv], 0x3C),
            (p + "self_attn.v_proj.weight", [kv, d], 0x3C),
            (p + "self_attn.v_proj.bias", [kv], 0x3C),
            (p + "self_attn.o_proj.weight", [d, d], 0x3C),
            (p + "post_attention_layernorm.weight", [d], None),
            (p + "mlp.gate_proj.weight", [ff, d], 0x3C),
            (p + "mlp.up_proj.weight", [ff, d], 0x3C),
            (p + "mlp.down_proj.weight", [d, ff], 0x3C),
        ]
    tensors += [("model.norm.weight", [d], None), ("lm_head.weight", [vocab, d], 0x3E)]

    header, offset = {}, 0
    for name, shape, _ in tensors:
        n = 1
        for s in shape:
            n *= s
        header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + 2 * n]}
        offset += 2 * n
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)

    os.makedirs(a.out, exist_ok=True)
    rng = random.Random(a.seed)
    with open(os.path.join(a.out, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for name, shape, high in tensors:
            n = header[name]["data_offsets"][1] // 2 - header[name]["data_offsets"][0] // 2
            f.write(ones_bf16(n) if high is None else random_bf16(rng, n, high))

    config = dict(base)
    config.update({
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": vocab,
        "hidden_size": d, "intermediate_size": ff, "num_hidden_layers": a.layers,
        "num_attention_heads": a.heads, "num_key_value_heads": a.kv_heads,
        "max_window_layers": a.layers, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
    })
    with open(os.path.join(a.out, "config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2)
    for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        src = os.path.join(a.tokenizer_from, name)
        if os.path.exists(src):
            shutil.copy(src, os.path.join(a.out, name))
    params = offset // 2
    print(f"{a.out}: qwen2, {a.layers} layers, hidden {d}, {a.heads} heads of {head_dim} "
          f"({a.kv_heads} KV), ff {ff}, vocab {vocab}: {params / 1e6:.1f} M bf16 parameters")


if __name__ == "__main__":
    main()
