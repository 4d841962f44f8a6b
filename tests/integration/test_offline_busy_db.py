#!/usr/bin/python3
"""A message stored for an offline user survives a database too busy to take it at once.

The engine's pool runs with two connections (one may carry writes, the other reads, lib/pg.h).
Writes to offline_messages are held back by a SHARE lock for longer than the pool's queue
timeout (5 s), while a sender writes to 40 offline users: 32 INSERTs wait in the write
connection's pipeline, the others wait in the pool's queue until it gives up on them
("database overloaded": never sent).  Before, those messages were dropped with a log line,
although their sender had been told they were handled; now such a write is queued again
(engine/offline.c), so once the lock goes every message is stored exactly once and the sender
gets no error.  Exit 0 pass, 1 fail.
"""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "lib"))

from pg_lock import lock_table  # noqa: E402
from rawxmpp import (RawClient, XmppError, group_main, local, require,  # noqa: E402
                     require_eq, short)

PROG = "test_offline_busy_db"
RECIPIENTS = 40
LOCK_SECONDS = 7  # longer than the pool's queue timeout (5 s)
# A [database] section after [xmpp]: two connections, so writes have one of their own.
CONF = "[database]\nconnections = 2\n"
PSQL = shutil.which("psql") or "/usr/lib/postgresql/15/bin/psql"


def db_count(env, sql):
    res = subprocess.run([PSQL, "-h", env["NODE1_PGHOST"], "-p", env["NODE1_PGPORT"], "-U",
                          "duet", "-d", "duet", "-Atqc", sql],
                         capture_output=True, text=True, timeout=20, check=False)
    if res.returncode != 0:
        raise XmppError(f"psql failed: {res.stderr.strip()}")
    return int(res.stdout.strip())


def stored_despite_busy_db(group, checks):
    env = group.env
    sender = RawClient(env, source=checks.source())
    sender.login("busy0", "busy0-secret", "r1")
    sender.send("<presence/>")
    unlock = lock_table(env["NODE1_PGHOST"], env["NODE1_PGPORT"], "offline_messages",
                        mode="SHARE")
    try:
        for i in range(1, RECIPIENTS + 1):
            sender.send(f"<message to='busy{i}@{env['DOMAIN']}' type='chat' id='m{i}'>"
                        f"<body>while busy {i}</body></message>")
        time.sleep(LOCK_SECONDS)
        require_eq(db_count(env, "SELECT count(*) FROM offline_messages"), 0,
                   "messages stored while the table is locked")
    finally:
        unlock()
    deadline = time.monotonic() + 20
    while db_count(env, "SELECT count(*) FROM offline_messages") < RECIPIENTS:
        require(time.monotonic() < deadline, "every message stored once the lock went: "
                f"{db_count(env, 'SELECT count(*) FROM offline_messages')} of {RECIPIENTS}")
        time.sleep(0.2)
    require_eq(db_count(env, "SELECT count(DISTINCT username) FROM offline_messages"),
               RECIPIENTS, "one message per recipient")
    ping = sender.iq("get", "<ping xmlns='urn:xmpp:ping'/>", to=env["DOMAIN"], timeout=15)
    require_eq(ping.get("type"), "result", "the sender's ping")
    errors = [e for e in sender.stanzas
              if local(e) == "message" and e.get("type") == "error"]
    require(not errors, f"the sender got errors: {[short(e) for e in errors[:3]]}")
    with open(os.path.join(group.dir, "node1", "srmd.log"), encoding="utf-8",
              errors="replace") as f:
        log = f.read()
    require("store not run (database overloaded): queued again" in log,
            "no INSERT waited past the queue timeout: the test did not test the retry")
    require("store failed" not in log, "a store failed")
    sender.close()


def run(group, checks):
    group.up(CONF)
    for i in range(RECIPIENTS + 1):
        group.add_user(f"busy{i}", f"busy{i}-secret")
    checks.say(f"group up in {group.dir} (two database connections)")
    checks.run("offline messages stored despite a database too busy for a while",
               lambda clients: stored_despite_busy_db(group, checks))


def main():
    return group_main(PROG, run)


if __name__ == "__main__":
    sys.exit(main())
