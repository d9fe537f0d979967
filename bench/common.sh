# common.sh — what bench/engine.sh and bench/policy.sh share: the options
# both take, building a benchmark program against the built library, the test
# harness's servers (on a port base of the benchmark's own, always stopped on
# the way out), the K timed runs and the medians over them.
#
# Sourced (not run) by a script, after its `set -euo pipefail`; the script's
# header comment, from line 2 to `set -e`, is its usage text. Sourcing sets
#   PROG     the script's name, for messages
#   HERE     bench/;  ROOT, the source tree;  HARNESS, tests/harness/servers.sh
#   BUILD    $SG_BUILD_DIR, default build/ in the source tree;  CC, default cc
#   T0       the start, for the time budget and the total
#   RUNS, ROUNDS, BUDGET, CLUSTER, EXTRA   the options' values (the script sets
#            the defaults of ROUNDS and BUDGET)
# The functions below set BIN (build_bench), STATE and OUT (start_servers and
# run_bench: the EXIT trap removes them) and DONE_RUNS (run_bench).
# shellcheck shell=bash

PROG=${0##*/}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BUILD=${SG_BUILD_DIR:-$ROOT/build}
CC=${CC:-cc}
HARNESS=$ROOT/tests/harness/servers.sh
T0=$SECONDS

RUNS=5
ROUNDS=
BUDGET=
CLUSTER=
EXTRA=()
STATE=
OUT=
DONE_RUNS=0

say() { printf '%s: %s\n' "$PROG" "$*"; }
die() { printf '%s: %s\n' "$PROG" "$*" >&2; exit 1; }
usage() { sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit "${1:-2}"; }
posint() { [[ $2 =~ ^[1-9][0-9]*$ ]] || die "$1 wants a positive integer, not \"$2\""; }
# posint_option OPTION VALUE [...]: the usage text (status 2) when VALUE is
# missing, an error (status 1) when it is not a positive integer.
posint_option() { (($# >= 2)) || usage; posint "$1" "$2"; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# parse_options ARGS...: the options every benchmark takes (-k, --rounds,
# --budget, --cluster, -h, -- ARGS); any other word goes to the script's
# script_option ARGS..., which sets TOOK to how many words it used, or fails
# when it does not know the option (then: the usage text, status 2).
parse_options() {
    local TOOK
    while (($#)); do
        case $1 in
        -k | --runs) posint_option "$@"; RUNS=$2; shift 2 ;;
        --rounds) posint_option "$@"; ROUNDS=$2; shift 2 ;;
        --budget) posint_option "$@"; BUDGET=$2; shift 2 ;;
        --cluster) (($# >= 2)) || usage; CLUSTER=$2; shift 2 ;;
        -h | --help) usage 0 ;;
        --) shift; EXTRA+=("$@"); break ;;
        *) script_option "$@" || usage; shift "$TOOK" ;;
        esac
    done
}

# build_bench NAME [PKG...]: BIN=$BUILD/bench/NAME, built from bench/NAME.c
# with $CC against libslotgate (and the pkg-config packages PKG) when it is
# missing or older than its sources or the library; the library itself is
# configured and built first when the build directory has none. A program
# that needs more (the tests' cluster helpers, say) lists its extra sources
# and headers in BENCH_SOURCES and its extra compiler words in BENCH_FLAGS.
BENCH_SOURCES=()
BENCH_FLAGS=()
build_bench() {
    local name=$1 flags='' f stale=0
    local -a srcs=()
    shift
    if [[ ! -e $BUILD/libslotgate.so ]]; then
        say "no $BUILD/libslotgate.so: building it (RelWithDebInfo)"
        cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
        cmake --build "$BUILD" -j2 --target slotgate >/dev/null
    fi
    BIN=$BUILD/bench/$name
    for f in "$HERE/$name.c" "$HERE/bench.h" "$ROOT/core/include/slotgate.h" \
        "$BUILD/libslotgate.so" "${BENCH_SOURCES[@]}"; do
        [[ $f -nt $BIN ]] && stale=1
        [[ $f != "$HERE/$name.c" && $f == *.c ]] && srcs+=("$f")
    done
    if [[ ! -x $BIN ]] || ((stale)); then
        mkdir -p "$BUILD/bench"
        if (($#)); then flags=$(pkg-config --cflags --libs "$@") || die "pkg-config: no $*"; fi
        # shellcheck disable=SC2086 # pkg-config's words are meant to split
        "$CC" -O2 -g -Wall -Wextra -I"$ROOT/core/include" "${BENCH_FLAGS[@]}" "$HERE/$name.c" \
            "${srcs[@]}" -o "$BIN" \
            -L"$BUILD" -lslotgate -Wl,-rpath,"$BUILD" $flags || die "cannot build $BIN"
    fi
}

# cleanup [STATUS]: the EXIT trap (STATUS: the one to exit with, default $?).
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
    local rc=${1:-$?}
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

# start_servers PORT_BASE STEM: sets the traps that stop the servers (and
# remove OUT) on the way out, however it comes; then, unless --cluster named
# one, starts the harness's servers with SG_TEST_PORT_BASE from
# $SG_BENCH_PORT_BASE, default PORT_BASE, and a state directory
# /tmp/STEM.XXXXXX, and sets CLUSTER to its 6-node cluster.
start_servers() {
    local base=${SG_BENCH_PORT_BASE:-$1} stem=$2
    trap cleanup EXIT
    trap 'say interrupted; exit 130' INT
    trap 'say terminated; exit 143' TERM
    [[ -z $CLUSTER ]] || return 0
    STATE=$(mktemp -d "/tmp/$stem.XXXXXX")
    say "starting the servers (port base $base, state $STATE)"
    if ! SG_TEST_PORT_BASE=$base "$HARNESS" start "$STATE" >"$STATE/harness.log" 2>&1; then
        cat "$STATE/harness.log" >&2
        die "the servers did not start"
    fi
    CLUSTER=$(sed -n 's/^SG_TEST_CLUSTER=//p' "$STATE/servers.env")
    say "servers ready in $((SECONDS - T0)) s: $CLUSTER"
}

# ---- slotgated in front of the servers' cluster (chaos.sh, churn.sh) ------------

SG_PID=
SG_LOG=
SG_PORT=

# Alive and not a zombie.
alive() { [[ -r /proc/$1/stat ]] && ! awk '{ exit !($3 == "Z" || $3 == "X") }' "/proc/$1/stat" 2>/dev/null; }

# slotgated's upstream connections by node ("addr=count ..."), from ss.
upstream_by_node() {
    ss -Htnp state established 2>/dev/null |
        awk -v p="pid=$SG_PID," -v me="127.0.0.1:$SG_PORT" 'index($0, p) && $3 != me { n[$4]++ }
            END { for (a in n) printf "%s=%d ", a, n[a] }'
}

# stop_slotgated: SIGTERM, up to 10 s, then SIGKILL; SG_RC is its exit status.
SG_RC=
stop_slotgated() {
    local i
    SG_RC=
    [[ -n $SG_PID ]] || return 0
    kill -TERM "$SG_PID" 2>/dev/null || true
    for ((i = 0; i < 200; i++)); do
        alive "$SG_PID" || break
        sleep 0.05
    done
    if alive "$SG_PID"; then
        say "slotgated (pid $SG_PID) still running 10 s after SIGTERM: SIGKILL"
        kill -KILL "$SG_PID" 2>/dev/null || true
    fi
    SG_RC=0
    wait "$SG_PID" 2>/dev/null || SG_RC=$?
    SG_PID=
}

# shellcheck disable=SC2317 # run by the EXIT trap
slotgated_cleanup() {
    local rc=$? p
    stop_slotgated
    # a server left stopped (SIGSTOP) would not hear the harness's SIGTERM
    if [[ -n $STATE && -f $STATE/pids ]]; then
        while read -r _ p; do kill -CONT "$p" 2>/dev/null || true; done <"$STATE/pids"
    fi
    cleanup "$rc"
}

# start_slotgated PORT [NAME=VALUE...]: after start_servers, slotgated (built when missing) on
# 127.0.0.1:PORT in front of the servers' cluster, with no TYK_* or SLOTGATE_*
# variable of the caller's but the NAME=VALUE given; returns once it answers PING. Sets SG_PID, SG_PORT
# and SG_LOG (/tmp/STEM-slotgated.XXXXXX, kept); the EXIT trap stops it.
start_slotgated() {
    local masters i v
    local -a unset_vars=()
    SG_PORT=$1
    shift # the rest: NAME=VALUE settings for slotgated's environment
    if [[ ! -x $BUILD/slotgated ]]; then
        say "no $BUILD/slotgated: building it"
        cmake --build "$BUILD" -j2 --target slotgated >/dev/null
    fi
    masters=$(sed -n 's/^SG_TEST_CLUSTER_MASTERS=//p' "$STATE/servers.env")
    trap slotgated_cleanup EXIT
    SG_LOG=$(mktemp "/tmp/${PROG%.sh}-slotgated.XXXXXX")
    while IFS= read -r v; do unset_vars+=(-u "$v"); done < <(env |
        sed -n 's/^\(\(TYK\|SLOTGATE\)_[A-Za-z0-9_]*\)=.*/\1/p')
    env "${unset_vars[@]}" TYK_GW_STORAGE_ADDRS="$masters" TYK_GW_STORAGE_ENABLECLUSTER=true \
        SLOTGATE_LISTEN="127.0.0.1:$SG_PORT" "$@" "$BUILD/slotgated" >"$SG_LOG" 2>&1 &
    SG_PID=$!
    for ((i = 0; ; i++)); do
        alive "$SG_PID" || { cat "$SG_LOG" >&2; die "slotgated exited at the start (its log above)"; }
        [[ $(timeout 2 redis-cli -p "$SG_PORT" PING 2>/dev/null) == PONG ]] && break
        ((i < 200)) || die "slotgated (pid $SG_PID) does not answer PING on port $SG_PORT after 10 s"
        sleep 0.05
    done
    say "slotgated pid $SG_PID on 127.0.0.1:$SG_PORT (log $SG_LOG), in front of $masters"
}

# slotgated_verdict: whether slotgated is alive and answers PING, then stops
# it; says so and returns 1 when it died, hung or exited badly on SIGTERM.
slotgated_verdict() {
    local bad=0
    if alive "$SG_PID" && [[ $(timeout 5 redis-cli -p "$SG_PORT" PING 2>/dev/null) == PONG ]]; then
        say "slotgated alive and answering at the end (pid $SG_PID)"
        say "its upstream connections, by node: $(upstream_by_node)"
        stop_slotgated
        if ((SG_RC != 0)); then
            say "SLOTGATED EXITED WITH STATUS $SG_RC ON SIGTERM"
            bad=1
        fi
    else
        stop_slotgated
        say "SLOTGATED IS DEAD OR NOT ANSWERING (exit status $SG_RC); the end of its log:"
        tail -n 30 "$SG_LOG" | sed 's/^/    /'
        bad=1
    fi
    say "slotgated's log: $(grep -c ': warn: ' "$SG_LOG" || true) warnings, $(grep -c ': error: ' "$SG_LOG" || true) errors ($SG_LOG)"
    return "$bad"
}

# Shows a run's output as it comes: all of it, or with SHOW_ROUNDS=0 all but
# the per-round lines (they are in OUT either way).
SHOW_ROUNDS=1
show_run() { if ((SHOW_ROUNDS)); then cat; else grep -v '^round ' || true; fi; }

# run_bench OUT_STEM TIMEOUT [ARGS...]: up to RUNS runs of BIN, each a new
# process given --addrs CLUSTER --rounds ROUNDS ARGS --seed RUN EXTRA and at
# most TIMEOUT seconds; no run starts that would likely end after BUDGET
# seconds from T0 (the first always does). Their output goes to the terminal
# and, whole, to OUT (/tmp/OUT_STEM.XXXXXX); DONE_RUNS counts the runs made.
# A failed run is fatal.
run_bench() {
    local stem=$1 limit=$2 run t longest=0
    shift 2
    OUT=$(mktemp "/tmp/$stem.XXXXXX")
    for ((run = 1; run <= RUNS; run++)); do
        if ((run > 1 && SECONDS - T0 + longest > BUDGET)); then
            say "time budget (${BUDGET} s) reached: stopping after $DONE_RUNS runs"
            break
        fi
        echo "---- run $run/$RUNS"
        t=$SECONDS
        timeout "$limit" "$BIN" --addrs "$CLUSTER" --rounds "$ROUNDS" "$@" --seed "$run" "${EXTRA[@]}" |
            tee -a "$OUT" | show_run || die "run $run failed (status ${PIPESTATUS[0]})"
        DONE_RUNS=$run
        if ((SECONDS - t > longest)); then longest=$((SECONDS - t)); fi
    done
}

# field NAME KEY: the value of KEY= in OUT's lines "RESULT NAME ...", one per run.
field() { awk -v w="$1" -v k="$2" '$1 == "RESULT" && $2 == w {
    for (i = 3; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) print kv[2] } }' "$OUT"; }
# median, min and max of numbers on stdin
stats() { sort -g | awk '{ v[NR] = $1 } END {
    if (NR == 0) { print "- - -"; exit }
    m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    print m, v[1], v[NR] }'; }

# finish STATUS: the closing line (load average, total time), then exit STATUS.
finish() {
    say "load average now $(loadavg); total $((SECONDS - T0)) s"
    exit "$1"
}
