#!/usr/bin/env bash
# Builds the libFuzzer targets (build-fuzz/, LONGSEQ_FUZZ=ON, clang-14) if needed and runs each
# for N seconds (default 60) on a scratch copy of its seed corpus (fuzz/corpus/<target>/).
# Prints per target the executions (libFuzzer's stat::number_of_executed_units) and crashes;
# exits non-zero when any target crashed. See docs/fuzzing.md.
#
#   scripts/fuzz.sh [seconds]            run every target
#   FUZZ_TARGETS="config bytes" scripts/fuzz.sh 30
#   scripts/fuzz.sh --seeds              regenerate fuzz/corpus/ with fuzz_make_corpora
#   FUZZ_KEEP_GOING=1 scripts/fuzz.sh    libFuzzer fork mode: keep fuzzing after a crash (every
#                                        crashing input is saved; the run still fails)
#   FUZZ_RUNS=20000 FUZZ_SEED=1 scripts/fuzz.sh
#                                        a fixed number of inputs per target from a fixed seed:
#                                        the same inputs on every machine (what CI runs)
#
# Before fuzzing, each target replays the minimized reproducers of past findings
# (fuzz/findings/<target>-*), so a fixed bug that comes back fails at once.
#
# Scratch files go to /dev/shm when it is writable, else under the run directory.
# Environment: BUILD_DIR (default <repo>/build-fuzz), FUZZ_TARGETS, FUZZ_NICE (default 15),
# FUZZ_JOBS (ninja -j, default 1), FUZZ_RUNS (-runs, instead of a time), FUZZ_SEED (-seed; 0 or
# unset: libFuzzer picks one and logs it), CC/CXX (default clang-14/clang++-14).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build-fuzz}"
NICE="nice -n ${FUZZ_NICE:-15}"
JOBS="${FUZZ_JOBS:-1}"
TARGETS="${FUZZ_TARGETS:-safetensors config checkpoint idx bytes listops}"

# LibTorch's static registrations are never freed: leak detection would flag every run.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1:symbolize=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"

configure_and_build() {
  if [[ ! -f "$BUILD_DIR/build.ninja" ]]; then
    CC="${CC:-clang-14}" CXX="${CXX:-clang++-14}" $NICE cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja \
      -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLONGSEQ_FUZZ=ON -DLONGSEQ_BUILD_TESTS=OFF \
      -DLONGSEQ_BUILD_TOOLS=OFF -DLONGSEQ_BUILD_BENCHMARKS=OFF -DLONGSEQ_BUILD_PYTHON=OFF
  fi
  local t targets=()
  for t in $TARGETS; do targets+=("fuzz_$t"); done
  $NICE ninja -C "$BUILD_DIR" -j"$JOBS" "${targets[@]}" "$@"
}

if [[ "${1:-}" == "--seeds" ]]; then
  configure_and_build fuzz_make_corpora
  TMPDIR="$(mktemp -d)" "$BUILD_DIR/fuzz/fuzz_make_corpora" "$ROOT" "$ROOT/fuzz/corpus"
  du -sh "$ROOT/fuzz/corpus"
  exit 0
fi

SECONDS_PER_TARGET="${1:-60}"
configure_and_build

max_len_for() {
  case "$1" in
    safetensors) echo 4096 ;;
    config) echo 4096 ;;
    idx) echo 8192 ;;
    bytes) echo 4096 ;;
    listops) echo 16384 ;;  # room for the 8000-level nesting seed
    checkpoint)  # the largest seed (model/optimizer safetensors) plus room to grow
      local m
      m=$(find "$ROOT/fuzz/corpus/checkpoint" -type f -printf '%s\n' | sort -n | tail -1)
      echo $(( ${m:-0} + 4096 )) ;;
    *) echo 4096 ;;
  esac
}

# The first sanitizer, libFuzzer or harness report of a log, indented.
first_error() {
  grep -m1 -E 'ERROR: (AddressSanitizer|libFuzzer|UndefinedBehaviorSanitizer)|runtime error:|FINDING:|terminate called' \
    "$1" | sed 's/^/    /' || true
}

OUT="$BUILD_DIR/fuzz/runs/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT"
failed=0
summary=()
for t in $TARGETS; do
  work="$OUT/$t"
  # The harnesses write each input to a scratch file and read it back: on tmpfs when there is one
  # (several times the executions per second of a disk directory).
  scratch="$work/tmp"
  if [[ -d /dev/shm && -w /dev/shm ]]; then scratch="$(mktemp -d /dev/shm/longseq_fuzz_$t.XXXXXX)"; fi
  mkdir -p "$work/corpus" "$work/artifacts" "$scratch"
  cp "$ROOT/fuzz/corpus/$t/"* "$work/corpus/" 2>/dev/null || true
  max_len=$(max_len_for "$t")
  findings=("$ROOT/fuzz/findings/$t-"*)
  if [[ -e "${findings[0]}" ]]; then
    rc=0
    TMPDIR="$scratch" $NICE "$BUILD_DIR/fuzz/fuzz_$t" "${findings[@]}" >"$work/replay.log" 2>&1 || rc=$?
    line="fuzz_$t: replay of ${#findings[@]} past findings exit=$rc"
    echo "$line"
    if [[ $rc -ne 0 ]]; then
      failed=1
      summary+=("$line (log $work/replay.log)")
      first_error "$work/replay.log"
    fi
  fi
  limit=(-max_total_time="$SECONDS_PER_TARGET")
  what="${SECONDS_PER_TARGET}s"
  if [[ -n "${FUZZ_RUNS:-}" ]]; then
    limit=(-runs="$FUZZ_RUNS")
    what="$FUZZ_RUNS inputs"
  fi
  if [[ -n "${FUZZ_SEED:-}" && "${FUZZ_SEED}" != 0 ]]; then
    limit+=(-seed="$FUZZ_SEED")
    what+=", seed $FUZZ_SEED"
  fi
  echo "== fuzz_$t: $what, -max_len=$max_len, log $work/fuzz.log"
  keep=()
  if [[ "${FUZZ_KEEP_GOING:-0}" == 1 ]]; then
    keep=(-fork=1 -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1)
  fi
  rc=0
  TMPDIR="$scratch" $NICE "$BUILD_DIR/fuzz/fuzz_$t" "$work/corpus" \
    "${limit[@]}" -max_len="$max_len" -timeout=30 -rss_limit_mb=4096 \
    -print_final_stats=1 -artifact_prefix="$work/artifacts/" "${keep[@]}" >"$work/fuzz.log" 2>&1 || rc=$?
  rm -rf "$scratch"
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/fuzz.log" | grep -o '[0-9]*$' | tail -1 || true)
  if [[ -z "$execs" ]]; then  # fork mode: the parent's last "#<execs>: cov: ..." line
    execs=$(grep -oE '^#[0-9]+:' "$work/fuzz.log" | tr -d '#:' | tail -1 || true)
  fi
  crashes=$(find "$work/artifacts" -type f | wc -l)
  line="fuzz_$t: executions=${execs:-?} crashes=$crashes exit=$rc corpus=$(ls "$work/corpus" | wc -l)"
  if [[ $rc -ne 0 || $crashes -ne 0 ]]; then
    failed=1
    line+=" artifacts: $(find "$work/artifacts" -type f | tr '\n' ' ')"
    first_error "$work/fuzz.log"
  fi
  echo "$line"
  summary+=("$line")
done
echo "== summary (logs and artifacts under $OUT)"
printf '%s\n' "${summary[@]}"
exit $failed
