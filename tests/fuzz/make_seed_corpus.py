#!/usr/bin/env python3
"""Writes the binary seed inputs of the fuzz targets into tests/fuzz/corpus/ (standard library only).

    python3 tests/fuzz/make_seed_corpus.py [--gridlm build/bin/gridlm]

A tiny byte-level BPE model (vocabulary: the 256 byte tokens, four merges, three added tokens;
hidden size 8, one layer) is written as:
  - a Hugging Face directory (config.json, tokenizer.json, tokenizer_config.json, model.safetensors)
    whose files seed fuzz_hf_json and fuzz_safetensors;
  - GGUF files (qwen2 and llama, f32 / f16 / q8_0 tensors) seeding fuzz_gguf;
  - with --gridlm, native .h5 checkpoints made by `gridlm convert` (f32, bf16, q8_0, vocabulary
    only) into tests/fuzz/h5_base/: the files fuzz_h5_checkpoint's edit programs start from.
Next to each valid file go a few nearly-valid ones (cut short, a length or offset off by one),
the inputs a reader is most likely to get wrong. The text seeds (prompts, templates, tokenizer
texts) are kept in the corpus as written by hand.
"""
import argparse
import json
import os
import struct
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")

N_EMBD = 8
N_FF = 8
N_HEAD = 2
N_HEAD_KV = 1
HEAD_DIM = 4


def byte_chars():
    """GPT-2's byte -> printable character mapping, in byte order."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    out, extra = [], 0
    for b in range(256):
        if b in keep:
            out.append(chr(b))
        else:
            out.append(chr(256 + extra))
            extra += 1
    return out


def tokenizer():
    chars = byte_chars()
    tokens = list(chars)
    merges = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n")]
    for a, b in merges:
        tokens.append(a + b)
    added = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    return tokens, merges, added


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def values(n, seed):
    """Deterministic small floats."""
    return [((i * 37 + seed * 11) % 17 - 8) / 16.0 for i in range(n)]


def tensors_hf(n_vocab):
    """HF name -> shape of the tiny qwen2 model (tied embeddings)."""
    t = {"model.embed_tokens.weight": [n_vocab, N_EMBD], "model.norm.weight": [N_EMBD]}
    p = "model.layers.0."
    t[p + "self_attn.q_proj.weight"] = [N_HEAD * HEAD_DIM, N_EMBD]
    t[p + "self_attn.k_proj.weight"] = [N_HEAD_KV * HEAD_DIM, N_EMBD]
    t[p + "self_attn.v_proj.weight"] = [N_HEAD_KV * HEAD_DIM, N_EMBD]
    t[p + "self_attn.q_proj.bias"] = [N_HEAD * HEAD_DIM]
    t[p + "self_attn.k_proj.bias"] = [N_HEAD_KV * HEAD_DIM]
    t[p + "self_attn.v_proj.bias"] = [N_HEAD_KV * HEAD_DIM]
    t[p + "self_attn.o_proj.weight"] = [N_EMBD, N_HEAD * HEAD_DIM]
    t[p + "mlp.gate_proj.weight"] = [N_FF, N_EMBD]
    t[p + "mlp.up_proj.weight"] = [N_FF, N_EMBD]
    t[p + "mlp.down_proj.weight"] = [N_EMBD, N_FF]
    t[p + "input_layernorm.weight"] = [N_EMBD]
    t[p + "post_attention_layernorm.weight"] = [N_EMBD]
    return t


def numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def bf16(x):
    return struct.unpack("<I", struct.pack("<f", x))[0] >> 16


def safetensors(tensors, dtype="F32"):
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for i, (name, shape) in enumerate(tensors.items()):
        v = values(numel(shape), i)
        if dtype == "F32":
            blob = struct.pack("<%df" % len(v), *v)
        elif dtype == "F16":
            blob = struct.pack("<%de" % len(v), *v)
        else:
            blob = struct.pack("<%dH" % len(v), *[bf16(x) for x in v])
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(blob)]}
        blobs.append(blob)
        off += len(blob)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def hf_files():
    tokens, merges, added = tokenizer()
    n_tok = len(tokens) + len(added)
    config = {
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": n_tok,
        "hidden_size": N_EMBD, "intermediate_size": N_FF, "num_hidden_layers": 1,
        "num_attention_heads": N_HEAD, "num_key_value_heads": N_HEAD_KV, "max_position_embeddings": 64,
        "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "tie_word_embeddings": True,
        "bos_token_id": len(tokens), "eos_token_id": len(tokens) + 2, "torch_dtype": "float32",
    }
    regex = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
             "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")
    tok = {
        "version": "1.0",
        "added_tokens": [{"id": len(tokens) + i, "content": a, "special": True} for i, a in enumerate(added)],
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}]},
        "decoder": {"type": "ByteLevel"},
        "model": {"type": "BPE", "byte_fallback": False, "ignore_merges": False,
                  "vocab": {t: i for i, t in enumerate(tokens)}, "merges": [[a, b] for a, b in merges]},
    }
    tok_config = {
        "bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "add_bos_token": False,
        "chat_template": "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
                         "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
    }
    dump = lambda j: (json.dumps(j, ensure_ascii=False, indent=1) + "\n").encode()
    return n_tok, dump(config), dump(tok), dump(tok_config)


# ---- GGUF ------------------------------------------------------------------------------------

GGUF_U32, GGUF_I32, GGUF_F32, GGUF_BOOL, GGUF_STRING, GGUF_ARRAY, GGUF_U64 = 4, 5, 6, 7, 8, 9, 10
GGML_F32, GGML_F16, GGML_Q8_0 = 0, 1, 8


def gstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def gkv(key, vtype, value):
    out = gstr(key) + struct.pack("<I", vtype)
    if vtype == GGUF_STRING:
        return out + gstr(value)
    if vtype == GGUF_ARRAY:
        etype, items = value
        out += struct.pack("<IQ", etype, len(items))
        for it in items:
            out += gstr(it) if etype == GGUF_STRING else struct.pack({GGUF_I32: "<i", GGUF_F32: "<f"}[etype], it)
        return out
    fmt = {GGUF_U32: "<I", GGUF_I32: "<i", GGUF_F32: "<f", GGUF_BOOL: "<?", GGUF_U64: "<Q"}[vtype]
    return out + struct.pack(fmt, value)


def q8_0(v):
    out = b""
    for b in range(0, len(v), 32):
        block = v[b:b + 32]
        amax = max(abs(x) for x in block)
        d = amax / 127 if amax else 0.0
        out += struct.pack("<e", d) + bytes((round(x / d) if d else 0) & 0xFF for x in block)
    return out


def gguf(arch, version=3, quant=True):
    tokens, merges, added = tokenizer()
    all_tokens = tokens + added
    types = [1] * len(tokens) + [3] * len(added)
    n_vocab = len(all_tokens)
    kvs = [
        gkv("general.architecture", GGUF_STRING, arch),
        gkv("general.name", GGUF_STRING, "tiny seed"),
        gkv(arch + ".context_length", GGUF_U32, 64),
        gkv(arch + ".embedding_length", GGUF_U32, N_EMBD * 4),
        gkv(arch + ".block_count", GGUF_U32, 1),
        gkv(arch + ".feed_forward_length", GGUF_U32, N_FF * 4),
        gkv(arch + ".attention.head_count", GGUF_U32, N_HEAD),
        gkv(arch + ".attention.head_count_kv", GGUF_U32, N_HEAD_KV),
        gkv(arch + ".attention.layer_norm_rms_epsilon", GGUF_F32, 1e-6),
        gkv(arch + ".rope.freq_base", GGUF_F32, 1e6),
        gkv("general.alignment", GGUF_U32, 32),
        gkv("tokenizer.ggml.model", GGUF_STRING, "gpt2"),
        gkv("tokenizer.ggml.pre", GGUF_STRING, "qwen2" if arch == "qwen2" else "llama-bpe"),
        gkv("tokenizer.ggml.tokens", GGUF_ARRAY, (GGUF_STRING, all_tokens)),
        gkv("tokenizer.ggml.token_type", GGUF_ARRAY, (GGUF_I32, types)),
        gkv("tokenizer.ggml.merges", GGUF_ARRAY, (GGUF_STRING, [a + " " + b for a, b in merges])),
        gkv("tokenizer.ggml.bos_token_id", GGUF_U32, len(tokens)),
        gkv("tokenizer.ggml.eos_token_id", GGUF_U32, len(tokens) + 2),
        gkv("tokenizer.ggml.add_bos_token", GGUF_BOOL, False),
        gkv("tokenizer.chat_template", GGUF_STRING, "{% for m in messages %}{{ m.content }}{% endfor %}"),
    ]
    e, f, hq, hkv = N_EMBD * 4, N_FF * 4, N_HEAD * HEAD_DIM * 4, N_HEAD_KV * HEAD_DIM * 4
    # GGUF dims are innermost first.
    specs = [("token_embd.weight", [e, n_vocab], GGML_Q8_0 if quant else GGML_F32),
             ("output_norm.weight", [e], GGML_F32),
             ("blk.0.attn_norm.weight", [e], GGML_F32), ("blk.0.ffn_norm.weight", [e], GGML_F32),
             ("blk.0.attn_q.weight", [e, hq], GGML_F16), ("blk.0.attn_k.weight", [e, hkv], GGML_F32),
             ("blk.0.attn_v.weight", [e, hkv], GGML_F32), ("blk.0.attn_output.weight", [hq, e], GGML_F32),
             ("blk.0.ffn_gate.weight", [e, f], GGML_Q8_0 if quant else GGML_F32),
             ("blk.0.ffn_up.weight", [e, f], GGML_F32), ("blk.0.ffn_down.weight", [f, e], GGML_F32)]
    if arch == "qwen2":
        specs += [("blk.0.attn_q.bias", [hq], GGML_F32), ("blk.0.attn_k.bias", [hkv], GGML_F32),
                  ("blk.0.attn_v.bias", [hkv], GGML_F32)]
    infos, data = b"", b""
    for i, (name, dims, gtype) in enumerate(specs):
        v = values(numel(dims), i)
        blob = {GGML_F32: lambda: struct.pack("<%df" % len(v), *v),
                GGML_F16: lambda: struct.pack("<%de" % len(v), *v), GGML_Q8_0: lambda: q8_0(v)}[gtype]()
        data += b"\0" * (-len(data) % 32)
        infos += gstr(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        infos += struct.pack("<IQ", gtype, len(data))
        data += blob
    head = b"GGUF" + struct.pack("<IQQ", version, len(specs), len(kvs)) + b"".join(kvs) + infos
    head += b"\0" * (-len(head) % 32)
    return head + data


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gridlm", help="gridlm binary, to write the .h5 seeds with gridlm convert")
    args = ap.parse_args()

    n_vocab, config, tok, tok_config = hf_files()
    hf = os.path.join(CORPUS, "fuzz_hf_json")
    write(os.path.join(hf, "config.json"), config)
    write(os.path.join(hf, "tokenizer.json"), tok)
    write(os.path.join(hf, "tokenizer_config.json"), tok_config)

    st = os.path.join(CORPUS, "fuzz_safetensors")
    model = safetensors(tensors_hf(n_vocab))
    write(os.path.join(st, "tiny_f32.safetensors"), model)
    write(os.path.join(st, "tiny_bf16.safetensors"), safetensors(tensors_hf(n_vocab), "BF16"))
    small = {"a": [2, 3], "b": [3], "c": [0, 4]}
    write(os.path.join(st, "small_f16.safetensors"), safetensors(small, "F16"))
    good = safetensors(small)
    write(os.path.join(st, "small_f32.safetensors"), good)
    write(os.path.join(st, "cut_data.safetensors"), good[:-5])
    write(os.path.join(st, "header_len_too_big.safetensors"), struct.pack("<Q", len(good)) + good[8:])
    write(os.path.join(st, "header_only.safetensors"), struct.pack("<Q", 2) + b"{}")

    gg = os.path.join(CORPUS, "fuzz_gguf")
    qwen = gguf("qwen2")
    write(os.path.join(gg, "tiny_qwen2_q8_0.gguf"), qwen)
    write(os.path.join(gg, "tiny_llama_f32.gguf"), gguf("llama", quant=False))
    write(os.path.join(gg, "tiny_qwen2_v2.gguf"), gguf("qwen2", version=2))
    write(os.path.join(gg, "tiny_qwen2_cut.gguf"), qwen[: len(qwen) - 300])
    write(os.path.join(gg, "header_only.gguf"), b"GGUF" + struct.pack("<IQQ", 3, 0, 1) +
          gkv("general.architecture", GGUF_STRING, "qwen2"))

    # fuzz_h5_checkpoint's inputs are edit programs (any bytes); its base files are the .h5 ones.
    edits = os.path.join(CORPUS, "fuzz_h5_checkpoint")
    for i in range(4):
        write(os.path.join(edits, "base%d" % i), bytes([i]))
    for i in range(6):
        write(os.path.join(edits, "edits%d" % i), bytes((j * 73 + i * 29 + 5) % 256 for j in range(48 + 16 * i)))
    if args.gridlm:
        h5 = os.path.join(HERE, "h5_base")
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "hf")
            for name, data in (("config.json", config), ("tokenizer.json", tok),
                               ("tokenizer_config.json", tok_config), ("model.safetensors", model)):
                write(os.path.join(src, name), data)
            write(os.path.join(tmp, "q.gguf"), qwen)
            for out, extra in (("tiny_f32.h5", ["--from", src, "--dtype", "f32"]),
                               ("tiny_bf16.h5", ["--from", src, "--dtype", "bf16"]),
                               ("tiny_vocab_only.h5", ["--from", src, "--vocab-only"]),
                               ("tiny_q8_0.h5", ["--from", os.path.join(tmp, "q.gguf"), "--dtype", "keep"])):
                os.makedirs(h5, exist_ok=True)
                subprocess.run([args.gridlm, "convert", "--to", os.path.join(h5, out), "--force"] + extra,
                               check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


if __name__ == "__main__":
    main()
