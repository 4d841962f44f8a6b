#!/usr/bin/python3
"""Conflicting edits while the pair is apart, then heal (issue #4,
docs/replication-protocol.md §5).

  1. A pair; ann (home 1) with roster items w, x, y and a vCard, written on node 1 and
     replicated (digests equal).
  2. The pair is cut apart (nftables on the peer and route links when root; otherwise node
     2's srmd is stopped for under a second: node 1's batches wait unapplied in the socket,
     node 2 ships nothing).  Both databases are written directly (psql; the capture triggers
     record the writes), each row on both sides, 20 ms apart so the HLC order is known:
       x: update on 1, later update on 2          -> node 2's name wins
       y: delete on 1, later update on 2          -> the update wins (the row lives)
       w: update on 2, later delete on 1          -> the delete wins (tombstone)
       vCard: update on 2, later update on 1      -> node 1's wins
       z1 on 1, z2 on 2: new rows, no conflict    -> both present
  3. Heal: both nodes Normal, digests equal; on BOTH databases the rows are the winners
     above; replication_conflicts holds x, y, w and the vCard on both nodes with the winner
     seen from that node (remote where the peer's version won, local otherwise), z1/z2 are
     not conflicts; both srmd logs report the conflicts.
  4. A local write in flight while the peer's older change of the same row is applied: node
     2's srmd is stopped, node 1 updates ann's vCard, node 2 starts a transaction updating it
     too (a later HLC) and holds it open for 1 s; node 2's srmd continues meanwhile, so the
     applier meets the uncommitted row.  The applier must decide on the committed local
     version (it waits for the capture lock), not on what it read before: both nodes end
     with node 2's vCard, and node 2 logs the conflict with winner local.
Uses DUET_BUILD (default build/).  Exit 0 pass, 1 fail, 77 skipped.
"""

import json
import os
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "lib"))

from pair_harness import Fail, Partition, run_pair_test  # noqa: E402

T0 = time.monotonic()
GAP_S = 0.02


def log(text):
    print(f"[{time.monotonic() - T0:6.2f}s] test_pair_replication_conflict: {text}", flush=True)


def vcard(fn):
    return f"<vCard xmlns=\"vcard-temp\"><FN>{fn}</FN></vCard>"


def roster_of(pair, n):
    return dict(pair.psql(n, "SELECT contact, coalesce(name, '') FROM roster_items"
                             " WHERE username = 'ann'"))


def scenario(pair):
    pair.wait_normal(20, "up")
    pair.ctl(1, "user", "add", "ann", "ann-pw")
    c = lambda x: f"{x}@{pair.env['DOMAIN']}"  # noqa: E731
    pair.psql(1, "INSERT INTO roster_items (username, contact, name) VALUES "
                 f"('ann', '{c('w')}', 'base-w'), ('ann', '{c('x')}', 'base-x'), "
                 f"('ann', '{c('y')}', 'base-y'); "
                 f"INSERT INTO vcards (username, vcard) VALUES ('ann', '{vcard('base')}')")
    pair.wait_converged("before the partition", timeout=15)
    before = {n: int(pair.psql(n, "SELECT coalesce(max(id), 0) FROM replication_conflicts")[0][0])
              for n in (1, 2)}

    writes = [
        (1, f"UPDATE roster_items SET name = 'one-x' WHERE username = 'ann' AND contact = '{c('x')}'"),
        (2, f"UPDATE vcards SET vcard = '{vcard('two')}' WHERE username = 'ann'"),
        (1, f"DELETE FROM roster_items WHERE username = 'ann' AND contact = '{c('y')}'"),
        (2, f"UPDATE roster_items SET name = 'two-w' WHERE username = 'ann' AND contact = '{c('w')}'"),
        (2, f"UPDATE roster_items SET name = 'two-x' WHERE username = 'ann' AND contact = '{c('x')}'"),
        (1, f"UPDATE vcards SET vcard = '{vcard('one')}' WHERE username = 'ann'"),
        (2, f"UPDATE roster_items SET name = 'two-y' WHERE username = 'ann' AND contact = '{c('y')}'"),
        (1, f"DELETE FROM roster_items WHERE username = 'ann' AND contact = '{c('w')}'"),
        (1, f"INSERT INTO roster_items (username, contact, name) VALUES ('ann', '{c('z1')}', 'one-z')"),
        (2, f"INSERT INTO roster_items (username, contact, name) VALUES ('ann', '{c('z2')}', 'two-z')"),
    ]
    with Partition(pair) as cut:
        log(f"partition by {cut.kind}")
        cut.cut(node=2)
        t_cut = time.monotonic()
        for n, sql in writes:
            pair.psql(n, sql)
            time.sleep(GAP_S)
        # Nothing written on one side reached the other (replication takes milliseconds).
        time.sleep(0.15)
        apart = (c("z1") in roster_of(pair, 2), c("z2") in roster_of(pair, 1))
        if cut.kind == "nft":
            time.sleep(max(0.0, 1.5 - (time.monotonic() - t_cut)))  # split brain too
        held = time.monotonic() - t_cut
        cut.heal()
    log(f"{len(writes)} writes on both sides while apart for {held:.2f}s; healed")
    if apart != (False, False):
        raise Fail(f"the pair was not apart: z1 on node 2, z2 on node 1: {apart}")

    pair.wait_normal(20, "after the heal")
    pair.wait_converged("after the heal", timeout=20)
    want_roster = {c("x"): "two-x", c("y"): "two-y", c("z1"): "one-z", c("z2"): "two-z"}
    for n in (1, 2):
        have = roster_of(pair, n)
        if have != want_roster:
            raise Fail(f"node {n}: ann's roster {have}, want {want_roster}")
        vc = pair.psql(n, "SELECT vcard FROM vcards WHERE username = 'ann'")
        if vc != [[vcard("one")]]:
            raise Fail(f"node {n}: ann's vCard {vc}, want node 1's later one")
        tomb = pair.psql(n, "SELECT origin, deleted FROM repl_meta WHERE tbl = 'roster_items'"
                            f" AND pk::jsonb = jsonb_build_object('username', 'ann',"
                            f" 'contact', '{c('w')}')")
        if tomb != [["1", "t"]]:
            raise Fail(f"node {n}: w's version {tomb}, want node 1's tombstone")
    log("both nodes hold the later version of every row")

    # Who won, as seen from each node: (table, contact or None) -> winner.
    expect = {
        1: {("roster_items", "x"): "remote", ("roster_items", "y"): "remote",
            ("roster_items", "w"): "local", ("vcards", None): "local"},
        2: {("roster_items", "x"): "local", ("roster_items", "y"): "local",
            ("roster_items", "w"): "remote", ("vcards", None): "remote"},
    }
    for n in (1, 2):
        rows = pair.psql(n, "SELECT tbl, pk::text, winner, remote_origin, remote_op,"
                            " local_hlc < remote_hlc FROM replication_conflicts"
                            f" WHERE id > {before[n]} AND tbl IN ('roster_items', 'vcards')"
                            " ORDER BY id")
        got = {}
        for tbl, pk, winner, origin, op, older_local in rows:
            key = json.loads(pk)
            if key.get("username") != "ann":
                continue
            contact = key.get("contact")
            name = contact.split("@")[0] if contact else None
            if origin != str(3 - n):
                raise Fail(f"node {n}: conflict {tbl} {key} from origin {origin}")
            if (winner == "remote") != (older_local == "t"):
                raise Fail(f"node {n}: conflict {tbl} {key}: winner {winner} is not the "
                           f"later version")
            got[(tbl, name)] = winner
        if got != expect[n]:
            raise Fail(f"node {n}: conflicts {got}, want {expect[n]}\n  rows {rows}")
        if "conflict(s) with node" not in pair.log_text(n):
            raise Fail(f"node {n}'s srmd log does not report the conflicts")
        log(f"node {n}: conflicts logged: {sorted(got.items(), key=str)}")
    for n in (1, 2):
        rep = pair.status(n)["pair"]["replication"]
        if rep.get("conflicts", 0) < 4:
            raise Fail(f"node {n}: status counts {rep.get('conflicts')} conflicts, want >= 4")
    in_flight(pair)


def in_flight(pair):
    """Step 4: the applier against an uncommitted local write of the same row."""
    before = int(pair.psql(2, "SELECT coalesce(max(id), 0) FROM replication_conflicts")[0][0])
    pid = pair.srmd_pid(2)
    os.kill(pid, signal.SIGSTOP)
    try:
        pair.psql(1, f"UPDATE vcards SET vcard = '{vcard('one-late')}' WHERE username = 'ann'")
        time.sleep(GAP_S)
        local = pair.psql_background(
            2, f"BEGIN; UPDATE vcards SET vcard = '{vcard('two-late')}' WHERE username = 'ann';"
               " SELECT pg_sleep(1.0); COMMIT;")
        time.sleep(0.3)  # node 2's UPDATE has drawn its HLC and holds the row
    finally:
        os.kill(pid, signal.SIGCONT)
    try:
        err = local.communicate(timeout=20)[1]
    except Exception:
        local.kill()
        raise
    if local.returncode != 0:
        raise Fail(f"node 2's local transaction failed: {err.strip()}")
    pair.wait_normal(20, "after the write in flight")
    pair.wait_converged("after the write in flight", timeout=20)
    for n in (1, 2):
        vc = pair.psql(n, "SELECT vcard FROM vcards WHERE username = 'ann'")
        if vc != [[vcard("two-late")]]:
            raise Fail(f"node {n}: ann's vCard {vc}, want node 2's later write")
    rows = pair.psql(2, "SELECT winner FROM replication_conflicts"
                        f" WHERE id > {before} AND tbl = 'vcards'")
    if rows != [["local"]]:
        raise Fail(f"node 2: conflicts for the write in flight {rows}, want one, winner local")
    log("a local write in flight during the apply: both nodes keep the later one, conflict "
        "logged")


def main():
    return run_pair_test("test_pair_replication_conflict", scenario, log)


if __name__ == "__main__":
    sys.exit(main())
