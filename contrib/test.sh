#!/usr/bin/env bash
# The test command: installs what it needs, builds, runs every suite (unit,
# integration against a throwaway Postgres it starts itself, Space Cloud's
# space-api npm client against the HTTP API, and the web console in headless
# Chromium), the unit suite
# again under AddressSanitizer + UndefinedBehaviorSanitizer, the format check,
# and each libFuzzer target for 20 s (clang).
set -euo pipefail
cd "$(dirname "$0")/.."

contrib/deps.sh

# The project's own builds treat warnings as errors.
[ -f build/build.ninja ] || meson setup build -Dwerror=true >/dev/null
ninja -C build

# Space Cloud's JavaScript client, for the API test that runs it unchanged
# (Node.js and npm from Debian unless some install is there).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    nodejs npm >/dev/null
fi
if [ ! -f build/space-api/node_modules/space-api/package.json ]; then
  npm install --prefix build/space-api --no-audit --no-fund --no-save --loglevel=error \
    space-api@0.19.3 >/dev/null
fi
# playwright-core drives Debian's chromium in the console's browser test
# (tests/console/console_test.mjs); it downloads no browser of its own.
if [ ! -f build/console-test/node_modules/playwright-core/package.json ]; then
  npm install --prefix build/console-test --no-audit --no-fund --no-save --loglevel=error \
    playwright-core@1.64.1 >/dev/null
fi

# Unoptimized: instrumented -O2 builds took minutes; -O0 takes one.
[ -f build-asan/build.ninja ] ||
  meson setup build-asan --buildtype=debug -Db_sanitize=address,undefined -Db_lundef=false \
    -Dintegration=false -Dwerror=true >/dev/null
ninja -C build-asan tests/unit_tests

status=0
meson test -C build --print-errorlogs --suite unit --suite integration || status=1
meson test -C build-asan --print-errorlogs --suite unit || status=1
ninja -C build clang-format-check || status=1
# Every parser of untrusted bytes, fuzzed for a fixed time over its corpus.
contrib/fuzz/run.sh 20 || status=1
# What packagers ship: the binary, built as a release (-O3, NDEBUG: what
# the optimizer and the missing asserts could break) with the default
# options (warnings are not errors there), must build. The tests are built
# above, twice; a third, optimized build of them would take minutes.
[ -f build-release/build.ninja ] ||
  meson setup build-release --buildtype=release -Dintegration=false >/dev/null
ninja -C build-release src/walhook >build-release/ninja.log 2>&1 ||
  { tail -n 30 build-release/ninja.log; status=1; }

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
