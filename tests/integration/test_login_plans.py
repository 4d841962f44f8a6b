#!/usr/bin/python3
"""A login reads the offline store through its index, however large the store.

The engine runs its queries as prepared statements (lib/pg.c); after a few runs PostgreSQL
keeps a generic plan, made while the tables were small.  The login's query asks whether the
user has offline messages (EXISTS on offline_messages): its generic plan was a sequential
scan, kept as the store grew, so while users were between nodes (thousands of stored
messages) every login scanned all of them (0.7 ms at 20,000 rows).  The engine's
connections now run with enable_seqscan off (engine/main.c).

The check, on one database connection: logins while the store is empty (PostgreSQL settles
on its generic plan), then 3,000 messages stored for another user and more logins, while
PostgreSQL's own counters (pg_stat_user_tables) say how offline_messages was read: no
sequential scan, and index scans.  Exit 0 pass, 1 fail.
"""

import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "lib"))

from rawxmpp import RawClient, XmppError, group_main, require  # noqa: E402

PROG = "test_login_plans"
WARMUP = 8  # a prepared statement's sixth run may take the generic plan
LOGINS = 12
# A [database] section after [xmpp]: one connection, so every login's query runs on it.
CONF = "[database]\nconnections = 1\n"
STORED = 3000
PSQL = shutil.which("psql") or "/usr/lib/postgresql/15/bin/psql"
STATS_FLUSH_S = 11  # a busy backend reports its table counters within 10 s of going idle


def psql(env, sql):
    res = subprocess.run([PSQL, "-X", "-h", env["NODE1_PGHOST"], "-p", env["NODE1_PGPORT"],
                          "-U", "duet", "-d", "duet", "-Atqc", sql],
                         capture_output=True, text=True, timeout=20, check=False)
    if res.returncode != 0:
        raise XmppError(f"psql failed: {res.stderr.strip()}")
    return res.stdout.strip()


def scans(env):
    """(sequential, index) scans of offline_messages so far."""
    row = psql(env, "SELECT seq_scan, coalesce(idx_scan, 0) FROM pg_stat_user_tables"
                    " WHERE relname = 'offline_messages'")
    seq, idx = row.split("|")
    return int(seq), int(idx)


def log_in(env, checks, user):
    c = RawClient(env, source=checks.source())
    try:
        c.login(user, f"{user}-secret", "r1")
    finally:
        c.close()


def logins_use_the_index(group, checks):
    env = group.env
    for i in range(WARMUP):
        log_in(env, checks, f"warm{i}")
    psql(env, f"INSERT INTO offline_messages (username, stanza) SELECT 'hoard', '<message/>'"
              f" FROM generate_series(1, {STORED})")
    # The warm-up's counts may still be on their way (they can only be index scans, or
    # sequential ones, which the check is for: either way no false pass).
    seq0, idx0 = scans(env)
    for i in range(LOGINS):
        log_in(env, checks, f"plan{i}")
    time.sleep(STATS_FLUSH_S)
    seq1, idx1 = scans(env)
    checks.say(f"offline_messages during {LOGINS} logins: {seq1 - seq0} sequential scans, "
               f"{idx1 - idx0} index scans")
    require(seq1 == seq0, f"{seq1 - seq0} sequential scans of offline_messages "
                          f"during {LOGINS} logins (want 0)")
    require(idx1 - idx0 >= LOGINS, f"{idx1 - idx0} index scans for {LOGINS} logins")


def body(group, checks):
    group.up(CONF)
    users = ["hoard"] + [f"warm{i}" for i in range(WARMUP)] + [f"plan{i}" for i in range(LOGINS)]
    for user in users:
        group.add_user(user, f"{user}-secret")
    checks.run("logins read the offline store through its index",
               lambda clients: logins_use_the_index(group, checks))


if __name__ == "__main__":
    sys.exit(group_main(PROG, body))
