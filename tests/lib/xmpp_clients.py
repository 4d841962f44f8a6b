"""Real XMPP clients (Debian's slixmpp 1.8.3) for Duet's interop tests and the demo.

A Client logs in with SCRAM-SHA-256 over STARTTLS only, trusting the group's certificate
and nothing else, connects to an explicit (host, port) without any DNS lookup, and records
what it receives (messages with their delay stamps, presence, roster state) so that callers
can wait for a condition with a bound instead of sleeping.
"""

import asyncio
import logging
import os
import random
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

# Importing slixmpp warns that its pure-Python stringprep is slow; that is fine here.
logging.getLogger("slixmpp.stringprep").setLevel(logging.ERROR)
import slixmpp  # noqa: E402  (after the logger setting above)

MECHANISM = "SCRAM-SHA-256"
DELAY_NS = "urn:xmpp:delay"
POLL_S = 0.02


class XmppFailure(Exception):
    """A step of a scenario did not happen as required."""


def free_base_port(start=20000, stop=60000, step=10):
    """A base port whose xmpp and xmpps ports (base, base+1) are free on loopback now."""
    bases = list(range(start, stop, step))
    random.shuffle(bases)
    for base in bases[:200]:
        try:
            for port in (base, base + 1):
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise XmppFailure("no free loopback ports found")


def load_group_env(path):
    """Read the KEY=VALUE lines of a group.env written by contrib/local-group."""
    env = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#") or "=" not in line:
                continue
            key, value = line.split("=", 1)
            if len(value) >= 2 and value[0] == value[-1] == "'":
                value = value[1:-1]
            env[key] = value
    return env


def srmctl(build, ctl, *args):
    """Run srmctl against a node's control socket; raise with its output on failure."""
    cmd = [os.path.join(build, "bin", "srmctl"), "-s", ctl, *args]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    if res.returncode != 0:
        raise XmppFailure(f"{' '.join(cmd)} exited {res.returncode}: "
                          f"{(res.stderr or res.stdout).strip()}")
    return res.stdout


async def wait_until(predicate, timeout, what):
    """Poll predicate() until it is true; raise XmppFailure naming `what` after timeout s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise XmppFailure(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(POLL_S)


class Received:
    """One message as a client saw it."""

    def __init__(self, client, msg):
        self.at = time.monotonic()
        self.to = client.boundjid.full
        self.sender = str(msg["from"])
        self.type = msg["type"]
        self.body = msg["body"]
        self.delay = msg.xml.find(f"{{{DELAY_NS}}}delay")
        self.delay_stamp = self.delay.get("stamp") if self.delay is not None else None

    def __repr__(self):
        stamp = f" delay={self.delay_stamp}" if self.delay_stamp else ""
        return f"<{self.type} {self.sender} -> {self.to}: {self.body!r}{stamp}>"


class Client(slixmpp.ClientXMPP):
    """One XMPP session (one resource) that records what it receives."""

    def __init__(self, jid, password, host, port, cafile, domain=None):
        super().__init__(jid, password, sasl_mech=MECHANISM)
        # Never authenticate in the clear, even if the server skips STARTTLS.
        self["feature_mechanisms"].unencrypted_scram = False
        self.address_tuple = (host, int(port))
        # Certificate checks run against the XMPP domain, as a real client does; the group's
        # certificate carries it in its subjectAltName.
        self.default_domain = domain or self.boundjid.host
        self.ca_certs = Path(cafile)
        self.ssl_context = ssl.create_default_context(cafile=cafile)
        self.ssl_context.check_hostname = True
        self.whitespace_keepalive = False
        # Subscriptions are driven explicitly by the scenario; requests are still approved.
        self.roster.auto_authorize = True
        self.roster.auto_subscribe = False
        self.register_plugin("xep_0203")  # delayed delivery stamps

        self.messages = []
        self.available = set()  # full JIDs currently seen available
        self.presence_log = []  # (monotonic time, full JID, "available"/"unavailable")
        self.errors = []
        self.mechanism = None
        self.tls_version = None
        self.session_started = False
        self.auth_failed = None
        self.stream_error = None
        self.tls_error = None
        self.connect_error = None
        self.disconnects = 0
        self.login_seconds = None
        self._connect_at = None

        self.add_event_handler("session_start", self._on_session_start)
        self.add_event_handler("auth_success", self._on_auth_success)
        self.add_event_handler("failed_auth", self._on_failed_auth)
        self.add_event_handler("no_auth", self._on_no_auth)
        self.add_event_handler("stream_error", self._on_stream_error)
        self.add_event_handler("ssl_invalid_chain", self._on_tls_error)
        self.add_event_handler("connection_failed", self._on_connection_failed)
        self.add_event_handler("disconnected", self._on_disconnected)
        self.add_event_handler("message", self._on_message)
        self.add_event_handler("presence_available", self._on_available)
        self.add_event_handler("presence_unavailable", self._on_unavailable)
        self.add_event_handler("presence_error", self._on_error)

    # slixmpp resolves the domain even when given an address; the group is on loopback,
    # so the answer is always the address we were given.
    async def get_dns_records(self, domain, port=None):
        host, port = self.address_tuple
        return [(domain, host, port)]

    def _on_auth_success(self, _stanza):
        self.mechanism = self["feature_mechanisms"].mech.name
        ssl_obj = self.transport.get_extra_info("ssl_object") if self.transport else None
        self.tls_version = ssl_obj.version() if ssl_obj is not None else None

    def _on_failed_auth(self, stanza):
        self.auth_failed = f"SASL failure: {stanza['condition'] or 'unknown'}"

    def _on_no_auth(self, _event=None):
        if not self.auth_failed:
            self.auth_failed = (f"no usable SASL mechanism ({MECHANISM} over TLS "
                                "required)")
        self.drop()

    def _on_tls_error(self, error):
        self.tls_error = f"certificate not trusted: {error}"
        self.drop()

    def _on_connection_failed(self, error):
        self.connect_error = str(error)

    def _on_stream_error(self, error):
        self.stream_error = error["condition"] or "unknown"

    def _on_disconnected(self, _reason=None):
        self.disconnects += 1
        self.available.clear()

    async def _on_session_start(self, _event):
        self.login_seconds = time.monotonic() - self._connect_at
        await self.get_roster(timeout=15)
        self.send_presence()
        self.session_started = True

    def _on_message(self, msg):
        if msg["type"] == "error":
            self._on_error(msg)
            return
        self.messages.append(Received(self, msg))

    def _on_available(self, pres):
        self.available.add(str(pres["from"]))
        self.presence_log.append((time.monotonic(), str(pres["from"]), "available"))

    def _on_unavailable(self, pres):
        self.available.discard(str(pres["from"]))
        self.presence_log.append((time.monotonic(), str(pres["from"]), "unavailable"))

    def _on_error(self, stanza):
        self.errors.append(f"{stanza.name} error from {stanza['from']}: "
                           f"{stanza['error']['condition']}")

    @property
    def tls_active(self):
        ssl_obj = self.transport.get_extra_info("ssl_object") if self.transport else None
        return "starttls" in self.features and ssl_obj is not None

    def begin_login(self):
        """Begin connecting (STARTTLS required) without waiting: for callers that watch
        the outcome themselves (session_started, stream_error, connect_error, ...)."""
        self._connect_at = time.monotonic()
        self.connect(address=self.address_tuple, force_starttls=True)

    async def login(self, timeout=20):
        """Connect with STARTTLS required, authenticate, bind, fetch the roster, send
        initial presence.  Raises XmppFailure with the reason on any failure."""
        self._connect_at = time.monotonic()
        self.connect(address=self.address_tuple, force_starttls=True)

        def failure():
            if self.tls_error or self.auth_failed:
                return self.tls_error or self.auth_failed
            return f"stream error {self.stream_error}" if self.stream_error else None

        try:
            await wait_until(lambda: self.session_started or failure(), timeout,
                             f"{self.boundjid.full} to log in")
        except XmppFailure as e:
            self.drop()
            last = f" (last connection error: {self.connect_error})" if self.connect_error else ""
            raise XmppFailure(f"{e}{last}") from None
        if not self.session_started:
            self.drop()
            raise XmppFailure(f"{self.boundjid.full}: login failed: {failure()}")
        if self.mechanism != MECHANISM:
            raise XmppFailure(f"{self.boundjid.full}: authenticated with {self.mechanism}, "
                              f"not {MECHANISM}")
        if not self.tls_active:
            raise XmppFailure(f"{self.boundjid.full}: session is not protected by TLS")
        return self

    async def logout(self, timeout=10):
        """Close the stream cleanly (unavailable presence, </stream>)."""
        if not self.transport:
            return
        before = self.disconnects
        self.disconnect(wait=2.0)
        try:
            await wait_until(lambda: self.disconnects > before, timeout,
                             f"{self.boundjid.full} to disconnect")
        except XmppFailure:
            self.drop()

    def drop(self):
        """Drop the connection without ceremony and stop any (re)connection attempt."""
        self.cancel_connection_attempt()
        # slixmpp's abort() closes then aborts; on a TLS transport the server already closed,
        # Python 3.11's close() drops its protocol and abort() then fails (AttributeError).
        if self.transport and not self.transport.is_closing():
            self.abort()

    def roster_state(self, bare):
        """This user's subscription to `bare` as the server pushed it ('none' if absent)."""
        roster = self.client_roster
        return roster[bare]["subscription"] if bare in roster else "none"

    def received(self, body=None, sender_bare=None):
        """Messages received so far, filtered by body and sender's bare JID."""
        out = []
        for m in self.messages:
            if body is not None and m.body != body:
                continue
            if sender_bare is not None and m.sender.split("/")[0] != sender_bare:
                continue
            out.append(m)
        return out


async def subscribe_mutually(a, b, timeout=15):
    """a and b (one session each) subscribe to each other; wait for 'both' on each side."""
    a_bare, b_bare = a.boundjid.bare, b.boundjid.bare
    a.send_presence(pto=b_bare, ptype="subscribe")
    await wait_until(lambda: a.roster_state(b_bare) in ("to", "both"), timeout,
                     f"{b_bare} to approve {a_bare}'s subscription")
    b.send_presence(pto=a_bare, ptype="subscribe")
    await wait_until(lambda: b.roster_state(a_bare) == "both", timeout,
                     f"{b_bare}'s roster to show 'both' for {a_bare}")
    await wait_until(lambda: a.roster_state(b_bare) == "both", timeout,
                     f"{a_bare}'s roster to show 'both' for {b_bare}")


class Narrator:
    """Prints a numbered, timed account of a scenario."""

    def __init__(self, out=sys.stdout):
        self.t0 = time.monotonic()
        self.out = out

    def say(self, text):
        print(f"[{time.monotonic() - self.t0:7.3f}s] {text}", file=self.out, flush=True)


def quiet_slixmpp(verbose=False):
    """slixmpp logs every reconnect attempt at ERROR; show it only when asked."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.CRITICAL,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
