#!/usr/bin/env bash
# The first command of the README: installs what is missing, builds, and runs the exchange on its
# embedded defaults (SQLite file gavel.sqlite, the example buyer-configs/) together with the demo
# buyers those configs point at (LoadTests/fleets/demo.json on port 9100). Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

swift build --product gavel-buyers
swift build --product gavel
bin=$(swift build --show-bin-path)

"$bin/gavel-buyers" --fleet LoadTests/fleets/demo.json --port "${DEMO_BUYERS_PORT:-9100}" &
fleet=$!
trap 'kill $fleet 2>/dev/null || true' EXIT
export DEMO_BUYERS_URL="http://127.0.0.1:${DEMO_BUYERS_PORT:-9100}"
"$bin/gavel" serve --config buyer-configs --db "${GAVEL_DB:-gavel.sqlite}" --port "${GAVEL_PORT:-8080}" "$@"
