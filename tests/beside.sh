#!/usr/bin/env bash
# `tests/beside.sh "BACKGROUND COMMAND" FOREGROUND COMMAND...`: runs the first command in the background
# while the second runs, then prints the first one's output and time after the second one's.
# Exit status: 0 only if both succeeded. `make test` runs nbdev_test (no Docker, mostly CPU) beside
# the browser and lesson-shape tests (mostly waiting on JupyterLab and Chromium): they touch
# different files, and together they take about as long as nbdev_test alone.
set -uo pipefail
background=$1; shift
log=$(mktemp)
start=$(date +%s)
bash -c "$background" >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; rm -f "$log"' EXIT
"$@"
fg=$?
wait $pid
bg=$?
echo "== $background (exit $bg, $(( $(date +%s) - start )) s after both started)"
cat "$log"
[ $fg -eq 0 ] && [ $bg -eq 0 ]
