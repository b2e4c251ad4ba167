#!/usr/bin/env bash
# Sets up a machine for gridlm: installs the Debian packages it needs (when missing), builds
# the project into build/ and fetches the real models into the model cache.
#   bash launch/setup.sh [--no-models] [--build-dir DIR] [--build-type Release|RelWithDebInfo|Debug]
# Environment: GRIDLM_MODELS (model cache, default <repo>/models), GRIDLM_JOBS (build jobs, default nproc).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=$repo/build
build_type=Release
fetch=1
while [ $# -gt 0 ]; do
  case $1 in
    --no-models) fetch=0 ;;
    --build-dir) build_dir=$2; shift ;;
    --build-type) build_type=$2; shift ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
say() { printf '[setup] %s\n' "$*" >&2; }

# Debian packages: compilers/tools, MPI, parallel HDF5, Boost.Program_options, GoogleTest,
# nlohmann-json, PCRE2, OpenBLAS; clang-format and jq for the tests; prometheus for the metrics
# test's promtool; what the model fetch uses (python3 + pip, unzip); for the two-host test
# (network namespaces) iproute2's `ip` and util-linux's `unshare`, and procps (pgrep, ps); clang
# with its libFuzzer/sanitizer runtimes and OpenMP for the fuzz targets (tests/fuzz/).
packages=(build-essential cmake pkg-config git ca-certificates unzip
  libopenmpi-dev openmpi-bin libhdf5-openmpi-dev hdf5-tools libboost-program-options-dev prometheus
  libgtest-dev googletest nlohmann-json3-dev libpcre2-dev libopenblas-dev clang-format jq python3 python3-pip
  iproute2 util-linux procps clang libclang-rt-14-dev libomp-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# A python3 with pip that is not Debian's (pyenv, conda) is fine for fetching wheels.
if [[ " ${missing[*]} " == *" python3-pip "* ]] && command -v python3 >/dev/null && python3 -m pip --version >/dev/null 2>&1; then
  missing=("${missing[@]/python3-pip}")
fi
if [[ " ${missing[*]} " == *" python3 "* ]] && command -v python3 >/dev/null; then
  missing=("${missing[@]/python3}")
fi
read -r -a missing <<<"${missing[*]}"
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd=sudo
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Only promtool is wanted: stop and disable the server the package starts under systemd (in a
  # container without systemd or a runlevel, invoke-rc.d starts nothing).
  if [[ " ${missing[*]} " == *" prometheus "* ]] && [ -d /run/systemd/system ]; then
    $sudo_cmd systemctl disable --now prometheus.service >/dev/null 2>&1 || true
  fi
fi

jobs=${GRIDLM_JOBS:-$(nproc)}
say "configuring ($build_type) in $build_dir"
mkdir -p "$build_dir"
cmake -S "$repo" -B "$build_dir" -DCMAKE_BUILD_TYPE="$build_type" >"$build_dir/configure.log" 2>&1 || {
  cat "$build_dir/configure.log" >&2; exit 1; }
say "building with $jobs jobs"
cmake --build "$build_dir" -j "$jobs" 2>&1 | grep -E "error:|warning: unused|^make.*Error" >&2 || true
cmake --build "$build_dir" -j "$jobs" >/dev/null  # fails loudly if the build is broken
say "built $build_dir/bin/gridlm"

if [ "$fetch" = 1 ]; then
  bash "$repo/launch/fetch_models.sh"
fi
