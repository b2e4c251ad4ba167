#!/usr/bin/env python3
# Golden data for the GGUF reader / dequantisation tests, made with llama.cpp's own Python
# package `gguf` (GGUFReader, gguf.quants.dequantize, GGUFWriter) as the independent reference.
#
# Pinned versions (the ones the committed golden files were made with):
#   python 3.11.7, gguf==0.19.0, numpy==2.4.6, transformers==5.24.0 (only its GGUF
#   LlamaTensorProcessor Q/K un-permutation, a numpy function; torch is not needed)
# Run from the repository root (takes about two minutes on 2 cores):
#   pip install gguf==0.19.0 numpy==2.4.6 transformers==5.24.0
#   python tests/reference/make_dequant_golden.py [--models models]
# Writes into tests/reference/golden/:
#   dequant.json            per chosen tensor: first 256 values (f32 bit patterns, hex) and an
#                           FNV-1a 64 hash of the whole dequantised little-endian f32 array;
#                           HF-order (un-permuted) llama Q/K hashes; facts about each model file
#   dequant_checksums.json  every tensor of the two complete model files: two cheap checksums
#                           of the whole dequantised array (see checksums())
#   gguf_synthetic.gguf     a few KB: every metadata value type (nested arrays too), a tiny
#                           llama with permuted Q/K, and blocks of each supported type that the
#                           model files lack (Q4_0, Q5_1, Q5_K, F16, BF16) plus random raw blocks
import argparse
import json
import struct
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as QT
from gguf.constants import GGML_QUANT_SIZES
from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

SMOLLM2 = "SmolLM2-135M-Instruct.Q4_1.gguf"
QWEN = "Qwen2.5-Coder-0.5B-Instruct.Q4_K_M.gguf"
R1 = "DeepSeek-R1-Distill-Qwen-7B.head.gguf"
SYNTH = "gguf_synthetic.gguf"

# One or two tensors per type found in the model files, small enough to hash in pure Python.
CHOSEN = {
    SMOLLM2: ["blk.0.attn_norm.weight", "blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.3.ffn_up.weight"],
    QWEN: ["blk.0.attn_q.bias", "blk.0.attn_k.weight", "blk.0.attn_v.weight", "blk.0.ffn_down.weight",
           "blk.11.ffn_down.weight", "blk.5.attn_v.weight"],
}
N_FIRST = 256


def fnv1a64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def f32_le_bytes(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a, dtype="<f4").tobytes()


def first_bits(a: np.ndarray) -> list[str]:
    flat = np.ascontiguousarray(a, dtype="<f4").reshape(-1)[:N_FIRST]
    return [f"{int(x):08x}" for x in flat.view("<u4")]


def checksums(a: np.ndarray) -> tuple[int, int]:
    """sum of the f32 bit patterns and sum of (index+1) * bits, both mod 2^64: vectorisable,
    and the second one also catches misplaced elements."""
    bits = np.ascontiguousarray(a, dtype="<f4").reshape(-1).view("<u4")
    s = w = 0
    chunk = 1 << 24
    for start in range(0, bits.size, chunk):
        b = bits[start:start + chunk].astype(np.uint64)
        idx = np.arange(start + 1, start + 1 + b.size, dtype=np.uint64)
        s = (s + int(b.sum(dtype=np.uint64))) % 2**64
        w = (w + int((b * idx).sum(dtype=np.uint64))) % 2**64
    return s, w


def entry(file: str, name: str, qtype: QT, values: np.ndarray) -> dict:
    return {"file": file, "tensor": name, "type": qtype.name, "n": int(values.size),
            "first": first_bits(values), "fnv1a64": f"{fnv1a64(f32_le_bytes(values)):016x}"}


def head_facts(path: Path) -> dict:
    """Header facts read with a minimal parser of our own (GGUFReader refuses the cut-off file)."""
    b = path.read_bytes()
    pos = 24
    n_tensors, n_kv = struct.unpack_from("<QQ", b, 8)
    sizes = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}

    def rd(fmt):
        nonlocal pos
        v = struct.unpack_from("<" + fmt, b, pos)[0]
        pos += struct.calcsize("<" + fmt)
        return v

    def rstr():
        nonlocal pos
        n = rd("Q")
        s = b[pos:pos + n]
        pos += n
        return s.decode("utf-8")

    def rval(t):
        if t == 8:
            return rstr()
        if t == 9:
            et, n = rd("I"), rd("Q")
            return [rval(et) for _ in range(n)]
        return rd(sizes[t])

    kv = {}
    for _ in range(n_kv):
        k = rstr()
        kv[k] = rval(rd("I"))
    tensors = []
    for _ in range(n_tensors):
        name = rstr()
        dims = [rd("Q") for _ in range(rd("I"))]
        tensors.append({"name": name, "dims": dims, "type": QT(rd("I")).name, "offset": rd("Q")})
    align = kv.get("general.alignment", 32)
    facts = {
        "file_size": len(b), "tensor_count": n_tensors, "kv_count": n_kv,
        "data_offset": (pos + align - 1) // align * align,
        "arch": kv["general.architecture"],
        "n_tokens": len(kv["tokenizer.ggml.tokens"]), "n_merges": len(kv["tokenizer.ggml.merges"]),
        "pre": kv.get("tokenizer.ggml.pre", ""),
        "bos": kv.get("tokenizer.ggml.bos_token_id", -1), "eos": kv.get("tokenizer.ggml.eos_token_id", -1),
        "pad": kv.get("tokenizer.ggml.padding_token_id", -1),
        "add_bos": kv.get("tokenizer.ggml.add_bos_token", False),
        "chat_template_bytes": len(kv.get("tokenizer.chat_template", "").encode("utf-8")),
        "token_1000": kv["tokenizer.ggml.tokens"][1000], "merge_0": kv["tokenizer.ggml.merges"][0],
        "first_tensor": tensors[0], "last_tensor": tensors[-1],
    }
    return facts


def llama_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    # llama.cpp convert_hf_to_gguf.py LlamaModel.permute: HF rotate-half rows -> interleaved pairs.
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def random_blocks(rng, qtype: QT, n_blocks: int) -> np.ndarray:
    """Random raw blocks with finite f16 scales, so every bit of the quant fields is exercised."""
    block, size = GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(n_blocks, size), dtype=np.uint8)
    scale_at = {QT.Q4_0: [0], QT.Q4_1: [0, 2], QT.Q5_0: [0], QT.Q5_1: [0, 2], QT.Q8_0: [0],
                QT.Q4_K: [0, 2], QT.Q5_K: [0, 2], QT.Q6_K: [208]}[qtype]
    for off in scale_at:
        scales = rng.uniform(-2.0, 2.0, size=n_blocks).astype(np.float16)
        raw[:, off:off + 2] = scales.view(np.uint8).reshape(n_blocks, 2)
    # f16 subnormal and negative-zero scales in the first block: edge cases of the f16 decode.
    raw[0, scale_at[0]:scale_at[0] + 2] = np.array([0x01, 0x00], dtype=np.uint8)
    if len(scale_at) > 1:
        raw[0, scale_at[1]:scale_at[1] + 2] = np.array([0x00, 0x80], dtype=np.uint8)
    return raw


def make_synthetic(out: Path, rng) -> tuple[list[dict], list[dict]]:
    w = gguf.GGUFWriter(str(out), "llama")
    w.add_custom_alignment(64)
    w.add_uint32("llama.embedding_length", 16)
    w.add_uint32("llama.block_count", 1)
    w.add_uint32("llama.feed_forward_length", 32)
    w.add_uint32("llama.attention.head_count", 2)
    w.add_uint32("llama.attention.head_count_kv", 1)
    w.add_uint32("llama.context_length", 64)
    w.add_float32("llama.rope.freq_base", 10000.0)
    w.add_float32("llama.attention.layer_norm_rms_epsilon", 1e-5)
    # every value type, with values at the edges of their ranges
    w.add_uint8("test.u8", 200)
    w.add_int8("test.i8", -100)
    w.add_uint16("test.u16", 60000)
    w.add_int16("test.i16", -30000)
    w.add_uint32("test.u32", 4000000000)
    w.add_int32("test.i32", -2000000000)
    w.add_float32("test.f32", 1.5)
    w.add_bool("test.bool", True)
    w.add_string("test.string", "h\u00e9llo \u4e16\u754c")
    w.add_uint64("test.u64", 2**63 + 5)
    w.add_int64("test.i64", -(2**62))
    w.add_float64("test.f64", 3.141592653589793)
    w.add_array("test.array_i32", [1, -2, 3])
    w.add_key_value("test.array_u8", [1, 2, 255], gguf.GGUFValueType.ARRAY, sub_type=gguf.GGUFValueType.UINT8)
    w.add_array("test.array_f32", [0.5, -0.25])
    w.add_array("test.array_string", ["x", "", "yz"])
    w.add_array("test.array_nested", [[1, 2], [3, 4, 5]])
    w.add_array("test.array_nested_string", [["a"], ["b", "c"]])
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt2")
    w.add_token_list(["a", "b", "ab", "<s>"])
    w.add_token_merges(["a b"])
    w.add_bos_token_id(3)
    w.add_add_bos_token(True)
    w.add_chat_template("{{ messages }}")

    entries, hf_entries = [], []
    n_embd, n_head, n_head_kv, hd = 16, 2, 1, 8
    emb = rng.standard_normal((8, n_embd)).astype(np.float32)
    w.add_tensor("token_embd.weight", emb)
    entries.append(entry(SYNTH, "token_embd.weight", QT.F32, emb))
    for name, hf_name, rows, heads in [("blk.0.attn_q.weight", "model.layers.0.self_attn.q_proj.weight", n_head * hd, n_head),
                                       ("blk.0.attn_k.weight", "model.layers.0.self_attn.k_proj.weight", n_head_kv * hd, n_head_kv)]:
        hf = rng.standard_normal((rows, n_embd)).astype(np.float32)
        w.add_tensor(name, llama_permute(hf, heads))
        hf_entries.append({"file": SYNTH, "tensor": hf_name, "n": int(hf.size), "first": first_bits(hf),
                           "fnv1a64": f"{fnv1a64(f32_le_bytes(hf)):016x}"})
    hf_bias = rng.standard_normal(n_head * hd).astype(np.float32)
    w.add_tensor("blk.0.attn_q.bias", llama_permute(hf_bias, n_head))
    hf_entries.append({"file": SYNTH, "tensor": "model.layers.0.self_attn.q_proj.bias", "n": int(hf_bias.size),
                       "first": first_bits(hf_bias), "fnv1a64": f"{fnv1a64(f32_le_bytes(hf_bias)):016x}"})

    def add_quant(name: str, qtype: QT, raw: np.ndarray, rows: int):
        raw = raw.reshape(rows, -1)
        w.add_tensor(name, raw, raw_dtype=qtype)
        entries.append(entry(SYNTH, name, qtype, gguf.quants.dequantize(raw, qtype)))

    x = rng.standard_normal((4, 64)).astype(np.float32)
    add_quant("quant.q4_0", QT.Q4_0, gguf.quants.quantize(x, QT.Q4_0), 4)
    add_quant("quant.q5_1", QT.Q5_1, gguf.quants.quantize(x, QT.Q5_1), 4)
    add_quant("quant.bf16", QT.BF16, gguf.quants.quantize(x[:2, :32] * 1e-3, QT.BF16), 2)
    f16 = (x[:3, :32] * 7).astype(np.float16)
    w.add_tensor("quant.f16", f16)
    entries.append(entry(SYNTH, "quant.f16", QT.F16, gguf.quants.dequantize(f16.view(np.uint8), QT.F16)))
    # gguf-py has no Q5_K quantiser; random blocks with sane scales anchor the decode instead.
    add_quant("quant.q5_k", QT.Q5_K, random_blocks(rng, QT.Q5_K, 4), 2)
    for qtype in [QT.Q4_0, QT.Q4_1, QT.Q5_0, QT.Q5_1, QT.Q8_0, QT.Q4_K, QT.Q6_K]:
        block, _ = GGML_QUANT_SIZES[qtype]
        n_blocks = max(2, 512 // block)
        add_quant(f"raw.{qtype.name.lower()}", qtype, random_blocks(rng, qtype, n_blocks), 2)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return entries, hf_entries


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="models")
    args = ap.parse_args()
    models = Path(args.models)
    golden = Path(__file__).resolve().parent / "golden"
    golden.mkdir(exist_ok=True)
    rng = np.random.default_rng(20250207)

    entries, hf_entries = make_synthetic(golden / SYNTH, rng)
    checks = {}
    for file in [SMOLLM2, QWEN]:
        r = gguf.GGUFReader(str(models / file))
        by_name = {t.name: t for t in r.tensors}
        for name in CHOSEN[file]:
            t = by_name[name]
            entries.append(entry(file, name, t.tensor_type, gguf.quants.dequantize(t.data, t.tensor_type)))
        per_tensor = {}
        for t in r.tensors:
            s, ws = checksums(gguf.quants.dequantize(t.data, t.tensor_type))
            per_tensor[t.name] = [t.tensor_type.name, int(t.n_elements), f"{s:016x}", f"{ws:016x}"]
        checks[file] = per_tensor
        print(file, "done")

    # HF-order Q/K of the llama file, un-permuted by transformers' GGUF loader code.
    r = gguf.GGUFReader(str(models / SMOLLM2))
    proc = LlamaTensorProcessor(config={"num_attention_heads": 9, "num_key_value_heads": 3})
    for t in r.tensors:
        if t.name in ("blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.29.attn_k.weight"):
            hf = proc.process(gguf.quants.dequantize(t.data, t.tensor_type), t.name).weights
            kind = "q_proj" if ".attn_q." in t.name else "k_proj"
            layer = t.name.split(".")[1]
            hf_entries.append({"file": SMOLLM2, "tensor": f"model.layers.{layer}.self_attn.{kind}.weight",
                               "n": int(hf.size), "first": first_bits(hf),
                               "fnv1a64": f"{fnv1a64(f32_le_bytes(hf)):016x}"})

    facts = {f: head_facts(models / f) for f in [SMOLLM2, QWEN, R1]}
    versions = {"gguf": getattr(gguf, "__version__", "0.19.0"), "numpy": np.__version__}
    (golden / "dequant.json").write_text(json.dumps(
        {"versions": versions, "dequant": entries, "hf_order": hf_entries, "files": facts}, indent=1) + "\n")
    # one tensor per line: [type, n, sum, wsum]
    lines = []
    for file, per_tensor in checks.items():
        rows = ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in per_tensor.items())
        lines.append(f" {json.dumps(file)}: {{\n{rows}\n }}")
    (golden / "dequant_checksums.json").write_text("{\n" + ",\n".join(lines) + "\n}\n")


if __name__ == "__main__":
    main()
