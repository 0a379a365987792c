#!/usr/bin/env bash
# The second command of the README, and what CI runs: installs what is missing, builds everything
# (products and tests), runs the whole test suite, the API against its document, the crash drill,
# then the load tools' smoke run.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh chromium nginx-light

swift build --build-tests
swift test --skip-build --no-parallel
# The API against its document: schemathesis, fixed seed, on the demo exchange (about a minute).
scripts/schemathesis.sh --bin "$(swift build --show-bin-path)"
# kill -9 drill: 50 crash cycles under load of leads, pings+posts and live calls (about a minute).
scripts/chaos.sh --bin "$(swift build --show-bin-path)"
if [ -x LoadTests/smoke.sh ]; then
  LoadTests/smoke.sh
fi
