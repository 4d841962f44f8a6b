"""Real corosync clusters inside network namespaces, for tests of the corosync transport.

FOR REUSE (tests/fault/ and others): the corosync part does not depend on the network made
here.  With namespaces and addresses of your own:

    conf = corosync_conf(node=1, addrs={1: "10.77.0.1", 2: "10.77.0.2"}, run_dir=d,
                         keyfile=make_authkey(d), token_ms=1000)  # contrib/corosync/corosync.conf
    pid = corosync_start("myns-a", conf, d / "n1")     # private /run, foreground, its own pid
    wait_members("myns-a", 2, timeout=30)              # corosync-quorumtool inside the netns
    corosync_stop(pid, signal.SIGKILL)                 # waits, reaps its /dev/shm leftovers
    quorum_status("myns-a")                            # {"nodes": 2, "expected": 2, "total": 2, "quorate": True, ...}
    qnetd_start("myns-q", d / "qnetd") / qdevice_start("myns-a", d / "n1")

The Cluster class is the small network tests/integration/test_corosync_*.py use: two
namespaces <p>-n1 / <p>-n2 joined by a veth pair (10.213.0.1 / .2) and, with qnetd=True, a
third <p>-n3 reached from node N over its own veth (10.213.N.3), running corosync-qnetd with
corosync-qdevice on both nodes (ffsplit, tie-breaker lowest).  Cluster.partition(True) drops
everything on the node-to-node veth (nftables, both nodes) and leaves the links to qnetd up.
`with inside(ns):` runs code in a namespace (sockets made there stay there), for clients of
a node's listeners.

What this has to work around (../shared/notes/corosync-netns.md): corosync 3.1 hard-codes
/var/run/corosync.pid, so each daemon gets a private tmpfs /run in the mount namespace `ip
netns exec` makes; libqb's IPC names are abstract sockets scoped to the network namespace,
so every client (srmd, corosync-quorumtool, corosync-qdevice) must run in its node's
namespace; a daemon killed with SIGKILL leaks its /dev/shm files; state_dir must exist.
Needs root.  Everything started is stopped by pid, namespaces removed, also on failure
(use `with Cluster(...) as c:`).
"""

import contextlib
import ctypes
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_CONF = ROOT / "contrib" / "corosync" / "corosync.conf"
IP = "ip"


class CorosyncError(Exception):
    pass


def run(*cmd, check=True, timeout=30):
    res = subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                         timeout=timeout, check=False)
    if check and res.returncode != 0:
        raise CorosyncError(f"{' '.join(map(str, cmd))}: exit {res.returncode}: "
                            f"{(res.stderr or res.stdout).strip()}")
    return res


def why_unusable(qnetd=False):
    """None if corosync clusters can be built here, else why not (the reason for a skip)."""
    if os.geteuid() != 0:
        return "not root (network namespaces, mounts and nftables need root)"
    tools = ["ip", "corosync", "corosync-keygen", "corosync-quorumtool", "corosync-cpgtool"]
    if qnetd:
        tools += ["corosync-qnetd", "corosync-qdevice"]
    for tool in tools:
        if not shutil.which(tool):
            return f"{tool} is not installed (contrib/install-deps test)"
    return None


CLONE_NEWNET = 0x40000000


@contextlib.contextmanager
def inside(netns):
    """Run the block in network namespace `netns` (this thread only; root).  Sockets
    created inside keep that namespace after the block."""
    libc = ctypes.CDLL(None, use_errno=True)
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/var/run/netns/{netns}", os.O_RDONLY)
    try:
        if libc.setns(target, CLONE_NEWNET) != 0:
            raise CorosyncError(f"setns {netns}: {os.strerror(ctypes.get_errno())}")
        try:
            yield
        finally:
            if libc.setns(home, CLONE_NEWNET) != 0:
                raise CorosyncError(f"setns back: {os.strerror(ctypes.get_errno())}")
    finally:
        os.close(target)
        os.close(home)


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def reap_shm(pid):
    """Remove what libqb left in /dev/shm for a dead daemon (blackbox, IPC dirs)."""
    if pid_alive(pid):
        return
    for p in Path("/dev/shm").glob(f"qb-*-{pid}-*"):
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    for p in Path("/dev/shm").glob(f"qb-{pid}-*"):
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


def make_authkey(run_dir):
    key = Path(run_dir) / "authkey"
    if not key.exists():
        run("corosync-keygen", "-k", key)
    return key


def _sub(text, pattern, repl, what):
    out, n = re.subn(pattern, repl, text, flags=re.M)
    if n == 0:
        raise CorosyncError(f"{SHIPPED_CONF}: no {what} line to adapt (was it edited?)")
    return out


def corosync_conf(node, addrs, run_dir, keyfile, token_ms=1000, qdevice_host=None):
    """The shipped contrib/corosync/corosync.conf for `node`, with the test's addresses,
    token (knet ping interval/timeout scaled as shipped: token/10 and 2 x token), key, log
    file and state dir; with qdevice_host, the quorum block of
    contrib/corosync/corosync-qdevice.conf (TLS off: a test has no NSS databases).  Writes
    run_dir/n<node>/corosync.conf and returns its path."""
    d = Path(run_dir) / f"n{node}"
    (d / "state").mkdir(parents=True, exist_ok=True)
    text = SHIPPED_CONF.read_text(encoding="utf-8")
    text = _sub(text, r"^(\s*ring0_addr:) 192\.0\.2\.11$", rf"\1 {addrs[1]}", "node 1 address")
    text = _sub(text, r"^(\s*ring0_addr:) 192\.0\.2\.12$", rf"\1 {addrs[2]}", "node 2 address")
    text = _sub(text, r"^(\s*token:) \d+$", rf"\1 {token_ms}", "token")
    text = _sub(text, r"^(\s*knet_ping_interval:) \d+$", rf"\1 {max(token_ms // 10, 50)}",
                "knet_ping_interval")
    text = _sub(text, r"^(\s*knet_ping_timeout:) \d+$", rf"\1 {token_ms * 2}", "knet_ping_timeout")
    text = _sub(text, r"^(\s*crypto_hash: .*)$", rf"\1\n    keyfile: {keyfile}", "crypto_hash")
    text = _sub(text, r"^(\s*logfile:) .*$", rf"\1 {d / 'corosync.log'}", "logfile")
    text = _sub(text, r"^(\s*to_syslog:) yes$", r"\1 no", "to_syslog")
    if qdevice_host:
        q = (ROOT / "contrib" / "corosync" / "corosync-qdevice.conf").read_text(encoding="utf-8")
        q = q[re.search(r"^quorum \{", q, re.M).start():]
        q = _sub(q, r"^(\s*host:) .*$", rf"\1 {qdevice_host}", "qdevice host")
        q = _sub(q, r"^(\s*tls:) on$", r"\1 off", "qdevice tls")
        text = re.sub(r"^quorum \{.*?^\}\n", lambda _m: q.rstrip() + "\n", text,
                      flags=re.M | re.S)
    # The default state_dir (/var/lib/corosync) would be shared by both nodes.
    text += (f"\nsystem {{\n    state_dir: {d / 'state'}\n    move_to_root_cgroup: no\n"
             f"    sched_rr: {os.environ.get('DUET_COROSYNC_SCHED_RR', 'yes')}\n}}\n")
    conf = d / "corosync.conf"
    conf.write_text(text, encoding="utf-8")
    return conf


def corosync_start(netns, conf, log_dir):
    """corosync -f in netns with a private /run; returns its pid (ip, sh and corosync all
    exec, so Popen's pid is corosync's own)."""
    log_dir = Path(log_dir)
    out = open(log_dir / "corosync.out", "ab")
    try:
        p = subprocess.Popen(
            [IP, "netns", "exec", netns, "sh", "-c",
             'mount -t tmpfs -o size=4m,mode=0755 duet-run /run && exec corosync -f -c "$0"',
             str(conf)], stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    finally:
        out.close()
    return p.pid


def _wait_gone(pid, timeout):
    end = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < end:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.05)
    return not pid_alive(pid)


def corosync_stop(pid, sig=signal.SIGTERM, timeout=10):
    """Signal a daemon started here, wait until it is gone (SIGKILL after timeout), and
    reap its /dev/shm leftovers."""
    if pid and pid_alive(pid):
        os.kill(pid, sig)
        if not _wait_gone(pid, timeout):
            os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, 5)
    reap_shm(pid)


def quorum_status(netns):
    """corosync-quorumtool -s inside netns, parsed: nodes, expected, total, quorate (None
    values when corosync does not answer)."""
    res = run(IP, "netns", "exec", netns, "corosync-quorumtool", "-s", check=False, timeout=10)
    st = {"nodes": 0, "expected": None, "total": None, "quorate": None, "text": res.stdout}
    for key, pat in (("nodes", r"^Nodes:\s+(\d+)"), ("expected", r"^Expected votes:\s+(\d+)"),
                     ("total", r"^Total votes:\s+(\d+)")):
        m = re.search(pat, res.stdout, re.M)
        if m:
            st[key] = int(m.group(1))
    m = re.search(r"^Quorate:\s+(\w+)", res.stdout, re.M)
    if m:
        st["quorate"] = m.group(1) == "Yes"
    return st


def wait_members(netns, count, timeout=30):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if quorum_status(netns)["nodes"] == count:
            return
        time.sleep(0.2)
    raise CorosyncError(f"{netns}: corosync does not see {count} node(s) after {timeout}s")


def cpg_members(netns, group):
    """How many processes corosync-cpgtool lists in CPG group `group` (0 if none)."""
    res = run(IP, "netns", "exec", netns, "corosync-cpgtool", check=False, timeout=10)
    n, inside = 0, False
    for line in res.stdout.splitlines():
        if re.match(r"^\S", line):
            inside = line.split()[0] == group
        elif inside and re.match(r"^\s+\d+\s+\d+", line):
            n += 1
    return n


def qnetd_start(netns, run_dir):
    """corosync-qnetd (TLS off) in netns; lock file and socket in run_dir.  Returns its pid."""
    d = Path(run_dir)
    d.mkdir(parents=True, exist_ok=True)
    out = open(d / "qnetd.out", "ab")
    try:
        p = subprocess.Popen(
            [IP, "netns", "exec", netns, "corosync-qnetd", "-f", "-s", "off", "-S",
             f"lock_file={d / 'qnetd.pid'},local_socket_file={d / 'qnetd.sock'}"],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    finally:
        out.close()
    return p.pid


def qdevice_start(netns, run_dir):
    """corosync-qdevice for the corosync of netns (it reads quorum.device from corosync's
    cmap); lock file and socket in run_dir, not in the shared /var/run."""
    d = Path(run_dir)
    out = open(d / "qdevice.out", "ab")
    try:
        p = subprocess.Popen(
            [IP, "netns", "exec", netns, "corosync-qdevice", "-f", "-S",
             f"lock_file={d / 'qdevice.pid'},local_socket_file={d / 'qdevice.sock'}"],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    finally:
        out.close()
    return p.pid


class Cluster:
    """Two node namespaces on a veth pair, a corosync in each (and optionally qnetd in a
    third namespace with qdevice on both nodes)."""

    NET = "10.213.0"

    def __init__(self, run_dir, prefix=None, token_ms=1000, qnetd=False):
        self.run_dir = Path(run_dir)
        # Interface names must stay under 16 characters.
        self.prefix = prefix or f"dc{os.getpid() % 100000}"
        self.token_ms = token_ms
        self.qnetd = qnetd
        self.pids = {}       # name -> pid of what we started
        self.namespaces = []

    def ns(self, n):
        return f"{self.prefix}-n{n}"

    def addr(self, n):
        return f"{self.NET}.{n}"

    def exec(self, n, *cmd, check=True, timeout=30):
        return run(IP, "netns", "exec", self.ns(n), *cmd, check=check, timeout=timeout)

    def _link(self, a, b, a_addr, b_addr, tag):
        va, vb = f"{self.prefix}{tag}a", f"{self.prefix}{tag}b"
        run(IP, "-n", self.ns(a), "link", "add", "name", va, "type", "veth", "peer", "name",
            vb, "netns", self.ns(b))
        run(IP, "-n", self.ns(a), "addr", "add", a_addr, "dev", va)
        run(IP, "-n", self.ns(b), "addr", "add", b_addr, "dev", vb)
        run(IP, "-n", self.ns(a), "link", "set", va, "up")
        run(IP, "-n", self.ns(b), "link", "set", vb, "up")
        return va, vb

    def up(self):
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for n in (1, 2, 3) if self.qnetd else (1, 2):
            run(IP, "netns", "del", self.ns(n), check=False)  # a leftover of a killed run
            run(IP, "netns", "add", self.ns(n))
            self.namespaces.append(self.ns(n))
            run(IP, "-n", self.ns(n), "link", "set", "lo", "up")
        self.veth = self._link(1, 2, f"{self.addr(1)}/24", f"{self.addr(2)}/24", "v")
        if self.qnetd:
            for n in (1, 2):
                self._link(n, 3, f"10.213.{n}.{n}/24", f"10.213.{n}.3/24", f"q{n}")
            self.pids["qnetd"] = qnetd_start(self.ns(3), self.run_dir / "qnetd")
        key = make_authkey(self.run_dir)
        addrs = {1: self.addr(1), 2: self.addr(2)}
        for n in (1, 2):
            corosync_conf(n, addrs, self.run_dir, key, self.token_ms,
                          qdevice_host=f"10.213.{n}.3" if self.qnetd else None)
        for n in (1, 2):
            self.start(n)
        wait_members(self.ns(1), 2, 30)
        wait_members(self.ns(2), 2, 10)
        if self.qnetd:
            for n in (1, 2):
                self.pids[f"qdevice{n}"] = qdevice_start(self.ns(n), self.run_dir / f"n{n}")

    def start(self, n):
        d = self.run_dir / f"n{n}"
        self.pids[f"corosync{n}"] = corosync_start(self.ns(n), d / "corosync.conf", d)

    def kill(self, n, sig=signal.SIGKILL):
        corosync_stop(self.pids.pop(f"corosync{n}", 0), sig)

    def link(self, up):
        """The veth between the two nodes up or down (a partition both sides see)."""
        run(IP, "-n", self.ns(1), "link", "set", self.veth[0], "up" if up else "down")

    def partition(self, cut):
        """Drop (cut=True) or let through again everything on the node-to-node veth, on
        both nodes (nftables): a partition in which each node still reaches qnetd."""
        for n in (1, 2):
            table = f"{self.prefix}part"
            run(IP, "netns", "exec", self.ns(n), "nft", "delete", "table", "inet", table,
                check=False)
            if not cut:
                continue
            v = self.veth[n - 1]
            rules = (f"table inet {table} {{\n"
                     f" chain in {{\n  type filter hook input priority 0; policy accept;\n"
                     f"  iifname \"{v}\" drop\n }}\n"
                     f" chain out {{\n  type filter hook output priority 0; policy accept;\n"
                     f"  oifname \"{v}\" drop\n }}\n}}\n")
            res = subprocess.run([IP, "netns", "exec", self.ns(n), "nft", "-f", "-"],
                                 input=rules, text=True, capture_output=True, timeout=10,
                                 check=False)
            if res.returncode != 0:
                raise CorosyncError(f"nft in {self.ns(n)}: {res.stderr.strip()}")

    def down(self):
        for name in sorted(self.pids, key=lambda k: not k.startswith("qdevice")):
            corosync_stop(self.pids[name], signal.SIGTERM, timeout=5)
        self.pids.clear()
        for ns in self.namespaces:
            run(IP, "netns", "del", ns, check=False)
        self.namespaces.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.down()
