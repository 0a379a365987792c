#!/usr/bin/env bash
# CI smoke run of the load tools (called by scripts/test.sh): every scenario for a few seconds at a low
# rate against a debug build, with gavel-load's functional checks — HTTP errors or 5xx, lost auctions
# (a 200 whose auction_id cannot be read back), counts that do not add up, PII in pings, the exchange
# crashing or not shutting down cleanly. Never fails on timing. Ends with `smoke: N passed, M failed`
# and exits non-zero when M > 0. Under a minute on 2 cores once built.
set -euo pipefail
exec "$(dirname "$0")/run.sh" --smoke "$@"
