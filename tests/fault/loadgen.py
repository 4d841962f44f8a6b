"""The load generator in the fault scenarios: a crowd of `duet-loadgen --mode failover`
clients on both nodes beside the Python ledger clients (traffic.py).

USERS users lg1..lgUSERS, odd ones homed on node 1 and even ones on node 2, so every pair of
partners (2i-1, 2i: the load generator's chat pairs) talks across the nodes.  One load
generator runs per scenario, in the clients' namespace (the test process is there): it
logs every client in at node 1 (node 2's users are sent home with see-other-host), and
each client chats with its partner every MSG_INTERVAL_S, each message followed by a ping:
the answer *confirms* it (the server has routed everything before it).  SIGUSR1 marks the
fault; SIGUSR2 ends the run (sending stops, in-flight messages drain, the JSON report
follows).  The scenario then requires every client online and back after the fault, none
duplicated (confirmed or in doubt), messages received after the fault, and every confirmed
message received: live, or (a recipient its sender's node could not reach: split brain)
from the offline store at the recipient's next login, which collect_offline() makes for
each user with stored messages (the load generator's clients never log in again by
themselves while their session lives).
"""

import asyncio
import collections
import json
import os
import re
import signal
import subprocess
import time

from pair_harness import Fail
from xmpp_clients import Client, wait_until

USERS = 40              # 20 per home node
PREFIX = "lg"
PASSWORD = "fault-loadgen-1"
MSG_INTERVAL_S = 1.0    # per client: 40 messages/s in all
CONNECT_RATE = 40       # logins per second at the start of a scenario
END_TIMEOUT_S = 30      # from SIGUSR2 to the report (drain is at most 3 s)


def provision(pair, build, log):
    """Create the users on node 1 (home nodes 1, 2, 1, 2, ...) with SCRAM credentials
    the load generator derives itself; wait until replication has them on node 2."""
    lg = os.path.join(build, "bin", "duet-loadgen")
    creds = subprocess.run([lg, "--print-creds", PASSWORD, "--iterations", "4096"],
                           capture_output=True, text=True, check=True, timeout=60).stdout
    c = dict(line.split("=", 1) for line in creds.split() if "=" in line)
    rows = ",".join(
        f"('{PREFIX}{i}', {1 if i % 2 else 2}, '\\x{c['SALT_HEX']}', {c['ITERATIONS']},"
        f" '\\x{c['SHA1_STORED']}', '\\x{c['SHA1_SERVER']}', '\\x{c['SALT_HEX']}',"
        f" {c['ITERATIONS']}, '\\x{c['SHA256_STORED']}', '\\x{c['SHA256_SERVER']}')"
        for i in range(1, USERS + 1))
    pair.psql(1, "INSERT INTO users (username, home_node, sha1_salt, sha1_iter, sha1_stored,"
                 " sha1_server, sha256_salt, sha256_iter, sha256_stored, sha256_server)"
                 f" VALUES {rows}")
    want = f"SELECT count(*) FROM users WHERE username LIKE '{PREFIX}%'"
    deadline = time.monotonic() + 60
    while int(pair.psql(2, want)[0][0]) < USERS:
        if time.monotonic() > deadline:
            raise Fail(f"load generator users: not all {USERS} replicated to node 2")
        time.sleep(0.2)
    log(f"{USERS} load generator users {PREFIX}1..{PREFIX}{USERS} (odd: home node 1, even: "
        "home node 2)")


class LostMessage:
    """A confirmed message of the load generator that never arrived."""

    def __init__(self, sender, rcpt, seq, t_ms, mark_t):
        self.sender, self.rcpt, self.seq = sender, rcpt, seq
        self.t_ms = t_ms  # sent, ms from the fault mark
        # monotonic time it was sent (the load generator marks within ms of the signal)
        self.t = mark_t + t_ms / 1000 if mark_t is not None else None

    def __str__(self):
        return (f"{PREFIX}{self.sender} -> {PREFIX}{self.rcpt} #{self.seq} (sent "
                f"{self.t_ms / 1000:+.2f} s from the fault)")


class LoadRun:
    """One scenario's load generator."""

    def __init__(self, pair, build, name, log):
        self.log = log
        self.name = name
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        self.err_path = os.path.join(pair.dir, f"loadgen-{safe}.err")
        self.err = open(self.err_path, "w+", encoding="utf-8")
        (h1, p1), (h2, p2) = pair.addr(1), pair.addr(2)
        cmd = [os.path.join(build, "bin", "duet-loadgen"), "--mode", "failover", "--json",
               "--host", h1, "--port", str(p1), "--alt-host", h2, "--alt-port", str(p2),
               "--domain", pair.env["DOMAIN"], "--user-prefix", PREFIX, "--password",
               PASSWORD, "--users", str(USERS), "--connect-rate", str(CONNECT_RATE),
               "--msg-interval", str(MSG_INTERVAL_S), "--mech", "sha256",
               "--login-timeout", "30", "--timeline-ms", "1000",
               # The scenario ends the run (SIGUSR2), not the load generator.
               "--after-mark", "3600", "--settle", "3600", "--duration", "3600"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.err, text=True)
        self.marked = False
        self.mark_t = None  # monotonic time of the mark

    def _stderr(self):
        self.err.seek(0)
        return self.err.read()

    def _online(self):
        """Clients online, from the latest progress line (once a second)."""
        found = re.findall(r"online=(\d+)", self._stderr())
        return int(found[-1]) if found else -1

    def _wait(self, cond, timeout, what):
        deadline = time.monotonic() + timeout
        while not cond():
            if self.proc.poll() is not None:
                raise Fail(f"{self.name}: load generator exited {self.proc.returncode} "
                           f"waiting for {what}: {self._stderr()[-1500:]}")
            if time.monotonic() > deadline:
                raise Fail(f"{self.name}: load generator: no {what} in {timeout} s "
                           f"(online {self._online()} of {USERS}): "
                           f"{self._stderr()[-1500:]}")
            time.sleep(0.2)

    def wait_up(self, timeout=60):
        """Every client logged in at its home node and chatting."""
        self._wait(lambda: "all up:" in self._stderr(), timeout, "all clients up")
        # Chatting starts once all are up; one interval and a bit for the first messages.
        self._wait(lambda: int((re.findall(r"msgs=(\d+)", self._stderr()) or ["0"])[-1])
                   >= USERS, timeout, "messages flowing")

    def mark(self):
        """The fault moment (only the first mark counts)."""
        if not self.marked and self.proc.poll() is None:
            self.mark_t = time.monotonic()
            self.proc.send_signal(signal.SIGUSR1)
            self.marked = True

    def end(self):
        """Wait until every client is online again, end the run, return its report
        (dict) and the problems found [(kind, text, None)]."""
        self._wait(lambda: self._online() == USERS, 45, "every client online again")
        self.proc.send_signal(signal.SIGUSR2)
        try:
            out, _ = self.proc.communicate(timeout=END_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()
            raise Fail(f"{self.name}: the load generator did not end within "
                       f"{END_TIMEOUT_S} s of SIGUSR2: {self._stderr()[-1500:]}") from None
        self.err.close()
        with open(self.err_path[:-4] + ".json", "w", encoding="utf-8") as f:
            f.write(out)
        try:
            report = json.loads(out)
        except ValueError:
            raise Fail(f"{self.name}: load generator exited {self.proc.returncode} without "
                       f"a report: {out[-500:]!r}; stderr (in {self.err_path}) "
                       f"{open(self.err_path, encoding='utf-8').read()[-1500:]}") from None
        return report

    def problems(self, r, stored):
        """stored: Counter of (from, to, seq) delivered from the offline store at the
        login after the run (collect_offline)."""
        fo, out = r["failover"], []
        m = fo["messages"]
        if self.proc.returncode != 0:
            out.append(("loadgen-exit", f"load generator exited {self.proc.returncode} "
                                        f"(stderr in {self.err_path})", None))
        if fo["online_at_end"] != fo["clients"] or fo["never_back"]:
            out.append(("loadgen-clients",
                        f"load generator: {fo['online_at_end']} of {fo['clients']} clients "
                        f"online at the end, {fo['never_back']} never back after losing "
                        "their session", None))
        # Confirmed and not received live: stored offline for a recipient who was
        # unreachable (split brain: its home node's other server took it), delivered at
        # the next login, which must bring it exactly once.
        lost_ids = {(a, b, s): t for a, b, s, t in fo["lost_ids"]}
        if len(lost_ids) < m["lost"]:
            out.append(("loadgen-lost", f"load generator: {m['lost']} confirmed messages not "
                                        f"received live, only {len(lost_ids)} listed: cannot "
                                        "check them all", None))
        for (a, b, s), t in lost_ids.items():
            if stored[(a, b, s)] == 0:
                lost = LostMessage(a, b, s, t, self.mark_t)
                out.append(("loadgen-lost", f"load generator: {lost}: confirmed, never "
                                            "received, not even from the offline store", lost))
        twice = [k for k, n in stored.items() if n > 1]
        if m["duplicated"] or twice:
            out.append(("loadgen-duplicated",
                        f"load generator: {m['duplicated']} messages received twice live, "
                        f"{len(twice)} delivered more than once from the offline store "
                        f"{twice[:10]}", None))
        # Anything else stored was in doubt and never arrived live; more than those means
        # a message received live was also stored: a duplicate.
        extra = sum(1 for k in stored if k not in lost_ids)
        doubt_open = m["unconfirmed"] - m["unconfirmed_arrived"]
        if extra > doubt_open:
            out.append(("loadgen-duplicated",
                        f"load generator: {extra} messages from the offline store that were "
                        f"not missing ({doubt_open} in doubt and not received live): some "
                        "arrived twice", None))
        after = sum(row[5] for row in fo["timeline"] if row[0] >= 0)
        if not after:
            out.append(("loadgen-idle", "load generator: no message received after the "
                                        "fault: nothing was tested", None))
        return out

    def check(self, report, traffic):
        """Deliver what the offline store holds for the load generator's users, then the
        problems [(kind, text, None)] of the run and the summary line."""
        stored = collect_offline(traffic)
        problems = self.problems(report, stored)
        return problems, summary(report, stored)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if not self.err.closed:
            self.err.close()


def stored_rows(pair, n):
    return int(pair.psql(n, "SELECT count(*) FROM offline_messages WHERE username LIKE"
                            f" '{PREFIX}%'")[0][0])


def collect_offline(traffic, timeout=20):
    """Log every load generator user with messages in the offline store in at its home
    node, as a client coming back would; returns a Counter of (from, to, seq) delivered
    (stamped delayed).  Afterwards both nodes' stores hold none of them, so the next
    scenario's load generator (seqs start over) gets nothing of this one."""
    pair = traffic.pair
    rows = pair.psql(1, "SELECT username, count(*) FROM offline_messages WHERE username LIKE"
                        f" '{PREFIX}%' GROUP BY username")
    want = {u: int(c) for u, c in rows}
    got = collections.Counter()
    if not want:
        return got
    env = pair.env

    async def one(user, count):
        home = 1 if int(user[len(PREFIX):]) % 2 else 2
        host, port = pair.addr(home)
        c = Client(f"{user}@{env['DOMAIN']}/collect", PASSWORD, host, port, env["TLS_CERT"],
                   env["DOMAIN"])
        try:
            await c.login(timeout=timeout)
            await wait_until(lambda: len(c.messages) >= count, timeout,
                             f"{user}'s {count} stored messages")
            await asyncio.sleep(1.0)  # a second copy would come right behind
        finally:
            await c.logout()
            c.drop()
        return user, c.messages

    async def go():
        return await asyncio.gather(*(one(u, n) for u, n in want.items()))

    for user, msgs in traffic.call(go(), timeout=3 * timeout + 30):
        for msg in msgs:
            m = re.fullmatch(r"(\d+) \d+", msg.body or "")
            sender = msg.sender.split("@")[0]
            if m and msg.delay is not None and sender.startswith(PREFIX):
                got[(int(sender[len(PREFIX):]), int(user[len(PREFIX):]), int(m[1]))] += 1
            else:
                raise Fail(f"load generator user {user}: unexpected message {msg!r}")
    deadline = time.monotonic() + 15
    while stored_rows(pair, 1) or stored_rows(pair, 2):
        if time.monotonic() > deadline:
            raise Fail("the load generator users' offline messages are still stored after "
                       f"their delivery: node 1 {stored_rows(pair, 1)}, node 2 "
                       f"{stored_rows(pair, 2)}")
        time.sleep(0.2)
    return got


def summary(r, stored):
    """One line: clients, reconnects, messages and the timeline's shape from the fault."""
    fo = r["failover"]
    m = fo["messages"]
    tl = [row for row in fo["timeline"] if row[0] >= 0]
    low = min(tl, key=lambda row: row[1]) if tl else None
    shape = ""
    if low:
        full = next((row[0] for row in tl if row[0] > low[0] and row[1] == fo["clients"]),
                    None)
        shape = (f"; timeline from the fault: online min {low[1]} at {low[0] / 1000:+.0f} s"
                 + (f", all {fo['clients']} online again at {full / 1000:+.0f} s"
                    if full is not None and low[1] < fo["clients"] else "")
                 + f", {sum(row[3] for row in tl)} disconnects, {sum(row[2] for row in tl)} "
                 f"logins, {sum(row[5] for row in tl)} messages received")
    return (f"loadgen: {fo['clients']} clients, {fo['lost_session']} lost their session, "
            f"{fo['back']} back (p50/p100 {fo['back_ms']['p50']:.0f}/"
            f"{fo['back_ms']['p100']:.0f} ms), {fo['never_back']} never back; "
            f"{fo['redirects']} see-other-host, {fo['retry_afters']} retry-after, "
            f"{fo['backoffs']} backoff; messages {m['sent']} sent, {m['confirmed']} confirmed,"
            f" {m['received']} received live, {m['lost']} confirmed not live, "
            f"{sum(stored.values())} delivered from the offline store at the next login, "
            f"duplicated {m['duplicated']}, "
            f"{m['unconfirmed']} in doubt ({m['unconfirmed_arrived']} arrived)" + shape)
