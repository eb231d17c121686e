#!/usr/bin/env bash
# Cross-compile the C++ (CPU) part of detectron2._C for linux-aarch64 on an x86_64 machine:
# the check behind the linux-aarch64 rows of conda_build_config.yaml (conda-forge builds
# those natively; this proves the sources and the link against an aarch64 libtorch).
#
#   bash scripts/cross_compile_aarch64.sh            # writes $WORK/_C.cpython-311-aarch64-linux-gnu.so
# About 15 minutes on 2 shared cores (vision.cpp, with torch/extension.h, is most of it): too
# slow for CI. Objects newer than their source are reused (rm -rf $WORK/obj to start over).
#
# Needs Debian's cross compiler (apt-get install g++-aarch64-linux-gnu; installed here when
# missing and run as root) and the aarch64 torch wheel from PyPI (downloaded into $WORK).
# Python headers: the build machine's CPython 3.11 (the API headers are the same; its
# pyconfig.h is x86_64's, so this is a compile-and-link check, not a package to ship).
# Ends with `readelf -h` (Machine: AArch64) and the .so's NEEDED libraries.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-/tmp/d2-cross-aarch64}
TORCH_VERSION=${TORCH_VERSION:-2.9.1}
PY=${PYTHON:-python3}
CXX=${CROSS_CXX:-aarch64-linux-gnu-g++}
JOBS=${MAX_JOBS:-1}
mkdir -p "$WORK/obj"
start=$(date +%s)

if ! command -v "$CXX" >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends g++-aarch64-linux-gnu >/dev/null
    else
        echo "error: $CXX not found; install Debian's g++-aarch64-linux-gnu" >&2; exit 2
    fi
fi
wheel=$(ls "$WORK"/torch-"$TORCH_VERSION"-cp311-*aarch64.whl 2>/dev/null | head -1 || true)
if [ -z "$wheel" ]; then
    "$PY" -m pip download -q --no-deps --platform manylinux_2_28_aarch64 --python-version 3.11 \
        --only-binary=:all: "torch==$TORCH_VERSION" -d "$WORK"
    wheel=$(ls "$WORK"/torch-"$TORCH_VERSION"-cp311-*aarch64.whl | head -1)
fi
if [ ! -d "$WORK/torch/include" ]; then
    "$PY" -m zipfile -e "$wheel" "$WORK" >/dev/null
fi
TORCH="$WORK/torch"
PYINC=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
# The C++ ABI the wheel's libraries were built with, as its CMake config states it.
ABI=$( (grep -rho '_GLIBCXX_USE_CXX11_ABI=[01]' "$TORCH"/share/cmake || true) | head -1 | cut -d= -f2)
ABI=${ABI:-1}
echo "compiler: $($CXX --version | head -1)"
echo "torch: $(basename "$wheel") (_GLIBCXX_USE_CXX11_ABI=$ABI)"

CSRC="$ROOT/src/detectron2/csrc"
# The sources setup.py compiles without CUDA (keep in step with setup.py's _extension()).
mapfile -t SOURCES < <(cd "$CSRC" && ls *.cpp cocoeval/*.cpp ops/*/*.cpp ops/*/cpu/*.cpp | sort)
FLAGS=(-O2 -g0 -fPIC -std=c++17 -fvisibility=hidden "-D_GLIBCXX_USE_CXX11_ABI=$ABI"
       -DTORCH_EXTENSION_NAME=_C -DTORCH_API_INCLUDE_EXTENSION_H
       -I"$CSRC" -I"$TORCH/include" -I"$TORCH/include/torch/csrc/api/include" -I"$PYINC")
export CXX WORK CSRC
printf '%s\n' "${SOURCES[@]}" | xargs -P "$JOBS" -I{} bash -c \
    'obj="$WORK/obj/$(echo {} | tr / _).o"
     if [ "$obj" -nt "$CSRC/{}" ]; then echo "up to date {}"; exit 0; fi
     "$CXX" "$@" -c "$CSRC/{}" -o "$obj" && echo "compiled {}"' _ "${FLAGS[@]}"
so="$WORK/_C.cpython-311-aarch64-linux-gnu.so"
# --allow-shlib-undefined: libtorch's own dependencies (libgomp, ...) are not on this machine.
"$CXX" -shared -o "$so" "$WORK"/obj/*.o -L"$TORCH/lib" -lc10 -ltorch -ltorch_cpu -ltorch_python \
    -Wl,--allow-shlib-undefined -Wl,-rpath,'$ORIGIN/../torch/lib'
echo "linked $so ($(stat -c %s "$so") bytes) in $(( $(date +%s) - start ))s"
readelf -h "$so" | grep -E "Class|Machine|Type"
readelf -d "$so" | grep NEEDED
readelf -h "$so" | grep -q "Machine:.*AArch64"
# A shared object links with undefined symbols; check that every torch/c10 symbol _C needs
# is exported by the aarch64 libtorch (this also catches a wrong _GLIBCXX_USE_CXX11_ABI).
# (Versioned names, sym@GLIBCXX_..., come from the C/C++ runtime, not from torch.)
nm -D --undefined-only "$so" | awk '{print $2}' | grep -v '@' | grep -E '(c10|at|torch|caffe2)' | sort -u > "$WORK/needed.txt"
nm -D --defined-only "$TORCH"/lib/libc10.so "$TORCH"/lib/libtorch.so "$TORCH"/lib/libtorch_cpu.so \
    "$TORCH"/lib/libtorch_python.so 2>/dev/null | awk 'NF == 3 {print $3}' | sort -u > "$WORK/provided.txt"
missing=$(comm -23 "$WORK/needed.txt" "$WORK/provided.txt" | grep -E '^_Z' || true)
echo "torch symbols needed: $(wc -l < "$WORK/needed.txt"), not exported by the aarch64 libtorch: $(printf '%s' "$missing" | grep -c . || true)"
if [ -n "$missing" ]; then printf '%s\n' "$missing" | head -20; exit 1; fi
echo "cross-compile OK: $(basename "$so") is AArch64 and links against torch $TORCH_VERSION's aarch64 libraries"
