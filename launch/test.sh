#!/usr/bin/env bash
# Sets up everything (packages, build, models) and runs the whole test suite:
# unit, golden, MPI and end-to-end tests through ctest, then the file-format reader tests
# again in an AddressSanitizer/UndefinedBehaviorSanitizer build, then each libFuzzer target of
# tests/fuzz/ for a few seconds (clang build in build-fuzz/).
#   bash launch/test.sh            # CUDA tests run only where a GPU is present
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
jobs=${GRIDLM_JOBS:-$(nproc)}
start=$(date +%s)

bash "$repo/launch/setup.sh"

echo "[test] clang-format check" >&2
(cd "$repo" && git ls-files -co --exclude-standard -- '*.cpp' '*.h' '*.cu' '*.cuh' | xargs clang-format --dry-run --Werror)

echo "[test] layering check (tests/check_deps.sh)" >&2
bash "$repo/tests/check_deps.sh" "$repo"

echo "[test] ctest (build/)" >&2
# -LE soak: the 100000-record soak takes minutes; `ctest -L soak` runs it on its own.
(cd "$repo/build" && ctest --output-on-failure -j "$jobs" --timeout 900 -LE soak)

echo "[test] sanitizer build of the file-format readers (build-asan/)" >&2
asan_tests=(test_gguf_bad_files test_safetensors test_safetensors_fp8 test_gguf_deepseek test_h5_checkpoint_errors test_job_journal
  test_jinja test_chat_corpus)
mkdir -p "$repo/build-asan"
cmake -S "$repo" -B "$repo/build-asan" -DCMAKE_BUILD_TYPE=Debug -DGRIDLM_SANITIZE=ON -DGRIDLM_CUDA=OFF \
  >"$repo/build-asan/configure.log" 2>&1 || { cat "$repo/build-asan/configure.log" >&2; exit 1; }
built=()
for t in "${asan_tests[@]}"; do
  if [ -f "$repo/tests/unit/$t.cpp" ]; then built+=("$t"); fi
done
cmake --build "$repo/build-asan" -j "$jobs" --target "${built[@]}" >/dev/null
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
pattern=$(printf '%s\\.|' "${built[@]}")
(cd "$repo/build-asan" && ctest --output-on-failure -j "$jobs" -R "^(${pattern%|})")

echo "[test] libFuzzer targets, a few seconds each (build-fuzz/, clang)" >&2
fuzz_start=$(date +%s)
mkdir -p "$repo/build-fuzz"
cmake -S "$repo" -B "$repo/build-fuzz" -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DGRIDLM_FUZZ=ON -DGRIDLM_CUDA=OFF >"$repo/build-fuzz/configure.log" 2>&1 || {
  cat "$repo/build-fuzz/configure.log" >&2; exit 1; }
fuzz_targets=()
for src in "$repo"/tests/fuzz/fuzz_*.cpp; do fuzz_targets+=("$(basename "$src" .cpp)"); done
cmake --build "$repo/build-fuzz" -j "$jobs" --target "${fuzz_targets[@]}" >/dev/null
(cd "$repo/build-fuzz" && ctest --output-on-failure -j "$jobs" -R '^fuzz\.')
echo "[test] fuzz stage took $(( $(date +%s) - fuzz_start )) s" >&2

echo "[test] all done in $(( $(date +%s) - start )) s" >&2
