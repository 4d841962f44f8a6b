#!/usr/bin/env python3
"""The corosync transport end to end ([peer] transport = corosync, docs/deploy-corosync.md).

Two real corosync 3 daemons (knet/udp, the shipped contrib/corosync/corosync.conf with a
1 s token), each in its own network namespace joined by a veth pair, and a whole Duet node
in each (srmd, presenced, PostgreSQL; contrib/local-group with DUET_NODE_NETNS), plus
corosync-qnetd in a third namespace with corosync-qdevice on both nodes when installed.

  1. both nodes Normal over corosync: both srmds in the CPG group "duet"; with qnetd,
     corosync-quorumtool shows 3 expected votes and 3 in total on both nodes;
  2. a user added on node 1 (forwarded provisioning: HA frames over CPG) and a roster row
     written on node 1 (replication over its own TLS connection) reach node 2;
  3. the replication connection cut (nftables, longer than its 1 s dead timeout): both
     stay Normal (it is not the failure detector here); healed, replication resumes;
  4. clean stop of node 1's srmd: node 2 Running in Backup Mode (Peer Reboot); restart,
     fallback, Normal;
  5. kill -9 of node 1's srmd: node 2 Running in Backup Mode (Peer Down), peer down reason
     "membership" (CPG process down); restart, fallback, Normal;
  6. kill -9 of node 1's corosync: node 2 Running in Backup Mode (Peer Down); corosync
     restarted: both see each other again and a fallback makes them Normal.

Root only (namespaces, mounts, nftables) and corosync installed; else exit 77.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
import corosync_pair  # noqa: E402
import netns  # noqa: E402
from pair_harness import Fail  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
T0 = time.monotonic()


def log(text):
    print(f"[{time.monotonic() - T0:6.1f}s] {text}", flush=True)


def wait_for(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise Fail(f"{what}: not within {timeout}s")
        time.sleep(0.1)


def peer_link(pair, n):
    st = pair.status(n)
    return st["pair"]["peer_link"] if st else {}


def nft_cut_replication(cluster, pair, on):
    """Drop node 2's traffic to and from both peer link ports (the replication
    connection); leave corosync's UDP alone."""
    table = "duetcs"
    cluster.exec(2, "nft", "delete", "table", "inet", table, check=False)
    if not on:
        return
    ports = f"{{ {pair.base + 2}, {pair.base + 12} }}"
    rules = (f"table inet {table} {{\n"
             f" chain in {{ type filter hook input priority 0; policy accept;\n"
             f"  tcp dport {ports} drop\n  tcp sport {ports} drop\n }}\n"
             f" chain out {{ type filter hook output priority 0; policy accept;\n"
             f"  tcp dport {ports} drop\n  tcp sport {ports} drop\n }}\n}}\n")
    subprocess.run(["ip", "netns", "exec", cluster.ns(2), "nft", "-f", "-"], input=rules,
                   text=True, check=True, capture_output=True, timeout=10)


def roster_row_on(pair, n, user, contact):
    return pair.psql(n, f"SELECT subscription FROM roster_items WHERE username = '{user}' "
                        f"AND contact = '{contact}'")


def scenario(cluster, pair):
    # 1. Normal over corosync
    pair.wait_normal(30, "both up over corosync")
    for n in (1, 2):
        members = netns.cpg_members(cluster.ns(n), "duet")
        if members != 2:
            raise Fail(f"node {n}: corosync-cpgtool shows {members} process(es) in group "
                       f"duet, want 2 (both srmds)")
    log("both srmds are members of CPG group duet")
    if cluster.qnetd:
        for n in (1, 2):
            q = wait_for(lambda n=n: (lambda s: s if s["total"] == 3 else None)(
                netns.quorum_status(cluster.ns(n))), 20, f"node {n}: qdevice vote")
            if q["expected"] != 3 or not q["quorate"]:
                raise Fail(f"node {n}: want 3 expected votes and quorate:\n{q['text']}")
        log("qnetd: 3 expected votes, 3 in total, quorate on both nodes")

    # 2. provisioning over CPG, replication over TLS
    pair.ctl(1, "user", "add", "alice", "secret-1")
    wait_for(lambda: pair.psql(2, "SELECT 1 FROM users WHERE username = 'alice'"), 15,
             "alice on node 2")
    pair.psql(1, "INSERT INTO roster_items (username, contact, subscription) "
                 "VALUES ('alice', 'bob@duet.test', 'both')")
    wait_for(lambda: roster_row_on(pair, 2, "alice", "bob@duet.test") == [["both"]], 15,
             "roster row replicated to node 2")
    log("user added on node 1 and its roster row are on node 2")

    # 3. the replication connection is not the failure detector
    nft_cut_replication(cluster, pair, True)
    pair.psql(1, "UPDATE roster_items SET subscription = 'to' WHERE username = 'alice'")
    time.sleep(3)  # three times the replication connection's dead timeout: nothing happens
    for n in (1, 2):
        s, r = pair.state(n)
        if (s, r) != ("Normal", "Normal"):
            raise Fail(f"replication connection cut: node {n} is {s} ({r}), want Normal")
        if not peer_link(pair, n).get("up"):
            raise Fail(f"replication connection cut: node {n} reports the peer down")
    if roster_row_on(pair, 2, "alice", "bob@duet.test") != [["both"]]:
        raise Fail("the roster change crossed a cut replication connection")
    nft_cut_replication(cluster, pair, False)
    wait_for(lambda: roster_row_on(pair, 2, "alice", "bob@duet.test") == [["to"]], 20,
             "roster change replicated after the heal")
    log("replication connection cut for 3 s: both Normal; healed: the change arrived")

    # 4. clean stop: Peer Reboot
    pair.lg("stop", pair.dir, "1")
    pair.wait({2: ("Running in Backup Mode", "Peer Reboot")}, 10, "node 1 stopped cleanly")
    pair.lg("start", pair.dir, "1", extra_env=corosync_pair.node_env(cluster))
    pair.wait({1: ("Failed Over", "Initialization")}, 30, "node 1 started")
    pair.wait_services(1, 30)
    pair.ctl(1, "fallback", "--yes")
    pair.wait_normal(20, "fallback after Peer Reboot")

    # 5. srmd crash: Peer Down from the CPG membership (process down)
    os.kill(pair.srmd_pid(1), signal.SIGKILL)
    pair.wait({2: ("Running in Backup Mode", "Peer Down")}, 10, "srmd 1 killed")
    reason = peer_link(pair, 2).get("down_reason")
    if reason != "membership":
        raise Fail(f"node 2's peer link down reason is {reason!r}, want 'membership'")
    pair.lg("start", pair.dir, "1", extra_env=corosync_pair.node_env(cluster))
    pair.wait({1: ("Failed Over", "Initialization")}, 30, "node 1 restarted")
    pair.wait_services(1, 30)
    pair.ctl(1, "fallback", "--yes")
    pair.wait_normal(20, "fallback after Peer Down")

    # 6. corosync of node 1 crashes: node 2 loses node 1 from the ring
    t = time.monotonic()
    cluster.kill(1, signal.SIGKILL)
    pair.wait({2: ("Running in Backup Mode", "Peer Down")}, 15, "corosync 1 killed")
    log(f"node 2 took over {time.monotonic() - t:.1f}s after corosync 1 died")
    cluster.start(1)
    netns.wait_members(cluster.ns(1), 2, 30)
    for n in (1, 2):
        wait_for(lambda n=n: peer_link(pair, n).get("up"), 20,
                 f"node {n} sees the peer again after corosync 1 restarted")
    log(f"corosync 1 restarted: {pair.both()}")
    s1, _ = pair.state(1)
    if s1 != "Normal":
        pair.wait_services(1, 30)
        pair.ctl(1, "fallback", "--yes")
    pair.wait_normal(20, "Normal again after corosync 1 restarted")
    if roster_row_on(pair, 2, "alice", "bob@duet.test") != [["to"]]:
        raise Fail("node 2 lost the replicated roster row")


def main():
    return corosync_pair.run("dcs.", scenario, log, qnetd="optional")


if __name__ == "__main__":
    sys.exit(main())
