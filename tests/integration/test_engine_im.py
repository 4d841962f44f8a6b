#!/usr/bin/python3
"""Engine IM and presence (RFC 6121) and the server's own services with a raw client:
rosters with versioning, subscriptions (pre-approval, cancellation), directed presence,
message delivery rules, offline storage and XEP-0013, disco/ping/version/time/last,
vcard-temp, and the Cisco-style switches (Maximum Contact List Size, Suppress Offline
Instant Messaging, Enable availability sharing, Enable instant messaging).

Three configurations of one local group, restarted in between on the same database:
  A: max_contacts = 2, everything else default;
  B: suppress_offline = yes, availability_sharing = no;
  C: instant_messaging = no.
Every check uses its own users.  Exit 0 pass, 1 fail.
"""

import datetime
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "lib"))

from pg_lock import lock_table  # noqa: E402
from rawxmpp import (NS_CLIENT, NS_ROSTER, RawClient, WaitTimeout, XmppError,  # noqa: E402
                     error_condition, error_type, group_main, is_iq, is_message, is_presence,
                     is_roster_push, local, q, require, require_eq, short)

PROG = "test_engine_im"
PSQL = shutil.which("psql") or "/usr/lib/postgresql/15/bin/psql"
CONF_A = "max_contacts = 2\n"
CONF_B = "suppress_offline = yes\navailability_sharing = no\n"
CONF_C = "instant_messaging = no\n"
QUIET = 1.5  # seconds during which something that must not arrive would have shown up
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
NS_OFFLINE = "http://jabber.org/protocol/offline"
NS_DELAY = "urn:xmpp:delay"
NS_VCARD = "vcard-temp"
NS_LAST = "jabber:iq:last"
NS_DATA = "jabber:x:data"
USERS = ["ra", "pa", "pb", "ca", "cb", "da", "db", "ma", "mb", "mc", "mg", "sa",
         "la", "lb", "lc", "va", "vb", "oa", "ob", "sx", "s1", "s2", "so", "ia", "ib",
         "ha", "hb", "hc", "ja", "jb", "rp"]


def password(user):
    return f"{user}-secret"


def body_of(el):
    b = el.find(q(NS_CLIENT, "body"))
    return b.text if b is not None else None


def roster_items(el):
    query = el.find(q(NS_ROSTER, "query"))
    return {} if query is None else {i.get("jid"): i for i in query.findall(q(NS_ROSTER, "item"))}


class Suite:
    def __init__(self, group, checks):
        self.group = group
        self.checks = checks
        self.started = time.monotonic()

    @property
    def env(self):
        return self.group.env

    @property
    def d(self):
        return self.env["DOMAIN"]

    def bare(self, user):
        return f"{user}@{self.d}"

    def login(self, clients, user, resource="r1"):
        c = RawClient(self.env, source=self.checks.source())
        clients.append(c)
        c.login(user, password(user), resource)
        return c

    def online(self, clients, user, resource="r1"):
        """Logged in, roster requested (so it gets pushes), initial presence sent."""
        c = self.login(clients, user, resource)
        ans = c.iq("get", f"<query xmlns='{NS_ROSTER}'/>")
        require_eq(ans.get("type"), "result", f"{user}'s roster get")
        c.send("<presence/>")
        # A ping answered means the presence before it was handled (one stream is in order).
        require_eq(c.iq("get", "<ping xmlns='urn:xmpp:ping'/>", to=self.d).get("type"),
                   "result", "ping after initial presence")
        return c

    def presence_echo(self, clients):
        c = self.login(clients, "ra", "echo")
        c.send("<presence><show>chat</show></presence>")
        # RFC 6121 §4.2.2: initial presence goes to all the user's available resources,
        # "including the resource that generated the presence notification".
        c.expect(is_presence(c.jid, "available"), 3,
                 "the initial presence echoed back to the resource that sent it")

    def ack_pushes(self, c):
        """Answer roster pushes (RFC 6121 §2.1.6: the client replies with a result)."""
        for el in list(c.stanzas):
            if is_roster_push()(el):
                c.send(f"<iq type='result' id='{el.get('id')}'/>")

    def push_for(self, c, contact, timeout=5, **attrs):
        """Wait for a roster push about contact whose item has the given attributes."""
        def match(e):
            if not is_roster_push()(e):
                return False
            item = roster_items(e).get(contact)
            return item is not None and all(item.get(k) == v for k, v in attrs.items())
        el = c.expect(match, timeout, f"a roster push of {contact} with {attrs} to {c.jid}")
        c.send(f"<iq type='result' id='{el.get('id')}'/>")
        return el

    def nothing(self, c, predicate, what, seconds=QUIET):
        try:
            el = c.expect(predicate, seconds, what)
        except WaitTimeout:
            return
        raise XmppError(f"{c.jid} received {what}: {short(el)}")

    def subscribe(self, a, b, user_a, user_b):
        """a's user subscribes to b's user; b approves.  Both online."""
        a.send(f"<presence to='{self.bare(user_b)}' type='subscribe'/>")
        b.expect(is_presence(self.bare(user_a), "subscribe"), 5,
                 f"{user_b} to get {user_a}'s subscription request")
        b.send(f"<presence to='{self.bare(user_a)}' type='subscribed'/>")
        a.expect(is_presence(self.bare(user_b), "subscribed"), 5,
                 f"{user_a} to get 'subscribed' from {user_b}")
        a.expect(is_presence(b.jid, "available"), 5,
                 f"{user_a} to get {b.jid}'s presence after approval")

    def db_value(self, sql):
        e = self.env
        res = subprocess.run([PSQL, "-h", e["NODE1_PGHOST"], "-p", e["NODE1_PGPORT"], "-U",
                              "duet", "-d", "duet", "-Atqc", sql],
                             capture_output=True, text=True, timeout=20, check=False)
        if res.returncode != 0:
            raise XmppError(f"psql failed: {res.stderr.strip()}")
        return res.stdout.strip()

    def db_lock(self, table, mode="ACCESS EXCLUSIVE"):
        return lock_table(self.env["NODE1_PGHOST"], self.env["NODE1_PGPORT"], table,
                          mode=mode)

    def stored_during_flush(self, clients):
        """A message stored while the recipient logs in is delivered at once, in order,
        exactly once, not at its next login.  Writes to offline_messages wait (SHARE lock)
        while jb logs in, so the INSERT of the second message is still pending when jb's
        flush starts: the flush runs in jb's ordered queue behind it (the old engine sent the
        first from a SELECT that missed the second, then forgot the second until jb's next
        login), so nothing arrives while the table is locked, then both in order."""
        a = self.online(clients, "ja")
        a.send(f"<message to='{self.bare('jb')}' type='chat'><body>first</body></message>")
        deadline = time.monotonic() + 10
        while self.db_offline_count("jb") != 1:
            require(time.monotonic() < deadline, "the first message stored")
            time.sleep(0.05)
        unlock = self.db_lock("offline_messages", "SHARE")
        try:
            a.send(f"<message to='{self.bare('jb')}' type='chat'><body>second</body>"
                   "</message>")
            time.sleep(0.3)  # its INSERT waits for the lock now
            b = self.online(clients, "jb")
            self.nothing(b, lambda el: el.tag.endswith("}message"),
                         "a stored message while its INSERT waits", 1.0)
        finally:
            unlock()
        b.expect(is_message("first", "chat"), 5, "the first stored message at jb's login")
        b.expect(is_message("second", "chat"), 5,
                 "the message stored during the login, after the first, without a new login")
        self.nothing(b, lambda el: el.tag.endswith("}message"), "a stored message twice", 1.0)
        self.wait_offline("jb", 0)

    def replicated_offline(self, clients):
        """An offline message that replication writes (replica mode, as the peer's srmd
        applies it: no engine saw it) reaches its recipient who is online already, at once,
        not at its next login (NOTIFY duet_offline, engine/offline_listen.c)."""
        b = self.online(clients, "rp")
        stanza = (f"<message from='{self.bare('ja')}/r9' to='{self.bare('rp')}' type='chat'>"
                  "<body>replicated</body></message>").replace("'", "''")
        self.db_value("SET session_replication_role = replica; INSERT INTO offline_messages"
                      f" (username, stanza) VALUES ('rp', '{stanza}')")
        b.expect(is_message("replicated", "chat"), 5, "the replicated offline message")
        self.wait_offline("rp", 0)
        self.nothing(b, is_message("replicated"), "the replicated message twice", 1.0)

    def confirmed_after_db(self, clients):
        """A ping after a message is answered only once the message's database work is
        done: its offline-store INSERT committed (recipient offline), or its recipient's
        row loaded (a user the engine has not loaded yet), so a kill -9 after the answer
        cannot lose it.  The table is held locked meanwhile; the answer must wait."""
        a = self.online(clients, "ha")
        for table, rcpt in (("offline_messages", "hb"), ("users", "hc")):
            unlock = self.db_lock(table)
            try:
                a.send(f"<message to='{self.bare(rcpt)}' type='chat' id='h-{rcpt}'>"
                       "<body>held</body></message>")
                a.send(f"<iq type='get' id='p-{rcpt}' to='{self.d}'>"
                       "<ping xmlns='urn:xmpp:ping'/></iq>")
                self.nothing(a, is_iq("result", f"p-{rcpt}"),
                             f"the ping's answer while {table} is locked", 1.0)
            finally:
                unlock()
            a.expect(is_iq("result", f"p-{rcpt}"), 10, f"the ping's answer once {table} "
                     "is free")
            require_eq(self.db_offline_count(rcpt), 1, f"{rcpt}'s stored message")

    def db_offline_count(self, user):
        return int(self.db_value(
            f"SELECT count(*) FROM offline_messages WHERE username = '{user}'"))

    def wait_offline(self, user, want, timeout=8):
        deadline = time.monotonic() + timeout
        while True:
            have = self.db_offline_count(user)
            if have == want:
                return
            if time.monotonic() > deadline:
                raise XmppError(f"offline store of {user} holds {have} messages, want {want}")
            time.sleep(0.05)

    # ---- rosters ----

    def roster_versioning(self, clients):
        c = self.login(clients, "ra")
        c2 = self.login(clients, "ra", "r2")  # a second interested resource gets pushes too
        r0 = c.iq("get", f"<query xmlns='{NS_ROSTER}' ver=''/>")
        q0 = r0.find(q(NS_ROSTER, "query"))
        require(q0 is not None and q0.get("ver") is not None,
                f"roster get with ver='' must return the roster with a version: {short(r0)}")
        v0 = q0.get("ver")
        require_eq(roster_items(r0), {}, "a new user's roster")
        c2.iq("get", f"<query xmlns='{NS_ROSTER}'/>")
        contact = self.bare("pa")
        ans = c.iq("set", f"<query xmlns='{NS_ROSTER}'><item jid='{contact}' name='Pal'>"
                   "<group>Friends</group></item></query>")
        require_eq(ans.get("type"), "result", "roster set")
        for cl in (c, c2):
            push = self.push_for(cl, contact, subscription="none", name="Pal")
            v1 = push.find(q(NS_ROSTER, "query")).get("ver")
            group = roster_items(push)[contact].find(q(NS_ROSTER, "group"))
            require(group is not None and group.text == "Friends", f"push lost the group: {short(push)}")
        require(v1 and v1 != v0, f"the push's version {v1!r} (before: {v0!r})")
        same = c.iq("get", f"<query xmlns='{NS_ROSTER}' ver='{v1}'/>")
        require(same.get("type") == "result" and len(list(same)) == 0,
                f"roster get with the current version must be an empty result: {short(same)}")
        old = c.iq("get", f"<query xmlns='{NS_ROSTER}' ver='{v0}'/>")
        require(contact in roster_items(old), f"roster get with an old version: {short(old)}")
        require_eq(old.find(q(NS_ROSTER, "query")).get("ver"), v1, "version of the full roster")
        ans = c.iq("set", f"<query xmlns='{NS_ROSTER}'><item jid='{contact}' "
                   "subscription='remove'/></query>")
        require_eq(ans.get("type"), "result", "roster remove")
        push = self.push_for(c, contact, subscription="remove")
        v2 = push.find(q(NS_ROSTER, "query")).get("ver")
        self.push_for(c2, contact, subscription="remove")
        require(v2 not in (v0, v1), f"version after remove {v2!r} (before {v0!r}, {v1!r})")
        now = c.iq("get", f"<query xmlns='{NS_ROSTER}' ver='{v1}'/>")
        require(contact not in roster_items(now) and now.find(q(NS_ROSTER, "query")) is not None,
                f"roster after remove (asked with the stale version): {short(now)}")

    # ---- subscriptions ----

    def preapproval(self, clients):
        a = self.online(clients, "pa")
        b = self.online(clients, "pb")
        require(b.features is not None, "no features")
        b.send(f"<presence to='{self.bare('pa')}' type='subscribed'/>")
        self.push_for(b, self.bare("pa"), subscription="none", approved="true")
        a.send(f"<presence to='{self.bare('pb')}' type='subscribe'/>")
        self.push_for(a, self.bare("pb"), subscription="to")
        a.expect(is_presence(self.bare("pb"), "subscribed"), 5, "'subscribed' from pb")
        a.expect(is_presence(b.jid, "available"), 5, "pb's presence after pre-approval")
        self.push_for(b, self.bare("pa"), subscription="from")
        self.nothing(b, is_presence(self.bare("pa"), "subscribe"),
                     "a subscription request although it was pre-approved")

    def cancellation(self, clients):
        a = self.online(clients, "ca")
        b = self.online(clients, "cb")
        self.subscribe(a, b, "ca", "cb")
        self.subscribe(b, a, "cb", "ca")
        self.push_for(a, self.bare("cb"), subscription="both")
        self.push_for(b, self.bare("ca"), subscription="both")
        # ca stops watching cb: ca 'from', cb 'to', ca gets cb's unavailable.
        a.send(f"<presence to='{self.bare('cb')}' type='unsubscribe'/>")
        self.push_for(a, self.bare("cb"), subscription="from")
        b.expect(is_presence(self.bare("ca"), "unsubscribe"), 5, "cb to get 'unsubscribe'")
        self.push_for(b, self.bare("ca"), subscription="to")
        a.expect(is_presence(b.jid, "unavailable"), 5,
                 "ca to get unavailable from cb/r1 after unsubscribing")
        # ca cancels cb's subscription: both 'none', cb gets ca's unavailable.
        a.send(f"<presence to='{self.bare('cb')}' type='unsubscribed'/>")
        self.push_for(a, self.bare("cb"), subscription="none")
        b.expect(is_presence(self.bare("ca"), "unsubscribed"), 5, "cb to get 'unsubscribed'")
        self.push_for(b, self.bare("ca"), subscription="none")
        b.expect(is_presence(a.jid, "unavailable"), 5,
                 "cb to get unavailable from ca/r1 after its subscription was cancelled")

    def directed_presence(self, clients):
        b = self.online(clients, "db")
        a = self.online(clients, "da")
        a.send(f"<presence to='{b.jid}'><status>hello there</status></presence>")
        p = b.expect(is_presence(a.jid, "available"), 5, "directed presence from da")
        st = p.find(q(NS_CLIENT, "status"))
        require(st is not None and st.text == "hello there", f"directed presence: {short(p)}")
        a.send("</stream:stream>")
        a.expect_close(5)
        b.expect(is_presence(a.jid, "unavailable"), 5,
                 "unavailable from da/r1 after it logged out (it had sent directed presence)")

    # ---- messages ----

    def offline_and_errors(self, clients):
        a = self.online(clients, "ma")
        mb = self.bare("mb")
        a.send(f"<message to='{mb}' type='chat'><body>off-chat</body></message>")
        a.send(f"<message to='{mb}'><body>off-normal</body></message>")
        a.send(f"<message to='{mb}' type='headline'><body>off-headline</body></message>")
        self.wait_offline("mb", 2)
        self.nothing(a, lambda e: local(e) == "message" and e.get("type") == "error",
                     "an error for a message to an offline user", 0.5)
        b = self.login(clients, "mb")
        b.send("<presence/>")
        for body in ("off-chat", "off-normal"):
            m = b.expect(is_message(body), 5, f"offline message {body!r} at login")
            require(m.find(q(NS_DELAY, "delay")) is not None, f"no XEP-0203 delay: {short(m)}")
            require_eq(m.get("from", "").split("/")[0], self.bare("ma"), "offline sender")
        self.nothing(b, is_message("off-headline"), "a headline stored while offline")
        self.wait_offline("mb", 0)

    def no_such_user(self, clients):
        a = self.online(clients, "ma", "r2")
        a.send(f"<message to='ghost@{self.d}' type='chat' id='m1'><body>boo</body></message>")
        e = a.expect(lambda x: local(x) == "message" and x.get("id") == "m1", 5,
                     "an answer to a message to a non-existent user")
        require_eq((e.get("type"), error_condition(e)), ("error", "service-unavailable"),
                   f"message to a non-existent user ({short(e)})")

    def remote_domain(self, clients):
        a = self.online(clients, "ma", "r3")
        a.send("<message to='someone@remote.example' type='chat' id='m2'><body>x</body></message>")
        e = a.expect(lambda x: local(x) == "message" and x.get("id") == "m2", 5,
                     "an answer to a message to a remote domain")
        require_eq((e.get("type"), error_condition(e)), ("error", "remote-server-not-found"),
                   f"message to a remote domain ({short(e)})")

    # ---- Maximum Contact List Size = 2 ----

    def max_contacts_set(self, clients):
        c = self.online(clients, "mc")
        for contact in ("x1", "x2"):
            ans = c.iq("set", f"<query xmlns='{NS_ROSTER}'><item jid='{contact}@{self.d}'/></query>")
            require_eq(ans.get("type"), "result", f"roster set of {contact} (within the limit)")
        ans = c.iq("set", f"<query xmlns='{NS_ROSTER}'><item jid='x3@{self.d}'/></query>")
        require_eq((ans.get("type"), error_condition(ans)), ("error", "not-allowed"),
                   f"third roster item with max_contacts = 2 ({short(ans)})")

    def max_contacts_subscribe(self, clients):
        g = self.online(clients, "mg")
        g.send(f"<presence to='{self.bare('mc')}' type='subscribe'/>")
        g.expect(is_presence(self.bare("mc"), "unsubscribed"), 5,
                 "'unsubscribed' from mc, whose contact list is full")

    # ---- the server's own services ----

    def server_services(self, clients):
        c = self.online(clients, "sa")
        info = c.iq("get", f"<query xmlns='{NS_DISCO_INFO}'/>", to=self.d)
        qi = info.find(q(NS_DISCO_INFO, "query"))
        require(info.get("type") == "result" and qi is not None, f"disco#info: {short(info)}")
        ids = [(i.get("category"), i.get("type")) for i in qi.findall(q(NS_DISCO_INFO, "identity"))]
        require(("server", "im") in ids, f"identities {ids}")
        feats = {f.get("var") for f in qi.findall(q(NS_DISCO_INFO, "feature"))}
        want = {NS_DISCO_INFO, NS_DISCO_ITEMS, "urn:xmpp:ping", "jabber:iq:version",
                "urn:xmpp:time", NS_LAST, NS_VCARD, NS_OFFLINE, "msgoffline"}
        require(want <= feats, f"features missing: {sorted(want - feats)}")
        form = qi.find(q(NS_DATA, "x"))
        require(form is not None and form.get("type") == "result", f"no XEP-0128 form: {short(qi)}")
        ftype = [f for f in form.findall(q(NS_DATA, "field")) if f.get("var") == "FORM_TYPE"]
        require(ftype and ftype[0].get("type") == "hidden"
                and ftype[0].find(q(NS_DATA, "value")) is not None,
                f"XEP-0128 form without a hidden FORM_TYPE: {short(form)}")
        items = c.iq("get", f"<query xmlns='{NS_DISCO_ITEMS}'/>", to=self.d)
        require(items.get("type") == "result" and items.find(q(NS_DISCO_ITEMS, "query")) is not None,
                f"disco#items: {short(items)}")
        ping = c.iq("get", "<ping xmlns='urn:xmpp:ping'/>", to=self.d)
        require_eq(ping.get("type"), "result", "ping")
        ver = c.iq("get", "<query xmlns='jabber:iq:version'/>", to=self.d)
        vq = ver.find(q("jabber:iq:version", "query"))
        require(vq is not None and vq.findtext(q("jabber:iq:version", "name"))
                and vq.findtext(q("jabber:iq:version", "version")), f"version: {short(ver)}")
        tm = c.iq("get", "<time xmlns='urn:xmpp:time'/>", to=self.d)
        t = tm.find(q("urn:xmpp:time", "time"))
        utc = t.findtext(q("urn:xmpp:time", "utc")) if t is not None else None
        tzo = t.findtext(q("urn:xmpp:time", "tzo")) if t is not None else None
        require(utc and tzo and re.fullmatch(r"[+-]\d\d:\d\d|Z", tzo), f"time: {short(tm)}")
        when = datetime.datetime.strptime(utc[:19], "%Y-%m-%dT%H:%M:%S").replace(
            tzinfo=datetime.timezone.utc)
        skew = abs((datetime.datetime.now(datetime.timezone.utc) - when).total_seconds())
        require(utc.endswith("Z") and skew < 60, f"server time {utc} is {skew:.0f}s off")
        last = c.iq("get", f"<query xmlns='{NS_LAST}'/>", to=self.d)
        lq = last.find(q(NS_LAST, "query"))
        up = time.monotonic() - self.group_started
        require(lq is not None and lq.get("seconds", "").isdigit()
                and int(lq.get("seconds")) <= up + 2,
                f"server last activity (uptime, at most {up:.0f}s): {short(last)}")

    def last_activity(self, clients):
        a = self.online(clients, "la")
        b = self.online(clients, "lb")
        self.subscribe(a, b, "la", "lb")
        b.send("<presence type='unavailable'><status>gone fishing</status></presence>")
        b.send("</stream:stream>")
        b.expect_close(5)
        a.expect(is_presence(b.jid, "unavailable"), 5, "lb's unavailable")
        # Whole seconds on both sides (the stored logout time is rounded): wait over two.
        time.sleep(2.2)
        ans = a.iq("get", f"<query xmlns='{NS_LAST}'/>", to=self.bare("lb"))
        lq = ans.find(q(NS_LAST, "query"))
        require(ans.get("type") == "result" and lq is not None, f"last activity: {short(ans)}")
        secs = lq.get("seconds", "")
        require(secs.isdigit() and 1 <= int(secs) <= 10, f"seconds since lb's logout: {short(ans)}")
        require_eq(lq.text, "gone fishing", "lb's last status")
        # Logout times are written in batches (engine/last_activity.c): the row comes soon.
        sql = ("SELECT status || ' ' || (now() - logout_at < interval '60 seconds')"
               " FROM last_activity WHERE username = 'lb'")
        deadline = time.monotonic() + 10
        while self.db_value(sql) != "gone fishing true" and time.monotonic() < deadline:
            time.sleep(0.1)
        require_eq(self.db_value(sql), "gone fishing true", "lb's stored logout")
        c = self.online(clients, "lc")
        ans = c.iq("get", f"<query xmlns='{NS_LAST}'/>", to=self.bare("lb"))
        require_eq((ans.get("type"), error_condition(ans), error_type(ans)),
                   ("error", "forbidden", "auth"), f"last activity without a subscription "
                   f"({short(ans)})")

    def vcard(self, clients):
        a = self.online(clients, "va")
        card = f"<vCard xmlns='{NS_VCARD}'><FN>Va Tester</FN><NICKNAME>vee</NICKNAME></vCard>"
        ans = a.iq("set", card)
        require_eq(ans.get("type"), "result", f"vCard set ({short(ans)})")
        mine = a.iq("get", f"<vCard xmlns='{NS_VCARD}'/>")
        v = mine.find(q(NS_VCARD, "vCard"))
        require(v is not None and v.findtext(q(NS_VCARD, "FN")) == "Va Tester"
                and v.findtext(q(NS_VCARD, "NICKNAME")) == "vee", f"own vCard: {short(mine)}")
        b = self.online(clients, "vb")
        theirs = b.iq("get", f"<vCard xmlns='{NS_VCARD}'/>", to=self.bare("va"))
        v = theirs.find(q(NS_VCARD, "vCard"))
        require(v is not None and v.findtext(q(NS_VCARD, "FN")) == "Va Tester",
                f"va's vCard as vb sees it: {short(theirs)}")

    # ---- XEP-0013 ----

    def _offline_msgs(self, c, iq_payload, kind="get"):
        iid = f"off{time.monotonic_ns()}"
        c.send(f"<iq type='{kind}' id='{iid}'>{iq_payload}</iq>")
        ans = c.expect(is_iq(None, iid), 8, f"the answer to {iq_payload}")
        require_eq(ans.get("type"), "result", f"{iq_payload} ({short(ans)})")
        msgs = [e for e in c.stanzas if local(e) == "message"]
        for m in msgs:
            c.stanzas.remove(m)
        return msgs

    def flexible_offline(self, clients):
        a = self.online(clients, "oa")
        for i in range(1, 4):
            a.send(f"<message to='{self.bare('ob')}' type='chat'><body>flex-{i}</body></message>")
        self.wait_offline("ob", 3)
        b = self.login(clients, "ob")  # no initial presence: nothing is flushed
        msgs = self._offline_msgs(b, f"<offline xmlns='{NS_OFFLINE}'><fetch/></offline>")
        nodes = {}
        for m in msgs:
            item = m.find(f"{q(NS_OFFLINE, 'offline')}/{q(NS_OFFLINE, 'item')}")
            require(item is not None and item.get("node"), f"fetched without a node: {short(m)}")
            nodes[body_of(m)] = item.get("node")
        require_eq(sorted(nodes), ["flex-1", "flex-2", "flex-3"], "fetched bodies")
        view = self._offline_msgs(b, f"<offline xmlns='{NS_OFFLINE}'><item action='view' "
                                  f"node='{nodes['flex-2']}'/></offline>")
        require_eq([body_of(m) for m in view], ["flex-2"], "view by node")
        self._offline_msgs(b, f"<offline xmlns='{NS_OFFLINE}'><item action='remove' "
                           f"node='{nodes['flex-1']}'/></offline>", "set")
        again = self._offline_msgs(b, f"<offline xmlns='{NS_OFFLINE}'><fetch/></offline>")
        require_eq(sorted(body_of(m) for m in again), ["flex-2", "flex-3"],
                   "fetch after removing flex-1")
        self._offline_msgs(b, f"<offline xmlns='{NS_OFFLINE}'><purge/></offline>", "set")
        empty = self._offline_msgs(b, f"<offline xmlns='{NS_OFFLINE}'><fetch/></offline>")
        require_eq(empty, [], "fetch after purge")
        self.wait_offline("ob", 0)
        b.send("<presence/>")
        self.nothing(b, is_message(), "an offline message after purge", 1.0)

    def flexible_offline_headers(self, clients):
        a = self.online(clients, "oa", "r2")
        a.send(f"<message to='{self.bare('ob')}' type='chat'><body>hdr-1</body></message>")
        self.wait_offline("ob", 1)
        b = self.login(clients, "ob", "r2")
        problems = []
        info = b.iq("get", f"<query xmlns='{NS_DISCO_INFO}' node='{NS_OFFLINE}'/>")
        count = [f.findtext(q(NS_DATA, "value")) for f in
                 info.findall(f"{q(NS_DISCO_INFO, 'query')}/{q(NS_DATA, 'x')}/{q(NS_DATA, 'field')}")
                 if f.get("var") == "number_of_messages"]
        if info.get("type") != "result" or count != ["1"]:
            problems.append("XEP-0013 §2.2 disco#info on the offline node must carry "
                            f"number_of_messages = 1: got {short(info)}")
        items = b.iq("get", f"<query xmlns='{NS_DISCO_ITEMS}' node='{NS_OFFLINE}'/>")
        found = items.findall(f"{q(NS_DISCO_ITEMS, 'query')}/{q(NS_DISCO_ITEMS, 'item')}")
        if items.get("type") != "result" or len(found) != 1 or not found[0].get("node"):
            problems.append("XEP-0013 §2.3 disco#items on the offline node must list one "
                            f"header with a node: got {short(items)}")
        self._offline_msgs(b, f"<offline xmlns='{NS_OFFLINE}'><purge/></offline>", "set")
        require(not problems, "; ".join(problems))

    # ---- phase A state used in phase B ----

    def sharing_setup(self, clients):
        a = self.online(clients, "s1")
        b = self.online(clients, "s2")
        self.subscribe(a, b, "s1", "s2")
        self.subscribe(b, a, "s2", "s1")

    # ---- phase B: suppress_offline, availability_sharing off ----

    def suppress_offline(self, clients):
        a = self.online(clients, "sx")
        a.send(f"<message to='{self.bare('so')}' type='chat' id='so1'><body>x</body></message>")
        e = a.expect(lambda x: local(x) == "message" and x.get("id") == "so1", 5,
                     "an answer to a chat to an offline user with Suppress Offline IM on")
        require_eq((e.get("type"), error_condition(e)), ("error", "service-unavailable"),
                   f"chat to an offline user ({short(e)})")
        require_eq(self.db_offline_count("so"), 0, "messages stored for so")

    def availability_off(self, clients):
        a = self.online(clients, "s1")
        b = self.login(clients, "s2")
        b2 = self.login(clients, "s2", "r2")
        b2.send("<presence/>")
        b.send("<presence/>")
        b2.expect(is_presence(b.jid, "available"), 5, "s2/r2 to see its own other resource")
        self.nothing(a, is_presence(self.bare("s2")),
                     "presence of a contact with availability sharing off")

    # ---- phase C: instant_messaging off ----

    def im_off(self, clients):
        a = self.online(clients, "ia")
        b = self.online(clients, "ib")
        a.send(f"<message to='{b.jid}' type='chat' id='im1'><body>hi</body></message>")
        e = a.expect(lambda x: local(x) == "message" and x.get("id") == "im1", 5,
                     "an answer to a chat with instant messaging off")
        require_eq((e.get("type"), error_condition(e)), ("error", "service-unavailable"),
                   f"chat with instant messaging off ({short(e)})")
        self.nothing(b, is_message("hi"), "a chat although instant messaging is off", 1.0)


def run(group, checks):
    s = Suite(group, checks)
    group.up(CONF_A)
    s.group_started = time.monotonic()
    for user in USERS:
        group.add_user(user, password(user))
    checks.say(f"group up in {group.dir} (A: max_contacts = 2)")
    for name, fn in [
        ("roster get/set/push/remove with versioning", s.roster_versioning),
        ("initial presence echoed to its sender (RFC 6121 4.2.2)", s.presence_echo),
        ("subscription with pre-approval", s.preapproval),
        ("cancellation: unsubscribe / unsubscribed, pushes, unavailable", s.cancellation),
        ("directed presence and the unavailable at logout", s.directed_presence),
        ("chat/normal stored offline, headline dropped", s.offline_and_errors),
        ("a ping after a message waits for its database work", s.confirmed_after_db),
        ("a message stored during the recipient's flush is delivered", s.stored_during_flush),
        ("an offline message written by replication reaches its online recipient",
         s.replicated_offline),
        ("message to a non-existent user -> service-unavailable", s.no_such_user),
        ("message to a remote domain -> remote-server-not-found", s.remote_domain),
        ("max_contacts: third roster item -> not-allowed", s.max_contacts_set),
        ("max_contacts: subscribing to a full user -> unsubscribed", s.max_contacts_subscribe),
        ("disco info/items, ping, version, time, last (uptime)", s.server_services),
        ("last activity of a contact; forbidden without subscription", s.last_activity),
        ("vcard-temp set, get by self and by another user", s.vcard),
        ("XEP-0013 fetch / view / remove by node / purge", s.flexible_offline),
        ("XEP-0013 message count and headers (disco on the offline node)",
         s.flexible_offline_headers),
        ("mutual subscription s1 <-> s2 (for phase B)", s.sharing_setup),
    ]:
        checks.run(name, fn)
    group.down()
    group.up(CONF_B)
    checks.say("group restarted (B: suppress_offline = yes, availability_sharing = no)")
    checks.run("suppress offline IM -> service-unavailable", s.suppress_offline)
    checks.run("availability sharing off: contacts see nothing", s.availability_off)
    group.down()
    group.up(CONF_C)
    checks.say("group restarted (C: instant_messaging = no)")
    checks.run("instant messaging off -> service-unavailable", s.im_off)


def main():
    return group_main(PROG, run)


if __name__ == "__main__":
    sys.exit(main())
