"""The network of the fault tests: two "hosts" and a client network, as network namespaces.

    node 1 (netns <p>a)                                  node 2 (netns <p>b)
      lo  10.77.9.1/32  service address                    lo  10.77.9.2/32
      p1  10.77.0.1/24  ===== veth: the peer link ======   p2  10.77.0.2/24
      c1  10.77.1.1/24                                     c2  10.77.2.2/24
         \\                                                 /
          veth                 clients (netns <p>c)      veth
           n1 10.77.1.254/24  ---------------------  n2 10.77.2.254/24

Each node's daemons listen on its service address (on lo, so it stays up when a veth goes
down).  The nodes reach each other's service address only over p1/p2, the clients reach
both only over their own veths: a fault on the peer link (link down, nftables drop or
random loss) never touches the clients.  No namespace forwards, nothing leaves them.

Names carry the owner's pid (`duetf<pid>a`), so runs side by side do not collide and a
namespace left by a run that died (SIGKILL) is recognised and removed by the next run.
"""

import ctypes
import glob
import os
import re
import shutil
import signal
import subprocess
import time

IP = "/usr/sbin/ip"
NFT = "/usr/sbin/nft"
NETNS_DIR = "/var/run/netns"
PREFIX = "duetf"
CLONE_NEWNET = 0x40000000
TABLE = "duet_fault"

PEER_NET = "10.77.0"           # p1 / p2
SERVICE = {1: "10.77.9.1", 2: "10.77.9.2"}
CLIENT_NET = {1: "10.77.1", 2: "10.77.2"}
PEER_IF = {1: "p1", 2: "p2"}


class NetError(Exception):
    pass


def run(*cmd, check=True, timeout=20, stdin=None):
    res = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout,
                         check=False, input=stdin)
    if check and res.returncode != 0:
        raise NetError(f"{' '.join(cmd)}: exit {res.returncode}: "
                       f"{(res.stderr or res.stdout).strip()}")
    return res


def why_unusable():
    """None if this process can build the network, else the reason (for a skip)."""
    if os.geteuid() != 0:
        return "not root (network namespaces and nftables need root)"
    for tool in (IP, NFT):
        if not os.access(tool, os.X_OK):
            return f"{tool} is not installed (contrib/install-deps test)"
    name = f"{PREFIX}probe{os.getpid()}"
    res = run(IP, "netns", "add", name, check=False)
    if res.returncode != 0:
        return f"ip netns add does not work here: {res.stderr.strip()}"
    try:
        res = run(IP, "netns", "exec", name, NFT, "list", "tables", check=False)
        if res.returncode != 0:
            return f"nft does not work in a network namespace: {res.stderr.strip()}"
    finally:
        run(IP, "netns", "del", name, check=False)
    return None


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


def netns_list():
    res = run(IP, "netns", "list", check=False)
    return [line.split()[0] for line in res.stdout.splitlines() if line.strip()]


def reap_qb_shm(pid):
    """What libqb left in /dev/shm for a process killed with SIGKILL (a corosync's 8 MiB
    blackbox, IPC directories; ../shared/notes/corosync-netns.md)."""
    for path in glob.glob(f"/dev/shm/qb-*-{pid}-*") + glob.glob(f"/dev/shm/qb-{pid}-*"):
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                os.unlink(path)
            except OSError:
                pass


def kill_netns_processes(name, timeout=8.0):
    """Stop every process inside namespace `name` (by its pid list): SIGTERM, SIGKILL
    after 3 s; wait until gone; remove their libqb leftovers."""
    start = time.monotonic()
    deadline = start + timeout
    seen = set()
    while True:
        res = run(IP, "netns", "pids", name, check=False)
        pids = [int(p) for p in res.stdout.split() if p.isdigit() and int(p) != os.getpid()]
        pids = [p for p in pids if pid_alive(p)]
        if not pids:
            for p in seen:
                reap_qb_shm(p)
            return
        sig = signal.SIGKILL if time.monotonic() - start > 3 else signal.SIGTERM
        for p in pids:
            if p in seen and sig == signal.SIGTERM:
                continue
            try:
                os.kill(p, sig)
            except ProcessLookupError:
                pass
        seen.update(pids)
        if time.monotonic() > deadline:
            raise NetError(f"processes {pids} in netns {name} do not die")
        time.sleep(0.1)


def remove_netns(name):
    kill_netns_processes(name)
    run(IP, "netns", "del", name, check=False)


def remove_stale(log):
    """Remove the namespaces of fault runs whose process is gone (a crash, SIGKILL)."""
    for name in netns_list():
        m = re.fullmatch(rf"{PREFIX}(\d+)[abc]", name)
        if m and not pid_alive(int(m.group(1))):
            log(f"removing stale network namespace {name} (its run, pid {m.group(1)}, is gone)")
            remove_netns(name)


class Network:
    """Builds the topology above; `remove()` undoes all of it (idempotent)."""

    def __init__(self, log):
        self.log = log
        base = f"{PREFIX}{os.getpid()}"
        self.ns = {1: base + "a", 2: base + "b", "c": base + "c"}
        self.created = []
        self.entered = False

    def _ip(self, ns, *args):
        return run(IP, "-n", ns, *args)

    def create(self):
        for key in (1, 2, "c"):
            run(IP, "netns", "add", self.ns[key])
            self.created.append(self.ns[key])
            self._ip(self.ns[key], "link", "set", "lo", "up")
        n1, n2, c = self.ns[1], self.ns[2], self.ns["c"]
        # The peer link, then each node's client veth.
        self._ip(n1, "link", "add", "name", "p1", "type", "veth", "peer", "name", "p2",
                 "netns", n2)
        for n in (1, 2):
            self._ip(n1 if n == 1 else n2, "link", "add", "name", f"c{n}", "type", "veth",
                     "peer", "name", f"n{n}", "netns", c)
        for n in (1, 2):
            ns = self.ns[n]
            other = 3 - n
            self._ip(ns, "addr", "add", f"{SERVICE[n]}/32", "dev", "lo")
            self._ip(ns, "addr", "add", f"{PEER_NET}.{n}/24", "dev", PEER_IF[n])
            self._ip(ns, "addr", "add", f"{CLIENT_NET[n]}.{n}/24", "dev", f"c{n}")
            for dev in (PEER_IF[n], f"c{n}"):
                self._ip(ns, "link", "set", dev, "up")
            self._ip(ns, "route", "add", f"{SERVICE[other]}/32", "via", f"{PEER_NET}.{other}",
                     "dev", PEER_IF[n])
            self._ip(c, "addr", "add", f"{CLIENT_NET[n]}.254/24", "dev", f"n{n}")
            self._ip(c, "link", "set", f"n{n}", "up")
            self._ip(c, "route", "add", f"{SERVICE[n]}/32", "via", f"{CLIENT_NET[n]}.{n}",
                     "dev", f"n{n}")
        self.log(f"network up: namespaces {n1} (node 1, {SERVICE[1]}), {n2} (node 2, "
                 f"{SERVICE[2]}), {c} (clients); peer link p1/p2 {PEER_NET}.0/24")

    def enter_clients(self):
        """Move this process (its sockets from now on) into the client namespace."""
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(os.path.join(NETNS_DIR, self.ns["c"]), os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise NetError(f"setns into {self.ns['c']}: {os.strerror(err)}")
        finally:
            os.close(fd)
        self.entered = True

    # ---- faults on the peer link ----

    def nft(self, n, rules):
        """Replace node n's fault table by `rules` (nft syntax inside the table; None:
        remove the table)."""
        run(IP, "netns", "exec", self.ns[n], NFT, "delete", "table", "inet", TABLE,
            check=False)
        if rules is None:
            return
        run(IP, "netns", "exec", self.ns[n], NFT, "-f", "-",
            stdin=f"table inet {TABLE} {{\n{rules}\n}}\n")

    def loss(self, pct):
        """pct% of the packets arriving over the peer link dropped, on each node: each
        direction loses pct% once (nftables numgen; this kernel has no netem)."""
        for n in (1, 2):
            self.nft(n, "  chain in { type filter hook input priority 0; policy accept;\n"
                        f"    iifname \"{PEER_IF[n]}\" numgen random mod 100 < {pct} drop; }}")

    def partition(self):
        """Silent partition: everything to and from the peer is dropped on both nodes."""
        for n in (1, 2):
            self.nft(n, "  chain in { type filter hook input priority 0; policy accept;\n"
                        f"    iifname \"{PEER_IF[n]}\" drop; }}\n"
                        "  chain out { type filter hook output priority 0; policy accept;\n"
                        f"    oifname \"{PEER_IF[n]}\" drop; }}")

    def heal(self):
        for n in (1, 2):
            self.nft(n, None)
            self._ip(self.ns[n], "link", "set", PEER_IF[n], "up")

    def link(self, n, up):
        """ip link set node n's end of the peer veth down or up (the carrier goes on both
        ends)."""
        self._ip(self.ns[n], "link", "set", PEER_IF[n], "up" if up else "down")

    def counters(self, n):
        """nft ruleset of node n (for a report: dropped packet counts are not kept)."""
        return run(IP, "netns", "exec", self.ns[n], NFT, "list", "ruleset",
                   check=False).stdout

    def remove(self):
        """Kill whatever still runs in the namespaces and delete them."""
        errors = []
        for name in reversed(self.created):
            try:
                remove_netns(name)
            except (NetError, subprocess.SubprocessError, OSError) as e:
                errors.append(str(e))
        left = [n for n in self.created if n in netns_list()]
        self.created = []
        if left:
            errors.append(f"namespaces not removed: {left}")
        return errors
