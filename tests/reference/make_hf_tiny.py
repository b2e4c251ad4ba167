#!/usr/bin/env python3
# Writes the tiny random Qwen2 Hugging Face checkpoint used by the import tests, and token ids
# for ~50 strings from HF `tokenizers` (an independent reference for gridlm's tokenizer).
#
# Made with: Python 3.11, numpy 2.4.6, safetensors 0.8.0, tokenizers 0.23.3
#   python3 -m venv /tmp/refenv && /tmp/refenv/bin/pip install numpy==2.4.6 safetensors==0.8.0 tokenizers==0.23.3
#   /tmp/refenv/bin/python tests/reference/make_hf_tiny.py
# Outputs (under tests/reference/golden/):
#   tiny-qwen2-hf/                 config.json, f32 model.safetensors, tokenizer.json, tokenizer_config.json
#   tiny-qwen2-hf-sharded-bf16/    the same weights rounded to bf16 (round to nearest even) in 2 shards
#                                  + model.safetensors.index.json
#   tiny-qwen2-tokens.json         {"cases": [{"text", "ids", "tokens"}]} from tokenizers' encode()
# Everything is deterministic (fixed seed, fixed corpus): rerunning reproduces the same bytes, and
# later golden logits depend on these weights, so do not change the seed or the init.

import json
import os
import struct

import numpy as np
from safetensors.numpy import save_file
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "golden")
DIR_F32 = os.path.join(GOLDEN, "tiny-qwen2-hf")
DIR_BF16 = os.path.join(GOLDEN, "tiny-qwen2-hf-sharded-bf16")

# Qwen2's split regex, exactly as in its tokenizer.json (and docs in /work/shared/NOTES.md).
QWEN2_REGEX = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""

N_VOCAB = 512
N_EMBD = 64
N_LAYER = 2
N_HEAD = 4
N_HEAD_KV = 2
HEAD_DIM = N_EMBD // N_HEAD
N_FF = 128
SEED = 20250214

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]  # control tokens, ids 508..510
USER_TOKEN = "<think>"                                       # non-special added token, id 511

CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

CORPUS = [
    "The quick brown fox jumps over the lazy dog. The dog was not amused, and the fox ran away.",
    "It's a truth universally acknowledged that they'll say what we've said, and I'd agree you're right.",
    "def add(a, b):\n    return a + b\n\nfor i in range(10):\n    print(add(i, i * 2))\n",
    "int main(void) {\n    int x = 42;\n    printf(\"%d\\n\", x);\n    return 0;\n}\n",
    "Numbers: 0 1 2 3 4 5 6 7 8 9 10 42 123 2024 3.14159 1e-6 100000 65536",
    "Hello, world! How are you today? I'm fine, thanks. What about you?",
    "Tensor parallelism splits each weight matrix across ranks; pipeline parallelism splits the layers.",
    "Café, naïve, über, résumé, jalapeño, smörgåsbord, façade.",
    "机器学习是人工智能的一个分支。 日本語のテキストも少し。 한국어 문장.",
    "Emoji test: 🙂 🚀 ✨ — and some dashes – like these… plus “quotes”.",
    "    indented line\n\ttabbed line\r\nwindows line ending\n\n\nthree newlines",
    "user: write a haiku about rain\nassistant: soft rain on the roof / the gutters hum their old song / "
    "night leans into sleep",
    "SELECT name, count(*) FROM users WHERE age > 30 GROUP BY name ORDER BY 2 DESC;",
    "<html><body><p class=\"note\">Hello &amp; welcome</p></body></html>",
    "The model reads its weights from an HDF5 checkpoint, converts them to bf16 and runs on every rank.",
    "aaaaaaaaaaaaaaaa bbbbbbbb cccc dd e",
    "MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_FLOAT, MPI_SUM, comm);",
    "JSON: {\"id\": 7, \"prompt\": \"hi\", \"max_tokens\": 16, \"temperature\": 0.0}",
]

TEST_STRINGS = [
    "",
    " ",
    "a",
    "Hello",
    "Hello world",
    " Hello world",
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "it's they'll we've I'd you're I'M SHE'S",
    "12345",
    "3.14159 and 1e-6",
    "year 2024, 100000 tokens",
    "def add(a, b):\n    return a + b\n",
    "    four spaces",
    "\ttab",
    "line one\nline two",
    "windows\r\nline",
    "\n\n\n",
    "trailing spaces   ",
    "   leading spaces",
    "a  b   c    d",
    "Café naïve über",
    "résumé façade jalapeño",
    "机器学习",
    "日本語のテキスト",
    "한국어",
    "🙂",
    "rocket 🚀 launch",
    "“smart quotes” — em dash – en dash…",
    "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|>",
    "text<|endoftext|>more text",
    "<think>reasoning</think>",
    "<|im_start|>",
    "<|im_start|><|im_end|>",
    "SELECT * FROM t WHERE x > 3;",
    "<p class=\"x\">&amp;</p>",
    "MPI_Allreduce(buf, n);",
    "{\"id\": 7, \"prompt\": \"hi\"}",
    "aaaaaaaaaaaaaaaaaaaaaaaa",
    "!!!???...",
    "x=1;y=2;z=x+y",
    "CamelCaseIdentifier snake_case_identifier",
    "ÀÉÎÕÜ àéîõü",
    "\u00a0non-breaking\u00a0space",
    "zero\u200bwidth",
    "mixed 123abc456 def789",
    "The model runs on every rank.",
    "tensor parallelism splits weights",
    "\\n is not a newline",
]


def train_tokenizer():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    n_bpe = N_VOCAB - len(SPECIALS) - 1
    trainer = trainers.BpeTrainer(
        vocab_size=n_bpe, min_frequency=1, show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(CORPUS * 4, trainer=trainer)
    assert tok.get_vocab_size() == n_bpe, tok.get_vocab_size()
    # Like Qwen2: special tokens after the BPE vocabulary, in added_tokens only.
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in SPECIALS])
    tok.add_tokens([AddedToken(USER_TOKEN, special=False, normalized=False)])
    assert tok.get_vocab_size() == N_VOCAB
    return tok


def make_weights():
    rng = np.random.default_rng(SEED)

    def linear(n_out, n_in):  # [out, in], std 1/sqrt(in) keeps activations O(1)
        return (rng.standard_normal((n_out, n_in)) / np.sqrt(n_in)).astype(np.float32)

    def vec(n, mean, std):
        return (mean + std * rng.standard_normal(n)).astype(np.float32)

    w = {}
    w["model.embed_tokens.weight"] = (0.5 * rng.standard_normal((N_VOCAB, N_EMBD))).astype(np.float32)
    q_rows, kv_rows = N_HEAD * HEAD_DIM, N_HEAD_KV * HEAD_DIM
    for l in range(N_LAYER):
        p = f"model.layers.{l}."
        w[p + "input_layernorm.weight"] = vec(N_EMBD, 1.0, 0.1)
        w[p + "self_attn.q_proj.weight"] = linear(q_rows, N_EMBD)
        w[p + "self_attn.q_proj.bias"] = vec(q_rows, 0.0, 0.1)
        w[p + "self_attn.k_proj.weight"] = linear(kv_rows, N_EMBD)
        w[p + "self_attn.k_proj.bias"] = vec(kv_rows, 0.0, 0.1)
        w[p + "self_attn.v_proj.weight"] = linear(kv_rows, N_EMBD)
        w[p + "self_attn.v_proj.bias"] = vec(kv_rows, 0.0, 0.1)
        w[p + "self_attn.o_proj.weight"] = linear(N_EMBD, q_rows)
        w[p + "post_attention_layernorm.weight"] = vec(N_EMBD, 1.0, 0.1)
        w[p + "mlp.gate_proj.weight"] = linear(N_FF, N_EMBD)
        w[p + "mlp.up_proj.weight"] = linear(N_FF, N_EMBD)
        w[p + "mlp.down_proj.weight"] = linear(N_EMBD, N_FF)
    w["model.norm.weight"] = vec(N_EMBD, 1.0, 0.1)
    w["lm_head.weight"] = linear(N_VOCAB, N_EMBD)
    return w


def to_bf16_bits(a):
    """f32 -> bf16 bit patterns, round to nearest even (no NaNs occur here)."""
    u = a.astype(np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype(np.uint16)


def write_bf16_safetensors(path, tensors):
    """safetensors with BF16 tensors, written by hand because numpy has no bfloat16."""
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name, a in tensors.items():
        data = to_bf16_bits(a).tobytes()
        header[name] = {"dtype": "BF16", "shape": list(a.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)  # the data section starts 8-byte aligned, as safetensors does
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    return offset


def write_configs(d, tok):
    config = {
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "vocab_size": N_VOCAB,
        "hidden_size": N_EMBD,
        "intermediate_size": N_FF,
        "num_hidden_layers": N_LAYER,
        "num_attention_heads": N_HEAD,
        "num_key_value_heads": N_HEAD_KV,
        "hidden_act": "silu",
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-6,
        "rope_theta": 1000000.0,
        "tie_word_embeddings": False,
        "use_sliding_window": False,
        "sliding_window": 4096,
        "max_window_layers": N_LAYER,
        "attention_dropout": 0.0,
        "initializer_range": 0.02,
        "use_cache": True,
        "bos_token_id": tok.token_to_id("<|endoftext|>"),
        "eos_token_id": tok.token_to_id("<|im_end|>"),
        "torch_dtype": "float32",
    }
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    added = {}
    for s in SPECIALS + [USER_TOKEN]:
        added[str(tok.token_to_id(s))] = {
            "content": s, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False,
            "special": s in SPECIALS,
        }
    tok_config = {
        "add_prefix_space": False,
        "added_tokens_decoder": added,
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
        "bos_token": None,
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>",
        "errors": "replace",
        "model_max_length": 4096,
        "pad_token": "<|endoftext|>",
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    }
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump(tok_config, f, indent=2, ensure_ascii=False)
    tok.save(os.path.join(d, "tokenizer.json"))


def main():
    os.makedirs(DIR_F32, exist_ok=True)
    os.makedirs(DIR_BF16, exist_ok=True)
    tok = train_tokenizer()
    weights = make_weights()

    write_configs(DIR_F32, tok)
    save_file(weights, os.path.join(DIR_F32, "model.safetensors"), metadata={"format": "pt"})

    write_configs(DIR_BF16, tok)
    names = list(weights)
    split = names.index("model.layers.1.input_layernorm.weight")  # shard 1: embeddings + layer 0
    shards = [names[:split], names[split:]]
    weight_map, total = {}, 0
    for i, shard in enumerate(shards):
        fname = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        total += write_bf16_safetensors(os.path.join(DIR_BF16, fname), {n: weights[n] for n in shard})
        weight_map.update({n: fname for n in shard})
    with open(os.path.join(DIR_BF16, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)

    cases = []
    for text in TEST_STRINGS:
        enc = tok.encode(text, add_special_tokens=False)
        cases.append({"text": text, "ids": enc.ids, "tokens": enc.tokens})
    out = {
        "tokenizer": "tiny-qwen2-hf/tokenizer.json",
        "made_by": "tests/reference/make_hf_tiny.py with HF tokenizers encode(text, add_special_tokens=False)",
        "cases": cases,
    }
    # One case per line: diffs of a regenerated file stay readable.
    with open(os.path.join(GOLDEN, "tiny-qwen2-tokens.json"), "w") as f:
        f.write("{\n")
        for key in ("tokenizer", "made_by"):
            f.write(f" {json.dumps(key)}: {json.dumps(out[key])},\n")
        f.write(' "cases": [\n')
        lines = [" " + json.dumps(c, ensure_ascii=False) for c in cases]
        f.write(",\n".join(lines) + "\n ]\n}\n")


if __name__ == "__main__":
    main()
