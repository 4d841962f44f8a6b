#!/usr/bin/python3
"""srmd's HTTP admin on a pair (docs/http-admin.md), over HTTPS ([http] tls_cert/tls_key =
the group's certificate), with a notify script on both nodes ([ha] notify).

  1. GET /api/status without a token from loopback: both nodes Normal, the same view as
     `srmctl status --json`; the page is served with its CSP; a plain-HTTP request to the
     HTTPS port gets no answer.
  2. Access and errors: 401 without or with a wrong token (and WWW-Authenticate), 401 for a
     token-less read naming a non-loopback Host, 405 with Allow, 404, 400 for bad queries,
     413 for a large body, 409 for a fallback while Normal.
  3. /metrics parsed (text format 0.0.4: HELP/TYPE before samples, label syntax, values):
     state and reason gauges, heartbeat round trip, transitions, replication lag, critical
     services; a login of alice (home 1) at node 1 and bob (home 2) at node 2 shows in
     duet_logins_total / duet_sessions per home node.
  4. POST /api/failover with the token: node 1 Idle, node 2 Running in Backup Mode (both
     nodes' APIs agree); the notify script ran on both nodes with the old state, new state
     and reason as arguments and in DUET_* variables; the transition log lines are there.
  5. A notify script that hangs is killed after [ha] notify_timeout while the API keeps
     answering; POST /api/fallback?node=1 brings both nodes back to Normal.
Uses DUET_BUILD (default build/).  Exit 0 pass, 1 fail.
"""

import http.client
import json
import os
import re
import socket
import ssl
import stat
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "lib"))

from pair_harness import Fail, Pair  # noqa: E402
from rawxmpp import RawClient  # noqa: E402

T0 = time.monotonic()
NOTIFY_TIMEOUT_S = 2


def log(text):
    print(f"[{time.monotonic() - T0:6.2f}s] test_http_admin: {text}", flush=True)


def check(cond, what):
    if not cond:
        raise Fail(what)


class Admin:
    """HTTPS requests to one node's admin, checked against the group certificate."""

    def __init__(self, pair, n):
        self.port = int(pair.env[f"NODE{n}_HTTP_PORT"])
        with open(pair.env[f"NODE{n}_HTTP_TOKEN"], encoding="ascii") as f:
            self.token = f.read().strip()
        self.ctx = ssl.create_default_context(cafile=pair.env["TLS_CERT"])
        self.n = n

    def request(self, method, path, token=None, host=None, body=None, headers=None,
                timeout=15):
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx,
                                           timeout=timeout)
        try:
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            conn.putheader("Host", host or f"127.0.0.1:{self.port}")
            if token:
                conn.putheader("Authorization", f"Bearer {token}")
            for k, v in (headers or {}).items():
                conn.putheader(k, v)
            if body is not None:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            res = conn.getresponse()
            data = res.read()
            return res.status, {k.lower(): v for k, v in res.getheaders()}, data
        finally:
            conn.close()

    def json(self, method, path, **kw):
        status, hdrs, data = self.request(method, path, **kw)
        try:
            doc = json.loads(data)
        except ValueError as e:
            raise Fail(f"node {self.n} {method} {path}: {status}, not JSON: {data[:200]!r}") \
                from e
        return status, hdrs, doc

    def status(self):
        status, _, doc = self.json("GET", "/api/status")
        check(status == 200, f"node {self.n} GET /api/status: {status} {doc}")
        return doc

    def states(self):
        doc = self.status()
        return {x["node_id"]: (x["state"], x["reason"]) for x in doc["pair"]["nodes"]}


def wait_states(admins, want, timeout, what):
    """Both nodes' APIs report want = {node: (state, reason)} for both nodes."""
    deadline = time.monotonic() + timeout
    while True:
        views = [a.states() for a in admins]
        if all(v == want for v in views):
            log(f"{what}: {views[0]}")
            return
        if time.monotonic() > deadline:
            raise Fail(f"{what}: not reached in {timeout}s: node 1 sees {views[0]}, "
                       f"node 2 sees {views[1]}; wanted {want}")
        time.sleep(0.2)


# ---- Prometheus text format 0.0.4 ----

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')


def parse_metrics(text):
    """{(name, frozenset(labels.items())): value}; raises Fail on any malformed line, a
    sample before its family's TYPE, or a family described twice."""
    types, helps, samples = {}, set(), {}
    for i, line in enumerate(text.splitlines(), 1):
        if not line:
            continue
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            check(name not in helps, f"metrics line {i}: HELP of {name} twice")
            helps.add(name)
            continue
        if line.startswith("# TYPE "):
            parts = line.split(" ")
            check(len(parts) == 4 and parts[3] in ("counter", "gauge"),
                  f"metrics line {i}: bad TYPE: {line}")
            check(parts[2] not in types, f"metrics line {i}: TYPE of {parts[2]} twice")
            types[parts[2]] = parts[3]
            continue
        check(not line.startswith("#"), f"metrics line {i}: stray comment {line}")
        m = SAMPLE.match(line)
        check(m, f"metrics line {i}: not a sample: {line!r}")
        name, labels_text, value = m.group(1), m.group(3) or "", m.group(4)
        check(name in types, f"metrics line {i}: {name} sampled before its TYPE")
        labels = {}
        pos = 0
        while pos < len(labels_text):
            lm = LABEL.match(labels_text, pos)
            check(lm, f"metrics line {i}: bad labels {labels_text!r}")
            labels[lm.group(1)] = lm.group(2)
            pos = lm.end()
        v = float(value)
        if types[name] == "counter":
            check(name.endswith("_total") and v >= 0, f"metrics line {i}: bad counter {line}")
        key = (name, frozenset(labels.items()))
        check(key not in samples, f"metrics line {i}: duplicate sample {line}")
        samples[key] = v
    return samples


def metric(samples, name, **labels):
    key = (name, frozenset(labels.items()))
    if key not in samples:
        raise Fail(f"metric {name}{labels} missing")
    return samples[key]


def scrape(admin):
    status, hdrs, data = admin.request("GET", "/metrics")
    check(status == 200, f"GET /metrics: {status}")
    check(hdrs.get("content-type", "").startswith("text/plain; version=0.0.4"),
          f"/metrics Content-Type {hdrs.get('content-type')}")
    return parse_metrics(data.decode("utf-8"))


# ---- the scenario ----

def notify_lines(path):
    try:
        with open(path, encoding="utf-8") as f:
            return [line.rstrip("\n").split("|") for line in f if line.strip()]
    except FileNotFoundError:
        return []


def wait_notify(path, want, timeout, what):
    """want: list of (old, new, reason) that must appear in this order (others between)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = notify_lines(path)
        seen = [tuple(x[:3]) for x in lines]
        it = iter(seen)
        if all(w in it for w in want):
            log(f"{what}: {seen}")
            return lines
        if time.monotonic() > deadline:
            raise Fail(f"{what}: notify runs {seen}, wanted {want} in order")
        time.sleep(0.1)


def step_status(pair, a1, a2):
    for a in (a1, a2):
        st = a.states()
        check(st == {1: ("Normal", "Normal"), 2: ("Normal", "Normal")},
              f"node {a.n}: not both Normal: {st}")
    doc = a1.status()
    cli = pair.status(1)
    check(cli is not None, "srmctl status --json on node 1 failed")
    check(set(doc) == set(cli), f"API keys {sorted(doc)} != srmctl keys {sorted(cli)}")
    check(set(doc["pair"]) == set(cli["pair"]), "pair keys differ from srmctl's")
    check(doc["node_id"] == 1 and doc["state"] == cli["state"], "API and srmctl disagree")
    for key in ("peer_link", "replication", "nodes", "alarms"):
        check(key in doc["pair"], f"/api/status has no pair.{key}")
    log("GET /api/status (no token, loopback): both Normal, same view as srmctl --json")

    status, hdrs, data = a1.request("GET", "/")
    check(status == 200 and hdrs.get("content-type", "").startswith("text/html"),
          f"GET /: {status} {hdrs.get('content-type')}")
    csp = hdrs.get("content-security-policy", "")
    check("script-src 'sha256-" in csp and "default-src 'none'" in csp, f"page CSP: {csp}")
    check(b"<script>" in data and b"Failover" in data and b"api/status" in data,
          "the page lacks its script or buttons")
    check(b"src=" not in data and b"href=" not in data, "the page loads external assets")
    status, _, _ = a1.request("HEAD", "/api/status")
    check(status == 200, f"HEAD /api/status: {status}")
    log("GET /: the page, self-contained, with a hash-based CSP; HEAD works")

    # Plain HTTP to the HTTPS port: no HTTP answer.
    with socket.create_connection(("127.0.0.1", a1.port), timeout=10) as s:
        s.sendall(b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        try:
            got = s.recv(100)
        except (ConnectionResetError, socket.timeout):
            got = b""
    check(not got.startswith(b"HTTP/"), f"plain HTTP answered on the HTTPS port: {got!r}")
    log("plain HTTP to the HTTPS port: no HTTP answer")


def step_errors(a1):
    status, hdrs, doc = a1.json("POST", "/api/failover")
    check(status == 401 and hdrs.get("www-authenticate", "").startswith("Bearer"),
          f"POST without token: {status} {hdrs}")
    status, hdrs, doc = a1.json("POST", "/api/failover", token="x" * 64)
    check(status == 401 and "invalid_token" in hdrs.get("www-authenticate", ""),
          f"POST with a wrong token: {status} {hdrs} {doc}")
    status, _, doc = a1.json("POST", "/api/failover", token=a1.token[:-1])
    check(status == 401, f"POST with a truncated token: {status}")
    status, _, doc = a1.json("POST", "/api/recover", headers={"Authorization": "Basic eDp5"})
    check(status == 401, f"POST with Basic auth: {status}")
    status, hdrs, _ = a1.json("GET", "/api/status", host="attacker.example")
    check(status == 401, f"token-less read with a foreign Host: {status}")
    status, _, _ = a1.json("GET", "/api/status", host="attacker.example", token=a1.token)
    check(status == 200, f"read with a foreign Host and the token: {status}")
    status, _, _ = a1.json("GET", "/api/status", token="y" * 40)
    check(status == 401, f"read with a wrong token: {status}")
    log("401: no token, wrong token, Basic, foreign Host without token")

    status, hdrs, _ = a1.json("GET", "/api/failover", token=a1.token)
    check(status == 405 and hdrs.get("allow") == "POST", f"GET /api/failover: {status} {hdrs}")
    status, hdrs, _ = a1.json("PUT", "/api/status", token=a1.token)
    check(status == 405 and "GET" in hdrs.get("allow", ""), f"PUT /api/status: {status}")
    status, _, _ = a1.json("GET", "/api/nothing")
    check(status == 404, f"GET /api/nothing: {status}")
    status, _, doc = a1.json("POST", "/api/failover?node=3", token=a1.token)
    check(status == 400, f"node=3: {status} {doc}")
    status, _, doc = a1.json("POST", "/api/failover?node=1&node=2", token=a1.token)
    check(status == 400, f"node twice: {status} {doc}")
    status, _, doc = a1.json("GET", "/api/status?x=1")
    check(status == 400, f"status with a parameter: {status} {doc}")
    status, _, doc = a1.json("POST", "/api/fallback", token=a1.token)
    check(status == 409 and doc.get("error") == "refused", f"fallback while Normal: {status} {doc}")
    status, _, _ = a1.request("POST", "/api/recover", token=a1.token, body=b"x" * 20000)
    check(status == 413, f"20 kB body: {status}")
    status, _, _ = a1.request("GET", "/api/status", headers={"X-Big": "b" * 10000})
    check(status in (400, 413, 431), f"10 kB header: {status}")
    log("405 (+Allow), 404, 400 (bad node, repeated node, stray parameter), 409, 413, big "
        "header refused")


def step_hostile(a1):
    """Garbage, truncated and abandoned requests, raw TLS garbage and a burst of parallel
    clients: srmd answers or closes, and keeps serving (sanitizers check the rest)."""
    def tls_conn():
        raw = socket.create_connection(("127.0.0.1", a1.port), timeout=10)
        return a1.ctx.wrap_socket(raw, server_hostname="127.0.0.1")

    def exchange(data, read=True):
        with tls_conn() as c:
            c.sendall(data)
            if not read:
                return b""
            out = b""
            try:
                while len(out) < 65536:
                    chunk = c.recv(4096)
                    if not chunk:
                        break
                    out += chunk
            except (ConnectionResetError, socket.timeout, ssl.SSLError):
                pass
            return out

    for junk in (b"\x00\xff\r\n\r\n", b"GET\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n",
                 b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
                 b"POST /api/failover HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 b"Content-Length: -5\r\n\r\n",
                 b"POST /api/failover HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\nffffffff\r\n"):
        got = exchange(junk)
        check(not got.startswith(b"HTTP/1.1 200"), f"junk {junk[:30]!r} answered 200")
    # Requests whose client goes away before the answer (status and metrics ask the engine
    # and the database first).
    for path in ("/api/status", "/metrics", "/api/digest"):
        for _ in range(5):
            exchange(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode(), read=False)
    # Pipelined requests on one connection.
    got = exchange(b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                   b"GET /nothing HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    check(got.count(b"HTTP/1.1 ") == 2 and b"404" in got, f"pipelined: {got[:300]!r}")
    # Not TLS at all on the TLS port, and a half-open TLS connection.
    with socket.create_connection(("127.0.0.1", a1.port), timeout=10) as s:
        s.sendall(os.urandom(3000))
    partial = socket.create_connection(("127.0.0.1", a1.port), timeout=10)
    partial.sendall(b"\x16\x03\x01\x02\x00")
    # A burst of parallel readers.
    import concurrent.futures
    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as ex:
        codes = list(ex.map(lambda _: a1.request("GET", "/api/status")[0], range(60)))
    partial.close()
    check(codes == [200] * 60, f"parallel status requests: {sorted(set(codes))}")
    a1.status()
    log("hostile input: junk, huge URI, bad lengths, abandoned and pipelined requests, "
        "non-TLS bytes, 60 parallel readers; still serving")


def step_fd_guard(pair, a1):
    """With its descriptor limit lowered, srmd stops accepting admin connections at half of
    it (the peer link and the engine keep the rest) and accepts again once they close."""
    pid = pair.srmd_pid(1)
    soft, hard = (int(x) for x in subprocess.run(
        ["prlimit", "--pid", str(pid), "--nofile", "--output", "SOFT,HARD", "--noheadings"],
        capture_output=True, text=True, check=True, timeout=10).stdout.split())
    open_now = len(os.listdir(f"/proc/{pid}/fd"))
    limit = 2 * (open_now + 20)
    subprocess.run(["prlimit", "--pid", str(pid), f"--nofile={limit}:{hard}"], check=True,
                   timeout=10)
    idle = []
    try:
        for _ in range(40):
            idle.append(socket.create_connection(("127.0.0.1", a1.port), timeout=10))
        deadline = time.monotonic() + 15
        while "not accepting admin connections" not in pair.log_text(1):
            check(time.monotonic() < deadline, "the descriptor guard did not pause accepting")
            time.sleep(0.2)
        try:
            a1.request("GET", "/api/status", timeout=3)
            raise Fail("an admin request was served while accepting was paused")
        except (socket.timeout, TimeoutError, ConnectionResetError, ssl.SSLError, OSError):
            pass
        check(pair.status(1) is not None, "srmctl status failed while the admin was paused")
    finally:
        for c in idle:
            c.close()
        subprocess.run(["prlimit", "--pid", str(pid), f"--nofile={soft}:{hard}"], check=True,
                       timeout=10)
    deadline = time.monotonic() + 15
    while True:
        try:
            a1.status()
            break
        except (OSError, ssl.SSLError, http.client.HTTPException):
            check(time.monotonic() < deadline, "admin not accepting again after the close")
            time.sleep(0.3)
    check("accepting admin connections again" in pair.log_text(1), "no resume log line")
    log(f"descriptor guard: paused at half of a {limit} limit with 40 idle connections, "
        "srmctl still served, resumed after they closed")


def step_metrics(pair, a1, a2):
    s = scrape(a1)
    check(metric(s, "duet_ha_state", node="1", state="Normal") == 1, "node 1 not Normal")
    check(metric(s, "duet_ha_state", node="1", state="Idle") == 0, "Idle gauge not 0")
    check(metric(s, "duet_ha_state", node="2", state="Normal") == 1, "peer not Normal")
    check(metric(s, "duet_ha_reason", node="1", reason="Normal") == 1, "reason gauge")
    check(sum(v for (n, _), v in s.items() if n == "duet_ha_state") == 2,
          "more than one state per node")
    check(metric(s, "duet_ha_transitions_total") >= 1, "no transition counted")
    check(metric(s, "duet_peer_link_up") == 1, "peer link not up")
    rtt = metric(s, "duet_peer_heartbeat_rtt_seconds", stat="smoothed")
    check(0 < rtt < 1, f"heartbeat rtt {rtt}")
    check(metric(s, "duet_peer_heartbeat_rtt_samples_total") > 0, "no rtt samples")
    check(metric(s, "duet_critical_service_up", service="engine") == 1, "engine not up")
    check(metric(s, "duet_critical_service_up", service="database") == 1, "db not up")
    metric(s, "duet_critical_service_restarts_total", service="engine")
    metric(s, "duet_replication_lag_entries", direction="in")
    metric(s, "duet_replication_lag_seconds", direction="out")
    check(metric(s, "duet_login_rate_limit") == 0, "throttle set while Normal")
    metric(s, "duet_logins_throttled_total")
    base1 = metric(s, "duet_logins_total", home_node="1")
    log(f"/metrics parsed: {len(s)} samples; rtt {rtt * 1000:.2f} ms")

    pair.ctl(1, "user", "add", "alice", "alice-pw")
    pair.ctl(2, "user", "add", "bob", "bob-pw")
    clients = []
    try:
        for user, n in (("alice", 1), ("bob", 2)):
            env = dict(pair.env)
            env["NODE1_XMPP_PORT"] = str(pair.xmpp_port(n))
            c = RawClient(env)
            c.login(user, f"{user}-pw", resource="m")
            clients.append(c)
        deadline = time.monotonic() + 10
        while True:
            s1, s2 = scrape(a1), scrape(a2)
            got = (metric(s1, "duet_logins_total", home_node="1"),
                   metric(s1, "duet_sessions", home_node="1"),
                   metric(s2, "duet_logins_total", home_node="2"),
                   metric(s2, "duet_sessions", home_node="2"),
                   metric(s1, "duet_sessions", home_node="2"))
            if got == (base1 + 1, 1, 1, 1, 0):
                break
            if time.monotonic() > deadline:
                raise Fail(f"logins/sessions per home node: got {got}, want "
                           f"{(base1 + 1, 1, 1, 1, 0)}")
            time.sleep(0.2)
    finally:
        for c in clients:
            c.close()
    log("a login per home node shows in duet_logins_total and duet_sessions")


def step_failover(pair, a1, a2, files):
    before = metric(scrape(a1), "duet_ha_transitions_total")
    status, _, doc = a1.json("POST", "/api/failover", token=a1.token)
    check(status == 200 and doc.get("ok") is True and "accepted" in doc.get("message", ""),
          f"POST /api/failover: {status} {doc}")
    log(f"POST /api/failover: {doc['message']}")
    wait_states([a1, a2], {1: ("Idle", "On Admin Request"),
                           2: ("Running in Backup Mode", "On Admin Request")}, 30,
                "after the API failover")
    s = scrape(a1)
    check(metric(s, "duet_ha_state", node="1", state="Idle") == 1, "metrics: node 1 not Idle")
    check(metric(s, "duet_ha_transitions_total") >= before + 2,
          "transitions counter did not grow by two")
    s2 = scrape(a2)
    check(metric(s2, "duet_ha_serving", home_node="1") == 1, "node 2 does not serve home 1")

    want1 = [("Initializing", "Normal", "Normal"), ("Normal", "Failing Over", "On Admin Request"),
             ("Failing Over", "Idle", "On Admin Request")]
    want2 = [("Initializing", "Normal", "Normal"), ("Normal", "Taking Over", "On Admin Request"),
             ("Taking Over", "Running in Backup Mode", "On Admin Request")]
    for n, want in ((1, want1), (2, want2)):
        lines = wait_notify(files[n], want, 15, f"node {n} notify runs")
        for x in lines:
            # args old|new|reason, then $DUET_OLD_STATE|$DUET_NEW_STATE|$DUET_REASON|
            # $DUET_NODE_ID|$DUET_OLD_REASON
            check(len(x) == 8 and x[0:3] == x[3:6] and x[6] == str(n),
                  f"node {n} notify: arguments and environment differ: {x}")
    for n, want in ((1, want1), (2, want2)):
        text = pair.log_text(n)
        for old, new, reason in want[1:]:
            line = f'ha: transition node={n} '
            pat = re.compile(re.escape(line) + r'seq=\d+ from="' + re.escape(old) +
                             r'" from_reason="[^"]*" to="' + re.escape(new) + r'" reason="' +
                             re.escape(reason) + '"')
            check(pat.search(text), f"node {n}: no transition log line {old} -> {new}")
    log("notify ran on both nodes with arguments and DUET_* environment; transition lines "
        "logged")


def step_hang_and_fallback(pair, a1, a2, files, hang_flag):
    Path(hang_flag).touch()
    status, _, doc = a1.json("POST", "/api/fallback?node=1", token=a1.token)
    check(status == 200 and doc.get("ok") is True, f"POST /api/fallback?node=1: {status} {doc}")
    log(f"POST /api/fallback?node=1 (notify scripts now hang): {doc['message']}")
    # While node 1's script hangs the API answers at once.
    t = time.monotonic()
    a1.status()
    check(time.monotonic() - t < 2, "the API was slow while a notify script hung")
    wait_states([a1, a2], {1: ("Normal", "Normal"), 2: ("Normal", "Normal")}, 30,
                "after the API fallback")
    deadline = time.monotonic() + 4 * NOTIFY_TIMEOUT_S + 20
    while True:
        s = scrape(a1)
        if metric(s, "duet_notify_runs_total", result="timeout") >= 1:
            break
        if time.monotonic() > deadline:
            raise Fail(f"no notify run was killed: {pair.log_text(1)[-2000:]}")
        time.sleep(0.3)
    os.unlink(hang_flag)
    check("killed after" in pair.log_text(1), "no 'killed after' log line")
    # The queue goes on: the run for the last transition (to Normal) completes.
    wait_notify(files[1], [("Taking Back", "Normal", "Normal")], 4 * NOTIFY_TIMEOUT_S + 20,
                "node 1 notify after the hung ones")
    log("a hanging notify script was killed after the timeout; later runs went on")


def sanitizer_clean(pair):
    """srmd stopped on SIGTERM (with an idle admin connection open) without a sanitizer
    report."""
    for n in (1, 2):
        text = pair.log_text(n)
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
            check(marker not in text, f"node {n} srmd.log has a sanitizer report: {marker}")
    log("both srmds stopped without sanitizer reports")


NOTIFY_SCRIPT = """#!/bin/sh
# test_http_admin's notify hook: one line per run, then maybe hang (ignoring SIGTERM).
echo "$1|$2|$3|$DUET_OLD_STATE|$DUET_NEW_STATE|$DUET_REASON|$DUET_NODE_ID|$DUET_OLD_REASON" \\
    >>"{dir}/notify.$DUET_NODE_ID"
if [ -e "{dir}/hang" ] && [ "$DUET_NODE_ID" = 1 ]; then
    trap '' TERM
    sleep 60
fi
"""


def main():
    build = os.environ.get("DUET_BUILD", str(ROOT / "build"))
    work = tempfile.mkdtemp(prefix="dhttp.", dir=os.environ.get("DUET_TEST_TMP", "/tmp"))
    script = os.path.join(work, "notify.sh")
    with open(script, "w", encoding="utf-8") as f:
        f.write(NOTIFY_SCRIPT.replace("{dir}", work))
    os.chmod(script, stat.S_IRWXU)
    files = {n: os.path.join(work, f"notify.{n}") for n in (1, 2)}
    pair = Pair(build, log)
    extra = {
        "DUET_EXTRA_HA_CONF": f"notify = {script}\nnotify_timeout = {NOTIFY_TIMEOUT_S}s",
        "DUET_EXTRA_HTTP_CONF": f"tls_cert = {pair.dir}/tls/cert.pem\n"
                                f"tls_key = {pair.dir}/tls/key.pem",
    }
    ok = False
    idle = None
    try:
        pair.up(extra_env=extra)
        a1, a2 = Admin(pair, 1), Admin(pair, 2)
        step_status(pair, a1, a2)
        step_errors(a1)
        step_hostile(a1)
        step_fd_guard(pair, a1)
        step_metrics(pair, a1, a2)
        step_failover(pair, a1, a2, files)
        step_hang_and_fallback(pair, a1, a2, files, os.path.join(work, "hang"))
        # An idle HTTPS connection stays open across the stop: srmd frees it cleanly.
        idle = socket.create_connection(("127.0.0.1", a1.port), timeout=10)
        idle = a1.ctx.wrap_socket(idle, server_hostname="127.0.0.1")
        pair.lg("down", pair.dir, check=False)
        sanitizer_clean(pair)
        ok = True
        log("PASS")
    except Exception as e:  # noqa: BLE001 -- report anything, with the logs
        print(f"FAIL: {e}", flush=True)
        if not isinstance(e, Fail):
            traceback.print_exc()
        pair.dump_logs(60)
    finally:
        if idle:
            idle.close()
        pair.down(keep=not ok)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
