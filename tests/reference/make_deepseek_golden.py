#!/usr/bin/env python3
# Two tiny random DeepSeek checkpoints (HF hub layout) and golden logits / greedy continuations
# from HF transformers for the DeepSeek (MLA + MoE) import and decoder tests.
#
# Exact environment used (Python 3.11.7, packages from PyPI; the PyTorch CPU index is not
# reachable here, so torch is PyPI's default Linux wheel, 2.15.0+cu132, run on the CPU):
#   python3 -m venv /tmp/dsenv
#   /tmp/dsenv/bin/pip install torch==2.15.0 transformers==5.24.0 safetensors==0.8.0 numpy==2.4.6
#   (pulled in: tokenizers 0.23.3, huggingface-hub 2.4.0, and PyPI torch's CUDA wheels, unused)
# Usage (from the repository root; offline, about 15 s on one core):
#   /tmp/dsenv/bin/python tests/reference/make_deepseek_golden.py [--only v3|v2]
# The transformers version matters: 4.57 and 5.x differ in DeepSeek-V3 routing (dropped groups are
# masked with 0.0 in 4.57.1, with -inf in 5.24; with a negative bias the two can pick different
# experts), so regenerate only with the versions above.
#
# Outputs (under tests/reference/golden/):
#   tiny-deepseek-v3-hf/   config.json, generation_config.json, model.safetensors (fp32, one file,
#                          per-expert tensors as on the hub), tokenizer.json + tokenizer_config.json
#                          copied from tiny-qwen2-hf/ (vocab 512; bos 508 <|endoftext|>, eos 510 <|im_end|>)
#   tiny-deepseek-v2-hf/   the same files for the V2 config
#   logits_tiny_deepseek_v3.json, logits_tiny_deepseek_v2.json: the format of logits_tiny_qwen2.json
#       (make_logits_golden.py) plus, per case, "full_forward_check" (max |cached decode's last-step
#       logits - an uncached full forward over prompt + greedy tokens at that position|), and at the
#       top "config" (the saved config.json).
# config.json is what transformers 5.24 writes: "rope_parameters" (rope_type "yarn", rope_theta
# inside) rather than the hub's older top-level "rope_theta" + "rope_scaling" {"type": "yarn"};
# "head_dim" = qk_rope_head_dim (8) and "qk_head_dim" (24) are derived fields. The informational
# keys scoring_func / topk_method are added as the hub configs have them (5.24 does not read
# scoring_func, nor V3's topk_method).
#
# The two configs (both: hidden 64, 3 layers, layer 0 a dense SwiGLU (first_k_dense_replace 1) and
# layers 1-2 MoE, 4 heads, kv_lora_rank 32, qk_nope 16 + qk_rope 8 = 24-wide q/k heads, v_head 16,
# dense intermediate 96, moe_intermediate 32, 8 routed experts, rope_theta 1e4, YaRN factor 40 on
# 4096 original positions (beta_fast 32, beta_slow 1) with max_position_embeddings 163840 as the
# real models, so 2 of the 4 rope frequencies are interpolated; rms eps 1e-6; untied lm_head):
#   V3 (DeepseekV3Config, like DeepSeek-V3/R1): q LoRA (q_a_proj 32 -> q_a_layernorm -> q_b_proj);
#       sigmoid scores + e_score_correction_bias (randomised, selection only) with group-limited
#       top-k (noaux_tc: 4 groups of 2, group score = sum of its top-2 biased scores, best 2 groups
#       kept, others masked with -inf), 3 experts per token, norm_topk_prob true, routed scale 2.5,
#       1 shared expert; YaRN mscale = mscale_all_dim = 1.0 (softmax scale 24^-0.5 * m^2,
#       m = 0.1 ln 40 + 1); rope_interleave true (adjacent pairs rotated).
#   V2 (DeepseekV2Config, like DeepSeek-V2-Lite): plain q_proj (q_lora_rank None); softmax scores
#       with greedy top-2 (topk_method "greedy", n_group 1, topk_group 1), norm_topk_prob false
#       (5.24's V2 router never normalises anyway), routed scale 1.0, 2 shared experts (shared
#       intermediate 64); YaRN mscale = mscale_all_dim = 0.707 (softmax scale 24^-0.5 * m^2 with
#       m = 0.0707 ln 40 + 1; cos/sin factor mscale/mscale_all_dim = 1); V2 always rotates
#       adjacent pairs (complex multiply), there is no rope_interleave switch.
# Weights: normal(0, 0.15) for every matrix (attention, dense and expert MLPs, router, lm_head),
# normal(0, 0.5) embeddings, RMSNorm weights 1 + normal(0, 0.1), V3 e_score_correction_bias
# normal(0, 0.15); drawn from one seeded torch.Generator in sorted order of the in-memory names
# (5.24 holds each layer's experts as 3-D experts.gate_up_proj / experts.down_proj), so the
# logits spread over a few units and the bias / group limit change some expert selections (the
# script prints how many). Everything runs single-threaded in fp32 with eager attention and eager
# experts; rerunning reproduces the same bytes. Later tests depend on these weights: do not change
# the seeds or the init.
import argparse
import json
import os
import shutil
import sys

import numpy
import safetensors
import torch
import transformers
from transformers import (AutoModelForCausalLM, DeepseekV2Config, DeepseekV2ForCausalLM, DeepseekV3Config,
                          DeepseekV3ForCausalLM)

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "golden")
TOKENIZER_DIR = os.path.join(GOLDEN, "tiny-qwen2-hf")
TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json"]

N_GREEDY = 64
TOP_K = 20
PROMPT_LENGTHS = [1, 5, 13]
PROMPT_SEED = 1234
VOCAB = 512
BOS_ID = 508  # <|endoftext|> (tiny-qwen2-hf's bos_token_id; its tokenizer has no bos_token)
EOS_ID = 510  # <|im_end|>, the tokenizer_config's eos_token

STD_MATRIX = 0.15
STD_EMBED = 0.5
STD_NORM = 0.1
STD_BIAS = 0.15  # e_score_correction_bias (V3): comparable to the spread of the sigmoid scores


def common_kwargs():
    return dict(
        vocab_size=VOCAB,
        hidden_size=64,
        num_hidden_layers=3,
        first_k_dense_replace=1,
        num_attention_heads=4,
        num_key_value_heads=4,
        kv_lora_rank=32,
        qk_nope_head_dim=16,
        qk_rope_head_dim=8,
        v_head_dim=16,
        intermediate_size=96,
        moe_intermediate_size=32,
        n_routed_experts=8,
        max_position_embeddings=163840,
        rms_norm_eps=1e-6,
        tie_word_embeddings=False,
        attention_bias=False,
        hidden_act="silu",
        bos_token_id=BOS_ID,
        eos_token_id=EOS_ID,
    )


def yarn(mscale):
    return {
        "rope_type": "yarn",
        "rope_theta": 10000.0,
        "factor": 40.0,
        "original_max_position_embeddings": 4096,
        "beta_fast": 32.0,
        "beta_slow": 1.0,
        "mscale": mscale,
        "mscale_all_dim": mscale,
    }


def v3_config():
    return DeepseekV3Config(
        **common_kwargs(),
        q_lora_rank=32,
        n_shared_experts=1,
        num_experts_per_tok=3,
        n_group=4,
        topk_group=2,
        routed_scaling_factor=2.5,
        norm_topk_prob=True,
        rope_parameters=yarn(1.0),
        rope_interleave=True,
        num_mtp_layers=0,  # written as num_nextn_predict_layers 0: the checkpoint has no MTP layer
        # Not read by 5.24 (its V3 router always does sigmoid + noaux_tc); the hub's V3 configs carry them.
        scoring_func="sigmoid",
        topk_method="noaux_tc",
    )


def v2_config():
    return DeepseekV2Config(
        **common_kwargs(),
        q_lora_rank=None,
        n_shared_experts=2,
        num_experts_per_tok=2,
        topk_method="greedy",
        scoring_func="softmax",  # not read by 5.24 (its V2 router always uses softmax); as on the hub
        n_group=1,
        topk_group=1,
        norm_topk_prob=False,
        routed_scaling_factor=1.0,
        rope_parameters=yarn(0.707),
    )


MODELS = {
    "v3": ("tiny-deepseek-v3-hf", "logits_tiny_deepseek_v3.json", v3_config, DeepseekV3ForCausalLM, 3001),
    "v2": ("tiny-deepseek-v2-hf", "logits_tiny_deepseek_v2.json", v2_config, DeepseekV2ForCausalLM, 2001),
}


@torch.no_grad()
def init_weights(model, seed):
    g = torch.Generator().manual_seed(seed)
    tensors = dict(model.named_parameters())
    tensors.update({n: b for n, b in model.named_buffers() if n.endswith("e_score_correction_bias")})
    for name in sorted(tensors):
        t = tensors[name]
        noise = torch.randn(t.shape, generator=g, dtype=torch.float32)
        if name.endswith("e_score_correction_bias"):
            t.copy_(STD_BIAS * noise)
        elif name.endswith("norm.weight"):  # input/post_attention/q_a/kv_a layernorms, final norm
            t.copy_(1.0 + STD_NORM * noise)
        elif name.endswith("embed_tokens.weight"):
            t.copy_(STD_EMBED * noise)
        else:
            assert t.dim() >= 2, name
            t.copy_(STD_MATRIX * noise)


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
def run_case(model, ids, name):
    out = model(torch.tensor([ids]), use_cache=True)
    logits = out.logits[0].float()  # [n, vocab]
    n = len(ids)
    positions = sorted(set(p for p in [0, 1, n // 2, n - 1] if p < n))
    rec = {
        "name": name,
        "chat": False,
        "text": "",
        "prompt_ids": ids,
        "positions": [logits_record(logits[p], p) for p in positions],
    }
    # Greedy for exactly N_GREEDY tokens with the KV cache (EOS does not stop it).
    cache = out.cache
    nxt = int(torch.argmax(logits[-1]))
    greedy, margins = [], []
    last = logits[-1]
    for step in range(N_GREEDY):
        top2 = torch.topk(last, 2).values
        margins.append(float(top2[0] - top2[1]))
        greedy.append(nxt)
        if step + 1 == N_GREEDY:
            break
        o = model(torch.tensor([[nxt]]), cache=cache, use_cache=True)
        cache = o.cache
        last = o.logits[0, -1].float()
        nxt = int(torch.argmax(last))
    rec["greedy_ids"] = greedy
    rec["greedy_margins"] = margins
    rec["last_step"] = logits_record(last, n + N_GREEDY - 2)
    # The same position from one uncached forward over prompt + greedy[:-1].
    full = model(torch.tensor([ids + greedy[:-1]]), use_cache=False).logits[0, n + N_GREEDY - 2].float()
    rec["full_forward_check"] = float((full - last).abs().max())
    return rec


@torch.no_grad()
def routing_stats(model, ids):
    """How often V3's bias and group limit change the selected experts (printed, not stored)."""
    stats = []
    hooks = []

    def hook(mod, inp, _out):
        x = inp[0].reshape(-1, mod.hidden_dim).float()
        s = torch.nn.functional.linear(x, mod.weight.float()).sigmoid()
        b = s + mod.e_score_correction_bias
        g = b.view(-1, mod.num_group, mod.num_experts // mod.num_group).topk(2, dim=-1)[0].sum(-1)
        keep = torch.zeros_like(g).scatter_(1, g.topk(mod.topk_group, dim=-1)[1], 1).bool()
        keep = keep.repeat_interleave(mod.num_experts // mod.num_group, dim=1)
        sel = lambda t: [frozenset(r.tolist()) for r in t.topk(mod.top_k, dim=-1)[1]]
        ref = sel(b.masked_fill(~keep, float("-inf")))
        no_bias = sel(s.masked_fill(~keep, float("-inf")))
        no_group = sel(b)
        stats.append((len(ref), sum(a != c for a, c in zip(ref, no_bias)), sum(a != c for a, c in zip(ref, no_group))))

    for layer in model.model.layers:
        gate = getattr(layer.mlp, "gate", None)
        if gate is not None and hasattr(gate, "e_score_correction_bias"):
            hooks.append(gate.register_forward_hook(hook))
    model(torch.tensor([ids]), use_cache=False)
    for h in hooks:
        h.remove()
    tot = [sum(s[i] for s in stats) for i in range(3)]
    return f"{tot[0]} token-layers: bias changes {tot[1]} selections, group limit changes {tot[2]}"


def versions():
    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "safetensors": safetensors.__version__,
        "numpy": numpy.__version__,
    }


def load(d):
    model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager",
                                                 experts_implementation="eager")
    return model.eval()


@torch.no_grad()
def make(key):
    dirname, out_name, make_config, cls, seed = MODELS[key]
    d = os.path.join(GOLDEN, dirname)
    config = make_config()
    config._attn_implementation = "eager"
    config._experts_implementation = "eager"
    torch.manual_seed(seed)
    model = cls(config).eval()
    init_weights(model, seed)

    if os.path.exists(d):
        shutil.rmtree(d)
    model.save_pretrained(d, safe_serialization=True)
    for f in TOKENIZER_FILES:
        shutil.copyfile(os.path.join(TOKENIZER_DIR, f), os.path.join(d, f))
    for f in os.listdir(d):
        os.chmod(os.path.join(d, f), 0o644)

    # Round trip: the saved config.json + safetensors reproduce the in-memory model.
    loaded = load(d)
    g = torch.Generator().manual_seed(99)
    probe = torch.randint(0, VOCAB, (1, 40), generator=g)
    diff = float((model(probe).logits - loaded(probe).logits).abs().max())
    print(f"{dirname}: reload max |dlogits| = {diff:.3g}", flush=True)
    assert diff < 1e-6, diff
    if key == "v3":
        print(f"{dirname}: routing on the probe: {routing_stats(loaded, probe[0].tolist())}", flush=True)

    gen = torch.Generator().manual_seed(PROMPT_SEED)
    cases = []
    for i, n in enumerate(PROMPT_LENGTHS):
        ids = [int(x) for x in torch.randint(0, VOCAB, (n,), generator=gen)]
        cases.append(run_case(loaded, ids, f"random{i}"))
        c = cases[-1]
        spread = c["positions"][-1]["max"] - c["positions"][-1]["min"]
        print(f"{dirname}: random{i} {n} ids -> {c['greedy_ids'][:8]} logit range {spread:.2f} "
              f"min margin {min(c['greedy_margins']):.2e} full_forward_check {c['full_forward_check']:.2e}",
              flush=True)
    with open(os.path.join(d, "config.json")) as f:
        saved_config = json.load(f)
    doc = {
        "model_dir": dirname,
        "reference": f"HF transformers {cls.__name__} via AutoModelForCausalLM (safetensors), float32, "
                     "eager attention, eager experts, CPU, 1 thread",
        "versions": versions(),
        "n_greedy": N_GREEDY,
        "config": saved_config,
        "cases": cases,
    }
    path = os.path.join(GOLDEN, out_name)
    with open(path, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
    print("wrote", path, os.path.getsize(path), "bytes")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", choices=sorted(MODELS))
    a = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    for key in ["v3", "v2"]:
        if a.only in (None, key):
            make(key)


if __name__ == "__main__":
    main()
