#!/usr/bin/env python3
"""A planned move loses nothing the client sent before it saw the stream error.

When a node gives a home node back (fallback, manual failover, taking back), its engine
ends each moved session with see-other-host.  The client keeps writing until that error
reaches it: RFC 6120 §4.4 says the side that closes keeps reading and processes what the
other side sent until it closes too.  This test makes that window wide on purpose: alice
(home node 1) is served by node 2 after a manual failover and sends bob (home node 2,
online at node 2) a numbered chat message every 20 ms without reading; after the
fallback, once node 2's stream error is waiting in her socket, she sends 10 more before
she reads it, then closes her stream.  bob must receive every message whose write
succeeded, exactly once.  (Before the engine drained released sessions, the ones written
after the error were dropped with the connection.)
Uses DUET_BUILD (default build/).  Exit 0 pass, 1 fail, 77 skipped.
"""

import select
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "lib"))

from pair_harness import Fail, run_pair_test  # noqa: E402
from rawxmpp import RawClient, StreamClosed, XmppError, esc, local  # noqa: E402

T0 = time.monotonic()
PASSWORD = {"alice": "drain-alice-1", "bob": "drain-bob-1"}
SEND_EVERY_S = 0.02
AFTER_ERROR = 10        # messages written once the error is in alice's socket, unread
RELEASE_WAIT_S = 20     # the release is spread over the re-login window


def log(text):
    print(f"[{time.monotonic() - T0:6.2f}s] test_release_drain: {text}", flush=True)


def client(pair, user, node):
    env = dict(pair.env)
    env["NODE1_XMPP_PORT"] = str(pair.xmpp_port(node))
    c = RawClient(env)
    c.login(user, PASSWORD[user], resource="drain")
    return c


def readable(c):
    """The server wrote something alice has not read (TLS buffered, or in the socket)."""
    pending = getattr(c.sock, "pending", lambda: 0)()
    return pending > 0 or bool(select.select([c.sock], [], [], 0)[0])


def alice_sends(alice, bob_jid):
    """Write numbered messages until the server's stream error is waiting plus
    AFTER_ERROR more; returns (the numbers written, how many came after the error)."""
    written, after, n = [], 0, 0
    deadline = time.monotonic() + RELEASE_WAIT_S
    while after < AFTER_ERROR:
        if time.monotonic() > deadline:
            raise Fail(f"no stream error from node 2 within {RELEASE_WAIT_S} s of the "
                       "fallback")
        if after or readable(alice):
            after += 1
        n += 1
        try:
            alice.send(f"<message to='{esc(bob_jid)}' type='chat' id='d{n}'>"
                       f"<body>{n}</body></message>")
        except OSError as err:  # the server closed: what follows was never written
            log(f"alice: write {n} failed ({err}); {after} written after the error")
            break
        written.append(n)
        time.sleep(SEND_EVERY_S)
    return written, after


def run(pair):
    pair.wait_normal(30, "up")
    pair.ctl(1, "user", "add", "alice", PASSWORD["alice"])
    pair.ctl(2, "user", "add", "bob", PASSWORD["bob"])
    domain = pair.env["DOMAIN"]
    listed = pair.ctl(1, "user", "list").stdout.split()
    if listed != [f"alice@{domain}", "1", f"bob@{domain}", "2"]:
        raise Fail(f"homes: {listed}, want alice on 1 and bob on 2")
    pair.ctl(1, "failover", "--yes")
    pair.wait({1: ("Idle", "On Admin Request"),
               2: ("Running in Backup Mode", "On Admin Request")}, 20,
              "manual failover of node 1")
    bob = client(pair, "bob", 2)
    bob.send("<presence/>")
    alice = client(pair, "alice", 2)
    log("alice (home 1) and bob (home 2) logged in at node 2")
    pair.ctl(1, "fallback", "--yes")
    written, after = alice_sends(alice, f"bob@{domain}")
    try:
        cond = alice.stream_error or alice.expect_stream_error(10)
    except XmppError as err:
        raise Fail(f"alice: no stream error after the fallback ({err})") from None
    if cond != "see-other-host":
        raise Fail(f"alice's session ended with {cond}, wanted see-other-host")
    try:
        alice.send("</stream:stream>")
    except OSError:
        pass
    alice.close()
    log(f"alice wrote {len(written)} messages, {after} of them after node 2's "
        "see-other-host reached her socket, then closed")
    got = {}
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and len(got) < len(written):
        try:
            bob.pump(0.5)
        except StreamClosed as err:
            raise Fail(f"bob's session ended: {err}") from None
        for el in list(bob.stanzas):
            if local(el) != "message":
                continue
            bob.stanzas.remove(el)
            body = el.find("{jabber:client}body")
            if body is not None and (body.text or "").isdigit():
                got[int(body.text)] = got.get(int(body.text), 0) + 1
    bob.close()
    missing = [n for n in written if n not in got]
    twice = [n for n, k in got.items() if k > 1]
    if missing or twice:
        raise Fail(f"bob: {len(missing)} of alice's {len(written)} messages missing "
                   f"{missing[:20]}, {len(twice)} received twice {twice[:20]}")
    log(f"bob received all {len(written)} exactly once")
    pair.wait_normal(20, "fallback complete")


def main():
    return run_pair_test("test_release_drain", run, log)


if __name__ == "__main__":
    sys.exit(main())
