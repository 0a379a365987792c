#!/usr/bin/env python3
"""The driver of scripts/cluster-test.sh: two `gavel serve` nodes on one PostgreSQL database.

Subcommands (standard library only; psql for the database checks):

  write-fleet FILE                  the mock buyers' fleet file (gavel-buyers --fleet FILE)
  write-config DIR --fleet-url URL  the exchange's config directory, pointing at those buyers
  run --gavel BIN --config DIR --database-url URL --work DIR --fleet-url URL [--seed S] [--claim-grace-ms N]
                                    the test: a fresh database on that server, two nodes, the phases
                                    below, the checks; prints `check NAME: ok|FAILED (...)` per check
                                    and `cluster: P passed, F failed`

The phases, in order (each node is a real process; the load alternates between them):

  1. cap race: 400 leads at once across both nodes against a buyer capped at 50 a day and a budget
     that 50 sales exactly spend; meanwhile concurrent calls against a buyer with `concurrent: 2`.
  2. double post: pings on node 1, each posted on node 1 and node 2 at the same moment.
  3. config reload: a buyer paused in its file, SIGHUP to node 1 only, node 2 must follow in 2 s.
  4. kill -9 of node 2 under load (leads, pings + posts, calls + events to both nodes), the load
     moving to node 1 as a load balancer would; then the dead node's held pings are posted and its
     live calls ended on node 1, every unanswered request is retried there with its key, and its
     cap claims must be gone once --claim-grace-ms has passed.
  5. database outage (under scripts/with-postgres.sh): the server is stopped under the live node;
     leads get clean 503s within their budget and no post reaches a buyer; the server is started
     again and the node sells again by itself.
  At the end: every round either node acknowledged with a 200 is read back from node 1 with the
  same outcome, nothing is sold twice, caps and live calls were never exceeded.

Every seller write carries a unique Idempotency-Key and is journalled (work/journal.jsonl) with the
node it went to, its status and body, or the transport error when the node died under it.
"""

import argparse
import concurrent.futures
import datetime
import http.client
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from collections import Counter, defaultdict
from decimal import Decimal

import drill_http

# --- the scenario --------------------------------------------------------------------------------

SELLER_KEY = "cluster-seller-key-0001"
OPERATOR_KEY = "cluster-operator-key-0001"
RACE_CAMPAIGN = "race-leads"  # phases 1-3
KILL_CAMPAIGN = "kill-leads"  # phase 4: its own capped buyer, so the kill lands while its cap is open
CALL_CAMPAIGN = "cluster-calls"

RACE_CAPPED = "race-capped"  # always the highest bid: it wins every round until its caps stop it
RACE_CAP = 50
RACE_PRICE = Decimal("13.00")
RACE_BUDGET = RACE_CAP * RACE_PRICE  # 50 sales spend the budget exactly: both limits bind at once
RACE_LEADS = 400

KILL_CAPPED = "kill-capped"  # bids in half the rounds, posts slowly: kills land between claim and record
KILL_CAP = 80
KILL_BUDGET = KILL_CAP * RACE_PRICE

PAUSED_BUYER = "lead-b"  # paused by the config reload of phase 3

CALL_CAPPED = "call-capped"
CONCURRENT = 2
CALL_CAPPED_DEST = "+18005550101"
CALL_FIXED_DEST = "+18005550155"

NODES = ("node-1", "node-2")
UNITS = Decimal(10_000)  # money is stored in 1/10,000 units

FLEET = {
    "buyers": {
        RACE_CAPPED: {"latency": {"fixed": {"ms": 4}}, "bid_probability": 1.0, "bid_min": str(RACE_PRICE),
                      "bid_max": str(RACE_PRICE), "post_latency": {"uniform": {"min_ms": 5, "max_ms": 40}},
                      "post_accept_rate": 1.0},
        "lead-a": {"latency": {"fixed": {"ms": 5}}, "bid_probability": 0.9, "bid_min": "8.00", "bid_max": "11.00",
                   "post_latency": {"uniform": {"min_ms": 5, "max_ms": 30}}, "post_accept_rate": 1.0},
        PAUSED_BUYER: {"latency": {"uniform": {"min_ms": 3, "max_ms": 15}}, "bid_probability": 1.0, "bid_min": "7.00",
                       "bid_max": "11.00", "post_latency": {"uniform": {"min_ms": 5, "max_ms": 30}},
                       "post_accept_rate": 1.0},
        "lead-c": {"latency": {"fixed": {"ms": 6}}, "bid_probability": 0.9, "bid_min": "6.00", "bid_max": "10.00",
                   "post_latency": {"uniform": {"min_ms": 5, "max_ms": 30}}, "post_accept_rate": 1.0},
        KILL_CAPPED: {"latency": {"fixed": {"ms": 5}}, "bid_probability": 0.5, "bid_min": str(RACE_PRICE),
                      "bid_max": str(RACE_PRICE), "post_latency": {"uniform": {"min_ms": 20, "max_ms": 150}},
                      "post_accept_rate": 1.0},
        CALL_CAPPED: {"latency": {"fixed": {"ms": 5}}, "bid_probability": 1.0, "bid_min": "40.00", "bid_max": "50.00",
                      "expires_in_s": 60, "destination": CALL_CAPPED_DEST, "min_duration_s": 60},
    }
}


def write_fleet(path):
    with open(path, "w") as f:
        json.dump(FLEET, f, indent=2)


def buyer_yaml(buyer, campaigns, fleet_url, extra=""):
    return f"""\
id: {buyer}
campaigns: [{", ".join(campaigns)}]
ping: {{url: "{fleet_url}/{buyer}/ping", timeout_ms: 300}}
post: {{url: "{fleet_url}/{buyer}/post", timeout_ms: 400}}
{extra}"""


def write_config(directory, fleet_url):
    os.makedirs(os.path.join(directory, "buyers"), exist_ok=True)
    files = {
        "campaigns.yaml": f"""\
campaigns:
  - id: {RACE_CAMPAIGN}
    kind: lead
    vertical: auto_insurance
    tmax_ms: 2000
    ping_timeout_ms: 600
    payout: {{share: 0.70}}
    required_fields: [zip, state]
    bid_hold_s: 120
  - id: {KILL_CAMPAIGN}
    kind: lead
    vertical: auto_insurance
    tmax_ms: 2000
    ping_timeout_ms: 600
    payout: {{share: 0.70}}
    required_fields: [zip, state]
    bid_hold_s: 120
  - id: {CALL_CAMPAIGN}
    kind: call
    vertical: home_services
    tmax_ms: 1500
    ping_timeout_ms: 600
    payout: {{share: 0.60}}
    bid_hold_s: 120
    max_call_s: 120
""",
        "sellers.yaml": f"""\
sellers:
  - id: cluster-seller
    api_key: {SELLER_KEY}
    campaigns: [{RACE_CAMPAIGN}, {KILL_CAMPAIGN}, {CALL_CAMPAIGN}]
""",
        "operators.yaml": f"""\
operators:
  - id: cluster-operator
    api_key: {OPERATOR_KEY}
""",
    }
    files[f"buyers/{RACE_CAPPED}.yaml"] = buyer_yaml(
        RACE_CAPPED, [RACE_CAMPAIGN], fleet_url, f"caps: {{daily: {RACE_CAP}, daily_budget: {RACE_BUDGET}}}\n")
    files["buyers/lead-a.yaml"] = buyer_yaml("lead-a", [RACE_CAMPAIGN, KILL_CAMPAIGN], fleet_url)
    files[f"buyers/{PAUSED_BUYER}.yaml"] = buyer_yaml(PAUSED_BUYER, [RACE_CAMPAIGN], fleet_url)
    files["buyers/lead-c.yaml"] = buyer_yaml("lead-c", [RACE_CAMPAIGN, KILL_CAMPAIGN], fleet_url)
    files[f"buyers/{KILL_CAPPED}.yaml"] = buyer_yaml(
        KILL_CAPPED, [KILL_CAMPAIGN], fleet_url, f"caps: {{daily: {KILL_CAP}, daily_budget: {KILL_BUDGET}}}\n")
    files[f"buyers/{CALL_CAPPED}.yaml"] = f"""\
id: {CALL_CAPPED}
campaigns: [{CALL_CAMPAIGN}]
ping: {{url: "{fleet_url}/{CALL_CAPPED}/ping", timeout_ms: 300}}
caps: {{concurrent: {CONCURRENT}}}
"""
    # A ring-tree entry without caps takes the calls the capped buyer has no slot for.
    files["buyers/call-fixed.yaml"] = f"""\
id: call-fixed
campaigns: [{CALL_CAMPAIGN}]
price: 20.00
destination: "{CALL_FIXED_DEST}"
min_duration_s: 60
"""
    for name, text in files.items():
        with open(os.path.join(directory, name), "w") as f:
            f.write(text)


# --- HTTP ----------------------------------------------------------------------------------------

def http_call(port, method, path, body=None, key=None, timeout=10.0, bearer=SELLER_KEY):
    """One request on a fresh connection (drill_http.http_call), as the seller unless told otherwise."""
    return drill_http.http_call(port, method, path, body, key, timeout, bearer)


error_code = drill_http.error_code
is_final = drill_http.is_final


def money(value):
    return Decimal(str(value))


def day_of(ms):
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime("%Y-%m-%d")


# --- the database --------------------------------------------------------------------------------

class Database:
    """psql against the test's own database (created fresh on the server of the URL)."""

    def __init__(self, url):
        parsed = urllib.parse.urlsplit(url)
        query = dict(urllib.parse.parse_qsl(parsed.query))
        self.user = urllib.parse.unquote(parsed.username or "postgres")
        self.host = query.get("host") or parsed.hostname or "/var/run/postgresql"
        self.port = str(query.get("port") or parsed.port or 5432)
        self.base = parsed.path.lstrip("/") or "postgres"
        self.scheme, self.netloc, self.query = parsed.scheme, parsed.netloc, parsed.query
        self.name = None
        self.psql = os.environ.get("PSQL") or "psql"

    def url(self):
        return urllib.parse.urlunsplit((self.scheme, self.netloc, "/" + self.name, self.query, ""))

    def run(self, sql, database=None, timeout=30):
        command = [self.psql, "-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-h", self.host,
                   "-p", self.port, "-U", self.user, "-d", database or self.name, "-c", sql]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"psql failed ({done.returncode}): {done.stderr.strip()} -- {sql}")
        return [line.split("\t") for line in done.stdout.splitlines() if line]

    def scalar(self, sql):
        rows = self.run(sql)
        return rows[0][0] if rows else None

    def create(self, name):
        self.run(f'CREATE DATABASE "{name}"', database=self.base)
        self.name = name

    def drop(self):
        if self.name:
            self.run(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)', database=self.base)

    def dump(self, directory):
        """The tables the checks read, as CSV, for a failed run."""
        for table in ("rounds", "round_buyers", "sales", "post_attempts", "cap_claims", "cap_counters", "call_events", "nodes",
                      "post_intents", "live_state", "running_requests"):
            try:
                out = subprocess.run([self.psql, "-X", "-h", self.host, "-p", self.port, "-U", self.user, "-d", self.name,
                                      "-c", f"\\copy {table} TO STDOUT WITH CSV HEADER"],
                                     capture_output=True, text=True, timeout=30)
                with open(os.path.join(directory, f"db-{table}.csv"), "w") as f:
                    f.write(out.stdout or out.stderr)
            except Exception as error:
                print(f"cluster: could not dump {table}: {error}", file=sys.stderr)
        # scripts/with-postgres.sh keeps the server's log next to its socket, and removes both at exit.
        log = os.path.join(self.host, "postgres.log")
        if os.path.isfile(log):
            shutil.copy(log, os.path.join(directory, "postgres.log"))


# --- the nodes -----------------------------------------------------------------------------------

class Node:
    def __init__(self, name, gavel, config, database_url, grace_ms, work):
        self.name, self.gavel, self.config, self.database_url = name, gavel, config, database_url
        self.grace_ms, self.work = grace_ms, work
        self.proc = None
        self.port = None
        self.out = os.path.join(work, f"{name}.out")
        self.log = os.path.join(work, f"{name}.log")
        self.pidfile = os.path.join(work, f"{name}.pid")

    def launch(self):
        with open(self.out, "w") as stdout, open(self.log, "a") as log:
            self.proc = subprocess.Popen(
                [self.gavel, "serve", "--config", self.config, "--db", self.database_url, "--node-id", self.name,
                 "--claim-grace-ms", str(self.grace_ms), "--port", "0", "--log-level", "info"],
                stdout=stdout, stderr=log, stdin=subprocess.DEVNULL)
        with open(self.pidfile, "w") as f:
            f.write(str(self.proc.pid))

    def wait_listening(self, seconds=60):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with open(self.out) as f:
                line = f.readline()
            if line.startswith("gavel listening on http://") and line.endswith("\n"):
                self.port = int(line.strip().rsplit(":", 1)[1])
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        with open(self.log) as f:
            tail = "".join(f.readlines()[-10:])
        raise RuntimeError(f"{self.name} did not start (exit {self.proc.poll()}); {self.log} ends:\n{tail}")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        os.kill(self.proc.pid, sig)

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
            os.unlink(self.pidfile)
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


# --- the journal ---------------------------------------------------------------------------------

class Request:
    """One seller write (one Idempotency-Key) and every attempt made with it."""

    def __init__(self, key, kind, path, body, phase, node, ping_id=None, call_id=None):
        self.key, self.kind, self.path, self.body = key, kind, path, body
        self.phase, self.node = phase, node  # the phase and the node of its first attempt
        self.ping_id, self.call_id = ping_id, call_id
        self.attempts = []

    def final(self):
        """The first final attempt (the acknowledged answer), or None."""
        return next((a for a in self.attempts if is_final(a["status"], a["body"])), None)

    def answer(self):
        """The parsed body of the first final 200, or None."""
        first = self.final()
        if first is None or first["status"] != 200:
            return None
        return json.loads(first["body"], parse_float=Decimal)


class Journal:
    def __init__(self, path, seed):
        self.file = open(path, "w")
        self.lock = threading.Lock()
        self.requests = []
        self.counter = 0
        self.seed = seed

    def new_n(self):
        with self.lock:
            self.counter += 1
            return self.counter

    def add(self, request):
        with self.lock:
            self.requests.append(request)

    def record(self, request, attempt):
        with self.lock:
            request.attempts.append(attempt)
            line = {"key": request.key, "kind": request.kind, "path": request.path, "request": request.body,
                    "first_phase": request.phase}
            line.update(attempt)
            self.file.write(json.dumps(line) + "\n")
            self.file.flush()

    def close(self):
        self.file.close()


class Checks:
    def __init__(self):
        self.passed = self.failed = 0
        self.failures = []

    def check(self, name, ok, detail, examples=()):
        if ok:
            self.passed += 1
            print(f"check {name}: ok ({detail})", flush=True)
        else:
            self.failed += 1
            self.failures.append(name)
            print(f"check {name}: FAILED ({detail})", flush=True)
            for example in list(examples)[:10]:
                print(f"    {example}", flush=True)


class LiveCalls:
    """The capped call buyer's calls as the driver sees them: live from the routed answer to the
    first `completed` sent. That interval lies inside the exchange's own slot (taken before it
    answers routed, freed after it reads completed), so more than CONCURRENT here is an overshoot."""

    def __init__(self):
        self.lock = threading.Lock()
        self.live = {}  # call id -> node that routed it
        self.peak = 0
        self.over = []
        self.routed = Counter()  # node -> calls routed to the capped buyer

    def opened(self, call_id, node):
        with self.lock:
            self.live[call_id] = node
            self.routed[node] += 1
            if len(self.live) > self.peak:
                self.peak = len(self.live)
            if len(self.live) > CONCURRENT:
                self.over.append(f"{time.time():.3f}: {len(self.live)} live: {sorted(self.live.items())}")

    def closed(self, call_id):
        with self.lock:
            self.live.pop(call_id, None)


# --- the seller ----------------------------------------------------------------------------------

class Seller:
    """Seller traffic, journalled: each request to the node it is given."""

    def __init__(self, journal, nodes, calls, seed):
        self.journal, self.nodes, self.calls, self.seed = journal, nodes, calls, seed
        self.phase = "setup"
        self.stop = threading.Event()
        self.dead = set()  # names of nodes killed: traffic for them goes to the other (a load balancer)
        self.lock = threading.Lock()
        self.held = []  # (ping id, contact, node that answered the ping): pings with a bid not yet posted
        self.open_calls = {}  # call id -> node that routed it: routed and not yet ended

    def node(self, name):
        if name in self.dead:
            name = next(n for n in NODES if n not in self.dead)
        return self.nodes[name]

    def send(self, kind, node, path, body, **fields):
        n = self.journal.new_n()
        request = Request(f"cluster-{self.seed}-{n:06d}", kind, path, json.dumps(body, separators=(",", ":")),
                          self.phase, node, **fields)
        self.journal.add(request)
        return request, self.attempt(request, node)

    def attempt(self, request, node, key=True):
        t0 = time.time()
        port = self.nodes[node].port
        status, text, error = http_call(port, "POST", request.path, request.body, key=request.key if key else None)
        attempt = {"phase": self.phase, "node": node, "status": status, "body": text, "error": error,
                   "t0": round(t0, 3), "t1": round(time.time(), 3)}
        self.journal.record(request, attempt)
        return attempt

    @staticmethod
    def contact(tag, n):
        return {"email": f"{tag}-{n}@cluster.example", "phone": f"+1415{2000000 + n}", "first_name": "Pat"}

    def lead(self, node, campaign):
        n = self.journal.new_n()
        body = {"campaign": campaign, "lead": {"zip": "94107", "state": "CA", "cluster_req": n},
                "contact": self.contact(f"l{self.seed}", n)}
        return self.send("lead", node, "/v1/leads", body)

    def ping(self, node, campaign):
        n = self.journal.new_n()
        body = {"campaign": campaign, "lead": {"zip": "94107", "state": "CA", "cluster_req": n}}
        request, attempt = self.send("ping", node, "/v1/pings", body)
        if attempt["status"] == 200:
            answer = json.loads(attempt["body"])
            if answer["status"] == "bid":
                return answer["ping_id"], self.contact(f"p{self.seed}", n)
        return None, None

    def post(self, node, ping_id, contact, key=True):
        body = {"ping_id": ping_id, "contact": contact}
        n = self.journal.new_n()
        request = Request(f"cluster-{self.seed}-{n:06d}", "post", "/v1/posts", json.dumps(body, separators=(",", ":")),
                          self.phase, node, ping_id=ping_id)
        self.journal.add(request)
        return request, self.attempt(request, node, key=key)

    def call(self, node):
        n = self.journal.new_n()
        body = {"campaign": CALL_CAMPAIGN, "caller": {"number": f"+1415{3000000 + n}", "zip": "94107", "state": "CA"},
                "tags": {"cluster_req": str(n)}}
        request, attempt = self.send("call", node, "/v1/calls", body)
        return self.routed(request, attempt, node)

    def routed(self, request, attempt, node):
        """The call id when the answer is `routed` (noting the capped buyer's slot), else None."""
        if attempt["status"] != 200:
            return None
        answer = json.loads(attempt["body"])
        if answer["status"] != "routed":
            return None
        if answer.get("destination") == CALL_CAPPED_DEST:
            self.calls.opened(answer["call_id"], node)
        with self.lock:
            self.open_calls[answer["call_id"]] = node
        return answer["call_id"]

    def event(self, node, call_id, event_type, duration_s=None):
        body = {"type": event_type}
        if event_type == "completed":
            body["duration_s"] = duration_s if duration_s is not None else 90
            self.calls.closed(call_id)  # before it is sent: the exchange frees the slot only after reading it
        request, attempt = self.send("event", node, f"/v1/calls/{call_id}/events", body, call_id=call_id)
        if event_type == "completed" and attempt["status"] == 200:
            with self.lock:
                self.open_calls.pop(call_id, None)
        return request, attempt

    def live_call(self, rng, node, hold):
        """A call on `node`, held for `hold` seconds, then (maybe connected and) completed on a node."""
        call_id = self.call(node)
        if call_id is None:
            return
        time.sleep(hold)
        if rng.random() < 0.4:
            self.event(node, call_id, "connected")
        ender = rng.choice(NODES) if rng.random() < 0.5 else node
        self.event(ender, call_id, "completed", rng.choice([30, 90, 120]))


# --- the phases ----------------------------------------------------------------------------------

def fleet_stats(fleet_url):
    parsed = urllib.parse.urlsplit(fleet_url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=10)
    try:
        conn.request("GET", "/stats")
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


def answers_line(requests):
    counts = Counter((r.kind, a["status"] if a["status"] is not None else "error",
                      error_code(a["body"]) if a["status"] and a["status"] != 200 else None)
                     for r in requests for a in r.attempts)
    return ", ".join(f"{k}:{s}{'/' + c if c else ''}={n}" for (k, s, c), n in
                     sorted(counts.items(), key=lambda x: (x[0][0], str(x[0][1]), str(x[0][2]))))


def phase_race(seller, db, fleet_url, checks, rng):
    """Phase 1: the cap race, with concurrent calls alongside."""
    seller.phase = "race"
    before = fleet_stats(fleet_url)
    started = time.monotonic()
    done = threading.Event()

    def caller(i):
        r = random.Random(f"{seller.seed}-race-call-{i}")
        count = 0
        while not done.is_set() and count < 30:
            seller.live_call(r, NODES[(i + count) % 2], r.uniform(0.05, 0.35))
            count += 1

    callers = [threading.Thread(target=caller, args=(i,), daemon=True) for i in range(8)]
    for t in callers:
        t.start()
    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        results = list(pool.map(lambda i: seller.lead(NODES[i % 2], RACE_CAMPAIGN), range(RACE_LEADS)))
    done.set()
    for t in callers:
        t.join(timeout=30)
    elapsed = time.monotonic() - started
    after = fleet_stats(fleet_url)
    race = [r for r in seller.journal.requests if r.phase == "race"]
    print(f"race: {RACE_LEADS} leads and {sum(1 for r in race if r.kind == 'call')} calls in {elapsed:.1f} s; "
          f"answers: {answers_line(race)}", flush=True)

    leads = [request for request, _ in results]
    acked = [r for r in leads if r.answer() is not None]
    checks.check("race: leads answered", len(acked) >= RACE_LEADS * 0.9,
                 f"{len(acked)} of {RACE_LEADS} leads answered 200",
                 [f"{r.key} on {r.node}: {a['status']} {a['body'] or a['error']}" for r in leads
                  for a in r.attempts if a["status"] != 200])

    # The capped buyer's sales, from the database, by the node that acknowledged them.
    rows = db.run(f"SELECT round_id, price, sold_at_ms FROM sales WHERE buyer_id = '{RACE_CAPPED}'")
    unknown = db.run(f"SELECT id, price FROM rounds WHERE status = 'post_unknown' AND winner_id = '{RACE_CAPPED}'")
    by_round = {r.answer()["auction_id"]: r for r in acked}
    nodes = Counter(by_round[row[0]].node if row[0] in by_round else "unacknowledged" for row in rows)
    spend = sum((Decimal(row[1]) / UNITS for row in rows), Decimal(0))
    days = Counter(day_of(int(row[2])) for row in rows)
    count = len(rows) + len(unknown)
    exact = count == RACE_CAP if len(days) <= 1 else all(n <= RACE_CAP for n in days.values())
    checks.check("race: daily cap exact", exact,
                 f"{RACE_CAPPED} daily {RACE_CAP}: {len(rows)} sales + {len(unknown)} post_unknown"
                 + (f" over days {dict(days)}" if len(days) > 1 else ""))
    checks.check("race: budget", spend <= RACE_BUDGET, f"{RACE_CAPPED} spent {spend} of {RACE_BUDGET}")
    checks.check("race: sales on both nodes", all(nodes[n] > 0 for n in NODES),
                 f"{RACE_CAPPED} sales acknowledged by {dict(nodes)}")
    # Every post the buyer received is recorded (a post never leaves without its intent); a post
    # answered after its timeout counts as accepted at the buyer and post_timeout at the exchange.
    posts = after[RACE_CAPPED]["posts"] - before[RACE_CAPPED]["posts"]
    results = Counter(row[0] for row in db.run(f"SELECT result FROM post_attempts WHERE buyer_id = '{RACE_CAPPED}'"))
    checks.check("race: every post recorded", posts == sum(results.values()) and results["sold"] == len(rows),
                 f"the mock {RACE_CAPPED} received {posts} posts; recorded post attempts {dict(results)}")
    unsold = Counter((r.answer()["status"]) for r in acked)
    reasons = db.run(f"SELECT b.reason, count(*) FROM round_buyers b JOIN rounds r ON r.id = b.round_id "
                     f"WHERE r.campaign_id = '{RACE_CAMPAIGN}' AND r.status = 'unsold' GROUP BY b.reason ORDER BY 2 DESC")
    print(f"race: leads {dict(unsold)}" + (f"; buyers' reasons in unsold rounds: "
                                           f"{ {reason: int(n) for reason, n in reasons} }" if reasons else ""),
          flush=True)


def phase_double_post(seller, db, fleet_url, checks, count=8):
    """Phase 2: a ping on node 1, its post on node 1 and node 2 at the same moment."""
    seller.phase = "double"
    before = fleet_stats(fleet_url)
    pairs, problems, posted = [], [], 0
    for _ in range(count):
        ping_id, contact = seller.ping("node-1", RACE_CAMPAIGN)
        if ping_id is None:
            continue
        posted += 1
        barrier = threading.Barrier(2)
        out = {}

        def post(node):
            barrier.wait()
            out[node] = seller.post(node, ping_id, contact)

        threads = [threading.Thread(target=post, args=(n,)) for n in NODES]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        answers = {}
        for node in NODES:
            request, attempt = out.get(node, (None, None))
            if attempt is None or attempt["status"] != 200:
                problems.append(f"{ping_id} posted on {node}: {attempt and attempt['status']} "
                                f"{attempt and (attempt['body'] or attempt['error'])}")
                continue
            answers[node] = json.loads(attempt["body"], parse_float=Decimal)
        if len(answers) == 2:
            a, b = answers["node-1"], answers["node-2"]
            same = all(a.get(f) == b.get(f) for f in ("auction_id", "status", "payout"))
            if not same or a.get("status") != "sold":
                problems.append(f"{ping_id}: node-1 answered {a}, node-2 answered {b}")
            elif a != b:
                print(f"    note: {ping_id}: same outcome, other fields differ: {a} / {b}", flush=True)
        pairs.append(ping_id)
    after = fleet_stats(fleet_url)
    checks.check("double post: identical answers", posted > 0 and not problems,
                 f"{posted} pings posted on both nodes at once; {len(problems)} with different or failed answers",
                 problems)
    ids = ",".join(f"'{p}'" for p in pairs) or "''"
    sales = Counter(row[0] for row in db.run(f"SELECT round_id FROM sales WHERE round_id IN ({ids})"))
    accepted_posts = Counter(row[0] for row in db.run(
        f"SELECT round_id FROM post_attempts WHERE round_id IN ({ids}) AND result = 'sold'"))
    fleet_posts = sum(after[b]["posts"] - before[b]["posts"] for b in after)
    bad = [f"{p}: {sales[p]} sales, {accepted_posts[p]} accepted posts" for p in pairs
           if sales[p] != 1 or accepted_posts[p] != 1]
    checks.check("double post: one sale each", not bad and fleet_posts == len(pairs),
                 f"{sum(sales.values())} sales for {len(pairs)} pings; the mock buyers received {fleet_posts} posts",
                 bad)


def phase_outage(seller, fleet_url, checks):
    """Phase 5: the database goes away under a live node (fail closed), then comes back (recovery)."""
    stop, start = os.environ.get("GAVEL_TEST_PG_STOP"), os.environ.get("GAVEL_TEST_PG_START")
    if not stop or not start:
        print("outage: skipped (GAVEL_TEST_PG_STOP/START unset: not run under scripts/with-postgres.sh)", flush=True)
        return
    seller.phase = "outage"
    node = next(n for n in NODES if n not in seller.dead)
    before = fleet_stats(fleet_url)
    subprocess.run(stop, shell=True, check=True, stdout=subprocess.DEVNULL)
    try:
        answers = []
        for _ in range(6):
            t0 = time.monotonic()
            _, attempt = seller.lead(node, RACE_CAMPAIGN)
            answers.append((attempt["status"], error_code(attempt["body"]) if attempt["body"] else attempt["error"],
                            time.monotonic() - t0))
        after = fleet_stats(fleet_url)
    finally:
        subprocess.run(start, shell=True, check=True, stdout=subprocess.DEVNULL)
    posts = sum(after[b]["posts"] - before[b]["posts"] for b in after)
    clean = all(status == 503 and code in ("storage", "storage_timeout") for status, code, _ in answers)
    slowest = max(seconds for _, _, seconds in answers)
    checks.check("outage: clean 503s", clean and slowest < 5,
                 f"database stopped: {len(answers)} leads answered {sorted(set((s, c) for s, c, _ in answers), key=str)}, "
                 f"slowest {slowest:.2f} s", [f"{s} {c} in {t:.2f} s" for s, c, t in answers if s != 503])
    checks.check("outage: no sale without a record", posts == 0, f"{posts} posts reached buyers while the database was down")
    # Back: the node reconnects by itself and sells again.
    recovered_after = None
    t0 = time.monotonic()
    while time.monotonic() - t0 < 20:
        _, attempt = seller.lead(node, RACE_CAMPAIGN)
        if attempt["status"] == 200:
            recovered_after = time.monotonic() - t0
            break
        time.sleep(0.25)
    checks.check("outage: recovers", recovered_after is not None,
                 f"database started again; first 200 after {recovered_after:.2f} s" if recovered_after is not None
                 else "no 200 within 20 s of the database's return")


def auction(node, round_id):
    status, text, error = http_call(node.port, "GET", f"/v1/auctions/{round_id}")
    if status != 200:
        return None
    return json.loads(text, parse_float=Decimal)


def reason_of(view, buyer):
    return next((b["reason"] for b in (view or {}).get("buyers", []) if b["buyer"] == buyer), None)


def phase_reload(seller, nodes, config, checks):
    """Phase 3: pause a buyer in its file, SIGHUP node 1 only; node 2 must follow within 2 s."""
    seller.phase = "reload"

    def probe(node):
        request, attempt = seller.lead(node, RACE_CAMPAIGN)
        answer = request.answer()
        if answer is None:
            return f"answered {attempt['status']} {attempt['body'] or attempt['error']}"
        return reason_of(auction(nodes[node], answer["auction_id"]), PAUSED_BUYER)

    baseline = [probe(n) for n in NODES]
    checks.check("reload: baseline", all(r and r != "paused" and " " not in r for r in baseline),
                 f"before the reload {PAUSED_BUYER} is {baseline[0]!r} on node-1, {baseline[1]!r} on node-2")
    path = os.path.join(config, "buyers", f"{PAUSED_BUYER}.yaml")
    with open(path) as f:
        text = f.read()
    with open(path + ".new", "w") as f:
        f.write(text + "paused: true\n")
    os.replace(path + ".new", path)
    nodes["node-1"].signal(signal.SIGHUP)
    t0 = time.monotonic()
    seen, elapsed, reasons = None, None, []
    while time.monotonic() - t0 < 5:
        reason = probe("node-2")
        reasons.append(reason)
        if reason == "paused":
            elapsed = time.monotonic() - t0
            break
        time.sleep(0.1)
    after = [probe(n) for n in NODES for _ in range(2)]
    checks.check("reload: reaches the other node", elapsed is not None and elapsed <= 2.0,
                 (f"SIGHUP to node-1 only; node-2 rounds list {PAUSED_BUYER} as paused after {elapsed:.2f} s"
                  if elapsed is not None else f"node-2 still lists {PAUSED_BUYER} as {reasons[-1]!r} 5 s after the SIGHUP"),
                 [f"probes on node-2: {reasons}"])
    checks.check("reload: stays applied", all(r == "paused" for r in after),
                 f"{PAUSED_BUYER} on node-1, node-1, node-2, node-2 after: {after}")


class KillLoad:
    """Phase 4's load: leads, pings + posts and calls + events to both nodes until stopped."""

    def __init__(self, seller, seed):
        self.seller, self.seed = seller, seed
        self.stop = threading.Event()

    def run(self, workers=10):
        threads = [threading.Thread(target=self.worker, args=(i,), daemon=True) for i in range(workers)]
        for t in threads:
            t.start()
        return threads

    def worker(self, i):
        rng = random.Random(f"{self.seed}-kill-{i}")
        home = NODES[i % 2]
        while not self.stop.is_set():
            node = self.seller.node(home)
            roll = rng.random()
            if roll < 0.4:
                self.seller.lead(node.name, KILL_CAMPAIGN)
            elif roll < 0.75:
                ping_id, contact = self.seller.ping(node.name, KILL_CAMPAIGN)
                if ping_id is None:
                    continue
                if node.name == "node-2" and rng.random() < 0.4:
                    with self.seller.lock:  # held on node 2: posted on node 1 after the kill
                        self.seller.held.append((ping_id, contact, node.name))
                    continue
                time.sleep(rng.uniform(0, 0.05))
                target = self.seller.node(rng.choice(NODES)).name
                self.seller.post(target, ping_id, contact)  # if the node dies under it: retried with its key
            else:
                call_id = self.seller.call(node.name)
                if call_id is None:
                    continue
                time.sleep(rng.uniform(0.1, 0.8))
                if self.stop.is_set():
                    continue  # left live: ended after the load
                if rng.random() < 0.3:
                    self.seller.event(self.seller.node(home).name, call_id, "connected")
                ender = self.seller.node(rng.choice(NODES)).name
                self.seller.event(ender, call_id, "completed", rng.choice([30, 90, 120]))


def phase_kill(seller, nodes, db, grace_ms, checks, seed):
    """Phase 4: kill -9 of node 2 under load."""
    seller.phase = "kill"
    load = KillLoad(seller, seed)
    threads = load.run()
    time.sleep(2.0)
    # Calls routed by node 2 and connected there, kept live over the kill: ended on node 1 after it.
    for _ in range(4):
        call_id = seller.call("node-2")
        if call_id is not None:
            seller.event("node-2", call_id, "connected")
    time.sleep(0.5)
    killed_at = time.time()
    os.kill(nodes["node-2"].proc.pid, signal.SIGKILL)
    seller.dead.add("node-2")  # new requests go to node 1 (a load balancer); those in flight die
    nodes["node-2"].kill9()  # reaps it
    with seller.lock:  # routed by node 2 and not yet ended: their events now go to node 1
        dead_calls = sorted(c for c, n in seller.open_calls.items() if n == "node-2")
    # Posts node 2 had sent (intent committed) without recording their answer: post_unknown to be.
    intents = [row[0] for row in db.run("SELECT round_id FROM post_intents WHERE node_id = 'node-2'")]
    at_kill = {kind: int(n) for kind, n in db.run("SELECT kind, count(*) FROM cap_claims WHERE node_id = 'node-2' "
                                                   "GROUP BY kind ORDER BY kind")}
    print(f"kill: node-2 killed with -9 after 2.5 s of load: {len(intents)} posts in flight there, "
          f"{len(dead_calls)} live calls routed by it", flush=True)
    # Held pings of the dead node: posted on node 1 at once, as a seller would.
    with seller.lock:
        held = [h for h in seller.held if h[2] == "node-2"]
        seller.held = [h for h in seller.held if h[2] != "node-2"]
    taken = []
    for ping_id, contact, _ in held:
        request, attempt = seller.post("node-1", ping_id, contact)
        taken.append((ping_id, contact, request))
    # The load goes on against node 1 past the grace, the calls node 2 connected still live (their
    # slots must hold: a live call is not a lapsed claim).
    time.sleep(max(0.0, killed_at + grace_ms / 1000 + 1.0 - time.time()))

    # Every request without a final answer again, on node 1, with its key (the seller's retry).
    # A request still running elsewhere (409 request_in_progress) is tried again for a while.
    def settled(r, attempt):
        # An event that died with node 2 may have been overtaken by a later one the load sent to
        # node 1 (a `completed` after a lost `connected`): 409 call_ended is then the right answer.
        return is_final(attempt["status"], attempt["body"]) or (
            r.kind == "event" and attempt["status"] == 409 and error_code(attempt["body"]) == "call_ended")

    def retry(r):
        deadline = time.monotonic() + grace_ms / 1000 + 5
        while True:
            attempt = seller.attempt(r, "node-1")
            if settled(r, attempt) or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        if not settled(r, attempt):
            return (f"{r.key} {r.kind} {r.path} (first on {r.node}): {attempt['status']} "
                    f"{attempt['body'] or attempt['error']}")
        if r.kind == "call":
            seller.routed(r, attempt, r.node)  # routed by the node it went to first, answered now
        return None

    unanswered = [r for r in list(seller.journal.requests) if r.attempts and r.final() is None]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        unresolved = [u for u in pool.map(retry, unanswered) if u]
    outcomes = Counter(f"{r.attempts[-1]['status']}" + (f" {error_code(r.attempts[-1]['body'])}"
                                                         if r.attempts[-1]["status"] != 200 else "") for r in unanswered)
    checks.check("kill: unanswered requests resolved", not unresolved,
                 f"{len(unanswered)} requests without a final answer retried on node-1 with their key: "
                 f"final answers {dict(outcomes)}", unresolved)

    # The dead node's calls still live (connected there before the kill, or found by the retries):
    # completed on node 1.
    with seller.lock:
        orphans = [c for c, n in seller.open_calls.items() if n == "node-2"]
    for call_id in orphans:
        seller.event("node-1", call_id, "completed", 90)

    # Then the dead node's cap claims and post intents must go (node 1 settles them every few
    # seconds); the load goes on a second more, so swept claims are spent again.
    deadline = killed_at + grace_ms / 1000 + 12
    while True:
        left = db.run("SELECT round_id, buyer_id, kind, counted, expires_at_ms FROM cap_claims WHERE node_id = 'node-2'")
        pending = db.run("SELECT round_id FROM post_intents WHERE node_id = 'node-2'")
        if (not left and not pending) or time.time() > deadline:
            break
        time.sleep(0.25)
    swept_after = time.time() - killed_at
    time.sleep(1.0)
    load.stop.set()
    for t in threads:
        t.join(timeout=30)
    seller.phase = "takeover"
    kill = [r for r in seller.journal.requests if r.phase == "kill"]
    died = sum(1 for r in kill for a in r.attempts if a["status"] is None and a["t0"] <= killed_at)
    print(f"kill: {len(kill)} requests of the load, {died} in flight on node-2 died with it; answers: "
          f"{answers_line(kill)}", flush=True)

    # Held pings of the dead node: each post 200 (sold or unsold), recorded so.
    held_bad, held_sold, late = [], 0, 0
    for ping_id, contact, request in taken:
        first = request.attempts[0]
        if request.final() is None:
            late += 1
            continue
        answer = request.answer()
        if answer is None or answer["status"] not in ("sold", "unsold"):
            held_bad.append(f"{ping_id}: post on node-1 answered {request.final()['status']} {request.final()['body']}")
        else:
            held_sold += answer["status"] == "sold"
            if first["status"] != 200:
                held_bad.append(f"{ping_id}: first post on node-1 right after the kill answered {first['status']} "
                                f"{first['body'] or first['error']} (200 after a retry)")
    checks.check("kill: held pings posted on the survivor", held and not held_bad,
                 f"{len(held)} pings answered by node-2 before the kill posted on node-1: {held_sold} sold"
                 + (f", {late} needed retries" if late else ""), held_bad or ([] if held else ["no held pings (load too short?)"]))

    # Calls still live after the load: ended on node 1.
    with seller.lock:
        live = dict(seller.open_calls)
    for call_id in live:
        seller.event("node-1", call_id, "completed", 90)
    # The calls node 2 had live at the kill: their `completed` handled on node 1 (by the load, which
    # moved to node 1, or just above), the call ended and the event in its record.
    ended_bad, on_survivor = [], 0
    for call_id in dead_calls:
        done = [r for r in seller.journal.requests if r.kind == "event" and r.call_id == call_id
                and json.loads(r.body)["type"] == "completed" and r.final() is not None]
        answer = done[0].answer() if done else None
        if answer is None or answer.get("status") not in ("converted", "not_converted"):
            ended_bad.append(f"{call_id} (routed on node-2): completed answered "
                             + (f"{done[0].final()['status']} {done[0].final()['body']} on {done[0].final()['node']}"
                                if done else "nothing final"))
            continue
        on_survivor += done[0].final()["node"] == "node-1"
        view = auction(nodes["node-1"], call_id)
        if view is None or not any(e["type"] == "completed" for e in view.get("events", [])):
            ended_bad.append(f"{call_id}: no completed event in GET /v1/auctions on node-1: {view}")
    checks.check("kill: live calls ended on the survivor", dead_calls and on_survivor and not ended_bad,
                 f"{len(dead_calls)} calls live on node-2 at the kill: {on_survivor} completed on node-1, "
                 f"{len(dead_calls) - on_survivor - len(ended_bad)} by node-2 before it died; "
                 f"{len(live) - sum(1 for c in live if c in dead_calls)} other calls ended after the load",
                 ended_bad or ([] if dead_calls else ["no live calls on node-2 at the kill (load too short?)"]))

    ids = ",".join(f"'{i}'" for i in intents) or "''"
    statuses = dict(db.run(f"SELECT id, status FROM rounds WHERE id IN ({ids})"))
    unsettled = [f"{i}: {statuses.get(i, 'no round recorded')}" for i in intents if statuses.get(i) != "post_unknown"]
    unsettled += [f"{row[0]}: post intent of node-2 still there" for row in pending]
    checks.check("kill: dead node's posts settled", not unsettled,
                 f"{len(intents)} posts in flight on node-2 at the kill, now post_unknown; "
                 f"{db.scalar('SELECT count(*) FROM rounds WHERE status = ' + repr('post_unknown'))} post_unknown rounds in all",
                 unsettled)

    # Requests node 2 acknowledged, sent again to node 1 with their key: the same answer, byte for byte.
    acked = [r for r in seller.journal.requests if r.final() is not None and r.final()["node"] == "node-2"
             and r.final()["status"] == 200]
    sample = random.Random(seed).sample(acked, min(len(acked), 40))
    different = []
    for r in sample:
        first = r.final()
        again = seller.attempt(r, "node-1")
        if (again["status"], again["body"]) != (first["status"], first["body"]):
            different.append(f"{r.key} {r.path}: node-2 answered {first['status']} {first['body']!r}, "
                             f"node-1 {again['status']} {again['body'] or again['error']!r}")
    checks.check("kill: retries on the survivor identical", sample and not different,
                 f"{len(sample) - len(different)} of {len(sample)} requests acknowledged by node-2 answered the same "
                 f"by node-1", different)

    # The dead node's cap claims: gone once the grace has passed (swept or settled by node 1).
    still = db.run("SELECT round_id, buyer_id, kind, counted, expires_at_ms FROM cap_claims WHERE node_id = 'node-2'")
    claimed = db.scalar("SELECT count(*) FROM cap_claims")
    checks.check("kill: dead node's claims swept", not left and not still,
                 (f"{at_kill or 'no'} cap claims of node-2 at the kill, "
                  f"none {swept_after:.1f} s after it (grace {grace_ms} ms; its live calls "
                  f"ended on node-1 at {grace_ms / 1000 + 1:.1f} s); "
                  f"{claimed} claims left in all") if not left else
                 f"{len(left)} cap claims of node-2 remain {swept_after:.1f} s after the kill (grace {grace_ms} ms)",
                 [f"{row[0]} buyer {row[1]} kind {row[2]} counted {row[3]}, expires "
                  f"{int(row[4]) / 1000 - killed_at:.1f} s after the kill" for row in (left or still)])


def verify(seller, nodes, db, checks):
    """The end: every acknowledged round read back on node 1, nothing sold twice, caps held."""
    survivor = nodes["node-1"]
    requests = seller.journal.requests
    fives = [(r.key, r.path, a["node"], a["status"], a["body"]) for r in requests for a in r.attempts
             if a["status"] is not None and a["status"] >= 500 and a["status"] != 503]
    checks.check("no 5xx but 503", not fives, f"{len(fives)} other 5xx answers", fives)

    expectations = defaultdict(list)
    for r in requests:
        answer = r.answer()
        if answer is None:
            continue
        round_id = answer.get("auction_id") or answer.get("ping_id") or answer.get("call_id")
        expectations[round_id].append((r, answer))

    def fetch(round_id):
        status, text, error = http_call(survivor.port, "GET", f"/v1/auctions/{round_id}", timeout=15)
        return round_id, status, (json.loads(text, parse_float=Decimal) if status == 200 else text or error)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        views = {rid: (status, view) for rid, status, view in pool.map(fetch, expectations)}
    sales = {row[0]: row for row in db.run("SELECT round_id, buyer_id, price, payout, contact_hash FROM sales")}
    lost, missing, by_node = [], 0, Counter()
    for round_id, expected in expectations.items():
        status, view = views[round_id]
        for r, _ in expected:
            by_node[r.final()["node"]] += 1
        if status != 200:
            lost.append(f"{round_id}: GET on node-1 answered {status} {str(view)[:160]} "
                        f"(acknowledged by {expected[0][0].final()['node']}, key {expected[0][0].key})")
            missing += 1
            continue
        recorded, payout = view["status"], money(view["payout"])
        for request, answer in expected:
            said, problem = answer.get("status"), None
            if request.kind in ("lead", "post"):
                if recorded != said:
                    problem = f"answered {said}, recorded {recorded}"
                elif said == "sold":
                    sale = sales.get(round_id)
                    if money(answer["payout"]) != payout:
                        problem = f"answered payout {answer['payout']}, recorded {payout}"
                    elif sale is None or Decimal(sale[3]) / UNITS != money(answer["payout"]):
                        problem = f"sold with payout {answer['payout']} but the sales row is {sale}"
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
            if problem:
                lost.append(f"{round_id} ({request.kind} on {request.final()['node']}, key {request.key}): {problem}")
                break
    checks.check("acknowledged rounds", not lost,
                 f"{len(lost)} lost of {len(expectations)} acknowledged rounds ({dict(by_node)} 200s by node), "
                 f"read back on node-1; {missing} missing, {len(lost) - missing} recorded otherwise", lost)

    # Nothing sold twice: one sale per contact per buyer, one accepted post per round.
    twice = db.run("SELECT contact_hash, buyer_id, count(*) FROM sales WHERE contact_hash IS NOT NULL "
                   "GROUP BY contact_hash, buyer_id HAVING count(*) > 1")
    double_accept = db.run("SELECT round_id, count(*) FROM post_attempts WHERE result = 'sold' "
                           "GROUP BY round_id HAVING count(*) > 1")
    checks.check("no double sale", not twice and not double_accept,
                 f"{len(sales)} sales; {len(twice)} contacts sold twice to a buyer, {len(double_accept)} rounds with "
                 f"more than one accepted post", [" ".join(r) for r in twice + double_accept])

    # Caps of both capped lead buyers, with post_unknown rounds (the buyer may have those).
    for buyer, cap, budget in ((RACE_CAPPED, RACE_CAP, RACE_BUDGET), (KILL_CAPPED, KILL_CAP, KILL_BUDGET)):
        days = defaultdict(lambda: [0, Decimal(0), 0])
        for row in db.run(f"SELECT sold_at_ms, price FROM sales WHERE buyer_id = '{buyer}'"):
            d = days[day_of(int(row[0]))]
            d[0] += 1
            d[1] += Decimal(row[1]) / UNITS
        for row in db.run(f"SELECT created_at_ms, COALESCE(price, 0) FROM rounds "
                          f"WHERE status = 'post_unknown' AND winner_id = '{buyer}'"):
            d = days[day_of(int(row[0]))]
            d[0] += 1
            d[1] += Decimal(row[1]) / UNITS
            d[2] += 1
        over = [f"{day}: {d[0]} (cap {cap}), spend {d[1]} (budget {budget})" for day, d in days.items()
                if d[0] > cap or d[1] > budget]
        summary = "; ".join(f"{day}: {d[0]} sales incl. {d[2]} post_unknown, spend {d[1]}" for day, d in sorted(days.items()))
        checks.check(f"cap {buyer}", not over, f"daily {cap}, budget {budget}: {summary or 'no sales'}", over)

    # Live calls of the capped call buyer: as the driver saw them, and from the call events.
    calls = seller.calls
    checks.check("concurrent calls (driver)", calls.peak <= CONCURRENT and not calls.over and all(
        calls.routed[n] > 0 for n in NODES),
                 f"{CALL_CAPPED} concurrent {CONCURRENT}: peak {calls.peak} live as answered; routed to it by "
                 f"{dict(calls.routed)}", calls.over)
    events = db.run(f"SELECT round_id, type, at_ms FROM call_events WHERE buyer_id = '{CALL_CAPPED}' "
                    f"ORDER BY round_id, sequence")
    open_at, edges = {}, []
    for round_id, kind, at in events:
        if kind == "routed":
            open_at[round_id] = int(at)
        elif kind in ("failed", "completed", "released") and round_id in open_at:
            edges.append((open_at.pop(round_id), 1, round_id))
            edges.append((int(at), -1, round_id))
    for round_id, start in open_at.items():
        edges.append((start, 1, round_id))
    peak, live, peak_at = 0, 0, None
    for at, delta, round_id in sorted(edges, key=lambda x: (x[0], x[1])):
        live += delta
        if live > peak:
            peak, peak_at = live, (at, round_id)
    checks.check("concurrent calls (events)", peak <= CONCURRENT,
                 f"{CALL_CAPPED}: peak {peak} over {len(edges) // 2} routed calls in call_events; "
                 f"{len(open_at)} never ended", [f"{peak} live at {peak_at}"] if peak > CONCURRENT else [])
    return len(expectations)


# --- the run -------------------------------------------------------------------------------------

def run(args):
    started = time.monotonic()
    work = args.work
    checks = Checks()
    db = Database(args.database_url)
    db.create(f"gavel_cluster_{os.getpid()}_{args.seed % 100000}")
    print(f"cluster: database {db.name} on {db.host}", file=sys.stderr, flush=True)
    with open(os.path.join(work, "database"), "w") as f:
        f.write(db.url() + "\n")
    journal = Journal(os.path.join(work, "journal.jsonl"), args.seed)
    nodes = {name: Node(name, args.gavel, args.config, db.url(), args.claim_grace_ms, work) for name in NODES}
    seller = Seller(journal, nodes, LiveCalls(), args.seed)
    rng = random.Random(args.seed)
    acknowledged = 0
    try:
        for node in nodes.values():
            node.launch()  # both at once: they migrate one after the other under the advisory lock
        for node in nodes.values():
            node.wait_listening()
        print(f"cluster: node-1 on port {nodes['node-1'].port}, node-2 on port {nodes['node-2'].port} "
              f"({time.monotonic() - started:.1f} s)", flush=True)
        seen = db.run("SELECT node_id FROM nodes ORDER BY node_id")
        checks.check("two nodes", [row[0] for row in seen] == list(NODES),
                     f"nodes table: {[row[0] for row in seen]}")

        phase_race(seller, db, args.fleet_url, checks, rng)
        phase_double_post(seller, db, args.fleet_url, checks)
        phase_reload(seller, nodes, args.config, checks)
        phase_kill(seller, nodes, db, args.claim_grace_ms, checks, args.seed)
        phase_outage(seller, args.fleet_url, checks)
        acknowledged = verify(seller, nodes, db, checks)
        for name in NODES:
            if nodes[name].alive() or name == "node-1":
                status = nodes[name].terminate()
                checks.check(f"{name} clean shutdown", status == 0, f"SIGTERM exit status {status}")
    except Exception as error:
        import traceback
        traceback.print_exc()
        checks.check("the run", False, f"stopped by {type(error).__name__}: {error}")
    finally:
        for node in nodes.values():
            node.kill9()
        journal.close()
        if checks.failed:
            db.dump(work)
        if not args.keep_db:
            try:
                db.drop()
            except Exception as error:
                print(f"cluster: could not drop {db.name}: {error}", file=sys.stderr)
    print(f"cluster: {acknowledged} acknowledged rounds checked, {len(journal.requests)} requests, "
          f"{time.monotonic() - started:.1f} s")
    print(f"cluster: {checks.passed} passed, {checks.failed} failed"
          + (f" ({', '.join(checks.failures)})" if checks.failures else ""))
    return 1 if checks.failed else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    fleet = sub.add_parser("write-fleet")
    fleet.add_argument("file")
    config = sub.add_parser("write-config")
    config.add_argument("directory")
    config.add_argument("--fleet-url", required=True)
    test = sub.add_parser("run")
    test.add_argument("--gavel", required=True)
    test.add_argument("--config", required=True)
    test.add_argument("--database-url", required=True, help="the server; the test makes its own database on it")
    test.add_argument("--work", required=True)
    test.add_argument("--fleet-url", required=True)
    test.add_argument("--seed", type=int, default=int(time.time()))
    test.add_argument("--claim-grace-ms", type=int, default=3000)
    test.add_argument("--keep-db", action="store_true", help="do not drop the test's database at the end")
    args = parser.parse_args()
    if args.command == "write-fleet":
        write_fleet(args.file)
    elif args.command == "write-config":
        write_config(args.directory, args.fleet_url)
    else:
        # SIGTERM (cluster-test.sh's trap, or its timeout) unwinds through `finally`, which kills the nodes.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        sys.exit(run(args))


if __name__ == "__main__":
    main()
