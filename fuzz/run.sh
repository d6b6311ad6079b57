#!/usr/bin/env bash
# make fuzz: seeds each target's corpus from tests/fixtures, runs it for SECONDS
# seconds on one core, and prints one summary line per target. Exits 1 if any
# target crashed (the input is kept as fuzz/crashes/TARGET-crash-*; rerun it with
# BUILD/fuzz/fuzz_TARGET FILE). Working corpora live in fuzz/corpus/TARGET (not
# committed); seeds are rewritten on every run, so a fresh checkout works.
#   bash fuzz/run.sh BUILD SECONDS TARGET...
set -uo pipefail
build="$1"; secs="$2"; shift 2
mkdir -p fuzz/corpus fuzz/crashes

seed_tokenizer() { # the fixture texts that are plain JSON strings, plus cases with escapes
  local d=$1 n=0
  grep -v '\\' tests/fixtures/clip/tokenizer.jsonl | sed -n 's/^{"text": "\(.*\)", "ids": \[.*$/\1/p' |
    while IFS= read -r line; do n=$((n + 1)); printf '%s' "$line" > "$d/fixture-$n"; done
  printf 'caf\xc3\x83\xc2\xa9 &amp;amp; &lt;b&gt; it\xe2\x80\x99s \xef\xac\x81ne\r\n\t\x00 x' > "$d/mixed"
  printf '<|startoftext|>hello<|endoftext|> 123\xd9\xa3 \xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x92\xbb' > "$d/special"
  printf '\xc4\xb0STANBUL \xce\xa3\xce\x9f\xce\xa6\xce\x99\xce\x91\xce\xa3 \xff\xfe\x80 \x1b[31mred' > "$d/case"
}

seed_image() { # every small fixture image (all formats and modes vlp decodes)
  local d=$1 f
  for f in tests/fixtures/images/*.{png,jpg,gif,webp,bmp} tests/fixtures/clip/images/{small.png,emoji_dog.png}; do
    [ -f "$f" ] && cp "$f" "$d/$(basename "$f")"
  done
}

st_file() { # st_file OUT HEADER_JSON DATA_BYTES(printf escapes)
  local n=${#2}
  printf "$(printf '\\x%02x\\x%02x\\x00\\x00\\x00\\x00\\x00\\x00' $((n & 255)) $((n >> 8)))" > "$1"
  printf '%s' "$2" >> "$1"
  printf "$3" >> "$1"
}

seed_safetensors() { # small hand-made files, and the fixtures cut just past their header
  local d=$1 f n
  st_file "$d/f32" '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}' '\x00\x00\x80\x3f\x00\x00\x00\x40'
  st_file "$d/mixed" '{"__metadata__":{"format":"pt"},"h":{"dtype":"F16","shape":[1,2],"data_offsets":[0,4]},"b":{"dtype":"BF16","shape":[2],"data_offsets":[4,8]},"i":{"dtype":"I64","shape":[1],"data_offsets":[8,16]},"d":{"dtype":"F64","shape":[],"data_offsets":[16,24]}}' \
    '\x00\x3c\x00\xc0\x80\x3f\x00\x40\x07\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xf0\x3f'
  st_file "$d/empty" '{}' ''
  st_file "$d/zero" '{"z":{"dtype":"F32","shape":[0,3],"data_offsets":[0,0]},"u":{"dtype":"U8","shape":[3],"data_offsets":[0,3]}}' 'abc'
  for f in tests/fixtures/clip/model-tiny/*.safetensors; do
    n=$(od -An -tu4 -N4 "$f" | tr -d ' ')
    [ -n "$n" ] && [ "$n" -lt 60000 ] && head -c $((8 + n)) "$f" > "$d/cut-$(basename "$f")"
  done
}

seed_tar_csv() { # mode byte (0 tar, 1 CSV + options byte, 2 brace pattern) + the data fixtures
  local d=$1 f
  for f in tests/fixtures/data/shards/*; do { printf '\x00'; cat "$f"; } > "$d/$(basename "$f")"; done
  { printf '\x01\x00'; cat tests/fixtures/data/pairs.csv; } > "$d/csv"
  { printf '\x01\x1c'; sed 's/image/a/;s/caption/b/' tests/fixtures/data/pairs.tsv; } > "$d/tsv"
  printf '\x02d/{000..012}-{a,b{1..3}}.tar::x{9..7}' > "$d/brace"
}

seed_wordpiece() { # the BERT fixture texts (plain JSON strings), a pair, a vocabulary-like file
  local d=$1
  grep -v '\\' tests/fixtures/bert/tokenizer.jsonl | sed -n 's/^{"text": "\([^"]*\)".*$/\1/p' | head -n 300 |
    { n=0; while IFS= read -r line; do n=$((n + 1)); printf '%s' "$line" > "$d/fixture-$n"; done; }
  printf 'The quick brown fox\xffjumps over the lazy dog, unaffable \xe4\xbd\xa0\xe5\xa5\xbd' > "$d/pair"
  printf '[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\n##s\nworld\n,\n!\nun\n##aff\n##able\nhello\n' > "$d/vocab"
}

seed_tasks() { # task kind byte (vlp_task_kind: caption vqa nlvr ground2 ground3 mc) + the report fixtures' files
  local d=$1 f k
  for f in tests/fixtures/report/tasks/*.jsonl; do
    case "$(basename "$f")" in
    caption-*) k=0 ;; vqa-*) k=1 ;; nlvr-*) k=2 ;; ground2-*) k=3 ;; ground3-*) k=4 ;; *) k=5 ;;
    esac
    { printf "$(printf '\\x%02x' $k)"; cat "$f"; } > "$d/$(basename "$f")"
  done
}

max_len_wordpiece=4096; max_len_tasks=8192; max_len_tokenizer=4096; max_len_image=30000; max_len_safetensors=16384; max_len_tar_csv=24000
status=0
for t in "$@"; do
  bin="$build/fuzz/fuzz_$t"
  corpus="fuzz/corpus/$t"; seeds="fuzz/corpus/$t-seeds"
  rm -rf "$seeds"; mkdir -p "$corpus" "$seeds"
  "seed_$t" "$seeds"
  dict=(); [ -f "fuzz/$t.dict" ] && dict=(-dict="fuzz/$t.dict")
  ml="max_len_$t"
  log="fuzz/corpus/$t.log"
  start=$(date +%s)
  "$bin" -max_total_time="$secs" -max_len="${!ml}" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="fuzz/crashes/$t-" "${dict[@]}" "$corpus" "$seeds" > "$log" 2>&1
  rc=$?
  took=$(( $(date +%s) - start ))
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n1 | cut -d' ' -f2)
  files=$(ls "$corpus" | wc -l)
  if [ "$rc" = 0 ]; then
    echo "fuzz_$t: ${runs:-?} executions in ${took} s, coverage ${cov:-?} edges, corpus $files files, no crash"
  else
    status=1
    echo "fuzz_$t: CRASH (exit $rc) after ${runs:-?} executions in ${took} s; see $log and fuzz/crashes/"
    grep -m3 -E 'ERROR|runtime error|SUMMARY' "$log"
  fi
done
exit $status
