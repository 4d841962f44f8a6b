"""A Duet pair on the two "hosts" of fault_net: tests/lib/pair_harness.Pair with each node's
srmd (and the presenced it starts) and PostgreSQL running inside the node's network
namespace, listening on the node's service address (contrib/local-group DUET_NODE_NETNS,
DUET_NODE_ADDRS), plus what the fault scenarios need on top: the nodes' addresses, process
faults, a watcher that records every state both nodes report, and the transitions srmd logs.
"""

import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "lib"))

from pair_harness import Fail, Pair, load_env  # noqa: E402  (path set above)

import fault_net  # noqa: E402

BASE_PORT = 15222  # private namespaces: nothing else listens there
ENGINE_BACKOFF_RESET_S = 60  # ha/engine_child.c BACKOFF_RESET_MS
DIR_PREFIX = "duetf"
TRANSITION = re.compile(r"ha: event (\S+): (.+?) \((.+?)\) -> (.+?) \((.+?)\) \[(.*)\]")


def remove_stale_dirs(log):
    """Group directories of fault runs whose process died without cleaning up (group.env
    is still there: `down` never ran): stop what local-group started there (harmless when
    nothing runs) and remove them.  The logs a failed run kept on purpose stay."""
    for d in glob.glob(f"/tmp/{DIR_PREFIX}*.*"):
        m = re.fullmatch(rf"/tmp/{DIR_PREFIX}(\d+)\.\w+", d)
        if not m or fault_net.pid_alive(int(m.group(1))):
            continue
        if not os.path.exists(os.path.join(d, "group.env")) and \
                not glob.glob(os.path.join(d, "node*", "pg")):
            continue
        log(f"removing stale group directory {d}")
        subprocess.run([str(ROOT / "contrib" / "local-group"), "down", d],
                       capture_output=True, timeout=120, check=False)
        shutil.rmtree(d, ignore_errors=True)


class FaultPair(Pair):
    def __init__(self, build, log, net):
        super().__init__(build, log)
        os.rmdir(self.dir)
        # The pid in the name lets a later run recognise a directory this run left.
        self.dir = tempfile.mkdtemp(prefix=f"{DIR_PREFIX}{os.getpid()}.", dir="/tmp")
        self.net = net
        self.watcher = None
        self.frozen = set()  # nodes whose srmd is stopped (SIGSTOP): not asked anything
        self.engine_killed = {}  # node -> monotonic time presenced was last killed here
        self.engine_kills = []   # (monotonic time, node) of every kill -9 of a presenced

    def lg(self, *args, check=True, extra_env=None):
        """contrib/local-group, always with the nodes' namespaces and addresses (start and
        db-start launch processes too)."""
        env = {
            "DUET_NODE_ADDRS": f"{fault_net.SERVICE[1]} {fault_net.SERVICE[2]}",
            "DUET_NODE_NETNS": f"{self.net.ns[1]} {self.net.ns[2]}",
        }
        env.update(extra_env or {})
        if args and args[0] in ("start", "stop") and len(args) > 2:
            # A new srmd supervises a new engine: its restart backoff starts over.
            self.engine_killed.pop(int(args[2]), None)
        return super().lg(*args, check=check, extra_env=env)

    def up(self, extra_env=None, peer_conf="", route_conf=""):
        self.base = BASE_PORT
        env = {
            "DUET_EXTRA_PEER_CONF": peer_conf,
            "DUET_EXTRA_ROUTE_CONF": route_conf,
            "LOCAL_GROUP_TIMEOUT": "90",
        }
        env.update(extra_env or {})
        self.lg("up", self.dir, "--nodes", "2", "--base-port", str(self.base), extra_env=env)
        self.env = load_env(os.path.join(self.dir, "group.env"))

    def addr(self, n):
        return (self.env[f"NODE{n}_ADDR"], int(self.env[f"NODE{n}_XMPP_PORT"]))

    def node_of(self, addr):
        for n in (1, 2):
            if tuple(addr) == self.addr(n):
                return n
        return None

    # ---- process faults ----

    def srmd_pid_or_none(self, n):
        try:
            pid = self.srmd_pid(n)
        except (OSError, ValueError):
            return None
        return pid if fault_net.pid_alive(pid) else None

    def signal_srmd(self, n, sig):
        pid = self.srmd_pid_or_none(n)
        if pid is None:
            raise Fail(f"node {n}: srmd is not running")
        if sig == signal.SIGSTOP:
            self.frozen.add(n)
        os.kill(pid, sig)
        if sig == signal.SIGCONT:
            self.frozen.discard(n)
        return pid

    def status(self, n):
        # srmctl would wait for its timeout on a stopped srmd (the socket still accepts).
        return None if n in self.frozen else super().status(n)

    def state(self, n):
        return ("(srmd stopped)", "-") if n in self.frozen else super().state(n)

    def kill_engine(self, n):
        pid = self.engine_pid(n)
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
                self.engine_killed[n] = time.monotonic()
                self.engine_kills.append((self.engine_killed[n], n))
                return pid
            except ProcessLookupError:
                pass
        return 0

    def engine_backoff_reset_in(self, n):
        """Seconds until srmd's restart backoff for node n's presenced is back at its
        minimum (ha/engine_child.c BACKOFF_RESET_MS: 60 s healthy after the last crash we
        caused; healthy again up to BACKOFF_MAX_MS, 10 s, plus a start-up after the kill),
        0 if it is."""
        t = self.engine_killed.get(n)
        return 0.0 if t is None else max(0.0, t + ENGINE_BACKOFF_RESET_S + 10 + 8
                                         - time.monotonic())

    # ---- what srmd logged ----

    def log_size(self, n):
        try:
            return os.path.getsize(self.env[f"NODE{n}_LOG"])
        except OSError:
            return 0

    def transitions_since(self, n, offset):
        """[(event, from state, from reason, to state, to reason, row)] logged by node n's
        srmd after byte `offset` of its log."""
        with open(self.env[f"NODE{n}_LOG"], "rb") as f:
            f.seek(offset)
            text = f.read().decode("utf-8", errors="replace")
        return [m.groups() for m in TRANSITION.finditer(text)]

    def log_lines_since(self, n, offset, needle):
        with open(self.env[f"NODE{n}_LOG"], "rb") as f:
            f.seek(offset)
            text = f.read().decode("utf-8", errors="replace")
        return [line for line in text.splitlines() if needle in line]

    def dump_logs(self, lines=60):
        """The end of both srmd logs, without the watcher's status requests."""
        for n in (1, 2):
            try:
                text = self.log_text(n).splitlines(True)
            except (OSError, TypeError, KeyError):
                continue
            text = [t for t in text if not re.search(r"ctl: uid \d+ pid \d+: status$", t)]
            print(f"---- node {n} srmd.log (tail, without status requests) ----\n"
                  + "".join(text[-lines:]), file=sys.stderr, flush=True)

    def start_watcher(self, period=0.2):
        self.watcher = StateWatcher(self, period)
        self.watcher.start()

    def down(self, keep):
        if self.watcher:
            self.watcher.stop()
        super().down(keep)


class StateWatcher(threading.Thread):
    """Polls both nodes' `srmctl status --json` and records every (state, reason) change:
    history = [(monotonic time, node, state, reason)]."""

    def __init__(self, pair, period):
        super().__init__(daemon=True)
        self.pair = pair
        self.period = period
        self.history = []
        self.last = {1: None, 2: None}
        self.lock = threading.Lock()
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            for n in (1, 2):
                now = self._state(n)
                with self.lock:
                    if now != self.last[n]:
                        self.last[n] = now
                        self.history.append((time.monotonic(), n, now[0], now[1]))
            self.halt.wait(self.period)

    def _state(self, n):
        """(state, reason), or why srmctl gave none: ("(srmd down)", its error)."""
        if n in self.pair.frozen:
            return ("(srmd stopped)", "-")
        try:
            res = self.pair.ctl(n, "status", "--json", check=False, timeout=10)
        except subprocess.TimeoutExpired:
            return ("(srmd down)", "srmctl status timed out")
        except (OSError, KeyError, TypeError) as e:
            return ("(srmd down)", str(e))
        if res.returncode != 0:
            return ("(srmd down)", (res.stderr or res.stdout).strip()[:200])
        try:
            st = json.loads(res.stdout)
            return (st["state"], st["reason"])
        except (ValueError, KeyError, TypeError) as e:
            return ("(srmd down)", f"status not understood ({e}): {res.stdout[:200]!r}")

    def mark(self):
        with self.lock:
            return len(self.history)

    def since(self, mark):
        with self.lock:
            return list(self.history[mark:])

    def stop(self):
        self.halt.set()
        self.join(timeout=15)
