#!/usr/bin/python3
"""The manual's bulk tools (issue #7, docs/bulk-tools.md) against real groups.

Two single-node groups A (max_contacts = 3, user_check_interval = 1s) and B, and a pair P,
started in parallel:
  1. contacts import on A: one crafted row per skip reason (Invalid format: missing columns,
     bad UTF-8, a NUL byte, a 10 kB line, an unterminated quote, too many columns, a group
     name of 256 characters; Invalid contact domain; Cannot add self as contact; User's
     contact list exceeds limit; User not assigned to local node: no such user, an
     unassigned user, another domain), each reported with its row number, and the summary.
     alice is logged in with her roster requested: the engine pushes the imported contacts
     (roster-reload).  A second import changes nothing (digest unchanged).
     Hostile requests on the socket (a 1 MB line, a body cut short, garbage) are skipped
     rows or nothing at all, and srmd goes on serving.
  2. export A -> import into B -> export B: byte-for-byte the same file.
  3. contacts rename on A: alice's bob becomes robert (pushed to her client), bob's own
     account stays and the answer says so.
  4. moving gina (contacts, vCard, an offline message) from A to B: users export,
     users unassign on A, users import + users assign on B; gina logs in on B with her old
     password and gets her offline message, vCard and contacts; a re-import changes nothing;
     an account of B with the same ID but other credentials is skipped as a duplicate.
  5. users check on A after twin accounts ("Alice", fullwidth "ａｌｉｃｅ") and an invalid
     ID ("bad user") are written behind srmd's back: listed by `users check --json`, and
     the periodic check logs the alarms by itself.
  6. pair: an import on node 1 writes its own users' lists (visible on node 2 through
     replication) and skips node 2's users, which the same import on node 2 then writes.
Uses DUET_BUILD (default build/).  Exit 0 pass, 1 fail.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "lib"))

from pair_harness import Fail, Pair  # noqa: E402
from rawxmpp import Group, RawClient, is_roster_push, local, q, NS_ROSTER  # noqa: E402

BUILD = os.environ.get("DUET_BUILD", str(ROOT / "build"))
SRMCTL = os.path.join(BUILD, "bin", "srmctl")
PSQL = "/usr/lib/postgresql/15/bin/psql"
T0 = time.monotonic()


def log(text):
    print(f"[{time.monotonic() - T0:6.2f}s] test_bulk_contacts: {text}", flush=True)


def check(cond, what):
    if not cond:
        raise Fail(what)
    log(f"ok: {what}")


def ctl(env, *args, stdin=None, rc=0, node=1):
    res = subprocess.run([SRMCTL, "-s", env[f"NODE{node}_CTL"], *args], input=stdin,
                         stdin=None if stdin is not None else subprocess.DEVNULL,
                         capture_output=True, timeout=120, check=False)
    if rc is not None and res.returncode != rc:
        raise Fail(f"srmctl {' '.join(args)} exited {res.returncode} (wanted {rc}): "
                   f"{res.stderr.decode(errors='replace')}{res.stdout.decode(errors='replace')}")
    return res


def ctl_json(env, *args, node=1):
    return json.loads(ctl(env, "--json", *args, node=node).stdout)


def psql(env, sql, node=1):
    res = subprocess.run([PSQL, "-h", env[f"NODE{node}_PGHOST"], "-p", env[f"NODE{node}_PGPORT"],
                          "-U", "duet", "-d", "duet", "-X", "-At", "-v", "ON_ERROR_STOP=1",
                          "-c", sql], capture_output=True, text=True, timeout=60, check=False)
    if res.returncode != 0:
        raise Fail(f"psql: {res.stderr.strip()}\n  {sql}")
    return res.stdout.strip()


def digest(env, node=1):
    return ctl_json(env, "digest", node=node)["digest"]


def login(env, user, password):
    c = RawClient(env)
    c.login(user, password, resource="bulk")
    ans = c.iq("get", f"<query xmlns='{NS_ROSTER}'/>")
    check(ans.get("type") == "result", f"{user} logged in and fetched the roster")
    return c


def pushes(client, want, timeout=10):
    """Wait for roster pushes naming every JID in want {jid: subscription or 'remove'}."""
    seen = {}
    deadline = time.monotonic() + timeout
    while not all(seen.get(j) == s for j, s in want.items()):
        left = deadline - time.monotonic()
        if left <= 0:
            raise Fail(f"roster pushes: wanted {want}, saw {seen}")
        e = client.expect(is_roster_push(), left, "a roster push")
        for item in e.find(q(NS_ROSTER, "query")):
            seen[item.get("jid")] = item.get("subscription")
    return seen


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return str(path)


# ---- 1. import with every skip reason ----

ROWS = [
    (b"User ID,User Domain,Contact ID,Contact Domain,Nickname,Group Name", None),   # 1
    (b"alice,duet.test,bob,duet.test,Bobby,Friends", None),                         # 2
    (b"alice,duet.test,bob,duet.test,,Work", None),                                 # 3
    (b'alice, duet.test ,carol,DUET.test,"Carol, ""C""",General', None),            # 4
    (b"alice,duet.test,alice,duet.test,me,Self", "self-contact"),                   # 5
    (b"alice,duet.test,zed,-bad-.test,,G", "invalid-contact-domain"),               # 6
    (b"alice,duet.test,zed,example.c0m,,G", "invalid-contact-domain"),              # 7
    (b"alice,duet.test", "invalid-format"),                                         # 8
    (b"nobody,duet.test,bob,duet.test,,G", "user-not-assigned"),                    # 9
    (b"frank,duet.test,bob,duet.test,,G", "user-not-assigned"),                     # 10
    (b"bob,other.test,alice,duet.test,,G", "user-not-assigned"),                    # 11
    (b"alice,duet.test,dave,duet.test,,Friends", None),                             # 12
    (b"alice,duet.test,eve,duet.test,,Friends", "contact-list-limit"),              # 13
    (b"alice,duet.test,\xff\xfe,duet.test,,G", "invalid-format"),                   # 14
    (b"alice,duet.test,eve,duet.test,," + b"x" * 10000, "invalid-format"),          # 15
    (b'"alice,duet.test,eve,duet.test,,G', "invalid-format"),                       # 16
    (b'bob,duet.test,alice,duet.test,"Al ""the"" ice",Friends', None),              # 17
    (b"alice,duet.test,bob,duet.test,,Friends", None),                              # 18
    (b"alice,duet.test,eve,duet.\x00test,,G", "invalid-format"),                    # 19
    (b"alice,duet.test,eve,duet.test,,G,extra", "invalid-format"),                  # 20
    (b"alice,duet.test,eve,duet.test,," + "é".encode() * 256, "invalid-format"),    # 21
    (b"", None),                                                                    # 22 blank
    (b".alice,duet.test,eve,duet.test,,G", "user-not-assigned"),  # 23: dot-stuffed, no such user
]
EXPECTED_EXPORT = (b"alice,duet.test,bob,duet.test,Bobby,Friends\n"
                   b"alice,duet.test,bob,duet.test,Bobby,Work\n"
                   b'alice,duet.test,carol,duet.test,"Carol, ""C""",General\n'
                   b"alice,duet.test,dave,duet.test,,Friends\n"
                   b'bob,duet.test,alice,duet.test,"Al ""the"" ice",Friends\n')
USERS = ["alice", "bob", "carol", "dave", "eve", "frank"]


def part_import(a, tmp):
    for u in USERS:
        ctl(a, "user", "add", u, f"pw-{u}")
    ctl(a, "user", "assign", "frank", "none", "--yes")
    alice = login(a, "alice", "pw-alice")
    csv = write(tmp / "import.csv", b"\r\n".join(r for r, _ in ROWS) + b"\r\n")
    res = ctl(a, "contacts", "import", csv, rc=2)  # no terminal, no --yes: refused
    check(b"--yes" in res.stderr, "contacts import without --yes (no terminal) is refused")
    out = ctl_json(a, "contacts", "import", csv, "--yes")
    log(f"import: {json.dumps({k: v for k, v in out.items() if k != 'skips'})}")
    want_skips = {i + 1: r for i, (_, r) in enumerate(ROWS) if r}
    got_skips = {s["row"]: s["reason"] for s in out["skips"]}
    check(got_skips == want_skips, f"each crafted row skipped with its reason: {got_skips}")
    check([s["row"] for s in out["skips"]] == sorted(want_skips), "skips listed in row order")
    check(out["imported"] == 6 and out["skipped"] == len(want_skips) and out["errors"] == 0
          and out["not_processed"] == 0 and out["users_changed"] == 2,
          "summary: 6 imported, every skip counted, 2 users changed")
    check(out["skipped_by_reason"] == {"invalid-format": 7, "invalid-contact-domain": 2,
                                       "self-contact": 1, "contact-list-limit": 1,
                                       "user-not-assigned": 4}, "skips counted by reason")
    seen = pushes(alice, {"bob@duet.test": "none", "carol@duet.test": "none",
                          "dave@duet.test": "none"})
    check("eve@duet.test" not in seen, "alice's client got the imported contacts pushed "
          "(engine roster-reload), not the refused one")
    text = ctl(a, "contacts", "import", csv, "--yes").stdout.decode()
    check("row 13: User's contact list exceeds limit" in text and
          "row 5: Cannot add self as contact" in text and
          "row 8: Invalid format (2 columns, 6 expected)" in text and
          "row 11: User not assigned to local node" in text and
          "row 6: Invalid contact domain" in text, "plain-text skip lines use the manual's "
          "reason names")
    d1 = digest(a)
    again = ctl_json(a, "contacts", "import", csv, "--yes")
    check(again["imported"] == 6 and again["unchanged"] == 6 and again["users_changed"] == 0
          and digest(a) == d1, "a repeated import changes nothing (idempotent)")
    return alice


def raw(env, data, close_early=False):
    """Send raw bytes to srmd's control socket; the answer (b"" if we hung up first)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(20)
        s.connect(env["NODE1_CTL"])
        try:
            s.sendall(data)
        except OSError:
            pass  # srmd answered early and closed: read its answer
        if close_early:
            return b""
        s.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk


def raw_when_idle(env, data):
    """raw(), again while srmd still winds up a job whose client hung up a moment ago."""
    deadline = time.monotonic() + 15
    while True:
        ans = raw(env, data)
        if not ans.startswith(b"error busy") or time.monotonic() > deadline:
            return ans
        time.sleep(0.1)


def part_hostile(a):
    # A body line of 1 MB without any newline, then the client hangs up.
    raw(a, b"1\tcontacts\timport\n" + b"x" * 1000000, close_early=True)
    # The body ends without its "." line: the client is gone, nothing is half done.
    raw(a, b"1\tcontacts\timport\nalice,duet.test,eve,duet.test,,G\n", close_early=True)
    # End of input without the final ".": srmd sees EOF and gives up.
    ans = raw_when_idle(a, b"1\tcontacts\timport\nalice,duet.test,erin,duet.test,,G\n")
    check(ans == b"", f"a body without its end is not applied (answer {ans[:80]!r})")
    ans = raw(a, b"1\tcontacts\timport\n" + b"y" * 20000 + b"\n.\n")
    check(ans.startswith(b"ok\n") and b"line longer than 4096 bytes" in ans,
          "a 20 kB line is one skipped row")
    ans = raw(a, b"1\tusers\timport\n\xff\xfe\x00garbage\n.\n")
    check(ans.startswith(b"error bad-file") and b"no duet-users header" in ans,
          "users import refuses a file without the header line")
    ans = raw(a, b'1\tusers\timport\n{"format":"duet-users","version":1,"domain":"duet.test"}'
              b"\n\xff\xfe\x00garbage\n.\n")
    check(ans.startswith(b"ok\n") and b"skipped: 1" in ans,
          f"garbage after the header is one skipped line: {ans[:200]!r}")
    check(psql(a, "SELECT count(*) FROM roster_items WHERE contact IN "
                  "('eve@duet.test', 'erin@duet.test')") == "0",
          "nothing of the broken requests was written")
    out = ctl_json(a, "contacts", "import", "/dev/null", "--yes")
    check(out["imported"] == 0 and out["skipped"] == 0,
          "srmd still serves bulk commands (no job left running)")


# ---- 2. round trip ----

def part_round_trip(a, b, tmp):
    ea = tmp / "a.csv"
    ctl(a, "contacts", "export", str(ea))
    data = ea.read_bytes()
    check(data == EXPECTED_EXPORT, f"export of A is the manual's CSV:\n{data.decode()}")
    for u in USERS[:5]:
        ctl(b, "user", "add", u, f"other-{u}")
    out = ctl_json(b, "contacts", "import", str(ea), "--yes")
    check(out["imported"] == 5 and out["skipped"] == 0, "A's export imports into B whole")
    eb = tmp / "b.csv"
    ctl(b, "contacts", "export", str(eb))
    check(eb.read_bytes() == data, "export of B is byte-for-byte the export of A")
    one = ctl(a, "contacts", "export", "-", "bob@duet.test").stdout
    check(one == EXPECTED_EXPORT.splitlines(True)[-1], "export of one user's list")


def fake_user(name):
    keys = {"salt": "00" * 16, "iter": 4096, "stored": "11" * 32, "server": "22" * 32}
    return json.dumps({"user": name, "sha1": {**keys, "stored": "11" * 20, "server": "22" * 20},
                       "sha256": keys, "roster": [], "vcard": None, "offline": []})


def part_paging(b, tmp):
    """More than one page both ways: 2160 contacts (2000 a page; 5 batches of 500 on
    import) and 60 users (50 a page)."""
    header = '{"format":"duet-users","version":1,"domain":"duet.test"}'
    names = [f"p{i:02d}" for i in range(60)]
    f = write(tmp / "many.jsonl", "\n".join([header] + [fake_user(n) for n in names]).encode())
    out = ctl_json(b, "users", "import", f, "1", "--yes")
    check(out["imported"] == 60 and out["created"] == 60, "60 users imported from a file")
    rows = b"".join(f"p{u:02d},duet.test,c{c:04d},example.com,,G\n".encode()
                    for u in range(12) for c in range(180))
    out = ctl_json(b, "contacts", "import", write(tmp / "many.csv", rows), "--yes")
    check(out["imported"] == 2160 and out["skipped"] == 0, "2160 rows imported (5 batches)")
    res = ctl(b, "contacts", "export", str(tmp / "many-out.csv"), "1")
    got = (tmp / "many-out.csv").read_bytes()
    mine = b"".join(line for line in got.splitlines(True) if line.startswith(b"p"))
    check(mine == rows and b"(2 pages)" in res.stdout,
          f"a 2-page export gives back the imported rows: {res.stdout.decode().strip()}")
    res = ctl(b, "users", "export", str(tmp / "all.jsonl"), "all")
    lines = (tmp / "all.jsonl").read_bytes().splitlines()
    exported = [json.loads(x)["user"] for x in lines[1:]]
    check(b"(2 pages)" in res.stdout and exported == sorted(exported)
          and set(names) <= set(exported) and len(exported) == len(set(exported)),
          f"a 2-page users export lists every user once, sorted ({len(exported)})")


# ---- 3. rename ----

def part_rename(a, alice, tmp):
    ctl(a, "user", "add", "robert", "pw-robert")
    csv = write(tmp / "rename.csv", b"Contact ID, New Contact ID\n"
                b"bob@duet.test, robert@duet.test\n"
                b"not-a-jid, x@duet.test\n")
    out = ctl_json(a, "contacts", "rename", csv, "--yes")
    log(f"rename: {out}")
    rows = {r["row"]: r for r in out["rows"]}
    check(rows[2].get("contact_lists") == 1 and rows[2].get("old_is_local_account") is True
          and rows[3].get("reason") == "invalid-format", "rename: one list changed, the "
          "bad row skipped, bob reported as a local account")
    pushes(alice, {"bob@duet.test": "remove", "robert@duet.test": "none"})
    check(psql(a, "SELECT name || ':' || array_to_string(groups, ',') FROM roster_items "
                  "WHERE username = 'alice' AND contact = 'robert@duet.test'")
          == "Bobby:Friends,Work", "robert keeps bob's nickname and groups")
    check(psql(a, "SELECT count(*) FROM users WHERE username = 'bob'") == "1",
          "bob's own account is not renamed")


# ---- 4. moving a user between groups ----

VCARD = "<vCard xmlns='vcard-temp'><FN>Gina G</FN></vCard>"


def part_move(a, b, tmp):
    ctl(a, "user", "add", "gina", "pw-gina")
    csv = write(tmp / "gina.csv", b"gina,duet.test,alice,duet.test,Ally,Team\n")
    ctl(a, "contacts", "import", csv, "--yes")
    g = login(a, "gina", "pw-gina")
    check(g.iq("set", VCARD).get("type") == "result", "gina stored a vCard on A")
    g.close()
    al = login(a, "alice", "pw-alice")
    al.send("<message to='gina@duet.test' type='chat'><body>while you move</body></message>")
    deadline = time.monotonic() + 10
    while psql(a, "SELECT count(*) FROM offline_messages WHERE username = 'gina'") != "1":
        if time.monotonic() > deadline:
            raise Fail("the message to gina was not stored offline on A")
        time.sleep(0.1)
    al.close()
    f = tmp / "gina.jsonl"
    ctl(a, "users", "export", str(f), "gina@duet.test")
    lines = f.read_bytes().splitlines()
    check(len(lines) == 2 and lines[0].startswith(b'{"format":"duet-users","version":1,'
                                                  b'"domain":"duet.test"'),
          "users export: a header and one record")
    ctl(a, "users", "unassign", str(f), "--yes")
    check(psql(a, "SELECT home_node FROM users WHERE username = 'gina'") == "0",
          "gina unassigned on A")
    out = ctl_json(b, "users", "import", str(f), "--yes")
    check(out["imported"] == 1 and out["created"] == 1, "gina imported into B")
    check(psql(b, "SELECT home_node FROM users WHERE username = 'gina'") == "0",
          "imported unassigned")
    ctl(b, "users", "assign", str(f), "1", "--yes")
    d = digest(b)
    again = ctl_json(b, "users", "import", str(f), "--yes")
    check(again["imported"] == 1 and again["created"] == 0 and digest(b) == d,
          "a repeated users import changes nothing")
    g = RawClient(b)
    g.open_stream()
    g.starttls()
    check(g.auth("gina", "pw-gina") is None, "gina logs in on B with her password from A")
    g.bind("moved")
    ans = g.iq("get", f"<query xmlns='{NS_ROSTER}'/>")
    items = {i.get("jid"): i.get("name") for i in ans.find(q(NS_ROSTER, "query"))}
    check(items == {"alice@duet.test": "Ally"}, f"gina's contacts moved: {items}")
    g.send("<presence/>")
    g.expect(lambda e: local(e) == "message" and "while you move" in ET_text(e), 10,
             "the offline message")
    log("ok: gina's offline message delivered on B")
    v = g.iq("get", "<vCard xmlns='vcard-temp'/>")
    check("Gina G" in ET_text(v), "gina's vCard moved")
    g.close()
    # B's own alice has other credentials: not the same person.
    fa = tmp / "alice.jsonl"
    ctl(a, "users", "export", str(fa), "alice")
    dup = ctl_json(b, "users", "import", str(fa), "--yes")
    check(dup["skipped"] == 1 and "duplicate user ID" in dup["records"][0]["detail"],
          "an account with the same ID and other credentials is skipped as a duplicate")
    bad = write(tmp / "bad.jsonl", lines[0] + b"\n{\"user\":\"x\",\"roster\":7}\nnot json\n")
    out = ctl_json(b, "users", "import", bad, "--yes")
    check(out["skipped"] == 2 and out["imported"] == 0, "malformed records are skipped")


def ET_text(el):
    return "".join(el.itertext())


# ---- 5. duplicate and invalid user IDs ----

def part_check(a):
    psql(a, "INSERT INTO users (username, sha1_salt, sha1_iter, sha1_stored, sha1_server,"
            " sha256_salt, sha256_iter, sha256_stored, sha256_server)"
            " SELECT v.n, sha1_salt, sha1_iter, sha1_stored, sha1_server, sha256_salt,"
            " sha256_iter, sha256_stored, sha256_server FROM users u,"
            " (VALUES ('Alice'), ('ａｌｉｃｅ'), ('bad user')) v(n) WHERE u.username = 'alice'")
    out = ctl_json(a, "users", "check")
    dups = {d["id"]: sorted(u["user"] for u in d["users"]) for d in out["duplicates"]}
    inv = sorted(u["user"] for u in out["invalid"])
    check(dups == {"alice": sorted(["Alice", "alice", "ａｌｉｃｅ"])} and
          inv == ["Alice", "bad user"], f"users check: duplicates {dups}, invalid {inv}")
    check(out["interval_s"] == 1, "the configured interval is reported")
    runs = out["runs"]
    deadline = time.monotonic() + 15
    text = ""
    while True:
        with open(a["NODE1_LOG"], encoding="utf-8", errors="replace") as f:
            text = f.read()
        later = ctl_json(a, "users", "check")["runs"]
        if "alarm DuplicateUserid" in text and "alarm InvalidUserid" in text and \
                later >= runs + 3:
            break
        if time.monotonic() > deadline:
            raise Fail("the periodic user check did not log the alarms")
        time.sleep(0.5)
    log("ok: the periodic check runs every second and logs DuplicateUserid / InvalidUserid")
    plain = ctl(a, "users", "check").stdout.decode()
    check("Users with Duplicate User IDs" in plain and "User ID: \"alice\"" in plain,
          "plain output in the manual's layout")


# ---- 6. pair ----

def part_pair(pair, tmp):
    env = pair.env
    pair.wait_normal(60, "pair up")
    ctl(env, "user", "add", "alice", "pw", node=1)
    ctl(env, "user", "add", "bob", "pw", node=1)
    homes = dict(r.split("|") for r in psql(env, "SELECT username, home_node FROM users",
                                            node=1).splitlines())
    check(homes == {"alice": "1", "bob": "2"}, f"balanced assignment: {homes}")
    csv = write(tmp / "pair.csv", b"alice,duet.test,bob,duet.test,B,G\n"
                b"bob,duet.test,alice,duet.test,A,G\n")
    out = ctl_json(env, "contacts", "import", csv, "--yes", node=1)
    check(out["imported"] == 1 and [s["reason"] for s in out["skips"]] ==
          ["user-not-assigned"], "node 1 writes its own users' lists, skips node 2's")
    pair.wait_converged("after the import on node 1", 30)
    check(ctl(env, "contacts", "export", "-", node=2).stdout ==
          b"alice,duet.test,bob,duet.test,B,G\n", "node 1's import is on node 2")
    out = ctl_json(env, "contacts", "import", csv, "--yes", node=2)
    check(out["imported"] == 1 and out["skipped"] == 1, "node 2 writes bob's list")
    pair.wait_converged("after the import on node 2", 30)
    check(ctl(env, "contacts", "export", "-", node=1).stdout ==
          b"alice,duet.test,bob,duet.test,B,G\nbob,duet.test,alice,duet.test,A,G\n",
          "both lists on node 1")


def main():
    tmp = Path(tempfile.mkdtemp(prefix="bulk.", dir=os.environ.get("DUET_TEST_TMP") or None))
    os.environ["DUET_EXTRA_SRM_CONF"] = "user_check_interval = 1s"
    ga, gb = Group(BUILD), Group(BUILD)
    pair = Pair(BUILD, log)
    errors = []

    def start(fn, *args):
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=start, args=(ga.up, "max_contacts = 3")),
               threading.Thread(target=start, args=(gb.up,)),
               threading.Thread(target=start, args=(pair.up,))]
    ok = False
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        log("groups up")
        a, b = ga.env, gb.env
        alice = part_import(a, tmp)
        part_hostile(a)
        part_round_trip(a, b, tmp)
        part_paging(b, tmp)
        part_rename(a, alice, tmp)
        alice.close()
        part_move(a, b, tmp)
        part_check(a)
        part_pair(pair, tmp)
        ok = True
    except Exception:  # noqa: BLE001 - any failure fails the test
        traceback.print_exc()
        pair.dump_logs()
        for g in (ga, gb):
            try:
                with open(g.env["NODE1_LOG"], encoding="utf-8", errors="replace") as f:
                    print("".join(f.readlines()[-30:]), file=sys.stderr)
            except (OSError, TypeError):
                pass
    finally:
        for g in (ga, gb):
            g.down()
            if ok:
                shutil.rmtree(g.dir, ignore_errors=True)
        pair.down(keep=not ok)
        shutil.rmtree(tmp, ignore_errors=True)
    log("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
