#!/usr/bin/env bash
# churn.sh — connection churn and idle clients against slotgated: starts the
# test harness's servers and slotgated in front of their cluster, runs
# bench/churn (100 000 connect/command/close cycles of five kinds, then 1 000
# idle clients, twice) and checks that slotgated's RSS and open files come
# back where they were. Stops everything it started on the way out.
#
#   bench/churn.sh [--cycles N] [--idle N] [--idle-secs S] [--port PORT]
#                  [-- CHURN_ARGS...]
#
#   --cycles N     connect/command/close cycles (default 100000)
#   --idle N       idle clients in each idle run (default 1000)
#   --idle-secs S  how long they stay idle (default 5)
#   --port PORT    slotgated's port (default 18501)
#   -- ARGS        passed to bench/churn: --rss-slack KB (default 2048),
#                  --fd-slack N (default 0); see the top of bench/churn.c
#
# Exit status: 0 when the open files came back to the baseline, the RSS
# stayed within the slack, every reply was right and slotgated is alive at
# the end; 1 otherwise; 2 for a usage error.
#
# Environment: SG_BUILD_DIR (default build/), SG_BENCH_PORT_BASE (default
# 18000), the harness's SG_TEST_PORT_BASE; CC. See bench/README.md.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "$0")/common.sh"

CYCLES=100000
IDLE=1000
IDLE_SECS=5
PORT=18501

script_option() {
    case $1 in
    --cycles) posint_option "$@"; CYCLES=$2; TOOK=2 ;;
    --idle) posint_option "$@"; IDLE=$2; TOOK=2 ;;
    --idle-secs) posint_option "$@"; IDLE_SECS=$2; TOOK=2 ;;
    --port) posint_option "$@"; PORT=$2; TOOK=2 ;;
    *) return 1 ;;
    esac
}
parse_options "$@"
[[ -z $CLUSTER ]] || die "--cluster: churn runs on servers it starts"

build_bench churn
start_servers 18000 slotgate-churn
start_slotgated "$PORT"

rc=0
"$BIN" --gateway "127.0.0.1:$PORT" --sg-pid "$SG_PID" --cycles "$CYCLES" --idle "$IDLE" \
    --idle-secs "$IDLE_SECS" "${EXTRA[@]}" || rc=$?
echo
status=0
slotgated_verdict || status=1
((rc == 0)) || { say "RSS or open files did not come back, or replies were wrong (above)"; status=1; }
finish "$status"
