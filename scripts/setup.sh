#!/usr/bin/env bash
# Installs every Debian package longseq's build, tests and main job need, then configures and
# builds (incrementally: re-running only rebuilds what changed). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  build-essential cmake ninja-build git
  libtorch-dev            # LibTorch 1.13: tensors, autograd, optimizers, c10d
  libopenblas0-openmp     # BLAS sharing LibTorch's OpenMP threads (reference BLAS is ~40x slower)
  libopenblas-openmp-dev  # cblas.h + libopenblas.so for the fused kernels (the -dev meta package
                          # would pull the pthread build, whose threads fight OpenMP's)
  libcli11-dev libfmt-dev nlohmann-json3-dev
  libjemalloc-dev         # the CLI's allocator: keeps freed pages for reuse (docs/performance.md)
  libgtest-dev libgmock-dev libbenchmark-dev
  gnuplot-nox             # plots
  zlib1g-dev              # reads the gzip-compressed IDX files
  dataset-fashion-mnist   # sequential Fashion-MNIST task
  libgloo-dev             # c10d's Gloo backend headers (distributed training)
  python3-torch python3-pytest  # the Python package and its tests (Debian's /usr/bin/python3)
  clang-14 libclang-rt-14-dev   # libFuzzer targets (scripts/fuzz.sh, run by CI)
)

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

BUILD_DIR=${BUILD_DIR:-build}
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release
fi
cmake --build "$BUILD_DIR" -j "$(nproc)"
echo "setup: built $BUILD_DIR/longseq"
# `import longseq` in Debian's /usr/bin/python3: the package and its operator library into the
# site directory for /usr/local (the tests use the build tree's copy instead).
$SUDO cmake --install "$BUILD_DIR" --component python
echo "setup: installed the Python package longseq"
