#!/usr/bin/env bash
# Installs what Gavel needs from Debian's packages when it is missing: libcurl (OpenSSL flavour)
# and SQLite headers, pkg-config, plus any packages named as arguments (the tests add chromium,
# for the dynamic-number-insertion test in a real browser). Swift is expected at /opt/swift or on PATH.
set -euo pipefail

need=()
for package in libcurl4-openssl-dev libsqlite3-dev pkg-config "$@"; do
  dpkg -s "$package" >/dev/null 2>&1 || need+=("$package")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}" >&2
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

if ! command -v swift >/dev/null 2>&1; then
  if [ -x /opt/swift/usr/bin/swift ]; then
    export PATH="/opt/swift/usr/bin:$PATH"
  else
    echo "setup: swift not found; install Swift 6.1 or newer" >&2
    exit 1
  fi
fi
