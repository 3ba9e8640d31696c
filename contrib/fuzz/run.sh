#!/usr/bin/env bash
# Builds walhook's libFuzzer targets with clang (coverage instrumentation in
# the whole core library, AddressSanitizer and UndefinedBehaviorSanitizer) and
# runs each for a fixed time over a copy of its seed corpus
# (contrib/fuzz/<name>_corpus). Exit 1 when a target finds a crash, a leak or
# a slow input; the input is kept in build-fuzz/artifacts/.
# Usage: contrib/fuzz/run.sh [SECONDS per target, default 20] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/../.."

seconds=${1:-20}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(decoder condition queue_request response message http_request kriti admin_request)

if [ ! -f build-fuzz/build.ninja ]; then
  CC=clang CXX=clang++ meson setup build-fuzz --buildtype=debugoptimized -Dintegration=false \
    -Db_sanitize=address,undefined -Db_lundef=false -Dcpp_args=-fsanitize=fuzzer-no-link \
    >/dev/null
fi
# A build that fails says why (ninja prints its errors on standard output).
if ! ninja -C build-fuzz $(printf "contrib/fuzz/%s_fuzz " "${targets[@]}") >build-fuzz/ninja.log 2>&1; then
  echo "fuzz: the fuzz targets did not build (clang):" >&2
  grep -E "error|FAILED" build-fuzz/ninja.log | head -n 20 >&2
  exit 1
fi

# Undefined behaviour is a finding too, except RapidJSON's own (see the file).
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:suppressions=$PWD/contrib/fuzz/ubsan.supp"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p build-fuzz/artifacts
# One target a core: each still runs `seconds` of its own.
jobs=$(nproc)
fuzz_one() {
  local t=$1 log="$work/$1.log"
  cp -r "contrib/fuzz/${t}_corpus" "$work/$t"
  if build-fuzz/contrib/fuzz/"${t}_fuzz" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix=build-fuzz/artifacts/ "$work/$t" >"$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    echo "fuzz: ${t}_fuzz ok, ${runs:-?} runs in ${seconds} s"
  else
    echo "fuzz: ${t}_fuzz FAILED; the input is in build-fuzz/artifacts/:" >&2
    tail -n 40 "$log" >&2
    touch "$work/$t.failed"
  fi
}
for t in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
  fuzz_one "$t" &
done
wait
status=0
for t in "${targets[@]}"; do
  [ ! -e "$work/$t.failed" ] || status=1
done
exit "$status"
