#!/usr/bin/python3
"""Engine streams (RFC 6120) with a raw client: stream errors for hostile or wrong input,
STARTTLS and SASL rules, per-address limits, timeouts, keepalives, slow readers, resource
binding.  One local group with small limits (DUET_EXTRA_XMPP_CONF); every check uses its
own loopback source address so per-address limits stay apart.  Ends by checking the engine
is still serving and srmd never restarted it.  Exit 0 pass, 1 fail, 77 skipped.
"""

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "lib"))

from rawxmpp import (BindError, NS_BIND, NS_SASL, NS_STREAMS, NS_TLS, RawClient,  # noqa: E402
                     StreamClosed, WaitTimeout, XmppError, group_main, local, q, require,
                     require_eq, short)

PROG = "test_engine_streams"
MAX_STANZA = 4096
AUTH_TIMEOUT = 3
IDLE_TIMEOUT = 5
KEEPALIVE = 2
CONNS_PER_IP = 3
AUTH_FAILURES = 3
SEND_QUEUE = 8192
SESSIONS = 3
CONF = f"""max_stanza_size = {MAX_STANZA}
max_xml_depth = 8
auth_timeout = {AUTH_TIMEOUT}s
idle_timeout = {IDLE_TIMEOUT}s
keepalive = {KEEPALIVE}s
max_conns_per_ip = {CONNS_PER_IP}
auth_failures_per_min = {AUTH_FAILURES}
max_send_queue = {SEND_QUEUE}
max_sessions_per_user = {SESSIONS}
"""
USERS = {"alice": "alice-pw-1", "bob": "bob-pw-2", "carol": "carol-pw-3", "dave": "dave-pw-4"}


class Suite:
    def __init__(self, group, checks):
        self.group = group
        self.env = group.env
        self.checks = checks
        self.domain = self.env["DOMAIN"]

    def connect(self, clients, source=None, **kw):
        c = RawClient(self.env, source=source or self.checks.source(), **kw)
        clients.append(c)
        return c

    def login(self, clients, user, resource=None, source=None, **kw):
        c = self.connect(clients, source=source, **kw)
        c.login(user, USERS[user], resource)
        return c

    def stream_error_is(self, c, want, sent):
        got = c.expect_stream_error(5)
        require(got == want, f"sent {sent!r}: want <{want}/>, got "
                f"{('<' + got + '/>') if got else 'a close without a stream error'}; "
                f"bytes received: {received_tail(c)!r}")
        require(c.expect_close(5), "the server did not close the connection after the error")

    # ---- stream header ----

    def host_unknown(self, clients):
        c = self.connect(clients)
        c.open_stream(to="nowhere.example", wait=False)
        self.stream_error_is(c, "host-unknown", "to='nowhere.example'")

    def invalid_namespace(self, clients):
        c = self.connect(clients)
        c.open_stream(namespace="http://example.com/not-streams", wait=False)
        self.stream_error_is(c, "invalid-namespace", "xmlns:stream='http://example.com/not-streams'")

    def unsupported_version(self, clients):
        c = self.connect(clients)
        c.open_stream(version=None, wait=False)
        self.stream_error_is(c, "unsupported-version", "a header without version")

    def not_well_formed(self, clients):
        c = self.connect(clients)
        c.open_stream()
        bad = "<message><body>x</message>"
        c.send(bad)
        self.stream_error_is(c, "not-well-formed", bad)

    def restricted_xml(self, clients):
        c = self.connect(clients)
        doc = ("<?xml version='1.0'?><!DOCTYPE stream:stream [<!ENTITY boom 'x'>]>"
               f"<stream:stream xmlns='jabber:client' xmlns:stream='{NS_STREAMS}' "
               f"to='{self.domain}' version='1.0'>")
        c.send(doc)
        self.stream_error_is(c, "restricted-xml", doc)

    def restricted_entity(self, clients):
        c = self.connect(clients)
        c.open_stream()
        bad = "<!ENTITY boom 'x'><message/>"
        c.send(bad)
        got = c.expect_stream_error(5)
        # Inside the stream a declaration is either restricted or simply not well-formed.
        require(got in ("restricted-xml", "not-well-formed"),
                f"sent {bad!r} after the header: got <{got}/>; bytes {received_tail(c)!r}")

    def stanza_too_big(self, clients):
        c = self.login(clients, "alice", "big")
        body = "A" * (MAX_STANZA + 1000)
        c.send(f"<message to='bob@{self.domain}' type='chat'><body>{body}</body></message>")
        self.stream_error_is(c, "policy-violation", f"a {len(body)}-byte body")

    def too_deep(self, clients):
        c = self.login(clients, "alice", "deep")
        inner = "<a>" * 12 + "</a>" * 12
        stanza = f"<message to='bob@{self.domain}'><x xmlns='urn:test'>{inner}</x></message>"
        c.send(stanza)
        self.stream_error_is(c, "policy-violation", "a message nested 14 levels deep")

    # ---- TLS and SASL ----

    def encryption_required(self, clients):
        c = self.connect(clients)
        f = c.open_stream()
        st = f.find(q(NS_TLS, "starttls"))
        require(st is not None and st.find(q(NS_TLS, "required")) is not None,
                f"features before TLS lack <starttls><required/>: {short(f)}")
        require("PLAIN" not in c.mechanisms(), f"PLAIN offered before TLS: {c.mechanisms()}")
        c.send(f"<auth xmlns='{NS_SASL}' mechanism='SCRAM-SHA-256'>biwsbj1hbGljZSxyPWFiYw==</auth>")
        ans = c.expect(lambda e: local(e) == "failure", 5, "a SASL failure")
        require(ans.find(q(NS_SASL, "encryption-required")) is not None,
                f"auth before STARTTLS: want <failure><encryption-required/>, got {short(ans)}")

    def plain_after_tls(self, clients):
        c = self.connect(clients)
        before = c.open_stream()
        require("PLAIN" not in c.mechanisms(), f"PLAIN offered before TLS: {short(before)}")
        after = c.starttls()
        mechs = c.mechanisms()
        require("PLAIN" in mechs and "SCRAM-SHA-256" in mechs and "SCRAM-SHA-1" in mechs,
                f"mechanisms after TLS: {short(after)}")
        require(after.find(q(NS_TLS, "starttls")) is None, "STARTTLS offered again inside TLS")
        require(c.auth("bob", USERS["bob"], "PLAIN") is None, "PLAIN login failed")
        jid = c.bind("plain")
        require_eq(jid, f"bob@{self.domain}/plain", "bound JID")

    def scram_sha1(self, clients):
        c = self.connect(clients)
        c.open_stream()
        c.starttls()
        require(c.auth("carol", USERS["carol"], "SCRAM-SHA-1") is None,
                "SCRAM-SHA-1 login failed")
        c.bind("sha1")

    def direct_tls(self, clients):
        c = self.connect(clients, direct_tls=True)
        f = c.open_stream()
        require(f.find(q(NS_TLS, "starttls")) is None, f"STARTTLS offered on direct TLS: {short(f)}")
        require("PLAIN" in c.mechanisms(), f"mechanisms on direct TLS: {c.mechanisms()}")
        require(c.auth("alice", USERS["alice"]) is None, "login on the direct-TLS port failed")
        c.bind("direct")
        ans = c.iq("get", "<ping xmlns='urn:xmpp:ping'/>", to=self.domain)
        require_eq(ans.get("type"), "result", "ping over direct TLS")

    def wrong_password(self, clients):
        src = self.checks.source()
        c = self.connect(clients, source=src)
        c.open_stream()
        c.starttls()
        for attempt in range(1, AUTH_FAILURES + 1):
            cond = c.auth("alice", "not-the-password")
            require_eq(cond, "not-authorized", f"failure {attempt} with a wrong password")
        # The failure that reached the limit closes the stream.
        got = c.expect_stream_error(5)
        require_eq(got, "policy-violation",
                   f"stream error after {AUTH_FAILURES} failures per minute")
        require(c.expect_close(5), "connection not closed after the auth limit")
        # The address stays turned away, even with the right password...
        d = self.connect(clients, source=src)
        d.open_stream()
        d.starttls()
        accepted = False
        try:
            accepted = d.auth("alice", USERS["alice"]) is None
        except StreamClosed:
            pass
        require(not accepted,
                "the right password was accepted from an address over its failure limit")
        require_eq(d.expect_stream_error(5), "policy-violation",
                   "a new connection from the throttled address")
        # ...but another address is not.
        e = self.login(clients, "alice", "other-address")
        require(e.jid, "login from another address failed")

    def unknown_user(self, clients):
        c = self.connect(clients)
        c.open_stream()
        c.starttls()
        require_eq(c.auth("nobody-here", "whatever"), "not-authorized", "SCRAM for an unknown user")
        require_eq(c.auth("nobody-here", "whatever", "PLAIN"), "not-authorized",
                   "PLAIN for an unknown user")

    def stanza_before_bind(self, clients):
        c = self.connect(clients)
        c.open_stream()
        c.starttls()
        require(c.auth("bob", USERS["bob"]) is None, "login failed")
        bad = f"<message to='alice@{self.domain}'><body>early</body></message>"
        c.send(bad)
        self.stream_error_is(c, "not-authorized", bad)

    def client_close(self, clients):
        c = self.login(clients, "bob", "closer")
        c.send("</stream:stream>")
        require(c.expect_close(5), "the server did not close the TCP connection")
        require(c.stream_closed, f"no </stream:stream> in answer; received {received_tail(c)!r}")
        require(c.stream_error is None, f"stream error <{c.stream_error}/> on a clean close")

    # ---- limits ----

    def conns_per_ip(self, clients):
        src = self.checks.source()
        held = []
        for _ in range(CONNS_PER_IP):
            c = self.connect(clients, source=src)
            c.open_stream()
            held.append(c)
        extra = self.connect(clients, source=src)
        extra.open_stream(wait=False)
        got = extra.expect_stream_error(5)
        require_eq(got, "policy-violation", f"connection {CONNS_PER_IP + 1} from one address")
        for c in held:
            require(c.stream_error is None and not c.eof, "an allowed connection was closed")

    def slow_reader(self, clients):
        slow = self.login(clients, "carol", "slow", rcvbuf=4096)
        sender = self.login(clients, "dave", "flood")
        body = "F" * 1000
        # Headlines: once the slow session is gone they are dropped (RFC 6121 §8.5.3.2.1),
        # whereas chats would be stored offline and bounced when the store is full, and those
        # bounces would fill the sender's own (small) queue.
        msg = (f"<message to='{slow.jid}' type='headline'><body>{body}</body></message>"
               ).encode()
        sent = 0
        t_end = time.monotonic() + 3
        # Flood until the server has dropped the slow client or time runs out; the sender
        # reads its own stream meanwhile (it must not be the one dropped).
        while time.monotonic() < t_end and sent < 3000:
            sender.send(msg * 20)
            sent += 20
            sender.pump(0.005)
            require(sender.stream_error is None and not sender.eof,
                    f"the sender was dropped: <{sender.stream_error}/> after {sent} messages")
        # Now read the slow client: it must end with <policy-violation/>.
        got = None
        try:
            got = slow.expect_stream_error(8)
        except WaitTimeout:
            pass
        tail = received_tail(slow, 300)
        if got != "policy-violation":
            raw = b"".join(d for _, d in slow.raw_log)
            hint = ""
            if b"policy-violation" in raw:
                hint = (" (the server did send <policy-violation/>, but inside a message cut "
                        "short: the stream error is not well-formed XML for the client)")
            raise XmppError(f"after {sent} x 1 KB messages to a client that does not read: "
                            f"want <policy-violation/>, got {got!r}{hint}; parse error "
                            f"{slow.parse_error!r}; last bytes {tail!r}")
        ans = sender.iq("get", "<ping xmlns='urn:xmpp:ping'/>", to=self.domain)
        require_eq(ans.get("type"), "result", "sender's ping after the flood")

    def resource_conflict(self, clients):
        a = self.login(clients, "bob", "dup")
        b = self.login(clients, "bob", "dup")
        require_eq(b.jid, f"bob@{self.domain}/dup", "the new session's JID")
        require_eq(a.expect_stream_error(5), "conflict", "the old session of a reused resource")
        ans = b.iq("get", "<ping xmlns='urn:xmpp:ping'/>", to=self.domain)
        require_eq(ans.get("type"), "result", "ping on the new session")

    def max_sessions(self, clients):
        s1, s2 = self.checks.source(), self.checks.source()
        for i in range(SESSIONS):
            self.login(clients, "dave", f"s{i}", source=s1 if i < 2 else s2)
        c = self.connect(clients, source=s2)
        c.open_stream()
        c.starttls()
        require(c.auth("dave", USERS["dave"]) is None, "login failed")
        try:
            c.bind("one-too-many")
        except BindError as e:
            require_eq(e.condition, "resource-constraint", f"bind beyond {SESSIONS} sessions")
            require_eq(e.etype, "wait", "error type of resource-constraint")
            return
        raise XmppError(f"bind {SESSIONS + 1} of one user succeeded: {c.jid}")

    def assigned_resource(self, clients):
        c = self.connect(clients)
        c.open_stream()
        c.starttls()
        require(c.auth("alice", USERS["alice"]) is None, "login failed")
        f = c.features
        require(f.find(q(NS_BIND, "bind")) is not None, "no <bind/> feature after SASL")
        jid = c.bind(None)
        bare, _, res = jid.partition("/")
        require(bare == f"alice@{self.domain}" and res, f"server-assigned JID {jid!r}")

    # ---- timers ----

    def timers(self, clients):
        idle = self.login(clients, "bob", "idle")
        t_login = time.monotonic()
        unauth = self.connect(clients)
        unauth.open_stream()
        t_open = time.monotonic()
        # Keepalive: the server has been silent since the bind result.
        deadline = t_login + KEEPALIVE + 3
        while time.monotonic() < deadline and not idle.received_whitespace_since(t_login):
            idle.pump(0.2)
        require(idle.received_whitespace_since(t_login),
                f"no whitespace keepalive within {KEEPALIVE + 3}s of silence")
        got = unauth.expect_stream_error(AUTH_TIMEOUT + 4)
        took = time.monotonic() - t_open
        require_eq(got, "connection-timeout", "a connection that never authenticates")
        require(took >= AUTH_TIMEOUT - 0.5, f"auth timeout fired after {took:.1f}s")
        got = idle.expect_stream_error(IDLE_TIMEOUT + 4)
        took = time.monotonic() - t_login
        require_eq(got, "connection-timeout", "a bound session that never sends")
        require(took >= IDLE_TIMEOUT - 0.5, f"idle timeout fired after {took:.1f}s")

    # ---- still alive ----

    def still_serving(self, clients):
        c = self.login(clients, "alice", "final")
        ans = c.iq("get", "<ping xmlns='urn:xmpp:ping'/>", to=self.domain)
        require_eq(ans.get("type"), "result", "ping after the hostile checks")
        st = json.loads(self.group.srmctl("status", "--json"))
        require_eq(st["state"], "Normal", "node state")
        require_eq(st["engine"]["restarts"], 0, "engine restarts")


def received_tail(c, n=400):
    raw = b"".join(d for _, d in c.raw_log)
    return raw[-n:].decode(errors="replace")


def run(group, checks):
    group.up(CONF)
    for user, password in USERS.items():
        group.add_user(user, password)
    checks.say(f"group up in {group.dir}")
    s = Suite(group, checks)
    # The timers run first and in parallel with nothing else: they wait seconds anyway.
    for name, fn in [
        ("timers: keepalive, auth timeout, idle timeout -> connection-timeout", s.timers),
        ("wrong 'to' -> host-unknown", s.host_unknown),
        ("wrong stream namespace -> invalid-namespace", s.invalid_namespace),
        ("no version -> unsupported-version", s.unsupported_version),
        ("bad XML -> not-well-formed", s.not_well_formed),
        ("DOCTYPE/ENTITY before the header -> restricted-xml", s.restricted_xml),
        ("ENTITY declaration in the stream -> restricted-xml", s.restricted_entity),
        ("stanza over max_stanza_size -> policy-violation", s.stanza_too_big),
        ("nesting over max_xml_depth -> policy-violation", s.too_deep),
        ("auth before STARTTLS -> <encryption-required/>", s.encryption_required),
        ("PLAIN only inside TLS; PLAIN login", s.plain_after_tls),
        ("SCRAM-SHA-1 login", s.scram_sha1),
        ("direct-TLS port", s.direct_tls),
        ("wrong password -> not-authorized, limit -> policy-violation", s.wrong_password),
        ("unknown user -> not-authorized", s.unknown_user),
        ("stanza before bind -> not-authorized", s.stanza_before_bind),
        ("client </stream:stream> answered and closed", s.client_close),
        ("max_conns_per_ip -> policy-violation", s.conns_per_ip),
        ("slow reader dropped with policy-violation, sender kept", s.slow_reader),
        ("same resource twice -> old session <conflict/>", s.resource_conflict),
        ("max_sessions_per_user -> resource-constraint", s.max_sessions),
        ("bind without resource -> server-assigned", s.assigned_resource),
        ("engine still serving, no restarts", s.still_serving),
    ]:
        checks.run(name, fn)


def main():
    return group_main(PROG, run)


if __name__ == "__main__":
    sys.exit(main())
