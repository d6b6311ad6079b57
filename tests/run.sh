#!/usr/bin/env bash
# Runs every test binary, prints each one's summary, and ends with the total
# line "N passed, N failed". A crash or a missing summary counts as a failure.
build="$1"; shift
pass=0; fail=0
for t in "$@"; do
  name=$(basename "$t")
  start=$(date +%s.%N)
  out=$("$t" 2>&1); rc=$?
  secs=$(printf "%.1f" "$(echo "$(date +%s.%N) - $start" | bc)")
  line=$(printf "%s\n" "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -n 1)
  if [ -z "$line" ]; then
    printf "%s\n" "$out" | tail -n 20
    echo "$name: no summary line (exit $rc)"
    fail=$((fail + 1)); continue
  fi
  p=${line%% passed*}; f=${line#*passed, }; f=${f%% failed*}
  if [ "$rc" != 0 ] && [ "$f" = 0 ]; then f=1; fi
  pass=$((pass + p)); fail=$((fail + f))
  if [ "$f" != 0 ]; then printf "%s\n" "$out" | grep -v -E '^[0-9]+ passed' | tail -n 40; fi
  printf "%-24s %s  (%ss)\n" "$name" "$line" "$secs"
done
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
