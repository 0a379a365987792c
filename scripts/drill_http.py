"""HTTP helpers shared by the drills (scripts/chaos_driver.py, scripts/cluster_driver.py): standard library only."""

import http.client
import json


def http_call(port, method, path, body=None, key=None, timeout=10.0, bearer=None):
    """One request on a fresh connection. Returns (status, text, error); status None when it failed."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    if body is not None:
        headers["Content-Type"] = "application/json"
    if key is not None:
        headers["Idempotency-Key"] = key
    try:
        conn.request(method, path, body=None if body is None else body.encode(), headers=headers)
        response = conn.getresponse()
        return response.status, response.read().decode("utf-8", "replace"), None
    except Exception as error:  # refused, reset, EOF, timeout: the exchange died under it
        return None, None, f"{type(error).__name__}: {error}"
    finally:
        conn.close()


def error_code(text):
    try:
        return json.loads(text)["error"]["code"]
    except Exception:
        return None


def is_final(status, text):
    """CONTRACT v2: 200s and 4xx other than 409/429 are final; 409 outcome_unknown is stored too."""
    if status is None:
        return False
    if status == 200:
        return True
    if status == 409:
        return error_code(text) == "outcome_unknown"
    return 400 <= status < 500 and status != 429
