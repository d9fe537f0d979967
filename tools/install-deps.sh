#!/usr/bin/env bash
# Installs what slotgate needs to build and test, from Debian 12's archive.
# Run as root (or it uses sudo). Safe to run again.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libluajit-5.1-dev luajit          # the Lua runtime
  libhiredis-dev                    # RESP reader and command formatter
  libevent-dev libssl-dev           # event loop, sockets, TLS
  lua-cjson lua-cjson-dev           # JSON in Lua, static lib for preloading
  lua-busted                        # Lua specs
  redis-server redis-tools openssl  # real servers for the tests
  python3 curl                      # tools/gen_commands.py and tools/hash_vectors.py; /metrics and /health in the ops spec
  strace                            # the hardening spec watches how the Unix socket is made
  python3-redis                     # redis-py, a client library not ours, drives slotgated (slotgated_client_spec.lua)
  clang libclang-rt-14-dev llvm     # libFuzzer, its sanitizer runtimes, the symbolizer (tests/fuzz/run.sh)
  groff-base man-db                 # the man pages: rendered by slotgated_man_spec.lua, found by tools/package-check.sh
)
# node and npm run node-redis and ioredis, client libraries not ours (tests/node): Debian's
# when the machine has none of its own
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || packages+=(nodejs npm)

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

export DEBIAN_FRONTEND=noninteractive
as_root apt-get update -qq
as_root apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
# node-redis and ioredis at the versions tests/node/package-lock.json pins (from the npm registry)
(cd "$(dirname "$0")/../tests/node" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
# The package may start a system redis on 6379; the tests never use it.
echo "install-deps: ok ($(redis-server --version | cut -d' ' -f3), $(luajit -v | cut -d' ' -f1-2)," \
    "node $(node --version))"
