#!/usr/bin/env python3
"""The driver of scripts/chaos.sh: a kill -9 crash drill against real `gavel serve` processes.

Subcommands (standard library only):

  write-fleet FILE                  the mock buyers' fleet file (gavel-buyers --fleet FILE)
  write-config DIR --fleet-url URL  the exchange's config directory, pointing at those buyers
  run --gavel BIN --config DIR --db PATH --work DIR [--cycles N] [--seed S]
                                    the drill: N crash cycles, then the checks
  repro [--bin DIR]                 a deterministic reproducer of the two-phase post findings

The scenario (buyers, caps) and the checks live here together, so the checks know the limits.

Every seller write carries a unique Idempotency-Key and is journalled (work/journal.jsonl): each
attempt with its cycle, phase (load / retry), status and body, or the transport error when the
exchange died under it ("unacknowledged"). An answer is *final* when it is a 200 or a 4xx other
than 409/429 (CONTRACT v2), plus 409 `outcome_unknown`, which is stored like a final answer.
"""

import argparse
import concurrent.futures
import datetime
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from decimal import Decimal

import drill_http

# --- the scenario --------------------------------------------------------------------------------

SELLER_KEY = "chaos-seller-key-0001"
LEAD_CAMPAIGN = "chaos-leads"
CALL_CAMPAIGN = "chaos-calls"

CAPPED_BUYER = "capped-leads"  # a lead buyer with a daily count cap and a daily budget
DAILY_CAP = 40
DAILY_BUDGET = Decimal("500.00")  # 40 sales at 12-14 cost 480-560: either limit may bind first
CALL_BUYER = "capped-calls"  # a call buyer with at most CONCURRENT live calls
CONCURRENT = 2

UNITS = Decimal(10_000)  # money is stored in 1/10,000 units

# Posts take 10-120 ms, so a kill often lands between a post's write-ahead intent and its record:
# that is what makes `post_unknown` rounds.
POST_LATENCY = {"uniform": {"min_ms": 10, "max_ms": 120}}
FLEET = {
    "buyers": {
        "lead-a": {"latency": {"fixed": {"ms": 5}}, "bid_probability": 0.9, "bid_min": "8.00", "bid_max": "12.00",
                   "post_latency": POST_LATENCY, "post_accept_rate": 1.0},
        "lead-b": {"latency": {"uniform": {"min_ms": 3, "max_ms": 20}}, "bid_probability": 0.9, "bid_min": "9.00",
                   "bid_max": "13.00", "post_latency": POST_LATENCY, "post_accept_rate": 0.8},
        "lead-c": {"latency": {"fixed": {"ms": 8}}, "bid_probability": 0.8, "bid_min": "6.00", "bid_max": "10.00",
                   "post_latency": POST_LATENCY, "post_accept_rate": 1.0},
        # Wins most rounds it bids in, but bids rarely, so its caps are reached part way through the run.
        CAPPED_BUYER: {"latency": {"fixed": {"ms": 6}}, "bid_probability": 0.04, "bid_min": "12.00", "bid_max": "14.00",
                       "post_latency": POST_LATENCY, "post_accept_rate": 1.0},
        CALL_BUYER: {"latency": {"fixed": {"ms": 5}}, "bid_probability": 1.0, "bid_min": "40.00", "bid_max": "50.00",
                     "expires_in_s": 60, "destination": "+18005550101", "min_duration_s": 60},
    }
}


def write_fleet(path):
    with open(path, "w") as f:
        json.dump(FLEET, f, indent=2)


def write_config(directory, fleet_url):
    os.makedirs(os.path.join(directory, "buyers"), exist_ok=True)
    files = {
        "campaigns.yaml": f"""\
campaigns:
  - id: {LEAD_CAMPAIGN}
    kind: lead
    vertical: auto_insurance
    tmax_ms: 800
    ping_timeout_ms: 300
    payout: {{share: 0.70}}
    required_fields: [zip, state]
    bid_hold_s: 120
  - id: {CALL_CAMPAIGN}
    kind: call
    vertical: home_services
    tmax_ms: 500
    ping_timeout_ms: 300
    payout: {{share: 0.60}}
    max_call_s: 10               # calls left live are released (abandoned) after 10 s
""",
        "sellers.yaml": f"""\
sellers:
  - id: chaos-seller
    api_key: {SELLER_KEY}
    campaigns: [{LEAD_CAMPAIGN}, {CALL_CAMPAIGN}]
""",
    }
    for buyer in ("lead-a", "lead-b", "lead-c", CAPPED_BUYER):
        caps = f"caps: {{daily: {DAILY_CAP}, daily_budget: {DAILY_BUDGET}}}\n" if buyer == CAPPED_BUYER else ""
        files[f"buyers/{buyer}.yaml"] = f"""\
id: {buyer}
campaigns: [{LEAD_CAMPAIGN}]
ping: {{url: "{fleet_url}/{buyer}/ping", timeout_ms: 250}}
post: {{url: "{fleet_url}/{buyer}/post", timeout_ms: 300}}
{caps}"""
    files[f"buyers/{CALL_BUYER}.yaml"] = f"""\
id: {CALL_BUYER}
campaigns: [{CALL_CAMPAIGN}]
ping: {{url: "{fleet_url}/{CALL_BUYER}/ping", timeout_ms: 250}}
caps: {{concurrent: {CONCURRENT}}}
"""
    # A ring-tree entry without caps takes the calls the capped buyer has no slot for.
    files["buyers/call-fixed.yaml"] = f"""\
id: call-fixed
campaigns: [{CALL_CAMPAIGN}]
price: 20.00
destination: "+18005550155"
min_duration_s: 60
"""
    for name, text in files.items():
        with open(os.path.join(directory, name), "w") as f:
            f.write(text)


# --- HTTP ----------------------------------------------------------------------------------------

def http_call(port, method, path, body=None, key=None, timeout=5.0):
    """One request on a fresh connection (drill_http.http_call), as the seller."""
    return drill_http.http_call(port, method, path, body, key, timeout, SELLER_KEY)


error_code = drill_http.error_code
is_final = drill_http.is_final


# --- the journal ---------------------------------------------------------------------------------

class Request:
    """One seller write (one Idempotency-Key) and every attempt made with it."""

    def __init__(self, key, kind, path, body, rid=None, ping_id=None, call_id=None, second_of=None):
        self.key, self.kind, self.path, self.body = key, kind, path, body
        self.rid = rid  # the request marker in lead / tags (`chaos_req`), for leads, pings and calls
        self.ping_id, self.call_id = ping_id, call_id
        self.second_of = second_of  # a second post of the same ping, under another key
        self.attempts = []

    def final(self):
        """The first final attempt (the acknowledged answer), or None."""
        return next((a for a in self.attempts if is_final(a["status"], a["body"])), None)


class Journal:
    def __init__(self, path):
        self.file = open(path, "w")
        self.lock = threading.Lock()
        self.requests = []
        self.counter = 0

    def new_rid(self):
        with self.lock:
            self.counter += 1
            return self.counter

    def add(self, request):
        with self.lock:
            self.requests.append(request)

    def record(self, request, attempt):
        with self.lock:
            request.attempts.append(attempt)
            line = {"key": request.key, "kind": request.kind, "path": request.path, "request": request.body}
            line.update(attempt)
            self.file.write(json.dumps(line) + "\n")

    def close(self):
        self.file.close()


# --- the exchange process ------------------------------------------------------------------------

class Exchange:
    def __init__(self, gavel, config, db, work):
        self.gavel, self.config, self.db, self.work = gavel, config, db, work
        self.proc = None
        self.port = None
        self.starts = 0

    def start(self):
        self.starts += 1
        out = os.path.join(self.work, "exchange.out")
        # stdout (the listening line) is rewritten per start; stderr (the log) is kept for every start.
        with open(out, "w") as stdout, open(os.path.join(self.work, "exchange.log"), "a") as log:
            log.write(f"--- start {self.starts} ---\n")
            log.flush()
            self.proc = subprocess.Popen(
                [self.gavel, "serve", "--config", self.config, "--db", self.db, "--port", "0", "--log-level", "warning"],
                stdout=stdout, stderr=log, stdin=subprocess.DEVNULL)
        with open(os.path.join(self.work, "exchange.pid"), "w") as f:
            f.write(str(self.proc.pid))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with open(out) as f:
                line = f.readline()
            if line.startswith("gavel listening on http://"):
                self.port = int(line.strip().rsplit(":", 1)[1])
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise RuntimeError(f"gavel serve did not start (exit {self.proc.poll()}); see {self.work}/exchange.log")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        if self.proc is not None:
            try:
                os.kill(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
            self.proc = None
            self.forget_pid()

    def forget_pid(self):
        try:
            os.unlink(os.path.join(self.work, "exchange.pid"))
        except FileNotFoundError:
            pass

    def terminate(self):
        """SIGTERM and wait: the exit status (the contract says 0)."""
        if self.proc is None:
            return None
        self.proc.terminate()
        try:
            status = self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            status = self.proc.wait()
        self.proc = None
        self.forget_pid()
        return status


# --- the load ------------------------------------------------------------------------------------

class Load:
    """Concurrent seller traffic against one exchange process, until `stop` is set."""

    WORKERS = 8

    def __init__(self, journal, carry, seed):
        self.journal = journal
        self.carry = carry  # pings not yet posted and calls not yet ended, carried across crashes
        self.seed = seed
        self.stop = threading.Event()
        self.port = None
        self.cycle = 0

    def send(self, kind, path, body, phase="load", **fields):
        """Sends a new request (a fresh Idempotency-Key) and journals it; None once stopping."""
        if self.stop.is_set():
            return None, None
        n = fields.pop("n", None) or self.journal.new_rid()
        request = Request(f"chaos-{self.seed}-{n:06d}", kind, path, json.dumps(body, separators=(",", ":")), **fields)
        self.journal.add(request)
        return request, self.attempt(request, phase)

    def attempt(self, request, phase):
        t0 = time.time()
        status, text, error = http_call(self.port, "POST", request.path, request.body, key=request.key)
        attempt = {"cycle": self.cycle, "phase": phase, "status": status, "body": text, "error": error,
                   "t0": round(t0, 3), "t1": round(time.time(), 3)}
        self.journal.record(request, attempt)
        return attempt

    def run(self, cycle, port):
        self.cycle, self.port = cycle, port
        self.stop.clear()
        threads = [threading.Thread(target=self.worker, args=(random.Random(f"{self.seed}-{cycle}-{i}"),), daemon=True)
                   for i in range(self.WORKERS)]
        for t in threads:
            t.start()
        return threads

    def worker(self, rng):
        while not self.stop.is_set():
            roll = rng.random()
            held = self.carry.take_ping(rng) if roll < 0.05 else None
            live = self.carry.take_call(rng) if 0.05 <= roll < 0.10 else None
            if held:
                self.post(rng, *held)  # a ping from an earlier cycle: its bids were restored
            elif live:
                self.end_call(rng, live)  # a call from an earlier cycle: restored live, or abandoned
            elif roll < 0.45:
                self.lead(rng)
            elif roll < 0.75:
                self.ping(rng)
            else:
                self.call(rng)

    @staticmethod
    def phone(n):
        return f"+1415{2000000 + n}"

    def lead(self, rng):
        n = self.journal.new_rid()
        rid = f"r{n:06d}"
        body = {"campaign": LEAD_CAMPAIGN, "lead": {"zip": "94107", "state": "CA", "chaos_req": rid},
                "contact": {"email": f"{rid}@chaos.example", "phone": self.phone(n)}}
        self.send("lead", "/v1/leads", body, n=n, rid=rid)

    def ping(self, rng):
        n = self.journal.new_rid()
        rid = f"r{n:06d}"
        body = {"campaign": LEAD_CAMPAIGN, "lead": {"zip": "94107", "state": "CA", "chaos_req": rid}}
        _, attempt = self.send("ping", "/v1/pings", body, n=n, rid=rid)
        if not attempt or attempt["status"] != 200:
            return
        answer = json.loads(attempt["body"])
        if answer["status"] != "bid":
            return
        if self.stop.is_set() or rng.random() < 0.1:
            self.carry.add_ping(answer["ping_id"], rid)  # posted in a later cycle, after a restart
            return
        time.sleep(rng.uniform(0, 0.05))
        self.post(rng, answer["ping_id"], rid)

    def post(self, rng, ping_id, rid):
        body = {"ping_id": ping_id, "contact": {"email": f"{rid}@chaos.example"}}
        request, attempt = self.send("post", "/v1/posts", body, ping_id=ping_id)
        if attempt is None:
            self.carry.add_ping(ping_id, rid)
        elif attempt["status"] == 200 and rng.random() < 0.08:
            # A seller double-submitting under another key: the first result again, nothing sold twice.
            self.send("post", "/v1/posts", body, ping_id=ping_id, second_of=request.key)

    def call(self, rng):
        n = self.journal.new_rid()
        rid = f"r{n:06d}"
        body = {"campaign": CALL_CAMPAIGN, "caller": {"number": self.phone(n), "zip": "94107", "state": "CA"},
                "tags": {"chaos_req": rid}}
        _, attempt = self.send("call", "/v1/calls", body, n=n, rid=rid)
        if not attempt or attempt["status"] != 200:
            return
        answer = json.loads(attempt["body"])
        if answer["status"] != "routed":
            return
        plan = rng.random()
        if plan < 0.06:
            steps = []  # left live: ended in a later cycle, or released after max_call_s
        elif plan < 0.4:
            steps = ["connected", "completed"]
        elif plan < 0.65:
            steps = ["failed", "completed"]  # fails over to the next bid, then completes
        else:
            steps = ["completed"]
        self.call_events(rng, answer["call_id"], steps)

    def end_call(self, rng, call_id):
        self.call_events(rng, call_id, ["completed"])

    def call_events(self, rng, call_id, steps):
        for step in steps:
            time.sleep(rng.uniform(0, 0.12))  # calls overlap, so the capped buyer's slots fill up
            event = {"type": step}
            if step == "completed":
                event["duration_s"] = rng.randint(20, 200)  # minimum 60: some convert, some do not
            _, attempt = self.send("event", f"/v1/calls/{call_id}/events", event, call_id=call_id)
            if attempt is None or attempt["status"] is None or attempt["status"] >= 500:
                break  # unknown: end it in a later cycle
            if attempt["status"] != 200:
                return
            if json.loads(attempt["body"])["status"] in ("unrouted", "converted", "not_converted"):
                return
        self.carry.add_call(call_id)


class Carry:
    """Pings answered with a bid but not posted, and calls answered routed but not ended."""

    def __init__(self):
        self.lock = threading.Lock()
        self.pings, self.calls = [], []

    def add_ping(self, ping_id, rid):
        with self.lock:
            self.pings.append((ping_id, rid))

    def add_call(self, call_id):
        with self.lock:
            self.calls.append(call_id)

    def take_ping(self, rng):
        with self.lock:
            return self.pings.pop(rng.randrange(len(self.pings))) if self.pings else None

    def take_call(self, rng):
        with self.lock:
            return self.calls.pop(rng.randrange(len(self.calls))) if self.calls else None


# --- retries -------------------------------------------------------------------------------------

def retry_some(load, journal, rng, everything=False):
    """After a restart, resend some requests with their key and body, as a seller would: some that
    never got a final answer (the exchange died under them) and some that did. With `everything`,
    every request without a final answer is resent."""
    unacked, acked = [], []
    for request in journal.requests:
        if not request.attempts:
            continue
        (acked if request.final() else unacked).append(request)
    chosen = [r for r in unacked if everything or rng.random() < 0.6]
    if not everything:
        chosen = chosen[:30]
    chosen += rng.sample(acked, min(len(acked), 40 if everything else 12))
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda r: load.attempt(r, "retry"), chosen))
    return len(chosen)


# --- the checks ----------------------------------------------------------------------------------

class Checks:
    def __init__(self):
        self.passed = self.failed = 0

    def check(self, name, ok, detail, examples=()):
        if ok:
            self.passed += 1
            print(f"check {name}: ok ({detail})")
        else:
            self.failed += 1
            print(f"check {name}: FAILED ({detail})")
            for example in list(examples)[:10]:
                print(f"    {example}")


def money(value):
    return Decimal(str(value))


def day_of(ms):
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime("%Y-%m-%d")


def verify(journal, exchange, db_path, cycles_run, cycles_wanted, crashed_alone, checks):
    """Every check of the drill; returns (acknowledged rounds, lost, post_unknown, identical retries)."""
    requests = journal.requests
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row

    checks.check("cycles", cycles_run == cycles_wanted and not crashed_alone,
                 f"{cycles_run} of {cycles_wanted} cycles ran; the exchange was alive at every kill",
                 [f"the exchange had exited by itself before the kill of cycle {c}" for c in crashed_alone]
                 + ([f"stopped after {cycles_run} cycles: over the time budget"] if cycles_run < cycles_wanted else []))

    # 5xx: only 503 is in the contract (overloaded, or the database could not commit).
    fives = [(r.key, r.path, a["status"], a["body"]) for r in requests for a in r.attempts
             if a["status"] is not None and a["status"] >= 500 and a["status"] != 503]
    statuses = Counter((r.kind, a["status"] if a["status"] is not None else "error") for r in requests for a in r.attempts)
    print("answers: " + ", ".join(f"{k}:{s}={n}" for (k, s), n in sorted(statuses.items(), key=lambda x: (x[0][0], str(x[0][1])))))
    checks.check("no 5xx but 503", not fives, f"{len(fives)} other 5xx answers", fives)

    # --- acknowledged rounds: every 200 is in GET /v1/auctions/{id} with a consistent status ----
    expectations = defaultdict(list)  # round id -> [(request, answer)]
    for r in requests:
        first = r.final()
        if first is None or first["status"] != 200:
            continue
        answer = json.loads(first["body"], parse_float=Decimal)
        round_id = answer.get("auction_id") or answer.get("ping_id") or answer.get("call_id")
        expectations[round_id].append((r, answer))

    def fetch(round_id):
        status, text, error = http_call(exchange.port, "GET", f"/v1/auctions/{round_id}", timeout=10)
        return round_id, status, (json.loads(text, parse_float=Decimal) if status == 200 else text or error)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        views = {rid: (status, view) for rid, status, view in pool.map(fetch, expectations)}
    sales = {row["round_id"]: row for row in db.execute("SELECT * FROM sales")}

    lost = []  # missing from GET /v1/auctions/{id}, or recorded other than acknowledged
    missing = 0
    ended = {"converted", "not_converted", "abandoned", "unrouted"}
    for round_id, expected in expectations.items():
        status, view = views[round_id]
        if status != 200:
            lost.append(f"{round_id}: GET answered {status} {str(view)[:120]} (acknowledged by {expected[0][0].key})")
            missing += 1
            continue
        recorded, payout = view["status"], money(view["payout"])
        for request, answer in expected:
            problem = None
            said = answer.get("status")
            if request.kind in ("lead", "post"):
                if recorded != said:
                    problem = f"answered {said}, recorded {recorded}"
                elif said == "sold":
                    sale = sales.get(round_id)
                    if money(answer["payout"]) != payout:
                        problem = f"answered payout {answer['payout']}, recorded {payout}"
                    elif sale is None or Decimal(sale["payout"]) / UNITS != money(answer["payout"]):
                        problem = f"sold with payout {answer['payout']} but the sales row is {dict(sale) if sale else None}"
            elif request.kind == "ping":
                if (said == "no_bid") != (recorded == "no_bid"):
                    problem = f"ping answered {said}, recorded {recorded}"
            elif request.kind == "call":
                if said == "unrouted" and recorded != "unrouted":
                    problem = f"call answered unrouted, recorded {recorded}"
            elif request.kind == "event":
                if said in ("converted", "not_converted", "unrouted") and recorded != said:
                    problem = f"event {request.body} answered {said}, recorded {recorded}"
                elif said == "converted" and money(answer["payout"]) != payout:
                    problem = f"converted with payout {answer['payout']}, recorded {payout}"
                elif said == "connected" and recorded not in ended | {"connected"}:
                    problem = f"event answered connected, recorded {recorded}"
            if problem:
                lost.append(f"{round_id} ({request.kind}, key {request.key}): {problem}")
                break
    acknowledged = len(expectations)
    checks.check("acknowledged rounds", not lost,
                 f"acknowledged rounds lost: {len(lost)} of {acknowledged} ({missing} missing, "
                 f"{len(lost) - missing} recorded with another outcome than acknowledged)", lost)

    # --- retries of acknowledged requests: the first final answer, byte for byte -------------------
    identical, different, unacked_retries = 0, [], 0
    for r in requests:
        first = r.final()
        for a in r.attempts:
            if a["phase"] != "retry":
                continue
            if first is None or a is first or a["t0"] < first["t0"]:
                unacked_retries += 1
                continue
            if (a["status"], a["body"]) == (first["status"], first["body"]):
                identical += 1
            else:
                different.append(f"{r.key} {r.path}: first {first['status']} {first['body']!r}, "
                                 f"retry (cycle {a['cycle']}) {a['status']} {a['body'] or a['error']!r}")
    checks.check("retries identical", not different,
                 f"{identical} of {identical + len(different)} retried acknowledged requests got the same "
                 f"bytes; {unacked_retries} retries of unacknowledged requests", different)

    # --- one round per request, nothing sold twice ------------------------------------------------
    rounds = list(db.execute("SELECT id, kind, status, winner_id, price, created_at_ms, "
                             "json_extract(lead_json, '$.chaos_req') AS rid FROM rounds"))
    per_request = defaultdict(list)
    for row in rounds:
        per_request[row["rid"]].append(row["id"])
    twice = [f"request {rid}: rounds {ids}" for rid, ids in per_request.items() if rid and len(ids) > 1]
    unmarked = [row["id"] for row in rounds if not row["rid"]]
    checks.check("one round per request", not twice and not unmarked,
                 f"{len(rounds)} rounds, {len(twice)} requests with more than one, {len(unmarked)} without a marker",
                 twice + [f"round without a request marker: {i}" for i in unmarked])

    by_contact = list(db.execute("SELECT contact_hash, COUNT(*) AS n, GROUP_CONCAT(round_id) AS ids FROM sales "
                                 "WHERE contact_hash IS NOT NULL GROUP BY contact_hash HAVING n > 1"))
    by_round_request = [f"request {rid}: sold in {ids}" for rid, ids in per_request.items()
                        if rid and sum(1 for i in ids if i in sales) > 1]
    no_contact = sum(1 for s in sales.values() if s["contact_hash"] is None)
    checks.check("no double sale", not by_contact and not by_round_request,
                 f"{len(sales)} sales; {len(by_contact)} contacts sold twice, {len(by_round_request)} requests sold twice"
                 + (f"; {no_contact} sales without a contact hash" if no_contact else ""),
                 [f"contact {row['contact_hash'][:12]}…: {row['n']} sales ({row['ids']})" for row in by_contact]
                 + by_round_request)

    results = Counter(row[0] for row in db.execute("SELECT result FROM post_attempts"))
    double_accept = list(db.execute("SELECT round_id, COUNT(*) AS n FROM post_attempts WHERE result = 'sold' "
                                    "GROUP BY round_id HAVING n > 1"))
    sold_not_accepted = list(db.execute("SELECT s.round_id FROM sales s WHERE s.kind = 'lead' AND NOT EXISTS "
                                        "(SELECT 1 FROM post_attempts p WHERE p.round_id = s.round_id AND p.result = 'sold')"))
    checks.check("one accepted post per round", not double_accept and not sold_not_accepted,
                 f"post results {dict(results)}",
                 [f"{row['round_id']}: {row['n']} accepted posts" for row in double_accept]
                 + [f"{row['round_id']}: a sale without an accepted post" for row in sold_not_accepted])

    # A second post of a ping under another key answers like the first.
    by_key = {r.key: r for r in requests}
    second_diff, seconds = [], 0
    for r in requests:
        if r.second_of and r.final() and by_key[r.second_of].final():
            seconds += 1
            mine, theirs = r.final(), by_key[r.second_of].final()
            if mine["status"] != 200 or json.loads(mine["body"]) != json.loads(theirs["body"]):
                second_diff.append(f"{r.ping_id}: first {theirs['body']!r}, second {mine['status']} {mine['body']!r}")
    checks.check("second post of a ping", not second_diff, f"{seconds} second posts answered like the first", second_diff)

    # --- post_unknown: final, never sold, and a retry of its request gets 409 outcome_unknown ------
    unknown = [row for row in rounds if row["status"] == "post_unknown"]
    owners = defaultdict(list)  # post_unknown round -> the requests that posted it (same key retries)
    by_rid = {r.rid: r for r in requests if r.rid and r.kind == "lead"}
    posts_of = defaultdict(list)
    for r in requests:
        if r.kind == "post" and not r.second_of:
            posts_of[r.ping_id].append(r)
    for row in unknown:
        if row["id"].startswith("png_"):
            owners[row["id"]] += posts_of.get(row["id"], [])
        elif row["rid"] in by_rid:
            owners[row["id"]].append(by_rid[row["rid"]])
    unknown_bad, unknown_retried = [], 0
    for round_id, owner_requests in owners.items():
        if round_id in sales:
            unknown_bad.append(f"{round_id}: post_unknown but in sales")
        for r in owner_requests:
            # Answers after the last attempt that died under a crash came after the restart that
            # made the round post_unknown.
            died = max((i for i, a in enumerate(r.attempts) if a["status"] is None), default=None)
            if died is None:
                continue
            for a in r.attempts[died + 1:]:
                unknown_retried += 1
                if a["status"] != 409 or error_code(a["body"]) != "outcome_unknown":
                    unknown_bad.append(f"{round_id} ({r.kind}, key {r.key}): retry in cycle {a['cycle']} got "
                                       f"{a['status']} {a['body'] or a['error']!r}, expected 409 outcome_unknown")
    checks.check("post_unknown retries", not unknown_bad,
                 f"{len(unknown)} post_unknown rounds; {unknown_retried} retries of their requests", unknown_bad)

    # --- caps ------------------------------------------------------------------------------------
    daily = defaultdict(lambda: [0, Decimal(0), 0, Decimal(0)])  # day -> sales, spend, +unknown, +unknown spend
    for s in sales.values():
        if s["buyer_id"] == CAPPED_BUYER:
            d = daily[day_of(s["sold_at_ms"])]
            d[0] += 1
            d[1] += Decimal(s["price"]) / UNITS
    for d in daily.values():
        d[2], d[3] = d[0], d[1]
    for row in unknown:
        if row["winner_id"] == CAPPED_BUYER:
            d = daily[day_of(row["created_at_ms"])]
            d[2] += 1
            d[3] += Decimal(row["price"] or 0) / UNITS
    counters = {row["window"][2:]: (row["count"], Decimal(row["spend"]) / UNITS) for row in
                db.execute("SELECT * FROM cap_counters WHERE buyer_id = ? AND window LIKE 'D:%'", (CAPPED_BUYER,))}
    over_count = [f"{day}: {d[0]} sales, {d[2]} with post_unknown (cap {DAILY_CAP})" for day, d in daily.items()
                  if d[2] > DAILY_CAP]
    over_budget = [f"{day}: spend {d[1]}, {d[3]} with post_unknown (budget {DAILY_BUDGET})" for day, d in daily.items()
                   if d[3] > DAILY_BUDGET]
    summary = "; ".join(f"{day}: {d[0]} sales + {d[2] - d[0]} post_unknown, spend {d[3]}" for day, d in sorted(daily.items()))
    checks.check("daily cap", not over_count, f"{CAPPED_BUYER} daily {DAILY_CAP}: {summary or 'no sales'}", over_count)
    checks.check("daily budget", not over_budget, f"{CAPPED_BUYER} budget {DAILY_BUDGET}", over_budget)
    # Compared over the whole run: a sale reserved just before midnight UTC and committed just after
    # counts on the reservation's day but is dated by its commit.
    counted = (sum(c[0] for c in counters.values()), sum((c[1] for c in counters.values()), Decimal(0)))
    booked = (sum(d[2] for d in daily.values()), sum((d[3] for d in daily.values()), Decimal(0)))
    checks.check("cap counters match the books", counted == booked,
                 f"persisted day counters {dict(sorted(counters.items()))}",
                 [f"counters {counted}, sales + post_unknown {booked}"])

    # Live calls of the capped call buyer over time, from the call events: a slot is taken at
    # `routed` and freed at `failed`, `completed` or `released` (abandoned).
    events = list(db.execute("SELECT round_id, sequence, type, buyer_id, at_ms FROM call_events ORDER BY round_id, sequence"))
    open_at, edges = {}, []
    for e in events:
        if e["buyer_id"] != CALL_BUYER:
            continue
        if e["type"] == "routed":
            open_at[e["round_id"]] = e["at_ms"]
        elif e["type"] in ("failed", "completed", "released") and e["round_id"] in open_at:
            edges.append((open_at.pop(e["round_id"]), 1, e["round_id"]))
            edges.append((e["at_ms"], -1, e["round_id"]))
    for round_id, start in open_at.items():
        edges.append((start, 1, round_id))
    peak, live, peak_at, intervals = 0, 0, None, 0
    for at, delta, round_id in sorted(edges, key=lambda x: (x[0], x[1])):  # frees before takes at the same ms
        live += delta
        intervals += delta > 0
        if live > peak:
            peak, peak_at = live, (at, round_id)
    live_now = list(db.execute("SELECT id FROM rounds WHERE kind = 'call' AND status IN ('routed', 'connected') "
                               "AND id IN (SELECT round_id FROM call_events WHERE buyer_id = ? AND type = 'routed') "
                               "AND id NOT IN (SELECT round_id FROM call_events WHERE buyer_id = ? AND type IN "
                               "('failed', 'completed', 'released'))", (CALL_BUYER, CALL_BUYER)))
    checks.check("concurrent calls", peak <= CONCURRENT and len(live_now) <= CONCURRENT,
                 f"{CALL_BUYER} concurrent {CONCURRENT}: peak {peak} over {intervals} routed calls, {len(live_now)} live now",
                 [f"{peak} live calls at {peak_at}"] if peak > CONCURRENT else [])

    # --- /metrics after the final restart ---------------------------------------------------------
    status, text, error = http_call(exchange.port, "GET", "/metrics")
    gauge = None
    for line in (text or "").splitlines():
        if line.startswith("gavel_post_unknown_rounds"):
            gauge = Decimal(line.split()[-1])
    checks.check("post_unknown metric", gauge is not None and gauge == len(unknown),
                 f"gavel_post_unknown_rounds {gauge}, database {len(unknown)}",
                 [] if gauge is not None else [f"/metrics answered {status} {error or ''}; no gavel_post_unknown_rounds line"])
    db.close()
    return acknowledged, len(lost), len(unknown), identical


# --- the drill -----------------------------------------------------------------------------------

def run(args):
    rng = random.Random(args.seed)
    work = args.work
    journal = Journal(os.path.join(work, "journal.jsonl"))
    exchange = Exchange(args.gavel, args.config, args.db, work)
    load = Load(journal, Carry(), args.seed)
    checks = Checks()
    started = time.monotonic()
    crashed_alone = []
    cycles_run = 0
    acknowledged = lost = unknown = identical = 0
    try:
        for cycle in range(1, args.cycles + 1):
            if time.monotonic() - started > args.time_budget:
                print(f"chaos: time budget of {args.time_budget} s spent after {cycles_run} cycles", file=sys.stderr)
                break
            load.cycle = cycle
            exchange.start()
            load.port = exchange.port
            retried = retry_some(load, journal, rng)
            seconds = rng.uniform(0.3, 1.5)
            threads = load.run(cycle, exchange.port)
            time.sleep(seconds)
            if not exchange.alive():
                crashed_alone.append(cycle)
            load.stop.set()
            exchange.kill9()  # mid-load: requests in flight die with the process
            for t in threads:
                t.join(timeout=10)
            cycles_run = cycle
            sent = sum(1 for r in journal.requests for a in r.attempts if a["cycle"] == cycle)
            died = sum(1 for r in journal.requests for a in r.attempts if a["cycle"] == cycle and a["status"] is None)
            print(f"cycle {cycle}: {seconds:.2f} s of load, {sent} requests ({retried} retries), "
                  f"{died} unacknowledged at kill -9", file=sys.stderr, flush=True)

        # The last restart: resend every request that never got a final answer, and a sample of
        # those that did, then leave the exchange quiet and check.
        load.cycle = cycles_run + 1
        exchange.start()
        load.port = exchange.port
        retried = retry_some(load, journal, rng, everything=True)
        print(f"final restart: {retried} retries", file=sys.stderr)
        acknowledged, lost, unknown, identical = verify(journal, exchange, args.db, cycles_run, args.cycles,
                                                        crashed_alone, checks)
        status = exchange.terminate()
        checks.check("clean shutdown", status == 0, f"SIGTERM exit status {status}")
    finally:
        load.stop.set()
        exchange.kill9()
        journal.close()
    print(f"chaos: {cycles_run} cycles, {acknowledged} acknowledged rounds, {lost} lost, {unknown} post_unknown, "
          f"{identical} retries identical")
    print(f"chaos: {checks.passed} passed, {checks.failed} failed")
    print(f"chaos: {time.monotonic() - started:.1f} s", file=sys.stderr)
    return 1 if checks.failed else 0


# --- a minimal reproducer of what the drill found ---------------------------------------------

def repro(args):
    """Two-phase posts and Idempotency-Key, deterministic: one buyer whose post takes 1.5 s.

    A. post ping P1 with key K -> 200; the same K with another body (ping P2) should be 422
       idempotency_key_reused.
    B. post ping P3 with key K3, kill -9 while the buyer holds the post, restart: P3 is post_unknown,
       and the same K3 again should be 409 outcome_unknown.
    Exits 1 when either answer is not what CONTRACT v2 says."""
    import tempfile
    work = tempfile.mkdtemp(prefix="gavel-repro.")
    fleet = {"buyers": {"slow-post": {"latency": {"fixed": {"ms": 5}}, "bid_probability": 1.0, "bid_min": "10.00",
                                      "bid_max": "10.00", "post_latency": {"fixed": {"ms": 1500}}, "post_accept_rate": 1.0}}}
    with open(os.path.join(work, "fleet.json"), "w") as f:
        json.dump(fleet, f)
    buyers = subprocess.Popen([os.path.join(args.bin, "gavel-buyers"), "--fleet", os.path.join(work, "fleet.json"), "--port", "0"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    exchange = None
    try:
        url = buyers.stdout.readline().split()[3]
        config = os.path.join(work, "config")
        os.makedirs(os.path.join(config, "buyers"))
        with open(os.path.join(config, "campaigns.yaml"), "w") as f:
            f.write(f"campaigns:\n  - {{id: {LEAD_CAMPAIGN}, vertical: auto_insurance, tmax_ms: 5000, ping_timeout_ms: 300}}\n")
        with open(os.path.join(config, "sellers.yaml"), "w") as f:
            f.write(f"sellers:\n  - {{id: chaos-seller, api_key: {SELLER_KEY}, campaigns: [{LEAD_CAMPAIGN}]}}\n")
        with open(os.path.join(config, "buyers", "slow-post.yaml"), "w") as f:
            f.write(f"id: slow-post\ncampaigns: [{LEAD_CAMPAIGN}]\nping: {{url: \"{url}/slow-post/ping\"}}\n"
                    f"post: {{url: \"{url}/slow-post/post\", timeout_ms: 4000}}\n")
        exchange = Exchange(os.path.join(args.bin, "gavel"), config, os.path.join(work, "gavel.sqlite"), work)
        exchange.start()

        def ping(n):
            body = json.dumps({"campaign": LEAD_CAMPAIGN, "lead": {"zip": "94107", "state": "CA", "n": n}})
            return json.loads(http_call(exchange.port, "POST", "/v1/pings", body, key=f"ping-{n}")[1])["ping_id"]

        def post(ping_id, key):
            body = json.dumps({"ping_id": ping_id, "contact": {"email": f"{ping_id}@repro.example"}})
            return http_call(exchange.port, "POST", "/v1/posts", body, key=key)

        bugs = 0
        p1, p2 = ping(1), ping(2)
        print(f"A. POST /v1/posts {p1} key K: {post(p1, 'K')[:2]}")
        status, text, _ = post(p2, "K")
        print(f"   same key K, body for {p2}: {status} {text.strip()}")
        if status != 422:
            bugs += 1
            print("   BUG: expected 422 idempotency_key_reused (the post's answer was never stored under K)")

        p3 = ping(3)
        result = []
        worker = threading.Thread(target=lambda: result.append(post(p3, "K3")))
        worker.start()
        time.sleep(0.7)  # the post intent is committed and the buyer holds the post
        exchange.kill9()
        worker.join()
        exchange.start()
        print(f"B. POST /v1/posts {p3} key K3, kill -9 during the buyer's post: {result[0][2]}")
        view = json.loads(http_call(exchange.port, "GET", f"/v1/auctions/{p3}")[1])
        print(f"   after the restart, GET /v1/auctions/{p3}: status {view['status']}")
        status, text, _ = post(p3, "K3")
        print(f"   same key K3 again: {status} {text.strip()}")
        if view["status"] == "post_unknown" and (status != 409 or error_code(text) != "outcome_unknown"):
            bugs += 1
            print("   BUG: expected 409 outcome_unknown; the seller is told the lead went unsold while the buyer may have it")
        print(f"repro: {bugs} contract violations")
        return 1 if bugs else 0
    finally:
        if exchange:
            exchange.kill9()
        buyers.terminate()
        buyers.wait()
        import shutil
        shutil.rmtree(work, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    fleet = sub.add_parser("write-fleet")
    fleet.add_argument("file")
    config = sub.add_parser("write-config")
    config.add_argument("directory")
    config.add_argument("--fleet-url", required=True)
    drill = sub.add_parser("run")
    drill.add_argument("--gavel", required=True)
    drill.add_argument("--config", required=True)
    drill.add_argument("--db", required=True)
    drill.add_argument("--work", required=True)
    drill.add_argument("--cycles", type=int, default=50)
    drill.add_argument("--seed", type=int, default=int(time.time()))
    drill.add_argument("--time-budget", type=float, default=200, help="seconds for the cycles; the checks come after")
    reproducer = sub.add_parser("repro", help="a deterministic reproducer of the two-phase post findings")
    reproducer.add_argument("--bin", default=".build/debug")
    args = parser.parse_args()
    if args.command == "repro":
        sys.exit(repro(args))
    if args.command == "write-fleet":
        write_fleet(args.file)
    elif args.command == "write-config":
        write_config(args.directory, args.fleet_url)
    else:
        # SIGTERM (chaos.sh's trap, or its timeout) unwinds through `finally`, which kills the exchange.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        sys.exit(run(args))


if __name__ == "__main__":
    main()
