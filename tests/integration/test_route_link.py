#!/usr/bin/python3
"""The route link between two engines (docs/route-protocol.md, DESIGN §5b).

Two presenced processes, each with its own private PostgreSQL, each driven over its
control socket by this script (as srmd would: hello, serve), the route link between them
authenticated with a CA and node certificates made here with openssl.  alice (home node 1)
is served by engine 1, bob (home node 2) by engine 2; both exist in both databases.

  1. the link comes up; alice and bob subscribe to each other across it, see each other's
     presence and its changes, exchange messages and an iq between full JIDs;
  2. engine 2 is stopped (SIGSTOP): alice gets bob's resource unavailable; engine 2 is
     continued: both see each other available again, without logging in again;
  2b. the ACK is lost: alice's message goes out while engine 2 is stopped, engine 1 gives
     the link up, engine 2 delivers the message when continued (its ACK dies with the
     connection), engine 1 sends it again on the new link: bob gets it exactly once, and
     no copy waits in either offline store;
  3. engine 2 is killed: a message from alice to bob is stored in node 1's database;
     engine 1 takes home node 2 over (serve 1,2) and bob, logging in there, gets it exactly
     once; node 1 gives it back (serve 1), engine 2 restarts, bob logs in there and the two
     see each other again and talk;
  4. a stranger without a certificate and a peer sending garbage do not hurt the link.
  5. (engines restarted with a 10 s dead timeout) engine 2 stopped, alice's big messages
     to bob back up in engine 1's route output: her ping is not answered until engine 1
     has written them to the kernel (engine 2 continued); bob gets every one once;
  6. bob offline, engine 2's offline_messages locked: engine 2 does not acknowledge
     alice's message until its INSERT committed.
Exit 0 pass, 1 fail, 77 skipped.
"""

import hashlib
import hmac
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "lib"))

from pg_lock import lock_table  # noqa: E402
from rawxmpp import (NS_CLIENT, NS_ROSTER, RawClient, WaitTimeout, XmppError,  # noqa: E402
                     free_base_port, is_iq, is_message, is_presence, local, q, require,
                     require_eq, short)

PROG = "test_route_link"
ROOT = Path(__file__).resolve().parents[2]
DOMAIN = "duet.test"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
PSQL = shutil.which("psql") or str(PG_BIN / "psql")
QUIET = 1.5
T0 = time.monotonic()


def say(text):
    print(f"{PROG}: [{time.monotonic() - T0:6.2f}s] {text}", flush=True)


def run(cmd, **kw):
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False, **kw)
    if res.returncode != 0:
        raise XmppError(f"{' '.join(map(str, cmd))} exited {res.returncode}: "
                        f"{res.stderr.strip() or res.stdout.strip()}")
    return res.stdout


# ---- PostgreSQL ----------------------------------------------------------------------

def as_pg_owner(cmd):
    return ["runuser", "-u", "postgres", "--", *cmd] if os.getuid() == 0 else cmd


def pg_start(d, port):
    d.mkdir(parents=True)
    if os.getuid() == 0:
        shutil.chown(d, "postgres", "postgres")
    run(as_pg_owner([str(PG_BIN / "initdb"), "-D", str(d / "data"), "-A", "trust", "-U",
                     "duet", "-E", "UTF8", "--no-sync"]))
    with open(d / "data" / "postgresql.conf", "a", encoding="utf-8") as f:
        f.write(f"listen_addresses = ''\nunix_socket_directories = '{d}'\nport = {port}\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n")
    run(as_pg_owner([str(PG_BIN / "pg_ctl"), "-D", str(d / "data"), "-l", str(d / "log"),
                     "-w", "-t", "30", "start"]))
    run([PSQL, "-X", "-q", "-h", str(d), "-p", str(port), "-U", "duet", "-d", "postgres",
         "-c", "CREATE DATABASE duet"])


def pg_stop(d):
    if (d / "data" / "postmaster.pid").exists():
        subprocess.run(as_pg_owner([str(PG_BIN / "pg_ctl"), "-D", str(d / "data"), "-m",
                                    "fast", "-w", "stop"]), capture_output=True, timeout=60,
                       check=False)


def scram_keys(password, hash_name, salt, iters=4096):
    salted = hashlib.pbkdf2_hmac(hash_name, password.encode(), salt, iters)
    client_key = hmac.new(salted, b"Client Key", hash_name).digest()
    stored = hashlib.new(hash_name, client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hash_name).digest()
    return salt.hex(), iters, stored.hex(), server_key.hex()


# ---- certificates --------------------------------------------------------------------

def make_certs(d):
    d.mkdir()
    ossl = ["openssl"]
    run(ossl + ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-nodes", "-days", "2", "-subj", "/CN=Duet test group CA",
                "-keyout", str(d / "ca.key"), "-out", str(d / "ca.pem"),
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    for name in ("node1", "node2", "rogue"):
        run(ossl + ["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-subj", f"/CN={name}", "-keyout", str(d / f"{name}.key"),
                    "-out", str(d / f"{name}.csr")])
        ext = d / f"{name}.ext"
        ext.write_text(f"subjectAltName=DNS:{name}\nextendedKeyUsage=serverAuth,clientAuth\n"
                       "basicConstraints=CA:FALSE\n")
        run(ossl + ["x509", "-req", "-in", str(d / f"{name}.csr"), "-CA", str(d / "ca.pem"),
                    "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-days", "2",
                    "-extfile", str(ext), "-out", str(d / f"{name}.pem")])
    # The XMPP service certificate the clients check (RawClient trusts TLS_CERT).
    run(ossl + ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-nodes", "-days", "2", "-subj", f"/CN={DOMAIN}",
                "-addext", f"subjectAltName=DNS:{DOMAIN}",
                "-keyout", str(d / "xmpp.key"), "-out", str(d / "xmpp.pem")])


# ---- engines -------------------------------------------------------------------------

class Engine:
    """One presenced under a control socket this script speaks (docs/engine-protocol.md)."""

    def __init__(self, build, work, n, base, pg_dir, pg_port, certs, dead_timeout="1s"):
        self.build, self.n = build, n
        self.dir = work / f"node{n}"
        self.dir.mkdir(exist_ok=True)
        self.xmpp_port = base + 2 * n
        self.route_port = base + 5 + n
        peer = 3 - n
        self.config = self.dir / "node.ini"
        self.config.write_text(f"""[node]
id = {n}
name = localhost
domain = {DOMAIN}
run_dir = {self.dir}

[database]
conninfo = host={pg_dir} port={pg_port} user=duet dbname=duet
connections = 2

[xmpp]
listen = 127.0.0.1:{self.xmpp_port}
tls_cert = {certs}/xmpp.pem
tls_key = {certs}/xmpp.key
max_conns_per_ip = 0

[peer]
node_name = node{peer}
tls_ca = {certs}/ca.pem
tls_cert = {certs}/node{n}.pem
tls_key = {certs}/node{n}.key

[route]
listen = 127.0.0.1:{self.route_port}
peer_address = 127.0.0.1:{base + 5 + peer}
dead_timeout = {dead_timeout}
""")
        self.env = {"DOMAIN": DOMAIN, "NODE1_XMPP_PORT": str(self.xmpp_port),
                    "NODE1_XMPPS_PORT": "0", "TLS_CERT": str(certs / "xmpp.pem")}
        self.dead_timeout = dead_timeout
        self.proc = None
        self.ctl = None
        self.buf = b""
        self.ready_seen = False
        self.log = self.dir / "presenced.log"
        self.pg = (pg_dir, pg_port)

    def migrate(self):
        """A first start without srmd creates the schema (an engine under srmd does not)."""
        with open(self.log, "ab") as log:
            p = subprocess.Popen([str(self.build / "bin" / "presenced"), "--config",
                                  str(self.config)], stdout=log, stderr=log)
        deadline = time.monotonic() + 20
        while b"ready:" not in self.log.read_bytes():
            if time.monotonic() > deadline or p.poll() is not None:
                p.kill()
                raise XmppError(f"engine {self.n} did not migrate: {self.tail()}")
            time.sleep(0.05)
        p.terminate()
        p.wait(timeout=10)

    def start(self, serve):
        parent, child = socket.socketpair()
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [str(self.build / "bin" / "presenced"), "--config", str(self.config),
                 "--control-fd", str(child.fileno())], pass_fds=[child.fileno()],
                stdout=log, stderr=log)
        child.close()
        self.ctl = parent
        self.buf = b""
        self.ready_seen = False
        require_eq(self.request("hello 1").split()[:2], ["hello", "1"], "hello")
        self.serve(serve)
        if not self.ready_seen:  # it may come before the serve answer (a slow test process)
            self.wait_line("ready", 20)

    def line(self, timeout):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise WaitTimeout(f"engine {self.n}: no control line within {timeout}s")
            self.ctl.settimeout(left)
            try:
                data = self.ctl.recv(65536)
            except socket.timeout:
                continue
            if not data:
                raise XmppError(f"engine {self.n}: control socket closed: {self.tail()}")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def wait_line(self, first_word, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            line = self.line(max(deadline - time.monotonic(), 0.01))
            word = line.split(" ", 1)[0]
            if word == first_word:
                return line
            self.ready_seen = self.ready_seen or word == "ready"

    def request(self, text, timeout=10):
        self.ctl.sendall(text.encode() + b"\n")
        return self.wait_line(text.split()[0], timeout)

    def serve(self, nodes):
        require_eq(self.request(f"serve {nodes}"), "serve ok", f"engine {self.n} serve")

    def stats(self):
        line = self.request("stats")
        return dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv)

    def wait_route(self, peer_serves, timeout=15):
        deadline = time.monotonic() + timeout
        while True:
            st = self.stats()
            if st.get("route_up") == "1" and st.get("route_peer_serves") == peer_serves:
                return
            if time.monotonic() > deadline:
                raise XmppError(f"engine {self.n}: route link not up with the peer serving "
                                f"{peer_serves}: {st}\n{self.tail()}")
            time.sleep(0.05)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.ctl:
            self.ctl.close()
            self.ctl = None

    def restart_with_dead_timeout(self, serve, value):
        self.stop()
        text = self.config.read_text()
        self.config.write_text(text.replace(f"dead_timeout = {self.dead_timeout}",
                                            f"dead_timeout = {value}"))
        self.dead_timeout = value
        self.start(serve)

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.ctl.close()
        self.ctl = None

    def tail(self, n=25):
        try:
            return "".join(self.log.read_text(errors="replace").splitlines(True)[-n:])
        except OSError:
            return "(no log)"

    def psql(self, sql):
        return run([PSQL, "-X", "-h", str(self.pg[0]), "-p", str(self.pg[1]), "-U", "duet",
                    "-d", "duet", "-Atqc", sql]).strip()

    def offline_count(self, user):
        return int(self.psql(f"SELECT count(*) FROM offline_messages WHERE username = '{user}'"))


# ---- the scenario --------------------------------------------------------------------

def body_of(el):
    b = el.find(q(NS_CLIENT, "body"))
    return b.text if b is not None else None


class Scenario:
    def __init__(self, e1, e2):
        self.e1, self.e2 = e1, e2
        self.clients = []

    def online(self, engine, user, resource="r1"):
        c = RawClient(engine.env)
        self.clients.append(c)
        c.login(user, f"{user}-secret", resource)
        require_eq(c.iq("get", f"<query xmlns='{NS_ROSTER}'/>").get("type"), "result",
                   f"{user}'s roster get")
        c.send("<presence/>")
        require_eq(c.iq("get", "<ping xmlns='urn:xmpp:ping'/>", to=DOMAIN).get("type"),
                   "result", "ping after initial presence")
        return c

    def nothing(self, c, predicate, what, seconds=QUIET):
        try:
            el = c.expect(predicate, seconds, what)
        except WaitTimeout:
            return
        raise XmppError(f"{c.jid} received {what}: {short(el)}")

    def subscribe(self, a, b, ua, ub):
        a.send(f"<presence to='{ub}@{DOMAIN}' type='subscribe'/>")
        b.expect(is_presence(f"{ua}@{DOMAIN}", "subscribe"), 5,
                 f"{ub} to get {ua}'s subscription request over the route link")
        b.send(f"<presence to='{ua}@{DOMAIN}' type='subscribed'/>")
        a.expect(is_presence(f"{ub}@{DOMAIN}", "subscribed"), 5,
                 f"{ua} to get 'subscribed' from {ub}")
        a.expect(is_presence(b.jid, "available"), 5,
                 f"{ua} to get {b.jid}'s presence after approval")

    def chat(self, frm, to, text):
        frm.send(f"<message to='{to.jid.split('/')[0]}' type='chat'><body>{text}</body>"
                 "</message>")
        m = to.expect(is_message(text, "chat"), 5, f"message {text!r} at {to.jid}")
        require_eq(m.get("from"), frm.jid, "the message's from")

    def step_cross(self):
        e1, e2 = self.e1, self.e2
        e1.wait_route("2")
        e2.wait_route("1")
        self.alice = alice = self.online(e1, "alice")
        self.bob = bob = self.online(e2, "bob")
        self.subscribe(alice, bob, "alice", "bob")
        self.subscribe(bob, alice, "bob", "alice")
        self.chat(alice, bob, "hello bob")
        self.chat(bob, alice, "hello alice")
        bob.send("<presence><show>away</show></presence>")
        p = alice.expect(is_presence(bob.jid, "available"), 5, "bob's presence change")
        show = p.find(q(NS_CLIENT, "show"))
        require(show is not None and show.text == "away", f"bob's show: {short(p)}")
        # An iq between full JIDs crosses both ways (request and result).
        alice.send(f"<iq type='get' id='v1' to='{bob.jid}'>"
                   "<query xmlns='jabber:iq:version'/></iq>")
        req = bob.expect(is_iq("get", "v1"), 5, "alice's iq at bob's resource")
        require_eq(req.get("from"), alice.jid, "iq from")
        bob.send(f"<iq type='result' id='v1' to='{alice.jid}'/>")
        alice.expect(is_iq("result", "v1"), 5, "bob's iq result at alice")
        # An iq to a resource that does not exist on the peer is refused by the peer.
        ans = alice.iq("get", "<ping xmlns='urn:xmpp:ping'/>", to=f"bob@{DOMAIN}/nope")
        require_eq(ans.get("type"), "error", "iq to a missing remote resource")
        # Bob's bare-JID vCard and a message to an unknown user still work as before.
        require_eq(alice.iq("get", "<vCard xmlns='vcard-temp'/>", to=f"bob@{DOMAIN}")
                   .get("type"), "result", "vcard of a remote user")

    def step_stop_cont(self):
        alice, bob = self.alice, self.bob
        self.e2.proc.send_signal(signal.SIGSTOP)
        alice.expect(is_presence(bob.jid, "unavailable"), 6,
                     "bob's resource unavailable at alice after engine 2 stopped")
        self.e1.wait_route_down(6)
        self.e2.proc.send_signal(signal.SIGCONT)
        bob.expect(is_presence(alice.jid, "unavailable"), 6,
                   "alice unavailable at bob once engine 2 sees the link was lost")
        self.e1.wait_route("2")
        alice.expect(is_presence(bob.jid, "available"), 8,
                     "bob available again at alice after the link recovered")
        bob.expect(is_presence(alice.jid, "available"), 8,
                   "alice available again at bob after the link recovered")
        self.chat(alice, bob, "after recovery")

    def step_ack_lost(self):
        """The receiver delivers, its ACK never reaches the sender: engine 2 is stopped
        while alice's message is sent (so no ACK yet), engine 1 is stopped once it holds
        the message, engine 2 is continued and delivers it (the ACK waits in the stopped
        engine 1's socket), closes the link after dead_timeout of silence, and engine 1,
        continued, finds the link dead and sends the message again on the next one."""
        e1, e2, alice, bob = self.e1, self.e2, self.alice, self.bob
        before1, before2 = e1.stats(), e2.stats()
        e2.proc.send_signal(signal.SIGSTOP)
        alice.send(f"<message to='bob@{DOMAIN}' type='chat' id='m-once'>"
                   "<body>exactly once</body></message>")
        deadline = time.monotonic() + 5
        # Held, and written to the socket (not only queued in engine 1's buffer): stopped
        # with it still queued, engine 1 would not send it to the continued engine 2.
        while (st := e1.stats()).get("route_unacked") != "1" or \
                st.get("route_out_pending") != "0":
            require(time.monotonic() < deadline, f"engine 1 holds the message: {st}")
            time.sleep(0.01)
        e1.proc.send_signal(signal.SIGSTOP)
        e2.proc.send_signal(signal.SIGCONT)
        bob.expect(is_message("exactly once", "chat"), 10, "the message at bob")
        e2.wait_route_down(6)
        e1.proc.send_signal(signal.SIGCONT)
        e1.wait_route("2")
        e2.wait_route("1")
        deadline = time.monotonic() + 8
        while e1.stats().get("route_unacked") != "0":
            require(time.monotonic() < deadline, f"the message is acknowledged: {e1.stats()}")
            time.sleep(0.05)
        self.nothing(bob, is_message("exactly once"), "the message twice", 2.0)
        after1, after2 = e1.stats(), e2.stats()
        resent = int(after1["route_resent"]) - int(before1["route_resent"])
        dups = int(after2["route_duplicates"]) - int(before2["route_duplicates"])
        say(f"engine 1 sent {resent} stanza(s) again, engine 2 dropped {dups} duplicate(s)")
        require(resent >= 1 and dups == resent,
                "the scenario lost the ACK (engine 1 sent the message again) and engine 2 "
                f"dropped the copy: resent {resent}, duplicates {dups}")
        require_eq(e1.offline_count("bob") + e2.offline_count("bob"), 0,
                   "no copy in an offline store")
        bob.expect(is_presence(alice.jid, "available"), 8, "alice available again at bob")
        alice.expect(is_presence(bob.jid, "available"), 8, "bob available again at alice")
        self.chat(alice, bob, "after the lost ack")
        return resent, dups

    def step_kill_takeover(self):
        e1, e2, alice, bob = self.e1, self.e2, self.alice, self.bob
        e2.kill()
        alice.expect(is_presence(bob.jid, "unavailable"), 6,
                     "bob's resource unavailable at alice after engine 2 was killed")
        e1.wait_route_down(6)
        alice.send(f"<message to='bob@{DOMAIN}' type='chat' id='m-down'>"
                   "<body>while the link is down</body></message>")
        deadline = time.monotonic() + 8
        while e1.offline_count("bob") != 1:
            require(time.monotonic() < deadline,
                    f"bob's offline store on node 1 holds {e1.offline_count('bob')}, want 1")
            time.sleep(0.05)
        self.nothing(alice, lambda e: local(e) == "message" and e.get("type") == "error",
                     "an error for a message that must be stored", 0.5)
        # Takeover: engine 1 serves home node 2 too; bob logs in there.
        e1.serve("1,2")
        b1 = self.online(e1, "bob", "r2")
        m = b1.expect(is_message("while the link is down", "chat"), 5,
                      "the stored message at bob's next login (node 1)")
        require_eq(m.get("from"), alice.jid, "stored message from")
        self.nothing(b1, is_message("while the link is down"), "the stored message twice")
        require_eq(e1.offline_count("bob"), 0, "bob's offline store after delivery")
        b1.close()
        b1 = self.online(e1, "bob", "r3")
        self.nothing(b1, is_message("while the link is down"),
                     "the stored message again at a second login")
        # Fallback: node 1 gives home node 2 back, engine 2 restarts and serves it.
        e1.serve("1")
        b1.expect_close(5)
        e2.start("2")
        e1.wait_route("2")
        e2.wait_route("1")
        bob = self.online(e2, "bob", "r4")
        alice.expect(is_presence(bob.jid, "available"), 6,
                     "bob available at alice after engine 2 restarted")
        bob.expect(is_presence(alice.jid, "available"), 6,
                   "alice's presence at bob (probe answered over the link)")
        self.bob = bob
        self.chat(bob, alice, "back again")
        self.chat(alice, bob, "welcome back")

    def step_confirm_after_write(self):
        """An answer that confirms alice's messages to bob leaves engine 1 only once what
        they put on the route link is written to the kernel (a kill -9 right after cannot
        take them back): engine 2 stopped, alice writes big messages to bob until engine 1
        holds route output it cannot write, then pings; no answer while engine 2 stays
        stopped; continued, the answer comes and bob gets every message once.  (Engines
        with a 10 s dead timeout: the link must outlive the stop.)"""
        e1, e2 = self.e1, self.e2
        for c in (self.alice, self.bob):
            c.close()
        e1.restart_with_dead_timeout("1", "10s")
        e2.restart_with_dead_timeout("2", "10s")
        e1.wait_route("2")
        e2.wait_route("1")
        alice, bob = self.online(e1, "alice", "r8"), self.online(e2, "bob", "r8")
        self.alice, self.bob = alice, bob
        e2.proc.send_signal(signal.SIGSTOP)
        t0, n, filler = time.monotonic(), 0, "x" * 60000
        # Over 1 MB not written: the kernel's buffers are full (a few frames may wait for
        # the next turn of engine 1's loop at any time).
        while int(e1.stats().get("route_out_pending", "0")) < 1000000:
            require(time.monotonic() - t0 < 6 and n < 500,
                    f"engine 1's route output backed up after {n} messages: {e1.stats()}")
            for _ in range(10):
                n += 1
                alice.send(f"<message to='bob@{DOMAIN}' type='chat' id='big{n}'>"
                           f"<body>{n} {filler}</body></message>")
            time.sleep(0.05)
        alice.send(f"<iq type='get' id='confirm' to='{DOMAIN}'>"
                   "<ping xmlns='urn:xmpp:ping'/></iq>")
        self.nothing(alice, is_iq("result", "confirm"),
                     "the ping's answer while its messages wait unwritten", 1.0)
        say(f"{n} messages ({n * 60} kB) to bob; engine 1 holds "
            f"{e1.stats().get('route_out_pending')} bytes it cannot write: no answer")
        e2.proc.send_signal(signal.SIGCONT)
        alice.expect(is_iq("result", "confirm"), 15, "the ping's answer once written")
        got = set()
        deadline = time.monotonic() + 20
        while len(got) < n:
            left = deadline - time.monotonic()
            m = bob.expect(lambda e: local(e) == "message" and (e.get("id") or "")
                           .startswith("big"), max(left, 0.1), f"message {len(got) + 1}/{n}")
            k = int(m.get("id")[3:])
            require(k not in got, f"message {k} twice at bob")
            got.add(k)

    def step_ack_after_db(self):
        """Engine 2 acknowledges a STANZA only once its database work is done: bob
        offline, engine 2's offline_messages locked, alice's message to bob stays
        unacknowledged at engine 1 until the lock goes (a kill -9 of engine 2 meanwhile
        would leave it with engine 1, which sends it again); then it is stored once."""
        e1, e2, alice, bob = self.e1, self.e2, self.alice, self.bob
        bob.close()
        alice.expect(is_presence(bob.jid, "unavailable"), 6, "bob gone, at alice")
        before = e2.offline_count("bob")
        unlock = lock_table(e2.pg[0], e2.pg[1], "offline_messages")
        try:
            alice.send(f"<message to='bob@{DOMAIN}' type='chat' id='m-db'>"
                       "<body>stored before acknowledged</body></message>")
            deadline = time.monotonic() + 5
            while int(e2.stats().get("route_received", "0")) == 0 or \
                    e1.stats().get("route_unacked") != "1":
                require(time.monotonic() < deadline, f"engine 1 holds the message: "
                        f"{e1.stats()}")
                time.sleep(0.05)
            time.sleep(1.0)  # an ACK would be back within a few ms
            require_eq(e1.stats().get("route_unacked"), "1",
                       "unacknowledged at engine 1 while engine 2's INSERT waits")
        finally:
            unlock()
        deadline = time.monotonic() + 10
        while e1.stats().get("route_unacked") != "0":
            require(time.monotonic() < deadline, f"acknowledged once stored: {e1.stats()}")
            time.sleep(0.05)
        require_eq(e2.offline_count("bob"), before + 1, "bob's offline store on node 2")

    def step_slow_release(self):
        """A planned move ends sessions one by one (engine/release.c): three of home node 1
        over 90 s, so one now, the next after 30 s.  Engine 2 serves home node 1 already;
        the two still on engine 1 are still there: a message between them is delivered there
        at once, not stored by engine 2 for their next login (before: forwarded and stored).
        When engine 1 serves home node 1 again, the release stops and they stay."""
        e1, e2 = self.e1, self.e2
        users = ("carol", "dave", "erin")
        for c in self.clients:  # earlier steps' sessions of home node 1 would be released too
            c.close()
        cs = {u: self.online(e1, u) for u in users}
        deadline = time.monotonic() + 5
        while e1.stats().get("sessions_node1") != "3":
            require(time.monotonic() < deadline, f"three sessions of home node 1: {e1.stats()}")
            time.sleep(0.05)
        e2.serve("1,2")
        e1.wait_route("1,2")
        reply = e1.request(f"release 1 127.0.0.1:{e2.xmpp_port} 90000")
        require_eq(reply, "release ok 3", "release")
        deadline = time.monotonic() + 5
        gone = None
        while gone is None:
            for u, c in cs.items():
                c.pump(0.05)
                if c.stream_error:
                    require_eq(c.stream_error, "see-other-host", f"{u}'s stream error")
                    gone = u
            require(time.monotonic() < deadline, "the first session released within 5 s")
        left = [u for u in users if u != gone]
        for u in left:
            require(cs[u].stream_error is None, f"{u} released with the first: {cs[u].stream_error}")
        require_eq(e1.stats().get("release_pending"), "2", "sessions still to release")
        self.chat(cs[left[0]], cs[left[1]], "still here")
        self.chat(cs[left[1]], cs[left[0]], "me too")
        require_eq(e2.offline_count(left[0]) + e2.offline_count(left[1]), 0,
                   "messages stored by engine 2")
        # A message engine 2 stored for a user still here reaches engine 1's database by
        # replication (replica mode, NOTIFY duet_offline): engine 1 serves home node 1 no
        # more, so it leaves it to engine 2 (both flushing their copy delivered it twice).
        stanza = (f"<message from='{gone}@{DOMAIN}/r1' to='{left[0]}@{DOMAIN}' type='chat'>"
                  "<body>stored by the peer</body></message>").replace("'", "''")
        e1.psql("SET session_replication_role = replica; INSERT INTO offline_messages"
                f" (username, stanza) VALUES ('{left[0]}', '{stanza}')")
        self.nothing(cs[left[0]], is_message("stored by the peer"),
                     "a stored message on the node that no longer serves it", 1.5)
        require_eq(e1.offline_count(left[0]), 1, "the message still stored on engine 1")
        # Engine 1 serves home node 1 again (a fallback): the release stops, the two stay,
        # and engine 1 delivers what was stored meanwhile.
        e2.serve("2")
        e1.serve("1")
        e1.wait_route("2")
        require_eq(e1.stats().get("release_pending"), "0", "sessions to release after serve")
        cs[left[0]].expect(is_message("stored by the peer", "chat"), 5,
                           "the stored message once engine 1 serves again")
        for u in left:
            cs[u].pump(1.0)
            require(cs[u].stream_error is None, f"{u} released after serve: {cs[u].stream_error}")
        self.nothing(cs[left[0]], is_message("stored by the peer"), "the stored message twice",
                     0.5)
        self.chat(cs[left[0]], cs[left[1]], "staying")

    def step_strangers(self, certs):
        e1, e2, alice, bob = self.e1, self.e2, self.alice, self.bob
        # No certificate: the handshake fails and the established link is untouched.
        s = socket.create_connection(("127.0.0.1", e2.route_port), timeout=5)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        try:
            t = ctx.wrap_socket(s)
            t.sendall(b"DR\x03\x01\x00\x00\x00\x05hello")
            t.recv(100)
        except (ssl.SSLError, OSError):
            pass
        s.close()
        # A certificate from the CA with the wrong name: refused as well.
        s = socket.create_connection(("127.0.0.1", e2.route_port), timeout=5)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(str(certs / "ca.pem"))
        ctx.load_cert_chain(str(certs / "rogue.pem"), str(certs / "rogue.key"))
        ctx.check_hostname = False
        try:
            t = ctx.wrap_socket(s, server_hostname="node2")
            t.sendall(b"DR\x03\x01\x00\x00\x00\x05hello")
            t.recv(100)
        except (ssl.SSLError, OSError):
            pass
        s.close()
        time.sleep(0.3)
        self.chat(alice, bob, "link untouched")
        st = e1.stats()
        require_eq(st.get("route_up"), "1", "route link still up after strangers")
        # A real peer certificate (node1's) sending garbage after a good HELLO: that
        # connection is closed, and it replaced the link only after its HELLO.
        s = socket.create_connection(("127.0.0.1", e2.route_port), timeout=5)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(str(certs / "ca.pem"))
        ctx.load_cert_chain(str(certs / "node1.pem"), str(certs / "node1.key"))
        t = ctx.wrap_socket(s, server_hostname="node2")
        hello = b"duet-route 3 3 1 00000000fa4efa4e"
        t.sendall(b"DR\x03\x01" + len(hello).to_bytes(4, "big") + hello)
        t.sendall(b"DR\x03\x02\x00\x00\x00\x01" + b"1")       # SERVE 1
        t.sendall(b"XX\x01\x07\x00\x00\x00\x00")              # bad magic
        t.settimeout(5)
        got = b""
        try:
            while True:
                d = t.recv(4096)
                if not d:
                    break
                got += d
        except (ssl.SSLError, OSError):
            pass
        t.close()
        require(got.startswith(b"DR\x03\x01"), f"engine 2 answered HELLO: {got[:40]!r}")
        # The fake peer replaced the link and was thrown out: alice's engine reconnects,
        # and bob (who lost alice's presence with the fake link) sees her again.
        bob.expect(is_presence(alice.jid, "available"), 10,
                   "alice available at bob after the real link came back")
        e1.wait_route("2")
        self.chat(alice, bob, "after the garbage")


def wait_route_down(self, timeout):
    deadline = time.monotonic() + timeout
    while self.stats().get("route_up") != "0":
        if time.monotonic() > deadline:
            raise XmppError(f"engine {self.n}: route link still up")
        time.sleep(0.05)


Engine.wait_route_down = wait_route_down


def main():
    build = Path(os.environ.get("DUET_BUILD", str(ROOT / "build"))).resolve()
    if not os.access(build / "bin" / "presenced", os.X_OK):
        print(f"{PROG}: SKIP: {build}/bin/presenced not built")
        return 77
    if not (PG_BIN / "initdb").exists() or not shutil.which("openssl"):
        print(f"{PROG}: SKIP: PostgreSQL 15 or openssl missing")
        return 77
    work = Path(tempfile.mkdtemp(prefix="rl.", dir="/tmp"))  # short: unix socket paths
    os.chmod(work, 0o755)
    base = free_base_port()
    pgs = [work / "pg1", work / "pg2"]
    engines = []
    failed = []
    try:
        certs = work / "tls"
        make_certs(certs)
        for i, d in enumerate(pgs):
            pg_start(d, base + 100 + i)
        e1 = Engine(build, work, 1, base, pgs[0], base + 100, certs)
        e2 = Engine(build, work, 2, base, pgs[1], base + 101, certs)
        engines = [e1, e2]
        for e in engines:
            e.migrate()
            for user, home in (("alice", 1), ("bob", 2), ("carol", 1), ("dave", 1),
                               ("erin", 1)):
                pw = f"{user}-secret"
                s1 = scram_keys(pw, "sha1", os.urandom(16))
                s2 = scram_keys(pw, "sha256", os.urandom(16))
                e.psql("INSERT INTO users (username, home_node, sha1_salt, sha1_iter,"
                       " sha1_stored, sha1_server, sha256_salt, sha256_iter, sha256_stored,"
                       f" sha256_server) VALUES ('{user}', {home},"
                       f" decode('{s1[0]}','hex'), {s1[1]}, decode('{s1[2]}','hex'),"
                       f" decode('{s1[3]}','hex'), decode('{s2[0]}','hex'), {s2[1]},"
                       f" decode('{s2[2]}','hex'), decode('{s2[3]}','hex'))")
        e1.start("1")
        e2.start("2")
        say("two engines up, each serving its own home node")
        sc = Scenario(e1, e2)
        for name, fn, args in (("cross-node subscriptions, presence, messages, iq",
                                sc.step_cross, ()),
                               ("SIGSTOP of engine 2: unavailable, then recovery",
                                sc.step_stop_cont, ()),
                               ("ACK lost with the link: delivered exactly once",
                                sc.step_ack_lost, ()),
                               ("kill of engine 2: stored offline, takeover, fallback",
                                sc.step_kill_takeover, ()),
                               ("strangers and a garbage-sending peer",
                                sc.step_strangers, (certs,)),
                               ("a confirmation waits until the route link wrote",
                                sc.step_confirm_after_write, ()),
                               ("an ACK waits for the receiver's database work",
                                sc.step_ack_after_db, ()),
                               ("a slow planned release: users still here get messages here",
                                sc.step_slow_release, ())):
            try:
                fn(*args)
            except Exception as ex:  # later steps build on this one: stop here
                failed.append(name)
                say(f"FAIL {name}: {ex}")
                for e in engines:
                    say(f"engine {e.n} log tail:\n{e.tail()}")
                break
            say(f"PASS {name}")
        for c in sc.clients:
            c.close()
    except XmppError as ex:
        failed.append("setup")
        say(f"FAIL setup: {ex}")
    finally:
        for e in engines:
            e.stop()
        for d in pgs:
            pg_stop(d)
        if not failed and not os.environ.get("DUET_TEST_KEEP"):
            shutil.rmtree(work, ignore_errors=True)
        else:
            say(f"kept {work} for inspection")
    say("all passed" if not failed else f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
