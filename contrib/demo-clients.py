#!/usr/bin/python3
"""The demo's clients: alice and bob (real slixmpp clients) log in with SCRAM-SHA-256 over
STARTTLS, subscribe to each other, see each other's presence and chat, while a narrative
with timings is printed.  Run by contrib/demo; exits 1 as soon as a step fails.

On a pair (group.env says NODES=2, alice lives on node 1 and bob on node 2) it then shows
the product's main job: node 1's srmd is killed with SIGKILL (a crash: its presenced goes
down with it), both nodes' HA states are polled and printed as they change, alice's client
notices the loss and finds node 2 (following see-other-host when it gets one, else trying
the other node of group.env), the two chat again, node 1 is started again, the operator
runs `srmctl fallback`, alice's session is sent home with see-other-host, and a timeline
of the whole thing closes the run.

usage: demo-clients.py --env DIR/group.env --alice-password P --bob-password P
                       [--alice-node N] [--bob-node N] [--group-dir DIR] [--build DIR]
                       [--verbose]
"""

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

# The clients are shared with the interop tests (tests/lib/xmpp_clients.py).
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "lib"))
from xmpp_clients import (Client, Narrator, XmppFailure, load_group_env,  # noqa: E402
                          quiet_slixmpp, subscribe_mutually, wait_until)

TIMEOUT = 15          # seconds for any one step
ROUND_TRIPS = 20      # ping-pong chats measured after the greeting
POLL_S = 0.1          # how often the state watcher asks both srmds
ATTEMPT_S = 5         # one login attempt while roaming
RETRY_PAUSE_S = 0.25  # between failed login attempts while roaming (a client's back-off)
ROAM_S = 20           # how long alice's client keeps looking for a node that serves her
SRMD_DOWN = ("(srmd down)", "-")


def ms(seconds):
    return f"{seconds * 1000:.1f} ms"


async def chat(narrator, sender, receiver, body, quiet=False):
    """sender sends body to receiver's bare JID; returns the delivery time in seconds."""
    t0 = time.monotonic()
    sender.send_message(mto=receiver.boundjid.bare, mbody=body, mtype="chat")
    got = await wait_until(lambda: receiver.received(body), TIMEOUT,
                           f"{receiver.boundjid.bare} to receive {body!r}")
    took = got[0].at - t0
    if not quiet:
        narrator.say(f"{sender.boundjid.user} -> {receiver.boundjid.user}: {body!r} "
                     f"(delivered in {ms(took)})")
    return took


def check_errors(*clients):
    errors = [e for c in clients for e in c.errors]
    if errors:
        raise XmppFailure("error stanzas received: " + "; ".join(errors))


async def greet(narrator, alice, bob):
    """Log in, subscribe mutually, see presence, chat: the one-node demo, and the start of
    the pair's."""
    for c in (alice, bob):
        await c.login(TIMEOUT)
        narrator.say(f"{c.boundjid.user} logged in as {c.boundjid.full}: {c.mechanism} "
                     f"over {c.tls_version}, {ms(c.login_seconds)} from connect to session")

    t0 = time.monotonic()
    narrator.say("alice asks to see bob's presence; bob approves and asks back")
    await subscribe_mutually(alice, bob, TIMEOUT)
    narrator.say(f"both rosters now say 'both' ({ms(time.monotonic() - t0)})")

    await wait_until(lambda: bob.boundjid.full in alice.available, TIMEOUT,
                     "alice to see bob online")
    narrator.say("alice sees bob online")
    await wait_until(lambda: alice.boundjid.full in bob.available, TIMEOUT,
                     "bob to see alice online")
    narrator.say("bob sees alice online")

    await chat(narrator, alice, bob, "Hi Bob! Duet here, over TLS.")
    await chat(narrator, bob, alice, "Hi Alice, loud and clear.")

    times = await round_trips(narrator, alice, bob, keep=True)
    narrator.say(f"{ROUND_TRIPS} chat round trips alice -> bob -> alice: median "
                 f"{ms(statistics.median(times))}, max {ms(max(times))}")


async def round_trips(narrator, alice, bob, keep=False):
    """ROUND_TRIPS ping-pongs; their times (keep) or their median, in seconds."""
    tag = f"{time.monotonic():.3f}"  # bodies unique to this series
    times = []
    for i in range(ROUND_TRIPS):
        times.append(await chat(narrator, alice, bob, f"ping {i} {tag}", quiet=True) +
                     await chat(narrator, bob, alice, f"pong {i} {tag}", quiet=True))
    return times if keep else statistics.median(times)


async def run_single(args, env, narrator):
    alice = make_client(narrator, env, "alice", args.alice_password, args.alice_node)
    bob = make_client(narrator, env, "bob", args.bob_password, args.bob_node)
    try:
        await greet(narrator, alice, bob)
        t0 = time.monotonic()
        narrator.say("bob logs out")
        await bob.logout(TIMEOUT)
        await wait_until(lambda: bob.boundjid.full not in alice.available, TIMEOUT,
                         "alice to see bob go offline")
        narrator.say(f"alice saw bob go offline ({ms(time.monotonic() - t0)})")
        await alice.logout(TIMEOUT)
        narrator.say("alice logs out")
        check_errors(alice, bob)
    finally:
        alice.drop()
        bob.drop()


def make_client(narrator, env, user, password, node, resource="demo"):
    cert, domain = env["TLS_CERT"], env["DOMAIN"]
    port = env[f"NODE{node}_XMPP_PORT"]
    narrator.say(f"{user}@{domain}/{resource} connects to 127.0.0.1:{port} (node {node}), "
                 f"STARTTLS required, trusting only {cert}")
    return Client(f"{user}@{domain}/{resource}", password, "127.0.0.1", port, cert, domain)


class PairNarrator(Narrator):
    """Adds the time since the fault (T+...) once there is one; thread-safe, since the state
    watcher prints from its own thread."""

    def __init__(self):
        super().__init__()
        self.fault_at = None
        self.lock = threading.Lock()

    def since_fault(self, at=None):
        return (at if at is not None else time.monotonic()) - self.fault_at

    def say(self, text):
        with self.lock:
            if self.fault_at is None:
                super().say(text)
            else:
                super().say(f"T{self.since_fault():+7.3f}s  {text}")


class Timeline:
    """The moments the closing table shows, each recorded once (the first time)."""

    ORDER = [
        ("fault", "node 1's srmd killed with SIGKILL (its presenced goes down with it)"),
        ("alice lost", "alice's client notices its connection is gone"),
        ("detected", "node 2 notices (leaves Normal: Peer Down)"),
        ("peer serving", "node 2 Running in Backup Mode, serving home nodes 1 and 2"),
        ("alice back", "alice logged in again, on node 2"),
        ("messages", "alice and bob exchanged messages again"),
        ("repaired", "node 1 restarted: Failed Over, engine and database up"),
        ("fallback", "operator: srmctl fallback on node 1"),
        ("fallback done", "both nodes Normal"),
        ("alice home", "alice logged in on node 1 again (see-other-host from node 2)"),
        ("final messages", "alice and bob exchanged messages from their home nodes"),
    ]

    def __init__(self):
        self.at = {}
        self.lock = threading.Lock()

    def mark(self, key, at=None):
        with self.lock:
            if key not in self.at:
                self.at[key] = at if at is not None else time.monotonic()

    def has(self, key):
        with self.lock:
            return key in self.at

    def print(self, narrator):
        """The table, in the order things happened (a step that never happened last)."""
        rows = sorted(self.ORDER, key=lambda kw: (kw[0] not in self.at,
                                                  self.at.get(kw[0], 0)))
        print("\ntimeline (T = time since the fault; states polled every "
              f"{int(POLL_S * 1000)} ms):", flush=True)
        print(f"  {'T':>9}  {'step':<15} what", flush=True)
        for key, what in rows:
            at = self.at.get(key)
            t = f"{narrator.since_fault(at):+8.3f}s" if at is not None else "    (none)"
            print(f"  {t:>9}  {key:<15} {what}", flush=True)
        print(flush=True)


class Pair:
    """The two nodes as srmctl and contrib/local-group see them."""

    def __init__(self, env, build, group_dir):
        self.env = env
        self.build = build
        self.group_dir = group_dir

    def srmctl(self, node, *args, check=True):
        cmd = [os.path.join(self.build, "bin", "srmctl"), "-s", self.env[f"NODE{node}_CTL"],
               *args]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
        if check and res.returncode != 0:
            raise XmppFailure(f"srmctl {' '.join(args)} on node {node} exited "
                              f"{res.returncode}: {(res.stderr or res.stdout).strip()}")
        return res

    def status(self, node):
        """srmctl status --json of node, or None when its srmd does not answer."""
        try:
            res = self.srmctl(node, "status", "--json", check=False)
        except subprocess.TimeoutExpired:
            return None
        if res.returncode != 0:
            return None
        try:
            return json.loads(res.stdout)
        except ValueError:
            return None

    def local_group(self, *args):
        cmd = [str(ROOT / "contrib" / "local-group"), *args, "--build", self.build]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if res.returncode != 0:
            raise XmppFailure(f"local-group {' '.join(args)} failed ({res.returncode}): "
                              f"{(res.stdout + res.stderr).strip()}")

    def srmd_pid(self, node):
        with open(self.env[f"NODE{node}_PIDFILE"], encoding="utf-8") as f:
            return int(f.read().strip())

    def addr(self, node):
        return ("127.0.0.1", int(self.env[f"NODE{node}_XMPP_PORT"]))

    def node_of(self, addr):
        for n in (1, 2):
            if self.addr(n) == addr:
                return n
        return None


def view(st):
    """What the watcher compares and prints of one node's status."""
    if st is None:
        return SRMD_DOWN + ((), None)
    me = [n for n in st["pair"]["nodes"] if n["self"]]
    serve = tuple(me[0]["serve"]) if me else ()
    return (st["state"], st["reason"], serve, services_up(st))


def describe(v):
    state, reason, serve, services = v
    if (state, reason) == SRMD_DOWN:
        return "srmd not answering"
    homes = ",".join(str(h) for h in serve) or "none"
    return (f"{state} ({reason}), serves home nodes {homes}, critical services "
            f"{'up' if services else 'DOWN'}")


class StateWatcher(threading.Thread):
    """Polls `srmctl status --json` on both nodes every POLL_S and prints every change;
    marks the timeline moments that are states."""

    def __init__(self, pair, narrator, timeline):
        super().__init__(daemon=True)
        self.pair = pair
        self.narrator = narrator
        self.timeline = timeline
        self.last = {}
        self.stop_event = threading.Event()
        self.ready = threading.Event()

    def run(self):
        while not self.stop_event.is_set():
            for n in (1, 2):
                v = view(self.pair.status(n))
                if self.last.get(n) != v:
                    self.last[n] = v
                    self.narrator.say(f"state  node {n}: {describe(v)}")
                    self.note(n, v)
            self.ready.set()
            self.stop_event.wait(POLL_S)

    def note(self, n, v):
        if self.narrator.fault_at is None:
            return
        state, _reason, serve, services = v
        if n == 2 and state != "Normal":
            self.timeline.mark("detected")
        if n == 2 and state == "Running in Backup Mode" and set(serve) == {1, 2}:
            self.timeline.mark("peer serving")
        if n == 1 and state == "Failed Over" and services:
            self.timeline.mark("repaired")
        if (self.timeline.has("fallback") and self.last.get(1, SRMD_DOWN)[:2] ==
                ("Normal", "Normal") and self.last.get(2, SRMD_DOWN)[:2] ==
                ("Normal", "Normal")):
            self.timeline.mark("fallback done")

    def state(self, n):
        return self.last.get(n, SRMD_DOWN + ((), None))

    def stop(self):
        self.stop_event.set()
        self.join(5)


def services_up(st):
    if not st:
        return False
    me = [x for x in st["pair"]["nodes"] if x["self"]]
    return bool(me) and me[0]["critical_services"]["engine"] and \
        me[0]["critical_services"]["database"]


def track_session(client):
    """Record when the client's connection went away and any see-other-host it was given
    (slixmpp is told not to follow redirects itself: we follow them, to the exact
    host:port, and narrate it)."""
    client.max_redirects = -1
    client.lost_at = None
    client.redirect = None

    def on_disconnected(_reason=None):
        if client.lost_at is None:
            client.lost_at = time.monotonic()

    def on_stream_error(error):
        if error["condition"] == "see-other-host":
            client.redirect = error["see_other_host"] or None

    client.add_event_handler("disconnected", on_disconnected)
    client.add_event_handler("stream_error", on_stream_error)
    return client


def parse_hostport(text):
    """'127.0.0.1:15232' or '[::1]:15232' -> (host, port), None if malformed."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return (host, int(port))


async def attempt_login(pair, user, password, addr):
    """One login attempt at addr. Returns (client or None, what happened)."""
    env = pair.env
    c = track_session(Client(f"{user}@{env['DOMAIN']}/demo", password, addr[0], addr[1],
                             env["TLS_CERT"], env["DOMAIN"]))
    c.begin_login()
    try:
        await wait_until(lambda: (c.session_started or c.stream_error or c.connect_error or
                                  c.auth_failed or c.tls_error), ATTEMPT_S, "an answer")
    except XmppFailure:
        c.drop()
        return None, "no answer"
    if c.session_started and not c.stream_error:
        if c.mechanism != "SCRAM-SHA-256" or not c.tls_active:
            c.drop()
            raise XmppFailure(f"{user}: logged in with {c.mechanism}, TLS {c.tls_active}")
        return c, "logged in"
    c.drop()
    if c.stream_error == "see-other-host":
        # The stream error is parsed just before the disconnect; give the handler its turn.
        await asyncio.sleep(0)
        return None, f"see-other-host {c.redirect}"
    if c.stream_error:
        return None, f"stream error {c.stream_error}"
    if c.auth_failed or c.tls_error:
        raise XmppFailure(f"{user}: {c.auth_failed or c.tls_error}")
    return None, f"connection failed ({c.connect_error})"


async def roam(narrator, pair, user, password, addr, why):
    """What a client does when its session ends: log in again where it is sent
    (see-other-host), else at its last server, else at the other node of the group,
    pausing RETRY_PAUSE_S after a failure.  Returns the new client."""
    deadline = time.monotonic() + ROAM_S
    tries = 0
    redirects = 0  # in a row: two nodes sending the client to each other get a pause too
    while time.monotonic() < deadline:
        tries += 1
        node = pair.node_of(addr)
        where = f"node {node} ({addr[0]}:{addr[1]})" if node else f"{addr[0]}:{addr[1]}"
        c, what = await attempt_login(pair, user, password, addr)
        if c:
            narrator.say(f"{user}: try {tries} at {where}: {what} as {c.boundjid.full}")
            return c, node
        nxt = None
        if what.startswith("see-other-host"):
            nxt = parse_hostport(what.split(" ", 1)[1])
        if nxt is None:
            other = 3 - node if node else 1
            nxt = pair.addr(other)
            verdict = f"{what} -> trying node {other}"
        else:
            verdict = f"{what} -> following it"
        narrator.say(f"{user}: try {tries} at {where}: {verdict}")
        redirects = redirects + 1 if what.startswith("see-other-host") else 0
        if redirects != 1:
            await asyncio.sleep(RETRY_PAUSE_S)
        addr = nxt
    raise XmppFailure(f"{user} found no node serving her within {ROAM_S}s ({why})")


async def await_state(watcher, want, timeout, what):
    """Wait until want(view), view(n) being node n's (state, reason, serve, services) as
    the watcher last saw it."""
    deadline = time.monotonic() + timeout
    while not want(watcher.state):
        if time.monotonic() > deadline:
            raise XmppFailure(f"{what}: not reached in {timeout}s; node 1: "
                              f"{describe(watcher.state(1))}; node 2: "
                              f"{describe(watcher.state(2))}")
        await asyncio.sleep(0.05)


async def run_pair(args, env, narrator):
    pair = Pair(env, args.build, args.group_dir)
    timeline = Timeline()
    alice = track_session(make_client(narrator, env, "alice", args.alice_password, 1))
    bob = track_session(make_client(narrator, env, "bob", args.bob_password, 2))
    clients = [alice, bob]
    watcher = StateWatcher(pair, narrator, timeline)
    try:
        await greet(narrator, alice, bob)
        narrator.say("alice is on node 1 and bob on node 2: their presence and messages "
                     "cross between the engines over the route link")

        narrator.say("watching both nodes' HA state (srmctl status --json every "
                     f"{int(POLL_S * 1000)} ms; each change is printed)")
        watcher.start()
        while not watcher.ready.wait(0.05):
            await asyncio.sleep(0.05)

        # The fault: SIGKILL of node 1's srmd.  presenced exits as soon as its control
        # socket to srmd closes, so node 1's clients lose their connections at once and
        # node 2 sees only silence on the peer link (Peer Down after its dead timeout).
        pid = pair.srmd_pid(1)
        narrator.say(f"FAULT: kill -9 of node 1's srmd (pid {pid}); its presenced goes "
                     "down with it: node 1 crashes. (The other fault, presenced killed "
                     "again and again until the Critical Service Down Delay passes, is in "
                     "tests/integration/test_pair_failover.py)")
        narrator.fault_at = time.monotonic()
        timeline.mark("fault", narrator.fault_at)
        os.kill(pid, signal.SIGKILL)

        await wait_until(lambda: alice.lost_at, TIMEOUT, "alice's client to notice the loss")
        timeline.mark("alice lost", alice.lost_at)
        await asyncio.sleep(0)
        how = f"stream error {alice.stream_error}" if alice.stream_error else "closed"
        narrator.say(f"alice's client: connection to node 1 lost ({how}); looking for a "
                     "server")
        await wait_until(lambda: alice.boundjid.full not in bob.available, TIMEOUT,
                         "bob to see alice go offline")
        narrator.say("bob sees alice go offline")

        alice.drop()
        alice, node = await roam(narrator, pair, "alice", args.alice_password, pair.addr(1),
                                 "after the crash of node 1")
        clients.append(alice)
        if node != 2:
            raise XmppFailure(f"alice logged in on node {node}, expected node 2")
        timeline.mark("alice back")
        if not timeline.has("peer serving"):
            await await_state(watcher, lambda s: s(2)[0] == "Running in Backup Mode",
                              5, "node 2 serving everyone")
        carried = alice.roster_state(bob.boundjid.bare)
        narrator.say(f"alice's roster on node 2 shows bob as '{carried}'")
        if carried == "both":
            narrator.say("carried over to node 2: her account and her roster (replicated)")
            await wait_until(lambda: alice.boundjid.full in bob.available, TIMEOUT,
                             "bob to see alice back online")
            narrator.say("bob sees alice back online")
            await wait_until(lambda: bob.boundjid.full in alice.available, TIMEOUT,
                             "alice to see bob online from node 2")
            narrator.say("alice sees bob online")
        else:
            narrator.say("carried over to node 2: alice's account (srmctl writes both "
                         "databases); bob's roster lives there anyway")
            narrator.say("NOT carried over yet: alice's roster. It is in node 1's database "
                         "only until database replication lands, so on node 2 she has no "
                         "contacts: bob gets no presence from her, she none from him")
            narrator.say("messages need no roster:")
        await chat(narrator, alice, bob, "Bob, node 1 crashed; I'm on node 2 now.")
        await chat(narrator, bob, alice, "Got you, Alice. Still here.")
        timeline.mark("messages")
        narrator.say("bob sees alice back: her message reached him through node 2")
        narrator.say(f"node 2 now serves both: {ROUND_TRIPS} chat round trips, "
                     f"median {ms(await round_trips(narrator, alice, bob))}")

        narrator.say("REPAIR: contrib/local-group start (node 1's srmd, with its presenced)")
        pair.local_group("start", args.group_dir, "1")
        await await_state(watcher, lambda s: s(1)[0] == "Failed Over" and s(1)[3], TIMEOUT,
                          "node 1 Failed Over with its services up")
        timeline.mark("repaired")
        narrator.say("node 1 is back and ready; it serves nobody until the operator says so")

        narrator.say("OPERATOR: srmctl fallback (on node 1): node 1 takes its users back")
        timeline.mark("fallback")
        out = pair.srmctl(1, "fallback", "--yes").stdout.strip()
        if out:
            narrator.say(f"srmctl: {out}")

        await wait_until(lambda: alice.lost_at, TIMEOUT,
                         "node 2 to release alice's session")
        narrator.say(f"alice's session on node 2 ended: "
                     f"{alice.stream_error or 'connection closed'}"
                     f"{' ' + alice.redirect if alice.redirect else ''}")
        first = parse_hostport(alice.redirect) if alice.redirect else None
        alice.drop()
        alice, node = await roam(narrator, pair, "alice", args.alice_password,
                                 first or pair.addr(2), "after the fallback")
        clients.append(alice)
        if node != 1:
            raise XmppFailure(f"alice logged in on node {node} after the fallback, "
                              "expected node 1")
        timeline.mark("alice home")
        await await_state(watcher, lambda s: s(1)[:2] == ("Normal", "Normal") and
                          s(2)[:2] == ("Normal", "Normal"), TIMEOUT, "both nodes Normal")
        timeline.mark("fallback done")

        await wait_until(lambda: bob.boundjid.full in alice.available, TIMEOUT,
                         "alice (home again, her roster there) to see bob online")
        narrator.say("alice sees bob online (her roster is home with her)")
        await wait_until(lambda: alice.boundjid.full in bob.available, TIMEOUT,
                         "bob to see alice online on node 1")
        narrator.say("bob sees alice online again")
        await chat(narrator, alice, bob, "Home on node 1 again.")
        await chat(narrator, bob, alice, "Welcome back!")
        timeline.mark("final messages")

        watcher.stop()
        timeline.print(narrator)
        pair_line = "; ".join(f"node {n}: {describe(watcher.state(n))}" for n in (1, 2))
        narrator.say(f"final: {pair_line}")

        await bob.logout(TIMEOUT)
        await alice.logout(TIMEOUT)
        narrator.say("alice and bob log out")
        check_errors(*clients)
    finally:
        watcher.stop_event.set()
        for c in clients:
            c.drop()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", required=True, help="group.env written by contrib/local-group")
    p.add_argument("--alice-password", required=True)
    p.add_argument("--bob-password", required=True)
    p.add_argument("--alice-node", type=int, default=1)
    p.add_argument("--bob-node", type=int, default=1)
    p.add_argument("--group-dir", help="the group's directory (pair: to restart node 1)")
    p.add_argument("--build", default=os.environ.get("DUET_BUILD", str(ROOT / "build")),
                   help="the build holding bin/srmctl")
    p.add_argument("--verbose", action="store_true", help="show slixmpp's debug log")
    args = p.parse_args()
    quiet_slixmpp(args.verbose)
    narrator = PairNarrator()
    try:
        env = load_group_env(args.env)
        pair = env.get("NODES") == "2" and args.bob_node == 2
        if pair:
            if not args.group_dir:
                raise XmppFailure("--group-dir is needed on a pair")
            asyncio.run(run_pair(args, env, narrator))
        else:
            asyncio.run(run_single(args, env, narrator))
    except (XmppFailure, OSError, KeyError, subprocess.SubprocessError) as e:
        narrator.say(f"FAILED: {e}")
        return 1
    except KeyboardInterrupt:
        narrator.say("interrupted")
        return 130
    narrator.say("all steps passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
