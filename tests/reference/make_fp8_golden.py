#!/usr/bin/env python3
# Writes tests/reference/golden/fp8_block_scaled.safetensors: FP8 E4M3 weights with 128 x 128
# block scales the way DeepSeek-V3 / R1 ship them (`W.weight` F8_E4M3 + `W.weight_scale_inv` F32,
# W = fp8 * scale_inv[i // 128, j // 128]), next to torch's own dequantisation of the same bytes
# (`W.reference`, F32), for tests/unit/test_safetensors_fp8.cpp.
#   w_all.weight       [2, 256]   every one of the 256 byte codes once (row 1 reversed), scale 1
#   w_blocks.weight    [130, 260] random values over 2 x 3 blocks (edges partial), scales 0.01 .. 4
#
# Made with: Python 3.11, torch 2.15.0, safetensors 0.8.0, numpy 2.4.6 (PyPI)
#   python3 -m venv /tmp/refenv && /tmp/refenv/bin/pip install torch==2.15.0 safetensors==0.8.0 numpy==2.4.6
#   /tmp/refenv/bin/python tests/reference/make_fp8_golden.py
# Deterministic: a fixed seed; rerunning writes the same bytes.
import os

import torch
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "golden", "fp8_block_scaled.safetensors")


def dequant(w8, scale_inv):
    rows, cols = w8.shape
    s = scale_inv.repeat_interleave(128, 0)[:rows].repeat_interleave(128, 1)[:, :cols]
    return w8.to(torch.float32) * s


def main():
    g = torch.Generator().manual_seed(20261130)
    codes = torch.arange(256, dtype=torch.uint8)
    w_all = torch.stack([codes, codes.flip(0)]).view(torch.float8_e4m3fn)
    s_all = torch.ones(1, 2, dtype=torch.float32)
    w_blocks = (torch.randn(130, 260, generator=g) * 100).to(torch.float8_e4m3fn)
    s_blocks = torch.tensor([[0.01, 0.5, 4.0], [1.0, 0.125, 2.0]], dtype=torch.float32)
    tensors = {
        "w_all.weight": w_all,
        "w_all.weight_scale_inv": s_all,
        "w_all.reference": dequant(w_all, s_all),
        "w_blocks.weight": w_blocks,
        "w_blocks.weight_scale_inv": s_blocks,
        "w_blocks.reference": dequant(w_blocks, s_blocks),
    }
    save_file(tensors, OUT, metadata={"format": "pt"})
    print("wrote", OUT, os.path.getsize(OUT), "bytes")


if __name__ == "__main__":
    main()
