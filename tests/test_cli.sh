#!/usr/bin/env bash
# CLI smoke tests: the demo trains (loss falls), bad usage exits 2 with a message.
vlp="${BUILD:-build}/vlp"
pass=0; fail=0
check() { if eval "$2"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $1"; fi; }

out=$("$vlp" --threads 2 demo --steps 60 2>&1); rc=$?
check "demo exits 0 (got $rc)" '[ $rc = 0 ]'
first=$(echo "$out" | awk '/^step/ {print $4; exit}')
last=$(echo "$out" | awk '/^step/ {l=$4} END {print l}')
check "demo loss falls ($first -> $last)" 'awk -v a="$first" -v b="$last" "BEGIN {exit !(b < a / 4)}"'

"$vlp" nosuchcommand >/dev/null 2>/tmp/vlp_cli_err; rc=$?
check "unknown command exits 2 (got $rc)" '[ $rc = 2 ] && grep -q "unknown command" /tmp/vlp_cli_err'
"$vlp" demo --steps abc >/dev/null 2>/tmp/vlp_cli_err; rc=$?
check "bad --steps exits 2 (got $rc)" '[ $rc = 2 ] && grep -q "\-\-steps" /tmp/vlp_cli_err'
"$vlp" demo --help | grep -q "usage: vlp demo"
check "demo --help" '[ $? = 0 ]'
"$vlp" --threads 0 demo >/dev/null 2>&1; rc=$?
check "--threads 0 rejected (got $rc)" '[ $rc = 2 ]'
rm -f /tmp/vlp_cli_err
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
