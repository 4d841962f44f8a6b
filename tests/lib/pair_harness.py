"""A loopback pair for the replication stress and partition tests (tests/integration/
test_pair_replication_stress.py, test_pair_replication_conflict.py): contrib/local-group
--nodes 2, srmctl, psql on each node's database, and partitions of the peer link.

    pair = Pair(build, log); pair.up()
    pair.ctl(1, "user", "add", "alice", "pw")
    pair.psql(2, "SELECT ...")                 -> rows as lists of strings
    with Partition(pair) as cut: cut.cut(); ...; cut.heal()
    pair.wait_converged("after the heal")      -> `srmctl digest --json` equal on both nodes

A two-node test's main() is `return run_pair_test("test_x", scenario, log)`.

A partition is an nftables rule dropping the peer link and the engines' route link (both
ports of both nodes, either direction: loopback traffic passes the input hook once per
packet); it needs root and nft, else Partition.kind is "sigstop" and cut() stops node 2's
srmd instead (shorter than the 1 s dead timeout: a replication backlog, not a failover).
"""

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LG = str(ROOT / "contrib" / "local-group")
PSQL = "/usr/lib/postgresql/15/bin/psql"
INITDB = "/usr/lib/postgresql/15/bin/initdb"


class Fail(Exception):
    pass


def port_free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_pair_base():
    """A base port below the ephemeral range with all of the pair's ports free."""
    import random
    for _ in range(200):
        base = random.randrange(20000, 32000, 20)
        if all(port_free(base + d) for d in (0, 1, 2, 3, 4, 10, 11, 12, 13, 14)):
            return base
    raise Fail("no free loopback ports for a pair")


def load_env(path):
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


class Pair:
    def __init__(self, build, log):
        self.build = build
        self.log = log
        # Short path: unix socket paths are limited.
        self.dir = tempfile.mkdtemp(prefix="dstr.", dir="/tmp")
        self.env = None
        self.base = None

    def lg(self, *args, check=True, extra_env=None):
        env = dict(os.environ, **(extra_env or {}))
        res = subprocess.run([LG, *args, "--build", self.build], capture_output=True,
                             text=True, timeout=120, check=False, env=env)
        if check and res.returncode != 0:
            raise Fail(f"local-group {' '.join(args)} failed ({res.returncode}):\n"
                       f"{res.stdout}{res.stderr}")
        return res

    def up(self, extra_env=None):
        self.base = free_pair_base()
        self.lg("up", self.dir, "--nodes", "2", "--base-port", str(self.base),
                extra_env=extra_env)
        self.env = load_env(os.path.join(self.dir, "group.env"))

    def link_ports(self):
        """Peer link and route link ports of both nodes."""
        return [self.base + d for d in (2, 3, 12, 13)]

    def srmd_pid(self, n):
        with open(self.env[f"NODE{n}_PIDFILE"], encoding="ascii") as f:
            return int(f.read().strip())

    def ctl(self, n, *args, check=True, timeout=30):
        cmd = [os.path.join(self.build, "bin", "srmctl"), "-s", self.env[f"NODE{n}_CTL"],
               *args]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        if check and res.returncode != 0:
            raise Fail(f"srmctl {' '.join(args)} on node {n} exited {res.returncode}: "
                       f"{(res.stderr or res.stdout).strip()}")
        return res

    def status(self, n):
        try:
            res = self.ctl(n, "status", "--json", check=False, timeout=10)
        except subprocess.TimeoutExpired:
            return None
        if res.returncode != 0:
            return None
        try:
            return json.loads(res.stdout)
        except ValueError:
            return None

    def state(self, n):
        st = self.status(n)
        return (st["state"], st["reason"]) if st else ("(srmd down)", "-")

    def both(self):
        return " | ".join(f"node {n}: {s} ({r})" for n in (1, 2) for s, r in [self.state(n)])

    def wait(self, want, timeout, what):
        """want: {node: (state, reason or None)}; both nodes' views must match."""
        deadline = time.monotonic() + timeout
        while True:
            ok = True
            for n, (state, reason) in want.items():
                s, r = self.state(n)
                if s != state or (reason is not None and r != reason):
                    ok = False
            if ok:
                self.log(f"{what}: {self.both()}")
                return
            if time.monotonic() > deadline:
                raise Fail(f"{what}: not reached within {timeout}s; now {self.both()}; "
                           f"wanted {want}")
            time.sleep(0.1)

    def wait_normal(self, timeout, what):
        self.wait({1: ("Normal", "Normal"), 2: ("Normal", "Normal")}, timeout, what)

    def wait_services(self, n, timeout):
        """Node n's critical services run (an operator's fallback needs them)."""
        deadline = time.monotonic() + timeout
        while True:
            st = self.status(n)
            me = st and [x for x in st["pair"]["nodes"] if x["self"]][0]
            if me and me["critical_services"]["engine"] and me["critical_services"]["database"]:
                return
            if time.monotonic() > deadline:
                raise Fail(f"node {n}'s critical services not up after {timeout}s: "
                           f"{self.both()}")
            time.sleep(0.1)

    def engine_pid(self, n):
        st = self.status(n)
        return st["engine"]["pid"] if st else 0

    def xmpp_port(self, n):
        return int(self.env[f"NODE{n}_XMPP_PORT"])

    def digest(self, n):
        try:
            res = self.ctl(n, "digest", "--json", check=False, timeout=20)
        except subprocess.TimeoutExpired:
            return None
        if res.returncode != 0:
            return None
        try:
            return json.loads(res.stdout)
        except ValueError:
            return None

    def wait_converged(self, what, timeout):
        t0 = time.monotonic()
        deadline = t0 + timeout
        while True:
            d1, d2 = self.digest(1), self.digest(2)
            if d1 and d2 and d1["digest"] == d2["digest"]:
                rows = {t["table"]: t["rows"] for t in d1["tables"]}
                self.log(f"{what}: digests equal after {time.monotonic() - t0:.1f}s "
                         f"({d1['digest'][:12]}..., rows {rows})")
                return d1
            if time.monotonic() > deadline:
                raise Fail(f"{what}: digests differ after {timeout}s:\n node 1 {d1}\n "
                           f"node 2 {d2}\n{self.ctl(1, 'status', check=False).stdout}"
                           f"{self.ctl(2, 'status', check=False).stdout}")
            time.sleep(0.25)

    def psql(self, n, sql, timeout=60):
        """Rows of a query on node n's database, as lists of strings (unit separator
        between fields, so values may hold any printable text)."""
        cmd = [PSQL, "-h", self.env[f"NODE{n}_PGHOST"], "-p", self.env[f"NODE{n}_PGPORT"],
               "-U", "duet", "-d", "duet", "-X", "-At", "-F", "\x1f", "-R", "\x1e",
               "-v", "ON_ERROR_STOP=1", "-c", sql]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        if res.returncode != 0:
            raise Fail(f"psql on node {n} failed: {res.stderr.strip()}\n  {sql}")
        out = res.stdout.rstrip("\n")
        return [r.split("\x1f") for r in out.split("\x1e") if r != ""] if out else []

    def psql_background(self, n, sql):
        """Start psql with sql (e.g. a transaction that sleeps before COMMIT); returns the
        Popen: wait() on it, then check returncode."""
        cmd = [PSQL, "-h", self.env[f"NODE{n}_PGHOST"], "-p", self.env[f"NODE{n}_PGPORT"],
               "-U", "duet", "-d", "duet", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql]
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True)

    def log_text(self, n):
        with open(self.env[f"NODE{n}_LOG"], encoding="utf-8", errors="replace") as f:
            return f.read()

    def dump_logs(self, lines=40):
        for n in (1, 2):
            try:
                print(f"---- node {n} srmd.log (tail) ----", file=sys.stderr)
                print("".join(self.log_text(n).splitlines(True)[-lines:]), file=sys.stderr)
            except (OSError, TypeError):
                pass

    def down(self, keep):
        subprocess.run([LG, "down", self.dir], capture_output=True, timeout=120, check=False)
        if keep:
            print(f"logs kept in {self.dir}", file=sys.stderr)
        else:
            subprocess.run(["rm", "-rf", self.dir], check=False)


def run_pair_test(name, scenario, log, up_env=None):
    """The whole main() of a two-node test: a pair up (up_env: extra environment for
    local-group up), scenario(pair) run (a coroutine function runs under asyncio.run), the
    pair down.  On failure prints "name: FAIL: ..." with the traceback and both srmd logs'
    tails, and keeps the pair's directory (also kept when DUET_TEST_KEEP is set).
    Returns the exit status: 0 pass, 1 fail, 77 skipped (no PostgreSQL 15)."""
    build = os.environ.get("DUET_BUILD", str(ROOT / "build"))
    if not os.path.isabs(build):
        build = str(ROOT / build)
    if not os.path.exists(INITDB):
        print("SKIP: PostgreSQL 15 is not installed")
        return 77
    pair = Pair(build, log)
    ok = False
    try:
        pair.up(extra_env=up_env)
        result = scenario(pair)
        if asyncio.iscoroutine(result):
            asyncio.run(result)
        ok = True
        log("PASS")
    except Exception as err:  # noqa: BLE001 - report anything with the logs
        print(f"{name}: FAIL: {err}", file=sys.stderr)
        traceback.print_exc()
        pair.dump_logs()
    finally:
        pair.down(keep=not ok or bool(os.environ.get("DUET_TEST_KEEP")))
    return 0 if ok else 1


def nft_usable():
    if os.geteuid() != 0 or not os.path.exists("/usr/sbin/nft"):
        return False
    res = subprocess.run(["/usr/sbin/nft", "list", "tables"], capture_output=True, text=True,
                         timeout=10, check=False)
    return res.returncode == 0


class Partition:
    """Cuts the pair apart and heals it.  Always use as a context manager: the nftables
    table (private to this process) is removed and a stopped srmd continued on exit."""

    def __init__(self, pair, kind=None):
        self.pair = pair
        # DUET_PARTITION=sigstop forces the variant that needs no root.
        self.kind = kind or os.environ.get("DUET_PARTITION") or (
            "nft" if nft_usable() else "sigstop")
        if self.kind not in ("nft", "sigstop"):
            raise Fail(f"unknown partition kind {self.kind!r}")
        self.table = f"duet_test_{os.getpid()}"
        self.stopped = None
        self.is_cut = False

    def __enter__(self):
        if self.kind == "nft":
            ports = ", ".join(str(p) for p in self.pair.link_ports())
            self._nft(f"add table inet {self.table}")
            self._nft(f"add chain inet {self.table} in "
                      "{ type filter hook input priority 0; policy accept; }")
            self._nft(f"add set inet {self.table} cut {{ type inet_service; }}")
            self._nft(f"add rule inet {self.table} in tcp dport @cut drop")
            self._nft(f"add rule inet {self.table} in tcp sport @cut drop")
            self.ports = ports
        return self

    def __exit__(self, *exc):
        self.heal()
        if self.kind == "nft":
            subprocess.run(["/usr/sbin/nft", "delete", "table", "inet", self.table],
                           capture_output=True, timeout=10, check=False)
        return False

    def _nft(self, cmd):
        res = subprocess.run(["/usr/sbin/nft", cmd], capture_output=True, text=True, timeout=10,
                             check=False)
        if res.returncode != 0:
            raise Fail(f"nft {cmd}: {res.stderr.strip()}")

    def cut(self, node=2):
        """Partition (nft), or stop node's srmd (sigstop)."""
        if self.is_cut:
            return
        if self.kind == "nft":
            self._nft(f"add element inet {self.table} cut {{ {self.ports} }}")
        else:
            self.stopped = self.pair.srmd_pid(node)
            os.kill(self.stopped, signal.SIGSTOP)
        self.is_cut = True

    def heal(self):
        if not self.is_cut:
            return
        if self.kind == "nft":
            self._nft(f"flush set inet {self.table} cut")
        elif self.stopped:
            try:
                os.kill(self.stopped, signal.SIGCONT)
            except ProcessLookupError:
                pass
            self.stopped = None
        self.is_cut = False

    def pause_srmd(self, node, seconds):
        """Stop one srmd for less than the dead timeout: the link stays up, the peer's
        batches and our outbox pile up, then everything resumes."""
        pid = self.pair.srmd_pid(node)
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(seconds)
        finally:
            os.kill(pid, signal.SIGCONT)
