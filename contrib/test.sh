#!/usr/bin/env bash
# The test command: installs what it needs, builds, runs every suite (unit,
# integration against a throwaway Postgres it starts itself), the unit suite
# again under AddressSanitizer + UndefinedBehaviorSanitizer, and the format check.
set -euo pipefail
cd "$(dirname "$0")/.."

contrib/deps.sh

[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build

[ -f build-asan/build.ninja ] ||
  meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dintegration=false >/dev/null
ninja -C build-asan tests/unit_tests

status=0
meson test -C build --print-errorlogs --suite unit --suite integration || status=1
meson test -C build-asan --print-errorlogs --suite unit || status=1
ninja -C build clang-format-check || status=1

# One closing line over every doctest case that ran.
passed=0
failed=0
for log in build/meson-logs/testlog.txt build-asan/meson-logs/testlog.txt; do
  while read -r p f; do
    passed=$((passed + p))
    failed=$((failed + f))
  done < <(sed -n 's/.*test cases: *[0-9]* | *\([0-9]*\) passed | *\([0-9]*\) failed.*/\1 \2/p' "$log")
done
[ "$status" -eq 0 ] || [ "$failed" -gt 0 ] || failed=1
echo "$passed passed, $failed failed"
exit "$status"
