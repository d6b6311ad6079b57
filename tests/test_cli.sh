#!/usr/bin/env bash
# CLI tests: the demo trains (loss falls), bad usage exits 2 with a message; the CLIP
# commands reproduce the fixture references; bad inputs fail clearly (exit 1) or are skipped.
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

# ---- CLIP commands on the tiny fixture model (tests/fixtures/clip/README.md) ---------------
# Reference outputs are read from the fixture .npy files with od, so no Python is needed.
M=tests/fixtures/clip/model-tiny
I=tests/fixtures/clip/images
T=$(mktemp -d /tmp/vlp_cli.XXXXXX)
trap 'rm -rf "$T"' EXIT
npy_f32() { # float32 data of a little-endian .npy (format 1.0), one value a line
  local hl; hl=$(od -An -tu2 -j8 -N2 "$1" | tr -d ' ')
  od -An -v -tf4 -j$((10 + hl)) "$1" | tr -s ' ' '\n' | sed '/^$/d'
}
npy_shape() { # "7, 32" (numpy writes "(7, 32)", others "(7, 32,)")
  local hl; hl=$(od -An -tu2 -j8 -N2 "$1" | tr -d ' ')
  head -c $((10 + hl)) "$1" | tail -c "$hl" | sed -n "s/.*'shape': (\([^)]*\)).*/\1/p" | sed 's/,$//'
}
# rows_close GOT REF DIM TOL [normalise]: every row of GOT within TOL x (L2 norm of the REF
# row) of REF, after scaling each REF row to unit norm if asked. Prints the worst ratio.
rows_close() {
  awk -v dim="$3" -v tol="$4" -v nrm="${5:-0}" '
    NR == FNR { ref[FNR - 1] = $1; nref = FNR; next }
    { got[FNR - 1] = $1; ngot = FNR }
    END {
      if (ngot != nref || ngot == 0 || ngot % dim) { printf "size %d vs %d ", ngot, nref; exit 1 }
      worst = 0
      for (r = 0; r < ngot / dim; r++) {
        s = 0; for (k = 0; k < dim; k++) s += ref[r * dim + k] ^ 2
        n = sqrt(s); sc = nrm ? 1 / n : 1; rn = nrm ? 1 : n
        for (k = 0; k < dim; k++) { d = got[r * dim + k] - ref[r * dim + k] * sc; if (d < 0) d = -d; if (d / rn > worst) worst = d / rn }
      }
      printf "worst %.2e ", worst; exit !(worst <= tol)
    }' "$2" "$1"
}
# the fixture's image order and prompts (manifest.json lists one per line)
mapfile -t images < <(sed -n '/"images": \[/,/\]/p' $M/manifest.json | sed -n 's/^ *"\(.*\)",\{0,1\}$/\1/p')
mapfile -t prompts < <(sed -n '/"prompts": \[/,/\]/p' $M/manifest.json | sed -n 's/^ *"\(.*\)",\{0,1\}$/\1/p')
check "fixture manifest read (${#images[@]} images, ${#prompts[@]} prompts)" '[ ${#images[@]} = 7 ] && [ ${#prompts[@]} = 8 ] && [ -z "${prompts[4]}" ]'
# prompt 4 is the empty string, which vlp embed refuses; the CLI tests use the other seven
texts=(); cols=()
for j in "${!prompts[@]}"; do [ -n "${prompts[$j]}" ] && texts+=(--text "${prompts[$j]}") && cols+=("$j"); done
printf '%s\n' "${prompts[@]}" | sed '/^$/d' > "$T/prompts.txt"
# select_cols FILE NCOLS: the values of the non-empty prompts' columns of a row-major matrix
select_cols() { awk -v n="$2" -v keep=" ${cols[*]} " 'index(keep, " " ((NR - 1) % n) " ")' "$1"; }
select_rows() { awk -v d="$2" -v keep=" ${cols[*]} " 'index(keep, " " int((NR - 1) / d) " ")' "$1"; }

# embed: a folder of the fixture images = the reference image features, L2-normalised
"$vlp" embed --model $M --images $I --out "$T/img.npy" 2> "$T/err"; rc=$?
check "embed images exits 0 (got $rc)" '[ $rc = 0 ]'
check "embed images shape ($(npy_shape "$T/img.npy"))" '[ "$(npy_shape "$T/img.npy")" = "7, 32" ]'
npy_f32 "$T/img.npy" > "$T/got"; npy_f32 $M/image_features.npy > "$T/ref"
check "embed images = normalised image_features ($(rows_close "$T/got" "$T/ref" 32 1e-4 1))" 'rows_close "$T/got" "$T/ref" 32 1e-4 1 > /dev/null'
want=$(printf 'row\tkind\tok\tinput\n'; for k in "${!images[@]}"; do printf '%d\timage\t1\t%s\n' "$k" "$I/${images[$k]}"; done)
check "embed rows.tsv lists the images in order" '[ "$(cat "$T/img.npy.rows.tsv")" = "$want" ]'
unit=1
for k in "${!images[@]}"; do
  awk -v s=$((k * 32 + 1)) 'NR >= s && NR < s + 32 { t += $1 * $1 } END { exit !(t > 0.9999 && t < 1.0001) }' "$T/got" || unit=0
done
check "embed rows have unit norm" '[ $unit = 1 ]'
"$vlp" embed --model $M/model-f16.safetensors --no-normalize --images $I --out "$T/f16.npy" 2> /dev/null
npy_f32 "$T/f16.npy" > "$T/got"; npy_f32 $M/image_features-f16.npy > "$T/ref"
check "embed --no-normalize, F16 file = image_features-f16 ($(rows_close "$T/got" "$T/ref" 32 1e-4))" 'rows_close "$T/got" "$T/ref" 32 1e-4 > /dev/null'
"$vlp" embed --model $M/open_clip_model.safetensors --images $I/coffee.jpg --out "$T/oc.npy" 2> /dev/null
npy_f32 "$T/oc.npy" > "$T/got"; npy_f32 $M/image_features.npy | sed -n '65,96p' > "$T/ref"
check "embed, open_clip layout, one image ($(rows_close "$T/got" "$T/ref" 32 1e-4 1))" 'rows_close "$T/got" "$T/ref" 32 1e-4 1 > /dev/null'

# embed --text (JSONL to stdout) = the reference text features; the long prompt is cut, with a warning
"$vlp" embed --model $M "${texts[@]}" --format jsonl --out - > "$T/txt.jsonl" 2> "$T/err"; rc=$?
check "embed --text exits 0 (got $rc)" '[ $rc = 0 ]'
check "embed --text: one JSON line per text" '[ $(grep -c "^{\"kind\": \"text\", \"input\": .*, \"ok\": true, \"embedding\": \[" "$T/txt.jsonl") = 7 ]'
sed 's/.*"embedding": \[\(.*\)\]}$/\1/' "$T/txt.jsonl" | tr ',' '\n' | tr -d ' ' > "$T/got"
npy_f32 $M/text_features.npy > "$T/all"; select_rows "$T/all" 32 > "$T/ref"
check "embed --text = normalised text_features ($(rows_close "$T/got" "$T/ref" 32 1e-4 1))" 'rows_close "$T/got" "$T/ref" 32 1e-4 1 > /dev/null'
check "embed --text warns about the over-long prompt" 'grep -q "warning: --text #6: .*over the context length 77; cut" "$T/err"'
"$vlp" embed --model $M --text-file "$T/prompts.txt" --out "$T/tf.npy" 2> /dev/null
npy_f32 "$T/tf.npy" > "$T/got"
check "embed --text-file = the same features ($(rows_close "$T/got" "$T/ref" 32 1e-4 1))" 'rows_close "$T/got" "$T/ref" 32 1e-4 1 > /dev/null'

# similarity: the 7 x 7 logit matrix = logits_per_image (tolerance 1e-4 x exp(logit_scale) = 2e-3)
"$vlp" similarity --model $M --images $I "${texts[@]}" --json > "$T/sim.jsonl" 2> "$T/err"; rc=$?
check "similarity exits 0 (got $rc)" '[ $rc = 0 ]'
check "similarity --json: 7 rows of 7 logits" '[ $(grep -c "\"ok\": true, \"logits\": \[[^],]*\(, [^],]*\)\{6\}\]}$" "$T/sim.jsonl") = 7 ]'
sed 's/.*"logits": \[\(.*\)\]}$/\1/' "$T/sim.jsonl" | tr ',' '\n' | tr -d ' ' > "$T/got"
npy_f32 $M/logits_per_image.npy > "$T/all"; select_cols "$T/all" 8 > "$T/ref"
check "similarity = logits_per_image" 'paste "$T/got" "$T/ref" | awk "{d = \$1 - \$2; if (d < 0) d = -d; if (d > 2.1e-3) bad = 1} END {exit bad || NR != 49}"'
"$vlp" similarity --model $M --images $I --text "a cat" --text "a dog" --text "coffee" > "$T/sim.txt" 2> /dev/null
check "similarity table: header + one row of 3 logits per image" '[ $(wc -l < "$T/sim.txt") = 8 ] && [ $(awk "NR > 1 && NF == 4 && \$2 ~ /^-?[0-9]+\.[0-9]+$/" "$T/sim.txt" | wc -l) = 7 ]'

# classify: with the template "{}" the labels are the prompts, so the probabilities are the
# softmax of the reference logits over those 7 columns
"$vlp" classify --model $M --labels-file "$T/prompts.txt" --template "{}" --top-k 3 $I > "$T/cls.txt" 2> "$T/err"; rc=$?
check "classify exits 0 (got $rc)" '[ $rc = 0 ]'
check "classify: each image then its top 3 labels" '[ $(wc -l < "$T/cls.txt") = 28 ] && [ $(grep -c "^ *[0-9]\+\.[0-9][0-9]%  " "$T/cls.txt") = 21 ]'
awk -v keep=" ${cols[*]} " 'index(keep, " " ((NR - 1) % 8) " ") { print int((NR - 1) / 8), (NR - 1) % 8, $1 }' "$T/all" |
  awk -v top=3 '
    { l[$1, n[$1]++] = $3; c[$1, n[$1] - 1] = $2 }
    END {
      for (i = 0; i < 7; i++) {
        m = -1e30; for (j = 0; j < n[i]; j++) if (l[i, j] > m) m = l[i, j]
        s = 0; for (j = 0; j < n[i]; j++) { p[j] = exp(l[i, j] - m); s += p[j]; used[j] = 0 }
        for (t = 0; t < top; t++) { b = -1; for (j = 0; j < n[i]; j++) if (!used[j] && (b < 0 || p[j] > p[b])) b = j
                                    used[b] = 1; printf "%.2f %d\n", 100 * p[b] / s, c[i, b] }
      }
    }' > "$T/want"
while IFS= read -r line; do # percentages and which prompt, in printed order
  pct=${line%%%*}; label=${line#*%  }
  for j in "${!prompts[@]}"; do [ -n "${prompts[$j]}" ] && [ "${prompts[$j]}" = "$label" ] && echo "$pct $j"; done
done < <(grep "^ *[0-9.]*%  " "$T/cls.txt") > "$T/gotcls"
check "classify top-3 labels and probabilities = softmax of the reference logits" \
  'paste -d" " "$T/gotcls" "$T/want" | awk "{d = \$1 - \$3; if (d < 0) d = -d; if (\$2 != \$4 || d > 0.02) bad = 1} END {exit bad || NR != 21}"'
"$vlp" classify --model $M --labels "cat,dog,car" --json $I/coffee.jpg $I/small.png > "$T/cls.jsonl" 2> /dev/null
check "classify --json: top-k capped at the 3 labels, probabilities sum to 1" \
  '[ $(wc -l < "$T/cls.jsonl") = 2 ] && awk -F"\"prob\": " "{s = 0; for (i = 2; i <= NF; i++) s += \$i + 0; if (NF != 4 || s < 0.9999 || s > 1.0001) bad = 1} END {exit bad}" "$T/cls.jsonl"'

# info --json
"$vlp" info --json $M > "$T/info.json" 2> /dev/null; rc=$?
check "info --json exits 0 (got $rc)" '[ $rc = 0 ]'
missing=""
for kv in '"embed_dim": 32' '"image_size": 64' '"patch_size": 16' '"vision_width": 128' '"vision_layers": 2' \
          '"vision_heads": 2' '"context_length": 77' '"vocab_size": 49408' '"text_width": 64' '"text_layers": 2' \
          '"text_heads": 2' '"vision_act": "quick_gelu"' '"layout": "hf"' '"F32": 78'; do
  grep -qF "$kv" "$T/info.json" || missing="$missing $kv"
done
check "info --json holds the fixture config${missing:+ (missing:$missing)}" '[ -z "$missing" ]'
if [ -x /usr/bin/python3 ]; then
  check "info --json is valid JSON" '/usr/bin/python3 -m json.tool "$T/info.json" > /dev/null'
fi
"$vlp" info --json $M/model-f16.safetensors 2> /dev/null | grep -q '"F16": 78'
check "info --json counts F16 tensors" '[ $? = 0 ]'

# tokenize --context 77 and plain ids = the fixture, for every row whose text has no JSON escape
grep -v '\\' tests/fixtures/clip/tokenizer.jsonl > "$T/tok.jsonl"
sed -n 's/^{"text": "\(.*\)", "ids": \[.*$/\1/p' "$T/tok.jsonl" > "$T/tok.txt"
sed -n 's/.*"context77": \(\[[^]]*\]\)}$/\1/p' "$T/tok.jsonl" > "$T/want77"
sed -n 's/.*"ids": \(\[[^]]*\]\), "context77".*/\1/p' "$T/tok.jsonl" > "$T/wantids"
"$vlp" tokenize --context 77 < "$T/tok.txt" > "$T/got77"; rc=$?
check "tokenize --context 77 = fixture context77 ($(wc -l < "$T/tok.txt") texts, exit $rc)" '[ $rc = 0 ] && [ $(wc -l < "$T/want77") -gt 2000 ] && cmp -s "$T/got77" "$T/want77"'
"$vlp" tokenize < "$T/tok.txt" > "$T/gotids"
check "tokenize = fixture ids" 'cmp -s "$T/gotids" "$T/wantids"'
check "tokenize TEXT arguments" '[ "$("$vlp" tokenize "a photo of a cat" "hello world")" = "$(printf "[320, 1125, 539, 320, 2368]\n[3306, 1002]")" ]'

# tokenize --bert (WordPiece) = tests/fixtures/bert/tokenizer.jsonl ids, rows without JSON escapes
grep -v '\\' tests/fixtures/bert/tokenizer.jsonl > "$T/wp.jsonl"
sed -n 's/^{"text": "\(.*\)", "tokens": .*$/\1/p' "$T/wp.jsonl" > "$T/wp.txt"
sed -n 's/.*\], "ids": \(\[[^]]*\]\).*/\1/p' "$T/wp.jsonl" > "$T/wpids"
"$vlp" tokenize --bert < "$T/wp.txt" > "$T/wpgot"; rc=$?
check "tokenize --bert = fixture ids ($(wc -l < "$T/wp.txt") texts, exit $rc)" '[ $rc = 0 ] && [ $(wc -l < "$T/wpids") -gt 3500 ] && cmp -s "$T/wpgot" "$T/wpids"'
"$vlp" tokenize --vocab tests/fixtures/bert/vocab.txt < "$T/wp.txt" > "$T/wpgot2"
check "tokenize --vocab vocab.txt selects WordPiece" 'cmp -s "$T/wpgot2" "$T/wpids"'
check "tokenize --bert --pair --context" '[ "$("$vlp" tokenize --bert --pair --context 9 "a b c" "d e f g")" = "{\"input_ids\": [101, 1037, 1038, 1039, 102, 1040, 1041, 1042, 102], \"token_type_ids\": [0, 0, 0, 0, 0, 1, 1, 1, 1], \"attention_mask\": [1, 1, 1, 1, 1, 1, 1, 1, 1]}" ]'
check "tokenize --bert --pair from stdin (A<tab>B)" '[ "$(printf "hi there\tyou\n" | "$vlp" tokenize --bert --pair --max-length 7)" = "{\"input_ids\": [101, 7632, 2045, 102, 2017, 102, 0], \"token_type_ids\": [0, 0, 0, 0, 1, 1, 0], \"attention_mask\": [1, 1, 1, 1, 1, 1, 0]}" ]'
expect_fail_early() { # as expect_fail below (defined later)
  local name=$1 want=$2 pat=$3; shift 3
  "$@" > /dev/null 2> "$T/err"; local rc=$?
  check "$name: exit $want (got $rc), message names '$pat'" '[ $rc = $want ] && grep -qF -- "$pat" "$T/err"'
}
expect_fail_early "tokenize --pair without --context" 2 "--context" "$vlp" tokenize --bert --pair a b
expect_fail_early "tokenize --pair odd text count" 2 "two at a time" "$vlp" tokenize --bert --pair --context 8 a
expect_fail_early "tokenize --pair with CLIP BPE" 2 "WordPiece" "$vlp" tokenize --pair --context 8 a b
expect_fail_early "tokenize --bert --no-truncate too long" 1 "do not fit" "$vlp" tokenize --bert --context 4 --no-truncate "a b c"

# a folder with bad images: reported and skipped, the output says which inputs it holds,
# --strict makes it fatal
mkdir -p "$T/imgs"
cp $I/coffee.jpg $I/small.png "$T/imgs/"
head -c 3000 $I/astronaut.png > "$T/imgs/broken.png"
echo "not an image" > "$T/imgs/text.jpg"
"$vlp" embed --model $M --images "$T/imgs" --out "$T/bad.npy" 2> "$T/err"; rc=$?
check "embed folder with bad images exits 0 (got $rc)" '[ $rc = 0 ]'
check "bad images reported by name" 'grep -q "skipped .*imgs/broken.png: .*PNG" "$T/err" && grep -q "skipped .*imgs/text.jpg: " "$T/err"'
check "rows.tsv marks them" '[ "$(cut -f3,4 "$T/bad.npy.rows.tsv" | tail -n +2 | sed "s|$T/imgs/||")" = "$(printf "0\tbroken.png\n1\tcoffee.jpg\n1\tsmall.png\n0\ttext.jpg")" ]'
npy_f32 "$T/bad.npy" > "$T/got"
check "skipped rows are zero, the others are not" 'awk "{z = (\$1 == 0); r = int((NR - 1) / 32); if ((r == 0 || r == 3) != z) bad = 1} END {exit bad || NR != 128}" "$T/got"'
"$vlp" embed --model $M --images "$T/imgs" --format jsonl --out - 2> /dev/null | grep -c '"ok": false' > "$T/n"
check "jsonl marks them ok=false" '[ "$(cat "$T/n")" = 2 ]'
"$vlp" embed --model $M --images "$T/imgs" --out "$T/bad2.npy" --strict 2> "$T/err"; rc=$?
check "--strict: a bad image is fatal (exit $rc)" '[ $rc = 1 ] && grep -q "broken.png" "$T/err" && grep -q "failed (--strict)" "$T/err"'
"$vlp" classify --model $M --labels "cat,dog" "$T/imgs" > "$T/cls.txt" 2> /dev/null; rc=$?
check "classify lists skipped images (exit $rc)" '[ $rc = 0 ] && [ $(grep -c "(skipped" "$T/cls.txt") = 2 ]'
"$vlp" embed --model $M --images "$T/imgs/broken.png" --out "$T/b.npy" 2> "$T/err"; rc=$?
check "embed: no image readable is a failure (exit $rc)" '[ $rc = 1 ] && grep -q "none of the 1 images" "$T/err"'

# bad input: non-zero exit and a message naming the file or the flag
expect_fail() { # expect_fail NAME RC PATTERN COMMAND...
  local name=$1 want=$2 pat=$3; shift 3
  "$@" > /dev/null 2> "$T/err"; local rc=$?
  check "$name: exit $want (got $rc), message names '$pat'" '[ $rc = $want ] && grep -qF -- "$pat" "$T/err"'
}
expect_fail "missing model" 1 "$T/nomodel" "$vlp" embed --model "$T/nomodel" --text hi --out "$T/x.npy"
mkdir -p "$T/trunc" "$T/garbage"
cp $M/config.json "$T/trunc/"; head -c 5000 $M/model.safetensors > "$T/trunc/model.safetensors"
cp $M/config.json "$T/garbage/"; printf '\x10\x00\x00\x00\x00\x00\x00\x00{"a": not json }' > "$T/garbage/model.safetensors"
expect_fail "truncated safetensors (embed)" 1 "$T/trunc/model.safetensors" "$vlp" embed --model "$T/trunc" --text hi --out "$T/x.npy"
expect_fail "truncated safetensors (info)" 1 "$T/trunc/model.safetensors" "$vlp" info "$T/trunc"
expect_fail "corrupt safetensors header (classify)" 1 "$T/garbage/model.safetensors" "$vlp" classify --model "$T/garbage" --labels a,b $I/small.png
expect_fail "corrupt safetensors header (similarity)" 1 "$T/garbage/model.safetensors" "$vlp" similarity --model "$T/garbage" --images $I/small.png --text a
expect_fail "empty --text" 1 "--text #2: empty text" "$vlp" embed --model $M --text "a cat" --text "  " --out "$T/x.npy"
printf 'a cat\n\na dog\n' > "$T/gap.txt"
expect_fail "empty line in --text-file" 1 "$T/gap.txt:2: empty text" "$vlp" embed --model $M --text-file "$T/gap.txt" --out "$T/x.npy"
expect_fail "missing --text-file" 1 "$T/none.txt" "$vlp" embed --model $M --text-file "$T/none.txt" --out "$T/x.npy"
expect_fail "missing image path" 1 "$T/none.png" "$vlp" embed --model $M --images "$T/none.png" --out "$T/x.npy"
expect_fail "over-long text under --strict" 1 "over the context length 77 (--strict)" "$vlp" embed --model $M --strict --text "${prompts[6]}" --out "$T/x.npy"
expect_fail "unwritable --out" 1 "$T/nodir/x.npy" "$vlp" embed --model $M --text hi --out "$T/nodir/x.npy"
expect_fail "embed without --model" 2 "--model is required" "$vlp" embed --text hi --out "$T/x.npy"
expect_fail "bad --format" 2 "--format" "$vlp" embed --model $M --text hi --out "$T/x.npy" --format csv
expect_fail "bad --top-k" 2 "--top-k" "$vlp" classify --model $M --labels a,b --top-k 0 $I/small.png
expect_fail "template without {}" 2 "--template must contain {}" "$vlp" classify --model $M --labels a,b --template "a photo" $I/small.png
expect_fail "info without a model" 2 "which model" "$vlp" info
expect_fail "tokenize bad --context" 2 "--context" "$vlp" tokenize --context 1 hi
expect_fail "tokenize --no-truncate over the context" 1 "77" "$vlp" tokenize --context 77 --no-truncate "${prompts[6]}"
for c in embed classify similarity info init tokenize; do
  expect_fail "$c: unknown flag" 2 "--bogus" "$vlp" $c --bogus
done

# init: a small config and a preset name; unknown config fields are refused
printf '{"embed_dim": 16, "image_size": 32, "patch_size": 16, "vision_width": 32, "vision_layers": 1, "vision_heads": 2,
 "context_length": 16, "text_width": 32, "text_layers": 1, "text_heads": 2}\n' > "$T/small.json"
"$vlp" init --config "$T/small.json" --seed 3 "$T/small" > "$T/out" 2>&1; rc=$?
check "init --config exits 0 (got $rc)" '[ $rc = 0 ] && grep -q "wrote $T/small" "$T/out" && [ -f "$T/small/model.safetensors" ] && [ -f "$T/small/config.json" ]'
"$vlp" info --json "$T/small" > "$T/info.json" 2> /dev/null
check "info of the init'd model shows its config" 'grep -qF "\"embed_dim\": 16" "$T/info.json" && grep -qF "\"context_length\": 16" "$T/info.json" && grep -qF "\"vision_width\": 32" "$T/info.json"'
"$vlp" embed --model "$T/small" --images $I/small.png --text "a small picture" --out "$T/s.npy" 2> /dev/null; rc=$?
check "the init'd model embeds (exit $rc, shape $(npy_shape "$T/s.npy"))" '[ $rc = 0 ] && [ "$(npy_shape "$T/s.npy")" = "2, 16" ]'
"$vlp" init --config "$T/small.json" --seed 3 "$T/small2" > /dev/null 2>&1
check "init is deterministic for a seed" 'cmp -s "$T/small/model.safetensors" "$T/small2/model.safetensors"'
printf '{"embed_dimm": 16}\n' > "$T/typo.json"
expect_fail "init: unknown config field" 1 "embed_dimm" "$vlp" init --config "$T/typo.json" "$T/typo"
expect_fail "init: unknown preset" 2 "nope" "$vlp" init --preset nope "$T/typo"

# ---- fusion / captioning models (tools/vlp/cmd_fusion.c): tiny random models -------------------
IMG=tests/fixtures/images/bmp_rgb24.bmp
"$vlp" vl-init --preset blip-tiny --vocab tests/fixtures/bert/vocab.txt --seed 1 "$T/blip" > /dev/null 2>&1
"$vlp" vl-init --preset albef-tiny --seed 1 "$T/albef" > /dev/null 2>&1
"$vlp" vl-init --preset vilt-tiny --seed 1 "$T/vilt" > /dev/null 2>&1
check "vl-init writes model, config with family, vocab" 'grep -q "\"family\": \"captioning\"" "$T/blip/config.json" && [ -s "$T/blip/vocab.txt" ] && grep -q "\"dual_stream\"" "$T/albef/config.json"'
out=$("$vlp" --threads 1 caption "$T/blip" "$IMG" "$IMG" --max-len 6 2>&1); rc=$?
check "caption: one line per image (exit $rc)" '[ $rc = 0 ] && [ $(echo "$out" | grep -c "^$IMG	.") = 2 ]'
out=$("$vlp" --threads 1 caption "$T/blip" "$IMG" --beam 3 --length-penalty 0.6 2>&1); rc=$?
check "caption --beam 3 (exit $rc)" '[ $rc = 0 ] && echo "$out" | grep -q "^$IMG	."'
# --model MODEL IMAGE... (the issue's form); beam search (beam 3, as eval --task caption) by default
"$vlp" --threads 1 caption --model "$T/blip" "$IMG" "$IMG" > "$T/capd" 2> "$T/capd.err"; rc=$?
"$vlp" --threads 1 caption --model "$T/blip" "$IMG" "$IMG" --beam 3 > "$T/capb" 2> "$T/capb.err"
"$vlp" --threads 1 caption --model "$T/blip" "$IMG" "$IMG" --greedy > "$T/capg" 2> "$T/capg.err"
"$vlp" --threads 1 caption "$T/blip" "$IMG" "$IMG" --beam 1 > "$T/cap1" 2> "$T/cap1.err"
check "caption --model M IMAGE... (exit $rc): one line per image, default = --beam 3, reported as beam search" '[ $rc = 0 ] && [ $(grep -c "^$IMG	." "$T/capd") = 2 ] && cmp -s "$T/capd" "$T/capb" && grep -q "beam search (beam 3," "$T/capd.err" && cmp -s "$T/capd.err" "$T/capb.err"'
check "caption --greedy = --beam 1, reported as greedy search" '[ -s "$T/capg" ] && cmp -s "$T/capg" "$T/cap1" && grep -q "greedy search" "$T/capg.err" && grep -q "greedy search" "$T/cap1.err" && ! grep -q "beam" "$T/capg.err"'
expect_fail "caption: --greedy with --beam 4" 2 "do not combine" "$vlp" caption --model "$T/blip" "$IMG" --greedy --beam 4
expect_fail "caption: --model without an image" 2 "IMAGE" "$vlp" caption --model "$T/blip"
"$vlp" caption --help | grep -q "Default beam search with beam 3"
check "caption --help says beam search is the default" '[ $? = 0 ]'
a=$("$vlp" caption "$T/blip" "$IMG" --sample --seed 7 2>&1); b=$("$vlp" caption "$T/blip" "$IMG" --sample --seed 7 2>&1)
check "caption --sample is reproducible from --seed" '[ -n "$a" ] && [ "$a" = "$b" ]'
out=$("$vlp" --threads 1 match "$T/albef" "$IMG" "a dog" "two cats on a mat" 2>&1); rc=$?
check "match: a probability per text (exit $rc)" '[ $rc = 0 ] && [ $(echo "$out" | awk -F"\t" "\$1 >= 0 && \$1 <= 1" | wc -l) = 2 ]'
out=$("$vlp" --threads 1 fill "$T/vilt" "$IMG" "a [MASK] on the [MASK] ." --top 3 2>&1); rc=$?
check "fill: a line per [MASK] with 3 candidates (exit $rc)" '[ $rc = 0 ] && [ $(echo "$out" | awk -F"\t" "NF == 4" | wc -l) = 2 ]'
# the issue's flag forms give the positional forms' output
a=$("$vlp" --threads 1 match --model "$T/albef" --image "$IMG" --text "a dog" --text "two cats on a mat" 2>&1); rc=$?
check "match --model --image --text (exit $rc) = the positional form" '[ $rc = 0 ] && [ -n "$a" ] && [ "$a" = "$("$vlp" --threads 1 match "$T/albef" "$IMG" "a dog" "two cats on a mat" 2>&1)" ]'
a=$("$vlp" --threads 1 fill --model "$T/vilt" --image "$IMG" --text "a [MASK] face" --top 3 2>&1); rc=$?
check "fill --model --image --text (exit $rc): 3 candidates = the positional form" '[ $rc = 0 ] && [ $(echo "$a" | awk -F"\t" "NF == 4" | wc -l) = 1 ] && [ "$a" = "$("$vlp" --threads 1 fill "$T/vilt" "$IMG" "a [MASK] face" --top 3 2>&1)" ]'
expect_fail "match: no --text" 2 "--text" "$vlp" match --model "$T/albef" --image "$IMG"
expect_fail "fill: two texts" 2 "one TEXT" "$vlp" fill --model "$T/vilt" --image "$IMG" --text "a [MASK]" --text "b [MASK]"
# a text longer than the model's 16 positions: match keeps [CLS] + its first 14 tokens + [SEP], so
# it scores as those 14 words alone (one token each), never overflowing; fill refuses it (exit 1)
long="a red dog sat on the green mat near two small cats and one big bird by the old tree in the park"
w14=$(echo $long | cut -d' ' -f1-14); w13=$(echo $long | cut -d' ' -f1-13)
n14=$("$vlp" tokenize --vocab tests/fixtures/bert/vocab.txt "$w14" | tr -cd , | wc -c)
a=$("$vlp" --threads 1 match --model "$T/albef" --image "$IMG" --text "$long" --text "$w14" --text "$w13" 2>&1); rc=$?
pl=$(echo "$a" | sed -n 1p | cut -f1); p14=$(echo "$a" | sed -n 2p | cut -f1); p13=$(echo "$a" | sed -n 3p | cut -f1)
check "match: a text over max_text_len is truncated to [CLS] 14 tokens [SEP] (exit $rc; $pl = $p14 != $p13)" '[ $rc = 0 ] && [ "$n14" = 13 ] && [ -n "$pl" ] && [ "$pl" = "$p14" ] && [ "$p14" != "$p13" ]'
expect_fail "fill: a text over the model's positions" 1 "longer than the model's positions" "$vlp" fill --model "$T/vilt" --image "$IMG" --text "$long [MASK]"
expect_fail "match: captioning model refused" 1 "captioning model" "$vlp" match "$T/blip" "$IMG" "x"
expect_fail "caption: fusion model refused" 1 "needs a captioning" "$vlp" caption "$T/vilt" "$IMG"
expect_fail "fill: text without [MASK]" 2 "no [MASK]" "$vlp" fill "$T/vilt" "$IMG" "no mask here"
expect_fail "caption: missing image" 1 "nope.png" "$vlp" caption "$T/blip" "$T/nope.png"
expect_fail "caption: --beam with --sample" 2 "do not combine" "$vlp" caption "$T/blip" "$IMG" --beam 2 --sample
expect_fail "vl-init: unknown preset" 2 "nope" "$vlp" vl-init --preset nope "$T/x"
out=$("$vlp" info --json "$T/albef" 2>&1); rc=$?
check "info names a VL model's family and objectives (exit $rc)" '[ $rc = 0 ] && echo "$out" | grep -q "\"family\": \"dual_stream\"" && echo "$out" | grep -q "\"objectives\": \[\"itc\", \"itm\", \"mlm\"\]"'

# train / eval / plot: a 4-step run on four fixture images; an interrupted run resumed to the
# same losses; retrieval on the same pairs; curves as SVG
printf 'filepath\ttitle\n%s\ta photo of an astronaut\n%s\ta cat on a chair\n%s\ta cup of coffee\n%s\tsome coins\n' \
  "$PWD/$I/astronaut.png" "$PWD/$I/chelsea_p.png" "$PWD/$I/coffee.jpg" "$PWD/$I/coins.png" > "$T/pairs.tsv"
targs=(--model "$T/small.json" --data "$T/pairs.tsv" --batch-size 4 --steps 4 --warmup 1 --lr 1e-3 --log-every 1 --workers 1)
VLP_PROGRESS=0 "$vlp" --threads 2 train "${targs[@]}" --out "$T/run" > "$T/out" 2> "$T/err"; rc=$?
check "train exits 0 (got $rc), progress names loss and pairs/s" '[ $rc = 0 ] && grep -q "step 4/4  loss" "$T/err" && grep -q "pairs/s" "$T/err" && [ -f "$T/run/model/model.safetensors" ]'
VLP_PROGRESS=0 "$vlp" --threads 2 train "${targs[@]}" --out "$T/run2" --stop-after 2 > /dev/null 2>&1 &&
  VLP_PROGRESS=0 "$vlp" --threads 2 train "${targs[@]}" --out "$T/run2" --resume > /dev/null 2>&1; rc=$?
losses() { sed -n 's/.*"loss_last":\([^,]*\),.*/\1/p' "$1/metrics.jsonl" | tr '\n' ' '; }
check "stop + --resume gives the uninterrupted losses (exit $rc: $(losses "$T/run") vs $(losses "$T/run2"))" '[ $rc = 0 ] && [ -n "$(losses "$T/run")" ] && [ "$(losses "$T/run")" = "$(losses "$T/run2")" ]'
# Ctrl-C: the run stops at a step boundary, saves a checkpoint there and exits 1; --resume then
# continues with the losses of a run that was never interrupted (same --steps, so same schedule)
VLP_PROGRESS=0 "$vlp" --threads 1 train "${targs[@]}" --steps 100000 --save-every 0 --out "$T/runi" > /dev/null 2> "$T/erri" &
pid=$!
for i in $(seq 1 600); do grep -q '"step":3,' "$T/runi/metrics.jsonl" 2> /dev/null && break; sleep 0.05; done
kill -INT $pid; wait $pid; rc=$?
n=$(sed -n 's/.*interrupted at step \([0-9]*\);.*/\1/p' "$T/erri")
check "SIGINT: exit 1 (got $rc), 'interrupted at step $n', its checkpoint saved" '[ $rc = 1 ] && [ -n "$n" ] && [ -d "$T/runi/checkpoints/$(printf "step_%08d" "$n")" ]'
VLP_PROGRESS=0 "$vlp" --threads 1 train "${targs[@]}" --steps 100000 --save-every 0 --out "$T/runi" --resume --stop-after $((n + 2)) > /dev/null 2>&1
VLP_PROGRESS=0 "$vlp" --threads 1 train "${targs[@]}" --steps 100000 --save-every 0 --out "$T/runu" --stop-after $((n + 2)) > /dev/null 2>&1
li=$(grep "\"step\":$((n + 2))," "$T/runi/metrics.jsonl" | grep -o '"loss_last":[^,]*'); lu=$(grep "\"step\":$((n + 2))," "$T/runu/metrics.jsonl" | grep -o '"loss_last":[^,]*')
check "SIGINT then --resume: step $((n + 2)) as uninterrupted ($li vs $lu)" '[ -n "$li" ] && [ "$li" = "$lu" ]'
# a corrupt image inside a tar shard: replaced and named (key and shard) in a warning; --strict: fatal
mkdir -p "$T/shard"
cp "$I/astronaut.png" "$T/shard/k0.png"; cp "$I/chelsea_p.png" "$T/shard/k1.png"; cp "$I/coins.png" "$T/shard/k2.png"
head -c 300 "$I/coins.png" > "$T/shard/k3.png"
for k in 0 1 2 3; do echo "caption $k" > "$T/shard/k$k.txt"; done
(cd "$T/shard" && tar -cf ../shard-000.tar k0.png k0.txt k1.png k1.txt k2.png k2.txt k3.png k3.txt)
sargs=(--model "$T/small.json" --data "$T/shard-000.tar" --batch-size 4 --steps 2 --warmup 1 --log-every 1 --workers 1)
VLP_PROGRESS=0 "$vlp" --threads 2 train "${sargs[@]}" --out "$T/runbad" > /dev/null 2> "$T/err"; rc=$?
check "train: a corrupt image in a shard is replaced with a warning naming key and shard (exit $rc)" '[ $rc = 0 ] && grep -q "warning: step 1: 1 unreadable pair replaced" "$T/err" && grep -q "shard-000.tar" "$T/err" && grep -q "k3" "$T/err" && [ -f "$T/runbad/model/model.safetensors" ]'
expect_fail "train --strict: a corrupt image in a shard is fatal" 1 "k3" "$vlp" train "${sargs[@]}" --out "$T/runbad2" --strict
expect_fail "train --dump-compact refuses data with unreadable pairs" 1 "unreadable pair" "$vlp" train "${sargs[@]}" --out "$T/runbad3" --dump-batches 2 --dump-compact
expect_fail "train: fresh run over an existing run" 1 "--resume" "$vlp" train "${targs[@]}" --out "$T/run"
expect_fail "train: bad --steps" 2 "--steps" "$vlp" train "${targs[@]}" --steps abc --out "$T/run3"
expect_fail "train: no data" 2 "--data" "$vlp" train --model "$T/small.json" --out "$T/run3"
# a VL family through the same trainer (WordPiece, ITC + ITM + MLM), then ITM re-ranking
cat > "$T/vl.json" <<EOF
{"family": "albef", "objectives": {"itc": 1, "itm": 1, "mlm": 1},
 "model": {"image_size": 32, "patch_size": 8, "vision_width": 32, "vision_layers": 1, "vision_heads": 2,
           "vision_mlp": 64, "max_text_len": 16, "width": 32, "layers": 2, "heads": 2, "mlp": 64,
           "fusion_layers": 1, "embed_dim": 16}}
EOF
VLP_PROGRESS=0 "$vlp" --threads 2 train --config "$T/vl.json" --data "$T/pairs.tsv" --batch-size 4 --steps 2 \
  --log-every 1 --workers 1 --out "$T/vlrun" > /dev/null 2> "$T/err"; rc=$?
check "VL train exits 0 (got $rc) and saves a dual_stream model; each objective's loss in progress and metrics" '[ $rc = 0 ] && grep -q "step 2/2  loss [0-9.]* (itc [0-9.]* itm [0-9.]* mlm [0-9.]*)" "$T/err" && grep -q dual_stream "$T/vlrun/model/config.json" && grep -q "\"loss_itm\":" "$T/vlrun/metrics.jsonl"'
# any tokenizer feeds any text model: the same family trained on CLIP BPE ("tokenizer" in its model config);
# the model carries its tokenizer, and match / fill / eval / caption use it
sed 's/"embed_dim": 16}}/"embed_dim": 16, "tokenizer": "clip_bpe"}}/' "$T/vl.json" > "$T/vlbpe.json"
VLP_PROGRESS=0 "$vlp" --threads 2 train --config "$T/vlbpe.json" --data "$T/pairs.tsv" --batch-size 4 --steps 2 \
  --log-every 1 --workers 1 --out "$T/vlbpe" > /dev/null 2> "$T/err"; rc=$?
check "VL train on CLIP BPE (exit $rc): the model records clip_bpe and a 49410-id vocabulary ([MASK], [PAD] past BPE)" '[ $rc = 0 ] && grep -q "\"tokenizer\": \"clip_bpe\"" "$T/vlbpe/model/config.json" && grep -q "\"vocab_size\": 49410" "$T/vlbpe/model/config.json" && grep -q "\"mask_id\": 49408" "$T/vlbpe/model/config.json" && grep -q "\"cls_id\": 49406" "$T/vlbpe/model/config.json" && grep -q "\"pad_id\": 49409" "$T/vlbpe/model/config.json" && grep -q "\"loss_mlm\":" "$T/vlbpe/metrics.jsonl"'
out=$("$vlp" fill "$T/vlbpe/model" "$IMG" "a [MASK] face" --top 3 2>&1); rc=$?
check "fill on a BPE model (exit $rc): 3 decoded tokens at the one [MASK]: $out" '[ $rc = 0 ] && [ $(echo "$out" | grep -c .) = 1 ] && [ $(echo "$out" | tr "\t" "\n" | grep -c ":0\.[0-9]*$") = 3 ]'
out=$("$vlp" match "$T/vlbpe/model" "$IMG" "a smiling face" 2>&1); rc=$?
check "match on a BPE model (exit $rc): $out" '[ $rc = 0 ] && echo "$out" | grep -q "0\.[0-9]"'
out=$("$vlp" eval --model "$T/vlbpe/model" --data "$T/pairs.tsv" --rerank 2 2>&1); rc=$?
check "eval --rerank on a BPE model (exit $rc)" '[ $rc = 0 ] && echo "$out" | grep -q "ITM@2 "'
expect_fail "a WordPiece --vocab for a BPE model is refused, naming the file" 1 "vocab.txt: not a CLIP BPE merges file" "$vlp" eval --model "$T/vlbpe/model" --data "$T/pairs.tsv" --vocab tests/fixtures/bert/vocab.txt
sed 's/"clip_bpe"/"sentencepiece"/' "$T/vlbpe/model/config.json" > "$T/badtok.json"; mkdir -p "$T/badtok"; cp "$T/badtok.json" "$T/badtok/config.json"; cp "$T/vlbpe/model/model.safetensors" "$T/badtok/"
expect_fail "a model config naming an unknown tokenizer is refused, naming the field" 1 "tokenizer" "$vlp" match "$T/badtok" "$IMG" "x"
"$vlp" vl-init --preset blip-tiny --tokenizer clip_bpe --seed 3 "$T/blipbpe" > /dev/null 2> "$T/err"; rc=$?
out=$("$vlp" caption "$T/blipbpe" "$IMG" --max-len 6 2>&1); rc2=$?
check "vl-init --tokenizer clip_bpe and caption decode BPE text (exit $rc/$rc2): '$out'" '[ $rc = 0 ] && [ $rc2 = 0 ] && grep -q "\"tokenizer\": \"clip_bpe\"" "$T/blipbpe/config.json" && [ -n "$out" ] && ! echo "$out" | grep -q "startoftext\|endoftext\|\[PAD\]"'
out=$("$vlp" info "$T/blipbpe" --json 2>&1); out2=$("$vlp" info "$T/blipbpe" 2>&1)
check "info names a BPE model's tokenizer" 'echo "$out" | grep -q "\"tokenizer\": \"clip_bpe\"" && echo "$out2" | grep -q "vocab 49410 (CLIP BPE)"'
expect_fail "vl-init: unknown --tokenizer" 2 "wordpiece or clip_bpe" "$vlp" vl-init --preset blip-tiny --tokenizer bpe "$T/x"
# ... and the CLIP dual encoder fed by WordPiece: [CLS] text [SEP], pooled at the first [SEP]; its own
# vocab.txt travels with the model; embed / classify / eval / info use it
printf '[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\na\nphoto\nof\nan\nastronaut\ncat\non\nchair\ncup\ncoffee\nsome\ncoins\n' > "$T/wp_vocab.txt"
printf '{"model": %s, "vocab": "%s"}\n' "$(sed 's/}$/, "tokenizer": "wordpiece"}/' "$T/small.json" | tr -d '\n')" "$T/wp_vocab.txt" > "$T/wpclip.json"
VLP_PROGRESS=0 "$vlp" --threads 2 train --config "$T/wpclip.json" --data "$T/pairs.tsv" --batch-size 4 --steps 2 \
  --warmup 1 --log-every 1 --workers 1 --out "$T/wpclip" > /dev/null 2> "$T/err"; rc=$?
check "CLIP train on WordPiece (exit $rc): config.json says BertTokenizer, [SEP] id 3, 17 ids; vocab.txt beside it" '[ $rc = 0 ] && grep -q "\"tokenizer_class\": \"BertTokenizer\"" "$T/wpclip/model/config.json" && grep -q "\"eos_token_id\": 3" "$T/wpclip/model/config.json" && grep -q "\"vocab_size\": 17" "$T/wpclip/model/config.json" && cmp -s "$T/wp_vocab.txt" "$T/wpclip/model/vocab.txt"'
out=$("$vlp" info "$T/wpclip/model" 2>&1)
check "info: a WordPiece CLIP pooled at [SEP], its vocabulary file" 'echo "$out" | grep -q "vocab 17 (WordPiece).*pooled at the first \[SEP\]" && echo "$out" | grep -q "vocabulary   $T/wpclip/model/vocab.txt"'
"$vlp" embed --model "$T/wpclip/model" --text "a cup of coffee" --text "A cup of coffee" --text "some coins" --format jsonl --out "$T/wpemb.jsonl" 2> "$T/err"; rc=$?
check "embed on a WordPiece CLIP (exit $rc): lower-cased text embeds alike, other text not" '[ $rc = 0 ] && [ "$(sed -n 1p "$T/wpemb.jsonl" | cut -d[ -f2)" = "$(sed -n 2p "$T/wpemb.jsonl" | cut -d[ -f2)" ] && [ "$(sed -n 1p "$T/wpemb.jsonl" | cut -d[ -f2)" != "$(sed -n 3p "$T/wpemb.jsonl" | cut -d[ -f2)" ]'
"$vlp" eval --model "$T/wpclip/model" --data "$T/pairs.tsv" --json > "$T/wpeval.json" 2> "$T/err"; rc=$?
out=$("$vlp" classify --model "$T/wpclip/model" --labels cat,coffee,coins --top-k 2 "$IMG" 2>&1); rc2=$?
check "eval and classify on a WordPiece CLIP (exit $rc/$rc2)" '[ $rc = 0 ] && grep -q "\"text_to_image\"" "$T/wpeval.json" && [ $rc2 = 0 ] && [ $(echo "$out" | grep -c "%") = 2 ]'
mkdir -p "$T/wpnovocab"; cp "$T/wpclip/model/config.json" "$T/wpclip/model/model.safetensors" "$T/wpnovocab/"
expect_fail "a WordPiece CLIP without its vocab.txt: the built-in vocabulary does not fit, said so" 1 "30522 tokens, the model's vocabulary 17" "$vlp" embed --model "$T/wpnovocab" --text "a cat" --out "$T/x.npy"
# --dump-batches on a VL run (bench/torch_train_albef.py's input): batches, initial model, AdamW groups, step-0 probe
"$vlp" --threads 2 train --config "$T/vl.json" --data "$T/pairs.tsv" --batch-size 4 --workers 1 --out "$T/vldump" \
  --dump-batches 2 > /dev/null 2> "$T/err"; rc=$?
check "VL train --dump-batches (exit $rc) writes batches, init, no_decay.txt and the probe" '[ $rc = 0 ] && [ -f "$T/vldump/batches/tokens_0001.npy" ] && grep -q dual_stream "$T/vldump/init/config.json" && grep -qx logit_scale "$T/vldump/no_decay.txt" && grep -q "\"itm\"" "$T/vldump/probe/losses.json" && [ -s "$T/vldump/probe/grads.safetensors" ] && [ -f "$T/vldump/probe/mlm_labels.npy" ] && [ -f "$T/vldump/probe/neg_txt.npy" ]'
"$vlp" --threads 2 train --config "$T/vl.json" --data "$T/pairs.tsv" --batch-size 4 --workers 1 --out "$T/vldumpc" \
  --dump-batches 2 --dump-compact > /dev/null 2> "$T/err"; rc=$?
check "VL train --dump-batches --dump-compact (exit $rc): the same probe from the run's first batch" '[ $rc = 0 ] && [ -f "$T/vldumpc/batches/index_0001.npy" ] && cmp -s "$T/vldump/probe/losses.json" "$T/vldumpc/probe/losses.json" && cmp -s "$T/vldump/probe/grads.safetensors" "$T/vldumpc/probe/grads.safetensors"'
out=$("$vlp" eval --model "$T/vlrun/model" --data "$T/pairs.tsv" --rerank 2 2>&1); rc=$?
check "eval --rerank on a VL model (exit $rc) prints ITC and ITM@2 rows" '[ $rc = 0 ] && echo "$out" | grep -q "ITC " && echo "$out" | grep -q "ITM@2 "'
sed 's/"mlm": 1}/"mlm": 1, "nsp": 1}/' "$T/vl.json" > "$T/vlbad.json"
expect_fail "train: unknown VL objective" 2 "nsp" "$vlp" train --config "$T/vlbad.json" --data "$T/pairs.tsv" --out "$T/vlrun2"
# an objective the architecture cannot serve: the message names the field or objective and the family
printf '{"model": "tiny", "objectives": {"mlm": 1}}' > "$T/clipmlm.json"
expect_fail "train: MLM on a CLIP dual encoder" 2 "'objectives' (mlm) needs a VL 'family'" "$vlp" train --config "$T/clipmlm.json" --data "$T/pairs.tsv" --out "$T/vlrun2"
sed 's/"family": "albef"/"family": "captioning"/; s/"itm": 1, "mlm": 1}/"lm": 1, "mlm": 1}/' "$T/vl.json" > "$T/capmlm.json"
expect_fail "train: MLM on a captioning model" 2 "objective 'mlm' needs a fusion family (single_stream, dual_stream or mome), not captioning" "$vlp" train --config "$T/capmlm.json" --data "$T/pairs.tsv" --out "$T/vlrun2"
sed 's/"mlm": 1}/"mlm": 1, "lm": 1}/' "$T/vl.json" > "$T/albeflm.json"
expect_fail "train: LM on a dual_stream model" 2 "objective 'lm' needs the captioning family, not dual_stream" "$vlp" train --config "$T/albeflm.json" --data "$T/pairs.tsv" --out "$T/vlrun2"
# vocabularies: a duplicate token, or special tokens a VL model needs, named with the file
{ echo "[PAD]"; echo "[UNK]"; echo "[CLS]"; echo "[SEP]"; echo "[MASK]"; echo "dog"; echo "cat"; echo "dog"; } > "$T/dup.txt"
expect_fail "vl-init: duplicate vocabulary token" 1 "$T/dup.txt': duplicate token 'dog' on lines 6 and 8" "$vlp" vl-init --preset albef-tiny --vocab "$T/dup.txt" "$T/x"
expect_fail "tokenize: duplicate vocabulary token" 1 "duplicate token 'dog' on lines 6 and 8" "$vlp" tokenize --vocab "$T/dup.txt" "a dog"
{ echo "[PAD]"; echo "[UNK]"; echo "[SEP]"; echo "dog"; } > "$T/nospec.txt"
expect_fail "vl-init: vocabulary without [CLS] and [MASK]" 1 "$T/nospec.txt': the vocabulary lacks the special tokens [CLS], [MASK] (vision-language models need [PAD], [CLS], [SEP], [MASK])" "$vlp" vl-init --preset albef-tiny --vocab "$T/nospec.txt" "$T/x"
sed "s|^{|{\"vocab\": \"$T/nospec.txt\", |" "$T/vl.json" > "$T/vlnospec.json"
expect_fail "train: vocabulary without [CLS] and [MASK]" 1 "$T/nospec.txt': the vocabulary lacks the special tokens [CLS], [MASK]" "$vlp" train --config "$T/vlnospec.json" --data "$T/pairs.tsv" --out "$T/vlrun2"
sed "s|^{|{\"vocab\": \"$T/novocab.txt\", |" "$T/vl.json" > "$T/vlnovocab.json"
expect_fail "train: missing vocabulary" 1 "cannot open '$T/novocab.txt'" "$vlp" train --config "$T/vlnovocab.json" --data "$T/pairs.tsv" --out "$T/vlrun2"
# captions longer than max_text_len (16) in VL training data: every row is [CLS] 14 tokens [SEP], and a
# step on them trains
{ printf 'filepath\ttitle\n'; for k in 1 2 3 4; do printf '%s\t%s %s\n' "$PWD/$I/coins.png" "$long" "$k"; done; } > "$T/long.tsv"
"$vlp" --threads 2 train --config "$T/vl.json" --data "$T/long.tsv" --batch-size 4 --workers 1 --out "$T/vllong" \
  --dump-batches 1 > /dev/null 2> "$T/err"; rc=$?
tk="$T/vllong/batches/tokens_0000.npy"
rows=$( [ -f "$tk" ] && od -An -v -td4 -j$((10 + $(od -An -tu2 -j8 -N2 "$tk" | tr -d ' '))) "$tk" | tr -s ' ' '\n' | sed '/^$/d' | paste -sd' ' | awk '{ for (i = 1; i <= NF; i += 16) { r = ""; for (k = 0; k < 16; k++) r = r " " $(i + k); print r } }')
check "VL data: captions over max_text_len are [CLS] ... [SEP] in 16 positions (exit $rc)" '[ $rc = 0 ] && [ $(echo "$rows" | wc -l) = 4 ] && [ $(echo "$rows" | awk "\$1 == 101 && \$16 == 102 && NF == 16" | wc -l) = 4 ] && [ $(echo "$rows" | awk "{ for (i = 2; i < 16; i++) if (\$i == 0 || \$i == 101 || \$i == 102) print }" | wc -l) = 0 ]'
VLP_PROGRESS=0 "$vlp" --threads 2 train --config "$T/vl.json" --data "$T/long.tsv" --batch-size 4 --steps 1 \
  --workers 1 --out "$T/vllong2" > /dev/null 2> "$T/err"; rc=$?
check "VL train on captions over max_text_len exits 0 (got $rc)" '[ $rc = 0 ] && [ -f "$T/vllong2/model/model.safetensors" ]'
# the recipes as vlp train resolves them (--print-config): issue 6's emoji-s shapes, batch, steps, seed,
# bert-base-uncased WordPiece, emoji-s's AdamW and schedule, and each family's layers and objectives
"$vlp" train --config configs/emoji-s.json --print-config > "$T/rc-s.json" 2> "$T/err"; rc=$?
check "train --print-config on emoji-s (exit $rc)" '[ $rc = 0 ] && grep -q "^  \"family\": \"clip\"" "$T/rc-s.json"'
opt() { sed -n '/^  "optimizer"/,/^  "clip_grad_norm"/p' "$1"; }
rk() { grep -q "^$2\"$3\": $4,\{0,1\}\$" "$1"; } # rk FILE INDENT KEY VALUE: one line of the pretty JSON
recipe() { # recipe NAME FAMILY OBJECTIVES then KEY=VALUE model fields
  local f="$T/rc-$1.json" n=$1 fam=$2 obj=$3 ok=1; shift 3
  "$vlp" train --config "configs/emoji-$n-s.json" --print-config > "$f" 2> "$T/err" || ok=0
  rk "$f" "  " family "\"$fam\"" && rk "$f" "  " batch_size 256 && rk "$f" "  " steps 600 && rk "$f" "  " seed 0 || ok=0
  rk "$f" "  " vocab '"bert-base-uncased (built in)"' && rk "$f" "    " vocab_size 30522 || ok=0
  [ "$(sed -n '/^  "objectives"/,/\]/p' "$f" | grep -o '"[a-z]*"' | grep -v objectives | paste -sd,)" = "$obj" ] || ok=0
  [ -n "$(opt "$f")" ] && [ "$(opt "$f")" = "$(opt "$T/rc-s.json")" ] || ok=0
  for kv in image_size=64 patch_size=8 width=128 heads=2 max_text_len=32 "$@"; do rk "$f" "    " "${kv%%=*}" "${kv#*=}" || ok=0; done
  check "recipe emoji-$n-s: $fam, $obj, $*" '[ $ok = 1 ]'
}
recipe vilt single_stream '"itm","mlm","mim"' layers=6
recipe albef dual_stream '"itc","itm","mlm"' vision_layers=4 vision_width=128 vision_heads=2 layers=4 fusion_layers=2
recipe vlmo mome '"itc","itm","mlm"' layers=6 fusion_layers=2
recipe cap captioning '"itc","lm"' vision_layers=4 vision_width=128 vision_heads=2 layers=4
fl=$(sed -n 's/^    "fusion_layers": \([0-9]*\),\{0,1\}$/\1/p' "$T/rc-cap.json")
check "recipe emoji-cap-s is CoCa-style: unimodal decoder layers below the ${fl:-?} multimodal ones" '[ -n "$fl" ] && [ "$fl" -ge 1 ] && [ "$fl" -le 3 ]'
# CoCa: a captioning decoder with a unimodal lower layer, ITC + LM; ITC retrieval and captions from it
cat > "$T/coca.json" <<EOF
{"family": "captioning", "objectives": {"itc": 1, "lm": 1},
 "model": {"image_size": 32, "patch_size": 8, "vision_width": 32, "vision_layers": 1, "vision_heads": 2,
           "vision_mlp": 64, "max_text_len": 16, "width": 32, "layers": 2, "heads": 2, "mlp": 64,
           "fusion_layers": 1, "embed_dim": 16}}
EOF
VLP_PROGRESS=0 "$vlp" --threads 2 train --config "$T/coca.json" --data "$T/pairs.tsv" --batch-size 4 --steps 2 \
  --log-every 1 --workers 1 --out "$T/cocarun" > /dev/null 2> "$T/err"; rc=$?
check "CoCa train (captioning, itc + lm) exits 0 (got $rc); both losses in progress and metrics" '[ $rc = 0 ] && grep -q "step 2/2  loss [0-9.]* (itc [0-9.]* lm [0-9.]*)" "$T/err" && grep -q "\"loss_itc\":" "$T/cocarun/metrics.jsonl" && grep -q "\"fusion_layers\": 1" "$T/cocarun/model/config.json"'
out=$("$vlp" eval --model "$T/cocarun/model" --data "$T/pairs.tsv" 2>&1); rc=$?
check "eval on the CoCa model (exit $rc): ITC retrieval rows" '[ $rc = 0 ] && echo "$out" | grep -q "ITC      text->image" && echo "$out" | grep -q "ITC      image->text"'
expect_fail "eval --rerank on the CoCa model: no ITM head" 1 "ITM head" "$vlp" eval --model "$T/cocarun/model" --data "$T/pairs.tsv" --rerank 2
out=$("$vlp" --threads 1 caption "$T/cocarun/model" "$IMG" --max-len 4 2>&1); rc=$?
check "caption with the CoCa model (exit $rc)" '[ $rc = 0 ] && echo "$out" | grep -q "^$IMG	."'
expect_fail "eval --rerank on a CLIP model" 1 "family" "$vlp" eval --model "$T/run/model" --data "$T/pairs.tsv" --rerank 2
"$vlp" eval --model "$T/run/model" --data "$T/pairs.tsv" --json > "$T/eval.json" 2> "$T/err"; rc=$?
check "eval --json exits 0 (got $rc) with 4 images and recall" '[ $rc = 0 ] && grep -q "\"images\": 4" "$T/eval.json" && grep -q "\"r10\": 1" "$T/eval.json"'
expect_fail "eval: no --data or --classes" 2 "--data" "$vlp" eval --model "$T/run/model"
"$vlp" plot "$T/run" --out "$T/curves.svg" > /dev/null 2>&1; rc=$?
check "plot writes an SVG (exit $rc)" '[ $rc = 0 ] && grep -q "<svg" "$T/curves.svg" && grep -q "polyline" "$T/curves.svg"'
expect_fail "plot: not a run" 1 "metrics.jsonl" "$vlp" plot "$T/nothing"

# data emoji / emoji-tasks on the mini npm packages (no network): counts, then a no-op rerun
mkdir -p "$T/npm" && cp tests/fixtures/emoji/*.tgz tests/fixtures/emoji/*.json "$T/npm/"  # the cache gets stamps
E=(--cache "$T/npm" --version 0.0.1 --offline)
out=$("$vlp" data emoji --out "$T/emoji" "${E[@]}" 2>&1); rc=$?
check "data emoji exits 0 (got $rc) with the split counts" '[ $rc = 0 ] && echo "$out" | grep -q "style       14 pairs" && [ -f "$T/emoji/manifest.json" ]'
out=$("$vlp" data emoji --out "$T/emoji" "${E[@]}" 2>&1); rc=$?
check "data emoji rerun: up to date (exit $rc)" '[ $rc = 0 ] && echo "$out" | grep -q "up to date"'
out=$("$vlp" data emoji-tasks --out "$T/emoji" "${E[@]}" --json 2>&1); rc=$?
check "data emoji-tasks --json exits 0 (got $rc)" '[ $rc = 0 ] && echo "$out" | grep -q "\"vqa-style\": 71" && [ -f "$T/emoji/tasks/summary.json" ]'
# eval --task (zero-shot, dual encoder) on the mini task files: one row per example, and the
# metrics equal vlp score's on the same predictions (both --out files end with the metrics object)
M=tests/fixtures/clip/model-tiny
mkdir -p "$T/dsrun"
for t in mc ground2 vqa nlvr; do
  "$vlp" eval --task $t --model $M --data "$T/emoji/tasks/$t-style.jsonl" --out "$T/dsrun/eval_${t}_style.json" \
    > /dev/null 2> "$T/err"; rc=$?
  rows=$(grep -c . "$T/emoji/tasks/$t-style.jsonl"); got=$(grep -c . "$T/dsrun/predictions_${t}_style.jsonl" 2> /dev/null)
  check "eval --task $t exits 0 (got $rc), $got predictions for $rows rows" '[ $rc = 0 ] && [ "$got" = "$rows" ]'
  "$vlp" score --task $t --data "$T/emoji/tasks/$t-style.jsonl" --predictions "$T/dsrun/predictions_${t}_style.jsonl" \
    --out "$T/score_$t.json" > /dev/null 2>&1
  a=$(sed -n '/"metrics"/,$p' "$T/dsrun/eval_${t}_style.json"); b=$(sed -n '/"metrics"/,$p' "$T/score_$t.json")
  check "eval --task $t metrics = vlp score's" '[ -n "$a" ] && [ "$a" = "$b" ]'
done
# a row whose image cannot be decoded: skipped, reported as FILE:LINE, a skipped marker at its line in
# the predictions (vlp score gives the same metrics); --strict: exit 1
echo "not an image" > "$T/emoji/tasks/broken.png"
BI='NR == 3 {sub(/"image": "[^"]*"/, "\"image\": \"broken.png\"")} {print}'
awk "$BI" "$T/emoji/tasks/vqa-style.jsonl" > "$T/emoji/tasks/vqa-badimg.jsonl"
awk "$BI" "$T/emoji/tasks/vqa-train.jsonl" > "$T/emoji/tasks/vqa-trainbadimg.jsonl"
rows=$(grep -c . "$T/emoji/tasks/vqa-badimg.jsonl")
"$vlp" eval --task vqa --model $M --data "$T/emoji/tasks/vqa-badimg.jsonl" --train "$T/emoji/tasks/vqa-train.jsonl" \
  --predictions "$T/pbad.jsonl" --out "$T/ebad.json" > /dev/null 2> "$T/err"; rc=$?
check "eval --task vqa: an unreadable image's row skipped (exit $rc), reported with its line, marked in the predictions" \
  '[ $rc = 0 ] && grep -q "vqa-badimg.jsonl:3: image .*broken.png: " "$T/err" && grep -q "1 of $rows rows skipped" "$T/err" && [ "$(grep -c . "$T/pbad.jsonl")" = "$rows" ] && [ $(grep -c "\"skipped\"" "$T/pbad.jsonl") = 1 ] && sed -n 3p "$T/pbad.jsonl" | grep -q "^{\"skipped\":true,\"error\":\".*vqa-badimg.jsonl:3: image " && grep -q "\"skipped\": 1," "$T/ebad.json" && grep -q "^  \"n\": $((rows - 1)),$" "$T/ebad.json"'
"$vlp" score --task vqa --data "$T/emoji/tasks/vqa-badimg.jsonl" --train "$T/emoji/tasks/vqa-train.jsonl" --predictions "$T/pbad.jsonl" \
  --out "$T/sbad.json" > /dev/null 2>&1; rc=$?
a=$(sed -n '/"metrics"/,$p' "$T/ebad.json"); b=$(sed -n '/"metrics"/,$p' "$T/sbad.json")
check "score on predictions with a skipped row (exit $rc) = eval's metrics" '[ $rc = 0 ] && [ -n "$a" ] && [ "$a" = "$b" ]'
expect_fail "eval --task vqa --strict: an unreadable image" 1 "vqa-badimg.jsonl:3: image " "$vlp" eval --task vqa --model $M \
  --data "$T/emoji/tasks/vqa-badimg.jsonl" --train "$T/emoji/tasks/vqa-train.jsonl" --strict
"$vlp" report "$T/dsrun" --out "$T/ds.html" > /dev/null 2>&1; rc=$?
check "report reads the eval files (exit $rc)" '[ $rc = 0 ] && grep -q "ground2" "$T/ds.html"'
out=$("$vlp" probe --model $M --train "$T/emoji/tasks/vqa-train.jsonl" --data "$T/emoji/tasks/vqa-style.jsonl" \
  --epochs 20 --json --predictions "$T/probe.jsonl" 2> "$T/err"); rc=$?
want=$(grep -c '"type": "category"' "$T/emoji/tasks/vqa-style.jsonl")
check "probe exits 0 (got $rc), one prediction per category row ($want)" '[ $rc = 0 ] && echo "$out" | grep -q "\"accuracy\"" && [ "$(grep -c . "$T/probe.jsonl")" = "$want" ]'
# vlp finetune on the mini emoji tasks: a tiny random ALBEF, a few steps, then vlp eval on the fine-tuned model
"$vlp" vl-init --preset albef-tiny "$T/albef" > /dev/null 2>&1
"$vlp" vl-init --preset blip-tiny "$T/blip" > /dev/null 2>&1
FT=(--pretrained "$T/albef" --batch-size 8 --log-every 1)
"$vlp" finetune "${FT[@]}" --task vqa --train "$T/emoji/tasks/vqa-train.jsonl" --val "$T/emoji/tasks/vqa-style.jsonl" \
  --steps 4 --save-every 2 --eval-every 2 --freeze embeddings --out "$T/ftvqa" > /dev/null 2> "$T/err"; rc=$?
check "finetune vqa exits 0 (got $rc), model, checkpoints and eval lines" '[ $rc = 0 ] && [ -f "$T/ftvqa/model/model.safetensors" ] && [ -d "$T/ftvqa/checkpoints/step_00000004" ] && [ $(grep -c "style/accuracy" "$T/ftvqa/metrics.jsonl") = 2 ]'
out=$("$vlp" info "$T/ftvqa/model" 2>&1)
check "info names the fine-tuned task and head" 'echo "$out" | grep -q "fine-tuned   for vqa, head answer_mlp"'
"$vlp" eval --task vqa --model "$T/ftvqa/model" --data "$T/emoji/tasks/vqa-style.jsonl" --out "$T/dsrun/eval_vqa_ft.json" \
  --predictions "$T/dsrun/pred_vqa_ft.jsonl" > "$T/ftout" 2> "$T/err"; rc=$?
rows=$(grep -c . "$T/emoji/tasks/vqa-style.jsonl"); got=$(grep -c '^{"answer"' "$T/dsrun/pred_vqa_ft.jsonl" 2> /dev/null)
check "eval --task vqa on the fine-tuned model exits 0 (got $rc), $got answers for $rows rows" '[ $rc = 0 ] && [ "$got" = "$rows" ] && grep -q "fine-tuned" "$T/ftout" && grep -q "majority" "$T/ftout"'
"$vlp" score --task vqa --data "$T/emoji/tasks/vqa-style.jsonl" --predictions "$T/dsrun/pred_vqa_ft.jsonl" --out "$T/score_ft.json" > /dev/null 2>&1
a=$(sed -n '/"metrics"/,$p' "$T/dsrun/eval_vqa_ft.json"); b=$(sed -n '/"metrics"/,$p' "$T/score_ft.json")
check "eval of the fine-tuned model = vlp score's metrics" '[ -n "$a" ] && [ "$a" = "$b" ]'
n=$(grep -c . "$T/emoji/tasks/vqa-trainbadimg.jsonl")
"$vlp" finetune "${FT[@]}" --task vqa --train "$T/emoji/tasks/vqa-trainbadimg.jsonl" --val "$T/emoji/tasks/vqa-badimg.jsonl" \
  --steps 1 --out "$T/ftbadimg" > /dev/null 2> "$T/err"; rc=$?
check "finetune: unreadable images' rows skipped (exit $rc), reported with their lines (train and val)" \
  '[ $rc = 0 ] && grep -q "vqa-trainbadimg.jsonl: 1 of $n rows skipped (unreadable image 1)" "$T/err" && grep -q "vqa-trainbadimg.jsonl:3: image .*broken.png: " "$T/err" && grep -q "vqa-badimg.jsonl:3: image .*broken.png: " "$T/err" && grep -q " $((n - 1)) train examples" "$T/err" && [ -f "$T/ftbadimg/model/model.safetensors" ]'
expect_fail "finetune --strict: an unreadable image" 1 "vqa-trainbadimg.jsonl:3: image " "$vlp" finetune "${FT[@]}" --task vqa \
  --train "$T/emoji/tasks/vqa-trainbadimg.jsonl" --steps 1 --out "$T/ftbadimg2" --strict
"$vlp" finetune "${FT[@]}" --task mc --train "$T/emoji/tasks/mc-train.jsonl" --steps 4 --save-every 1 --stop-after 2 \
  --out "$T/ftmc" > /dev/null 2> "$T/err"; rc1=$?
"$vlp" finetune "${FT[@]}" --task mc --train "$T/emoji/tasks/mc-train.jsonl" --steps 4 --save-every 1 --resume \
  --out "$T/ftmc" > /dev/null 2> "$T/err"; rc=$?
"$vlp" finetune "${FT[@]}" --task mc --train "$T/emoji/tasks/mc-train.jsonl" --steps 4 --save-every 1 \
  --out "$T/ftmc2" > /dev/null 2> "$T/err"
l1=$(grep '"step":4,' "$T/ftmc/metrics.jsonl" | grep -o '"loss_last":[^,]*'); l2=$(grep '"step":4,' "$T/ftmc2/metrics.jsonl" | grep -o '"loss_last":[^,]*')
check "finetune mc: stop at 2, resume to 4 (exit $rc1, $rc) = uninterrupted ($l1 vs $l2)" '[ $rc1 = 0 ] && [ $rc = 0 ] && [ -n "$l1" ] && [ "$l1" = "$l2" ]'
# Ctrl-C in fine-tuning: checkpoint at the step boundary, exit 1 (as vlp train)
VLP_PROGRESS=0 "$vlp" --threads 1 finetune "${FT[@]}" --task mc --train "$T/emoji/tasks/mc-train.jsonl" --steps 100000 \
  --save-every 0 --no-eval --out "$T/ftint" > /dev/null 2> "$T/errf" &
pid=$!
for i in $(seq 1 600); do grep -q '"step":3,' "$T/ftint/metrics.jsonl" 2> /dev/null && break; sleep 0.05; done
kill -INT $pid; wait $pid; rc=$?
n=$(sed -n 's/.*interrupted: checkpoint at step \([0-9]*\);.*/\1/p' "$T/errf")
check "finetune SIGINT: exit 1 (got $rc), checkpoint at step $n" '[ $rc = 1 ] && [ -n "$n" ] && [ -d "$T/ftint/checkpoints/$(printf "step_%08d" "$n")" ]'
"$vlp" eval --task mc --model "$T/ftmc/model" --data "$T/emoji/tasks/mc-style.jsonl" --predictions "$T/dsrun/pred_mc_ft.jsonl" > /dev/null 2>&1; rc=$?
check "eval --task mc on the fine-tuned model (exit $rc): labels with 4 probabilities" '[ $rc = 0 ] && [ $(grep -c "\"label\": *[0-3].*\"probs\": *\[[^],]*,[^],]*,[^],]*,[^],]*\]" "$T/dsrun/pred_mc_ft.jsonl") = $(grep -c . "$T/emoji/tasks/mc-style.jsonl") ]'
"$vlp" finetune --config configs/ft-albef-s-vqa.json "${FT[@]}" --task ground2 --train "$T/emoji/tasks/ground2-train.jsonl" \
  --no-eval --steps 2 --warmup 0 --out "$T/ftg2" > /dev/null 2> "$T/err"; rc=$?
check "finetune ground2 from a shipped config exits 0 (got $rc); canvas size 2 x 32" '[ $rc = 0 ] && grep -q "\"image_size\": 64" "$T/ftg2/model/config.json"'
"$vlp" eval --task ground2 --model "$T/ftg2/model" --data "$T/emoji/tasks/ground2-style.jsonl" --predictions "$T/dsrun/pred_g2_ft.jsonl" > /dev/null 2> "$T/err"; rc=$?
check "eval --task ground2 on the fine-tuned model (exit $rc): one cell per row" '[ $rc = 0 ] && [ $(grep -c "\"label\": *[0-3]" "$T/dsrun/pred_g2_ft.jsonl") = $(grep -c . "$T/emoji/tasks/ground2-style.jsonl") ]'
# a captioning model fine-tunes its decoder (head lm): generative vqa, evaluated by ranking the train answers and by decoding
"$vlp" vl-init --preset blip-tiny --vocab tests/fixtures/bert/vocab.txt --seed 1 "$T/blipft" > /dev/null 2>&1
"$vlp" finetune --config configs/ft-cap-s-vqa.json --pretrained "$T/blipft" --batch-size 8 --train "$T/emoji/tasks/vqa-train.jsonl" \
  --no-eval --steps 3 --warmup 0 --out "$T/ftcapvqa" > /dev/null 2> "$T/err"; rc=$?
check "finetune vqa on a captioning model from a shipped config (head lm) exits 0 (got $rc)" '[ $rc = 0 ] && grep -q "\"head\": \"lm\"" "$T/ftcapvqa/model/config.json"'
# generated answers take the train answers' spelling in fine-tuning's evaluation as in vlp eval: the
# decoder writes WordPiece "medium - light"; a model taught one answer must score 100%, not 0%
grep '"skintone"' "$T/emoji/tasks/vqa-train.jsonl" | head -8 | sed 's/"answer": *"[^"]*"/"answer": "medium-light"/' > "$T/emoji/tasks/mono.jsonl"
"$vlp" finetune --config configs/ft-cap-s-vqa.json --pretrained "$T/blipft" --batch-size 8 --train "$T/emoji/tasks/mono.jsonl" \
  --val "$T/emoji/tasks/mono.jsonl" --steps 30 --warmup 0 --lr 3e-3 --eval-every 1000 --save-every 0 --out "$T/ftmono" > /dev/null 2> "$T/err"; rc=$?
"$vlp" eval --task vqa --model "$T/ftmono/model" --data "$T/emoji/tasks/mono.jsonl" --train "$T/emoji/tasks/mono.jsonl" \
  --protocol generate --predictions "$T/dsrun/pred_mono.jsonl" --json > "$T/ftout" 2> /dev/null; rc2=$?
check "finetune's generative-VQA evaluation canonicalises answers like vlp eval (exit $rc/$rc2): $(tail -1 "$T/ftmono/metrics.jsonl" 2> /dev/null)" \
  '[ $rc = 0 ] && [ $rc2 = 0 ] && tail -1 "$T/ftmono/metrics.jsonl" | grep -q "\"mono/accuracy\":1\b" && [ $(grep -c "\"answer\": *\"medium-light\"" "$T/dsrun/pred_mono.jsonl") = 8 ]'
out=$("$vlp" info "$T/ftcapvqa/model" 2>&1)
check "info on an lm-head model names the decoder, not classes" 'echo "$out" | grep -q "head lm (the decoder, [0-9]*-token vocabulary)"'
"$vlp" eval --task vqa --model "$T/ftcapvqa/model" --data "$T/emoji/tasks/vqa-unseen.jsonl" --protocol rank \
  --predictions "$T/dsrun/pred_vqa_rank.jsonl" > "$T/ftout" 2> "$T/err"; rc=$?
rows=$(grep -c . "$T/emoji/tasks/vqa-unseen.jsonl"); got=$(grep -c '^{"answer"' "$T/dsrun/pred_vqa_rank.jsonl" 2> /dev/null)
bad=0; while IFS= read -r a; do grep -qF "\"answer\": \"$a\"" "$T/emoji/tasks/vqa-train.jsonl" || bad=$((bad + 1)); done \
  < <(sed 's/^{"answer":"\([^"]*\)".*/\1/' "$T/dsrun/pred_vqa_rank.jsonl" 2> /dev/null | sort -u)
check "eval --task vqa --protocol rank (exit $rc): $got answers for $rows rows, $bad not from the train file" '[ $rc = 0 ] && [ "$got" = "$rows" ] && [ $bad = 0 ] && grep -q "ranked by log-likelihood" "$T/ftout" && grep -q "majority" "$T/ftout"'
"$vlp" eval --task vqa --model "$T/ftcapvqa/model" --data "$T/emoji/tasks/vqa-unseen.jsonl" --protocol generate --max-len 4 \
  --predictions "$T/dsrun/pred_vqa_gen.jsonl" > "$T/ftout" 2> "$T/err"; rc=$?
got=$(grep -c '^{"answer"' "$T/dsrun/pred_vqa_gen.jsonl" 2> /dev/null)
check "eval --task vqa --protocol generate (exit $rc): $got answers for $rows rows" '[ $rc = 0 ] && [ "$got" = "$rows" ] && grep -q "decoded greedily" "$T/ftout"'
expect_fail "eval: --protocol on a fusion model's head" 1 "lm head" "$vlp" eval --task vqa --model "$T/ftvqa/model" --data "$T/emoji/tasks/vqa-unseen.jsonl" --protocol rank
# the shortlist: --rank-k 0 (all) and a k above every type's answer count rank the same
"$vlp" eval --task vqa --model "$T/ftcapvqa/model" --data "$T/emoji/tasks/vqa-unseen.jsonl" --protocol rank --rank-k 0 \
  --predictions "$T/dsrun/pred_vqa_rank0.jsonl" > /dev/null 2>&1; rc=$?
"$vlp" eval --task vqa --model "$T/ftcapvqa/model" --data "$T/emoji/tasks/vqa-unseen.jsonl" --protocol rank --rank-k 100000 \
  --predictions "$T/dsrun/pred_vqa_rankbig.jsonl" > /dev/null 2>&1; rc2=$?
check "--rank-k 0 and --rank-k 100000 give the same answers (exit $rc, $rc2)" '[ $rc = 0 ] && [ $rc2 = 0 ] && cmp -s "$T/dsrun/pred_vqa_rank0.jsonl" "$T/dsrun/pred_vqa_rankbig.jsonl"'
expect_fail "eval: --rank-k without --protocol rank" 2 "--protocol rank" "$vlp" eval --task vqa --model "$T/ftcapvqa/model" --data "$T/emoji/tasks/vqa-unseen.jsonl" --rank-k 4
expect_fail "eval: bad --protocol" 2 "generate or rank" "$vlp" eval --task vqa --model "$T/ftcapvqa/model" --data "$T/emoji/tasks/vqa-unseen.jsonl" --protocol vote
expect_fail "finetune: fusion head on a captioning model" 2 "captioning" "$vlp" finetune --pretrained "$T/blip" --task mc --train "$T/emoji/tasks/mc-train.jsonl" --steps 2 --out "$T/ftx"
expect_fail "finetune: head that does not fit the task" 2 "does not fit task vqa" "$vlp" finetune "${FT[@]}" --task vqa --head itm --train "$T/emoji/tasks/vqa-train.jsonl" --steps 2 --out "$T/ftx"
expect_fail "finetune: missing checkpoint" 1 "nosuch" "$vlp" finetune --pretrained "$T/nosuch" --task mc --train "$T/emoji/tasks/mc-train.jsonl" --steps 2 --out "$T/ftx"
expect_fail "finetune: task without a head" 2 "task caption" "$vlp" finetune "${FT[@]}" --task caption --train "$T/emoji/tasks/caption-train.jsonl" --steps 2 --out "$T/ftx"
expect_fail "finetune: bad freeze part" 2 "decoder" "$vlp" finetune "${FT[@]}" --task mc --freeze decoder --train "$T/emoji/tasks/mc-train.jsonl" --steps 2 --out "$T/ftx"
expect_fail "eval: an mc file on a vqa-fine-tuned model" 1 "fine-tuned for vqa" "$vlp" eval --task mc --model "$T/ftvqa/model" --data "$T/emoji/tasks/mc-style.jsonl"
expect_fail "eval --task caption: not for a dual encoder" 1 "generative" "$vlp" eval --task caption --model $M --data "$T/emoji/tasks/caption-style.jsonl"
expect_fail "eval --task mc: no --data" 2 "--data" "$vlp" eval --task mc --model $M
expect_fail "data: unknown dataset" 2 "nosuch" "$vlp" data nosuch
expect_fail "data emoji: no --out" 2 "--out" "$vlp" data emoji "${E[@]}"
expect_fail "data emoji: empty offline cache" 1 "fetching is off" "$vlp" data emoji --out "$T/emoji2" --cache "$T/nocache" --offline

# --help for every command: exit 0, usage on stdout
for c in $("$vlp" --help | awk '/^commands:/ {on = 1; next} on && /^  [a-z]/ && $1 != "version" {print $1}'); do
  out=$("$vlp" $c --help 2>&1); rc=$?
  check "$c --help (exit $rc)" '[ $rc = 0 ] && echo "$out" | grep -q "usage: vlp $c"'
done

rm -f /tmp/vlp_cli_err
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
