#!/usr/bin/python3
"""The pair end to end: two srmds with their presenced and PostgreSQL on loopback
(contrib/local-group up --nodes 2), real processes, real faults, slixmpp clients.

Every wait is bounded; every state assertion prints both nodes' state and reason.
  1. up: both Normal; user add on either node reaches both databases (Balanced homes);
     a user logging in at the node that does not serve it gets see-other-host.
  2. one kill -9 of node 1's presenced: restarted inside the Critical Service Down Delay,
     node 1 stays Normal.
  3. presenced of node 1 killed until the delay runs out: node 1 Failed Over with Critical
     Services Not Running, node 2 Running in Backup Mode (Critical Service Down); alice
     (home node 1) logs in on node 2; node 1 Failed Over once presenced runs again;
     fallback: both Normal, alice's node-2 session is sent to node 1, she logs in there.
  4. kill -9 of node 1's srmd: node 2 Running in Backup Mode (Peer Down), serves alice;
     node 1 restarted: Failed Over (Initialization); fallback: both Normal.
  5. clean stop of node 1: node 2 Running in Backup Mode (Peer Reboot); start, fallback.
  6. node 1's PostgreSQL stopped: Failed Over with ... (Database Failure) / Running in
     Backup Mode (Database Failure); started again; fallback.
  7. manual failover of node 2, HA state and manual-failover mode survive a restart of
     node 2's srmd (Idle again), fallback 2 from node 1.
  8. automatic fallback (on, 2 s): after a database outage node 1 takes its users back by
     itself (Automatic Fallback).
Uses DUET_BUILD (default build/).  Exit 0 pass, 1 fail, 77 skipped.
"""

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "lib"))

try:
    from rawxmpp import RawClient, XmppError, local
    from xmpp_clients import Client, XmppFailure, quiet_slixmpp
    from pair_harness import Fail, run_pair_test
except ImportError as e:
    print(f"SKIP: {e} (contrib/install-deps test installs python3-slixmpp)")
    sys.exit(77)

PASSWORD = {"alice": "alice-pw-1", "bob": "bob-pw-2"}
CSD = "Critical Services Not Running"
T0 = time.monotonic()


def log(text):
    print(f"[{time.monotonic() - T0:6.2f}s] test_pair_failover: {text}", flush=True)


def redirected(pair, user, node):
    """user authenticates at node, which does not serve it: the answer must be the stream
    error see-other-host naming the other node's client port (a raw client, to see it)."""
    env = dict(pair.env)
    env["NODE1_XMPP_PORT"] = str(pair.xmpp_port(node))
    rc = RawClient(env)
    try:
        rc.open_stream()
        rc.starttls()
        try:
            rc.auth(user, PASSWORD[user])
        except XmppError:
            pass
        cond = rc.stream_error or rc.expect_stream_error(10)
        target = [c.text for c in rc.stream_error_el if local(c) == "see-other-host"] \
            if rc.stream_error_el is not None else []
    finally:
        rc.close()
    want = f"127.0.0.1:{pair.xmpp_port(3 - node)}"
    if cond != "see-other-host" or target != [want]:
        raise Fail(f"{user} at node {node}: stream error {cond} {target}, wanted "
                   f"see-other-host {want}; {pair.both()}")
    log(f"{user} at node {node}: see-other-host {want}")


async def login(pair, user, node):
    """Log user in at node (a real client); returns it logged in."""
    e = pair.env
    c = Client(f"{user}@{e['DOMAIN']}/t", PASSWORD[user], "127.0.0.1", pair.xmpp_port(node),
               e["TLS_CERT"], domain=e["DOMAIN"])
    c.max_redirects = -1  # a released session records the redirect, does not follow it
    try:
        await c.login(timeout=15)
    except XmppFailure as err:
        c.drop()
        raise Fail(f"{user} at node {node}: {err}; {pair.both()}") from None
    log(f"{user} logged in at node {node}")
    return c


def kill_engine_until(pair, n, want, timeout):
    """Kill node n's presenced whenever it runs, until both nodes are as in want
    ({node: (state, reason)}): the engine stays down while the states are checked."""
    deadline = time.monotonic() + timeout
    kills = 0
    while True:
        st = pair.status(n)
        views = {m: (pair.status(m) or {}) for m in want}
        if all((views[m].get("state"), views[m].get("reason")) == want[m] for m in want):
            log(f"after {kills} kill(s) of presenced on node {n}: {pair.both()}")
            return
        pid = st["engine"]["pid"] if st else 0
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
                kills += 1
            except ProcessLookupError:
                pass
        if time.monotonic() > deadline:
            raise Fail(f"not {want} after {timeout}s of killing presenced on node {n}: "
                       f"{pair.both()}")
        time.sleep(0.05)


async def scenario(pair):
    # 1. up, provisioning on both nodes, redirects
    pair.wait_normal(20, "up")
    pair.ctl(1, "user", "add", "alice", PASSWORD["alice"])
    pair.ctl(2, "user", "add", "bob", PASSWORD["bob"])
    for n in (1, 2):
        listed = pair.ctl(n, "user", "list").stdout.split()
        want = [f"alice@{pair.env['DOMAIN']}", "1", f"bob@{pair.env['DOMAIN']}", "2"]
        if listed != want:
            raise Fail(f"node {n} user list {listed}, want {want} (Balanced homes, both DBs)")
    log("accounts on both databases, Balanced: alice home 1, bob home 2")
    a1 = await login(pair, "alice", 1)
    redirected(pair, "alice", 2)
    redirected(pair, "bob", 1)
    await a1.logout()

    # 2. one crash of presenced: restarted inside the delay, no failover
    pid = pair.engine_pid(1)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while not (pair.engine_pid(1) not in (0, pid) and
               pair.status(1)["engine"]["state"] == "ready"):
        if time.monotonic() > deadline:
            raise Fail(f"presenced of node 1 not restarted: {pair.both()}")
        time.sleep(0.1)
    pair.wait_normal(1, "presenced restarted inside the Critical Service Down Delay")
    if pair.status(1)["engine"]["restarts"] < 1:
        raise Fail("engine restart not counted")

    # 3. presenced keeps dying: Critical Service Down
    kill_engine_until(pair, 1, {1: (f"Failed Over with {CSD}", "Critical Service Down"),
                                2: ("Running in Backup Mode", "Critical Service Down")}, 20)
    a2 = await login(pair, "alice", 2)
    pair.wait({1: ("Failed Over", "Critical Service Down"),
               2: ("Running in Backup Mode", "Critical Service Down")}, 15,
              "presenced back on node 1 (T11)")
    pair.ctl(1, "fallback", "--yes")
    pair.wait_normal(15, "fallback after critical service down")
    deadline = time.monotonic() + 10
    while a2.session_started and a2.transport and not a2.stream_error:
        if time.monotonic() > deadline:
            raise Fail(f"alice's session on node 2 not released; {pair.both()}")
        await asyncio.sleep(0.05)
    log(f"alice's node-2 session ended ({a2.stream_error or 'closed'})")
    a2.drop()
    redirected(pair, "alice", 2)
    await (await login(pair, "alice", 1)).logout()

    # 4. srmd of node 1 crashes: Peer Down
    pair.lg("stop", pair.dir, "1", "--kill")
    pair.wait({2: ("Running in Backup Mode", "Peer Down")}, 5, "srmd 1 killed")
    log(f"both: {pair.both()}")
    await (await login(pair, "alice", 2)).logout()
    pair.lg("start", pair.dir, "1")
    pair.wait({1: ("Failed Over", "Initialization"),
               2: ("Running in Backup Mode", "Peer Down")}, 20, "node 1 restarted")
    pair.wait_services(1, 20)
    pair.ctl(1, "fallback", "--yes")
    pair.wait_normal(15, "fallback after Peer Down")

    # 5. clean stop: Peer Reboot
    pair.lg("stop", pair.dir, "1")
    pair.wait({2: ("Running in Backup Mode", "Peer Reboot")}, 3, "node 1 stopped cleanly")
    log(f"both: {pair.both()}")
    pair.lg("start", pair.dir, "1")
    pair.wait({1: ("Failed Over", "Initialization")}, 20, "node 1 started")
    pair.wait_services(1, 20)
    pair.ctl(2, "fallback", "1", "--yes")
    pair.wait_normal(15, "fallback 1 asked on node 2")

    # 6. database of node 1 stops
    pair.lg("db-stop", pair.dir, "1")
    pair.wait({1: (f"Failed Over with {CSD}", "Database Failure"),
               2: ("Running in Backup Mode", "Database Failure")}, 15, "database 1 stopped")
    await (await login(pair, "alice", 2)).logout()
    pair.lg("db-start", pair.dir, "1")
    pair.wait({1: ("Failed Over", "Database Failure")}, 20, "database 1 back")
    pair.ctl(1, "fallback", "--yes")
    pair.wait_normal(15, "fallback after Database Failure")

    # 7. manual failover of node 2, persisted across an srmd restart
    pair.ctl(2, "failover", "--yes")
    pair.wait({1: ("Running in Backup Mode", "On Admin Request"),
               2: ("Idle", "On Admin Request")}, 10, "manual failover of node 2")
    await (await login(pair, "bob", 1)).logout()
    pair.lg("stop", pair.dir, "2")
    pair.lg("start", pair.dir, "2")
    pair.wait({1: ("Running in Backup Mode", None), 2: ("Idle", "Initialization")}, 20,
              "node 2 restarted in manual-failover mode")
    if not pair.status(2)["pair"]["manual_failover"]:
        raise Fail(f"manual-failover mode lost over a restart: {pair.both()}")
    pair.wait_services(2, 20)
    pair.ctl(1, "fallback", "2", "--yes")
    pair.wait_normal(15, "fallback 2 asked on node 1")
    await (await login(pair, "bob", 2)).logout()

    # 8. automatic fallback
    for n in (1, 2):
        with open(pair.env[f"NODE{n}_CONFIG"], "a", encoding="utf-8") as f:
            f.write("\n[ha]\nautomatic_fallback = on\nautomatic_fallback_delay = 2s\n")
        pair.lg("stop", pair.dir, str(n))
    for n in (1, 2):
        pair.lg("start", pair.dir, str(n))
    pair.wait_normal(20, "restarted with automatic fallback on")
    pair.lg("db-stop", pair.dir, "1")
    pair.wait({1: (f"Failed Over with {CSD}", "Database Failure")}, 15, "database 1 stopped")
    pair.lg("db-start", pair.dir, "1")
    pair.wait_normal(25, "automatic fallback (no operator)")
    if "Automatic Fallback" not in pair.log_text(1):
        raise Fail("node 1's log does not show the Automatic Fallback transition")
    log("node 1 went Taking Back (Automatic Fallback) by itself")


def main():
    quiet_slixmpp()
    return run_pair_test("test_pair_failover", scenario, log)


if __name__ == "__main__":
    sys.exit(main())
