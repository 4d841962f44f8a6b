#!/usr/bin/python3
"""srmctl as an operator uses it on a pair (issue #7): views, confirmations, exit codes.

  1. A pair (contrib/local-group up --nodes 2). `status --brief` on node 1: an aligned table
     with a row per node (node 1 marked *), both Normal, then peer link, ha, alarms and
     replication lines; `--json` of it; `replication --json` on node 2.
  2. `user add alice` on node 1; `user show alice` on node 2 (plain and JSON): home node 1,
     served by node 1.
  3. Confirmation: `failover 1` with no terminal and no --yes is refused (exit 2, says
     --yes) and nothing moves; on a terminal (a pty) answering "n" changes nothing (exit
     2); answering "y" to "Fail over node 1's users to node 2? [y/N]" fails node 1 over:
     Idle / Running in Backup Mode (On Admin Request).
  4. A second `failover 1 --yes` is refused by the state machine: exit 4.
  5. `user show alice` on node 2: served by node 2 now. `status --brief`: node 1 Idle,
     manual failover mode.  `history` on both nodes: node 1 went Normal -> Failing Over ->
     Idle (On Admin Request) after a start entry (FROM "-"), node 2 Taking Over -> Running
     in Backup Mode; `history 1 --json` is the last one only.
  6. `fallback --yes`: both Normal again.  `ha disable` without --yes and no terminal:
     exit 2, still Normal; `--yes ha disable`: both Unknown, `failover --yes` refused (4);
     `ha enable -y`: both Normal.
  7. `user del alice` without --yes: exit 2, alice still there; with -y: gone on both nodes.
Uses DUET_BUILD (default build/).  Exit 0 pass, 1 fail, 77 skipped.
"""

import json
import os
import pty
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "lib"))

from pair_harness import Fail, run_pair_test  # noqa: E402

T0 = time.monotonic()


def log(text):
    print(f"[{time.monotonic() - T0:6.2f}s] test_srmctl_pair: {text}", flush=True)


def expect(res, code, what):
    if res.returncode != code:
        raise Fail(f"{what}: exit {res.returncode}, expected {code}\n"
                   f"stdout: {res.stdout}\nstderr: {res.stderr}")
    return res


def ctl(pair, n, *args, code=0):
    return expect(pair.ctl(n, *args, check=False), code, f"srmctl {' '.join(args)} on {n}")


def ctl_tty(pair, n, answer, *args):
    """srmctl with a pty as standard input; answer is typed once the question is asked.
    Returns (exit code, stderr)."""
    master, slave = pty.openpty()
    cmd = [os.path.join(pair.build, "bin", "srmctl"), "-s", pair.env[f"NODE{n}_CTL"], *args]
    proc = subprocess.Popen(cmd, stdin=slave, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    os.close(slave)
    try:
        # The question goes to stderr before srmctl reads: typing ahead is fine, a tty
        # buffers the line until it is read.
        os.write(master, answer.encode() + b"\n")
        out, err = proc.communicate(timeout=30)
    finally:
        os.close(master)
    return proc.returncode, out, err


def brief_rows(text):
    """The table of `status --brief`: header columns' starts, then rows as dicts."""
    lines = text.splitlines()
    header = lines[0]
    if not header.startswith("NODE  "):
        raise Fail(f"status --brief has no table header:\n{text}")
    names = header.split()
    starts = [header.index(name) for name in names]
    rows = []
    for line in lines[1:]:
        if not re.match(r"^[12] ", line):
            break
        cells = [line[s:(starts[i + 1] if i + 1 < len(starts) else None)].strip()
                 for i, s in enumerate(starts)]
        rows.append(dict(zip(names, cells)))
    return rows, lines[1 + len(rows):]


def check_brief(pair, n, want):
    """want: {node: (state, reason)}; returns the lines after the table."""
    text = ctl(pair, n, "status", "--brief").stdout
    rows, rest = brief_rows(text)
    got = {int(r["NODE"].split()[0]): (r["STATE"], r["REASON"]) for r in rows}
    if got != want:
        raise Fail(f"status --brief on node {n}: {got}, want {want}\n{text}")
    me = [r for r in rows if r["NODE"].endswith("*")]
    if len(me) != 1 or not me[0]["NODE"].startswith(str(n)):
        raise Fail(f"status --brief on node {n} does not mark this node:\n{text}")
    return text, rest


def history(pair, n, *args):
    return json.loads(ctl(pair, n, "history", *args, "--json").stdout)


def views(pair):
    pair.wait_normal(20, "up")
    text, rest = check_brief(pair, 1, {1: ("Normal", "Normal"), 2: ("Normal", "Normal")})
    for prefix in ("peer link:   up, rtt ", "ha:          enabled", "alarms:      none",
                   "replication: "):
        if not any(line.startswith(prefix) for line in rest):
            raise Fail(f"status --brief lacks {prefix!r}:\n{text}")
    log(f"status --brief on node 1:\n{text}")
    js = json.loads(ctl(pair, 1, "status", "--brief", "--json").stdout)
    if not js["pair"] or [x["state"] for x in js["nodes"]] != ["Normal", "Normal"] \
            or not js["peer_link"]["up"] or "lag_in" not in js["replication"]:
        raise Fail(f"status --brief --json: {js}")
    rep = json.loads(ctl(pair, 2, "replication", "--json").stdout)
    if rep["node_id"] != 2 or rep["peer_node_id"] != 1 or "ship" not in rep["replication"]:
        raise Fail(f"replication --json on node 2: {rep}")
    log(f"replication on node 2:\n{ctl(pair, 2, 'replication').stdout.rstrip()}")

    ctl(pair, 1, "user", "add", "alice", "pw-alice")
    shown = json.loads(ctl(pair, 2, "user", "show", "alice", "--json").stdout)
    if shown["home_node"] != 1 or shown["served_by"] != 1 or shown["contacts"] != 0:
        raise Fail(f"user show --json on node 2: {shown}")
    plain = ctl(pair, 2, "user", "show", f"alice@{pair.env['DOMAIN']}").stdout
    if "home node:    1" not in plain or "served by:    node 1\n" not in plain:
        raise Fail(f"user show on node 2:\n{plain}")
    ctl(pair, 2, "user", "show", "nobody", code=1)
    log("user show on node 2: home node 1, served by node 1")


def confirmations_and_failover(pair):
    res = ctl(pair, 1, "failover", "1", code=2)
    if "--yes" not in res.stderr:
        raise Fail(f"refusal without a terminal does not mention --yes: {res.stderr}")
    rc, _, err = ctl_tty(pair, 1, "n", "failover", "1")
    if rc != 2 or "Fail over node 1's users to node 2? [y/N]" not in err \
            or "not confirmed" not in err:
        raise Fail(f"answer n: exit {rc}, stderr {err!r}")
    time.sleep(0.5)
    if pair.state(1) != ("Normal", "Normal") or pair.state(2) != ("Normal", "Normal"):
        raise Fail(f"an unconfirmed failover changed something: {pair.both()}")
    log("failover without --yes refused (no terminal), and declined on a terminal")

    rc, out, err = ctl_tty(pair, 1, "y", "failover", "1")
    if rc != 0 or "failover: accepted" not in out:
        raise Fail(f"answer y: exit {rc}, stdout {out!r}, stderr {err!r}")
    pair.wait({1: ("Idle", "On Admin Request"), 2: ("Running in Backup Mode",
                                                     "On Admin Request")},
              20, "failover confirmed on a terminal")
    res = ctl(pair, 1, "failover", "1", "--yes", code=4)
    if "refused" not in res.stderr or "Idle" not in res.stderr:
        raise Fail(f"second failover: {res.stderr}")
    log(f"second failover refused, exit 4: {res.stderr.strip()}")


def after_failover(pair):
    shown = json.loads(ctl(pair, 2, "user", "show", "alice", "--json").stdout)
    if shown["served_by"] != 2:
        raise Fail(f"user show after the failover: {shown}")
    _, rest = check_brief(pair, 1, {1: ("Idle", "On Admin Request"),
                                    2: ("Running in Backup Mode", "On Admin Request")})
    if not any("manual failover mode" in line for line in rest):
        raise Fail(f"status --brief does not say manual failover mode: {rest}")

    h1 = history(pair, 1)["transitions"]
    if h1[0]["from"] is not None:
        raise Fail(f"node 1's history does not begin with the start: {h1[0]}")
    tos = [(t["to"], t["reason"]) for t in h1]
    want = [("Failing Over", "On Admin Request"), ("Idle", "On Admin Request")]
    if tos[-2:] != want or ("Normal", "Normal") not in tos:
        raise Fail(f"node 1's history: {tos}")
    h2 = [(t["to"], t["reason"]) for t in history(pair, 2)["transitions"]]
    if h2[-2:] != [("Taking Over", "On Admin Request"),
                   ("Running in Backup Mode", "On Admin Request")]:
        raise Fail(f"node 2's history: {h2}")
    last = history(pair, 1, "1")["transitions"]
    if len(last) != 1 or last[0]["to"] != "Idle" or last[0]["from"] != "Failing Over":
        raise Fail(f"history 1: {last}")
    text = ctl(pair, 1, "history").stdout
    if not text.startswith("TIME (UTC)") or "(srmd started)" not in text \
            or not re.search(r"Failing Over \(On Admin Request\) +Idle \(On Admin Request\)",
                             text):
        raise Fail(f"plain history:\n{text}")
    log(f"history on node 1:\n{text.rstrip()}")


def maintenance_and_accounts(pair):
    ctl(pair, 1, "fallback", "--yes")
    pair.wait_normal(20, "fallback")
    ctl(pair, 2, "ha", "disable", code=2)
    if pair.state(2) != ("Normal", "Normal"):
        raise Fail(f"ha disable without --yes changed something: {pair.both()}")
    ctl(pair, 2, "--yes", "ha", "disable")
    pair.wait({1: ("Unknown", None), 2: ("Unknown", None)}, 10, "ha disable")
    _, rest = check_brief(pair, 2, {1: (pair.state(1)), 2: (pair.state(2))})
    if not any(line.startswith("ha:          disabled") for line in rest):
        raise Fail(f"status --brief does not say HA disabled: {rest}")
    ctl(pair, 1, "failover", "--yes", code=4)
    ctl(pair, 1, "ha", "enable", "-y")
    pair.wait_normal(20, "ha enable")
    log("maintenance: ha disable / enable confirmed, failover refused meanwhile")

    ctl(pair, 1, "user", "del", "alice", code=2)
    ctl(pair, 2, "user", "show", "alice")
    ctl(pair, 1, "user", "del", "-y", "alice")
    for n in (1, 2):
        ctl(pair, n, "user", "show", "alice", code=1)
    log("user del: refused without --yes, done with -y on both nodes")

    # Provisioning is forwarded to the peer and also replicated: the peer applies the
    # forwarded command without capture, so the two copies never count as a conflict.
    ctl(pair, 2, "user", "add", "carol", "pw-carol")
    ctl(pair, 1, "user", "passwd", "carol", "pw-carol-2")
    ctl(pair, 2, "user", "assign", "-y", "carol", "1")
    ctl(pair, 1, "user", "del", "-y", "carol")
    pair.wait_converged("provisioning replicated", timeout=30)
    for n in (1, 2):
        rows = pair.psql(n, "SELECT tbl, pk FROM replication_conflicts WHERE tbl = 'users'")
        if rows:
            raise Fail(f"node {n} logged provisioning as replication conflicts: {rows}")
    log("provisioning on both nodes: forwarded and replicated, no conflict logged")


def scenario(pair):
    views(pair)
    confirmations_and_failover(pair)
    after_failover(pair)
    maintenance_and_accounts(pair)


def main():
    return run_pair_test("test_srmctl_pair", scenario, log)


if __name__ == "__main__":
    sys.exit(main())
