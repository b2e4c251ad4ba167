#!/usr/bin/env bash
# Golden perplexities for tests/e2e/test_score.sh from llama.cpp's own perplexity tool, whose
# computation `gridlm score --text` follows. Writes tests/reference/golden/perplexity_smollm2.json.
#
# Reference: llama.cpp as vendored by the PyPI source distribution of llama-cpp-python==0.3.36
# (pinned below), built outside this repository by tests/bench/build_llamacpp.sh (CMake Release,
# GGML_NATIVE, static), or any directory LLAMACPP_BIN that holds llama-perplexity and
# llama-quantize built from that same source.
#
# What it runs, on SmolLM2-135M-Instruct.Q4_1.gguf:
#   llama-quantize --allow-requantize Q4_1.gguf F32.gguf F32 2   (the F32 twin: the Q4_1 weights dequantised)
#   llama-perplexity -m F32.gguf  -f TEXT -c 512 -t 2            (ppl, stderr, chunks, running ppl per chunk)
#   llama-perplexity -m Q4_1.gguf -f TEXT -c 512 -t 2
#   llama-perplexity -m F32.gguf  -f TEXT -c 512 -t 2 -ctk f32 -ctv f32   (F32 KV cache too; the default is F16)
#   llama-perplexity -m F32.gguf  -f TEXT -c BIG                  (fails on purpose: its message gives the token count)
# TEXT = /usr/share/common-licenses/GPL-3 followed by /usr/share/common-licenses/Apache-2.0, concatenated
# (Debian base-files; the sha256 of TEXT is recorded so a changed file is noticed).
#
# Usage: bash tests/reference/make_perplexity_golden.sh [MODELS_DIR]
# Environment: LLAMACPP_BIN (skip the build), WORK_DIR (F32 twin, text and logs; default
# /tmp/gridlm-perplexity-golden), THREADS (default 2). Needs jq.
set -euo pipefail
version=0.3.36
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
models=${1:-$repo/models}
work=${WORK_DIR:-/tmp/gridlm-perplexity-golden}
threads=${THREADS:-2}
ctx=512
src_name=SmolLM2-135M-Instruct.Q4_1.gguf
src=$models/$src_name
out=$here/golden/perplexity_smollm2.json
log() { echo "make_perplexity_golden: $*" >&2; }
die() { log "error: $*"; exit 1; }

[ -f "$src" ] || die "$src is missing (run launch/fetch_models.sh)"
command -v jq >/dev/null || die "jq not found"
if [ -n "${LLAMACPP_BIN:-}" ]; then
  bin=$LLAMACPP_BIN
else
  bin=$(LLAMACPP_PY_VERSION=$version bash "$repo/tests/bench/build_llamacpp.sh" | tail -n 1)
fi
for t in llama-perplexity llama-quantize; do [ -x "$bin/$t" ] || die "$bin/$t is missing"; done

mkdir -p "$work"
text=$work/gpl3_apache2.txt
cat /usr/share/common-licenses/GPL-3 /usr/share/common-licenses/Apache-2.0 >"$text"
twin=$work/SmolLM2-135M-Instruct.F32.gguf
if [ ! -f "$twin" ]; then
  log "making the F32 twin $twin"
  "$bin/llama-quantize" --allow-requantize "$src" "$twin" F32 "$threads" >"$work/quantize.log" 2>&1 ||
    die "llama-quantize failed (see $work/quantize.log)"
fi

# run NAME MODEL ARGS...: llama-perplexity's figures as a JSON object.
run() {
  local name=$1 model=$2
  shift 2
  local logf=$work/perplexity_$name.log
  log "llama-perplexity $name"
  "$bin/llama-perplexity" -m "$model" -f "$text" -c "$ctx" -t "$threads" "$@" >"$logf" 2>&1 ||
    die "llama-perplexity failed (see $logf)"
  local final chunks running
  final=$(grep -o 'Final estimate: PPL = [0-9.]* +/- [0-9.]*' "$logf") || die "no final estimate in $logf"
  chunks=$(grep -o 'calculating perplexity over [0-9]* chunks' "$logf" | grep -o '[0-9]*') || die "no chunk count in $logf"
  running=$(grep -o '\[[0-9]*\][0-9.]*,' "$logf" | sed 's/.*\]//; s/,$//' | paste -sd, -)
  jq -n --argjson ppl "$(echo "$final" | awk '{print $5}')" --argjson se "$(echo "$final" | awk '{print $7}')" \
    --argjson chunks "$chunks" --argjson running "[$running]" --arg args "-c $ctx -t $threads $*" \
    '{perplexity: $ppl, stderr: $se, chunks: $chunks, running_ppl: $running, args: $args}'
}

f32=$(run f32 "$twin")
q41=$(run q4_1 "$src")
f32kv=$(run f32_kv_f32 "$twin" -ctk f32 -ctv f32)

# The token count: a context longer than half the text makes the tool stop with "tokenizes to only N tokens".
big=$(($(wc -c <"$text") / 2 + 2))
"$bin/llama-perplexity" -m "$twin" -f "$text" -c "$big" -t "$threads" >"$work/tokens.log" 2>&1 || true
tokens=$(grep -o 'tokenizes to only [0-9]* tokens' "$work/tokens.log" | grep -o '[0-9]*') ||
  die "no token count in $work/tokens.log"

jq -n --arg version "$version" --arg model "$src_name" --arg sha "$(sha256sum "$text" | cut -d' ' -f1)" \
  --argjson ctx "$ctx" --argjson tokens "$tokens" --argjson f32 "$f32" --argjson q41 "$q41" --argjson f32kv "$f32kv" \
  '{reference: ("llama.cpp llama-perplexity from the llama-cpp-python==" + $version + " sdist"),
    model_file: $model,
    text: "/usr/share/common-licenses/GPL-3 + /usr/share/common-licenses/Apache-2.0", text_sha256: $sha,
    ctx: $ctx, tokens: $tokens, scored_per_chunk: ($ctx - 1 - ($ctx / 2 | floor)),
    f32: $f32, q4_1: $q41, f32_kv_f32: $f32kv}' >"$out"
log "wrote $out"
cat "$out" >&2
