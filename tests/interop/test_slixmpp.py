#!/usr/bin/python3
"""Interop: real slixmpp clients against a one-node local group (contrib/local-group).

Two users, two resources each, all logging in with SCRAM-SHA-256 over STARTTLS:
  1. login: mechanism and TLS checked on every session;
  2. mutual subscription, each session sees every resource of the other user available;
  3. forking: a chat to a bare JID reaches both resources of the recipient;
  4. locking: once one resource replied, the next chat goes to that resource only;
  5. offline: chats to a user with no session are delivered at the next login, once, with
     a XEP-0203 delay stamp.
Uses DUET_BUILD (default build/) for the binaries.  Exit 0 pass, 1 fail, 77 skipped.
"""

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "lib"))

try:
    from xmpp_clients import (Client, XmppFailure, free_base_port, load_group_env,
                              quiet_slixmpp, srmctl, subscribe_mutually, wait_until)
except ImportError as e:  # python3-slixmpp missing: not this test's failure
    print(f"SKIP: {e} (contrib/install-deps test installs python3-slixmpp)")
    sys.exit(77)

STEP_TIMEOUT = 15     # seconds for any single expected event
QUIET_WINDOW = 2.0    # seconds during which an unexpected duplicate would have to show up
PSQL = shutil.which("psql") or "/usr/lib/postgresql/15/bin/psql"
PASSWORD = {"alice": "alice-secret-1", "bob": "bob-secret-2"}


def log(text):
    print(f"test_slixmpp: {text}", flush=True)


class Group:
    """A one-node local group in a temp dir, torn down by stop()."""

    def __init__(self, build):
        self.build = build
        self.dir = tempfile.mkdtemp(prefix="duet-interop.")
        self.env = None

    def start(self):
        base = free_base_port()
        cmd = [str(ROOT / "contrib" / "local-group"), "up", self.dir, "--nodes", "1",
               "--base-port", str(base), "--build", self.build]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if res.returncode != 0:
            raise XmppFailure(f"local-group up failed ({res.returncode}):\n"
                              f"{res.stdout}{res.stderr}")
        self.env = load_group_env(os.path.join(self.dir, "group.env"))

    def client(self, user, resource):
        e = self.env
        return Client(f"{user}@{e['DOMAIN']}/{resource}", PASSWORD[user], "127.0.0.1",
                      e["NODE1_XMPP_PORT"], e["TLS_CERT"], domain=e["DOMAIN"])

    def add_users(self):
        for user, password in PASSWORD.items():
            srmctl(self.build, self.env["NODE1_CTL"], "user", "add",
                   f"{user}@{self.env['DOMAIN']}", password)

    def log_tail(self, lines=40):
        path = os.path.join(self.dir, "node1", "srmd.log")
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return "(no srmd.log)"

    def stop(self, keep):
        subprocess.run([str(ROOT / "contrib" / "local-group"), "down", self.dir],
                       timeout=120, check=False)
        if keep:
            log(f"logs kept in {self.dir}")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


async def db_offline_count(group):
    """Rows in the node's offline store, read with psql over the group's socket."""
    e = group.env
    proc = await asyncio.create_subprocess_exec(
        PSQL, "-h", e["NODE1_PGHOST"], "-p", e["NODE1_PGPORT"], "-U", "duet", "-d", "duet",
        "-Atqc", "SELECT count(*) FROM offline_messages",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise XmppFailure(f"psql failed: {err.decode(errors='replace').strip()}")
    return int(out.decode().strip())


async def wait_db_count(group, want, what):
    deadline = time.monotonic() + STEP_TIMEOUT
    while True:
        have = await db_offline_count(group)
        if have == want:
            return
        if time.monotonic() >= deadline:
            raise XmppFailure(f"timed out after {STEP_TIMEOUT}s waiting for {what} "
                              f"(offline_messages has {have} rows, want {want})")
        await asyncio.sleep(0.05)


async def step_login(group, sessions):
    for c in sessions:
        await c.login(STEP_TIMEOUT)
        log(f"{c.boundjid.full}: logged in with {c.mechanism} over STARTTLS "
            f"({c.tls_version}) in {c.login_seconds * 1000:.0f} ms")


async def step_subscribe_and_presence(a1, a2, b1, b2):
    await subscribe_mutually(a1, b1, STEP_TIMEOUT)
    log("alice and bob subscribed to each other (roster 'both' on both sides)")
    for watcher in (a1, a2):
        for contact in (b1, b2):
            await wait_until(lambda w=watcher, c=contact: c.boundjid.full in w.available,
                             STEP_TIMEOUT,
                             f"{watcher.boundjid.full} to see {contact.boundjid.full} available")
    for watcher in (b1, b2):
        for contact in (a1, a2):
            await wait_until(lambda w=watcher, c=contact: c.boundjid.full in w.available,
                             STEP_TIMEOUT,
                             f"{watcher.boundjid.full} to see {contact.boundjid.full} available")
    log("every session sees both resources of the other user available")


async def step_forking(a1, b1, b2):
    bob = b1.boundjid.bare
    a1.send_message(mto=bob, mbody="fork-1", mtype="chat")
    for c in (b1, b2):
        await wait_until(lambda c=c: c.received("fork-1"), STEP_TIMEOUT,
                         f"{c.boundjid.full} to receive the chat sent to {bob}")
    log("forking: a chat to the bare JID reached both of bob's resources")


async def step_locking(a1, b1, b2):
    bob = b1.boundjid.bare
    b2.send_message(mto=a1.boundjid.full, mbody="reply-from-b2", mtype="chat")
    await wait_until(lambda: a1.received("reply-from-b2"), STEP_TIMEOUT,
                     "alice to receive bob/b2's reply")
    a1.send_message(mto=bob, mbody="locked-2", mtype="chat")
    await wait_until(lambda: b2.received("locked-2"), STEP_TIMEOUT,
                     "bob/b2 (the resource that replied) to receive the next chat")
    # Had the chat been forked, b1's copy was written before b2's arrived; a later marker
    # sent to b1 itself therefore arrives after it.
    a1.send_message(mto=b1.boundjid.full, mbody="marker-3", mtype="chat")
    await wait_until(lambda: b1.received("marker-3"), STEP_TIMEOUT,
                     "bob/b1 to receive a marker sent to its full JID")
    if b1.received("locked-2"):
        raise XmppFailure("locking: bob/b1 got the chat although bob/b2 had answered alice")
    log("locking: after bob/b2 replied, the next chat to bob went to bob/b2 only")


async def step_offline(group, a1, b1, b2):
    bob = b1.boundjid.bare
    for c in (b1, b2):
        await c.logout(STEP_TIMEOUT)
    await wait_until(lambda: not ({b1.boundjid.full, b2.boundjid.full} & a1.available),
                     STEP_TIMEOUT, "alice to see both of bob's resources go unavailable")
    log("bob went offline (alice saw both resources unavailable)")
    bodies = ["offline-1", "offline-2"]
    for body in bodies:
        a1.send_message(mto=bob, mbody=body, mtype="chat")
    # Storing is asynchronous: bob logs in only once the database holds both chats.
    await wait_db_count(group, len(bodies), "both chats stored as offline messages")

    b3 = group.client("bob", "b3")
    await b3.login(STEP_TIMEOUT)
    for body in bodies:
        await wait_until(lambda b=body: b3.received(b), STEP_TIMEOUT,
                         f"bob/b3 to receive '{body}' stored while bob was offline")
    first = [m for m in b3.messages if m.body in bodies]
    if [m.body for m in first] != bodies:
        raise XmppFailure(f"offline messages out of order: {first}")
    for m in first:
        if not m.delay_stamp:
            raise XmppFailure(f"offline message without a XEP-0203 delay stamp: {m}")
        if m.sender.split("/")[0] != a1.boundjid.bare:
            raise XmppFailure(f"offline message has the wrong sender: {m}")
    log(f"offline: bob got both chats at the next login, stamped {first[0].delay_stamp}")
    await wait_db_count(group, 0, "the delivered offline messages to be deleted")

    # Exactly once: nothing more for b3, and nothing for another login of bob.
    b4 = group.client("bob", "b4")
    await b4.login(STEP_TIMEOUT)
    await asyncio.sleep(QUIET_WINDOW)  # a duplicate has this long to appear
    dup3 = [m for m in b3.messages if m.body in bodies]
    dup4 = [m for m in b4.messages if m.body in bodies]
    if len(dup3) != len(bodies) or dup4:
        raise XmppFailure(f"offline messages delivered more than once: b3={dup3} b4={dup4}")
    await b3.logout(STEP_TIMEOUT)
    await b4.logout(STEP_TIMEOUT)
    b5 = group.client("bob", "b5")
    await b5.login(STEP_TIMEOUT)
    await asyncio.sleep(QUIET_WINDOW)
    if b5.received("offline-1") or b5.received("offline-2"):
        raise XmppFailure(f"offline messages delivered again at a later login: {b5.messages}")
    await b5.logout(STEP_TIMEOUT)
    log("offline: delivered exactly once (not to a second session, not at a later login)")


async def scenario(group):
    a1, a2 = group.client("alice", "a1"), group.client("alice", "a2")
    b1, b2 = group.client("bob", "b1"), group.client("bob", "b2")
    sessions = [a1, a2, b1, b2]
    try:
        await step_login(group, sessions)
        await step_subscribe_and_presence(a1, a2, b1, b2)
        await step_forking(a1, b1, b2)
        await step_locking(a1, b1, b2)
        await step_offline(group, a1, b1, b2)
        errors = [e for c in sessions for e in c.errors]
        if errors:
            raise XmppFailure("unexpected error stanzas: " + "; ".join(errors))
    finally:
        for c in sessions:
            c.drop()


def main():
    build = os.path.abspath(os.environ.get("DUET_BUILD", str(ROOT / "build")))
    missing = [b for b in ("srmd", "srmctl", "presenced")
               if not os.access(os.path.join(build, "bin", b), os.X_OK)]
    if missing:
        log(f"FAIL: not built in {build}: {', '.join(missing)}")
        return 1
    quiet_slixmpp(verbose=bool(os.environ.get("DUET_TEST_VERBOSE")))
    group = Group(build)
    ok = False
    try:
        group.start()
        group.add_users()
        log(f"group up in {group.dir}, users alice and bob provisioned")
        asyncio.run(scenario(group))
        ok = True
    except XmppFailure as e:
        log(f"FAIL: {e}")
    except Exception:  # a bug in the test or in slixmpp's handling of our server
        log("FAIL: unexpected exception:\n" + traceback.format_exc())
    finally:
        if not ok and group.env is not None:
            log("last lines of srmd.log:\n" + group.log_tail())
        group.stop(keep=not ok)
    if ok:
        log("PASS")
        return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
