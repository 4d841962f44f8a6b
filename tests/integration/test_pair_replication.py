#!/usr/bin/python3
"""Replication between the two nodes of a pair, end to end (issue #4): real srmds, presenced,
PostgreSQL and slixmpp clients on loopback (contrib/local-group up --nodes 2).

  1. up; alice, carol (home 1) and bob, dave (home 2); mutual subscriptions, a roster item
     and a vCard on each node, an offline message on each node; `srmctl digest` becomes
     equal on both nodes (bounded wait), and `status --json` shows replication lag.
  2. carol sends alice (offline) a message; once both digests agree node 1's srmd is killed
     with -9 and its PostgreSQL stopped: on node 2 (Running in Backup Mode) alice's roster
     and vCard are complete and the message is delivered exactly once; alice writes on
     node 2 (a roster item, a message to carol, who is offline).
  3. node 1 back (database, srmd): fallback; Taking Back waited for replication (status:
     catch-up waits >= 1, last result caught-up; the log says so); digests equal; on node 1
     alice sees the backup's roster change and does not get the old message again, carol
     gets alice's message exactly once.
Uses DUET_BUILD (default build/).  Exit 0 pass, 1 fail, 77 skipped.
"""

import asyncio
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "lib"))

try:
    from slixmpp.xmlstream import ET
    from xmpp_clients import (Client, XmppFailure,
                              quiet_slixmpp, subscribe_mutually)
    from pair_harness import Fail, run_pair_test
except ImportError as e:
    print(f"SKIP: {e} (contrib/install-deps test installs python3-slixmpp)")
    sys.exit(77)

USERS = {"alice": 1, "bob": 2, "carol": 1, "dave": 2}  # Balanced: alternate homes
CONVERGE_S = 15
T0 = time.monotonic()
NS_VCARD = "vcard-temp"


def log(text):
    print(f"[{time.monotonic() - T0:6.2f}s] test_pair_replication: {text}", flush=True)


def password(user):
    return f"{user}-pw-r"


def jid(pair, user):
    return f"{user}@{pair.env['DOMAIN']}"


async def login(pair, user, node):
    e = pair.env
    c = Client(f"{jid(pair, user)}/r", password(user), "127.0.0.1", pair.xmpp_port(node),
               e["TLS_CERT"], domain=e["DOMAIN"])
    c.max_redirects = -1
    try:
        await c.login(timeout=15)
    except XmppFailure as err:
        c.drop()
        raise Fail(f"{user} at node {node}: {err}; {pair.both()}") from None
    log(f"{user} logged in at node {node}")
    return c


async def vcard_set(c, fn):
    iq = c.make_iq_set()
    vc = ET.Element(f"{{{NS_VCARD}}}vCard")
    ET.SubElement(vc, f"{{{NS_VCARD}}}FN").text = fn
    iq.xml.append(vc)
    await iq.send(timeout=10)


async def vcard_get(c):
    iq = c.make_iq_get()
    iq.xml.append(ET.Element(f"{{{NS_VCARD}}}vCard"))
    res = await iq.send(timeout=10)
    el = res.xml.find(f"{{{NS_VCARD}}}vCard/{{{NS_VCARD}}}FN")
    return el.text if el is not None else None


async def roster_of(c):
    await c.get_roster(timeout=10)
    return {j: c.client_roster[j]["subscription"] for j in c.client_roster}


async def count_after(c, body, settle=2.0):
    """How many times body arrived, once nothing new has come for `settle` seconds."""
    await asyncio.sleep(settle)
    return len(c.received(body=body))


async def wait_body(c, body, timeout, what):
    deadline = time.monotonic() + timeout
    while not c.received(body=body):
        if time.monotonic() > deadline:
            raise Fail(f"{what}: {body!r} not received in {timeout}s (got {c.messages})")
        await asyncio.sleep(0.05)


async def scenario(pair):
    pair.wait({1: ("Normal", "Normal"), 2: ("Normal", "Normal")}, 20, "up")
    for user, home in USERS.items():
        pair.ctl(home, "user", "add", user, password(user))
    listed = pair.ctl(2, "user", "list").stdout.split()
    for user, home in USERS.items():
        i = listed.index(jid(pair, user))
        if listed[i + 1] != str(home):
            raise Fail(f"{user}: home {listed[i + 1]}, expected {home}: {listed}")

    # 1. writes on both nodes through real clients
    alice, carol = await login(pair, "alice", 1), await login(pair, "carol", 1)
    bob, dave = await login(pair, "bob", 2), await login(pair, "dave", 2)
    await subscribe_mutually(alice, carol)
    await subscribe_mutually(bob, dave)
    await alice.update_roster(f"erin@{pair.env['DOMAIN']}", name="Erin", groups=["x"])
    await bob.update_roster(f"frank@{pair.env['DOMAIN']}", name="Frank")
    await vcard_set(alice, "Alice Node-One")
    await vcard_set(bob, "Bob Node-Two")
    await dave.logout()
    bob.send_message(mto=jid(pair, "dave"), mbody="offline-on-2", mtype="chat")
    await carol.logout()
    alice.send_message(mto=jid(pair, "carol"), mbody="offline-on-1", mtype="chat")
    await asyncio.sleep(0.5)
    d = pair.wait_converged("writes on both nodes", CONVERGE_S)
    rows = {t["table"]: t["rows"] for t in d["tables"]}
    if rows.get("offline_messages", 0) < 2 or rows.get("vcards", 0) < 2:
        raise Fail(f"expected the offline messages and vCards in the digest: {rows}")
    rep = pair.status(1)["pair"]["replication"]
    for key in ("lag_in", "lag_out", "catchup", "applied", "peer_head"):
        if key not in rep:
            raise Fail(f"status --json pair.replication lacks {key}: {rep}")
    if rep["ship"] != "incremental" or rep["changes_applied"] < 1:
        raise Fail(f"node 1 replication not incremental or nothing applied: {rep}")
    text = pair.ctl(1, "status").stdout
    if "lag in:" not in text or "catch-up:" not in text:
        raise Fail(f"plain status shows no replication lines:\n{text}")
    log(f"node 1 replication: applied {rep['applied']}/{rep['peer_head']}, lag in "
        f"{rep['lag_in']}, lag out {rep['lag_out']}, conflicts {rep['conflicts']}")

    # 2. a message for alice just before node 1 dies
    await alice.logout()
    carol = await login(pair, "carol", 1)
    await wait_body(carol, "offline-on-1", 10, "carol's offline message on node 1")
    carol.send_message(mto=jid(pair, "alice"), mbody="just-before-the-kill", mtype="chat")
    await asyncio.sleep(0.3)
    pair.wait_converged("before the kill", timeout=10)
    carol.drop()
    await bob.logout()
    pair.lg("stop", pair.dir, "1", "--kill")
    pair.lg("db-stop", pair.dir, "1")
    pair.wait({2: ("Running in Backup Mode", "Peer Down")}, 10, "srmd 1 killed, database 1 down")
    alice = await login(pair, "alice", 2)
    roster = await roster_of(alice)
    if roster.get(jid(pair, "carol")) != "both" or jid(pair, "erin") not in roster:
        raise Fail(f"alice's roster on node 2 incomplete: {roster}")
    if await vcard_get(alice) != "Alice Node-One":
        raise Fail("alice's vCard did not reach node 2")
    n = await count_after(alice, "just-before-the-kill")
    if n != 1:
        raise Fail(f"the message sent before the kill arrived {n} times on node 2 "
                   f"({alice.messages})")
    log("node 2: alice's roster and vCard complete, the message delivered exactly once")
    await alice.update_roster(f"gina@{pair.env['DOMAIN']}", name="Gina")
    alice.send_message(mto=jid(pair, "carol"), mbody="written-by-the-backup", mtype="chat")
    await asyncio.sleep(0.5)
    await alice.logout()

    # 3. node 1 returns; Taking Back waits for replication
    pair.lg("db-start", pair.dir, "1")
    pair.lg("start", pair.dir, "1")
    pair.wait({1: ("Failed Over", "Initialization")}, 20, "node 1 restarted")
    pair.wait_services(1, 20)
    pair.ctl(1, "fallback", "--yes")
    pair.wait({1: ("Normal", "Normal"), 2: ("Normal", "Normal")}, 20, "fallback")
    cu = pair.status(1)["pair"]["replication"]["catchup"]
    if cu["waits"] < 1 or cu["last_result"] != "caught-up":
        raise Fail(f"Taking Back did not wait for replication: {cu}")
    if "catchup: replication from the peer caught up" not in pair.log_text(1):
        raise Fail("node 1's log does not show the catch-up")
    log(f"Taking Back waited {cu['last_ms']} ms for applied >= {cu['last_target']}")
    pair.wait_converged("after fallback", CONVERGE_S)
    alice = await login(pair, "alice", 1)
    roster = await roster_of(alice)
    if jid(pair, "gina") not in roster or roster.get(jid(pair, "carol")) != "both":
        raise Fail(f"alice's roster on node 1 lacks the backup's change: {roster}")
    if await count_after(alice, "just-before-the-kill", settle=1.5):
        raise Fail("the message already delivered on node 2 came again on node 1")
    carol = await login(pair, "carol", 1)
    await wait_body(carol, "written-by-the-backup", 10, "carol on node 1")
    if await count_after(carol, "written-by-the-backup", settle=1.5) != 1:
        raise Fail(f"carol got the backup's message more than once: {carol.messages}")
    await alice.logout()
    await carol.logout()
    pair.wait_converged("end", CONVERGE_S)


def main():
    quiet_slixmpp()
    return run_pair_test("test_pair_replication", scenario, log)


if __name__ == "__main__":
    sys.exit(main())
