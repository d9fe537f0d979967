#!/usr/bin/env bash
# chaos.sh — slotgated under load while its cluster is hurt: starts the test
# harness's servers and slotgated in front of their cluster, runs bench/chaos
# (writers through slotgated; meanwhile, in turns, a master SIGKILLed and
# restarted, slots migrated, slotgated's upstream connections killed with
# CLIENT KILL, a node stalled with SIGSTOP), then reads every acknowledged
# write back and prints the figures. Stops everything it started on the way
# out, however it comes.
#
#   bench/chaos.sh [--duration SECONDS] [--conns N] [--seed N] [--port PORT]
#
#   --duration S   how long the load and the faults last (default 180); the
#                  check at the end comes on top (seconds to a minute)
#   --conns N      writer connections to slotgated (default 4)
#   --seed N       the faults' random choices (default: the time)
#   --port PORT    slotgated's port (default 18500)
#
# Exit status: 0 when no write confirmed replicated was lost and slotgated is
# alive (and answers) at the end; 1 otherwise; 2 for a usage error. Writes
# acknowledged but not confirmed replicated may be lost by Redis's own rules
# (asynchronous replication): they are counted, not failed on.
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
SEED=0
PORT=18500
SG_PID=
SG_LOG=

script_option() {
    case $1 in
    --duration) posint_option "$@"; DURATION=$2; TOOK=2 ;;
    --conns) posint_option "$@"; CONNS=$2; TOOK=2 ;;
    --seed) posint_option "$@"; SEED=$2; TOOK=2 ;;
    --port) posint_option "$@"; PORT=$2; TOOK=2 ;;
    *) return 1 ;;
    esac
}
parse_options "$@"
[[ -z $CLUSTER ]] || die "--cluster: chaos kills and restarts servers, so it runs only on servers it starts"

# ---- build ----------------------------------------------------------------------

BENCH_SOURCES=("$ROOT/tests/c/test.c" "$ROOT/tests/c/test.h" "$ROOT/tests/c/cluster_ops.h")
# -Wno-restrict: gcc's false alarm on cluster_ops.h's snprintf into n->err once inlined
BENCH_FLAGS=(-I"$ROOT/tests/c" -pthread -Wno-restrict)
build_bench chaos hiredis
if [[ ! -x $BUILD/slotgated ]]; then
    say "no $BUILD/slotgated: building it"
    cmake --build "$BUILD" -j2 --target slotgated >/dev/null
fi

# ---- servers, slotgated, and the way out ------------------------------------------

# Alive and not a zombie.
alive() { [[ -r /proc/$1/stat ]] && ! awk '{ exit !($3 == "Z" || $3 == "X") }' "/proc/$1/stat"; }

# shellcheck disable=SC2317 # run by the EXIT trap
chaos_cleanup() {
    local rc=$? n p i
    if [[ -n $SG_PID ]] && alive "$SG_PID"; then
        kill -TERM "$SG_PID" 2>/dev/null || true
        for ((i = 0; i < 200; i++)); do
            alive "$SG_PID" || break
            sleep 0.05
        done
        alive "$SG_PID" && kill -KILL "$SG_PID" 2>/dev/null
    fi
    # a node the run left stopped (SIGSTOP) would not hear the harness's SIGTERM
    if [[ -n $STATE && -f $STATE/pids ]]; then
        while read -r n p; do kill -CONT "$p" 2>/dev/null || true; done <"$STATE/pids"
    fi
    (exit "$rc")
    cleanup
}

start_servers 18000 slotgate-chaos
trap chaos_cleanup EXIT
export SG_TEST_STATE=$STATE # the run records the servers it restarts there
MASTERS=$(sed -n 's/^SG_TEST_CLUSTER_MASTERS=//p' "$STATE/servers.env")

SG_LOG=$(mktemp /tmp/slotgate-chaos-slotgated.XXXXXX)
unset_sg=()
while IFS= read -r v; do unset_sg+=(-u "$v"); done < <(env | sed -n 's/^\(\(TYK\|SLOTGATE\)_[A-Za-z0-9_]*\)=.*/\1/p')
env "${unset_sg[@]}" TYK_GW_STORAGE_ADDRS="$MASTERS" TYK_GW_STORAGE_ENABLECLUSTER=true \
    SLOTGATE_LISTEN="127.0.0.1:$PORT" "$BUILD/slotgated" >"$SG_LOG" 2>&1 &
SG_PID=$!
for ((i = 0; ; i++)); do
    alive "$SG_PID" || { cat "$SG_LOG" >&2; die "slotgated exited at the start (log above)"; }
    [[ $(timeout 2 redis-cli -p "$PORT" PING 2>/dev/null) == PONG ]] && break
    ((i < 200)) || die "slotgated (pid $SG_PID) does not answer PING on port $PORT after 10 s"
    sleep 0.05
done
say "slotgated pid $SG_PID on 127.0.0.1:$PORT (log $SG_LOG), in front of $MASTERS"

# ---- the run -------------------------------------------------------------------------

rc=0
"$BIN" --gateway "127.0.0.1:$PORT" --cluster "$CLUSTER" --duration "$DURATION" \
    --conns "$CONNS" --sg-pid "$SG_PID" --seed "$SEED" "${EXTRA[@]}" || rc=$?

echo
status=0
if alive "$SG_PID" && [[ $(timeout 5 redis-cli -p "$PORT" PING 2>/dev/null) == PONG ]]; then
    say "slotgated alive and answering at the end (pid $SG_PID)"
    say "its upstream connections now, by node: $(ss -Htnp state established 2>/dev/null |
        awk -v p="pid=$SG_PID," -v me="127.0.0.1:$PORT" 'index($0, p) && $3 != me { n[$4]++ }
            END { for (a in n) printf "%s=%d ", a, n[a] }')"
    kill -TERM "$SG_PID"
    sg_rc=0
    wait "$SG_PID" || sg_rc=$?
    SG_PID=
    if ((sg_rc != 0)); then
        say "slotgated exited with status $sg_rc on SIGTERM"
        status=1
    fi
else
    sg_rc=0
    alive "$SG_PID" || wait "$SG_PID" || sg_rc=$?
    say "SLOTGATED IS DEAD OR NOT ANSWERING (exit status $sg_rc); the end of its log:"
    tail -n 30 "$SG_LOG" | sed 's/^/    /'
    status=1
fi
say "slotgated's log: $(grep -c ': warn: ' "$SG_LOG" || true) warnings, $(grep -c ': error: ' "$SG_LOG" || true) errors ($SG_LOG)"
case $rc in
0) say "no write confirmed replicated was lost" ;;
1) say "A WRITE CONFIRMED REPLICATED WAS LOST, or the check failed (above)"; status=1 ;;
*) say "bench/chaos failed (status $rc)"; status=1 ;;
esac
finish "$status"
