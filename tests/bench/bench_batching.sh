#!/usr/bin/env bash
# Static against continuous batching on a mixed-length bulk job: prompts of 16..512 tokens,
# outputs of 16..256 tokens (fixed by ignore_eos, drawn with a fixed seed), greedy. Prints the
# generated and total tokens/s of each schedule and checks that both wrote the same texts.
#   bash tests/bench/bench_batching.sh [MODEL] [PROMPTS] [MAX_SEQS] [extra gridlm generate options]
# Example: bash tests/bench/bench_batching.sh models/SmolLM2-135M-Instruct.f32.h5 256 32
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
gridlm=${GRIDLM_BIN:-$repo/build/bin/gridlm}
model=${1:-$repo/models/SmolLM2-135M-Instruct.f32.h5}
n_prompts=${2:-256}
max_seqs=${3:-32}
shift $(($# < 3 ? $# : 3))
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Token-id prompts, so lengths are exact whatever the tokenizer: ids 1000.. are ordinary words in
# both bundled vocabularies.
python3 - "$n_prompts" >"$tmp/p.jsonl" <<'PY'
import json, random, sys
rng = random.Random(1234)
for i in range(int(sys.argv[1])):
    n_in, n_out = rng.randint(16, 512), rng.randint(16, 256)
    ids = [1000 + rng.randrange(20000) for _ in range(n_in)]
    print(json.dumps({"id": f"m{i}", "prompt": ids, "max_tokens": n_out, "ignore_eos": True}))
PY
read -r p_tok o_tok < <(jq -rs '[(map(.prompt | length) | add), (map(.max_tokens) | add)] | @tsv' "$tmp/p.jsonl")
echo "model $(basename "$model"), $n_prompts prompts ($p_tok prompt + $o_tok output tokens), --max-seqs $max_seqs, $(nproc) cores"
for schedule in static continuous; do
    start=$(date +%s.%N)
    "$gridlm" generate --model "$model" --prompts "$tmp/p.jsonl" --output "$tmp/$schedule.jsonl" --temperature 0 \
        --max-seqs "$max_seqs" --schedule "$schedule" --order input --progress-interval 1000 "$@" 2>"$tmp/$schedule.log"
    wall=$(echo "$(date +%s.%N) - $start" | bc -l)
    printf '%-11s %7.1f s   %6.1f generated tok/s   %6.1f total tok/s\n' "$schedule" "$wall" \
        "$(echo "$o_tok / $wall" | bc -l)" "$(echo "($p_tok + $o_tok) / $wall" | bc -l)"
done
if cmp -s <(jq -c '{id, text}' "$tmp/static.jsonl") <(jq -c '{id, text}' "$tmp/continuous.jsonl"); then
    echo "same texts from both schedules"
else
    echo "TEXTS DIFFER between the schedules"
fi
