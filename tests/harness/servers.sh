#!/usr/bin/env bash
# servers.sh — starts, checks and stops the real Redis servers the tests use.
#
#   servers.sh start  STATE_DIR   start everything, return once all is ready
#   servers.sh stop   STATE_DIR   stop what STATE_DIR records, remove the temp dir
#   servers.sh status STATE_DIR   print each server and whether it is alive
#
# ctest runs `start` as the setup of the "redis" fixture and `stop` as its
# cleanup (tests/CMakeLists.txt). By hand, `start` leaves the servers running in
# the background (daemonized, output in log files) until `stop`.
#
# What `start` runs, all on 127.0.0.1, ports from SG_TEST_PORT_BASE (default
# 21000; the cluster bus of a node is its port + 10000):
#   cluster1..6        a cluster of 3 masters + 3 replicas     base+1 .. base+6
#   standalone         a standalone server, no auth            base+10
#   tls-cluster1..6    the same cluster over TLS only           base+21 .. base+26
#                      (port 0, tls-cluster, tls-replication)
#   tls-standalone     a standalone server, TLS only, with the  base+30
#                      same ACL users as `acl`
#   acl                a standalone server with ACL users       base+40
#   sentinel-master    the master of a Sentinel group            base+50
#   sentinel-replica   its replica                               base+51
#   sentinel1..3       the Sentinels that monitor them           base+55 .. base+57
#   one-node           a cluster of one master owning all 16384  base+60
#                      slots: the reference of the differential spec (what
#                      a client sees of a cluster that needs no gateway)
# TLS servers accept clients with or without a certificate
# (tls-auth-clients optional). Each server has its own directory (config,
# log, data) in one temporary directory made by mktemp -d; nothing is saved to
# disk (save "", appendonly no, and a new replica loads its first full sync
# from the socket: repl-diskless-load on-empty-db). cluster-node-timeout is 2000 ms and DEBUG is
# enabled, for failover and timeout tests.
#
# The Sentinel group: sentinel-master and sentinel-replica need a password
# (requirepass, and masterauth to replicate: SG_TEST_SENTINEL_DATA_PASS); the
# three Sentinels (redis-server sentinel.conf --sentinel) monitor the master as
# SG_TEST_SENTINEL_MASTER_NAME with quorum 2, down-after-milliseconds 1000,
# failover-timeout 5000, parallel-syncs 1, auth-pass for the data nodes, and
# need a password themselves (requirepass SG_TEST_SENTINEL_PASS; they use it
# with each other too). Each Sentinel's sentinel.conf is in its directory in
# the temp dir, where it rewrites it. Ready means: every Sentinel names the
# master for the name, sees it up, and knows the replica (up, link ok) and the
# two other Sentinels; and the replica's master_link_status is up. A test may
# fail the group over (SENTINEL FAILOVER); the roles then stay swapped until
# the next start, and SG_TEST_SENTINEL_DATA keeps the roles as started.
#
# STATE_DIR holds: servers.env (below), servers.list (name kind port dir),
# pids (name pid), tmpdir (the temporary directory's path).
#
# STATE_DIR/servers.env, one NAME=value a line (tests read it through
# test_server_var() in tests/c/test.h):
#   SG_TEST_CLUSTER             all 6 nodes, 127.0.0.1:port,... (ports in order)
#   SG_TEST_CLUSTER_MASTERS     the 3 masters, as the cluster was created
#   SG_TEST_CLUSTER_REPLICAS    the 3 replicas, in the order of their masters
#   SG_TEST_STANDALONE          127.0.0.1:port of the standalone server
#   SG_TEST_TLS_CLUSTER         all 6 TLS nodes (ports are TLS ports)
#   SG_TEST_TLS_CLUSTER_MASTERS, SG_TEST_TLS_CLUSTER_REPLICAS   likewise
#   SG_TEST_TLS_STANDALONE      127.0.0.1:port of the TLS standalone server
#                               (needs AUTH: the SG_TEST_ACL_* users below)
#   SG_TEST_TLS_CA              the CA certificate that signed every cert (PEM)
#   SG_TEST_TLS_CERT            a client certificate (PEM) the servers accept
#   SG_TEST_TLS_KEY             its private key (PEM, unencrypted)
#   SG_TEST_TLS_SERVER_NAME     a name in the servers' certificate (localhost;
#                               127.0.0.1 is in it too, as an IP SAN)
#   SG_TEST_ACL                 127.0.0.1:port of the ACL server
#   SG_TEST_ACL_USER            a user with every right (~* &* +@all)
#   SG_TEST_ACL_PASS            its password
#   SG_TEST_ACL_DEFAULT_PASS    the password of the `default` user
#   SG_TEST_ACL_RO_USER         a user allowed only +@read ~* (NOPERM on writes,
#                               and on PING, which is not in @read)
#   SG_TEST_ACL_RO_PASS         its password
#   SG_TEST_SENTINELS           the 3 Sentinels, 127.0.0.1:port,... (need AUTH
#                               with SG_TEST_SENTINEL_PASS)
#   SG_TEST_SENTINEL_MASTER_NAME  the name they monitor the master as (sgmaster)
#   SG_TEST_SENTINEL_PASS       the Sentinels' password (requirepass)
#   SG_TEST_SENTINEL_DATA       master,replica of the group, as started
#   SG_TEST_SENTINEL_DATA_PASS  the password of both (requirepass, masterauth)
#   SG_TEST_ONE_NODE            127.0.0.1:port of the one-node cluster
#   SG_TEST_TMP                 the temporary directory (logs: NAME/redis.log)
#   SG_TEST_REDIS_VERSION       redis-server's version, e.g. 7.0.15
#   SG_TEST_PORT_BASE           the base port used
#
# In a shell: `set -a; . STATE_DIR/servers.env; set +a` exports them all.
#
# Environment: SG_TEST_PORT_BASE (default 21000), SG_TEST_READY_TIMEOUT
# (seconds to wait for readiness, default 60), REDIS_SERVER and REDIS_CLI
# (the programs, default from PATH), TMPDIR (where the temp dir is made).
# Two runs at once need two bases. The default ports (21001-21060) and the
# bus ports (+10000, cluster nodes only: 31001-31060) lie below Linux's
# ephemeral range (32768-60999), so no client socket can be holding one; a
# base in that range fails now and then, naming the port.
set -euo pipefail

PROG=${0##*/}
BASE=${SG_TEST_PORT_BASE:-21000}
READY_TIMEOUT=${SG_TEST_READY_TIMEOUT:-60}
REDIS_SERVER=${REDIS_SERVER:-redis-server}
REDIS_CLI=${REDIS_CLI:-redis-cli}

ACL_DEFAULT_PASS=sgdefaultpass
ACL_USER=sguser
ACL_PASS=sgpass
ACL_RO_USER=sgreadonly
ACL_RO_PASS=sgropass
SENT_MASTER_NAME=sgmaster
SENT_PASS=sgsentinelpass
SENT_DATA_PASS=sgdatapass

say() { printf '%s: %s\n' "$PROG" "$*"; }
warn() { printf '%s: %s\n' "$PROG" "$*" >&2; }
usage() {
    echo "usage: $PROG start|stop|status STATE_DIR" >&2
    exit 2
}

# Microseconds since the epoch, for deadlines.
now_us() { local t=${EPOCHREALTIME/./}; echo $((10#$t)); }

# ---- the server table --------------------------------------------------------

NAMES=()
declare -A KIND PORT DIR
add_server() { NAMES+=("$1"); KIND[$1]=$2; PORT[$1]=$3; }

define_servers() {
    local i
    if ! [[ $BASE =~ ^[0-9]+$ ]] || ((BASE < 1024 || BASE + 60 + 10000 > 65535)); then
        warn "SG_TEST_PORT_BASE=$BASE: need an integer in 1024..55475"
        exit 2
    fi
    for i in 1 2 3 4 5 6; do add_server "cluster$i" cluster $((BASE + i)); done
    add_server standalone standalone $((BASE + 10))
    for i in 1 2 3 4 5 6; do add_server "tls-cluster$i" tlscluster $((BASE + 20 + i)); done
    add_server tls-standalone tlsstandalone $((BASE + 30))
    add_server acl acl $((BASE + 40))
    add_server sentinel-master smaster $((BASE + 50))
    add_server sentinel-replica sreplica $((BASE + 51))
    for i in 1 2 3; do add_server "sentinel$i" sentinel $((BASE + 54 + i)); done
    add_server one-node onenode $((BASE + 60))
}

names_of_kind() {
    local n
    for n in "${NAMES[@]}"; do [[ ${KIND[$n]} == "$1" ]] && printf '%s\n' "$n"; done
    return 0
}
# The first of them. (Not names_of_kind | head -n1: head may exit before
# the loop is done writing, and under pipefail that SIGPIPE fails the start.)
first_of_kind() {
    local n
    for n in "${NAMES[@]}"; do
        if [[ ${KIND[$n]} == "$1" ]]; then
            printf '%s\n' "$n"
            return 0
        fi
    done
    return 0
}
is_tls() { [[ ${KIND[$1]} == tls* ]]; }
has_acl() { [[ ${KIND[$1]} == acl || ${KIND[$1]} == tlsstandalone ]]; }
is_cluster() { [[ ${KIND[$1]} == cluster || ${KIND[$1]} == tlscluster || ${KIND[$1]} == onenode ]]; }
is_sentinel() { [[ ${KIND[$1]} == sentinel ]]; }
is_sentinel_data() { [[ ${KIND[$1]} == smaster || ${KIND[$1]} == sreplica ]]; }
addr() { echo "127.0.0.1:${PORT[$1]}"; }

# redis-cli against server NAME, with its TLS and AUTH options; bounded.
cli() {
    local name=$1
    shift
    local -a o=(-h 127.0.0.1 -p "${PORT[$name]}")
    if is_tls "$name"; then o+=(--tls --cacert "$TMP/tls/ca.crt"); fi
    if has_acl "$name"; then o+=(--user "$ACL_USER" --pass "$ACL_PASS" --no-auth-warning); fi
    if is_sentinel "$name"; then o+=(--pass "$SENT_PASS" --no-auth-warning); fi
    if is_sentinel_data "$name"; then o+=(--pass "$SENT_DATA_PASS" --no-auth-warning); fi
    timeout 10 "$REDIS_CLI" "${o[@]}" "$@"
}

# The last lines of server NAME's logs, indented, on stderr.
log_tail() {
    local d=${DIR[$1]:-} f
    [[ -n $d ]] || return 0
    for f in "$d/redis.log" "$d/stdout.log"; do
        if [[ -s $f ]]; then
            warn "---- last lines of $f ----"
            tail -n 15 "$f" | sed 's/^/    /' >&2
        fi
    done
}

# ---- stopping ----------------------------------------------------------------
#
# These functions also run from the EXIT trap of `start`, so they use explicit
# return codes: a bare `return` in a trap handler returns the status the trap
# interrupted, not that of the last command.

# Alive and not a zombie (zombies wait for init to reap them).
pid_alive() {
    local st
    if [[ ! -r /proc/$1/stat ]]; then
        if kill -0 "$1" 2>/dev/null; then return 0; else return 1; fi
    fi
    st=$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null) || return 1
    [[ -n $st && $st != Z && $st != X ]]
}

# Is PID still the redis-server we started in DIR? (guards against pid reuse)
pid_is_ours() {
    local pid=$1 dir=$2 cwd comm
    pid_alive "$pid" || return 1
    if cwd=$(readlink -f "/proc/$pid/cwd" 2>/dev/null) && [[ -n $cwd ]]; then
        if [[ $cwd == "$(readlink -f "$dir" 2>/dev/null || echo "$dir")" ]]; then
            return 0
        fi
        return 1
    fi
    comm=$(ps -o comm= -p "$pid" 2>/dev/null) || return 1
    [[ $comm == redis-server* || $comm == redis-check* ]]
}

# The pid of server NAME of STATE: recorded, else from its pidfile.
recorded_pid() {
    local state=$1 name=$2 dir=$3 n p
    if [[ -f $state/pids ]]; then
        while read -r n p; do
            [[ $n == "$name" ]] && { echo "$p"; return 0; }
        done <"$state/pids"
    fi
    [[ -s $dir/redis.pid ]] && head -n1 "$dir/redis.pid" && return 0
    return 0
}

# Stops what STATE records; QUIET=1 says nothing when there is nothing.
do_stop() {
    local state=$1 quiet=${2:-0} name kind port dir pid tmp deadline
    local -a live=() live_names=() gone=()
    if [[ ! -f $state/servers.list && ! -f $state/tmpdir ]]; then
        ((quiet)) || say "nothing recorded in $state: nothing to stop"
        rm -f "$state/servers.env" "$state/pids"
        return 0
    fi
    rm -f "$state/servers.env"
    if [[ -f $state/servers.list ]]; then
        while read -r name kind port dir; do
            pid=$(recorded_pid "$state" "$name" "$dir")
            if [[ -n $pid ]] && pid_is_ours "$pid" "$dir"; then
                kill -TERM "$pid" 2>/dev/null || true
                live+=("$pid")
                live_names+=("$name")
            else
                gone+=("$name")
            fi
        done <"$state/servers.list"
    fi
    ((${#gone[@]} == 0)) || say "already gone: ${gone[*]}"
    # SIGTERM, then up to 10 s, then SIGKILL and up to 5 s more.
    local -a still=() still_names=()
    local i killed=0
    deadline=$(($(now_us) + 10000000))
    while :; do
        still=()
        still_names=()
        for i in "${!live[@]}"; do
            if pid_alive "${live[$i]}"; then
                still+=("${live[$i]}")
                still_names+=("${live_names[$i]}")
            fi
        done
        ((${#still[@]} == 0)) && break
        if (($(now_us) > deadline)); then
            if ((killed)); then
                warn "still alive after SIGKILL: ${still_names[*]} (pids ${still[*]})"
                break
            fi
            warn "no exit 10 s after SIGTERM, sending SIGKILL: ${still_names[*]}"
            kill -KILL "${still[@]}" 2>/dev/null || true
            killed=1
            deadline=$(($(now_us) + 5000000))
        fi
        sleep 0.05
    done
    ((${#live[@]} == 0)) || say "stopped ${#live[@]} server(s): ${live_names[*]}"
    if [[ -f $state/tmpdir ]]; then
        tmp=$(<"$state/tmpdir")
        # Remove only a directory this script made.
        if [[ -d $tmp && ${tmp##*/} == slotgate-test.* ]]; then
            rm -rf -- "$tmp"
        fi
    fi
    rm -f "$state/servers.list" "$state/pids" "$state/tmpdir"
    return 0
}

cmd_stop() {
    local state=$1
    [[ -d $state ]] || { say "no state dir $state: nothing to stop"; return 0; }
    do_stop "$state" 0
}

# ---- status ------------------------------------------------------------------

cmd_status() {
    local state=$1 name kind port dir pid bad=0
    if [[ ! -f $state/servers.list ]]; then
        say "nothing recorded in $state"
        return 1
    fi
    while read -r name kind port dir; do
        pid=$(recorded_pid "$state" "$name" "$dir")
        if [[ -n $pid ]] && pid_is_ours "$pid" "$dir"; then
            printf '%-16s 127.0.0.1:%-6s pid %-8s alive\n' "$name" "$port" "$pid"
        else
            printf '%-16s 127.0.0.1:%-6s pid %-8s DEAD\n' "$name" "$port" "${pid:--}"
            bad=1
        fi
    done <"$state/servers.list"
    [[ -f $state/tmpdir ]] && echo "temp dir: $(<"$state/tmpdir")"
    return $bad
}

# ---- starting ----------------------------------------------------------------

STATE=
TMP=
START_OK=0
BG_PIDS=()
declare -A LAUNCHER=() LAUNCH_RC=()
T0=0
phase() { say "[$((($(now_us) - T0) / 1000)) ms] $*"; }
CLUSTER_MASTERS=()
CLUSTER_REPLICAS=()

# Prints what failed (and the logs of server NAME, if given), then exits; the
# EXIT trap stops what was started.
fail() {
    local name=${2:-}
    warn "FAILED: $1"
    [[ -z $name ]] || log_tail "$name"
    exit 1
}

on_start_exit() {
    local rc=$?
    local pid
    ((START_OK)) && return 0
    warn "start failed (status $rc): stopping what was started"
    for pid in "${BG_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    settle_launches
    do_stop "$STATE" 1 >&2 || true
    exit $((rc == 0 ? 1 : rc))
}

# Every port we would bind (cluster bus ports too) must be free: no socket,
# listening or connected, has it as its local port.
check_ports_free() {
    local -a ports=() listening=()
    local n p
    for n in "${NAMES[@]}"; do
        ports+=("${PORT[$n]}")
        if is_cluster "$n"; then ports+=($((PORT[$n] + 10000))); fi
    done
    if command -v ss >/dev/null 2>&1 &&
        mapfile -t listening < <(ss -Htan exclude time-wait 2>/dev/null |
            awk '{n = split($4, a, ":"); print a[n]}'); then
        local -A busy=()
        for p in "${listening[@]}"; do busy[$p]=1; done
        for p in "${ports[@]}"; do
            [[ -z ${busy[$p]:-} ]] || fail "port $p is already in use (another run? stop it with '$PROG stop DIR', or set SG_TEST_PORT_BASE)"
        done
    else
        for p in "${ports[@]}"; do
            if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
                fail "port $p is already in use (another run? stop it with '$PROG stop DIR', or set SG_TEST_PORT_BASE)"
            fi
        done
    fi
}

# A CA, a server certificate (127.0.0.1 and localhost, server and client use:
# the servers are clients of each other for tls-cluster and tls-replication)
# and a client certificate, all valid for a few days. EC P-256 keys: quick to
# make, and every OpenSSL client and server takes them.
make_certs() {
    local d=$TMP/tls
    local -a key=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256)
    mkdir -p "$d"
    (
        cd "$d"
        openssl req -x509 -new "${key[@]}" -days 7 -keyout ca.key -out ca.crt \
            -subj "/O=slotgate tests/CN=slotgate test CA" \
            -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign"
        printf '%s\n' "basicConstraints=CA:FALSE" \
            "keyUsage=critical,digitalSignature" \
            "extendedKeyUsage=serverAuth,clientAuth" \
            "subjectAltName=IP:127.0.0.1,DNS:localhost" >server.ext
        printf '%s\n' "basicConstraints=CA:FALSE" \
            "keyUsage=critical,digitalSignature" \
            "extendedKeyUsage=clientAuth" >client.ext
        openssl req -new "${key[@]}" -keyout server.key -out server.csr \
            -subj "/O=slotgate tests/CN=localhost"
        openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -set_serial 2 \
            -days 7 -sha256 -extfile server.ext -out server.crt
        openssl req -new "${key[@]}" -keyout client.key -out client.csr \
            -subj "/O=slotgate tests/CN=$ACL_USER"
        openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -set_serial 3 \
            -days 7 -sha256 -extfile client.ext -out client.crt
        openssl verify -CAfile ca.crt server.crt client.crt
    ) >"$d/openssl.log" 2>&1 || {
        warn "---- $d/openssl.log ----"
        tail -n 20 "$d/openssl.log" | sed 's/^/    /' >&2
        fail "could not make the TLS certificates with openssl"
    }
}

# A Sentinel's configuration. It must stay writable: a Sentinel rewrites its
# file with what it learns (its id, the other Sentinels, the replicas, a new
# master after a failover). known-replica saves waiting for the Sentinel's
# next INFO to the master (every 10 s) when the replica links up after the
# first one.
write_sentinel_conf() {
    local name=$1 d=${DIR[$1]} port=${PORT[$1]} m=sentinel-master
    {
        echo "# $name, written by $PROG; the Sentinel rewrites this file"
        echo "bind 127.0.0.1"
        echo "protected-mode no"
        echo "port $port"
        echo "daemonize yes"
        echo "pidfile $d/redis.pid"
        echo "logfile $d/redis.log"
        echo "loglevel notice"
        echo "dir $d"
        echo "requirepass $SENT_PASS"
        echo "sentinel monitor $SENT_MASTER_NAME 127.0.0.1 ${PORT[$m]} 2"
        echo "sentinel auth-pass $SENT_MASTER_NAME $SENT_DATA_PASS"
        echo "sentinel down-after-milliseconds $SENT_MASTER_NAME 1000"
        echo "sentinel failover-timeout $SENT_MASTER_NAME 5000"
        echo "sentinel parallel-syncs $SENT_MASTER_NAME 1"
        echo "sentinel known-replica $SENT_MASTER_NAME 127.0.0.1 ${PORT[sentinel-replica]}"
    } >"$d/sentinel.conf"
}

write_conf() {
    local name=$1 d=${DIR[$1]} port=${PORT[$1]}
    if is_sentinel "$name"; then
        write_sentinel_conf "$name"
        return 0
    fi
    {
        echo "# $name, written by $PROG"
        echo "bind 127.0.0.1"
        echo "protected-mode no"
        if is_tls "$name"; then
            echo "port 0"
            echo "tls-port $port"
            echo "tls-cert-file $TMP/tls/server.crt"
            echo "tls-key-file $TMP/tls/server.key"
            echo "tls-ca-cert-file $TMP/tls/ca.crt"
            echo "tls-auth-clients optional"
            echo "tls-replication yes"
            if is_cluster "$name"; then echo "tls-cluster yes"; fi
        else
            echo "port $port"
        fi
        echo "daemonize yes"
        echo "pidfile $d/redis.pid"
        echo "logfile $d/redis.log"
        echo "loglevel notice"
        echo "dir $d"
        echo 'save ""'
        echo "appendonly no"
        echo "enable-debug-command yes"
        echo "shutdown-timeout 1"
        echo "repl-diskless-sync-delay 0"
        # a replica with nothing yet loads a full sync from the socket, so no
        # dump.rdb is left for a restart to come back with stale data
        echo "repl-diskless-load on-empty-db"
        if is_cluster "$name"; then
            echo "cluster-enabled yes"
            echo "cluster-config-file $d/nodes.conf"
            echo "cluster-node-timeout 2000"
            echo "cluster-require-full-coverage yes"
        fi
        if has_acl "$name"; then
            echo "user default reset on >$ACL_DEFAULT_PASS ~* &* +@all"
            echo "user $ACL_USER reset on >$ACL_PASS ~* &* +@all"
            echo "user $ACL_RO_USER reset on >$ACL_RO_PASS ~* -@all +@read"
        fi
        if is_sentinel_data "$name"; then
            # both: either may be the master after a failover
            echo "requirepass $SENT_DATA_PASS"
            echo "masterauth $SENT_DATA_PASS"
        fi
        if [[ ${KIND[$name]} == sreplica ]]; then
            echo "replicaof 127.0.0.1 ${PORT[sentinel-master]}"
        fi
    } >"$d/redis.conf"
}

# Starts server NAME in the background: its directory and config, its line
# in servers.list (before it runs, so that stop finds it), then redis-server,
# whose pid goes to LAUNCHER. Every server is launched before any is waited
# for (wait_launched): they start at the same time.
launch() {
    local name=$1 d
    d=$TMP/$name
    DIR[$name]=$d
    mkdir -p "$d"
    write_conf "$name"
    printf '%s %s %s %s\n' "$name" "${KIND[$name]}" "${PORT[$name]}" "$d" >>"$STATE/servers.list"
    # daemonize yes: redis forks, calls setsid and points its stdio at
    # /dev/null; until then its output goes to a file, never to our caller.
    if is_sentinel "$name"; then
        "$REDIS_SERVER" "$d/sentinel.conf" --sentinel </dev/null >"$d/stdout.log" 2>&1 &
    else
        "$REDIS_SERVER" "$d/redis.conf" </dev/null >"$d/stdout.log" 2>&1 &
    fi
    LAUNCHER[$name]=$!
}

# Waits for every launch: redis-server returns once it has daemonized, or
# fails at once on a bad config.
wait_launched() {
    local n rc
    for n in "${NAMES[@]}"; do
        [[ -n ${LAUNCHER[$n]:-} && -z ${LAUNCH_RC[$n]:-} ]] || continue
        rc=0
        wait "${LAUNCHER[$n]}" || rc=$?
        LAUNCH_RC[$n]=$rc
        ((rc == 0)) || fail "redis-server $n ($(addr "$n")) did not start (status $rc)" "$n"
    done
}

# On a failed start: lets the launches still running end (a moment), and
# gives each server they started up to 2 s to write its pidfile, so that
# stop finds it.
settle_launches() {
    local n rc deadline
    deadline=$(($(now_us) + 2000000))
    for n in "${!LAUNCHER[@]}"; do
        rc=${LAUNCH_RC[$n]:-}
        if [[ -z $rc ]]; then
            rc=0
            wait "${LAUNCHER[$n]}" 2>/dev/null || rc=$?
            LAUNCH_RC[$n]=$rc
        fi
        ((rc == 0)) || continue
        while [[ ! -s ${DIR[$n]}/redis.pid ]] && (($(now_us) < deadline)); do sleep 0.02; done
    done
    return 0
}

# Waits for every pidfile, records the pids (in PID_OF too), then waits for
# every PING but the Sentinel group's: wait_sentinels_ready, in the
# background, waits for more than that.
declare -A PID_OF=()
wait_started() {
    local deadline n pid out
    deadline=$(($(now_us) + 15000000))
    for n in "${NAMES[@]}"; do
        while [[ ! -s ${DIR[$n]}/redis.pid ]]; do
            (($(now_us) < deadline)) || fail "redis-server $n ($(addr "$n")) wrote no pidfile" "$n"
            sleep 0.02
        done
        read -r pid <"${DIR[$n]}/redis.pid"
        echo "$n $pid" >>"$STATE/pids"
        PID_OF[$n]=$pid
    done
    for n in "${NAMES[@]}"; do
        if is_sentinel "$n" || is_sentinel_data "$n"; then continue; fi
        while :; do
            pid_alive "${PID_OF[$n]}" || fail "redis-server $n ($(addr "$n")) exited" "$n"
            out=$(cli "$n" PING 2>&1) || true
            [[ $out == PONG* ]] && break
            (($(now_us) < deadline)) || fail "redis-server $n ($(addr "$n")) does not answer PING: $out" "$n"
            sleep 0.02
        done
    done
}

# redis-cli --cluster create for KIND (cluster or tlscluster), output to a log.
# Run it in the background (`create_cluster KIND &`): it execs `timeout`, so
# the job's pid is timeout's, which passes a SIGTERM on to redis-cli.
create_cluster() {
    local kind=$1 n
    local -a nodes=() o=()
    for n in $(names_of_kind "$kind"); do nodes+=("$(addr "$n")"); done
    [[ $kind == tlscluster ]] && o=(--tls --cacert "$TMP/tls/ca.crt")
    exec timeout 60 "$REDIS_CLI" "${o[@]}" --cluster create "${nodes[@]}" \
        --cluster-replicas 1 --cluster-yes </dev/null >"$TMP/create-$kind.log" 2>&1
}

# Sets PROBLEM to what keeps cluster node NAME from being ready, "" if nothing.
# Ready: cluster_state:ok, all 16384 slots assigned and ok, 6 known nodes,
# 3 masters and 3 replicas in its CLUSTER NODES with no fail/handshake flag and
# every link connected, and as a replica, master_link_status:up.
PROBLEM=
cluster_node_problem() {
    local name=$1 out line id a flags master rest
    local -A f=()
    local masters=0 replicas=0 total=0
    out=$(printf 'CLUSTER INFO\nINFO replication\nCLUSTER NODES\n' | cli "$name" 2>&1) || true
    out=${out//$'\r'/}
    if [[ $out != *cluster_state:* ]]; then
        PROBLEM="no answer to CLUSTER INFO: ${out:0:200}"
        return 0
    fi
    while IFS= read -r line; do
        if [[ $line =~ ^[0-9a-f]{40}\  ]]; then
            read -r id a flags master rest <<<"$line"
            total=$((total + 1))
            [[ ,$flags, == *,master,* ]] && masters=$((masters + 1))
            [[ ,$flags, == *,slave,* ]] && replicas=$((replicas + 1))
            if [[ ,$flags, =~ ,(fail|fail\?|handshake|noaddr), ]]; then
                PROBLEM="CLUSTER NODES shows $a as $flags"
                return 0
            fi
            if [[ $rest != *connected* || $rest == *disconnected* ]]; then
                PROBLEM="CLUSTER NODES shows the link to $a not connected"
                return 0
            fi
        elif [[ $line == *:* ]]; then
            f[${line%%:*}]=${line#*:}
        fi
    done <<<"$out"
    PROBLEM=
    if [[ ${f[cluster_state]:-} != ok ]]; then
        PROBLEM="cluster_state:${f[cluster_state]:-?}"
    elif [[ ${f[cluster_slots_assigned]:-} != 16384 ]]; then
        PROBLEM="cluster_slots_assigned:${f[cluster_slots_assigned]:-?}"
    elif [[ ${f[cluster_slots_ok]:-} != 16384 ]]; then
        PROBLEM="cluster_slots_ok:${f[cluster_slots_ok]:-?}"
    elif [[ ${f[cluster_known_nodes]:-} != 6 ]]; then
        PROBLEM="cluster_known_nodes:${f[cluster_known_nodes]:-?}"
    elif ((total != 6 || masters != 3 || replicas != 3)); then
        PROBLEM="CLUSTER NODES has $total nodes, $masters masters, $replicas replicas"
    elif [[ ${f[role]:-} == slave && ${f[master_link_status]:-} != up ]]; then
        PROBLEM="replica with master_link_status:${f[master_link_status]:-?}"
    fi
}

# The one-node cluster: its node takes every slot (no redis-cli --cluster
# create: it refuses fewer than 3 masters).
create_one_node() {
    local out
    out=$(cli one-node CLUSTER ADDSLOTSRANGE 0 16383 2>&1) || true
    [[ $out == OK* ]] || fail "one-node ($(addr one-node)): CLUSTER ADDSLOTSRANGE: $out" one-node
}

# Waits until the one-node cluster says cluster_state:ok (bounded).
wait_one_node_ready() {
    local deadline out
    deadline=$(($(now_us) + READY_TIMEOUT * 1000000))
    while :; do
        out=$(cli one-node CLUSTER INFO 2>&1) || true
        [[ $out == *cluster_state:ok* ]] && return 0
        if (($(now_us) > deadline)); then
            fail "one-node ($(addr one-node)) not ready after ${READY_TIMEOUT}s: ${out:0:200}" one-node
        fi
        sleep 0.05
    done
}

# Waits until every node of both clusters is ready (bounded).
wait_clusters_ready() {
    local deadline n pending
    deadline=$(($(now_us) + READY_TIMEOUT * 1000000))
    while :; do
        pending=
        for n in $(names_of_kind cluster) $(names_of_kind tlscluster); do
            cluster_node_problem "$n"
            if [[ -n $PROBLEM ]]; then pending=$n; break; fi
        done
        [[ -z $pending ]] && return 0
        if (($(now_us) > deadline)); then
            fail "cluster node $pending ($(addr "$pending")) not ready after ${READY_TIMEOUT}s: $PROBLEM" "$pending"
        fi
        sleep 0.1
    done
}

# Sets PROBLEM to what keeps the Sentinel group from being ready, "" if
# nothing: the replica's link to the master is up, and every Sentinel names
# the master, sees it with no other flag than master, knows the two other
# Sentinels and exactly one replica, the right one, up and linked. One
# redis-cli per server: the answers to the three SENTINEL commands come as
# lines, the address (2 lines) then field/value pairs, each entry's first
# field "name".
sentinel_group_problem() {
    local m=sentinel-master r=sentinel-replica n out want i entries
    local -a l=()
    local -A f=() rf=()
    PROBLEM=
    want="127.0.0.1 ${PORT[$m]}"
    out=$(cli "$r" INFO replication 2>&1) || true
    out=${out//$'\r'/}
    if [[ $out != *role:* ]]; then
        PROBLEM="$r ($(addr "$r")): no answer to INFO: ${out:0:200}"
        return 0
    elif [[ $out != *$'\n'master_link_status:up* ]]; then
        PROBLEM="$r ($(addr "$r")): replication link not up: $(grep -E '^(role|master_link_status):' <<<"$out" | tr '\n' ' ')"
        return 0
    fi
    for n in $(names_of_kind sentinel); do
        mapfile -t l < <(printf '%s\n' "SENTINEL get-master-addr-by-name $SENT_MASTER_NAME" \
            "SENTINEL master $SENT_MASTER_NAME" "SENTINEL replicas $SENT_MASTER_NAME" |
            cli "$n" 2>&1 | tr -d '\r')
        if [[ "${l[0]:-} ${l[1]:-}" != "$want" ]]; then
            PROBLEM="$n ($(addr "$n")) gives master \"${l[0]:-} ${l[1]:-}\" for $SENT_MASTER_NAME, not $want"
            return 0
        fi
        f=()
        rf=()
        entries=0
        for ((i = 2; i + 1 < ${#l[@]}; i += 2)); do
            [[ ${l[$i]} == name ]] && entries=$((entries + 1))
            if ((entries == 1)); then f[${l[$i]}]=${l[$((i + 1))]}; else rf[${l[$i]}]=${l[$((i + 1))]}; fi
        done
        if [[ ${f[flags]:-} != master ]]; then
            PROBLEM="$n ($(addr "$n")) sees the master with flags ${f[flags]:-?}"
        elif [[ ${f[num-other-sentinels]:-} != 2 ]]; then
            PROBLEM="$n ($(addr "$n")) knows ${f[num-other-sentinels]:-?} other Sentinels, not 2"
        elif [[ ${f[num-slaves]:-} != 1 || $entries != 2 ]]; then
            PROBLEM="$n ($(addr "$n")) knows ${f[num-slaves]:-?} replicas, not 1"
        elif [[ ${rf[ip]:-}:${rf[port]:-} != "$(addr "$r")" || ${rf[flags]:-} != slave ||
            ${rf[master-link-status]:-} != ok ]]; then
            PROBLEM="$n ($(addr "$n")) sees replica ${rf[ip]:-?}:${rf[port]:-?} with flags ${rf[flags]:-?}, master link ${rf[master-link-status]:-?}"
        fi
        [[ -z $PROBLEM ]] || return 0
    done
    return 0
}

# Waits until the Sentinel group is ready (bounded). Runs in the background
# (`wait_sentinels_ready >LOG 2>&1 &`) while the clusters are made: it says
# when the group is ready, or why not (and exits 1), into LOG.
wait_sentinels_ready() {
    local deadline n
    local -a group=()
    for n in "${NAMES[@]}"; do
        if is_sentinel "$n" || is_sentinel_data "$n"; then group+=("$n"); fi
    done
    deadline=$(($(now_us) + READY_TIMEOUT * 1000000))
    while :; do
        for n in "${group[@]}"; do
            pid_alive "${PID_OF[$n]}" || fail "redis-server $n ($(addr "$n")) exited" "$n"
        done
        sentinel_group_problem
        if [[ -z $PROBLEM ]]; then
            phase "Sentinel group ready"
            return 0
        fi
        if (($(now_us) > deadline)); then
            fail "Sentinel group not ready after ${READY_TIMEOUT}s: $PROBLEM" "${PROBLEM%% *}"
        fi
        sleep 0.1
    done
}

# Fills CLUSTER_MASTERS and CLUSTER_REPLICAS (addresses) for cluster KIND: the
# masters by port, each replica after its master's order.
cluster_roles() {
    local kind=$1 first out line id a flags master rest
    local -A addr_of=() replica_of=()
    local -a mids=()
    first=$(first_of_kind "$kind")
    out=$(cli "$first" CLUSTER NODES) || fail "CLUSTER NODES on $first failed" "$first"
    out=${out//$'\r'/}
    while IFS= read -r line; do
        [[ $line =~ ^[0-9a-f]{40}\  ]] || continue
        read -r id a flags master rest <<<"$line"
        a=${a%%@*}
        addr_of[$id]=$a
        if [[ ,$flags, == *,master,* ]]; then
            mids+=("${a##*:} $id")
        else
            replica_of[$master]=$a
        fi
    done <<<"$out"
    CLUSTER_MASTERS=()
    CLUSTER_REPLICAS=()
    while read -r _ id; do
        CLUSTER_MASTERS+=("${addr_of[$id]}")
        CLUSTER_REPLICAS+=("${replica_of[$id]:-}")
    done < <(printf '%s\n' "${mids[@]}" | sort -n)
}

join_by_comma() { local IFS=,; echo "$*"; }

write_env() {
    local envf=$STATE/servers.env version n
    local -a all=() tall=() sent=()
    version=$("$REDIS_SERVER" --version | sed -n 's/.* v=\([^ ]*\).*/\1/p')
    for n in $(names_of_kind cluster); do all+=("$(addr "$n")"); done
    for n in $(names_of_kind tlscluster); do tall+=("$(addr "$n")"); done
    {
        echo "# written by $PROG start on $(date '+%F %T'); see the top of $PROG"
        echo "SG_TEST_CLUSTER=$(join_by_comma "${all[@]}")"
        cluster_roles cluster
        echo "SG_TEST_CLUSTER_MASTERS=$(join_by_comma "${CLUSTER_MASTERS[@]}")"
        echo "SG_TEST_CLUSTER_REPLICAS=$(join_by_comma "${CLUSTER_REPLICAS[@]}")"
        echo "SG_TEST_STANDALONE=$(addr standalone)"
        echo "SG_TEST_TLS_CLUSTER=$(join_by_comma "${tall[@]}")"
        cluster_roles tlscluster
        echo "SG_TEST_TLS_CLUSTER_MASTERS=$(join_by_comma "${CLUSTER_MASTERS[@]}")"
        echo "SG_TEST_TLS_CLUSTER_REPLICAS=$(join_by_comma "${CLUSTER_REPLICAS[@]}")"
        echo "SG_TEST_TLS_STANDALONE=$(addr tls-standalone)"
        echo "SG_TEST_TLS_CA=$TMP/tls/ca.crt"
        echo "SG_TEST_TLS_CERT=$TMP/tls/client.crt"
        echo "SG_TEST_TLS_KEY=$TMP/tls/client.key"
        echo "SG_TEST_TLS_SERVER_NAME=localhost"
        echo "SG_TEST_ACL=$(addr acl)"
        echo "SG_TEST_ACL_USER=$ACL_USER"
        echo "SG_TEST_ACL_PASS=$ACL_PASS"
        echo "SG_TEST_ACL_DEFAULT_PASS=$ACL_DEFAULT_PASS"
        echo "SG_TEST_ACL_RO_USER=$ACL_RO_USER"
        echo "SG_TEST_ACL_RO_PASS=$ACL_RO_PASS"
        for n in $(names_of_kind sentinel); do sent+=("$(addr "$n")"); done
        echo "SG_TEST_SENTINELS=$(join_by_comma "${sent[@]}")"
        echo "SG_TEST_SENTINEL_MASTER_NAME=$SENT_MASTER_NAME"
        echo "SG_TEST_SENTINEL_PASS=$SENT_PASS"
        echo "SG_TEST_SENTINEL_DATA=$(addr sentinel-master),$(addr sentinel-replica)"
        echo "SG_TEST_SENTINEL_DATA_PASS=$SENT_DATA_PASS"
        echo "SG_TEST_ONE_NODE=$(addr one-node)"
        echo "SG_TEST_TMP=$TMP"
        echo "SG_TEST_REDIS_VERSION=$version"
        echo "SG_TEST_PORT_BASE=$BASE"
    } >"$envf.tmp"
    mv "$envf.tmp" "$envf"
}

cmd_start() {
    local n pid_plain pid_tls pid_sent rc kind
    T0=$(now_us)
    STATE=$1
    mkdir -p "$STATE"
    STATE=$(cd "$STATE" && pwd)
    command -v "$REDIS_SERVER" >/dev/null || { warn "no $REDIS_SERVER in PATH (apt-get install redis-server)"; exit 1; }
    command -v "$REDIS_CLI" >/dev/null || { warn "no $REDIS_CLI in PATH (apt-get install redis-tools)"; exit 1; }
    command -v openssl >/dev/null || { warn "no openssl in PATH (apt-get install openssl)"; exit 1; }

    do_stop "$STATE" 1 # whatever a previous run left
    trap on_start_exit EXIT
    trap 'warn "interrupted"; exit 130' INT
    trap 'warn "terminated"; exit 143' TERM
    define_servers
    check_ports_free

    TMP=$(mktemp -d "${TMPDIR:-/tmp}/slotgate-test.XXXXXX")
    echo "$TMP" >"$STATE/tmpdir"
    : >"$STATE/servers.list"
    : >"$STATE/pids"

    make_certs
    phase "certificates made in $TMP/tls"
    for n in "${NAMES[@]}"; do launch "$n"; done
    wait_launched
    wait_started
    phase "${#NAMES[@]} servers started; all but the Sentinel group answer PING"

    # The two clusters are independent: create them at the same time.
    create_cluster cluster &
    pid_plain=$!
    create_cluster tlscluster &
    pid_tls=$!
    # The Sentinel group needs no creating: its Sentinels find each other
    # (hello messages every 2 s) meanwhile.
    wait_sentinels_ready >"$TMP/sentinel-ready.log" 2>&1 &
    pid_sent=$!
    BG_PIDS=("$pid_plain" "$pid_tls" "$pid_sent")
    for kind in cluster tlscluster; do
        rc=0
        if [[ $kind == cluster ]]; then wait "$pid_plain" || rc=$?; else wait "$pid_tls" || rc=$?; fi
        if ((rc != 0)); then
            warn "---- $TMP/create-$kind.log ----"
            tail -n 25 "$TMP/create-$kind.log" | sed 's/^/    /' >&2
            fail "redis-cli --cluster create failed for the $kind nodes (status $rc)" "$(first_of_kind "$kind")"
        fi
    done
    create_one_node
    phase "clusters created"
    wait_clusters_ready
    wait_one_node_ready
    phase "clusters ready"
    rc=0
    wait "$pid_sent" || rc=$?
    if ((rc != 0)); then
        cat "$TMP/sentinel-ready.log" >&2
        fail "the Sentinel group did not become ready (status $rc)"
    fi
    cat "$TMP/sentinel-ready.log"
    write_env
    START_OK=1
    trap - EXIT INT TERM
    say "${#NAMES[@]} servers ready in $((($(now_us) - T0) / 1000)) ms; temp dir $TMP"
    say "settings in $STATE/servers.env; stop with: $0 stop $STATE"
}

# ---- main --------------------------------------------------------------------

(($# == 2)) || usage
case $1 in
start) cmd_start "$2" ;;
stop) cmd_stop "$2" ;;
status) cmd_status "$2" ;;
*) usage ;;
esac
