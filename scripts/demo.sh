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

# A phone call as Twilio would place it: the voice webhook for the demo inbound number, signed
# with the demo auth token (telephony.yaml), and the TwiML that comes back.
port=${GAVEL_PORT:-8080}
sid=${TWILIO_ACCOUNT_SID:-AC00000000000000000000000000000000}
command -v python3 >/dev/null 2>&1 && python3 - "$port" "$sid" "${TWILIO_AUTH_TOKEN:-demo-twilio-auth-token-0001}" <<'PY'
import base64, hashlib, hmac, sys, urllib.parse
port, account, token = sys.argv[1], sys.argv[2], sys.argv[3]
url = f"http://127.0.0.1:{port}/telephony/twilio/voice"
params = {"AccountSid": account, "CallSid": "CA" + "d" * 32, "From": "+14155550123", "To": "+18005550500",
          "FromState": "CA", "FromZip": "94107", "CallStatus": "ringing", "Direction": "inbound"}
signed = url + "".join(k + params[k] for k in sorted(params))
signature = base64.b64encode(hmac.new(token.encode(), signed.encode(), hashlib.sha1).digest()).decode()
body = urllib.parse.urlencode(params)
print("\nOnce it listens, play Twilio's voice webhook for the demo number (a caller dialling +18005550500):")
print(f"  curl -s -X POST {url} -H 'X-Twilio-Signature: {signature}' --data '{body}'")
print("  -> TwiML <Response><Dial action=\".../telephony/twilio/dial-status\" ...><Number>+1800...</Number></Dial></Response>\n")
PY
"$bin/gavel" serve --config buyer-configs --db "${GAVEL_DB:-gavel.sqlite}" --port "${GAVEL_PORT:-8080}" "$@"
