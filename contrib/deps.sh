#!/usr/bin/env bash
# Installs what walhook needs to build and test, from Debian 12's packages.
# Idempotent: does nothing when everything is there already.
set -euo pipefail

packages=(
  build-essential meson ninja-build pkg-config python3
  libpqxx-dev libpq-dev libcurl4-openssl-dev rapidjson-dev libcpp-jwt-dev
  nlohmann-json3-dev libssl-dev libfmt-dev doctest-dev libcpp-httplib-dev
  postgresql-15 postgresql-15-wal2json postgresql-client-15
  clang-format iproute2 curl
  # libFuzzer targets (contrib/fuzz/run.sh): clang and its fuzzer runtime
  clang libclang-rt-14-dev
  # systemd-analyze, which checks contrib/walhook.service
  systemd
  # the web console's browser test (tests/console): headless Chromium, driven
  # by playwright-core (which contrib/test.sh installs from npm)
  chromium
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "deps: installing ${missing[*]}" >&2
$sudo apt-get update -qq
# Debian's postgresql package would start a cluster of its own: not wanted here.
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
  "${missing[@]}" >/dev/null
