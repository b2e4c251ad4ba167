#!/usr/bin/env bash
# Runs a gridlm generate job on a dp x pp x tp grid with plain Open MPI `mpirun`: one rank per
# grid position, -n = DP * PP * TP, each rank bound to its own THREADS cores.
#   bash launch/mpirun_example.sh MODEL PROMPTS OUTPUT [more gridlm generate options]
#   GRIDLM_DP=2 GRIDLM_TP=2 GRIDLM_THREADS=4 bash launch/mpirun_example.sh m.h5 p.jsonl out.jsonl --temperature 0
#   GRIDLM_HOSTFILE=hosts GRIDLM_RANKS_PER_NODE=8 GRIDLM_TP=8 GRIDLM_PP=2 bash launch/mpirun_example.sh ...
# Environment:
#   GRIDLM_DP, GRIDLM_PP, GRIDLM_TP   grid sizes (default 1 each); tp is the innermost dimension
#                                     (consecutive ranks), so keep TP <= GRIDLM_RANKS_PER_NODE
#   GRIDLM_THREADS                    OpenMP threads per rank (default: cores of this node / ranks per node)
#   GRIDLM_HOSTFILE                   Open MPI hostfile for a multi-node run (default: this machine only)
#   GRIDLM_RANKS_PER_NODE             ranks placed on each node (default: all ranks on this node)
#   GRIDLM_CORES_PER_NODE             physical cores of a compute node (default: this machine's)
#   GRIDLM_BIN                        gridlm executable (default: build/bin/gridlm of this checkout)
#   GRIDLM_DRY_RUN=1                  print the mpirun command instead of running it
# As root, Open MPI also wants OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1.
# The exit status is mpirun's: gridlm's own (0 ok, 1 fatal, 2 usage, 3 some records failed), or
# non-zero when a rank died (mpirun then ends the others).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
die() { printf 'mpirun_example.sh: %s\n' "$*" >&2; exit 2; }
[ $# -ge 3 ] || { awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0" >&2; exit 2; }
model=$1 prompts=$2 output=$3
shift 3

dp=${GRIDLM_DP:-1} pp=${GRIDLM_PP:-1} tp=${GRIDLM_TP:-1}
for v in dp pp tp; do [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "GRIDLM_${v^^} must be a positive integer"; done
n=$((dp * pp * tp))
per_node=${GRIDLM_RANKS_PER_NODE:-$n}
[[ $per_node =~ ^[1-9][0-9]*$ ]] || die "GRIDLM_RANKS_PER_NODE must be a positive integer"
# Physical cores (not hardware threads): Open MPI's PE=T counts cores.
cores=${GRIDLM_CORES_PER_NODE:-$(lscpu -p=CORE,SOCKET 2>/dev/null | grep -v '^#' | sort -u | wc -l)}
[[ $cores =~ ^[1-9][0-9]*$ ]] || cores=$(nproc)
threads=${GRIDLM_THREADS:-$((cores / per_node > 0 ? cores / per_node : 1))}
[[ $threads =~ ^[1-9][0-9]*$ ]] || die "GRIDLM_THREADS must be a positive integer"
if ((per_node % tp != 0)); then
    echo "mpirun_example.sh: warning: tp=$tp does not divide $per_node ranks per node; TP groups span nodes" >&2
fi
gridlm=${GRIDLM_BIN:-$repo/build/bin/gridlm}

export OMP_NUM_THREADS=$threads
args=(-n "$n")
[ -z "${GRIDLM_HOSTFILE:-}" ] || args+=(--hostfile "$GRIDLM_HOSTFILE")
if ((per_node * threads <= cores)); then
    # ppr:N:node places N consecutive ranks per node (block order: a TP group shares a node);
    # PE=T gives each rank T cores and --bind-to core pins it there; the OpenMP threads then
    # spread over exactly those cores.
    args+=(--map-by "ppr:$per_node:node:PE=$threads" --bind-to core)
    export OMP_PROC_BIND=close OMP_PLACES=cores
else
    # More threads than cores: no pinning, and idle threads must sleep rather than spin, or
    # they steal the cores the working threads need (Open MPI yields by itself when it sees
    # the oversubscription).
    echo "mpirun_example.sh: $((per_node * threads)) threads on $cores cores: oversubscribed" >&2
    args+=(--oversubscribe --map-by slot --bind-to none)
    export OMP_WAIT_POLICY=passive
fi
for v in OMP_NUM_THREADS OMP_WAIT_POLICY OMP_PROC_BIND OMP_PLACES; do
    [ -z "${!v:-}" ] || args+=(-x "$v")
done

grid=()
# A one-rank job needs no grid options (and runs with gridlm builds that predate them).
if ((n > 1)) || [ -n "${GRIDLM_DP:-}${GRIDLM_PP:-}${GRIDLM_TP:-}" ]; then
    grid=(--dp "$dp" --pp "$pp" --tp "$tp")
fi
cmd=(mpirun "${args[@]}" "$gridlm" generate --model "$model" --prompts "$prompts" --output "$output"
    "${grid[@]}" --threads "$threads" "$@")
if [ "${GRIDLM_DRY_RUN:-0}" = 1 ]; then
    for v in OMP_NUM_THREADS OMP_WAIT_POLICY OMP_PROC_BIND OMP_PLACES; do
        [ -z "${!v:-}" ] || printf '%s=%s ' "$v" "${!v}"
    done
    printf '%q ' "${cmd[@]}"
    echo
    exit 0
fi
echo "mpirun_example.sh: dp=$dp pp=$pp tp=$tp -> $n ranks, $per_node per node, $threads thread(s) each" >&2
exec "${cmd[@]}"
