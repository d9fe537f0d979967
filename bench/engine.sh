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

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "$0")/common.sh"

ROUNDS=7
BUDGET=110

# The option of this script alone (parse_options, in common.sh, takes the others).
script_option() {
    case $1 in
    --quick) EXTRA+=(--blocking-ops 1000 --batches 20); TOOK=1 ;;
    *) return 1 ;;
    esac
}
parse_options "$@"

build_bench bench_engine hiredis
start_servers 19000 slotgate-bench
say "$(nproc) CPUs; load average $(loadavg); $RUNS runs of $ROUNDS rounds"
run_bench slotgate-bench-out 90

# ---- summary: medians over the runs -------------------------------------------

echo
echo "==== summary: $DONE_RUNS runs x $ROUNDS rounds; each figure is the median over the runs of"
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
finish "$fail"
