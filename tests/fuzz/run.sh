#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, -fsanitize=fuzzer,address,undefined)
# and runs each for SECONDS (default 60), one after the other, one process
# each (the machine is shared). New inputs go to a scratch directory, then
# those that add coverage are merged into tests/fuzz/corpus/TARGET
# (-merge=1: the corpus only grows by what is new, and stays small).
#
#   tests/fuzz/run.sh [SECONDS] [TARGET...]      targets: resp reply settings keys policy
#
# Environment: BUILD (default build-fuzz, under the repository), JOBS (make
# -j, default 2), FUZZ_ARGS (more libFuzzer options). A crash leaves its input
# in $BUILD/fuzz-artifacts/TARGET/ and makes the script exit 1 after the
# other targets ran; fix it, then copy the input into the corpus.
# Needs clang and its runtime (tools/install-deps.sh installs them).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
seconds=60
if [[ $# -gt 0 && $1 =~ ^[0-9]+$ ]]; then seconds=$1; shift; fi
all=(resp reply settings keys policy)
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=("${all[@]}")
for t in "${targets[@]}"; do
  [[ -f $here/fuzz_$t.c ]] || { echo "run.sh: no target \"$t\" (have: ${all[*]})" >&2; exit 2; }
done
build=${BUILD:-$top/build-fuzz}
jobs=${JOBS:-2}

cc=${CC:-clang}
command -v "$cc" >/dev/null || { echo "run.sh: $cc not found (tools/install-deps.sh)" >&2; exit 2; }
cmake -S "$top" -B "$build" -DCMAKE_C_COMPILER="$cc" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSLOTGATE_SANITIZE=ON -DSLOTGATE_FUZZ=ON >/dev/null
cmake --build "$build" -j"$jobs" --target "${targets[@]/#/fuzz_}" >/dev/null

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
status=0
for t in "${targets[@]}"; do
  corpus=$here/corpus/$t
  scratch=$build/fuzz-new/$t
  artifacts=$build/fuzz-artifacts/$t/
  mkdir -p "$corpus" "$scratch" "$artifacts"
  dict=()
  [[ -f $here/$t.dict ]] && dict=(-dict="$here/$t.dict")
  echo "== $t: ${seconds}s, corpus $(ls "$corpus" | wc -l) files"
  log=$build/fuzz-$t.log
  # new inputs are written to the first directory: scratch, not the corpus
  if "$build/tests/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
       -print_final_stats=1 -artifact_prefix="$artifacts" "${dict[@]}" ${FUZZ_ARGS:-} \
       "$scratch" "$corpus" >"$log" 2>&1; then
    grep -E "^stat::(number_of_executed_units|average_exec_per_sec|new_units_added)|Done [0-9]+ runs" "$log" || true
  else
    status=1
    echo "!! $t failed: see $log and $artifacts"
    grep -E "ERROR|SUMMARY|runtime error|deadly signal|Test unit written" "$log" | head -5 || true
  fi
  "$build/tests/fuzz_$t" -merge=1 -timeout=10 -rss_limit_mb=2048 "$corpus" "$scratch" \
    >"$build/fuzz-$t-merge.log" 2>&1 || echo "!! $t: merge failed: see $build/fuzz-$t-merge.log"
  rm -rf "$scratch"
  echo "   corpus now $(ls "$corpus" | wc -l) files"
done
exit $status
