#!/usr/bin/env bash
# policy.sh — what a policy costs a blocking command through a gateway
# (sg_gateway_call_argv) on a real 6-node Redis Cluster: no policy, a
# declarative prefix, a Lua rewrite_key hook. Starts the servers, runs
# bench_policy K times, prints the medians and overheads, stops the servers
# (always, also on failure).
#
#   bench/policy.sh [-k RUNS] [--rounds R] [--ops N] [--quick] [-v] [--cluster ADDRS]
#                   [--budget SECONDS] [-- BENCH_POLICY_ARGS...]
#
#   -k RUNS          runs of bench_policy, each a new process (default 5)
#   --rounds R       rounds per run (default 25)
#   --ops N          commands per variant per round (default 1000)
#   --quick          few, small rounds (a smoke test: seconds, not a measurement)
#   -v, --verbose    print every round's figures too
#   --cluster ADDRS  use a running cluster (host:port,...) instead of starting one
#   --budget S       start no run that would likely end after S seconds from
#                    the start, servers included (default 150; at least one run)
#   -- ARGS          passed to bench_policy (see the top of bench_policy.c)
#
# Environment: SG_BUILD_DIR, the build directory (default build/ in the source
# tree; configured and built when it has no libslotgate.so); SG_BENCH_PORT_BASE
# (default 18000), the harness's SG_TEST_PORT_BASE (the ports it takes are
# listed at the top of tests/harness/servers.sh); CC.
# See bench/README.md for what is measured and how to read the overheads.
set -euo pipefail

PROG=${0##*/}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BUILD=${SG_BUILD_DIR:-$ROOT/build}
CC=${CC:-cc}
HARNESS=$ROOT/tests/harness/servers.sh

RUNS=5
ROUNDS=25
OPS=1000
BUDGET=150
CLUSTER=
VERBOSE=0
EXTRA=()

say() { printf '%s: %s\n' "$PROG" "$*"; }
die() { printf '%s: %s\n' "$PROG" "$*" >&2; exit 1; }
usage() { sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit "${1:-2}"; }
posint() { [[ $2 =~ ^[1-9][0-9]*$ ]] || die "$1 wants a positive integer, not \"$2\""; }

while (($#)); do
    case $1 in
    -k | --runs) (($# >= 2)) || usage; posint "$1" "$2"; RUNS=$2; shift 2 ;;
    --rounds) (($# >= 2)) || usage; posint "$1" "$2"; ROUNDS=$2; shift 2 ;;
    --ops) (($# >= 2)) || usage; posint "$1" "$2"; OPS=$2; shift 2 ;;
    --budget) (($# >= 2)) || usage; posint "$1" "$2"; BUDGET=$2; shift 2 ;;
    --cluster) (($# >= 2)) || usage; CLUSTER=$2; shift 2 ;;
    --quick) ROUNDS=3; OPS=200; shift ;;
    -v | --verbose) VERBOSE=1; shift ;;
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
BIN=$BUILD/bench/bench_policy
if [[ ! -x $BIN || $HERE/bench_policy.c -nt $BIN || $ROOT/core/include/slotgate.h -nt $BIN ||
    $BUILD/libslotgate.so -nt $BIN ]]; then
    mkdir -p "$BUILD/bench"
    "$CC" -O2 -g -Wall -Wextra -I"$ROOT/core/include" "$HERE/bench_policy.c" -o "$BIN" \
        -L"$BUILD" -lslotgate -Wl,-rpath,"$BUILD" || die "cannot build $BIN"
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
    STATE=$(mktemp -d /tmp/slotgate-bench-policy.XXXXXX)
    say "starting the servers (port base ${SG_BENCH_PORT_BASE:-18000}, state $STATE)"
    if ! SG_TEST_PORT_BASE=${SG_BENCH_PORT_BASE:-18000} "$HARNESS" start "$STATE" \
        >"$STATE/harness.log" 2>&1; then
        cat "$STATE/harness.log" >&2
        die "the servers did not start"
    fi
    CLUSTER=$(sed -n 's/^SG_TEST_CLUSTER=//p' "$STATE/servers.env")
    say "servers ready in $((SECONDS - T0)) s: $CLUSTER"
fi

# ---- runs ---------------------------------------------------------------------

say "$(nproc) CPUs; load average $(cut -d' ' -f1-3 /proc/loadavg); $RUNS runs of $ROUNDS rounds x $OPS ops"
OUT=$(mktemp /tmp/slotgate-bench-policy-out.XXXXXX)
done_runs=0
longest=0
for ((run = 1; run <= RUNS; run++)); do
    if ((run > 1 && SECONDS - T0 + longest > BUDGET)); then
        say "time budget (${BUDGET} s) reached: stopping after $done_runs runs"
        break
    fi
    echo "---- run $run/$RUNS"
    t=$SECONDS
    timeout 120 "$BIN" --addrs "$CLUSTER" --rounds "$ROUNDS" --ops "$OPS" --seed "$run" "${EXTRA[@]}" |
        tee -a "$OUT" | { if ((VERBOSE)); then cat; else grep -v '^round ' || true; fi; } ||
        die "run $run failed (status ${PIPESTATUS[0]})"
    done_runs=$run
    if ((SECONDS - t > longest)); then longest=$((SECONDS - t)); fi
done

# ---- summary: medians over the runs -------------------------------------------

# The value of KEY= in the RESULT lines of VARIANT, one per run.
field() { awk -v w="$1" -v k="$2" '$1 == "RESULT" && $2 == w {
    for (i = 3; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) print kv[2] } }' "$OUT"; }
# median, min and max of numbers on stdin
stats() { sort -g | awk '{ v[NR] = $1 } END {
    if (NR == 0) { print "- - -"; exit }
    m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    print m, v[1], v[NR] }'; }
pct() { awk -v x="$1" 'BEGIN { printf "%+.1f%%", 100 * x }'; }

echo
echo "==== summary: $done_runs runs x $ROUNDS rounds x $OPS ops per variant; each figure is the"
echo "==== median over the runs of each run's median, (min..max) the spread of the runs"
read -r ncpu _ _ < <(field none cpu_us | stats)
printf '%-7s %9s %24s %26s %10s %12s   %s\n' variant ops/s "overhead vs none" "paired per round" "CPU us/op" "extra CPU" "target"
for v in none prefix hook client; do
    [[ -n $(field "$v" ops) ]] || continue
    read -r om _ _ < <(field "$v" ops | stats)
    read -r rm rmin rmax < <(field "$v" overhead | stats)
    read -r pm pmin pmax < <(field "$v" paired_overhead | stats)
    read -r cm _ _ < <(field "$v" cpu_us | stats)
    read -r xm _ _ < <(field "$v" extra_cpu_us | stats)
    case $v in
    prefix) want=0.05 ;;
    hook) want=0.15 ;;
    *) want= ;;
    esac
    verdict=
    if [[ -n $want ]]; then
        verdict=$(awk -v r="$pm" -v t="$want" 'BEGIN { printf "< %d%%: %s", 100 * t, (r < t ? "met" : "MISSED") }')
    fi
    printf '%-7s %9.0f %8s (%7s..%7s) %8s (%7s..%7s) %10.2f %+9.2f us   %s\n' "$v" "$om" \
        "$(pct "$rm")" "$(pct "$rmin")" "$(pct "$rmax")" "$(pct "$pm")" "$(pct "$pmin")" "$(pct "$pmax")" \
        "$cm" "$xm" "$verdict"
done
printf 'extra client CPU per command as a share of the no-policy CPU per command (%.2f us):' "$ncpu"
for v in prefix hook; do
    read -r xm _ _ < <(field "$v" extra_cpu_us | stats)
    printf ' %s %s' "$v" "$(awk -v x="$xm" -v n="$ncpu" 'BEGIN { printf "%+.1f%%", 100 * x / n }')"
done
echo
fail=0
grep -q '^CHECK ok$' "$OUT" || fail=1
grep '^CHECK' "$OUT" | grep -v ' ok$' && fail=1
((fail == 0)) || say "a run's checks failed (replies or policy counters): see above"
say "load average now $(cut -d' ' -f1-3 /proc/loadavg); total $((SECONDS - T0)) s"
exit "$fail"
