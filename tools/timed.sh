#!/usr/bin/env bash
# CI stage timing for make: `tests/timed.sh NAME COMMAND...` runs COMMAND, prints how long it took and
# adds the seconds to NAME in $MNIST_COURSE_STAGES; `tests/timed.sh --summary` prints every stage of
# this make run in order, with the total. Exit status: COMMAND's.
set -uo pipefail
file=${MNIST_COURSE_STAGES:-build/stages.txt}
if [ "${1:-}" = "--summary" ]; then
  [ -s "$file" ] || exit 0
  echo "== time per stage"
  awk '{ if (!($1 in s)) order[n++] = $1; s[$1] += $2; t += $2 }
       END { for (i = 0; i < n; i++) printf "  %-28s %6d s\n", order[i], s[order[i]]; printf "  %-28s %6d s\n", "total", t }' "$file"
  exit 0
fi
name=$1; shift
start=$(date +%s)
"$@"
rc=$?
took=$(( $(date +%s) - start ))
mkdir -p "$(dirname "$file")"
echo "$name $took" >> "$file"
echo "[stage] $name: ${took} s (exit $rc)"
exit $rc
