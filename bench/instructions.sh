#!/usr/bin/env bash
# instructions.sh — what slotgated's user space costs per request, counted
# rather than timed: each slotgated given (one worker) runs under valgrind's
# callgrind while redis-benchmark sends the same requests through it (GET at
# pipeline 16, then SET at pipeline 1), and the instructions it executed are
# printed, per build and per request. Counts repeat to within 0.1 % whatever
# else the machine does, so a change of a few per cent shows where a
# throughput ratio on a shared machine cannot. Kernel time is not counted.
#
#   bench/instructions.sh [-k RUNS] [--get N] [--set N] [--cluster ADDRS] SLOTGATED...
#
#   -k RUNS        runs per build, interleaved (default 2)
#   --get N        GETs at pipeline 16 (default 200000)
#   --set N        SETs at pipeline 1 (default 20000)
#   --cluster A    use a running cluster (host:port,...) instead of starting one
#   SLOTGATED      slotgated binaries to compare (say an old build's and this one's)
#
# Environment: SG_BENCH_PORT_BASE (default 17000), the harness's ports.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "$0")/common.sh"

GETS=200000
SETS=20000
script_option() {
    case $1 in
    --get) posint_option "$@"; GETS=$2; TOOK=2 ;;
    --set) posint_option "$@"; SETS=$2; TOOK=2 ;;
    -*) return 1 ;;
    *) BINS+=("$1"); TOOK=1 ;;
    esac
}
BINS=()
RUNS=2
parse_options "$@"
((${#BINS[@]} > 0)) || usage
command -v valgrind >/dev/null || die "valgrind is missing (apt-get install valgrind)"
command -v redis-benchmark >/dev/null || die "redis-benchmark is missing (tools/install-deps.sh)"
for b in "${BINS[@]}"; do [[ -x $b ]] || die "no slotgated at $b"; done

start_servers 17000 slotgate-instructions
PORT=$((${SG_BENCH_PORT_BASE:-17000} + 990))
OUT=$(mktemp /tmp/slotgate-instructions.XXXXXX)

# one run of binary $1: prints its instruction count
count() {
    local bin=$1 cg pid n
    cg=$(mktemp /tmp/slotgate-callgrind.XXXXXX)
    TYK_GW_STORAGE_ADDRS="$CLUSTER" TYK_GW_STORAGE_ENABLECLUSTER=true \
        SLOTGATE_LISTEN="127.0.0.1:$PORT" SLOTGATE_THREADS=1 SLOTGATE_LOG_LEVEL=warn \
        valgrind --tool=callgrind --callgrind-out-file="$cg" "$bin" >"$cg.log" 2>&1 &
    pid=$!
    for _ in $(seq 200); do
        redis-cli -p "$PORT" PING 2>/dev/null | grep -q PONG && break
        kill -0 "$pid" 2>/dev/null || die "slotgated exited: $(cat "$cg.log")"
        sleep 0.1
    done
    redis-benchmark -p "$PORT" -n "$GETS" -P 16 -c 20 -t get -r 100000 -q >/dev/null 2>&1 ||
        die "redis-benchmark GET failed"
    redis-benchmark -p "$PORT" -n "$SETS" -c 20 -t set -r 100000 -q >/dev/null 2>&1 ||
        die "redis-benchmark SET failed"
    kill -TERM "$pid"
    wait "$pid" || true
    n=$(sed -n 's/^summary: //p' "$cg")
    rm -f "$cg" "$cg.log"
    [[ -n $n ]] || die "callgrind wrote no summary for $bin"
    echo "$n"
}

say "$RUNS runs per build, interleaved; $GETS GET at pipeline 16, then $SETS SET at pipeline 1"
for ((r = 1; r <= RUNS; r++)); do
    for b in "${BINS[@]}"; do
        n=$(count "$b")
        echo "$b $n" >>"$OUT"
        printf 'run %d  %-50s %12d instructions\n' "$r" "$b" "$n"
    done
done
echo
echo "==== instructions per request (median of the runs; requests = $((GETS + SETS)))"
first=
for b in "${BINS[@]}"; do
    m=$(awk -v b="$b" '$1 == b { print $2 }' "$OUT" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
    [[ -n $first ]] || first=$m
    awk -v b="$b" -v m="$m" -v n=$((GETS + SETS)) -v f="$first" \
        'BEGIN { printf "%-50s %8.1f per request  (x%.3f the first)\n", b, m / n, m / f }'
done
finish 0
