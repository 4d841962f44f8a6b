"""The main() of a test running the pair over corosync (tests/integration/test_corosync_*):
a corosync ring of two network namespaces (and corosync-qnetd in a third when asked), the
pair's nodes inside them, the scenario, and everything torn down again.  Shared by the
transport and quorum tests, whose scenarios differ and whose set-up does not."""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import netns
from pair_harness import Fail, Pair
from rawxmpp import XmppError

ROOT = Path(__file__).resolve().parents[2]


def node_env(cluster):
    """What contrib/local-group needs to run a node inside its namespace (up and start)."""
    return {
        "DUET_NODE_NETNS": f"{cluster.ns(1)} {cluster.ns(2)}",
        "DUET_NODE_ADDRS": f"{cluster.addr(1)} {cluster.addr(2)}",
        "DUET_EXTRA_PEER_CONF": "transport = corosync\nhang_timeout = 5s",
    }


def run(prefix, scenario, log, qnetd="optional"):
    """qnetd: "required" (skip the test without it), "optional" (the ring runs without it
    and the scenario sees cluster.qnetd false) or "no".  Returns the exit status: 0 pass,
    1 fail (logs kept), 77 skipped."""
    why = netns.why_unusable(qnetd=qnetd == "required")
    if why:
        print(f"SKIP: {why}")
        return 77
    with_qnetd = qnetd == "required"
    if qnetd == "optional":
        with_qnetd = netns.why_unusable(qnetd=True) is None
        if not with_qnetd:
            log(f"qnetd part skipped: {netns.why_unusable(qnetd=True)}")
    build = os.environ.get("DUET_BUILD", str(ROOT / "build" / "san"))
    run_dir = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    cluster = netns.Cluster(Path(run_dir) / "cs", qnetd=with_qnetd)
    pair = Pair(build, log)
    ok = False
    try:
        cluster.up()
        names = ", ".join(cluster.ns(n) for n in ((1, 2, 3) if with_qnetd else (1, 2)))
        log(f"corosync ring of 2{' with qnetd' if with_qnetd else ''} formed ({names})")
        pair.up(extra_env=node_env(cluster))
        scenario(cluster, pair)
        ok = True
        log("PASS")
        return 0
    except (Fail, netns.CorosyncError, XmppError, subprocess.SubprocessError, OSError,
            KeyError, TypeError, json.JSONDecodeError) as e:
        print(f"FAIL: {e}", file=sys.stderr)
        pair.dump_logs(60)
        return 1
    finally:
        pair.down(keep=not ok)
        cluster.down()
        if ok:
            subprocess.run(["rm", "-rf", run_dir], check=False)
        else:
            print(f"corosync logs kept in {run_dir}", file=sys.stderr)
