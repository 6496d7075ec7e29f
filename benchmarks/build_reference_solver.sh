#!/usr/bin/env bash
# Build the original 2D grey P1 radiative-transfer program (the C++ solver that lib/radiative/p1.py ports)
# from its public repository, with its stock CMake build and its vendored thirdparty/ (muParser, cnpy).
#
# This is how benchmarks/radiative_solver_record.json is reproduced (needs internet, git, cmake >= 3.5,
# a C++ compiler with OpenMP, zlib headers):
#
#     benchmarks/build_reference_solver.sh [DIR]          # default DIR: ${TMPDIR:-/tmp}/inverse-problem-vnet
#     OMP_NUM_THREADS=1 .venv/bin/python benchmarks/radiative_solver.py --sizes 64 \
#         --reference-binary DIR/build/transfer --repeats 3
#
# and, to check the binary against our port at N = 16 (about a second):
#
#     RT_REFERENCE_BINARY=DIR/build/transfer .venv/bin/python -m pytest -q tests/radiative/test_benchmark_solver.py
#
# Source: https://github.com/ddrous/inverse-problem-vnet (MIT, (c) 2021 Desmond Roussel Nzoyem; muParser and
# cnpy under their own MIT-style licences), pinned to the commit that made /work/shared/data/rt (see its
# README). The checkout goes OUTSIDE this repository on purpose: third-party code is never committed here.
#
# Options (environment):
#   NO_CLONE=1   build an existing source tree in DIR as it is (no git clone/checkout; e.g. a copy without .git)
#
# Build: `cmake -H. -Bbuild && cmake --build build`; the default build type is Release (-O3 -DNDEBUG -fopenmp).
# The program forces one OpenMP thread itself; run it with OMP_NUM_THREADS=1 from a working directory that
# holds data/inputs, data/outputs and data/anim (benchmarks/radiative_solver.py does this for you).
set -euo pipefail

REPO_URL="https://github.com/ddrous/inverse-problem-vnet"
COMMIT="ca528474d4b42f51d41993ee2a62cf3a74789e18"   # HEAD of 2024-12-29, used for /work/shared/data/rt
DIR="${1:-${TMPDIR:-/tmp}/inverse-problem-vnet}"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="$(realpath -m "$DIR")"
case "$DIR/" in
    "$here"/*) echo "error: $DIR is inside this repository ($here); pick a directory outside it," \
                    "the third-party sources must not end up in our git tree." >&2; exit 2 ;;
esac

for tool in cmake c++; do
    command -v "$tool" >/dev/null || { echo "error: '$tool' not found; install it (e.g. apt-get install cmake g++ zlib1g-dev)." >&2; exit 2; }
done

if [ -z "${NO_CLONE:-}" ]; then
    command -v git >/dev/null || { echo "error: git not found (or set NO_CLONE=1 to build an existing tree)." >&2; exit 2; }
    if [ ! -d "$DIR/.git" ]; then
        git clone "$REPO_URL" "$DIR"
    fi
    git -C "$DIR" fetch --quiet origin || true
    git -C "$DIR" checkout --quiet --detach "$COMMIT"
    if [ -f "$DIR/.gitmodules" ]; then
        git -C "$DIR" submodule update --init --recursive
    fi
    echo "source: $REPO_URL @ $(git -C "$DIR" rev-parse HEAD)"
else
    [ -d "$DIR" ] || { echo "error: NO_CLONE=1 but $DIR does not exist." >&2; exit 2; }
    echo "source: existing tree $DIR (NO_CLONE=1, not checked out at $COMMIT)"
fi

[ -f "$DIR/CMakeLists.txt" ] || { echo "error: $DIR/CMakeLists.txt not found; is DIR the program's source tree?" >&2; exit 2; }

(cd "$DIR" && cmake -H. -Bbuild && cmake --build build)

binary="$DIR/build/transfer"
[ -x "$binary" ] || { echo "error: the build did not produce $binary." >&2; exit 1; }
# the program refuses to run without exactly one config file argument (exit 1): a cheap check that it starts
if "$binary" >/dev/null 2>&1; then
    echo "error: $binary ran without a config file; this is not the expected program." >&2; exit 1
fi
echo "built: $binary"
echo "next:  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/radiative_solver.py --sizes 64 --reference-binary $binary --repeats 3"
