#!/usr/bin/env bash
# durable.sh — what durable writes cost: one slotgated in front of the test
# harness's cluster, with a policy that makes writes to d:* durable
# (durable = {["d:*"] = 1}: acknowledged once a replica confirmed them, by a
# WAIT per connection and loop turn). redis-benchmark sends SET p:<n> (plain)
# and SET d:<n> (durable) through it, in turns, at pipeline 1 and 16; prints
# each pass, then the medians of throughput and latency and durable's ratio
# to plain. Starts and stops its servers and slotgated.
#
#   bench/durable.sh [-k RUNS] [--requests N] [--clients N] [--port PORT]
#
#   -k RUNS        passes of each pair (default 5)
#   --requests N   requests per redis-benchmark run (default 100000)
#   --clients N    redis-benchmark connections (default 50)
#   --port PORT    slotgated's port (default 18600)
#
# Environment: SG_BUILD_DIR (default build/), SG_BENCH_PORT_BASE (default
# 18000), the harness's SG_TEST_PORT_BASE. See bench/README.md.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "$0")/common.sh"

RUNS=5
REQUESTS=100000
CLIENTS=50
PORT=18600

script_option() {
    case $1 in
    --requests) posint_option "$@"; REQUESTS=$2; TOOK=2 ;;
    --clients) posint_option "$@"; CLIENTS=$2; TOOK=2 ;;
    --port) posint_option "$@"; PORT=$2; TOOK=2 ;;
    *) return 1 ;;
    esac
}
parse_options "$@"
[[ -z $CLUSTER ]] || die "--cluster: durable.sh starts its own servers"
command -v redis-benchmark >/dev/null || die "redis-benchmark not found (Debian: redis-tools)"

start_servers 18000 slotgate-durable
POLICY=$STATE/durable.lua
echo 'return { name = "bench-durable", durable = { ["d:*"] = 1 } }' >"$POLICY"
start_slotgated "$PORT" SLOTGATE_POLICY="$POLICY"
OUT=$(mktemp /tmp/durable-bench.XXXXXX)

# one redis-benchmark run: "rps avg_ms p50_ms p99_ms"
one() {
    local prefix=$1 pipe=$2
    redis-benchmark -h 127.0.0.1 -p "$PORT" -c "$CLIENTS" -n "$REQUESTS" -P "$pipe" -r 100000 \
        --csv SET "$prefix:__rand_int__" 0123456789abcdef 2>/dev/null |
        awk -F, 'NR == 2 { for (i = 1; i <= NF; i++) gsub(/"/, "", $i); print $2, $3, $5, $7 }'
}

for ((k = 1; k <= RUNS; k++)); do
    for pipe in 1 16; do
        # plain and durable take turns going first
        if ((k % 2)); then order=(p d); else order=(d p); fi
        for kind in "${order[@]}"; do
            read -r rps avg p50 p99 < <(one "$kind" "$pipe")
            [[ -n ${rps:-} ]] || die "redis-benchmark failed (slotgated log: $SG_LOG)"
            printf 'pass %d P%-2d %-7s %10s req/s  avg %6s ms  p50 %6s ms  p99 %6s ms\n' \
                "$k" "$pipe" "$([[ $kind == d ]] && echo durable || echo plain)" \
                "$rps" "$avg" "$p50" "$p99"
            echo "RESULT $kind$pipe rps=$rps avg=$avg p50=$p50 p99=$p99" >>"$OUT"
        done
    done
done

echo
say "medians of $RUNS passes (redis-benchmark SET, $CLIENTS connections, $REQUESTS requests)"
for pipe in 1 16; do
    for w in rps avg p50 p99; do
        read -r pm _ < <(field "p$pipe" "$w" | stats)
        read -r dm _ < <(field "d$pipe" "$w" | stats)
        ratio=$(awk -v d="$dm" -v p="$pm" 'BEGIN { printf (p > 0 ? "%.3f" : "-"), d / p }')
        printf 'P%-2d %-4s plain %10s  durable %10s  durable/plain %s\n' "$pipe" "$w" "$pm" "$dm" \
            "$ratio"
    done
done
waits=$(redis-cli -p "$PORT" INFO upstream | sed -n 's/^durable_waits:\([0-9]*\).*/\1/p')
unconf=$(redis-cli -p "$PORT" INFO upstream | sed -n 's/^durable_unconfirmed:\([0-9]*\).*/\1/p')
say "one worker's WAITs sent: ${waits:-?}, durable writes not confirmed: ${unconf:-?}"
status=0
slotgated_verdict || status=1
finish "$status"
