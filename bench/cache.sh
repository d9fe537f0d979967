#!/usr/bin/env bash
# cache.sh — the near cache (docs/CACHE.md) against the cluster itself, with
# redis-benchmark: hot keys (GET of 1000 keys, -r 1000, every one cached)
# straight to the cluster (--cluster), through slotgated with a policy that
# caches them, and through slotgated with no policy (the default path, cache
# off), interleaved, several passes; prints the medians, the ratios to
# direct, slotgated's CPU per request on each side, and the cache's hits.
#
# Two more sides, in the same passes, measure the floor: how far this
# machine lets any server go past the cluster, with the same client.
#   redis1  one standalone redis-server (the harness's), the same keys: the
#           best-known server answering from memory, with no hop
#   floor   bench/responder with slotgated's thread count: reads the
#           requests' framing and answers each with the same bulk string,
#           nothing else; no server answering from memory can do less
# When floor / direct is under the 1.5x target, the target is out of reach
# on this machine for any gateway, and the summary says so.
#
#   bench/cache.sh [-k PASSES] [--requests N] [--clients C] [--threads T]
#                  [--bench-threads B] [--cluster ADDRS] [--budget SECONDS]
#
#   -k PASSES        interleaved passes (default 3)
#   --requests N     GETs per run at pipeline 1 (default 250000); at
#                    pipeline 16, 8 N
#   --clients C      redis-benchmark connections (default 50)
#   --threads T      slotgated worker threads (default: slotgated's own, the
#                    CPUs); the responder gets as many
#   --bench-threads B  redis-benchmark threads, every side (default: the
#                    masters, as redis-benchmark --cluster picks)
#   --cluster ADDRS  a running cluster (host:port,...) instead of starting
#                    one (no redis1 side then)
#   --budget S       start no pass that would likely end after S seconds
#                    (default 900)
#
# Targets (issue #15): cached GET through slotgated >= 1.5x direct at
# pipeline 1 and 16, and < 1 µs of slotgated CPU per cached GET at pipeline
# 16. Environment: SG_BUILD_DIR, SG_BENCH_PORT_BASE (default 22000),
# SLOTGATED (default $SG_BUILD_DIR/slotgated).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "$0")/common.sh"

RUNS=3
BUDGET=900
REQUESTS=250000
CLIENTS=50
THREADS=
BTHREADS=
script_option() {
    case $1 in
    --requests) posint_option "$@"; REQUESTS=$2; TOOK=2 ;;
    --clients) posint_option "$@"; CLIENTS=$2; TOOK=2 ;;
    --threads) posint_option "$@"; THREADS=$2; TOOK=2 ;;
    --bench-threads) posint_option "$@"; BTHREADS=$2; TOOK=2 ;;
    *) return 1 ;;
    esac
}
parse_options "$@"

command -v redis-benchmark >/dev/null || die "redis-benchmark is missing (tools/install-deps.sh)"
SLOTGATED=${SLOTGATED:-$BUILD/slotgated}
[[ -x $SLOTGATED ]] || die "no $SLOTGATED: build first (cmake --build build)"

BENCH_FLAGS=(-pthread)
build_bench responder

# two slotgated: "cached" with the policy, "plain" with none; the responder
declare -A PID LOG PORT
# shellcheck disable=SC2317 # run by the EXIT trap
stop_all() {
    local s
    for s in "${!PID[@]}"; do
        if kill -0 "${PID[$s]}" 2>/dev/null; then
            kill -TERM "${PID[$s]}"
            wait "${PID[$s]}" 2>/dev/null || true
        fi
        rm -f "${LOG[$s]}"
    done
}
# shellcheck disable=SC2317 # run by the EXIT trap
all_done() { stop_all; [[ -z ${POLICY:-} ]] || rm -f "$POLICY"; cleanup; }

base=${SG_BENCH_PORT_BASE:-22000}
start_servers "$base" slotgate-cache-bench
trap all_done EXIT
first=${CLUSTER%%,*}
fhost=${first%:*}
fport=${first##*:}
POLICY=$(mktemp /tmp/slotgate-cache-bench-policy.XXXXXX)
echo 'return { name = "bench", cache = { ["key:*"] = 300 } }' >"$POLICY"

start_one() { # start_one SIDE PORT [VAR=VALUE...]
    local side=$1 port=$2
    shift 2
    PORT[$side]=$port
    LOG[$side]=$(mktemp "/tmp/slotgated-cache-bench-$side.XXXXXX")
    env TYK_GW_STORAGE_ADDRS="$CLUSTER" TYK_GW_STORAGE_ENABLECLUSTER=true \
        SLOTGATE_LISTEN="127.0.0.1:$port" ${THREADS:+SLOTGATE_THREADS=$THREADS} \
        SLOTGATE_LOGLEVEL=warn "$@" "$SLOTGATED" >"${LOG[$side]}" 2>&1 &
    PID[$side]=$!
    for _ in $(seq 200); do
        redis-cli -p "$port" PING 2>/dev/null | grep -q PONG && return 0
        kill -0 "${PID[$side]}" 2>/dev/null || { cat "${LOG[$side]}" >&2; die "slotgated ($side) exited"; }
        sleep 0.05
    done
    die "slotgated ($side) does not answer PING on $port"
}
start_one cached $((base + 500)) SLOTGATE_POLICY="$POLICY"
start_one plain $((base + 501))
PORT[floor]=$((base + 502))
LOG[floor]=$(mktemp /tmp/slotgate-cache-bench-floor.XXXXXX)
"$BIN" "${PORT[floor]}" "${THREADS:-$(nproc)}" >"${LOG[floor]}" 2>&1 &
PID[floor]=$!
for _ in $(seq 200); do
    grep -q ready "${LOG[floor]}" && break
    kill -0 "${PID[floor]}" 2>/dev/null || { cat "${LOG[floor]}" >&2; die "the responder exited"; }
    sleep 0.05
done
# the standalone server of the harness (none with --cluster)
SINGLE=
[[ -z $STATE ]] || SINGLE=$(sed -n 's/^SG_TEST_STANDALONE=//p' "$STATE/servers.env")

HZ=$(getconf CLK_TCK)
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/${PID[$1]}/stat"; }
if [[ -z $BTHREADS ]]; then
    BTHREADS=$(redis-cli -h "$fhost" -p "$fport" CLUSTER NODES | awk '$3 ~ /master/ && $3 !~ /fail/ { n++ } END { print n + 0 }')
    ((BTHREADS > 0)) || die "no master found in CLUSTER NODES of $first"
fi
# the 1000 keys GET reads: redis-benchmark's key:__rand_int__ with -r 1000
redis-benchmark --cluster -h "$fhost" -p "$fport" -t set -r 1000 -n 20000 -q >/dev/null 2>&1 ||
    die "cannot write the keys"
if [[ -n $SINGLE ]]; then
    redis-benchmark -h "${SINGLE%:*}" -p "${SINGLE##*:}" -t set -r 1000 -n 20000 -q >/dev/null 2>&1 ||
        die "cannot write the keys on the standalone server $SINGLE"
fi
say "$(nproc) CPUs; load average $(loadavg); slotgated cached pid ${PID[cached]} on ${PORT[cached]}, plain pid ${PID[plain]} on ${PORT[plain]}; redis-benchmark threads: $BTHREADS"

n_for() { if [[ $1 == get1 ]]; then echo "$REQUESTS"; else echo $((REQUESTS * 8)); fi; }
p_for() { if [[ $1 == get1 ]]; then echo 1; else echo 16; fi; }
run_one() { # run_one WORKLOAD SIDE: requests per second
    local w=$1 via=$2 out rps
    local -a target
    case $via in
    direct) target=(--cluster -h "$fhost" -p "$fport") ;;
    redis1) target=(-h "${SINGLE%:*}" -p "${SINGLE##*:}") ;;
    *) target=(-h 127.0.0.1 -p "${PORT[$via]}") ;;
    esac
    out=$(redis-benchmark "${target[@]}" --threads "$BTHREADS" -c "$CLIENTS" -r 1000 --csv \
        -t get -P "$(p_for "$w")" -n "$(n_for "$w")" 2>&1) || die "redis-benchmark $via $w: $out"
    rps=$(printf '%s\n' "$out" | awk -F'"' '/^"[A-Z]/ && $4 + 0 > 0 { print $4; exit }')
    [[ -n $rps ]] || die "no figure from redis-benchmark ($via $w): $out"
    echo "$rps"
}

OUT=$(mktemp /tmp/slotgate-cache-bench-out.XXXXXX)
WORKLOADS=(get1 get16)
SIDES=(direct cached plain floor)
[[ -z $SINGLE ]] || SIDES+=(redis1)
longest=0
for ((pass = 1; pass <= RUNS; pass++)); do
    if ((pass > 1 && SECONDS - T0 + longest > BUDGET)); then
        say "time budget (${BUDGET} s) reached: stopping after $((pass - 1)) passes"
        break
    fi
    t=$SECONDS
    for w in "${WORKLOADS[@]}"; do
        # rotate which side goes first, so drift hurts all alike
        r=$((pass % ${#SIDES[@]}))
        order=("${SIDES[@]:r}" "${SIDES[@]:0:r}")
        for via in "${order[@]}"; do
            [[ -z ${PID[$via]:-} ]] || cpu0=$(cpu_ticks "$via")
            rps=$(run_one "$w" "$via")
            if [[ -n ${PID[$via]:-} ]]; then
                echo "CPU $w $via $(awk -v t=$(($(cpu_ticks "$via") - cpu0)) -v hz="$HZ" \
                    -v n="$(n_for "$w")" 'BEGIN { printf "%.3f", t * 1e6 / hz / n }')" >>"$OUT"
            fi
            echo "RESULT $w $via $rps" >>"$OUT"
            printf 'pass %d  %-5s %-7s %10.0f req/s\n' "$pass" "$w" "$via" "$rps"
        done
    done
    if ((SECONDS - t > longest)); then longest=$((SECONDS - t)); fi
done

median() { awk -v w="$1" -v v="$2" '$1 == "RESULT" && $2 == w && $3 == v { print $4 }' "$OUT" | stats; }
ratio() { # ratio W SIDE [BASE]: the per-pass ratios of SIDE to BASE (direct), their median
    awk -v w="$1" -v s="$2" -v b="${3:-direct}" '$1 == "RESULT" && $2 == w {
            if ($3 == b) d[++nd] = $4; else if ($3 == s) x[++nx] = $4 }
        END { for (i = 1; i <= nd && i <= nx; i++) print x[i] / d[i] }' "$OUT" | stats
}
echo
echo "==== summary: medians over the passes (min..max); ratio = side / direct"
fail=0
for w in "${WORKLOADS[@]}"; do
    read -r dm _ _ < <(median "$w" direct)
    printf '%-5s direct %9.0f\n' "$w" "$dm"
    for via in "${SIDES[@]:1}"; do
        read -r sm smin smax < <(median "$w" "$via")
        read -r rm rmin rmax < <(ratio "$w" "$via")
        read -r cm cmin cmax < <(awk -v w="$w" -v s="$via" '$1 == "CPU" && $2 == w && $3 == s { print $4 }' "$OUT" | stats)
        verdict=
        if [[ $via == cached ]]; then
            verdict=$(awk -v r="$rm" 'BEGIN { print (r >= 1.5 ? "ratio target >= 1.5: met" : "ratio target >= 1.5: MISSED") }')
            [[ $verdict == *met ]] || fail=1
        fi
        cpu=
        [[ $cm == - ]] || cpu=$(printf 'CPU/req %.3f µs (%.3f..%.3f)' "$cm" "$cmin" "$cmax")
        printf '      %-6s %9.0f (%.0f..%.0f)  ratio %.3f (%.3f..%.3f)  %s  %s\n' \
            "$via" "$sm" "$smin" "$smax" "$rm" "$rmin" "$rmax" "$cpu" "$verdict"
    done
done
# the floor: what the best any server could get here, against the target
for w in "${WORKLOADS[@]}"; do
    read -r fm _ _ < <(ratio "$w" floor)
    read -r cf cfmin cfmax < <(ratio "$w" cached floor)
    printf '%-5s floor: responder / direct %.3f; cached slotgated / responder %.3f (%.3f..%.3f)%s\n' \
        "$w" "$fm" "$cf" "$cfmin" "$cfmax" \
        "$(awk -v f="$fm" 'BEGIN { if (f < 1.5) print "  (1.5x direct is out of reach here for any server)" }')"
done
read -r c16 _ _ < <(awk '$1 == "CPU" && $2 == "get16" && $3 == "cached" { print $4 }' "$OUT" | stats)
printf 'cached GET at pipeline 16: %.3f µs of slotgated CPU per request (target < 1): %s\n' "$c16" \
    "$(awk -v c="$c16" 'BEGIN { print (c < 1 ? "met" : "MISSED") }')"
awk -v c="$c16" 'BEGIN { exit !(c < 1) }' || fail=1
redis-cli -p "${PORT[cached]}" INFO cache | tr -d '\r' | grep -E '^cache_(hits|misses|fills|entries|bytes|trackers):' | paste -sd' '
finish "$fail"
