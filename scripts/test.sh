#!/usr/bin/env bash
# The test command: set up (install + build, idempotent), then the default (fast) test suite.
# Slow tests: ctest --test-dir build -L slow
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
ctest --test-dir "${BUILD_DIR:-build}" -L fast --output-on-failure -j "$(nproc)" --timeout 900
