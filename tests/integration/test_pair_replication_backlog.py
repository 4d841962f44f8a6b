#!/usr/bin/python3
"""Fallback with a large replication backlog (issue #4): Taking Back does not finish before
the backlog is applied.

  1. A pair; 200 users (one SQL statement on node 1, replicated).
  2. Node 1's srmd is killed: node 2 Running in Backup Mode.  Node 1 restarts (Failed Over).
  3. Node 2 writes BACKLOG roster items in one statement (as the backup would while serving
     everyone), and at once `srmctl fallback` runs on node 1: node 1 has not applied them
     yet (checked: its applied position is below node 2's head right after the command).
  4. The moment node 1 is seen Normal again, its database already holds every backlog row
     (counted with psql), its status says the catch-up waited for a target at or beyond node
     2's head and ended caught-up (not gave-up), and the digests are equal.
Uses DUET_BUILD (default build/).  Exit 0 pass, 1 fail, 77 skipped.
"""

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "lib"))

from pair_harness import Fail, run_pair_test  # noqa: E402

USERS = 200
BACKLOG = 20000  # about 1 s of applying; the local group's catch-up timeout is 5 s
T0 = time.monotonic()


def log(text):
    print(f"[{time.monotonic() - T0:6.2f}s] test_pair_replication_backlog: {text}", flush=True)


def wait_state(pair, n, state, timeout):
    deadline = time.monotonic() + timeout
    while pair.state(n)[0] != state:
        if time.monotonic() > deadline:
            raise Fail(f"node {n} not {state} within {timeout}s: {pair.both()}")
        time.sleep(0.05)
    log(f"node {n}: {state} ({pair.both()})")


def scenario(pair):
    pair.wait_normal(20, "up")
    pair.ctl(1, "user", "add", "seedpw", "backlog-pw")
    cols = ("sha1_salt, sha1_iter, sha1_stored, sha1_server, "
            "sha256_salt, sha256_iter, sha256_stored, sha256_server")
    pair.psql(1, f"INSERT INTO users (username, home_node, {cols}) "
                 f"SELECT 'b' || i, 1 + i % 2, {cols} "
                 f"FROM users, generate_series(1, {USERS}) i WHERE username = 'seedpw'")
    pair.wait_converged("users written on node 1", timeout=20)

    pair.lg("stop", pair.dir, "1", "--kill")
    wait_state(pair, 2, "Running in Backup Mode", 10)
    pair.lg("start", pair.dir, "1")
    wait_state(pair, 1, "Failed Over", 20)
    deadline = time.monotonic() + 20
    while True:
        st = pair.status(1)
        me = st and [x for x in st["pair"]["nodes"] if x["self"]][0]
        if me and me["critical_services"]["engine"] and me["critical_services"]["database"]:
            break
        if time.monotonic() > deadline:
            raise Fail(f"node 1's services not up: {pair.both()}")
        time.sleep(0.1)
    waits_before = pair.status(1)["pair"]["replication"]["catchup"]["waits"]

    per_user = BACKLOG // USERS
    pair.psql(2, "INSERT INTO roster_items (username, contact, name) "
                 f"SELECT 'b' || u, 'c' || c || '@x.test', 'backlog' "
                 f"FROM generate_series(1, {USERS}) u, generate_series(1, {per_user}) c")
    head = int(pair.psql(2, "SELECT max(id) FROM repl_outbox")[0][0])
    pair.ctl(1, "fallback", "--yes")
    rep = pair.status(1)["pair"]["replication"]
    log(f"fallback asked with node 2's head at {head}; node 1 has applied {rep['applied']}")
    if rep["applied"] >= head:
        raise Fail("node 1 applied the backlog before the fallback began: no backlog to test "
                   f"(applied {rep['applied']}, head {head})")

    deadline = time.monotonic() + 30
    while pair.state(1)[0] != "Normal":
        if time.monotonic() > deadline:
            raise Fail(f"fallback did not finish in 30s: {pair.both()}")
        time.sleep(0.02)
    have = int(pair.psql(1, "SELECT count(*) FROM roster_items WHERE name = 'backlog'")[0][0])
    cu = pair.status(1)["pair"]["replication"]["catchup"]
    log(f"node 1 Normal: {have} of {per_user * USERS} backlog rows present; catch-up {cu}")
    if have != per_user * USERS:
        raise Fail(f"node 1 went Normal with {have} of {per_user * USERS} backlog rows applied")
    if cu["waits"] <= waits_before or cu["last_result"] != "caught-up":
        raise Fail(f"Taking Back did not wait for replication to catch up: {cu}")
    if cu["last_target"] < head:
        raise Fail(f"the catch-up target {cu['last_target']} is below node 2's head {head}")
    pair.wait_normal(20, "after the fallback")
    pair.wait_converged("after the fallback", timeout=20)


def main():
    return run_pair_test("test_pair_replication_backlog", scenario, log)


if __name__ == "__main__":
    sys.exit(main())
