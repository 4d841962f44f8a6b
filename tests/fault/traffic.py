"""Clients of the fault scenarios: real XMPP sessions (tests/lib/xmpp_clients.Client) on both
nodes, messaging all the time, and a ledger of every message by id.

Each user has one session that a Roamer keeps online the way a real client does: when the
session ends it logs in again where the server sent it (see-other-host), else at the node
it was on, else at the other node, pausing briefly between failed attempts.

Each user sends a chat message every `interval` seconds to the next other user in turn,
with a unique id as body, followed by an XEP-0199 ping to the server on the same stream.
The engine handles a stream's stanzas in order, so the ping's answer means the message was
taken (routed, forwarded or stored): the message is then *confirmed* and must reach its
recipient exactly once.  A message whose session died before the answer is *in doubt* (the
server may never have read it): it may arrive at most once.  An error bounce, a message
arriving twice, at the wrong user, or never arriving while confirmed, is a failure.
Messages for a user who was not reachable are stored offline and delivered at the next
login: `settle()` logs every user in again at the end to collect them.

The clients run on an asyncio loop in a thread of their own; the scenario code (blocking
srmctl calls, waits) calls the methods below from the main thread.
"""

import asyncio
import collections
import datetime
import threading
import time

from xmpp_clients import Client, XmppFailure, wait_until

ATTEMPT_S = 10.0       # one login attempt
RETRY_PAUSE_S = 0.3    # after a failed attempt (not after a first redirect)
PING_TIMEOUT_S = 15.0  # generous: sanitizer builds on a loaded 2-core machine
DELAY_NS = "{urn:xmpp:delay}delay"


class Account:
    def __init__(self, name, password, home, domain):
        self.name = name
        self.password = password
        self.home = home
        self.bare = f"{name}@{domain}"


class Sent:
    """One message: who sent it to whom, when, and what the server said (status: pending
    until the ping's answer, then confirmed or doubt)."""

    def __init__(self, mid, sender, rcpt, status="pending"):
        self.mid = mid
        self.sender = sender  # Account
        self.rcpt = rcpt      # Account
        self.status = status
        self.t = time.monotonic()
        self.at = wall_clock()

    def __str__(self):
        return f"{self.mid} (sent {self.at}) from {self.sender.name} to {self.rcpt.name}"


class Ledger:
    """Every message sent (id -> Sent) and every arrival; probes are messages to a user who
    stays offline (their arrival is checked in the databases, not here)."""

    def __init__(self):
        self.sent = {}
        self.probes = {}
        self.arrivals = collections.defaultdict(list)  # id -> [(user, delayed)]
        self.strangers = []                             # bodies nobody sent
        self.bounces = {}                               # id -> error condition

    def problems(self):
        """[(kind, text, Sent or None)], kind one of lost, bounced, duplicate, wrong-user,
        pending, stranger; and the count of messages per status."""
        out = []
        counts = collections.Counter()
        for mid, m in list(self.sent.items()) + list(self.probes.items()):
            got = self.arrivals.get(mid, [])
            counts[m.status] += 1
            wrong = [u for u, _ in got if u != m.rcpt.name]
            if wrong:
                out.append(("wrong-user", f"{m}: arrived at {wrong}", m))
            if mid in self.bounces:
                out.append(("bounced", f"{m}: bounced with {self.bounces[mid]}", m))
            elif mid in self.probes:
                pass
            elif m.status == "confirmed" and len(got) != 1:
                out.append(("lost" if not got else "duplicate",
                            f"{m}: confirmed, arrived {len(got)} times", m))
            elif m.status == "doubt" and len(got) > 1:
                out.append(("duplicate", f"{m}: in doubt, arrived {len(got)} times", m))
            elif m.status == "pending":
                out.append(("pending", f"{m}: still waiting for the server's answer", m))
        out += [("stranger", f"message nobody sent: {b!r}", None) for b in self.strangers]
        out += [("bounced", f"{mid}: bounced with {cond} (not a message of this scenario)",
                 None) for mid, cond in self.bounces.items()
                if mid not in self.sent and mid not in self.probes]
        return out, counts

    def missing_for(self, user):
        return [mid for mid, m in self.sent.items()
                if m.rcpt.name == user and m.status == "confirmed" and not self.arrivals.get(mid)]


class Roamer:
    """One user's session, kept online (see the module comment)."""

    def __init__(self, world, account):
        self.world = world
        self.account = account
        self.client = None
        self.node = None
        self.next_addr = world.pair.addr(account.home)
        self.paused = False
        self.logins = []  # (monotonic time, node, how)
        self.task = None
        self.sender = None
        self.seq = 0

    def online(self):
        c = self.client
        return bool(c and c.session_started and c.transport and not c.stream_error
                    and c.disconnects == 0)

    def _new_client(self, addr, resource="main"):
        env = self.world.pair.env
        c = Client(f"{self.account.bare}/{resource}", self.account.password, addr[0], addr[1],
                   env["TLS_CERT"], env["DOMAIN"])
        c.max_redirects = -1  # we follow see-other-host ourselves, to the exact address
        c.register_plugin("xep_0199")
        c.redirect = None

        def on_stream_error(error):
            if error["condition"] == "see-other-host":
                c.redirect = error["see_other_host"] or None

        c.add_event_handler("stream_error", on_stream_error)
        c.add_event_handler("message", lambda msg: self.world.on_message(self.account, msg))
        return c

    async def _attempt(self, addr):
        """One login at addr: (client or None, what happened, (host, port) it was sent to
        with see-other-host or None)."""
        c = self._new_client(addr)
        c.begin_login()
        try:
            await wait_until(lambda: (c.session_started or c.stream_error or c.connect_error
                                      or c.auth_failed or c.tls_error), ATTEMPT_S, "an answer")
        except XmppFailure:
            drop(c)
            return None, "no answer", None
        if c.session_started and not c.stream_error:
            return c, "logged in", None
        drop(c)
        if c.auth_failed or c.tls_error:
            return None, c.auth_failed or c.tls_error, None
        if c.stream_error == "see-other-host":
            await asyncio.sleep(0)  # the handler runs just before the disconnect
            return None, f"see-other-host {c.redirect}", parse_hostport(c.redirect or "")
        if c.stream_error:
            return None, f"stream error {c.stream_error}", None
        return None, f"connection failed ({c.connect_error})", None

    async def run(self):
        try:
            await self._run()
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - a bug here must fail the scenario
            self.world.fatal.append(f"{self.account.name}: session keeper crashed: {e!r}")
            raise

    async def _run(self):
        redirects = 0
        while not self.world.closing:
            if self.online() or self.paused:
                await asyncio.sleep(0.05)
                continue
            if self.client is not None:  # the session ended
                old = self.client
                self.client = None
                self.world.note(f"{self.account.name}: session at node {self.node} ended "
                                f"({old.stream_error or 'connection closed'})")
                drop(old)
                target = parse_hostport(old.redirect or "") if old.redirect else None
                self.next_addr = target or self.next_addr
            addr = self.next_addr
            node = self.world.pair.node_of(addr)
            c, what, target = await self._attempt(addr)
            if c:
                self.client, self.node = c, node
                self.logins.append((time.monotonic(), node, what))
                self.world.note(f"{self.account.name}: logged in at node {node}")
                redirects = 0
                continue
            self.world.note(f"{self.account.name}: login at node {node}: {what}")
            # A refused password or certificate is a bug; temporary-auth-failure (a node
            # whose database is down) is retried like any other failed attempt.
            if "not-authorized" in what or what.startswith("certificate") or \
                    what.startswith("no usable SASL"):
                self.world.fatal.append(f"{self.account.name} at node {node}: {what}")
                await asyncio.sleep(1)
                continue
            if target and self.world.pair.node_of(target):
                self.next_addr = target
                redirects += 1
            else:
                self.next_addr = self.world.pair.addr(3 - node if node else self.account.home)
                redirects = 0
            # Two nodes sending a client to each other (a peer not yet declared down)
            # get a pause too.
            if redirects != 1:
                await asyncio.sleep(RETRY_PAUSE_S)

    async def send_loop(self, others):
        i = 0
        while self.world.sending:
            await asyncio.sleep(self.world.interval)
            if not self.world.sending or not self.online():
                continue
            rcpt = others[i % len(others)]
            i += 1
            self.seq += 1
            mid = f"{self.world.tag}/{self.account.name}/{self.seq}"
            m = Sent(mid, self.account, rcpt)
            self.world.ledger.sent[mid] = m
            await self.send(m)

    async def send(self, m):
        """Send m on the current session, then ping: confirmed or doubt."""
        c = self.client
        c.send_message(mto=m.rcpt.bare, mbody=m.mid, mtype="chat")
        ping = asyncio.ensure_future(
            c.plugin["xep_0199"].send_ping(jid=self.world.pair.env["DOMAIN"],
                                           timeout=PING_TIMEOUT_S))
        while not ping.done() and c is self.client and self.online():
            await asyncio.sleep(0.02)
        if ping.done() and not ping.cancelled() and ping.exception() is None:
            m.status = "confirmed"
        else:
            if not ping.done():
                ping.cancel()
            elif not ping.cancelled():
                ping.exception()  # retrieved: no "never retrieved" warning
            m.status = "doubt"

    async def relogin(self):
        """Log out and let run() log in again from the home node: offline messages stored
        for this user are delivered at this login."""
        self.paused = True
        c, self.client = self.client, None
        if c:
            await c.logout()
            drop(c)
        self.next_addr = self.world.pair.addr(self.account.home)
        self.paused = False


def wall_clock():
    """HH:MM:SS.mmm, as srmd's log lines are stamped."""
    return datetime.datetime.now().strftime("%H:%M:%S.%f")[:-3]


def drop(client):
    """Client.drop(), tolerating a TLS transport that is already gone (asyncio's SSL
    transport raises AttributeError on abort() after the connection was lost)."""
    try:
        client.drop()
    except AttributeError:
        pass


def parse_hostport(text):
    host, _, port = text.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return (host, int(port))


class Traffic:
    """The users, their sessions, the ledger; runs the client loop in a thread."""

    def __init__(self, pair, log, users_per_node=2, interval=0.5):
        self.pair = pair
        self.log = log
        self.interval = interval
        self.users_per_node = users_per_node
        self.accounts = []
        self.offline = {}  # home node -> the account of that node that never logs in
        self.roamers = []
        self.ledger = Ledger()
        self.tag = "init"
        self.sending = False
        self.closing = False
        self.fatal = []
        self.events = []
        self.verbose = False
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    # ---- plumbing ----

    def call(self, coro, timeout=120):
        """Run a coroutine on the client loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def note(self, text):
        self.events.append((time.monotonic(), text))
        if self.verbose:
            self.log(f"  client: {text}")

    def on_message(self, account, msg):
        body = msg["body"]
        if msg["type"] == "error":
            self.ledger.bounces[body] = msg["error"]["condition"] or "an error"
            return
        if not body:
            return
        delayed = msg.xml.find(DELAY_NS) is not None
        if body in self.ledger.sent:
            self.ledger.arrivals[body].append((account.name, delayed))
        else:
            self.ledger.strangers.append(body)

    # ---- setup ----

    def provision(self):
        """users_per_node accounts per home node (Balanced: alternate nodes), created with
        srmctl on alternating nodes; and one per home node that never logs in (u1z, u2z:
        probes write to them, their messages stay in the offline store)."""
        domain = self.pair.env["DOMAIN"]
        for i in range(self.users_per_node):
            for home in (1, 2):
                name = f"u{home}{chr(ord('a') + i)}"
                pw = f"pw-{name}-fault"
                self.pair.ctl(home, "user", "add", name, pw)
                self.accounts.append(Account(name, pw, home, domain))
        for home in (1, 2):
            a = Account(f"u{home}z", f"pw-u{home}z-fault", home, domain)
            self.pair.ctl(home, "user", "add", a.name, a.password)
            self.pair.ctl(home, "user", "assign", a.bare, str(home), "--yes")
            self.offline[home] = a
        listed = self.pair.ctl(1, "user", "list").stdout.split()
        for a in self.accounts + list(self.offline.values()):
            if a.bare not in listed or listed[listed.index(a.bare) + 1] != str(a.home):
                raise XmppFailure(f"{a.bare}: not home node {a.home} in {listed}")

    def start(self):
        async def go():
            for a in self.accounts:
                r = Roamer(self, a)
                self.roamers.append(r)
                r.task = asyncio.ensure_future(r.run())
        self.call(go())
        self.wait_placed(lambda a: a.home, 60, "first logins")

    # ---- during a scenario ----

    def begin(self, tag):
        """A new scenario: a fresh ledger, messages with ids tagged `tag`."""
        self.tag = tag
        self.ledger = Ledger()
        self.events = []
        self.fatal = []
        self.start_sending()

    def start_sending(self):
        async def go():
            self.sending = True
            for r in self.roamers:
                others = [x.account for x in self.roamers if x is not r]
                r.sender = asyncio.ensure_future(r.send_loop(others))
        self.call(go())

    def stop_sending(self):
        async def go():
            self.sending = False
            await asyncio.gather(*(r.sender for r in self.roamers if r.sender))
        self.call(go(), timeout=PING_TIMEOUT_S + 30)

    def probe(self, sender_home, rcpt):
        """One message from a session of a home-node-`sender_home` user (wherever it is) to
        rcpt (an offline user); returns its Sent (status confirmed or doubt)."""
        async def go():
            r = next(r for r in self.roamers if r.account.home == sender_home and r.online())
            m = Sent(f"{self.tag}/probe/{r.account.name}/{rcpt.name}", r.account, rcpt)
            self.ledger.probes[m.mid] = m
            await r.send(m)
            return m
        return self.call(go(), timeout=PING_TIMEOUT_S + 10)

    def placement(self):
        return {r.account.name: (r.node if r.online() else None) for r in self.roamers}

    def wait_placed(self, where, timeout, what):
        """Every user online at node where(account)."""
        async def go():
            await wait_until(lambda: all(r.online() and r.node == where(r.account)
                                         for r in self.roamers), timeout, what)
        try:
            self.call(go(), timeout + 10)
        except XmppFailure as e:
            raise XmppFailure(f"{e}: sessions {self.placement()}; {self.fatal}") from None

    def confirmed(self, sender=None):
        return sum(1 for m in self.ledger.sent.values()
                   if m.status == "confirmed" and (sender is None or m.sender.name == sender))

    def wait_flowing(self, count, timeout, what):
        """Every user got `count` more messages confirmed (the service works)."""
        start = {r.account.name: self.confirmed(r.account.name) for r in self.roamers}
        deadline = time.monotonic() + timeout
        while True:
            behind = [n for n, c in start.items() if self.confirmed(n) < c + count]
            if not behind:
                return
            if time.monotonic() > deadline:
                raise XmppFailure(f"{what}: no confirmed messages from {behind} in {timeout}s;"
                                  f" sessions {self.placement()}")
            time.sleep(0.1)

    # ---- the end of a scenario ----

    def settle(self, timeout=30):
        """After the pair is Normal/Normal and converged: every user online at its home
        node, one last message from each user to each other arriving live, then every
        user logged in again so that stored offline messages are delivered; returns
        (problems, summary)."""
        self.stop_sending()
        self.wait_placed(lambda a: a.home, timeout, "every user back at its home node")
        final = self._final_round(timeout)

        async def collect():
            await asyncio.gather(*(r.relogin() for r in self.roamers))
        self.call(collect())
        self.wait_placed(lambda a: a.home, timeout, "every user logged in again")
        # Stored offline messages come right after the login's presence: 10 s is plenty.
        deadline = time.monotonic() + 10
        while any(self.ledger.missing_for(r.account.name) for r in self.roamers):
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        time.sleep(1.0)  # a duplicate would arrive right behind the first copy
        problems, counts = self.ledger.problems()
        problems += final + [("fatal", f) for f in self.fatal]
        led = self.ledger
        delayed = sum(1 for got in led.arrivals.values() for _, d in got if d)
        doubt_arrived = sum(1 for mid, m in led.sent.items()
                            if m.status == "doubt" and led.arrivals.get(mid))
        summary = (f"{len(led.sent) + len(led.probes)} messages: {counts['confirmed']} confirmed, "
                   f"{counts['doubt']} in doubt ({doubt_arrived} of them arrived); "
                   f"{delayed} delivered from the offline store; logins "
                   f"{sum(len(r.logins) for r in self.roamers)}")
        return problems, summary

    def _final_round(self, timeout):
        """One message from each user to each other, each must arrive live."""
        ids = []

        async def go():
            for r in self.roamers:
                for other in self.roamers:
                    if other is r:
                        continue
                    mid = f"{self.tag}/final/{r.account.name}/{other.account.name}"
                    self.ledger.sent[mid] = Sent(mid, r.account, other.account, "confirmed")
                    r.client.send_message(mto=other.account.bare, mbody=mid, mtype="chat")
                    ids.append(mid)
        self.call(go())
        deadline = time.monotonic() + timeout
        while any(not self.ledger.arrivals.get(m) for m in ids):
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        late = [m for m in ids if not self.ledger.arrivals.get(m)
                or any(d for _, d in self.ledger.arrivals[m])]
        return [("final", f"final round: {m} not delivered live") for m in late]

    def close(self):
        async def go():
            self.closing = True
            self.sending = False
            for r in self.roamers:
                for t in (r.sender, r.task):
                    if t:
                        t.cancel()
                if r.client:
                    drop(r.client)
            await asyncio.sleep(0.1)
            # slixmpp's own tasks too, so that none is left to a closed loop.
            rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in rest:
                t.cancel()
            await asyncio.gather(*rest, return_exceptions=True)
        try:
            self.call(go(), timeout=20)
        except Exception:  # noqa: BLE001 - closing anyway
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        if not self.thread.is_alive():
            self.loop.close()
