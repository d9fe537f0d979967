#!/usr/bin/env bash
# policy.sh — what a policy costs a blocking command through a gateway
# (sg_gateway_call_argv) on a real 6-node Redis Cluster: no policy, a
# declarative prefix, a Lua rewrite_key hook, and
# one that also runs string.match/find on every key. Starts the servers, runs
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

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "$0")/common.sh"

ROUNDS=25
OPS=1000
BUDGET=150
SHOW_ROUNDS=0

# The options of this script alone (parse_options, in common.sh, takes the others).
script_option() {
    case $1 in
    --ops) posint_option "$@"; OPS=$2; TOOK=2 ;;
    --quick) ROUNDS=3; OPS=200; TOOK=1 ;;
    -v | --verbose) SHOW_ROUNDS=1; TOOK=1 ;;
    *) return 1 ;;
    esac
}
parse_options "$@"

build_bench bench_policy
start_servers 18000 slotgate-bench-policy
say "$(nproc) CPUs; load average $(loadavg); $RUNS runs of $ROUNDS rounds x $OPS ops"
run_bench slotgate-bench-policy-out 120 --ops "$OPS"

# ---- summary: medians over the runs -------------------------------------------

pct() { awk -v x="$1" 'BEGIN { printf "%+.1f%%", 100 * x }'; }

echo
echo "==== summary: $DONE_RUNS runs x $ROUNDS rounds x $OPS ops per variant; each figure is the"
echo "==== median over the runs of each run's median, (min..max) the spread of the runs"
read -r ncpu _ _ < <(field none cpu_us | stats)
printf '%-7s %9s %24s %26s %10s %12s   %s\n' variant ops/s "overhead vs none" "paired per round" "CPU us/op" "extra CPU" "target"
for v in none prefix hook pattern client; do
    [[ -n $(field "$v" ops) ]] || continue
    read -r om _ _ < <(field "$v" ops | stats)
    read -r rm rmin rmax < <(field "$v" overhead | stats)
    read -r pm pmin pmax < <(field "$v" paired_overhead | stats)
    read -r cm _ _ < <(field "$v" cpu_us | stats)
    read -r xm _ _ < <(field "$v" extra_cpu_us | stats)
    case $v in
    prefix) want=0.05 ;;
    hook | pattern) want=0.15 ;;
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
for v in prefix hook pattern; do
    read -r xm _ _ < <(field "$v" extra_cpu_us | stats)
    printf ' %s %s' "$v" "$(awk -v x="$xm" -v n="$ncpu" 'BEGIN { printf "%+.1f%%", 100 * x / n }')"
done
echo
fail=0
grep -q '^CHECK ok$' "$OUT" || fail=1
grep '^CHECK' "$OUT" | grep -v ' ok$' && fail=1
((fail == 0)) || say "a run's checks failed (replies or policy counters): see above"
finish "$fail"
