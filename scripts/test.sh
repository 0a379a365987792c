#!/usr/bin/env bash
# The second command of the README, and what CI runs: installs what is missing, builds everything
# (products and tests), runs the whole test suite (on SQLite, and its integration suites on PostgreSQL),
# the API against its document, the crash drill, the two-node cluster drill, then the load tools' smoke run.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh chromium nginx-light postgresql

swift build --build-tests
# Under a throwaway PostgreSQL server (scripts/with-postgres.sh), so the PostgreSQL store's tests
# and the two-node cluster tests run with the rest; SQLite is every other suite's backend.
scripts/with-postgres.sh swift test --skip-build --no-parallel
# The exchange's integration suites again, every exchange on PostgreSQL instead of SQLite (~3.5 min).
scripts/with-postgres.sh env GAVEL_TEST_STORE=postgres swift test --skip-build --no-parallel --filter GavelExchangeTests
# The API against its document: schemathesis, fixed seed, on the demo exchange (about a minute).
scripts/schemathesis.sh --bin "$(swift build --show-bin-path)"
# kill -9 drill: 50 crash cycles under load of leads, pings+posts and live calls (about a minute).
scripts/chaos.sh --bin "$(swift build --show-bin-path)"
# Several nodes on one PostgreSQL database: cap race, double post, kill -9 of a node, reload.
scripts/cluster-test.sh --bin "$(swift build --show-bin-path)"
if [ -x LoadTests/smoke.sh ]; then
  LoadTests/smoke.sh
fi
