#!/usr/bin/env bash
# daemon.sh — slotgated against the cluster itself, with redis-benchmark:
# starts the servers and slotgated in front of them, then runs each workload
# straight to the cluster (redis-benchmark --cluster) and through slotgated,
# interleaved, several passes, and prints the medians as ratios to direct,
# plus slotgated's RSS idle and under load. Stops everything on the way out.
#
#   bench/daemon.sh [-k PASSES] [--requests N] [--clients C] [--threads T]
#                   [--bench-threads B]
#                   [--only WORKLOAD] [--cluster ADDRS] [--budget SECONDS]
#
#   -k PASSES        interleaved passes over every workload (default 6)
#   --requests N     the scale of each run (default 100000): SET/GET at
#                    pipeline 1 send 2.5 N requests, at pipeline 16 20 N,
#                    MGET 5 N, MSET 2 N — a few seconds each on this
#                    machine. They must be that long: a threaded
#                    redis-benchmark (--cluster always is) notices the end
#                    of its run on a 250 ms timer, so a run of 0.25 s
#                    reads anywhere up to half its true rate
#   --clients C      redis-benchmark connections (default 50)
#   --bench-threads B  redis-benchmark threads, the same for both sides
#                    (default: the number of masters, which is what
#                    redis-benchmark --cluster picks for itself)
#   --threads T      slotgated worker threads (default: slotgated's own, the
#                    number of cores)
#   --only W         one workload: set1 get1 set16 get16 mget16 mset16, or
#                    set16r3 get16r3 hgetall16r3 (below)
#   --resp3          the RESP3 workloads too: SET, GET and HGETALL at pipeline 16
#                    with redis-benchmark -3 on both sides; the summary adds
#                    their rate through slotgated against RESP2's, same run
#   --cluster ADDRS  use a running cluster (host:port,...) instead of starting one
#   --budget S       start no pass that would likely end after S seconds
#                    (default 900; at least one pass)
#
# Workloads (50 clients, random keys over 100 000):
#   set1/get1    SET/GET at pipeline 1;  set16/get16  at pipeline 16
#   mget16       MGET of 10 keys at pipeline 16: through slotgated the keys
#                are in 10 different slots (split and merged); direct, the
#                keys share a hash tag (one node answers the whole MGET) —
#                the issue's comparison: cross-slot through the gateway
#                against the best case straight to the cluster
#   mset16       MSET of 10 keys, the same way
# Environment: SG_BUILD_DIR (default build/), SG_BENCH_PORT_BASE (default
# 22000), SLOTGATED (default $SG_BUILD_DIR/slotgated).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "$0")/common.sh"

RUNS=6
BUDGET=900
REQUESTS=100000
CLIENTS=50
THREADS=
BTHREADS=
ONLY=
RESP3=
script_option() {
    case $1 in
    --requests) posint_option "$@"; REQUESTS=$2; TOOK=2 ;;
    --clients) posint_option "$@"; CLIENTS=$2; TOOK=2 ;;
    --threads) posint_option "$@"; THREADS=$2; TOOK=2 ;;
    --bench-threads) posint_option "$@"; BTHREADS=$2; TOOK=2 ;;
    --only) (($# >= 2)) || usage; ONLY=$2; TOOK=2 ;;
    --resp3) RESP3=1; TOOK=1 ;;
    *) return 1 ;;
    esac
}
parse_options "$@"

command -v redis-benchmark >/dev/null || die "redis-benchmark is missing (tools/install-deps.sh)"
SLOTGATED=${SLOTGATED:-$BUILD/slotgated}
[[ -x $SLOTGATED ]] || die "no $SLOTGATED: build first (cmake --build build)"

SGPID=
SGLOG=
stop_slotgated() {
    if [[ -n $SGPID ]] && kill -0 "$SGPID" 2>/dev/null; then
        kill -TERM "$SGPID"
        wait "$SGPID" 2>/dev/null || true
    fi
    SGPID=
}
# shellcheck disable=SC2317 # run by the EXIT trap
all_done() { stop_slotgated; [[ -z $SGLOG ]] || rm -f "$SGLOG"; cleanup; }

base=${SG_BENCH_PORT_BASE:-22000}
start_servers "$base" slotgate-daemon-bench
trap all_done EXIT
first=${CLUSTER%%,*}
fhost=${first%:*}
fport=${first##*:}

# slotgated in front of the cluster
SGPORT=$((base + 500))
SGLOG=$(mktemp /tmp/slotgated-bench.XXXXXX)
env TYK_GW_STORAGE_ADDRS="$CLUSTER" TYK_GW_STORAGE_ENABLECLUSTER=true \
    SLOTGATE_LISTEN="127.0.0.1:$SGPORT" ${THREADS:+SLOTGATE_THREADS=$THREADS} \
    SLOTGATE_LOG_LEVEL=warn "$SLOTGATED" >"$SGLOG" 2>&1 &
SGPID=$!
for _ in $(seq 200); do
    redis-cli -p "$SGPORT" SET bench:warm 1 2>/dev/null | grep -q OK && break
    kill -0 "$SGPID" 2>/dev/null || { cat "$SGLOG" >&2; die "slotgated exited"; }
    sleep 0.05
done
redis-cli -p "$SGPORT" GET bench:warm | grep -q 1 || die "slotgated does not serve: $(cat "$SGLOG")"
rss() { awk '/^VmRSS/ { print $2 }' "/proc/$SGPID/status"; }
# slotgated's CPU time so far (user + system, all threads), in clock ticks:
# per request it is a steadier figure than the ratios on a shared machine
HZ=$(getconf CLK_TCK)
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$SGPID/stat"; }
RSS_IDLE=$(rss)
RSS_PEAK=$RSS_IDLE
# The load generator is the same on both sides: redis-benchmark --cluster
# runs one thread per master unless told otherwise, so the run through
# slotgated gets as many (a single-threaded generator against the gateway
# measured the generator, not the gateway).
if [[ -z $BTHREADS ]]; then
    BTHREADS=$(redis-cli -h "$fhost" -p "$fport" CLUSTER NODES | awk '$3 ~ /master/ && $3 !~ /fail/ { n++ } END { print n + 0 }')
    ((BTHREADS > 0)) || die "no master found in CLUSTER NODES of $first"
fi
say "$(nproc) CPUs; load average $(loadavg); slotgated pid $SGPID on $SGPORT, RSS idle ${RSS_IDLE} kB; redis-benchmark threads: $BTHREADS on both sides"

mkeys() { # mkeys TAG: MGET's 10 keys (TAG empty: different slots)
    local i
    for i in 0 1 2 3 4 5 6 7 8 9; do printf 'k%s:%s:__rand_int__ ' "$TAG" "$i"; done
}
# workload W: the redis-benchmark arguments (after the target), and requests
args_for() {
    local w=$1 via=$2 TAG=
    if [[ $via == direct ]]; then TAG='{tag}'; fi
    case $w in
    set1) echo "-t set -P 1 -n $((REQUESTS * 5 / 2))" ;;
    get1) echo "-t get -P 1 -n $((REQUESTS * 5 / 2))" ;;
    set16) echo "-t set -P 16 -n $((REQUESTS * 20))" ;;
    get16) echo "-t get -P 16 -n $((REQUESTS * 20))" ;;
    set16r3) echo "-3 -t set -P 16 -n $((REQUESTS * 20))" ;;
    get16r3) echo "-3 -t get -P 16 -n $((REQUESTS * 20))" ;;
    # HGETALL of a small hash: a map in RESP3, an array in RESP2
    hgetall16) echo "-P 16 -n $((REQUESTS * 10)) HGETALL h$TAG" ;;
    hgetall16r3) echo "-3 -P 16 -n $((REQUESTS * 10)) HGETALL h$TAG" ;;
    mget16) echo "-P 16 -n $((REQUESTS * 5)) MGET $(mkeys)" ;;
    mset16)
        local i s=
        for i in 0 1 2 3 4 5 6 7 8 9; do s+="k$TAG:$i:__rand_int__ v "; done
        echo "-P 16 -n $((REQUESTS * 2)) MSET $s" ;;
    esac
}

# one run: prints requests per second
run_one() {
    local w=$1 via=$2 out rps
    # shellcheck disable=SC2046 # the workload's words are meant to split
    if [[ $via == direct ]]; then
        out=$(redis-benchmark --cluster --threads "$BTHREADS" -h "$fhost" -p "$fport" -c "$CLIENTS" -r 100000 --csv \
            $(args_for "$w" direct) 2>&1) || die "redis-benchmark direct $w: $out"
    else
        out=$(redis-benchmark --threads "$BTHREADS" -h 127.0.0.1 -p "$SGPORT" -c "$CLIENTS" -r 100000 --csv \
            $(args_for "$w" slotgate) 2>&1) || die "redis-benchmark slotgated $w: $out"
    fi
    rps=$(printf '%s\n' "$out" | awk -F'"' '/^"[A-Z]/ && $4 + 0 > 0 { print $4; exit }')
    [[ -n $rps ]] || die "no figure from redis-benchmark ($via $w): $out"
    echo "$rps"
}

WORKLOADS=(set1 get1 set16 get16 mget16 mset16)
[[ -z $RESP3 ]] || WORKLOADS+=(set16r3 get16r3 hgetall16 hgetall16r3)
[[ -z $ONLY ]] || WORKLOADS=("$ONLY")
# the hash HGETALL reads, on both sides
for h in h 'h{tag}'; do
    redis-cli -c -h "$fhost" -p "$fport" HSET "$h" f1 v1 f2 v2 f3 v3 >/dev/null
done
OUT=$(mktemp /tmp/slotgate-daemon-bench-out.XXXXXX)
longest=0
for ((pass = 1; pass <= RUNS; pass++)); do
    if ((pass > 1 && SECONDS - T0 + longest > BUDGET)); then
        say "time budget (${BUDGET} s) reached: stopping after $((pass - 1)) passes"
        break
    fi
    t=$SECONDS
    for w in "${WORKLOADS[@]}"; do
        # alternate which side goes first, so drift hurts both alike
        if ((pass % 2)); then order=(direct slotgate); else order=(slotgate direct); fi
        for via in "${order[@]}"; do
            if [[ $via == slotgate ]]; then
                ( while sleep 0.2; do r=$(rss 2>/dev/null) || exit 0; echo "$r"; done ) >"$OUT.rss" &
                sampler=$!
            fi
            [[ $via != slotgate ]] || cpu0=$(cpu_ticks)
            rps=$(run_one "$w" "$via")
            if [[ $via == slotgate ]]; then
                n=$(args_for "$w" slotgate | awk '{ for (i = 1; i < NF; i++) if ($i == "-n") print $(i + 1) }')
                echo "CPU $w $(awk -v t=$(($(cpu_ticks) - cpu0)) -v hz="$HZ" -v n="$n" \
                    'BEGIN { printf "%.2f", t * 1e6 / hz / n }')" >>"$OUT"
                kill "$sampler" 2>/dev/null || true
                wait "$sampler" 2>/dev/null || true
                peak=$(sort -n "$OUT.rss" | tail -1)
                if [[ -n $peak ]] && ((peak > RSS_PEAK)); then RSS_PEAK=$peak; fi
            fi
            echo "RESULT $w $via $rps" >>"$OUT"
            printf 'pass %d  %-7s %-8s %10.0f req/s\n' "$pass" "$w" "$via" "$rps"
        done
    done
    if ((SECONDS - t > longest)); then longest=$((SECONDS - t)); fi
done
rm -f "$OUT.rss"
kill -0 "$SGPID" 2>/dev/null || die "slotgated died during the benchmark: $(cat "$SGLOG")"
RSS_AFTER=$(rss)

median() { awk -v w="$1" -v v="$2" '$1 == "RESULT" && $2 == w && $3 == v { print $4 }' "$OUT" | stats; }
echo
echo "==== summary: medians over the passes (min..max); ratio = slotgated / direct"
fail=0
for w in "${WORKLOADS[@]}"; do
    read -r sm smin smax < <(median "$w" slotgate)
    read -r dm dmin dmax < <(median "$w" direct)
    # the ratio of each pass, then their median
    read -r rm rmin rmax < <(awk -v w="$w" '$1 == "RESULT" && $2 == w {
            if ($3 == "direct") d[++nd] = $4; else s[++ns] = $4 }
        END { for (i = 1; i <= nd && i <= ns; i++) print s[i] / d[i] }' "$OUT" | stats)
    case $w in set* | get* | hgetall*) want=0.80 ;; mget16) want=0.35 ;; mset16) want=0.70 ;; esac
    verdict=$(awk -v r="$rm" -v t="$want" 'BEGIN { print (r >= t ? "met" : "MISSED") }')
    [[ $verdict == met ]] || fail=1
    printf '%-7s slotgated %9.0f (%.0f..%.0f)  direct %9.0f (%.0f..%.0f)  ratio %.3f (%.3f..%.3f)  target >= %s: %s\n' \
        "$w" "$sm" "$smin" "$smax" "$dm" "$dmin" "$dmax" "$rm" "$rmin" "$rmax" "$want" "$verdict"
done
if [[ -n $RESP3 ]]; then
    echo "RESP3 against RESP2 through slotgated (median of the per-pass ratios; target >= 0.90):"
    for pair in set16:set16r3 get16:get16r3 hgetall16:hgetall16r3; do
        w2=${pair%%:*} w3=${pair##*:}
        read -r qm qmin qmax < <(awk -v a="$w2" -v b="$w3" '$1 == "RESULT" && $3 == "slotgate" {
                if ($2 == a) x[++nx] = $4; else if ($2 == b) y[++ny] = $4 }
            END { for (i = 1; i <= nx && i <= ny; i++) print y[i] / x[i] }' "$OUT" | stats)
        printf '  %-12s %.3f (%.3f..%.3f)\n' "$w3/$w2" "$qm" "$qmin" "$qmax"
    done
fi
echo "slotgated's CPU per request (user + system, µs; median, min..max):"
for w in "${WORKLOADS[@]}"; do
    read -r cm cmin cmax < <(awk -v w="$w" '$1 == "CPU" && $2 == w { print $3 }' "$OUT" | stats)
    printf '  %-7s %6.2f (%.2f..%.2f)\n' "$w" "$cm" "$cmin" "$cmax"
done
printf 'RSS     idle %d kB, peak under load %d kB, after %d kB (targets: idle < 8192, load < 12288)\n' \
    "$RSS_IDLE" "$RSS_PEAK" "$RSS_AFTER"
((RSS_IDLE < 8192 && RSS_PEAK < 12288)) || fail=1
finish "$fail"
