#!/usr/bin/env bash
# Runs slotgate on a local Redis Cluster: starts 3 masters + 3 replicas (the
# test harness, on ports from 16001), prints the settings slotgate reads for
# them, and sends a few commands through the library. The servers keep
# running; stop them with: tests/harness/servers.sh stop /tmp/slotgate-local
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
state=${SLOTGATE_LOCAL_STATE:-/tmp/slotgate-local}
build=${BUILD_DIR:-$root/build}
export SG_TEST_PORT_BASE=${SG_TEST_PORT_BASE:-16000}

for bin in slotgated slotgate-call; do
  [ -x "$build/$bin" ] || { echo "run-local: $build/$bin is missing: build first (cmake --build build)" >&2; exit 1; }
done

"$root/tests/harness/servers.sh" start "$state"
set -a; . "$state/servers.env"; set +a

# The settings, exactly as an operator would give them to Tyk.
export TYK_GW_STORAGE_ADDRS="$SG_TEST_CLUSTER_MASTERS" TYK_GW_STORAGE_ENABLECLUSTER=true
echo
echo "== slotgated --check (settings from TYK_GW_STORAGE_ADDRS and TYK_GW_STORAGE_ENABLECLUSTER)"
"$build/slotgated" --check
echo
echo "== a few commands through libslotgate (slotgate-call)"
run() { echo "> $*"; "$build/slotgate-call" "$@"; }
run SET greeting "hello from slotgate"
run GET greeting
run MSET user:1 ada user:2 grace user:3 linus
run MGET user:1 user:2 user:3 nobody
run DEL user:1 user:2 user:3 greeting
run DBSIZE
echo
echo "The cluster keeps running on $SG_TEST_CLUSTER_MASTERS (and its replicas)."
echo "Try: TYK_GW_STORAGE_ADDRS=$SG_TEST_CLUSTER_MASTERS TYK_GW_STORAGE_ENABLECLUSTER=true $build/slotgate-call INFO server"
echo "Stop it with: $root/tests/harness/servers.sh stop $state"
