#!/usr/bin/env bash
# make install into a temporary prefix, then build every complete C program in README.md
# (the ```c blocks with a main) against it with pkg-config, once with the shared library
# and once statically (which needs vlp.pc's Libs.private), and run them.
build="${BUILD:-build}"
sanitize="${SANITIZE:-0}"
pass=0; fail=0
check() { if eval "$2"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $1"; fi; }
T=$(mktemp -d /tmp/vlp_install.XXXXXX)
trap 'rm -rf "$T"' EXIT
prefix="$T/prefix"
san=""; [ "$sanitize" = 1 ] && san="-fsanitize=address,undefined"

make -s --no-print-directory BUILD="$build" SANITIZE="$sanitize" install PREFIX="$prefix" > "$T/log" 2>&1; rc=$?
check "make install PREFIX=... exits 0 (got $rc)" '[ $rc = 0 ] || { tail -n 20 "$T/log"; false; }'
for f in include/vlp.h include/vlp_clip.h include/vlp_text.h include/vlp_image.h include/vlp_safetensors.h \
         lib/libvlp.a lib/libvlp.so lib/libvlp.so.0 lib/pkgconfig/vlp.pc bin/vlp; do
  [ -e "$prefix/$f" ] || missing="$missing $f"
done
check "installed files${missing:+ (missing:$missing)}" '[ -z "$missing" ]'

export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
version=$(sed -n 's/.*VLP_VERSION "\(.*\)"/\1/p' include/vlp.h)
check "pkg-config --modversion vlp = $version" '[ "$(pkg-config --modversion vlp)" = "$version" ]'
check "vlp.pc has no unsubstituted @VARS@" '! grep -q "@" "$prefix/lib/pkgconfig/vlp.pc"'
check "installed vlp runs" '[ "$("$prefix/bin/vlp" version)" = "vlp $version" ]'

# every public header compiles on its own
for h in "$prefix"/include/vlp*.h; do
  echo "#include <$(basename "$h")>" > "$T/h.c"
  cc -std=c11 -Wall -Wextra -Werror -fsyntax-only $(pkg-config --cflags vlp) "$T/h.c" 2> "$T/err" ||
    { bad="$bad $(basename "$h")"; cat "$T/err"; }
done
check "each installed header compiles alone${bad:+ (failed:$bad)}" '[ -z "$bad" ]'

# the README's programs: block k (1-based) of ```c code that defines main
awk '/^```c$/ {n++; on = 1; next} /^```$/ {on = 0} on {print > (dir "/readme" n ".c")}' dir="$T" README.md
progs=$(grep -l "^int main(" "$T"/readme*.c 2> /dev/null)
check "README has C programs to build ($(echo $progs | wc -w))" '[ -n "$progs" ]'
static_libs=$(pkg-config --static --libs vlp | sed 's/-lvlp\b/-l:libvlp.a/')
M=tests/fixtures/clip/model-tiny; IMG=tests/fixtures/clip/images/coffee.jpg
for src in $progs; do
  name=$(basename "$src" .c)
  args=(); grep -q "MODEL IMAGE TEXT" "$src" && args=("$M" "$IMG" "a cup of coffee on a table")
  cc -std=c11 -Wall -Wextra -Werror $san $(pkg-config --cflags vlp) "$src" -o "$T/$name" $(pkg-config --libs vlp) 2> "$T/err"; rc=$?
  check "$name: builds against libvlp.so with pkg-config --cflags --libs (exit $rc)" '[ $rc = 0 ] || { cat "$T/err"; false; }'
  out=$(LD_LIBRARY_PATH="$prefix/lib" "$T/$name" "${args[@]}" 2>&1); rc=$?
  check "$name: runs (shared, exit $rc)" '[ $rc = 0 ] || { echo "$out"; false; }'
  check "$name: uses the installed libvlp.so" 'LD_LIBRARY_PATH="$prefix/lib" ldd "$T/$name" | grep -q "$prefix/lib/libvlp.so"'
  cc -std=c11 -Wall -Wextra -Werror $san $(pkg-config --cflags vlp) "$src" -o "$T/$name-static" $static_libs 2> "$T/err"; rc=$?
  check "$name: links statically with pkg-config --static --libs (exit $rc)" '[ $rc = 0 ] || { cat "$T/err"; false; }'
  out_static=$("$T/$name-static" "${args[@]}" 2>&1); rc=$?
  check "$name: static build runs and prints the same (exit $rc)" '[ $rc = 0 ] && [ "$out_static" = "$out" ] && ! ldd "$T/$name-static" | grep -q libvlp'
  if [ ${#args[@]} = 3 ]; then # the CLIP example's logit = vlp similarity's
    want=$("$prefix/bin/vlp" similarity --model "$M" --images "$IMG" --text "${args[2]}" --json 2> /dev/null |
           sed 's/.*"logits": \[\(.*\)\]}$/\1/')
    check "$name: logit $out = vlp similarity's $want" 'awk -v a="$out" -v b="$want" "BEGIN {d = a - b; exit !(b != \"\" && d < 0.002 && d > -0.002)}"'
  else # the training example: the loss falls
    check "$name: loss falls" 'echo "$out" | awk "/loss/ {l[n++] = \$NF} END {exit !(n >= 2 && l[n - 1] < l[0] / 2)}"'
  fi
done
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
