"""The peer link transports the fault scenarios run on (docs/peer-protocol.md §8):

- `tcp`: srmd's own TLS link is also the failure detector (dead_timeout);
- `corosync`: a real corosync 3 (knet over UDP on the peer veth) runs in each node's
  namespace, started with tests/lib/netns.py from the shipped contrib/corosync/corosync.conf;
  membership (CPG) detects failures, hang_timeout a hung srmd; replication keeps its TLS link.

    unavailable(name)        -> None, or why it cannot run here
    start(name, stage)       -> keyword arguments of FaultPair.up (corosync started first)
    stop(stage)              -> stops what start() ran beside the pair
    silent_detect_s(name, hung) -> how long a silent failure takes to be noticed
"""

import sys
from pathlib import Path

import fault_net

ALL = ["tcp", "corosync"]
TOKEN_MS = 1000        # corosync token: detection of a lost peer ~ token + consensus (2.2 s)
HANG_TIMEOUT_S = 8     # corosync: a member that says nothing this long is down (hung srmd)
DEAD_TIMEOUT_S = 3     # tcp: 30 heartbeats; also replication's link with corosync
ROUTE_DEAD_TIMEOUT_S = 10


def _netns_lib():
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
    import netns  # noqa: E402  (tests/lib/netns.py)
    return netns


def unavailable(name):
    if name == "tcp":
        return None
    if name == "corosync":
        try:
            netns = _netns_lib()
        except ImportError as e:
            return f"tests/lib/netns.py: {e}"
        return netns.why_unusable()
    return f"unknown transport {name!r}"


def start(name, stage):
    """Before the pair starts: corosync in both node namespaces (members of one ring)."""
    # TCP retransmissions under 20% loss stall a connection for up to a few seconds: 30
    # heartbeats ride that out.  The route link pings every third of its timeout, so it
    # needs more (docs/testing.md "Fault tests").
    peer = f"dead_timeout = {DEAD_TIMEOUT_S}s"
    route = f"dead_timeout = {ROUTE_DEAD_TIMEOUT_S}s"
    if name == "tcp":
        return {"peer_conf": peer, "route_conf": route}
    netns = _netns_lib()
    run_dir = Path(stage.pair.dir) / "corosync"
    run_dir.mkdir(parents=True, exist_ok=True)
    key = netns.make_authkey(run_dir)
    addrs = {n: f"{fault_net.PEER_NET}.{n}" for n in (1, 2)}
    stage.corosync = {}
    for n in (1, 2):
        conf = netns.corosync_conf(n, addrs, run_dir, key, token_ms=TOKEN_MS)
        stage.corosync[n] = netns.corosync_start(stage.net.ns[n], conf, run_dir / f"n{n}")
    for n in (1, 2):
        netns.wait_members(stage.net.ns[n], 2, timeout=30)
    return {"peer_conf": f"transport = corosync\nhang_timeout = {HANG_TIMEOUT_S}s\n{peer}",
            "route_conf": route}


def stop(stage):
    pids = getattr(stage, "corosync", None) or {}
    if pids:
        netns = _netns_lib()
        for pid in pids.values():
            netns.corosync_stop(pid)
    stage.corosync = {}


def silent_detect_s(name, hung=False):
    """Seconds before a peer that went silent is Peer Down: the dead timeout (tcp); with
    corosync, the hang timeout for a hung srmd (corosync still sees it), else token +
    consensus (2.2 x token)."""
    if name == "tcp":
        return DEAD_TIMEOUT_S
    return HANG_TIMEOUT_S if hung else 2.2 * TOKEN_MS / 1000
