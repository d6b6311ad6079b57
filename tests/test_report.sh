#!/usr/bin/env bash
# vlp score and vlp report on the hand-made runs of tests/fixtures/report (written by
# tests/tools/gen_report_fixtures.py): the metrics of every task, bad input, then the HTML page:
# self-contained, and rendered by headless Chromium (Debian's chromium, scripts/deps.sh test):
# its DOM has the tables, curves and gallery, and the screenshot is not blank and shows the
# colours of the embedded fixture images. Without Chromium the browser checks are reported as
# SKIPPED (never passed); everything else still runs.
vlp="$(pwd)/${BUILD:-build}/vlp"
fx="$(pwd)/tests/fixtures/report"
tmp=$(mktemp -d /tmp/vlp_test_report.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
check() { if eval "$2"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $1"; return 1; fi; }
# the value of a top-level or nested numeric field in vlp score --json output
field() { grep -E "\"$1\": " "$2" | head -n 1 | sed -E 's/.*: ([-0-9.eE+]+).*/\1/'; }
near() { awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a != "" && d < 1e-6) }'; }

cp -r "$fx/runs" "$tmp/"
ok=1
for r in run_a run_b; do
  for t in caption vqa nlvr ground2 mc; do
    "$vlp" score --task $t --data "$fx/tasks/$t-style.jsonl" --predictions "$tmp/runs/$r/predictions_${t}_style.jsonl" \
      --out "$tmp/runs/$r/eval_${t}_style.json" > "$tmp/score_${r}_$t.txt" 2>&1 || { ok=0; cat "$tmp/score_${r}_$t.txt"; }
  done
done
check "vlp score writes every eval file" '[ $ok = 1 ]'

# run_a by hand: vqa category 4/4, identify 3/4 -> overall 0.875; majority baselines from
# vqa-train.jsonl ("a shape" wins its tie: 2/4; "red circle": 1/4) -> 0.375
a="$tmp/runs/run_a"
check "vqa overall 0.875" 'near "$(field overall $a/eval_vqa_style.json)" 0.875'
check "vqa majority baseline 0.375" 'near "$(field overall_majority $a/eval_vqa_style.json)" 0.375'
check "vqa majority answer" 'grep -q "\"majority_answer\": \"a shape\"" $a/eval_vqa_style.json'
check "nlvr accuracy 3/4, chance 1/2" 'near "$(field accuracy $a/eval_nlvr_style.json)" 0.75 && near "$(field chance $a/eval_nlvr_style.json)" 0.5'
check "ground2 accuracy 1/2, chance 1/4" 'near "$(field accuracy $a/eval_ground2_style.json)" 0.5 && near "$(field chance $a/eval_ground2_style.json)" 0.25'
check "mc accuracy 3/4" 'near "$(field accuracy $a/eval_mc_style.json)" 0.75'
# CIDEr-D from tests/tools/caption_metrics_ref.py on the same captions: 3.8322307249600236
check "caption exact 4/6, CIDEr-D" 'near "$(field exact_match $a/eval_caption_style.json)" 0.6666666667 && near "$(field cider_d $a/eval_caption_style.json)" 3.832230725'
check "eval file records the data file" 'grep -q "\"data\": \"$fx/tasks/vqa-style.jsonl\"" $a/eval_vqa_style.json'
"$vlp" score --task vqa --data "$fx/tasks/vqa-style.jsonl" --predictions "$a/predictions_vqa_style.jsonl" > "$tmp/t.txt" 2>&1
check "readable table" 'grep -q "overall .* 87.50%" $tmp/t.txt && grep -q "identify .* 75.00%" $tmp/t.txt'

# bad input
"$vlp" score --task nlvr --data "$fx/tasks/nlvr-style.jsonl" --predictions "$a/predictions_ground2_style.jsonl" > /dev/null 2> "$tmp/e.txt"; rc=$?
check "2 predictions for 4 examples: exit 1 ($rc)" '[ $rc = 1 ] && grep -q "2 predictions" $tmp/e.txt'
"$vlp" score --task nope --data x --predictions y > /dev/null 2>&1; rc=$?
check "unknown task: exit 2 ($rc)" '[ $rc = 2 ]'
"$vlp" score --task vqa > /dev/null 2>&1; rc=$?
check "missing flags: exit 2 ($rc)" '[ $rc = 2 ]'
{ head -n 2 "$fx/tasks/nlvr-style.jsonl"; echo '{"left": "a.png", "right": "b.png", "statement": "s", "label": 3}';
  tail -n 2 "$fx/tasks/nlvr-style.jsonl"; } > "$tmp/nlvr-bad.jsonl"
"$vlp" score --task nlvr --data "$tmp/nlvr-bad.jsonl" --predictions "$a/predictions_nlvr_style.jsonl" --json > "$tmp/o.txt" 2> "$tmp/e.txt"; rc=$?
check "bad row skipped with its line number, rest scored ($rc)" '[ $rc = 0 ] && grep -q "nlvr-bad.jsonl:3:" $tmp/e.txt && near "$(field accuracy $tmp/o.txt)" 0.75'
"$vlp" score --task nlvr --data "$tmp/nlvr-bad.jsonl" --predictions "$a/predictions_nlvr_style.jsonl" --strict > /dev/null 2> "$tmp/e.txt"; rc=$?
check "--strict: bad row fatal ($rc)" '[ $rc = 1 ] && grep -q "nlvr-bad.jsonl:3:" $tmp/e.txt'
"$vlp" score --help | grep -q "usage: vlp score"
check "score --help" '[ $? = 0 ]'
"$vlp" report --help | grep -q "usage: vlp report"
check "report --help" '[ $? = 0 ]'
"$vlp" report "$tmp/nonexistent" --out "$tmp/x.html" > /dev/null 2>&1; rc=$?
check "report of a missing run: exit 1 ($rc)" '[ $rc = 1 ] && [ ! -e $tmp/x.html ]'
"$vlp" report "$a" > /dev/null 2>&1; rc=$?
check "report without --out: exit 2 ($rc)" '[ $rc = 2 ]'

mkdir -p "$tmp/broken"; echo '{"task": "vqa", "metrics": ' > "$tmp/broken/eval_vqa_style.json"
"$vlp" report "$tmp/broken" --out "$tmp/x.html" > /dev/null 2> "$tmp/e.txt"; rc=$?
check "malformed eval file named: exit 1 ($rc)" '[ $rc = 1 ] && grep -q "broken/eval_vqa_style.json" $tmp/e.txt'

# the page; a run still writing its log leaves a partial last line: counted, not fatal
printf '{"step": 410, "lo' >> "$tmp/runs/run_b/metrics.jsonl"
html="$tmp/report.html"
"$vlp" report "$tmp/runs/run_a" "$tmp/runs/run_b" --out "$html" --title "fixture runs" > /dev/null 2>&1; rc=$?
check "vlp report exits 0 ($rc)" '[ $rc = 0 ] && [ -s $html ]'
check "partial log line counted" 'grep -q "44 log rows (1 unreadable, skipped)" $html'
check "no external resources" '! grep -Eiq "(src|href)=\"?(https?:|//)|url\(|<link|<script" $html'
check "every image embedded as a data URI" '[ "$(grep -o "<img " $html | wc -l)" -gt 0 ] && [ "$(grep -o "<img " $html | wc -l)" = "$(grep -o "<img [^>]*src=\"data:image/png;base64," $html | wc -l)" ]'

# examples per run: caption 6, vqa 8, nlvr 4, ground2 2, mc 4 (gallery 8) -> 24, two runs -> 48
dom_checks() { # $1: the HTML or DOM file, $2: where it came from
  local f="$1"
  check "$2: 6 metric tables" '[ "$(grep -o "<table class=\"metrics\"" $f | wc -l)" = 6 ]'
  check "$2: 2 curves (loss, val_loss; not loss_last)" '[ "$(grep -o "<svg class=\"curve\"" $f | wc -l)" = 2 ] && ! grep -q "loss_last" $f'
  check "$2: 4 polylines" '[ "$(grep -o "<polyline" $f | wc -l)" = 4 ]'
  check "$2: 48 gallery examples" '[ "$(grep -o "<figure class=\"example" $f | wc -l)" = 48 ]'
  check "$2: right and wrong marked" 'grep -q "<figure class=\"example right\"" $f && grep -q "<figure class=\"example wrong\"" $f'
  check "$2: run columns" 'grep -q "<th>run_a" $f && grep -q "<th>run_b" $f'
  check "$2: question text shown" 'grep -q "which description fits this emoji?" $f && grep -q "exactly one image shows a shape." $f'
}
dom_checks "$html" "html"

browser=""
for b in chromium chromium-browser google-chrome; do
  if command -v "$b" > /dev/null 2>&1; then browser="$b"; break; fi
done
if [ -z "$browser" ]; then
  echo "SKIPPED: the headless Chromium checks (no chromium on PATH; scripts/deps.sh test installs it)"
else
  flags="--headless --no-sandbox --disable-gpu --hide-scrollbars --no-first-run --user-data-dir=$tmp/profile"
  timeout 120 "$browser" $flags --dump-dom "file://$html" > "$tmp/dom.html" 2> "$tmp/chromium.log"; rc=$?
  check "chromium --dump-dom exits 0 ($rc)" '[ $rc = 0 ] && [ -s $tmp/dom.html ]' || tail -n 5 "$tmp/chromium.log"
  dom_checks "$tmp/dom.html" "chromium DOM"
  timeout 120 "$browser" $flags --window-size=1280,2400 --screenshot="$tmp/shot.png" "file://$html" > /dev/null 2>> "$tmp/chromium.log"; rc=$?
  check "chromium --screenshot ($rc)" '[ $rc = 0 ] && [ -s $tmp/shot.png ]'
  if [ -s "$tmp/shot.png" ]; then
    # red circle, blue square, teal cross: colours only the embedded images have
    "${BUILD:-build}/tests/tools/png_colors" "$tmp/shot.png" 230,25,75 0,130,200 70,240,240 > "$tmp/colors.txt" 2>&1
    distinct=$(sed -n 's/.*distinct=\([0-9]*\).*/\1/p' "$tmp/colors.txt")
    check "screenshot is not blank ($distinct distinct colours)" '[ -n "$distinct" ] && [ "$distinct" -gt 100 ]'
    check "screenshot shows the embedded images" '[ "$(grep -c "count=[1-9][0-9][0-9]" $tmp/colors.txt)" = 3 ]' || cat "$tmp/colors.txt"
  fi
fi
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
