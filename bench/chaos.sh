#!/usr/bin/env bash
# chaos.sh — slotgated under load while its cluster is hurt: starts the test
# harness's servers and slotgated in front of their cluster, runs bench/chaos
# (writers through slotgated; meanwhile, in turns, a master SIGKILLed and
# restarted, slots migrated, slotgated's upstream connections killed with
# CLIENT KILL, a node stalled with SIGSTOP), then reads every acknowledged
# write back and prints the figures. Stops everything it started on the way
# out, however it comes.
#
#   bench/chaos.sh [--duration SECONDS] [--conns N] [--seq-conns N] [--pipeline N]
#                  [--seed N] [--port PORT] [--durable] [--keep]
#
#   --duration S   how long the load and the faults last (default 180); the
#                  check at the end comes on top (seconds to a minute)
#   --conns N      writer connections to slotgated (default 4)
#   --pipeline N   writes in flight per connection (default 1); with N > 1
#                  each SET goes with a GET and an ECHO of its key, whose
#                  replies must match (the order of replies under faults)
#   --seq-conns N  ordered writers (default 2): each appends rising numbers to
#                  keys of its own with a GET after each, so a write applied
#                  out of order, or a read that runs before an earlier
#                  write, shows (reordered=N in the RESULT line)
#   --durable      slotgated runs a policy that makes every write durable
#                  (durable = {["chaos:*"] = 1}: acknowledged once a replica
#                  confirms it): then no acknowledged write may be lost
#   --seed N       the faults' random choices (default: the time)
#   --port PORT    slotgated's port (default 18500)
#   --keep         when the run fails, leave the servers running (and their
#                  temp dir: each node's redis.log, nodes.conf and dump.rdb)
#                  for a look; the last lines say where and how to stop them.
#                  Also SG_CHAOS_KEEP=1; SG_CHAOS_KEEP=always keeps them
#                  after a run that passed too.
#
# Exit status: 0 when no write confirmed replicated was lost (with --durable:
# no acknowledged write), no reply was wrong, no write or read was reordered
# and slotgated is alive (and answers) at the end; 1 otherwise; 2 for a usage
# error. Without --durable, writes acknowledged but not confirmed replicated
# may be lost by Redis's own rules (asynchronous replication): they are
# counted, not failed on.
#
# Environment: SG_BUILD_DIR (default build/; slotgated and libslotgate are
# built there when missing), SG_BENCH_PORT_BASE (default 18000), the
# harness's SG_TEST_PORT_BASE (its ports are listed at the top of
# tests/harness/servers.sh); CC. See bench/README.md.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "$0")/common.sh"

DURATION=180
CONNS=4
PIPELINE=1
SEED=0
PORT=18500
SEQ=2
DURABLE=0
KEEP=${SG_CHAOS_KEEP:-0}
[[ $KEEP == always ]] && KEEP=2
[[ $KEEP =~ ^[012]$ ]] || die "SG_CHAOS_KEEP: 1 or always, not \"$KEEP\""

script_option() {
    case $1 in
    --duration) posint_option "$@"; DURATION=$2; TOOK=2 ;;
    --conns) posint_option "$@"; CONNS=$2; TOOK=2 ;;
    --pipeline) posint_option "$@"; PIPELINE=$2; TOOK=2 ;;
    --seed) posint_option "$@"; SEED=$2; TOOK=2 ;;
    --port) posint_option "$@"; PORT=$2; TOOK=2 ;;
    --seq-conns) [[ ${2:-} =~ ^[0-9]+$ ]] || die "--seq-conns needs a number"; SEQ=$2; TOOK=2 ;;
    --durable) DURABLE=1; TOOK=1 ;;
    --keep) KEEP=1; TOOK=1 ;;
    *) return 1 ;;
    esac
}
parse_options "$@"
[[ -z $CLUSTER ]] || die "--cluster: chaos kills and restarts servers, so it runs only on servers it starts"

# ---- build, servers, slotgated ------------------------------------------------------

BENCH_SOURCES=("$ROOT/tests/c/test.c" "$ROOT/tests/c/test.h" "$ROOT/tests/c/cluster_ops.c"
    "$ROOT/tests/c/cluster_ops.h")
BENCH_FLAGS=(-I"$ROOT/tests/c" -pthread)
build_bench chaos hiredis
start_servers 18000 slotgate-chaos
export SG_TEST_STATE=$STATE # the run records the servers it restarts there
if ((DURABLE)); then
    POLICY=$STATE/chaos-durable.lua
    echo 'return { name = "chaos-durable", durable = { ["chaos:*"] = 1 } }' >"$POLICY"
    start_slotgated "$PORT" SLOTGATE_POLICY="$POLICY"
else
    start_slotgated "$PORT"
fi

# ---- the run -------------------------------------------------------------------------

rc=0
"$BIN" --gateway "127.0.0.1:$PORT" --cluster "$CLUSTER" --duration "$DURATION" \
    --conns "$CONNS" --seq-conns "$SEQ" --pipeline "$PIPELINE" --sg-pid "$SG_PID" --seed "$SEED" \
    --durable "$DURABLE" "${EXTRA[@]}" || rc=$?

echo
status=0
slotgated_verdict || status=1
case $rc in
0) say "no write confirmed replicated was lost, none reordered" ;;
1) say "A WRITE CONFIRMED REPLICATED (or durable) WAS LOST, A REPLY WAS WRONG OR REORDERED, or the check failed (above)"; status=1 ;;
*) say "bench/chaos failed (status $rc)"; status=1 ;;
esac
if ((KEEP == 2 || (KEEP && status))); then
    # resumed, so that they answer (a stall may have been cut short)
    while read -r _ p; do kill -CONT "$p" 2>/dev/null || true; done <"$STATE/pids"
    say "--keep: the servers are left running: logs in $(<"$STATE/tmpdir")/NAME/redis.log;" \
        "stop them with: tests/harness/servers.sh stop $STATE && rm -rf $STATE"
    STATE= # the EXIT trap leaves them be
fi
finish "$status"
