#!/usr/bin/env bash
# Runs slotgate on a local Redis Cluster: starts 3 masters + 3 replicas (the
# test harness, on ports from 16001), prints the settings slotgate reads for
# them, sends a few commands through the library, then starts slotgated in
# front of the cluster on 127.0.0.1:16380 with an example policy. Everything
# keeps running; the last lines say how to connect and how to stop it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
state=${SLOTGATE_LOCAL_STATE:-/tmp/slotgate-local}
build=${BUILD_DIR:-$root/build}
export SG_TEST_PORT_BASE=${SG_TEST_PORT_BASE:-16000}

command -v redis-cli >/dev/null || { echo "run-local: redis-cli is missing (tools/install-deps.sh)" >&2; exit 1; }
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

# slotgated in front of it, with an example policy, for any Redis client.
port=${SLOTGATE_LOCAL_PORT:-16380}
pidfile="$state/slotgated.pid"
if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  kill -TERM "$(cat "$pidfile")"
  while kill -0 "$(cat "$pidfile")" 2>/dev/null; do sleep 0.1; done
fi
SLOTGATE_LISTEN="127.0.0.1:$port,unix:$state/slotgated.sock" \
SLOTGATE_POLICY="$root/scripts/deny_dangerous.lua" \
  setsid "$build/slotgated" >"$state/slotgated.log" 2>&1 < /dev/null &
echo $! >"$pidfile"
for _ in $(seq 100); do
  redis-cli -p "$port" PING >/dev/null 2>&1 && break
  sleep 0.1
done
echo
echo "== slotgated on 127.0.0.1:$port (policy scripts/deny_dangerous.lua; log $state/slotgated.log)"
redis-cli -p "$port" SET hello world
redis-cli -p "$port" GET hello
redis-cli -p "$port" FLUSHALL
echo
echo "Connect with any Redis client:  redis-cli -p $port   (or redis-cli -s $state/slotgated.sock)"
echo "Stop everything with:  kill \$(cat $pidfile); $root/tests/harness/servers.sh stop $state"
