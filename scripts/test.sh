#!/usr/bin/env bash
# The second command of the README, and what CI runs: installs what is missing, builds everything
# (products and tests), runs the whole test suite, then the load tools' smoke run.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh chromium

swift build --build-tests
swift test --skip-build --no-parallel
if [ -x LoadTests/smoke.sh ]; then
  LoadTests/smoke.sh
fi
