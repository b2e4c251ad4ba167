#!/usr/bin/env bash
# Checks the layering of the source tree and fails (exit 1) on any breach:
#   engine/   includes only engine/ headers
#   io/       includes only io/ and engine/core/ headers
#   parallel/ includes only parallel/ and engine/core/ headers
#   launch/   may include engine/, io/ and parallel/
#   <mpi.h>, <nccl.h> (and other MPI / NCCL headers) only under parallel/ (directly: io/'s parallel
#   HDF5 header brings mpi.h in by itself)
#   project headers are named "dir/file.h"; <engine/...>-style includes of them count the same
#   no source file under engine/ io/ parallel/ launch/ longer than GRIDLM_MAX_LINES (default 600)
#   bash tests/check_deps.sh [REPO]
set -uo pipefail
repo=${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
max_lines=${GRIDLM_MAX_LINES:-600}
cd "$repo" || exit 2
fail=0
breach() { printf 'check_deps: %s\n' "$*" >&2; fail=1; }

allowed_prefixes() {
  case $1 in
    engine) echo "engine/" ;;
    io) echo "io/ engine/core/" ;;
    parallel) echo "parallel/ engine/core/" ;;
    launch) echo "launch/ engine/ io/ parallel/" ;;
  esac
}

for top in engine io parallel launch; do
  allowed=$(allowed_prefixes "$top")
  while IFS= read -r file; do
    # Quoted project includes: "dir/file.h".
    while IFS=: read -r line inc; do
      ok=0
      for p in $allowed; do
        [[ $inc == "$p"* ]] && ok=1
      done
      [ $ok = 1 ] || breach "$file:$line includes \"$inc\"; $top/ may include only: $allowed"
    done < <(grep -n -o -E '^[[:space:]]*#[[:space:]]*include[[:space:]]*("[^"]+"|<(engine|io|parallel|launch|tests)/[^>]+>)' "$file" |
             sed -E 's/^([0-9]+):[^"<]*["<]([^">]+)[">]/\1:\2/')
    # MPI and NCCL headers belong to parallel/.
    if [ "$top" != parallel ]; then
      while IFS=: read -r line inc; do
        breach "$file:$line includes <$inc>; only parallel/ may include MPI or NCCL headers"
      done < <(grep -n -o -E '^[[:space:]]*#[[:space:]]*include[[:space:]]*<(mpi|mpi_[a-z]+|nccl|nccl_[a-z]+)\.h>' "$file" |
               sed -E 's/^([0-9]+):.*<([^>]+)>/\1:\2/')
    fi
    n=$(wc -l <"$file")
    [ "$n" -le "$max_lines" ] || breach "$file has $n lines (at most $max_lines: split it)"
  done < <(find "$top" -type f \( -name '*.h' -o -name '*.cpp' -o -name '*.cu' -o -name '*.cuh' \) | sort)
done

if [ $fail = 0 ]; then
  echo "check_deps: layering ok (engine -> engine; io, parallel -> engine/core; MPI/NCCL only in parallel/)" >&2
fi
exit $fail
