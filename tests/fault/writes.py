"""Writes by real clients on both sides of a partition, some of them to the same rows, and
what both databases must hold after the heal (docs/replication-protocol.md §5: per row the
version with the larger (hlc, origin) wins, on both nodes; every conflict is recorded).

While apart both nodes serve everyone, so each user can also log in at the other node:
writer sessions (resource "w1"/"w2") do the writes.  They announce a negative priority, so
that chats to the user and its stored offline messages are never given to them (RFC 6121
§8.5.2.1) but to the session the message ledger counts.
Steps are GAP_S apart, so their HLC order is their order here (names and values carry the
round number: soak repeats the scenario on one pair):

  1. node 1: A's roster item x named "one", A's vCard "A-one"
  2. node 2: B's vCard "B-two", B's roster item y named "two" (y: no conflict)
  3. node 2: A's roster item x named "two", A's vCard "A-two"      -> node 2's win
  4. node 1: B's vCard "B-one", A's roster item z named "one"      -> node 1's wins
"""

import asyncio
import time
import xml.etree.ElementTree as ET

from pair_harness import Fail
from traffic import drop
from xmpp_clients import Client

GAP_S = 0.05


class Writer(Client):
    """A session that takes no chats and no offline messages: priority -1."""

    async def _on_session_start(self, _event):
        self.login_seconds = time.monotonic() - self._connect_at
        await self.get_roster(timeout=15)
        self.send_presence(ppriority=-1)
        self.session_started = True


def vcard_el(fn):
    el = ET.Element("{vcard-temp}vCard")
    ET.SubElement(el, "{vcard-temp}FN").text = fn
    return el


def roster_el(jid, name):
    q = ET.Element("{jabber:iq:roster}query")
    ET.SubElement(q, "{jabber:iq:roster}item", jid=jid, name=name)
    return q


class PartitionWrites:
    rounds = 0

    def __init__(self, run):
        self.run = run
        self.pair = run.pair
        self.traffic = run.traffic
        accounts = self.traffic.accounts
        self.a = next(a for a in accounts if a.home == 1)
        self.b = next(a for a in accounts if a.home == 2)
        domain = self.pair.env["DOMAIN"]
        # Fresh rows and values in every round (soak runs the scenario on the same pair).
        PartitionWrites.rounds += 1
        self.tag = str(PartitionWrites.rounds)
        self.x, self.y, self.z = (f"{c}-fault{self.tag}@{domain}" for c in ("x", "y", "z"))
        self.sessions = {}
        self.before = {n: int(self.pair.psql(n, "SELECT coalesce(max(id), 0) FROM "
                                                "replication_conflicts")[0][0])
                       for n in (1, 2)}

    async def _session(self, account, node):
        key = (account.name, node)
        if key not in self.sessions:
            host, port = self.pair.addr(node)
            c = Writer(f"{account.bare}/w{node}", account.password, host, port,
                       self.pair.env["TLS_CERT"], self.pair.env["DOMAIN"])
            c.max_redirects = -1
            await c.login(timeout=20)
            self.sessions[key] = c
        return self.sessions[key]

    async def _set(self, account, node, el):
        c = await self._session(account, node)
        iq = c.make_iq_set(sub=el)
        await iq.send(timeout=20)

    async def _steps(self):
        a, b = self.a, self.b
        t = self.tag
        steps = [
            [(a, 1, roster_el(self.x, "one" + t)), (a, 1, vcard_el("A-one" + t))],
            [(b, 2, vcard_el("B-two" + t)), (b, 2, roster_el(self.y, "two" + t))],
            [(a, 2, roster_el(self.x, "two" + t)), (a, 2, vcard_el("A-two" + t))],
            [(b, 1, vcard_el("B-one" + t)), (a, 1, roster_el(self.z, "one" + t))],
        ]
        # Log every writer in first, so the gaps between steps are only GAP_S.
        for account, node in ((a, 1), (a, 2), (b, 1), (b, 2)):
            await self._session(account, node)
        for step in steps:
            for account, node, el in step:
                await self._set(account, node, el)
            await asyncio.sleep(GAP_S)

    def while_apart(self):
        self.traffic.call(self._steps(), timeout=120)
        # Still apart: node 2 has not seen z (written on node 1 only).
        if self._roster(2, self.a).get(self.z) is not None:
            raise Fail("partition: node 2 got node 1's write while apart")
        self.run.log("partition: writes on both sides done (roster items, vCards)")

    def close(self):
        async def go():
            for c in self.sessions.values():
                drop(c)
            self.sessions.clear()
        self.traffic.call(go(), timeout=30)

    def _roster(self, n, account):
        return dict(self.pair.psql(n, "SELECT contact, coalesce(name, '') FROM roster_items "
                                      f"WHERE username = '{account.name}'"))

    def _fn(self, n, account):
        rows = self.pair.psql(n, f"SELECT vcard FROM vcards WHERE username = '{account.name}'")
        if len(rows) != 1:
            return None
        el = ET.fromstring(rows[0][0])
        fn = el.find("{vcard-temp}FN")
        return fn.text if fn is not None else None

    def check_after_heal(self):
        a, b = self.a, self.b
        for n in (1, 2):
            ra, rb = self._roster(n, a), self._roster(n, b)
            got = (ra.get(self.x), ra.get(self.z), rb.get(self.y), self._fn(n, a), self._fn(n, b))
            t = self.tag
            want = ("two" + t, "one" + t, "two" + t, "A-two" + t, "B-one" + t)
            if got != want:
                raise Fail(f"partition: node {n} holds (x, z, y, A's vCard, B's vCard) = {got},"
                           f" want {want} (the later write of each row on both nodes)")
        # The conflicts, as each node saw them: winner 'remote' where the peer's version won.
        keys = {("roster_items", a.name, self.x): 2, ("vcards", a.name, None): 2,
                ("vcards", b.name, None): 1}
        for n in (1, 2):
            rows = self.pair.psql(n, "SELECT tbl, pk::jsonb->>'username', "
                                     "coalesce(pk::jsonb->>'contact', ''), winner "
                                     "FROM replication_conflicts WHERE id > "
                                     f"{self.before[n]}")
            for (tbl, user, contact), origin in keys.items():
                seen = {w for t, u, c, w in rows if (t, u, c or None) == (tbl, user, contact)}
                want = "local" if origin == n else "remote"
                if seen != {want}:
                    raise Fail(f"partition: node {n} recorded the conflict on {tbl} {user} "
                               f"{contact or ''} with winner(s) {sorted(seen)}, want {want}")
        self.run.log("partition: after the heal both nodes hold the later write of every "
                     "row (x: two, A's vCard: A-two, B's vCard: B-one), y and z kept, "
                     "3 conflicts recorded on each node with the right winner")
