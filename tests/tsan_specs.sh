#!/usr/bin/env bash
# tsan_specs.sh — slotgated's specs against a ThreadSanitizer build
# (-DSLOTGATE_TSAN=ON): busted runs tests/lua/slotgated_*_spec.lua, each
# daemon they start writing any race it sees to a file of its own; the test
# fails when a spec fails or when any report was written, and prints them.
#
#   tests/tsan_specs.sh REPORT_DIR      (ctest runs it from the source tree)
#
# Only the daemon's specs: the others load libslotgate into luajit, which is
# not built with ThreadSanitizer, and the library has no threads of its own
# (docs/ARCHITECTURE.md, "Threads").
set -uo pipefail
dir=${1:?usage: tests/tsan_specs.sh REPORT_DIR}
rm -rf "$dir"
mkdir -p "$dir"
export TSAN_OPTIONS="log_path=$dir/race second_deadlock_stack=1 history_size=4 ${TSAN_OPTIONS:-}"
busted --lua=luajit -o utfTerminal --pattern='^slotgated_.*_spec' tests/lua
status=$?
reports=("$dir"/race.*)
if [[ -e ${reports[0]} ]]; then
    for r in "${reports[@]}"; do
        echo "==== ThreadSanitizer: $r"
        cat "$r"
    done
    echo "tsan_specs: ${#reports[@]} daemon(s) reported a race (above)" >&2
    exit 1
fi
if ((status != 0)); then
    echo "tsan_specs: busted failed (status $status)" >&2
    exit "$status"
fi
echo "tsan_specs: no race reported"
