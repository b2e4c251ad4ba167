# --backend and --cuda-graphs: bad values are usage errors (exit 2) naming what is accepted;
# `auto` says in the log which backend it chose. Where it chose the CPU (no GPU, or a build
# without the CUDA backend), `--backend cuda` stops every rank of a job at start-up (exit 1)
# with the reason and host, before any output file exists, for generate and score alike; where
# it chose CUDA, `--backend cuda` gives the same records as auto. A CUDA build keeps its backend
# and NCCL in modules loaded on use: a CPU job (--backend cpu, or auto on a node without a GPU)
# maps no CUDA library, and runs where the modules cannot be found; --version says whether the
# CUDA module loads.
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
cp "$tmp/stderr" "$tmp/stderr.auto"
chosen=$(sed -n 's/^gridlm: backend \([a-z]*\).*/\1/p' "$tmp/stderr" | head -1)
case "$chosen" in
cpu | cuda) ;;
*) fail "the log does not say which backend auto chose: $(head -c 300 "$tmp/stderr")" ;;
esac
expect_rc 0 "--backend cpu" "$gridlm" generate "${args[@]}" --output "$tmp/cpu.jsonl" --backend cpu
expect_stderr "--backend cpu" "backend cpu: 1 thread per rank"
grep -qF -- "--cuda-graphs has no effect" "$tmp/stderr" && fail "--backend cpu: a note on --cuda-graphs nobody gave"
expect_rc 0 "--backend cpu --cuda-graphs off" "$gridlm" generate "${args[@]}" --output "$tmp/cpu2.jsonl" --backend cpu \
    --cuda-graphs off
expect_stderr "--backend cpu --cuda-graphs off" "--cuda-graphs has no effect on this backend"

# A CPU job maps none of the CUDA libraries (LD_DEBUG=files lists every library the loader reads).
cuda_libs='file=[^ ]*lib(cudart|cublas|cublasLt|nccl|gridlm_cuda|gridlm_nccl)\.so'
LD_DEBUG=files "$gridlm" generate "${args[@]}" --output "$tmp/ld.jsonl" --backend cpu 2>"$tmp/ld.log" >/dev/null ||
    fail "--backend cpu under LD_DEBUG failed: $(tail -c 300 "$tmp/ld.log")"
grep -qE "$cuda_libs" "$tmp/ld.log" &&
    fail "a --backend cpu job loaded CUDA libraries: $(grep -oE "$cuda_libs" "$tmp/ld.log" | sort -u | tr '\n' ' ')"
if "$gridlm" --version | grep -q "cuda (CUDA architectures"; then
    # Without a driver --version says so and loads nothing; with one, whether the module loads.
    if [ "$chosen" = cpu ] && grep -qF "no NVIDIA driver" "$tmp/stderr.auto"; then
        "$gridlm" --version | grep -qF "libgridlm_cuda.so not loaded: no NVIDIA driver (libcuda) on this node" ||
            fail "--version on a node without a driver: $("$gridlm" --version 2>&1 | head -c 300)"
        LD_DEBUG=files "$gridlm" --version 2>&1 >/dev/null | grep -qE "$cuda_libs" &&
            fail "--version on a node without a driver loaded CUDA libraries"
    else
        "$gridlm" --version | grep -qF "libgridlm_cuda.so loads" ||
            fail "--version does not say the CUDA module loads: $("$gridlm" --version 2>&1 | head -c 300)"
        GRIDLM_MODULE_DIR=$tmp/no-modules "$gridlm" --version |
            grep -qF "libgridlm_cuda.so was not found in $tmp/no-modules" ||
            fail "--version without the module: $(GRIDLM_MODULE_DIR=$tmp/no-modules "$gridlm" --version 2>&1 | head -c 300)"
    fi
    # A copy of gridlm without its modules runs CPU jobs.
    mkdir -p "$tmp/alone" && cp "$gridlm" "$tmp/alone/gridlm"
    expect_rc 0 "a copied gridlm without the modules, --backend cpu" \
        "$tmp/alone/gridlm" generate "${args[@]}" --output "$tmp/alone.jsonl" --backend cpu
    same_output "a copied gridlm without the modules: the same records" "$tmp/cpu.jsonl" "$tmp/alone.jsonl"
    GRIDLM_MODULE_DIR=$tmp/no-modules expect_rc 0 "--backend cpu without the CUDA modules" \
        "$gridlm" generate "${args[@]}" --output "$tmp/nomod.jsonl" --backend cpu
    same_output "--backend cpu without the CUDA modules: the same records" "$tmp/cpu.jsonl" "$tmp/nomod.jsonl"
fi
if [ "$chosen" = cpu ]; then
    LD_DEBUG=files "$gridlm" generate "${args[@]}" --output "$tmp/ld2.jsonl" 2>"$tmp/ld.log" >/dev/null
    grep -qE "$cuda_libs" "$tmp/ld.log" &&
        fail "--backend auto on a node without a GPU loaded CUDA libraries: $(grep -oE "$cuda_libs" "$tmp/ld.log" |
            sort -u | tr '\n' ' ')"
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
