"""Hold a PostgreSQL table locked from a test: the engine's queries on it wait meanwhile.

    unlock = lock_table(host, port, "offline_messages")
    ...                      # the engine's INSERT into offline_messages waits here
    unlock()                 # COMMIT: it goes on
"""

import select
import shutil
import subprocess

PSQL = shutil.which("psql") or "/usr/lib/postgresql/15/bin/psql"


class LockError(Exception):
    """The lock could not be taken."""


def lock_table(host, port, table, user="duet", db="duet", timeout=20,
               mode="ACCESS EXCLUSIVE"):
    """Lock `table` (in `mode`: SHARE lets reads through and stops writes) in a psql
    session of its own; returns the function that commits and ends it."""
    p = subprocess.Popen([PSQL, "-X", "-h", str(host), "-p", str(port), "-U", user, "-d", db,
                          "-Atq"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    p.stdin.write(f"BEGIN; LOCK TABLE {table} IN {mode} MODE; SELECT 'locked';\n")
    p.stdin.flush()
    ready, _, _ = select.select([p.stdout], [], [], timeout)
    if not ready or p.stdout.readline().strip() != "locked":
        p.kill()
        raise LockError(f"could not lock {table}: {p.stderr.read()}")

    def unlock():
        p.communicate("COMMIT;\n", timeout=timeout)
    return unlock
