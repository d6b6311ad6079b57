#!/usr/bin/env bash
# vlp eval with VL models on tiny random models.
# --task caption (tools/vlp/cmd_eval_task.c): exit codes, one prediction per row in file order
# (each equal to `vlp caption` on that image alone), the same captions for any thread count, and
# metrics equal to `vlp score` on the written predictions (an independent path), on a file built
# so that exact match, BLEU-4 and CIDEr-D are not zero.
# Retrieval by ITM over every pair for a model without ITC heads (tools/vlp/cmd_eval_vl.c):
# "itm_full" in the JSON and table, the pass count, --max-pairs, --rerank refused. (The ranking
# itself is checked against a brute-force pass in tests/test_vl_itm.c.)
vlp="${BUILD:-build}/vlp"
pass=0; fail=0
check() { if eval "$2"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $1"; fi; }
T=$(mktemp -d /tmp/vlp_capev.XXXXXX)
trap 'rm -rf "$T"' EXIT
expect_fail() { # expect_fail NAME RC PATTERN COMMAND...
  local name=$1 want=$2 pat=$3; shift 3
  "$@" > /dev/null 2> "$T/err"; local rc=$?
  check "$name: exit $want (got $rc), message names '$pat'" '[ $rc = $want ] && grep -qF -- "$pat" "$T/err"'
}
# num FILE KEY: the first number after "KEY": in FILE
num() { grep -o "\"$2\": *[-0-9.eE+]*" "$1" | head -n 1 | sed 's/.*: *//'; }
# same A B: equal to 1e-9 (relative)
same() { awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; if (d < 0) d = -d; m = (a < 0 ? -a : a); exit !(a != "" && b != "" && d <= 1e-9 * (m > 1 ? m : 1)) }'; }

I=$(cd tests/fixtures/clip/images && pwd)
"$vlp" vl-init --preset blip-tiny --vocab tests/fixtures/bert/vocab.txt --seed 3 "$T/blip" > /dev/null 2>&1
"$vlp" vl-init --preset vilt-tiny --seed 1 "$T/vilt" > /dev/null 2>&1
imgs=(astronaut.png chelsea_p.png coffee.jpg coins.png emoji_dog.png small.png tall.png)
: > "$T/cap.jsonl"
for k in "${!imgs[@]}"; do echo "{\"image\": \"$I/${imgs[$k]}\", \"caption\": \"a picture number $k\"}" >> "$T/cap.jsonl"; done

out=$("$vlp" eval --task caption --model "$T/blip" --data "$T/cap.jsonl" --predictions "$T/p.jsonl" --json 2> "$T/err"); rc=$?
echo "$out" > "$T/e.json"
check "eval --task caption exits 0 (got $rc)" '[ $rc = 0 ]'
check "one prediction per row" '[ "$(grep -c "\"caption\": " "$T/p.jsonl")" = ${#imgs[@]} ] && [ "$(grep -c . "$T/p.jsonl")" = ${#imgs[@]} ]'
check "predictions carry per-example scores" '[ "$(grep -c "\"cider_d\": .*\"exact\": \(true\|false\)" "$T/p.jsonl")" = ${#imgs[@]} ]'
for key in task split data predictions n model protocol method family decode seconds metrics exact_match bleu4 cider_d; do
  check "JSON has \"$key\"" 'grep -q "\"$key\":" "$T/e.json"'
done
check "JSON: task caption, n ${#imgs[@]}, beam 3 by default" 'grep -q "\"task\": \"caption\"" "$T/e.json" && [ "$(num "$T/e.json" n)" = ${#imgs[@]} ] && [ "$(num "$T/e.json" beam)" = 3 ]'

# file order: row k is the caption `vlp caption --beam 3` gives image k alone
paths=(); for f in "${imgs[@]}"; do paths+=("$I/$f"); done
"$vlp" caption "$T/blip" "${paths[@]}" --beam 3 2> /dev/null | cut -f 2 > "$T/ref.txt"
sed 's/^{"caption": "\(.*\)", "cider_d".*/\1/' "$T/p.jsonl" > "$T/esc.txt" # JSON-escaped
sed 's/\\"/"/g; s/\\\\/\\/g' "$T/esc.txt" > "$T/got.txt"
check "predictions in file order equal vlp caption --beam 3 per image" '[ -s "$T/ref.txt" ] && cmp -s "$T/ref.txt" "$T/got.txt"'
check "captions differ between images (order is visible)" '[ "$(sort -u "$T/got.txt" | wc -l)" -gt 1 ]'

"$vlp" --threads 1 eval --task caption --model "$T/blip" --data "$T/cap.jsonl" --predictions "$T/p1.jsonl" --batch 3 > /dev/null 2>&1
check "same captions with 1 thread and --batch 3" 'cmp -s <(cut -d, -f1 "$T/p.jsonl") <(cut -d, -f1 "$T/p1.jsonl")'

# references chosen so the metrics are not zero: rows 0 and 2 get the model's own caption
: > "$T/cap2.jsonl"
for k in "${!imgs[@]}"; do
  c=$(sed -n "$((k + 1))p" "$T/esc.txt")
  case $k in 0|2) ref=$c ;; 1) ref="$c extra words here" ;; *) ref="a picture number $k" ;; esac
  printf '{"image": "%s", "caption": "%s"}\n' "$I/${imgs[$k]}" "$ref" >> "$T/cap2.jsonl"
done
"$vlp" eval --task caption --model "$T/blip" --data "$T/cap2.jsonl" --predictions "$T/p2.jsonl" --json > "$T/e2.json" 2> "$T/err"; rc=$?
"$vlp" score --task caption --data "$T/cap2.jsonl" --predictions "$T/p2.jsonl" --json > "$T/s2.json" 2> "$T/err"; rc2=$?
check "eval and score on the built references exit 0 ($rc, $rc2)" '[ $rc = 0 ] && [ $rc2 = 0 ]'
check "exact match 2 of ${#imgs[@]}" 'same "$(num "$T/e2.json" exact_match)" "$(awk -v n=${#imgs[@]} "BEGIN {printf \"%.12f\", 2 / n}")"'
for key in n exact_match bleu4 cider_d brevity_penalty candidate_tokens reference_tokens; do
  a=$(num "$T/e2.json" $key); b=$(num "$T/s2.json" $key)
  check "$key: eval $a = score $b" 'same "$a" "$b"'
done
check "BLEU-4 and CIDEr-D above 0" 'awk -v b="$(num "$T/e2.json" bleu4)" -v c="$(num "$T/e2.json" cider_d)" "BEGIN {exit !(b > 0 && c > 0)}"'

out=$("$vlp" eval --task caption --model "$T/blip" --data "$T/cap2.jsonl" 2>&1); rc=$?
check "table: exact match, BLEU-4, CIDEr-D (exit $rc)" '[ $rc = 0 ] && echo "$out" | grep -q "exact match" && echo "$out" | grep -q "BLEU-4" && echo "$out" | grep -q "CIDEr-D"'
mkdir -p "$T/run"
"$vlp" eval --task caption --model "$T/blip" --data "$T/cap.jsonl" --out "$T/run/eval_caption_t.json" --beam 1 --max-len 4 > /dev/null 2>&1; rc=$?
check "--out writes the eval file and predictions next to it (exit $rc)" '[ $rc = 0 ] && [ -s "$T/run/eval_caption_t.json" ] && [ "$(grep -c . "$T/run/predictions_caption_cap.jsonl")" = ${#imgs[@]} ]'
check "--beam 1 --max-len 4 recorded" '[ "$(num "$T/run/eval_caption_t.json" beam)" = 1 ] && [ "$(num "$T/run/eval_caption_t.json" max_len)" = 4 ]'

expect_fail "caption: a CLIP dual encoder" 1 "generative" "$vlp" eval --task caption --model tests/fixtures/clip/model-tiny --data "$T/cap.jsonl"
expect_fail "caption: a fusion model" 1 "single_stream" "$vlp" eval --task caption --model "$T/vilt" --data "$T/cap.jsonl"
echo "{\"image\": \"$T/nope.png\", \"caption\": \"x\"}" > "$T/bad.jsonl"
expect_fail "caption: missing image" 1 "nope.png" "$vlp" eval --task caption --model "$T/blip" --data "$T/bad.jsonl"
expect_fail "caption: --beam 0" 2 "--beam" "$vlp" eval --task caption --model "$T/blip" --data "$T/cap.jsonl" --beam 0
expect_fail "--beam on another task" 2 "--task caption" "$vlp" eval --task mc --model "$T/blip" --data "$T/cap.jsonl" --beam 2
expect_fail "caption: missing data file" 1 "nosuch.jsonl" "$vlp" eval --task caption --model "$T/blip" --data "$T/nosuch.jsonl"
# ---- ITM-only retrieval (single_stream, embed_dim 0) -------------------------------------------
mkdir -p "$T/ret"
printf 'filepath\ttitle\n' > "$T/ret/set.tsv"
for k in "${!imgs[@]}"; do cp "$I/${imgs[$k]}" "$T/ret/"; printf '%s\ta picture number %s\n' "${imgs[$k]}" "$k" >> "$T/ret/set.tsv"; done
nimg=${#imgs[@]}
"$vlp" eval --model "$T/vilt" --data "$T/ret/set.tsv" --json > "$T/r.json" 2> "$T/err"; rc=$?
check "eval ITM-only retrieval exits 0 (got $rc)" '[ $rc = 0 ]'
check "JSON: method itm_full, itm_passes $((nimg * nimg)), both directions" 'grep -q "\"method\": \"itm_full\"" "$T/r.json" && [ "$(num "$T/r.json" itm_passes)" = $((nimg * nimg)) ] && grep -q "\"itm_full\":" "$T/r.json" && grep -q "\"text_to_image\":" "$T/r.json" && grep -q "\"image_to_text\":" "$T/r.json"'
check "the pass count on stderr" 'grep -q "$nimg texts x $nimg images = $((nimg * nimg)) fusion passes" "$T/err"'
out=$("$vlp" eval --model "$T/vilt" --data "$T/ret/set.tsv" --batch 5 2> /dev/null); rc=$?
check "table: ITM-full rows (exit $rc)" '[ $rc = 0 ] && [ "$(echo "$out" | grep -c "^  ITM-full ")" = 2 ] && echo "$out" | grep -q "$((nimg * nimg)) fusion passes"'
check "the same R@1 with --batch 5" '[ "$(echo "$out" | grep "ITM-full text->image" | awk "{print \$3}")" = "$(awk -v r="$(num "$T/r.json" r1)" "BEGIN {printf \"%.2f%%\", 100 * r}")" ]'
expect_fail "ITM-only retrieval above --max-pairs" 1 "--max-pairs 48" "$vlp" eval --model "$T/vilt" --data "$T/ret/set.tsv" --max-pairs 48
expect_fail "--rerank on an ITM-only model" 2 "itm_full" "$vlp" eval --model "$T/vilt" --data "$T/ret/set.tsv" --rerank 3
expect_fail "--max-pairs 0" 2 "--max-pairs" "$vlp" eval --model "$T/vilt" --data "$T/ret/set.tsv" --max-pairs 0

# Zero-shot multiple choice with a pre-trained fusion model's ITM head: each row's choice
# probabilities are the softmax over the choices of the ITM log-odds that `vlp match` prints
# for each (image, choice) alone (4 printed digits: |dp| <= 5e-5 moves a softmax share by < 1e-4).
"$vlp" vl-init --preset albef-tiny --vocab tests/fixtures/bert/vocab.txt --seed 2 "$T/albef" > /dev/null 2>&1
choices='"a dog", "a cup of coffee", "coins", "a cat"'
: > "$T/mc.jsonl"
for f in coffee.jpg coins.png astronaut.png; do
  printf '{"image": "%s", "question": "which one?", "choices": [%s], "label": 1}\n' "$I/$f" "$choices" >> "$T/mc.jsonl"
done
"$vlp" eval --task mc --model "$T/albef" --data "$T/mc.jsonl" --predictions "$T/pmc.jsonl" --json > "$T/mc.json" 2> "$T/err"; rc=$?
check "zero-shot mc on a pre-trained albef (exit $rc): the ITM head, 3 predictions" '[ $rc = 0 ] && grep -q "zero-shot ITM head" "$T/mc.json" && [ "$(grep -c "\"probs\":" "$T/pmc.jsonl")" = 3 ]'
row=0; worst=1
for f in coffee.jpg coins.png astronaut.png; do
  row=$((row + 1))
  want=$("$vlp" match "$T/albef" "$I/$f" "a dog" "a cup of coffee" "coins" "a cat" 2> /dev/null | cut -f 1 |
    awk '{ l[NR] = log($1 / (1 - $1)); m = (NR == 1 || l[NR] > m) ? l[NR] : m } END { for (i = 1; i <= NR; i++) { e[i] = exp(l[i] - m); z += e[i] } for (i = 1; i <= NR; i++) printf "%.6f ", e[i] / z }')
  got=$(sed -n "${row}p" "$T/pmc.jsonl" | sed 's/.*"probs":\[\(.*\)\].*/\1/' | tr , ' ')
  d=$(awk -v a="$want" -v b="$got" 'BEGIN { n = split(a, x, " "); m = split(b, y, " "); if (n != 4 || m != 4) { print 1; exit } w = 0; for (i = 1; i <= 4; i++) { e = x[i] - y[i]; if (e < 0) e = -e; if (e > w) w = e } print w }')
  worst=$(awk -v a="$worst" -v b="$d" -v r=$row 'BEGIN { print (r == 1 || b > a) ? b : a }')
done
check "zero-shot mc probabilities = softmax of vlp match's ITM log-odds (worst difference $worst)" 'awk -v w="$worst" "BEGIN { exit !(w < 1e-4) }"'
# with ITC heads, a pre-trained VL model also runs the dual encoder's zero-shot protocols on them
# (tests/test_downstream.c checks the probabilities against an independent computation)
"$vlp" eval --task mc --protocol itc --model "$T/albef" --data "$T/mc.jsonl" --predictions "$T/pmci.jsonl" --json > "$T/mci.json" 2> "$T/err"; rc=$?
check "zero-shot mc on albef's ITC heads with --protocol itc (exit $rc): 3 predictions" '[ $rc = 0 ] && grep -q "zero-shot ITC heads" "$T/mci.json" && grep -q "ITC similarity" "$T/mci.json" && [ "$(grep -c "\"probs\":" "$T/pmci.jsonl")" = 3 ] && ! cmp -s "$T/pmc.jsonl" "$T/pmci.jsonl"'
"$vlp" vl-init --preset vilt-tiny --vocab tests/fixtures/bert/vocab.txt --seed 2 "$T/vilt" > /dev/null 2>&1
expect_fail "a pre-trained model without ITC heads on nlvr without fine-tuning" 1 "fine-tune it for nlvr" "$vlp" eval --task nlvr --model "$T/vilt" --data "$T/mc.jsonl"
expect_fail "zero-shot mc with a captioning model with neither ITM nor ITC heads" 1 "nothing to score the choices with" "$vlp" eval --task mc --model "$T/blip" --data "$T/mc.jsonl"
expect_fail "--protocol itc on a CLIP model" 1 "pre-trained VL model" "$vlp" eval --task mc --protocol itc --model tests/fixtures/clip/model-tiny --data "$T/mc.jsonl"

out=$("$vlp" eval --task caption --help); rc=$?
check "eval --task caption --help (exit $rc)" '[ $rc = 0 ] && echo "$out" | grep -q -- "--beam K"'

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
