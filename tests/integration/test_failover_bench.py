#!/usr/bin/python3
"""`make bench-failover` in small (issue 5): contrib/bench/failover with 200 clients and
scenario 3 (manual failover) on a local pair: every client follows see-other-host to node 2,
no message is lost or duplicated, every client is back.  The figures are printed, not
judged (the machine is shared); only the guarantees are.  Exit 0 pass, 1 fail, 77 skip."""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROG = "test_failover_bench"


def main():
    build = os.path.abspath(os.environ.get("DUET_BUILD", str(ROOT / "build")))
    if not os.access(os.path.join(build, "bin", "duet-loadgen"), os.X_OK):
        print(f"{PROG}: SKIP: {build}/bin/duet-loadgen not built")
        return 77
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "figures.json")
        res = subprocess.run([str(ROOT / "contrib" / "bench" / "failover"), "--users", "200",
                              "--scenarios", "3", "--after-mark", "30", "--json", out],
                             env=dict(os.environ, BUILD=build), capture_output=True,
                             text=True, timeout=240, check=False)
        print(res.stdout)
        if res.returncode == 2 or not os.path.exists(out):
            print(res.stderr[-6000:])
            print(f"{PROG}: FAIL: the bench did not run (exit {res.returncode})")
            return 1
        with open(out, encoding="utf-8") as f:
            r = json.load(f)["results"][0]
    m = r["messages"]
    problems = []
    if r["lost_session"] != 200 or r["back"] != 200 or r["never_back"]:
        problems.append(f"clients: {r['lost_session']} moved, {r['back']} back, "
                        f"{r['never_back']} never back (want 200, 200, 0)")
    if r["redirects"] < 200:
        problems.append(f"only {r['redirects']} see-other-host followed")
    if m["lost"] or m["duplicated"]:
        problems.append(f"messages lost {m['lost']}, duplicated {m['duplicated']}")
    if m["sent_during_move"] == 0:
        problems.append("no message sent during the move: nothing was tested")
    for p in problems:
        print(f"{PROG}: FAIL: {p}")
    if not problems:
        print(f"{PROG}: all passed ({m['sent_during_move']} messages during the move, "
              f"100% back after {r['back_s']['p100']} s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
