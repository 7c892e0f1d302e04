#!/usr/bin/env bash
# The fast suite under AddressSanitizer and UndefinedBehaviorSanitizer, in its own build directory
# (build-asan; a clean build takes about as long as the normal one, and the suite runs about 3x
# slower). Usage: bash scripts/sanitize.sh [extra ctest args]
# Left out: the Python suites (Debian's python3 is not built with ASan, so it cannot load an
# ASan-instrumented library) and the install test (it builds a consumer without the sanitizer
# flags). LibTorch's static registrations are never freed, so leak detection is off.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${SANITIZE_BUILD_DIR:-build-asan}
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DLONGSEQ_SANITIZE=address,undefined -DLONGSEQ_BUILD_PYTHON=OFF -DLONGSEQ_BUILD_BENCHMARKS=OFF
fi
cmake --build "$BUILD_DIR" -j "$(nproc)"
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
ctest --test-dir "$BUILD_DIR" -L fast -E '^(python\.|install\.)' --output-on-failure \
  -j "$(nproc)" --timeout 1800 "$@"
