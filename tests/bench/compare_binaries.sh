#!/usr/bin/env bash
# Runs the same four generate jobs with two gridlm binaries and compares their output files byte
# for byte: continuous batching with chunked prefill and a step cap; a KV budget with recompute;
# pp=2 with activation checkpoints under a KV budget; dp=2 x pp=2 with static batches and input
# order. For checking that a change leaves outputs as they were, and timing both.
#   bash tests/bench/compare_binaries.sh OLD_GRIDLM NEW_GRIDLM MODEL PROMPTS.jsonl [MAX_TOKENS]
set -euo pipefail
[ $# -ge 4 ] || { sed -n '2,6p' "$0"; exit 2; }
old=$1 new=$2 model=$3 prompts=$4 max_tokens=${5:-24}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMP_WAIT_POLICY=passive
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
jobs=(
  "a|-n 1|--threads 2 --max-seqs 6 --prefill-chunk 16 --max-batched-tokens 24"
  "b|-n 1|--threads 2 --max-seqs 8 --kv-cache-bytes 12000000"
  "c|-n 2|--threads 1 --pp 2 --max-seqs 8 --kv-cache-bytes 8000000 --preempt checkpoint"
  "d|-n 4|--threads 1 --dp 2 --pp 2 --max-seqs 6 --order input --schedule static"
)
differ=0
for job in "${jobs[@]}"; do
  IFS='|' read -r name ranks opts <<<"$job"
  for side in old new; do
    bin=${!side}
    start=$(date +%s%N)
    # shellcheck disable=SC2086
    mpirun $ranks "$bin" generate --model "$model" --prompts "$prompts" --max-tokens "$max_tokens" --quiet \
      --output "$work/$side.$name.jsonl" $opts 2>"$work/$side.$name.log" || true  # exit 3: records with errors
    echo "$name $side: $(( ($(date +%s%N) - start) / 1000000 )) ms"
  done
  if cmp -s "$work/old.$name.jsonl" "$work/new.$name.jsonl"; then
    echo "$name: identical ($(wc -l <"$work/new.$name.jsonl") lines)"
  else
    echo "$name: OUTPUTS DIFFER"; diff <(head -c 2000 "$work/old.$name.jsonl") <(head -c 2000 "$work/new.$name.jsonl") | head -20
    differ=1
  fi
done
exit $differ
