#!/usr/bin/env bash
# Prepare, on this machine, what bench/gpu/run.sh needs on a lent GPU host (issue 22).
#
# The device tool carries at most 64 MiB of working tree per call and the CIFAR-100 archive is
# ~161 MiB, so the archive travels in parts of PART_SIZE (default 54M: 3 parts) over several
# calls; the GPU host has no pydantic or ruamel.yaml (stages.lib.params needs them), so their
# wheels travel in .whl. Writes, all git-ignored:
#   $GPU_DATA/cifar-100-python.tar.gz.part-NN   the parts (one per call)
#   $GPU_DATA/meta/MANIFEST.md5                 md5 of each part and of the whole (md5sum -c format)
#   $GPU_DATA/meta/COMMIT                       the commit measured (the tree travels without .git)
#   .whl/*.whl                                  cp312 manylinux wheels, versions from env/ lock files
# Usage: CIFAR100_DIR=DIR bench/gpu/pack.sh [--no-wheels]     (GPU_DATA defaults to .gpu-data)
set -euo pipefail
cd "$(dirname "$0")/../.."

ARCHIVE="${CIFAR100_DIR:?set CIFAR100_DIR to the folder holding cifar-100-python.tar.gz}/cifar-100-python.tar.gz"
DEST="${GPU_DATA:-.gpu-data}"
PY="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
WHEELS=(pydantic pydantic-core annotated-types typing-inspection typing-extensions ruamel-yaml)

[ -f "$ARCHIVE" ] || { echo "pack.sh: $ARCHIVE: not found (CIFAR100_DIR=$CIFAR100_DIR)" >&2; exit 1; }
rm -rf "$DEST"
mkdir -p "$DEST/meta"
"$PY" -m bench.gpu.chunks split "$ARCHIVE" "$DEST" --size "${PART_SIZE:-54M}"
mv "$DEST/MANIFEST.md5" "$DEST/meta/MANIFEST.md5"
sha="$(git rev-parse --short=12 HEAD)"
[ -z "$(git status --porcelain --untracked-files=no)" ] || sha="$sha-dirty"
echo "$sha" >"$DEST/meta/COMMIT"

locked() {  # the version env/'s lock files pin for a package (pip spells it with - or _ or .)
  grep -rhoiE "^${1//-/[-_.]}==[^ ;\\]+" env/ | head -1 | cut -d= -f3
}

if [ "${1:-}" != "--no-wheels" ]; then
  rm -rf .whl
  for name in "${WHEELS[@]}"; do
    version="$(locked "$name")"
    [ -n "$version" ] || { echo "pack.sh: $name: no pinned version under env/" >&2; exit 1; }
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      -d .whl "$name==$version"
  done
fi

echo "pack.sh: parts and manifest under $DEST ($(du -sh "$DEST" | cut -f1)), wheels in .whl ($(du -sh .whl 2>/dev/null | cut -f1))"
[[ "$DEST" != /* ]] || exit 0  # a scratch pack (run.sh --dry-run) travels nowhere
echo "On the GPU host, one device call per part, back to back (a warm machine keeps what came before):"
parts=("$DEST"/*.part-*)
for i in "${!parts[@]}"; do
  last=$(( i + 1 == ${#parts[@]} ))
  carry="\"$DEST/meta\", \"${parts[$i]}\""
  if [ "$last" = 1 ]; then
    echo "  run(command=\"bash bench/gpu/run.sh\", carry=[$carry, \".whl\"], timeout_s=600)"
  else
    echo "  run(command=\"bash bench/gpu/run.sh stash\", carry=[$carry], timeout_s=60)"
  fi
done
