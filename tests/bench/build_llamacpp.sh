#!/usr/bin/env bash
# Builds the peer of tests/bench/bench_peer.sh: llama.cpp's own command-line tools (llama-bench,
# llama-batched-bench, llama-perplexity, llama-quantize) from the llama.cpp source that the PyPI
# sdist of llama-cpp-python (pinned below) vendors, outside this repository. Prints the directory
# holding the four tools as its last stdout line; progress goes to stderr.
#   bash tests/bench/build_llamacpp.sh
# Environment:
#   GRIDLM_LLAMACPP_BIN  a directory that already holds the four tools: checked and printed, no build
#   GRIDLM_PEER_DIR      cache directory (default ~/.cache/gridlm-peer): the sdist, its extracted
#                        tree and the build; an existing complete build there is reused
#   LLAMACPP_PY_VERSION  llama-cpp-python version (default 0.3.36)
#   JOBS                 parallel compile jobs (default: the number of cores)
# Build: CMake Release, GGML_NATIVE=ON (-march=native: build where you measure), static libraries,
# no HTTP client, only the four tool targets. Needs pip (for `pip download`), cmake, a C++17 compiler.
set -euo pipefail
tools=(llama-bench llama-batched-bench llama-perplexity llama-quantize)
log() { echo "build_llamacpp: $*" >&2; }
die() { log "error: $*"; exit 1; }

# Succeeds when directory $1 holds all four tools as executables.
has_tools() {
  local t
  for t in "${tools[@]}"; do [ -x "$1/$t" ] || return 1; done
}

if [ -n "${GRIDLM_LLAMACPP_BIN:-}" ]; then
  has_tools "$GRIDLM_LLAMACPP_BIN" ||
    die "GRIDLM_LLAMACPP_BIN=$GRIDLM_LLAMACPP_BIN lacks one of: ${tools[*]}"
  (cd "$GRIDLM_LLAMACPP_BIN" && pwd)
  exit 0
fi

version=${LLAMACPP_PY_VERSION:-0.3.36}
peer_dir=${GRIDLM_PEER_DIR:-$HOME/.cache/gridlm-peer}
peer_dir=$(realpath -m "$peer_dir")
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
case "$peer_dir/" in
  "$repo"/*) die "GRIDLM_PEER_DIR ($peer_dir) is inside the repository; choose a directory outside it" ;;
esac
mkdir -p "$peer_dir"
sdist=$peer_dir/llama_cpp_python-$version.tar.gz
tree=$peer_dir/llama_cpp_python-$version
src=$tree/vendor/llama.cpp
build=$src/build
bin=$build/bin

if has_tools "$bin"; then
  log "reusing $bin"
  echo "$bin"
  exit 0
fi

command -v cmake >/dev/null || die "cmake not found"
if [ ! -f "$src/CMakeLists.txt" ]; then
  if [ ! -f "$sdist" ]; then
    log "downloading llama-cpp-python==$version (sdist) into $peer_dir"
    python3 -m pip download --no-binary :all: --no-deps --dest "$peer_dir" "llama-cpp-python==$version" >&2 ||
      die "pip download of llama-cpp-python==$version failed"
    [ -f "$sdist" ] || die "pip saved no $sdist"
  fi
  log "extracting $sdist"
  tar -xzf "$sdist" -C "$peer_dir"
  [ -f "$src/CMakeLists.txt" ] || die "$sdist has no vendor/llama.cpp"
fi

jobs=${JOBS:-$(nproc)}
log "configuring $build"
cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DBUILD_SHARED_LIBS=OFF \
  -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
  -DLLAMA_BUILD_SERVER=OFF >&2
log "building ${tools[*]} with $jobs jobs (several minutes)"
cmake --build "$build" --config Release -j "$jobs" --target "${tools[@]}" >&2
has_tools "$bin" || die "the build finished but $bin lacks one of: ${tools[*]}"
echo "$bin"
