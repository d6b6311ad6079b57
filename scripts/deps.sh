#!/usr/bin/env bash
# Installs the Debian packages vlp needs, by purpose:
#   scripts/deps.sh [build|test|bench|all]     install (as root) what is missing
#   scripts/deps.sh --check [build|test|bench]  exit 0 if all present, 1 otherwise
# build: compiler, OpenMP, and the libraries libvlp uses: utf8proc (Unicode case and
#        categories for tokenizers), jansson (JSON: safetensors headers, configs),
#        libpng, libjpeg-turbo, libwebp, giflib and stb_image (BMP) for image decoding
#        and libarchive (WebDataset tar shards, plain or compressed)
# test:  build + clang's sanitizer/fuzzer runtimes (make fuzz)
#        + headless Chromium (tests/test_report.sh renders the HTML report and checks the
#        screenshot and the DOM)
# bench: build + the PyTorch peer with OpenBLAS (without libopenblas0-pthread
#        Debian's torch falls back to the reference BLAS, ~15x slower, and every
#        ratio against it would be inflated) and the GEMM libraries we compare.
set -euo pipefail

check=0
if [ "${1:-}" = "--check" ]; then check=1; shift; fi
group="${1:-build}"

build_pkgs="gcc make libc6-dev libgomp1 pkg-config bc zlib1g-dev libutf8proc-dev libjansson-dev libpng-dev libjpeg62-turbo-dev libwebp-dev libgif-dev libstb-dev libarchive-dev"
test_pkgs="$build_pkgs clang libclang-rt-14-dev chromium"
bench_pkgs="$build_pkgs python3 python3-numpy python3-torch libopenblas0-pthread libopenblas-pthread-dev libblis-dev libdnnl-dev libxsmm-dev"

case "$group" in
  build) pkgs="$build_pkgs" ;;
  test) pkgs="$test_pkgs" ;;
  bench) pkgs="$bench_pkgs" ;;
  all) pkgs="$test_pkgs $bench_pkgs" ;;
  *) echo "deps.sh: unknown group '$group' (build, test, bench, all)" >&2; exit 2 ;;
esac

missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
missing=$(echo $missing | tr ' ' '\n' | sort -u | tr '\n' ' ')

if [ -z "${missing// /}" ]; then exit 0; fi
if [ "$check" = 1 ]; then echo "missing Debian packages:$missing" >&2; exit 1; fi

cmd="apt-get install -y --no-install-recommends $missing"
if [ "$(id -u)" != 0 ]; then
  echo "deps.sh: these Debian packages are missing: $missing" >&2
  echo "deps.sh: run as root:  apt-get update && $cmd" >&2
  exit 1
fi
echo "deps.sh: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
