#!/usr/bin/env bash
# platform.sh — what this machine charges for a system call and for a
# loopback TCP message to a sleeping process (send, wake-up, read): builds
# bench/platform, runs it K times, prints the medians, and what they make of
# a request at pipeline 1 (two messages straight to the cluster, four
# through any gateway). Needs no server. See bench/README.md.
#
#   bench/platform.sh [-k RUNS] [--rounds N]
#
#   -k RUNS      runs (default 5)
#   --rounds N   round trips per run (default 200000; five times as many
#                system calls)
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "$0")/common.sh"

script_option() { return 1; }
parse_options "$@"
ROUNDS=${ROUNDS:-200000}

build_bench platform
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT
say "$(nproc) CPUs; load average $(loadavg); $RUNS runs of $ROUNDS round trips"
for ((i = 1; i <= RUNS; i++)); do "$BIN" "$ROUNDS" | tee -a "$OUT"; done
read -r sm smin smax < <(field platform syscall_us | stats)
read -r mm mmin mmax < <(field platform message_us | stats)
echo "==== medians over $RUNS runs (min..max)"
printf 'system call                           %8.2f us (%.2f..%.2f)\n' "$sm" "$smin" "$smax"
printf 'loopback message to a sleeping peer   %8.2f us (%.2f..%.2f)\n' "$mm" "$mmin" "$mmax"
printf 'pipeline 1, direct: 2 messages        %8.2f us a request\n' "$(echo "2 * $mm" | bc -l)"
printf 'pipeline 1, through a gateway: 4      %8.2f us a request, before its own work\n' \
    "$(echo "4 * $mm" | bc -l)"
finish 0
