#!/usr/bin/env bash
# engine.sh — libslotgate (blocking calls, pipelines) against direct hiredis on
# a real 6-node Redis Cluster: starts the servers, runs bench_engine K times,
# prints the medians and ratios, stops the servers (always, also on failure).
#
#   bench/engine.sh [-k RUNS] [--rounds R] [--quick] [--cluster ADDRS]
#                   [--budget SECONDS] [-- BENCH_ENGINE_ARGS...]
#
#   -k RUNS          runs of bench_engine, each a new process (default 5)
#   --rounds R       rounds per workload per run (default 7)
#   --quick          smaller rounds (a smoke test: seconds, not a measurement)
#   --cluster ADDRS  use a running cluster (host:port,...) instead of starting one
#   --budget S       start no run that would likely end after S seconds from
#                    the start, servers included (default 110; at least one run)
#   -- ARGS          passed to bench_engine (see the top of bench_engine.c)
#
# Environment: SG_BUILD_DIR, the build directory (default build/ in the source
# tree; configured and built when it has no libslotgate.so); SG_BENCH_PORT_BASE
# (default 19000), the harness's SG_TEST_PORT_BASE (the ports it takes are
# listed at the top of tests/harness/servers.sh); CC.
# See bench/README.md for what is measured and how to read the ratios.
set -euo pipefail

PROG=${0##*/}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BUILD=${SG_BUILD_DIR:-$ROOT/build}
CC=${CC:-cc}
HARNESS=$ROOT/tests/harness/servers.sh

RUNS=5
ROUNDS=7
BUDGET=110
CLUSTER=
EXTRA=()

say() { printf '%s: %s\n' "$PROG" "$*"; }
die() { printf '%s: %s\n' "$PROG" "$*" >&2; exit 1; }
usage() { sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit "${1:-2}"; }
posint() { [[ $2 =~ ^[1-9][0-9]*$ ]] || die "$1 wants a positive integer, not \"$2\""; }

while (($#)); do
    case $1 in
    -k | --runs) (($# >= 2)) || usage; posint "$1" "$2"; RUNS=$2; shift 2 ;;
    --rounds) (($# >= 2)) || usage; posint "$1" "$2"; ROUNDS=$2; shift 2 ;;
    --budget) (($# >= 2)) || usage; posint "$1" "$2"; BUDGET=$2; shift 2 ;;
    --cluster) (($# >= 2)) || usage; CLUSTER=$2; shift 2 ;;
    --quick) EXTRA+=(--blocking-ops 1000 --batches 20); shift ;;
    -h | --help) usage 0 ;;
    --) shift; EXTRA+=("$@"); break ;;
    *) usage ;;
    esac
done

T0=$SECONDS

# ---- build what is missing ----------------------------------------------------

if [[ ! -e $BUILD/libslotgate.so ]]; then
    say "no $BUILD/libslotgate.so: building it (RelWithDebInfo)"
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$BUILD" -j2 --target slotgate >/dev/null
fi
BIN=$BUILD/bench/bench_engine
if [[ ! -x $BIN || $HERE/bench_engine.c -nt $BIN || $ROOT/core/include/slotgate.h -nt $BIN ||
    $BUILD/libslotgate.so -nt $BIN ]]; then
    mkdir -p "$BUILD/bench"
    # shellcheck disable=SC2046 # pkg-config's words are meant to split
    "$CC" -O2 -g -Wall -Wextra -I"$ROOT/core/include" "$HERE/bench_engine.c" -o "$BIN" \
        -L"$BUILD" -lslotgate -Wl,-rpath,"$BUILD" $(pkg-config --cflags --libs hiredis) ||
        die "cannot build $BIN"
fi

# ---- servers ----------------------------------------------------------------

STATE=
OUT=
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
    local rc=$?
    [[ -z $OUT ]] || rm -f "$OUT"
    if [[ -n $STATE ]]; then
        if "$HARNESS" stop "$STATE" >>"$STATE/harness.log" 2>&1; then
            rm -rf "$STATE"
        else
            say "stopping the servers failed: see $STATE/harness.log"
        fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'say interrupted; exit 130' INT
trap 'say terminated; exit 143' TERM

if [[ -z $CLUSTER ]]; then
    STATE=$(mktemp -d /tmp/slotgate-bench.XXXXXX)
    say "starting the servers (port base ${SG_BENCH_PORT_BASE:-19000}, state $STATE)"
    if ! SG_TEST_PORT_BASE=${SG_BENCH_PORT_BASE:-19000} "$HARNESS" start "$STATE" \
        >"$STATE/harness.log" 2>&1; then
        cat "$STATE/harness.log" >&2
        die "the servers did not start"
    fi
    CLUSTER=$(sed -n 's/^SG_TEST_CLUSTER=//p' "$STATE/servers.env")
    say "servers ready in $((SECONDS - T0)) s: $CLUSTER"
fi

# ---- runs ---------------------------------------------------------------------

say "$(nproc) CPUs; load average $(cut -d' ' -f1-3 /proc/loadavg); $RUNS runs of $ROUNDS rounds"
OUT=$(mktemp /tmp/slotgate-bench-out.XXXXXX)
done_runs=0
longest=0
for ((run = 1; run <= RUNS; run++)); do
    if ((run > 1 && SECONDS - T0 + longest > BUDGET)); then
        say "time budget (${BUDGET} s) reached: stopping after $done_runs runs"
        break
    fi
    echo "---- run $run/$RUNS"
    t=$SECONDS
    timeout 90 "$BIN" --addrs "$CLUSTER" --rounds "$ROUNDS" --seed "$run" "${EXTRA[@]}" |
        tee -a "$OUT" || die "run $run failed (status ${PIPESTATUS[0]})"
    done_runs=$run
    if ((SECONDS - t > longest)); then longest=$((SECONDS - t)); fi
done

# ---- summary: medians over the runs -------------------------------------------

# The value of KEY= in the RESULT lines of WORKLOAD, one per run.
field() { awk -v w="$1" -v k="$2" '$1 == "RESULT" && $2 == w {
    for (i = 3; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) print kv[2] } }' "$OUT"; }
# median, min and max of numbers on stdin
stats() { sort -g | awk '{ v[NR] = $1 } END {
    if (NR == 0) { print "- - -"; exit }
    m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    print m, v[1], v[NR] }'; }

echo
echo "==== summary: $done_runs runs x $ROUNDS rounds; each figure is the median over the runs of"
echo "==== each run's median, (min..max) the spread of the runs"
fail=0
for w in blocking pipeline; do
    [[ -n $(field "$w" ratio) ]] || continue
    read -r sm smin smax < <(field "$w" slotgate | stats)
    read -r dm dmin dmax < <(field "$w" direct | stats)
    read -r rm rmin rmax < <(field "$w" ratio | stats)
    read -r pm _ _ < <(field "$w" paired_ratio | stats)
    read -r cs _ _ < <(field "$w" slotgate_cpu_us | stats)
    read -r cd _ _ < <(field "$w" direct_cpu_us | stats)
    if [[ $w == blocking ]]; then want=0.90; else want=0.80; fi
    verdict=$(awk -v r="$rm" -v t="$want" 'BEGIN { print (r >= t ? "met" : "MISSED") }')
    printf '%-8s  slotgate %7.0f ops/s (%.0f..%.0f)   direct %7.0f ops/s (%.0f..%.0f)\n' \
        "$w" "$sm" "$smin" "$smax" "$dm" "$dmin" "$dmax"
    printf '%-8s  ratio slotgate/direct %.3f (%.3f..%.3f), paired per round %.3f; target >= %s: %s\n' \
        "" "$rm" "$rmin" "$rmax" "$pm" "$want" "$verdict"
    printf '%-8s  client CPU per op: slotgate %.2f us, direct %.2f us (x%.2f)\n' \
        "" "$cs" "$cd" "$(awk -v a="$cs" -v b="$cd" 'BEGIN { print a / b }')"
done
grep -q '^SPREAD .* ok$' "$OUT" || { say "slotgate did not spread the commands over the masters"; fail=1; }
grep '^SPREAD' "$OUT" | grep -v ' ok$' && fail=1
say "load average now $(cut -d' ' -f1-3 /proc/loadavg); total $((SECONDS - T0)) s"
exit "$fail"
