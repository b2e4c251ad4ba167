# --backend and --cuda-graphs: bad values are usage errors (exit 2) naming what is accepted;
# `auto` says in the log which backend it chose. Where it chose the CPU (no GPU, or a build
# without the CUDA backend), `--backend cuda` stops every rank of a job at start-up (exit 1)
# with the reason and host, before any output file exists, for generate and score alike; where
# it chose CUDA, `--backend cuda` gives the same records as auto.
# Usage: test_backend_select.sh GRIDLM MODELS_DIR
set -u
gridlm=$1
models=$2
. "$(dirname "$0")/lib.sh"
use_smollm2 "$models"

printf 'The capital of France is\nOne, two, three,\n' >"$tmp/p.txt"
args=(--model "$model" --prompts "$tmp/p.txt" --max-tokens 6 --temperature 0 --threads 1)
host=$(hostname)

expect_rc 2 "--backend gpu" "$gridlm" generate "${args[@]}" --output "$tmp/x.jsonl" --backend gpu
expect_stderr "--backend gpu" "--backend 'gpu' is not one of auto, cpu, cuda"
expect_rc 2 "--cuda-graphs maybe" "$gridlm" generate "${args[@]}" --output "$tmp/x.jsonl" --cuda-graphs maybe
expect_stderr "--cuda-graphs maybe" "--cuda-graphs 'maybe' is not one of on, off"
expect_rc 2 "score --backend tpu" "$gridlm" score --model "$model" --text "$tmp/p.txt" --backend tpu
expect_stderr "score --backend tpu" "--backend 'tpu' is not one of auto, cpu, cuda"
[ -e "$tmp/x.jsonl" ] && fail "a usage error left an output file"

expect_rc 0 "--backend auto" "$gridlm" generate "${args[@]}" --output "$tmp/auto.jsonl"
chosen=$(sed -n 's/^gridlm: backend \([a-z]*\).*/\1/p' "$tmp/stderr" | head -1)
case "$chosen" in
cpu | cuda) ;;
*) fail "the log does not say which backend auto chose: $(head -c 300 "$tmp/stderr")" ;;
esac
expect_rc 0 "--backend cpu" "$gridlm" generate "${args[@]}" --output "$tmp/cpu.jsonl" --backend cpu
expect_stderr "--backend cpu" "backend cpu: 1 thread per rank"

if [ "$chosen" = cpu ]; then
    same_output "auto chose the CPU: the same records as --backend cpu" "$tmp/cpu.jsonl" "$tmp/auto.jsonl"
    expect_rc 1 "--backend cuda without a usable GPU, 2 ranks" \
        timeout 120 mpirun -n 2 --oversubscribe "$gridlm" generate "${args[@]}" --output "$tmp/c.jsonl" \
        --backend cuda --dp 2
    for r in 0 1; do expect_stderr "rank $r says why" "rank $r of 2 ($host): error: --backend cuda: "; done
    grep -qE "no CUDA device visible on $host|built without the CUDA backend" "$tmp/stderr" ||
        fail "the reason is missing: $(head -c 400 "$tmp/stderr")"
    ls "$tmp"/c.jsonl* >/dev/null 2>&1 && fail "a refused --backend cuda left output files: $(ls "$tmp")"
    expect_rc 1 "score --backend cuda without a usable GPU" \
        "$gridlm" score --model "$model" --text "$tmp/p.txt" --ctx 4 --backend cuda
    expect_stderr "score --backend cuda" "--backend cuda: "
else
    expect_rc 0 "--backend cuda" "$gridlm" generate "${args[@]}" --output "$tmp/cuda.jsonl" --backend cuda
    same_output "auto chose CUDA: the same records as --backend cuda" "$tmp/cuda.jsonl" "$tmp/auto.jsonl"
fi
finish test_backend_select
