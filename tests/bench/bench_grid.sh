#!/usr/bin/env bash
# Grid throughput on this machine: the same bulk job (greedy, fixed lengths) on one rank with all
# threads, and on tensor- and pipeline-parallel grids with one thread per rank, on the same cores.
# Prints generated tokens/s, the ratio to one rank, per-stage busy time, the pipeline bubble and
# bytes sent per token, from each job's summary.
#   bash tests/bench/bench_grid.sh [MODEL] [PROMPTS] [MAX_TOKENS] [GRID...]
#   GRID is dp,pp,tp[,micro-batches]; default: 1,1,2 1,2,1,4 1,2,1,2 (and 1,1,1 first, 2 threads)
# Environment: GRIDLM_BENCH_BATCH (--batch-size, default 16).
# Example: bash tests/bench/bench_grid.sh models/Qwen2.5-Coder-0.5B-Instruct.Q4_K_M.gguf 32 64
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
gridlm=${GRIDLM_BIN:-$repo/build/bin/gridlm}
model=${1:-$repo/models/Qwen2.5-Coder-0.5B-Instruct.Q4_K_M.gguf}
n_prompts=${2:-32}
max_tokens=${3:-64}
shift $(($# < 3 ? $# : 3))
grids=("$@")
[ ${#grids[@]} -gt 0 ] || grids=(1,1,2 1,2,1,4 1,2,1,2)
cores=$(nproc)
batch=${GRIDLM_BENCH_BATCH:-16}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Prompts of 8 to ~60 tokens, every record generating exactly max_tokens.
python3 - "$n_prompts" "$max_tokens" >"$tmp/p.jsonl" <<'PY'
import json, sys
n, m = int(sys.argv[1]), int(sys.argv[2])
words = "the grid runs large language models as batch jobs on clusters of many nodes".split()
for i in range(n):
    text = " ".join(words[(i + k) % len(words)] for k in range(4 + (i * 7) % 40))
    print(json.dumps({"id": f"p{i}", "prompt": f"Task {i}: {text}.", "max_tokens": m, "ignore_eos": True}))
PY

summary() {  # the "done" line's generated tok/s
    grep -o '([0-9.]* generated tok/s)' "$1" | grep -o '[0-9.]*' | head -1
}

run() {  # run LABEL RANKS THREADS ARGS...
    local label=$1 ranks=$2 threads=$3
    shift 3
    local log=$tmp/$label.log
    OMP_NUM_THREADS=$threads mpirun -n "$ranks" --bind-to none "$gridlm" generate --model "$model" \
        --prompts "$tmp/p.jsonl" --output "$tmp/$label.jsonl" --temperature 0 --batch-size "$batch" \
        --threads "$threads" --progress-interval 1000 "$@" 2>"$log"
    local tps
    tps=$(summary "$log")
    printf '%-22s %6s tok/s' "$label" "$tps"
    if [ -n "${base:-}" ]; then
        printf '   %.2fx of one rank' "$(echo "$tps / $base" | bc -l)"
        if cmp -s "$tmp/one-rank.jsonl" "$tmp/$label.jsonl"; then printf ', same output'; else printf ', OUTPUT DIFFERS'; fi
    fi
    printf '\n'
    grep -E 'gridlm:   ' "$log" | sed 's/^gridlm:/   /' || true
}

echo "model $(basename "$model"), $n_prompts prompts x $max_tokens tokens, batch $batch, $cores cores"
base=""
run one-rank 1 "$cores"
base=$(summary "$tmp/one-rank.log")
for g in "${grids[@]}"; do
    IFS=, read -r dp pp tp mb <<<"$g"
    ranks=$((dp * pp * tp))
    threads=$((cores / ranks > 0 ? cores / ranks : 1))
    extra=()
    if [ -n "${mb:-}" ]; then extra=(--micro-batches "$mb"); fi
    run "dp${dp}pp${pp}tp${tp}${mb:+mb$mb}" "$ranks" "$threads" --dp "$dp" --pp "$pp" --tp "$tp" "${extra[@]}"
done
