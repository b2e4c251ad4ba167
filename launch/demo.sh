#!/usr/bin/env bash
# The main example job: sets up the machine (packages, build, models), converts SmolLM2-135M
# to the native checkpoint, runs `gridlm generate` under mpirun on the example prompts, as a
# two-stage pipeline (one rank per stage), and prints the completions.
#   bash launch/demo.sh [extra gridlm generate options, e.g. --max-tokens 32]
# Environment: GRIDLM_DEMO_GRID=dp,pp,tp (default 1,2,1; 1,1,1 for a single rank).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
models=${GRIDLM_MODELS:-$repo/models}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

bash "$repo/launch/setup.sh"
gridlm=$repo/build/bin/gridlm

ckpt=$models/SmolLM2-135M-Instruct.f32.h5
if [ ! -f "$ckpt" ]; then
  echo "[demo] converting SmolLM2-135M-Instruct (GGUF Q4_1 -> HDF5 f32)" >&2
  "$gridlm" convert --from "$models/SmolLM2-135M-Instruct.Q4_1.gguf" --to "$ckpt" --dtype f32
fi
out_dir=$repo/build/demo
mkdir -p "$out_dir"
"$gridlm" inspect "$ckpt" > "$out_dir/inspect.txt"
sed -n '1,20p' "$out_dir/inspect.txt"
echo "  ... (whole listing in $out_dir/inspect.txt)"
out=$out_dir/completions.jsonl
rm -f "$out"
IFS=, read -r dp pp tp <<<"${GRIDLM_DEMO_GRID:-1,2,1}"
ranks=$((dp * pp * tp))
threads=$(( $(nproc) / ranks > 0 ? $(nproc) / ranks : 1 ))
echo "[demo] mpirun -n $ranks gridlm generate --dp $dp --pp $pp --tp $tp on configs/examples/prompts.jsonl" >&2
OMP_WAIT_POLICY=passive mpirun -n "$ranks" --oversubscribe --bind-to none "$gridlm" generate --model "$ckpt" \
  --prompts "$repo/configs/examples/prompts.jsonl" --output "$out" \
  --config "$repo/configs/examples/demo.cfg" --dp "$dp" --pp "$pp" --tp "$tp" --threads "$threads" "$@"

echo
echo "== completions ($out) =="
python3 - "$out" <<'PY' 2>/dev/null || cat "$out"
import json, sys
for line in open(sys.argv[1], encoding="utf-8"):
    r = json.loads(line)
    if "error" in r:
        print(f"[{r.get('id')}] ERROR line {r.get('line')}: {r['error']}\n")
    else:
        print(f"[{r['id']}] ({r['finish_reason']}, {r['usage']['completion_tokens']} tokens)\n{r['text'].strip()}\n")
PY
