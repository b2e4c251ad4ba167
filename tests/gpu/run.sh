#!/usr/bin/env bash
# shellcheck disable=SC2317  # the stage_* functions are called by name ("stage_$2")
# The GPU device check: one script, run once on a machine with an NVIDIA GPU (sm_90 build). Each
# stage runs under its own time limit and records PASS, FAIL, SKIP (no GPU) or NOT RUN (time
# budget spent); a failed stage never stops the next one. Logs go to $OUT (default
# /tmp/gridlm-gpu): one per stage and summary.txt, six files in all; scratch files (generated
# models, outputs) to $GRIDLM_GPU_WORK (default /tmp/gridlm-gpu-work). Exit status: 0 when every
# stage passed, 1 otherwise; 77, building nothing, when nvidia-smi lists no GPU (GRIDLM_GPU_FORCE=1
# runs the stages anyway).
#   bash tests/gpu/run.sh                 # about 5-8 minutes on a 16-core H200 machine
# Stages: a_env (nvidia-smi, nvcc, tools), b_build (packages if missing, configure + build in
# build-gpu/), c_conformance (CUDA op and backend tests, NCCL on one rank), d_generate (greedy
# tokens of the CPU and CUDA backends compared, CUDA graphs on against off), e_bench (bench_cuda).
# Environment: GRIDLM_GPU_BUDGET_S (default 480: later stages get what is left), GRIDLM_JOBS
# (default nproc), GRIDLM_MODELS (default <repo>/models), GRIDLM_GPU_BUILD (default <repo>/build-gpu).
set -u
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
self=$repo/tests/gpu/run.sh
export GRIDLM_REPO=$repo
export GRIDLM_OUT=${GRIDLM_OUT:-${OUT:-/tmp/gridlm-gpu}}
export GRIDLM_GPU_WORK=${GRIDLM_GPU_WORK:-/tmp/gridlm-gpu-work}
export GRIDLM_GPU_BUILD=${GRIDLM_GPU_BUILD:-$repo/build-gpu}
export GRIDLM_MODELS=${GRIDLM_MODELS:-$repo/models}
export GRIDLM_JOBS=${GRIDLM_JOBS:-$(nproc)}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMP_WAIT_POLICY=passive GTEST_COLOR=no
bin=$GRIDLM_GPU_BUILD/bin

say() { printf '[gpu %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

# ---- NCCL: CMake looks in the CUDA toolkit (parallel/CMakeLists.txt); elsewhere (the pip wheel
# nvidia-nccl-cu*, a system package) it is named to CMake and put on the library path here.
nccl_lib="" nccl_inc=""
find_nccl() {
  local d libs
  for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/lib/x86_64-linux-gnu; do
    libs=("$d"/libnccl.so*)
    if [ -e "${libs[0]}" ]; then
      nccl_lib=${libs[0]}
      break
    fi
  done
  if [ -z "$nccl_lib" ] && command -v python3 >/dev/null 2>&1; then
    d=$(python3 -c 'import nvidia.nccl as m; print(list(m.__path__)[0])' 2>/dev/null)
    libs=("$d"/lib/libnccl.so*)
    if [ -n "$d" ] && [ -e "${libs[0]}" ]; then
      nccl_lib=${libs[0]}
      nccl_inc=$d/include
    fi
  fi
  [ -n "$nccl_inc" ] && [ -f "$nccl_inc/nccl.h" ] && return  # the wheel's header with the wheel's library
  nccl_inc=""
  for d in /usr/local/cuda/include /usr/include; do
    [ -f "$d/nccl.h" ] && nccl_inc=$d && break
  done
}
find_nccl
if [ -n "$nccl_lib" ]; then
  LD_LIBRARY_PATH=$(dirname "$nccl_lib")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  export LD_LIBRARY_PATH
fi
export GRIDLM_NCCL_LIB=$nccl_lib GRIDLM_NCCL_INC=$nccl_inc
export PATH=$PATH:/usr/local/cuda/bin

# Whether the driver lists a GPU (without one the GPU stages end as SKIP after running what they can).
gpu_visible() { nvidia-smi -L 2>/dev/null | grep -q '^GPU '; }

# need BINARY...: every binary exists, else say which is missing (the build stage failed).
need() {
  local b ok=0
  for b in "$@"; do
    if [ ! -x "$bin/$b" ]; then
      echo "missing $bin/$b (see b_build.log)"
      ok=1
    fi
  done
  return "$ok"
}

# ---------------------------------------------------------------------------------------------
stage_a_env() {
  local rc=0
  nvidia-smi || rc=1
  nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap,clocks.max.sm,clocks.max.mem --format=csv || true
  nvcc --version || rc=1
  echo "--- host: $(nproc) cores; $(free -g | awk '/^Mem:/ {print $2 " GiB memory"}'); $(uname -r)"
  head -2 /etc/os-release 2>/dev/null
  df -h "$repo" | tail -1
  local t
  for t in cmake ninja make c++ mpicc mpirun h5pcc ccache python3 clang-format; do
    printf '%-12s %s\n' "$t" "$(command -v "$t" || echo MISSING)"
  done
  cmake --version 2>/dev/null | head -1
  echo "NCCL library: ${GRIDLM_NCCL_LIB:-not found}; nccl.h in: ${GRIDLM_NCCL_INC:-not found}"
  echo "models in $GRIDLM_MODELS:" "$GRIDLM_MODELS"/*
  return "$rc"
}

# The Debian packages launch/setup.sh installs (its own list), installed with apt when a build
# tool or library is missing; if some of them do not exist in this distribution, the ones the
# build needs. Without a package mirror this fails and says so. (setup.sh itself would then build
# every target for two architectures, which this script's time budget does not allow.)
install_packages() {
  local packages=() build_only=(build-essential cmake pkg-config libopenmpi-dev openmpi-bin libhdf5-openmpi-dev
    libboost-program-options-dev libgtest-dev nlohmann-json3-dev libpcre2-dev libopenblas-dev python3)
  eval "$(sed -n '/^packages=(/,/)$/p' "$repo/launch/setup.sh")"
  [ ${#packages[@]} -gt 0 ] || packages=("${build_only[@]}")
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "FAILED: no apt-get on this machine: install the packages of launch/setup.sh by hand"
    return 1
  fi
  echo "apt-get update (packages: ${packages[*]})"
  if ! timeout 60 apt-get update -qq; then
    echo "FAILED: apt-get update (no network or no package mirror on this machine): cannot install the build"
    echo "dependencies (launch/setup.sh lists them). Use a machine image that has them and run again."
    return 1
  fi
  DEBIAN_FRONTEND=noninteractive timeout 200 apt-get install -y -qq --no-install-recommends "${packages[@]}" ||
    DEBIAN_FRONTEND=noninteractive timeout 200 apt-get install -y -qq --no-install-recommends "${build_only[@]}"
}

stage_b_build() {
  local missing=() t
  for t in cmake mpicc h5pcc c++; do command -v "$t" >/dev/null 2>&1 || missing+=("$t"); done
  for t in /usr/include/boost/program_options.hpp /usr/include/nlohmann/json.hpp /usr/include/gtest/gtest.h \
    /usr/include/pcre2.h; do [ -f "$t" ] || missing+=("$t"); done
  # OpenBLAS (for tests/bench/'s CPU roofline): any one of the places Debian puts cblas.h.
  local blas=""
  for t in /usr/include/x86_64-linux-gnu/openblas*/cblas.h /usr/include/openblas/cblas.h; do
    [ -f "$t" ] && blas=$t
  done
  [ -n "$blas" ] || missing+=("OpenBLAS (cblas.h)")
  if [ ${#missing[@]} -gt 0 ]; then
    echo "missing: ${missing[*]}"
    install_packages || return 1
  fi
  local gen=() launch=() nccl=()
  if [ ! -f "$GRIDLM_GPU_BUILD/CMakeCache.txt" ] && command -v ninja >/dev/null 2>&1; then gen=(-G Ninja); fi
  if command -v ccache >/dev/null 2>&1; then
    launch=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
  fi
  [ -n "$GRIDLM_NCCL_LIB" ] && nccl+=(-DGRIDLM_NCCL_LIBRARY="$GRIDLM_NCCL_LIB")
  [ -n "$GRIDLM_NCCL_INC" ] && nccl+=(-DGRIDLM_NCCL_INCLUDE_DIR="$GRIDLM_NCCL_INC")
  say "configure"
  cmake -S "$repo" -B "$GRIDLM_GPU_BUILD" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DGRIDLM_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES=90 "${launch[@]}" "${nccl[@]}" || return 1
  if ! grep -q '^GRIDLM_NCCL_LIBRARY:.*nccl' "$GRIDLM_GPU_BUILD/CMakeCache.txt"; then
    echo "configure did not find NCCL"
  fi
  local targets=(gridlm test_backend_ops test_cuda_backend test_kv_dtype test_nccl_comms bench_cuda) want=()
  [ -f "$repo/tests/unit/test_model_golden.cpp" ] && targets+=(test_model_golden)
  want=("${targets[@]}")
  say "build ${targets[*]} with $GRIDLM_JOBS jobs"
  local keep=(-k)
  grep -q '^CMAKE_GENERATOR:INTERNAL=Ninja' "$GRIDLM_GPU_BUILD/CMakeCache.txt" && keep=(-k 0)
  cmake --build "$GRIDLM_GPU_BUILD" -j "$GRIDLM_JOBS" --target "${targets[@]}" -- "${keep[@]}"
  local rc=$? missing_bins=()
  for t in "${want[@]}"; do [ -x "$bin/$t" ] || missing_bins+=("$t"); done
  if [ ${#missing_bins[@]} -gt 0 ]; then
    echo "not built: ${missing_bins[*]}"
    return 1
  fi
  return "$rc"
}

stage_c_conformance() {
  local rc=0
  need test_backend_ops test_cuda_backend test_kv_dtype test_nccl_comms || rc=1
  local out=$GRIDLM_GPU_WORK/conformance.out skipped=""
  mkdir -p "$GRIDLM_GPU_WORK"
  run_test() {  # run_test NAME CMD...: one test binary, its result on one line
    local name=$1 r s
    shift
    say "$name: $*"
    "$@" 2>&1 | tee "$out"
    r=${PIPESTATUS[0]}
    # GPU cases skipped (no device, no kernel image): on a machine with a GPU that is a failure.
    s=$(grep -E '^\[  SKIPPED \] [^ ]*([Cc]uda|CUDA|Nccl)' "$out" | awk '{print $4}' | sort -u | tr '\n' ' ')
    echo "== $name: exit $r${s:+; GPU cases skipped: $s}"
    skipped+=$s
    [ "$r" -eq 0 ] || rc=1
  }
  [ -x "$bin/test_backend_ops" ] && run_test backend_ops "$bin/test_backend_ops" --gtest_filter='*cuda*:*Cuda*:*CUDA*'
  [ -x "$bin/test_cuda_backend" ] && run_test cuda_backend "$bin/test_cuda_backend"
  [ -x "$bin/test_model_golden" ] &&
    run_test model_golden_cuda "$bin/test_model_golden" --gtest_filter='*cuda*:*Cuda*:*CUDA*'
  [ -x "$bin/test_nccl_comms" ] && run_test nccl_comms timeout 120 mpirun -n 1 "$bin/test_nccl_comms"
  # Last, as it is mostly CPU work. Its SmolLM2 / Qwen2.5 goldens read the real models; without
  # them only those cases are left out.
  local kv_filter='*'
  if [ ! -f "$GRIDLM_MODELS/SmolLM2-135M-Instruct.Q4_1.gguf" ] ||
    [ ! -f "$GRIDLM_MODELS/Qwen2.5-Coder-0.5B-Instruct.Q4_K_M.gguf" ]; then
    kv_filter='-KvDtypeGolden.SmolLM2*:KvDtypeGolden.Qwen2*'
    echo "real models missing in $GRIDLM_MODELS: test_kv_dtype runs without their goldens"
  fi
  [ -x "$bin/test_kv_dtype" ] && run_test kv_dtype timeout 90 "$bin/test_kv_dtype" --gtest_filter="$kv_filter"
  if ! gpu_visible; then
    echo "no GPU visible: the GPU cases could not run"
    [ "$rc" -eq 0 ] && return 77
  elif [ -n "$skipped" ]; then
    echo "FAIL: GPU cases skipped on a machine with a GPU: $skipped"
    rc=1
  fi
  return "$rc"
}

# gen MODEL OUT ARGS...: greedy generation of the stage's prompts, token ids and top-5 log-probs
# (90 s at most: a hang fails this run, not the whole stage).
gen() {
  local model=$1 out=$2
  shift 2
  local t0=$SECONDS r
  timeout 90 "$bin/gridlm" generate --model "$model" --prompts "$GRIDLM_GPU_WORK/prompts.jsonl" --output "$out" \
    --temperature 0 --max-tokens 48 --ignore-eos --logprobs --top-logprobs 5 --order input --max-seqs 8 \
    --kv-cache-dtype bf16 --threads "$GRIDLM_JOBS" -q "$@" 2>"$out.stderr"
  r=$?
  echo "   $(basename "$out"): exit $r in $((SECONDS - t0)) s"
  if [ "$r" -eq 0 ]; then tail -1 "$out.stderr"; else tail -5 "$out.stderr"; fi | sed 's/^/     /'
  return "$r"
}

stage_d_generate() {
  need gridlm || return 1
  local w=$GRIDLM_GPU_WORK rc=0 tiny=$repo/tests/reference/golden/tiny-qwen2-hf
  case $w in /tmp/?* | "$repo"/?*) rm -rf "$w" ;; esac
  mkdir -p "$w" || return 1
  python3 - "$w/prompts.jsonl" <<'EOF'
import json, sys
prompts = ["The capital of France is", "def fibonacci(n):\n    ", "Once upon a time, in a small village,",
           "The three laws of thermodynamics are", "SELECT name, COUNT(*) FROM users",
           "Translate to German: The weather is nice today.", "1, 1, 2, 3, 5, 8, 13,",
           "A haiku about the sea:\n"]
with open(sys.argv[1], "w") as f:
    for i, p in enumerate(prompts):
        f.write(json.dumps({"id": f"p{i}", "prompt": p}) + "\n")
EOF
  # Models: the real ones when the model cache has them, always the tracked tiny model and two
  # random bf16 models of real widths (head_dim 64 as SmolLM2 / Qwen2.5-0.5B, 128 as the 7B).
  local models=()
  if [ -f "$GRIDLM_MODELS/SmolLM2-135M-Instruct.f32.h5" ]; then
    models+=("smollm2=$GRIDLM_MODELS/SmolLM2-135M-Instruct.f32.h5")
  elif [ -f "$GRIDLM_MODELS/SmolLM2-135M-Instruct.Q4_1.gguf" ]; then
    models+=("smollm2=$GRIDLM_MODELS/SmolLM2-135M-Instruct.Q4_1.gguf")
  else
    echo "SmolLM2 is not in $GRIDLM_MODELS (launch/fetch_models.sh): not compared"
  fi
  if [ -f "$GRIDLM_MODELS/Qwen2.5-Coder-0.5B-Instruct.Q4_K_M.gguf" ]; then
    models+=("qwen2.5-0.5b=$GRIDLM_MODELS/Qwen2.5-Coder-0.5B-Instruct.Q4_K_M.gguf")
  else
    echo "Qwen2.5-Coder-0.5B is not in $GRIDLM_MODELS: not compared"
  fi
  models+=("tiny-qwen2=$tiny")
  python3 "$repo/tests/gpu/make_random_qwen2.py" "$w/random-hd64" --tokenizer-from "$tiny" \
    --hidden 896 --heads 14 --kv-heads 2 --ff 4864 --layers 4 --seed 1 && models+=("random-hd64=$w/random-hd64")
  python3 "$repo/tests/gpu/make_random_qwen2.py" "$w/random-hd128" --tokenizer-from "$tiny" \
    --hidden 1024 --heads 8 --kv-heads 2 --ff 2816 --layers 4 --seed 2 && models+=("random-hd128=$w/random-hd128")
  local m name path
  for m in "${models[@]}"; do
    name=${m%%=*} path=${m#*=}
    say "model $name: $path"
    gen "$path" "$w/$name.cpu.jsonl" --backend cpu --dtype bf16 || rc=1
    gen "$path" "$w/$name.cuda.jsonl" --backend cuda || rc=1
    gen "$path" "$w/$name.cuda-nographs.jsonl" --backend cuda --cuda-graphs off || rc=1
    echo "-- $name: cpu (--dtype bf16) against cuda (--dtype auto), both --kv-cache-dtype bf16"
    python3 "$repo/tests/gpu/compare_tokens.py" "$w/$name.cpu.jsonl" "$w/$name.cuda.jsonl" --names cpu,cuda || rc=1
    echo "-- $name: cuda graphs on against off (must be identical, log-probs too)"
    python3 "$repo/tests/gpu/compare_tokens.py" "$w/$name.cuda.jsonl" "$w/$name.cuda-nographs.jsonl" \
      --names graphs-on,graphs-off --exact || rc=1
    echo
    if [ -f "$w/$name.cuda.jsonl" ]; then
      echo "-- $name: the first two cuda completions:"
      head -2 "$w/$name.cuda.jsonl" | python3 -c '
import json, sys
for line in sys.stdin:
    r = json.loads(line)
    print("  ", r.get("id"), repr(r.get("text", r.get("error")))[:160])'
    fi
  done
  if ! gpu_visible; then
    echo "no GPU visible: only the CPU side ran"
    return 77
  fi
  return "$rc"
}

stage_e_bench() {
  need bench_cuda || return 1
  local rc=0
  say "bench_cuda (batch 256)"
  "$bin/bench_cuda"
  rc=$?
  [ "$rc" -eq 77 ] && return 77
  local left=$((GRIDLM_STAGE_DEADLINE - $(date +%s)))
  if [ "$left" -gt 100 ]; then
    say "bench_cuda --batch 64 --no-graphs-off ($left s left)"
    timeout $((left - 5)) "$bin/bench_cuda" --batch 64 --no-graphs-off || rc=1
  else
    echo "no time left for the --batch 64 run ($left s)"
  fi
  return "$rc"
}

# ---------------------------------------------------------------------------------------------
if [ "${1:-}" = --stage ]; then
  "stage_$2"
  exit $?
fi

mkdir -p "$GRIDLM_OUT"
summary=$GRIDLM_OUT/summary.txt
budget=${GRIDLM_GPU_BUDGET_S:-480}
start=$(date +%s)
failed=0
{
  echo "gridlm GPU device check, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(hostname), repo $repo"
  echo "commit: $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
    "($(git -C "$repo" status --porcelain 2>/dev/null | wc -l) changed files)"
} >"$summary"

# run_stage NAME LIMIT: the stage under min(LIMIT, what the budget leaves), output in NAME.log.
run_stage() {
  local name=$1 limit=$2 now left t0 rc status
  now=$(date +%s)
  left=$((budget - (now - start)))
  [ "$limit" -gt "$left" ] && limit=$left
  if [ "$limit" -lt 15 ]; then
    status="NOT RUN (budget of ${budget} s spent; GRIDLM_GPU_BUDGET_S)"
    rc=1
  else
    say "stage $name (limit ${limit} s)"
    export GRIDLM_STAGE_DEADLINE=$((now + limit))
    t0=$SECONDS
    timeout --kill-after=10 "$limit" bash "$self" --stage "$name" >"$GRIDLM_OUT/$name.log" 2>&1
    rc=$?
    case $rc in
      0) status=PASS ;;
      77) status="SKIP (no GPU)"; rc=0 ;;
      124 | 137) status="FAIL (timed out after ${limit} s)" ;;
      *) status="FAIL (exit $rc)" ;;
    esac
    status="$status in $((SECONDS - t0)) s"
  fi
  [ "$rc" -eq 0 ] || failed=1
  printf '%-16s %s\n' "$name" "$status" | tee -a "$summary"
}

# No GPU (no driver or no device): nothing here can be checked, so nothing is built; every stage
# says so and the script exits 77. GRIDLM_GPU_FORCE=1 runs the stages anyway (to test the script).
if [ "${GRIDLM_GPU_FORCE:-0}" != 1 ] && ! nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then
  echo "no GPU visible (nvidia-smi -L lists none: no NVIDIA driver or no device): nothing to check" |
    tee -a "$summary"
  for name in a_env b_build c_conformance d_generate e_bench; do
    printf '%-16s %s\n' "$name" "SKIP (no GPU)" | tee -a "$summary"
  done
  exit 77
fi
run_stage a_env 30
run_stage b_build 330
run_stage c_conformance 120
run_stage d_generate 150
run_stage e_bench 240

# What to read first: the key lines of each log.
{
  echo
  echo "--- c_conformance: test results"
  grep -E '^== |^\[  FAILED  \] [A-Za-z]|^FAIL|^no GPU|^missing' "$GRIDLM_OUT/c_conformance.log" 2>/dev/null | head -40
  echo "--- d_generate: comparisons"
  grep -E '^-- |^summary|MISMATCH|MISSING|ERROR|exit [1-9]|^no GPU|^missing|not compared' \
    "$GRIDLM_OUT/d_generate.log" 2>/dev/null | head -80
  echo "--- e_bench: figures"
  grep -E 'HBM|roofline|batch 1,|graphs save|bulk|steps:|logits|loaded|WARNING|bench_cuda:|^\{' \
    "$GRIDLM_OUT/e_bench.log" 2>/dev/null | head -40
} >>"$summary"
# Keep every log small enough to travel back: the head and the tail of a long one.
for f in "$GRIDLM_OUT"/*.log; do
  [ -f "$f" ] || continue
  if [ "$(wc -c <"$f")" -gt 4000000 ]; then
    { head -c 1000000 "$f"; printf '\n[... cut ...]\n'; tail -c 2000000 "$f"; } >"$f.cut" && mv "$f.cut" "$f"
  fi
done
echo "total $(($(date +%s) - start)) s; logs in $GRIDLM_OUT" >>"$summary"
cat "$summary"
exit $failed
