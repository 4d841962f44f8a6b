"""A raw XMPP client for conformance and hostile-input tests: every byte sent is the test's.

Plain sockets + ssl, an XMLPullParser per stream, SCRAM-SHA-256 / SCRAM-SHA-1 / PLAIN
implemented here with hashlib/hmac (no slixmpp).  Every wait is bounded.  Also a small
local-group wrapper (contrib/local-group) and a check reporter shared by the engine tests.

    c = RawClient(env, source="127.0.0.7")
    c.login("alice", "secret", resource="r1")          # STARTTLS + SCRAM-SHA-256 + bind
    c.send("<message to='bob@duet.test' type='chat'><body>hi</body></message>")
    m = c.expect(lambda e: local(e) == "message", 5)
    cond = c.expect_stream_error(5)                    # "policy-violation", ...
"""

import base64
import hashlib
import hmac
import itertools
import os
import random
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import traceback
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

NS_CLIENT = "jabber:client"
NS_STREAMS = "http://etherx.jabber.org/streams"
NS_STREAM_ERR = "urn:ietf:params:xml:ns:xmpp-streams"
NS_STANZA_ERR = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_ROSTER = "jabber:iq:roster"

READ_CHUNK = 65536
_ids = itertools.count(1)


class XmppError(Exception):
    """A protocol step did not go as the test expected."""


class StreamClosed(XmppError):
    """The server closed the connection (see .stream_error for its condition, if any)."""


class WaitTimeout(XmppError):
    """A bounded wait ran out."""


def local(el):
    """Local name of an element: '{jabber:client}message' -> 'message'."""
    return el.tag.rsplit("}", 1)[-1]


def ns(el):
    return el.tag[1:].split("}", 1)[0] if el.tag.startswith("{") else ""


def q(namespace, name):
    return f"{{{namespace}}}{name}"


def short(el, limit=600):
    """An element serialized for messages and evidence, truncated."""
    if el is None:
        return "None"
    text = ET.tostring(el, encoding="unicode")
    return text if len(text) <= limit else text[:limit] + "...(truncated)"


def esc(text):
    return (str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("'", "&apos;").replace('"', "&quot;"))


def new_id(prefix="t"):
    return f"{prefix}{next(_ids)}"


def error_condition(el):
    """The defined condition of a stanza error (<error><cond xmlns=stanzas/></error>), or None."""
    err = el.find(q(NS_CLIENT, "error"))
    if err is None:
        return None
    for child in err:
        if ns(child) == NS_STANZA_ERR and local(child) != "text":
            return local(child)
    return None


def error_type(el):
    err = el.find(q(NS_CLIENT, "error"))
    return err.get("type") if err is not None else None


# ---- SASL mechanisms ------------------------------------------------------------------

def _saslname(user):
    return user.replace("=", "=3D").replace(",", "=2C")


class ScramClient:
    """RFC 5802 client side, without channel binding (gs2 header 'n,,')."""

    def __init__(self, user, password, hash_name="sha256"):
        self.hash_name = hash_name
        self.password = password.encode()
        self.nonce = base64.b64encode(os.urandom(18)).decode()
        self.first_bare = f"n={_saslname(user)},r={self.nonce}"
        self.server_signature = None

    def first(self):
        return ("n,," + self.first_bare).encode()

    def _h(self, data):
        return hashlib.new(self.hash_name, data).digest()

    def _hmac(self, key, data):
        return hmac.new(key, data, self.hash_name).digest()

    def final(self, server_first):
        text = server_first.decode()
        attrs = dict(part.split("=", 1) for part in text.split(",") if "=" in part)
        nonce, salt, iters = attrs.get("r", ""), attrs.get("s", ""), attrs.get("i", "")
        if not nonce.startswith(self.nonce) or not salt or not iters.isdigit():
            raise XmppError(f"bad SCRAM server-first-message: {text!r}")
        salted = hashlib.pbkdf2_hmac(self.hash_name, self.password, base64.b64decode(salt),
                                     int(iters))
        client_key = self._hmac(salted, b"Client Key")
        without_proof = f"c=biws,r={nonce}"
        auth_message = f"{self.first_bare},{text},{without_proof}".encode()
        signature = self._hmac(self._h(client_key), auth_message)
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        server_key = self._hmac(salted, b"Server Key")
        self.server_signature = self._hmac(server_key, auth_message)
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def verify(self, server_final):
        text = server_final.decode()
        if not text.startswith("v="):
            raise XmppError(f"SCRAM server-final without a verifier: {text!r}")
        if base64.b64decode(text[2:]) != self.server_signature:
            raise XmppError("SCRAM server signature does not verify")


def b64(data):
    return base64.b64encode(data).decode() if data else "="


def unb64(text):
    text = (text or "").strip()
    return b"" if text in ("", "=") else base64.b64decode(text)


# ---- the client -----------------------------------------------------------------------

class RawClient:
    """One TCP (optionally TLS) connection to the server, parsed as an XMPP stream."""

    def __init__(self, env, source="127.0.0.1", direct_tls=False, rcvbuf=None,
                 connect_timeout=5.0):
        self.env = env
        self.domain = env["DOMAIN"]
        self.port = int(env["NODE1_XMPPS_PORT"] if direct_tls else env["NODE1_XMPP_PORT"])
        self.cafile = env["TLS_CERT"]
        self.source = source
        self.features = None
        self.header = None          # attributes of the server's stream header
        self.stanzas = []           # received top-level elements not yet claimed
        self.stream_error = None    # condition of a received <stream:error/>
        self.stream_error_el = None
        self.stream_closed = False  # received </stream:stream>
        self.eof = False
        self.parse_error = None
        self.raw_log = []           # (monotonic time, bytes) of every chunk received
        self.jid = None
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            # Set before connect so the advertised window stays small: a client that "never
            # reads" fills up after a few KiB instead of megabytes of kernel buffering.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(connect_timeout)
        if source:
            self.sock.bind((source, 0))
        self.sock.connect(("127.0.0.1", self.port))
        self.tls = False
        if direct_tls:
            self._wrap_tls()
        self._new_parser()

    # -- transport --

    def _wrap_tls(self):
        ctx = ssl.create_default_context(cafile=self.cafile)
        ctx.check_hostname = True
        self.sock = ctx.wrap_socket(self.sock, server_hostname=self.domain)
        self.tls = True

    def _new_parser(self):
        self.parser = ET.XMLPullParser(events=("start", "end"))
        self.depth = 0
        self.root = None

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.settimeout(5.0)
        self.sock.sendall(data)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def _read_once(self, timeout):
        """Read one chunk (up to timeout s) and parse it.  False on timeout."""
        if self.eof:
            raise StreamClosed(self._closed_text())
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data = self.sock.recv(READ_CHUNK)
        except (socket.timeout, TimeoutError):
            return False
        except ssl.SSLWantReadError:
            return False
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError, OSError) as e:
            self.eof = True
            raise StreamClosed(f"{self._closed_text()} ({e.__class__.__name__}: {e})") from None
        if not data:
            self.eof = True
            raise StreamClosed(self._closed_text())
        self.raw_log.append((time.monotonic(), data))
        self._parse(data)
        return True

    def _closed_text(self):
        parts = ["connection closed by the server"]
        if self.stream_error:
            parts.append(f"after stream error <{self.stream_error}/>")
        if self.stream_closed:
            parts.append("after </stream:stream>")
        return " ".join(parts)

    def _parse(self, data):
        if self.parse_error:
            return
        try:
            self.parser.feed(data)
            for event, el in self.parser.read_events():
                if event == "start":
                    self.depth += 1
                    if self.depth == 1:
                        self.root = el
                        self.header = dict(el.attrib)
                        self.header["_tag"] = el.tag
                    continue
                self.depth -= 1
                if self.depth == 0:
                    self.stream_closed = True
                elif self.depth == 1:
                    self._top_level(el)
                    self.root.remove(el)
        except ET.ParseError as e:
            self.parse_error = f"server sent bad XML: {e}"

    def _top_level(self, el):
        if el.tag == q(NS_STREAMS, "error"):
            self.stream_error_el = el
            for child in el:
                if ns(child) == NS_STREAM_ERR and local(child) != "text":
                    self.stream_error = local(child)
            if not self.stream_error:
                self.stream_error = "(no defined condition)"
        elif el.tag == q(NS_STREAMS, "features"):
            self.features = el
        else:
            self.stanzas.append(el)

    # -- waiting --

    def expect(self, predicate, timeout=5.0, what="a matching stanza"):
        """Return (and claim) the first received stanza matching predicate, waiting up to
        timeout seconds.  Raises WaitTimeout or StreamClosed."""
        deadline = time.monotonic() + timeout
        while True:
            for i, el in enumerate(self.stanzas):
                if predicate(el):
                    return self.stanzas.pop(i)
            if self.stream_error:
                raise StreamClosed(f"stream error <{self.stream_error}/> while waiting for "
                                   f"{what}")
            left = deadline - time.monotonic()
            if left <= 0:
                pending = "; ".join(short(e, 200) for e in self.stanzas[-5:]) or "nothing"
                raise WaitTimeout(f"no {what} within {timeout:g}s (unclaimed: {pending})")
            self._read_once(left)

    def pump(self, seconds):
        """Read whatever arrives during `seconds` (stanzas are queued, not claimed)."""
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                self._read_once(left)
            except StreamClosed:
                return

    def expect_stream_error(self, timeout=5.0):
        """Wait for a <stream:error/> (or the connection's end); return its condition or
        None when the connection ended without one."""
        deadline = time.monotonic() + timeout
        while not self.stream_error:
            left = deadline - time.monotonic()
            if left <= 0:
                raise WaitTimeout(f"no stream error within {timeout:g}s")
            try:
                self._read_once(left)
            except StreamClosed:
                break
        return self.stream_error

    def expect_close(self, timeout=5.0):
        """Wait until the server closed the TCP connection; True if it did in time."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                self._read_once(left)
            except StreamClosed:
                return True
        return True

    def wait_features(self, timeout=5.0):
        deadline = time.monotonic() + timeout
        while self.features is None:
            if self.stream_error:
                raise StreamClosed(f"stream error <{self.stream_error}/> instead of features")
            left = deadline - time.monotonic()
            if left <= 0:
                raise WaitTimeout(f"no stream features within {timeout:g}s")
            self._read_once(left)
        return self.features

    # -- stream setup --

    def open_stream(self, to=None, version="1.0", namespace=NS_STREAMS, wait=True,
                    content_ns=NS_CLIENT):
        """Send a stream header (each argument None = leave the attribute out); with wait,
        return the features element."""
        self.features = None
        attrs = [f"xmlns='{content_ns}'", f"xmlns:stream='{namespace}'"]
        to = self.domain if to is None else to
        if to is not False:
            attrs.append(f"to='{esc(to)}'")
        if version is not None:
            attrs.append(f"version='{esc(version)}'")
        self.send(f"<?xml version='1.0'?><stream:stream {' '.join(attrs)}>")
        return self.wait_features() if wait else None

    def mechanisms(self):
        f = self.features
        if f is None:
            return []
        mech = f.find(q(NS_SASL, "mechanisms"))
        return [m.text for m in mech.findall(q(NS_SASL, "mechanism"))] if mech is not None else []

    def starttls(self):
        self.send(f"<starttls xmlns='{NS_TLS}'/>")
        el = self.expect(lambda e: ns(e) == NS_TLS, 5, "a STARTTLS answer")
        if local(el) != "proceed":
            raise XmppError(f"STARTTLS refused: {short(el)}")
        self._wrap_tls()
        self._new_parser()
        return self.open_stream()

    def _sasl_answer(self, timeout=10.0):
        return self.expect(lambda e: ns(e) == NS_SASL, timeout, "a SASL answer")

    def auth(self, user, password, mech="SCRAM-SHA-256"):
        """Run SASL; return None on success (stream restarted, features read), else the
        <failure/> condition."""
        if mech == "PLAIN":
            payload = b"\0" + user.encode() + b"\0" + password.encode()
            self.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{b64(payload)}</auth>")
            ans = self._sasl_answer()
        else:
            scram = ScramClient(user, password, "sha1" if mech == "SCRAM-SHA-1" else "sha256")
            self.send(f"<auth xmlns='{NS_SASL}' mechanism='{mech}'>{b64(scram.first())}</auth>")
            ans = self._sasl_answer()
            if local(ans) == "challenge":
                final = scram.final(unb64(ans.text))
                self.send(f"<response xmlns='{NS_SASL}'>{b64(final)}</response>")
                ans = self._sasl_answer()
                if local(ans) == "success":
                    scram.verify(unb64(ans.text))
        if local(ans) == "failure":
            conds = [local(c) for c in ans if local(c) != "text"]
            return conds[0] if conds else "(no condition)"
        if local(ans) != "success":
            raise XmppError(f"unexpected SASL answer: {short(ans)}")
        self._new_parser()
        self.open_stream()
        return None

    def bind(self, resource=None):
        """Bind; return the bound full JID or raise XmppError with the error condition."""
        iid = new_id("bind")
        inner = f"<resource>{esc(resource)}</resource>" if resource else ""
        self.send(f"<iq type='set' id='{iid}'><bind xmlns='{NS_BIND}'>{inner}</bind></iq>")
        ans = self.expect(lambda e: local(e) == "iq" and e.get("id") == iid, 10, "bind result")
        if ans.get("type") != "result":
            raise BindError(error_condition(ans), error_type(ans), ans)
        jid = ans.find(f"{q(NS_BIND, 'bind')}/{q(NS_BIND, 'jid')}")
        if jid is None or not jid.text:
            raise XmppError(f"bind result without a jid: {short(ans)}")
        self.jid = jid.text
        return self.jid

    def login(self, user, password, resource=None, mech="SCRAM-SHA-256"):
        """STARTTLS (unless direct TLS), SASL, bind.  Returns the full JID."""
        self.open_stream()
        if not self.tls:
            self.starttls()
        cond = self.auth(user, password, mech)
        if cond:
            raise XmppError(f"authentication of {user} failed: <{cond}/>")
        return self.bind(resource)

    # -- stanzas --

    def iq(self, type_, payload, to=None, timeout=5.0):
        """Send an iq, return the answer with the same id (result or error)."""
        iid = new_id("iq")
        to_attr = f" to='{esc(to)}'" if to else ""
        self.send(f"<iq type='{type_}' id='{iid}'{to_attr}>{payload}</iq>")
        return self.expect(lambda e: local(e) == "iq" and e.get("id") == iid
                           and e.get("type") in ("result", "error"), timeout,
                           f"the answer to iq {iid} ({payload[:60]})")

    def received_whitespace_since(self, t0):
        """True if a chunk consisting only of whitespace arrived after monotonic time t0."""
        return any(t >= t0 and data.strip() == b"" for t, data in self.raw_log)


class BindError(XmppError):
    def __init__(self, condition, etype, el):
        super().__init__(f"bind failed: <{condition}/> type={etype}: {short(el)}")
        self.condition = condition
        self.etype = etype
        self.el = el


def is_iq(kind=None, id_=None):
    return lambda e: (local(e) == "iq" and (kind is None or e.get("type") == kind)
                      and (id_ is None or e.get("id") == id_))


def is_presence(sender=None, kind=None):
    """Presence from `sender` (a full JID, or a bare JID matching any resource)."""
    def match(e):
        if local(e) != "presence":
            return False
        frm = e.get("from", "")
        if sender is not None and frm != sender and frm.split("/")[0] != sender:
            return False
        return kind is None or e.get("type") == kind or (kind == "available"
                                                          and e.get("type") is None)
    return match


def is_message(body=None, kind=None):
    def match(e):
        if local(e) != "message":
            return False
        if kind is not None and e.get("type", "normal") != kind:
            return False
        if body is not None:
            b = e.find(q(NS_CLIENT, "body"))
            return b is not None and b.text == body
        return True
    return match


def is_roster_push():
    return lambda e: (local(e) == "iq" and e.get("type") == "set"
                      and e.find(q(NS_ROSTER, "query")) is not None)


# ---- a local group -------------------------------------------------------------------

def free_base_port(start=20000, stop=32700, step=10):
    """A base port below the ephemeral range (32768+), so no outgoing connection of any
    process can be holding it when the engine binds it a moment later."""
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
    raise XmppError("no free loopback ports found")


def load_group_env(path):
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


class Group:
    """A one-node local group in a private directory under DUET_TEST_TMP."""

    def __init__(self, build):
        self.build = build
        parent = os.environ.get("DUET_TEST_TMP") or None
        self.dir = tempfile.mkdtemp(prefix="g.", dir=parent)
        self.env = None
        self.base = None

    def up(self, extra_conf=""):
        """Start (or restart with another config: `down` first) the group."""
        if self.base is None:
            self.base = free_base_port()
        cmd = [str(ROOT / "contrib" / "local-group"), "up", self.dir, "--nodes", "1",
               "--base-port", str(self.base), "--build", self.build]
        env = dict(os.environ, DUET_EXTRA_XMPP_CONF=extra_conf)
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False,
                             env=env)
        if res.returncode != 0:
            raise XmppError(f"local-group up failed ({res.returncode}):\n{res.stdout}{res.stderr}")
        self.env = load_group_env(os.path.join(self.dir, "group.env"))
        return self.env

    def down(self):
        subprocess.run([str(ROOT / "contrib" / "local-group"), "down", self.dir],
                       capture_output=True, timeout=120, check=False)

    def srmctl(self, *args):
        cmd = [os.path.join(self.build, "bin", "srmctl"), "-s", self.env["NODE1_CTL"], *args]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
        if res.returncode != 0:
            raise XmppError(f"{' '.join(cmd)} exited {res.returncode}: "
                            f"{(res.stderr or res.stdout).strip()}")
        return res.stdout

    def add_user(self, user, password):
        self.srmctl("user", "add", f"{user}@{self.env['DOMAIN']}", password)

    def log_tail(self, lines=40):
        try:
            with open(os.path.join(self.dir, "node1", "srmd.log"), encoding="utf-8",
                      errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return "(no srmd.log)"

    def remove(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def end(self, checks, ok):
        """Tear the group down; its directory is removed only when every check passed (and
        DUET_KEEP is not set), otherwise kept, with the tail of srmd.log shown."""
        if not ok:
            checks.say("last lines of srmd.log:\n" + self.log_tail())
        self.down()
        if ok and not os.environ.get("DUET_KEEP"):
            self.remove()
        else:
            checks.say(f"logs kept in {self.dir}")


def find_build():
    build = os.path.abspath(os.environ.get("DUET_BUILD", str(ROOT / "build")))
    for b in ("srmd", "srmctl", "presenced"):
        if not os.access(os.path.join(build, "bin", b), os.X_OK):
            return None, f"not built in {build}: {b}"
    return build, None


# ---- reporting -----------------------------------------------------------------------

class Checks:
    """Runs named checks, prints one line per check, remembers failures."""

    def __init__(self, prog):
        self.prog = prog
        self.failed = []
        self.passed = 0
        self.t0 = time.monotonic()
        self._sources = itertools.count(10)

    def source(self):
        """A fresh loopback source address, so per-address limits of one check do not
        touch another (the whole of 127/8 is local on Linux)."""
        n = next(self._sources)
        return f"127.0.{n // 250}.{n % 250 + 2}"

    def say(self, text):
        print(f"{self.prog}: [{time.monotonic() - self.t0:6.2f}s] {text}", flush=True)

    def run(self, name, fn, *args):
        clients = []
        try:
            fn(clients, *args)
        except Exception as e:  # one failed check must not stop the others
            detail = str(e) if isinstance(e, XmppError) else traceback.format_exc()
            self.failed.append(name)
            self.say(f"FAIL {name}: {detail}")
        else:
            self.passed += 1
            self.say(f"PASS {name}")
        finally:
            for c in clients:
                c.close()

    def finish(self):
        self.say(f"{self.passed} passed, {len(self.failed)} failed"
                 + (f": {', '.join(self.failed)}" if self.failed else ""))
        return 1 if self.failed else 0


def require(cond, message):
    if not cond:
        raise XmppError(message)


def require_eq(have, want, what):
    if have != want:
        raise XmppError(f"{what}: got {have!r}, want {want!r}")


def group_main(prog, body):
    """The whole main() of a single-node test: a built tree found, body(group, checks) run
    (it brings the group up and runs its checks), the group torn down (kept on failure).
    Returns the exit status."""
    build, why = find_build()
    if not build:
        print(f"{prog}: FAIL: {why}")
        return 1
    checks = Checks(prog)
    group = Group(build)
    ok = False
    try:
        body(group, checks)
        ok = not checks.failed
    except Exception as e:  # noqa: BLE001 - the group itself did not come up
        checks.failed.append("setup")
        checks.say(f"FAIL setup: {e}")
    finally:
        group.end(checks, ok)
    return checks.finish()
