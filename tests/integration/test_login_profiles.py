#!/usr/bin/python3
"""srmctl profile apply / profile show on a pair (issue #5, docs/login-profiles.md).

  1. A pair (contrib/local-group up --nodes 2, re-login limits 0 s / 1 s): after the peer
     link comes up each node knows the other's limits; `profile show --json` says no
     mismatch on both nodes.
  2. `profile apply --hardware 15000 --mode active-active --users 2000 --yes` on node 1:
     both nodes now have lower 120 s, upper 787 s (Table 52), the answer names both nodes,
     node 2's log says the peer applied a profile.
  3. `profile apply --local` on node 2 (Table 44, 100 users: 120 / 320 s): both nodes report
     the mismatch (node 1 learns it from node 2's announcement) in `profile show` and
     `status` (plain and JSON), node 1's log warns.
  4. `profile apply` without --local on node 2 repairs it: identical again.
  5. srmd checks the arguments itself: a raw request beyond the table's last row, an
     unknown mode and a non-number are `error usage`; nothing changes.
Uses DUET_BUILD (default build/).  Exit 0 pass, 1 fail, 77 skipped.
"""

import json
import socket
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "lib"))

from pair_harness import Fail, run_pair_test  # noqa: E402

T0 = time.monotonic()


def log(text):
    print(f"[{time.monotonic() - T0:6.2f}s] test_login_profiles: {text}", flush=True)


def show(pair, n):
    res = pair.ctl(n, "profile", "show", "--json")
    return json.loads(res.stdout)


def wait_show(pair, n, what, pred, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        st = show(pair, n)
        if pred(st):
            log(f"node {n}: {what}: {st}")
            return st
        if time.monotonic() > deadline:
            raise Fail(f"node {n}: {what}: not within {timeout}s; last {st}")
        time.sleep(0.1)


def limits(st):
    return (st["relogin_lower_ms"], st["relogin_upper_ms"])


def peer_limits(st):
    p = st["peer"]
    return (p.get("relogin_lower_ms"), p.get("relogin_upper_ms")) if p["known"] else None


def raw(pair, n, line):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(pair.env[f"NODE{n}_CTL"])
        s.sendall(line.encode())
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    return data.decode(errors="replace")


def scenario(pair):
    pair.wait_normal(20, "up")
    for n in (1, 2):
        wait_show(pair, n, "peer's limits known, identical",
                  lambda st: st["peer"]["known"] and not st["mismatch"]
                  and limits(st) == (0, 1000) and peer_limits(st) == (0, 1000))

    res = pair.ctl(1, "profile", "apply", "--hardware", "15000", "--mode", "active-active",
                   "--users", "2000", "--yes")
    log(f"apply on node 1:\n{res.stdout.strip()}")
    for want in ("Table 52", "node 1: relogin lower 120 s, upper 787 s",
                 "node 2: relogin lower 120 s, upper 787 s"):
        if want not in res.stdout:
            raise Fail(f"apply answer lacks {want!r}: {res.stdout}")
    for n in (1, 2):
        st = show(pair, n)
        if limits(st) != (120000, 787000) or peer_limits(st) != (120000, 787000) \
                or st["mismatch"]:
            raise Fail(f"node {n} after apply: {st}")
    if "the peer applies a login profile" not in pair.log_text(2):
        raise Fail("node 2's log does not mention the applied profile")

    res = pair.ctl(2, "profile", "apply", "--local", "--hardware", "500", "--mode",
                   "active-active", "--users", "100", "--yes")
    if "node 1: not changed (--local)" not in res.stdout:
        raise Fail(f"--local answer: {res.stdout}")
    st2 = show(pair, 2)
    if limits(st2) != (120000, 320000) or not st2["mismatch"]:
        raise Fail(f"node 2 after --local: {st2}")
    wait_show(pair, 1, "mismatch reported",
              lambda st: st["mismatch"] and peer_limits(st) == (120000, 320000)
              and limits(st) == (120000, 787000))
    plain = pair.ctl(1, "profile", "show").stdout
    if "warning: profile mismatch between the nodes" not in plain:
        raise Fail(f"plain show lacks the warning: {plain}")
    st = pair.status(1)
    if not st or not st["relogin"]["mismatch"] or st["relogin"]["peer_upper_ms"] != 320000:
        raise Fail(f"status --json on node 1 lacks the mismatch: {st and st.get('relogin')}")
    plain = pair.ctl(1, "status").stdout
    if "relogin:   lower 120000 ms, upper 787000 ms (warning: profile mismatch" not in plain:
        raise Fail(f"status on node 1 lacks the mismatch warning:\n{plain}")
    if "profile: mismatch" not in pair.log_text(1):
        raise Fail("node 1's log does not warn about the mismatch")

    pair.ctl(2, "profile", "apply", "--hardware", "500", "--mode", "active-active",
             "--users", "100", "--yes")
    for n in (1, 2):
        st = show(pair, n)
        if limits(st) != (120000, 320000) or st["mismatch"]:
            raise Fail(f"node {n} after the repair: {st}")
    if pair.status(2)["relogin"]["mismatch"]:
        raise Fail("status --json on node 2 still reports a mismatch")
    log("repaired: both nodes 120 s / 320 s")

    for line, what in (("1\tprofile\tapply\t500\tactive-active\t501\n", "beyond the table"),
                       ("1\tprofile\tapply\t500\tsideways\t10\n", "unknown mode"),
                       ("1\tprofile\tapply\t5x0\tactive-active\t10\n", "not a number"),
                       ("1\tprofile\tapply\t750\tactive-active\t10\n", "unknown hardware")):
        ans = raw(pair, 1, line)
        if not ans.startswith("error usage"):
            raise Fail(f"raw request ({what}) answered {ans!r}")
        log(f"srmd refuses {what}: {ans.splitlines()[0]}")
    if limits(show(pair, 1)) != (120000, 320000):
        raise Fail("a refused request changed the limits")


def main():
    return run_pair_test("test_login_profiles", scenario, log)


if __name__ == "__main__":
    sys.exit(main())
