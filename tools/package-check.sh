#!/usr/bin/env bash
# tools/package-check.sh BUILD_DIR — builds the Debian package of a configured
# and built tree (cpack -G DEB), installs it with dpkg, and tries what it
# installed from where it put it: `slotgated --check` and --help, the library
# through its pkg-config file (examples/slotgate-call.c compiled and run), the
# LuaJIT module, the man pages (man -w) and the systemd unit's path to
# slotgated. The package is removed at the end, also when a step fails.
# Run as root (or it uses sudo for dpkg) on a throwaway machine: it installs
# into the system. Exit status: 0 when every step passed.
set -euo pipefail

if [ $# -ne 1 ] || [ ! -f "$1/CMakeCache.txt" ]; then
    echo "usage: $0 BUILD_DIR   (a configured and built cmake tree)" >&2
    exit 2
fi
build=$(cd "$1" && pwd)
src=$(cd "$(dirname "$0")/.." && pwd)
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
step() { echo "package-check: $*"; }
fail() { echo "package-check: FAILED: $*" >&2; exit 1; }

prefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:[A-Z]*=//p' "$build/CMakeCache.txt")
step "install prefix $prefix (from $build/CMakeCache.txt)"
command -v dpkg-shlibdeps >/dev/null || fail "dpkg-shlibdeps is missing (apt-get install dpkg-dev)"
dpkg-query -W -f='${Status}\n' slotgate 2>/dev/null | grep -q '^install ok installed' &&
    fail "a slotgate package is installed already; remove it first (dpkg -r slotgate)"

work=$(mktemp -d)
installed=0
cleanup() {
    rc=$?
    if [ "$installed" = 1 ]; then
        step "dpkg -r slotgate"
        as_root dpkg -r slotgate >/dev/null || { echo "package-check: dpkg -r failed" >&2; rc=1; }
        # and its entry in dpkg's database (no conffiles to keep)
        as_root dpkg --purge slotgate >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
    [ "$rc" = 0 ] && step "ok" || echo "package-check: FAILED (exit $rc)" >&2
    exit "$rc"
}
trap cleanup EXIT

step "cpack -G DEB in $build"
rm -f "$build"/slotgate_*.deb
(cd "$build" && cpack -G DEB >"$work/cpack.log" 2>&1) || { cat "$work/cpack.log" >&2; fail "cpack -G DEB"; }
deb=$(find "$build" -maxdepth 1 -name 'slotgate_*.deb' | head -n1)
[ -n "$deb" ] || fail "cpack made no slotgate_*.deb in $build"
step "built $(basename "$deb"): $(dpkg-deb -f "$deb" Depends)"

step "dpkg -i $(basename "$deb")"
installed=1
as_root dpkg -i "$deb" >/dev/null || fail "dpkg -i (missing dependencies? see above)"

bin="$prefix/bin/slotgated"
[ -x "$bin" ] || fail "$bin is not installed"
step "$bin --check (TYK_GW_STORAGE_ADDRS=127.0.0.1:6379)"
env -i PATH=/usr/bin:/bin TYK_GW_STORAGE_ADDRS=127.0.0.1:6379 "$bin" --check >"$work/check" ||
    fail "$bin --check"
grep -q '^addrs = 127.0.0.1:6379    # env TYK_GW_STORAGE_ADDRS$' "$work/check" ||
    fail "--check does not show the address it was given"
grep -q '^\[slotgated\]$' "$work/check" || fail "--check does not show slotgated's own settings"
ldd "$bin" | grep -q 'not found' && fail "$bin: a library is not found: $(ldd "$bin" | grep 'not found')"
"$bin" --help | grep -q 'slotgated(8)' || fail "$bin --help does not name slotgated(8)"
step "$bin --version: $("$bin" --version)"

step "cc examples/slotgate-call.c \$(pkg-config --cflags --libs slotgate)"
libdir=$(sed -n 's/^CMAKE_INSTALL_LIBDIR:[A-Z]*=//p' "$build/CMakeCache.txt")
export PKG_CONFIG_PATH="$prefix/$libdir/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
pkg-config --exists slotgate || fail "pkg-config does not find slotgate.pc"
[ "$(pkg-config --modversion slotgate)" = "$(dpkg-deb -f "$deb" Version)" ] ||
    fail "slotgate.pc's version is not the package's"
# shellcheck disable=SC2046
cc -o "$work/slotgate-call" "$src/examples/slotgate-call.c" $(pkg-config --cflags --libs slotgate) ||
    fail "examples/slotgate-call.c does not build against the installed library"
lib=$(readlink -f "$(ldd "$work/slotgate-call" | awk '/libslotgate/ {print $3}')")
case "$lib" in
    "$(readlink -f "$prefix")"/*) step "the example links $lib" ;;
    *) fail "the example links libslotgate from \"$lib\", not below $prefix" ;;
esac
"$work/slotgate-call" -h | grep -q '^usage: slotgate-call' || fail "the example does not run"

step "the LuaJIT module, loading the installed library"
[ -f "$prefix/share/lua/5.1/slotgate.lua" ] || fail "$prefix/share/lua/5.1/slotgate.lua is not installed"
(cd "$work" && env -u SLOTGATE_LIB LUA_PATH="$prefix/share/lua/5.1/?.lua;;" \
    EXPECT="$(dpkg-deb -f "$deb" Version)" luajit -e '
    local s, want = require "slotgate", os.getenv("EXPECT")
    assert(s.version() == want, "version " .. s.version() .. ", expected " .. want)
    assert(s.keyslot("foo") == 12182, "keyslot")') ||
    fail "require \"slotgate\" with the installed libslotgate"

step "man -w slotgated, slotgate-policy(5), libslotgate(3)"
for page in 8:slotgated 5:slotgate-policy 3:libslotgate; do
    f=$(MANPATH="$prefix/share/man:" man -w "${page%%:*}" "${page#*:}" 2>/dev/null) ||
        fail "man -w ${page#*:}(${page%%:*}) finds nothing"
    case "$f" in "$prefix"/share/man/*) ;; *) fail "man -w ${page#*:} gives $f" ;; esac
    MANPATH="$prefix/share/man:" MANWIDTH=80 man "${page%%:*}" "${page#*:}" 2>"$work/manerr" |
        grep -q "${page#*:}" || fail "man ${page#*:} renders nothing"
    [ -s "$work/manerr" ] && fail "man ${page#*:}: $(cat "$work/manerr")"
done

step "the systemd unit runs the installed slotgated"
unit=$(dpkg -L slotgate | grep '/slotgated\.service$' | head -n1)
[ -n "$unit" ] || fail "no slotgated.service in the package"
grep -q "^ExecStart=$bin " "$unit" || fail "$unit does not start $bin"
