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
[ ${#targets[@]} -gt 0 ] || targets=(decoder condition queue_request response message http_request kriti)

if [ ! -f build-fuzz/build.ninja ]; then
  CC=clang CXX=clang++ meson setup build-fuzz --buildtype=debugoptimized -Dintegration=false \
    -Db_sanitize=address,undefined -Db_lundef=false -Dcpp_args=-fsanitize=fuzzer-no-link \
    >/dev/null
fi
ninja -C build-fuzz $(printf "contrib/fuzz/%s_fuzz " "${targets[@]}") >/dev/null

# Undefined behaviour is a finding too, except RapidJSON's own (see the file).
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:suppressions=$PWD/contrib/fuzz/ubsan.supp"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p build-fuzz/artifacts
status=0
for t in "${targets[@]}"; do
  cp -r "contrib/fuzz/${t}_corpus" "$work/$t"
  log="$work/$t.log"
  if build-fuzz/contrib/fuzz/"${t}_fuzz" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix=build-fuzz/artifacts/ "$work/$t" >"$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    echo "fuzz: ${t}_fuzz ok, ${runs:-?} runs in ${seconds} s"
  else
    echo "fuzz: ${t}_fuzz FAILED; the input is in build-fuzz/artifacts/:" >&2
    tail -n 40 "$log" >&2
    status=1
  fi
done
exit "$status"
