"""Schemathesis hooks for scripts/schemathesis.sh (loaded through SCHEMATHESIS_HOOKS).

An `Idempotency-Key` means "the same request": the exchange answers a second request with the same
key and another body `422 idempotency_key_reused` (CONTRACT v2), which is right, but generated data
reuses short keys ("0", the document's example) across unrelated requests all the time. So in every
schema-valid case, a valid key (1-255 printable ASCII) is made unique per request by a counter
prefix, keeping its generated characters after it, cut to 255. Negative cases are sent as generated
(so `400 invalid_header` is still tested; a reused key there is refused with 422, as it should be).
"""

import itertools

import schemathesis

_HEADER = "idempotency-key"
_counter = itertools.count(1)


def _valid(key: object) -> bool:
    return isinstance(key, str) and 1 <= len(key) <= 255 and all(0x20 <= ord(c) <= 0x7E for c in key)


def _positive(case) -> bool:
    meta = getattr(case, "meta", None)
    return meta is None or not meta.generation.mode.is_negative


@schemathesis.hook
def before_call(context, case, kwargs):
    # Only schema-valid cases: a negative case that reuses a key is refused (422) either way, and
    # editing its headers would make schemathesis re-derive what the case is testing.
    if not case.headers or not _positive(case):
        return
    for name in list(case.headers):
        if name.lower() == _HEADER and _valid(case.headers[name]):
            case.headers[name] = (f"st-{next(_counter):07d}-" + case.headers[name])[:255]


# The budget's own 503s. `not_a_server_error` accepts 503 (scripts/schemathesis.toml) so that this
# check can tell them apart: the contract answers a request at its time budget whatever happens, so
# a round whose commit is not done by then is `503 storage_timeout` (the seller repeats it with its
# Idempotency-Key to learn the outcome), and a round that cannot start in time is `503 overloaded`.
# Generated requests may ask for a 20 ms budget, and on a busy machine either can happen; both are
# documented answers. Any other 5xx, and a 503 with another code (`storage`: the database failed),
# is a server error.
_BUDGET_CODES = {"storage_timeout", "overloaded"}


@schemathesis.check
def server_error_except_budget_503(ctx, response, case):
    if response.status_code < 500:
        return None
    code = None
    try:
        body = response.json()
        code = body.get("error", {}).get("code") if isinstance(body, dict) else None
    except Exception:
        pass
    if response.status_code == 503 and code in _BUDGET_CODES:
        return None
    raise AssertionError(f"Server error {response.status_code} ({code or 'no error code'}): only 503 storage_timeout or overloaded may answer a request")
