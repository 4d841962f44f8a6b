#!/usr/bin/python3
"""What clients live through when users move between the nodes of a pair (issue 5,
docs/login-profiles.md "What clients see"): contrib/local-group --nodes 2, raw clients.

  1. disco#info of the server carries the XEP-0128 form urn:duet:relogin:0 with the node's
     re-login limits and admission rate; `srmctl profile apply` changes what it shows.
  2. planned move: alice (home node 1) is sent to node 2 by `srmctl failover`
     (see-other-host); bob's messages sent while she is between the nodes are stored and
     delivered once at her login on node 2, and not again at a second login; fallback.
  3. crash: node 1's srmd is killed (its presenced goes with it); bob's messages to alice
     sent while she is between the nodes are delivered once at her login on node 2.
  4. unplanned arrivals over the throttle: node 2 admits logins at the profile's rate;
     of a burst of new streams beyond it, what the login queue holds is admitted within
     its wait, and the rest is answered, at the stream header, with resource-constraint
     carrying <retry-after xmlns='urn:duet:relogin:0' seconds='N'/>, N within the window;
     the form shows the admission rate while the throttle runs.
  5. `srmctl profile --hardware auto` (observed or --calibrate) and `profile apply
     --hardware auto`: limits from node 2's measured login capacity, shown in the form.
Exit 0 pass, 1 fail, 77 skipped.
"""

import json
import os
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "lib"))

from pair_harness import Fail, Pair  # noqa: E402
from rawxmpp import (NS_CLIENT, RawClient, StreamClosed, WaitTimeout,  # noqa: E402
                     XmppError, local, q)

PROG = "test_failover_clients"
NS_RELOGIN = "urn:duet:relogin:0"
NS_DATA = "jabber:x:data"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
PW = {"alice": "alice-pw-1", "bob": "bob-pw-2"}
BURST = 500
T0 = time.monotonic()


def say(text):
    print(f"{PROG}: [{time.monotonic() - T0:6.2f}s] {text}", flush=True)


def require(cond, what):
    if not cond:
        raise Fail(what)


def env_for(pair, node):
    env = dict(pair.env)
    env["NODE1_XMPP_PORT"] = str(pair.xmpp_port(node))
    return env


def login(pair, node, user, resource):
    c = RawClient(env_for(pair, node))
    c.login(user, PW[user], resource)
    c.send("<presence/>")
    return c


def relogin_form(c):
    """The fields of the urn:duet:relogin:0 form in the server's disco#info."""
    ans = c.iq("get", f"<query xmlns='{NS_DISCO_INFO}'/>", to=c.domain)
    require(ans.get("type") == "result", f"disco#info answered {ans.get('type')}")
    for x in ans.iter(q(NS_DATA, "x")):
        fields = {f.get("var"): (f.findtext(q(NS_DATA, "value")) or "")
                  for f in x.findall(q(NS_DATA, "field"))}
        if fields.get("FORM_TYPE") == NS_RELOGIN:
            return fields
    raise Fail("no urn:duet:relogin:0 form in the server's disco#info")


def bodies(c, seconds):
    """Every chat body c receives within seconds (claimed)."""
    got = []
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return got
        try:
            m = c.expect(lambda e: local(e) == "message" and e.get("type") == "chat", left,
                         "a chat message")
        except WaitTimeout:
            return got
        got.append(m.findtext(q(NS_CLIENT, "body")))


def exactly_once(got, sent, where):
    for text in sent:
        n = got.count(text)
        require(n == 1, f"{where}: {text!r} received {n} times (all: {got})")


def step_disco(pair):
    c = login(pair, 1, "alice", "d1")
    # Starting up counts as an unplanned arrival: the throttle runs for upper - lower (1 s),
    # and the engine's storm guard for its first 10 s.
    deadline = time.monotonic() + 25
    while (f := relogin_form(c)).get("admission-rate") != "0.0" and \
            time.monotonic() < deadline:
        time.sleep(0.2)
    say(f"disco form on node 1: {f}")
    # local-group sets [ha] relogin_lower_limit = 0s, relogin_upper_limit = 1s
    require(f.get("relogin-lower-limit") == "0" and f.get("relogin-upper-limit") == "1",
            f"the config's limits in the form: {f}")
    require(f.get("admission-rate") == "0.0" and f.get("admission-window-left") == "0",
            f"the start-up throttle lifted: {f}")
    c.close()


def step_planned(pair):
    alice = login(pair, 1, "alice", "p1")
    bob = login(pair, 2, "bob", "p1")
    bob.iq("get", "<ping xmlns='urn:xmpp:ping'/>", to=bob.domain)
    pair.ctl(1, "failover", "1", "--yes")
    cond = alice.expect_stream_error(15)
    require(cond == "see-other-host", f"alice's stream error: {cond}")
    target = alice.stream_error_el.findtext(
        "{urn:ietf:params:xml:ns:xmpp-streams}see-other-host")
    require(target and target.endswith(f":{pair.xmpp_port(2)}"),
            f"see-other-host names node 2's client port: {target!r}")
    alice.close()
    sent = [f"planned {i}" for i in range(5)]
    for text in sent:
        bob.send(f"<message to='alice@{bob.domain}' type='chat'><body>{text}</body></message>")
    bob.iq("get", "<ping xmlns='urn:xmpp:ping'/>", to=bob.domain)  # all routed
    a2 = login(pair, 2, "alice", "p2")
    exactly_once(bodies(a2, 3), sent, "alice's login on node 2 after the planned move")
    a2.close()
    a3 = login(pair, 2, "alice", "p3")
    got = bodies(a3, 1.5)
    require(not any(t in got for t in sent), f"stored messages again at a second login: {got}")
    a3.close()
    bob.close()
    pair.ctl(1, "fallback", "--yes")
    pair.wait_normal(30, "fallback after the planned move")


def step_crash(pair):
    alice = login(pair, 1, "alice", "c1")
    bob = login(pair, 2, "bob", "c1")
    bob.iq("get", "<ping xmlns='urn:xmpp:ping'/>", to=bob.domain)
    os.kill(pair.srmd_pid(1), signal.SIGKILL)
    try:
        alice.expect_close(10)
    except (StreamClosed, XmppError):
        pass
    alice.close()
    sent = [f"crash {i}" for i in range(5)]
    for text in sent:
        bob.send(f"<message to='alice@{bob.domain}' type='chat'><body>{text}</body></message>")
    bob.iq("get", "<ping xmlns='urn:xmpp:ping'/>", to=bob.domain)
    pair.wait({2: ("Running in Backup Mode", "Peer Down")}, 30, "node 2 takes node 1's users")
    a2 = None
    deadline = time.monotonic() + 20
    while a2 is None:
        try:
            a2 = login(pair, 2, "alice", "c2")
        except (XmppError, OSError) as e:  # throttled or not yet serving: retry
            require(time.monotonic() < deadline, f"alice cannot log in on node 2: {e}")
            time.sleep(0.5)
    exactly_once(bodies(a2, 3), sent, "alice's login on node 2 after the crash")
    a2.close()
    bob.close()


def stream_outcome(r, timeout):
    """'admitted' (stream features came) or the stream error's condition."""
    try:
        r.wait_features(timeout)
        return "admitted"
    except StreamClosed:
        return r.stream_error
    except WaitTimeout:
        return r.stream_error or "no answer"


def step_burst(pair):
    """Node 2 has just taken node 1's users (step 3) with the profile applied: logins are
    admitted at max(accounts / (upper - lower), 100)/s = 100/s for the window (or less if
    the engine measured it cannot take that many).  A burst of new streams over the rate:
    about a second's worth is admitted at once, what the login queue holds (its turn within
    [xmpp] login_queue_wait, 3 s, at that rate) gets its features later, first come first
    served, and the rest is refused at its header, before STARTTLS, with retry-after."""
    c = login(pair, 2, "bob", "b1")
    f = relogin_form(c)
    say(f"disco form on node 2 while throttled: {f}")
    # 100/s (the floor of the profile's rate), or less if this engine cannot take that many
    rate = float(f.get("admission-rate", "0"))
    require(0 < rate <= 100.0, f"admission rate shown: {f}")
    left = int(f.get("admission-window-left", "0"))
    require(0 < left <= 135, f"window left shown: {f}")
    c.close()
    conns = []
    try:
        for _ in range(BURST):  # every header at once, answers read afterwards
            r = RawClient(env_for(pair, 2))
            r.open_stream(wait=False)
            conns.append(r)
        t0 = time.monotonic()
        refused, admitted, waits, last_admitted = 0, 0, [], 0.0
        for r in conns:
            out = stream_outcome(r, 15)
            if out == "admitted":
                admitted += 1
                last_admitted = time.monotonic() - t0
                continue
            require(out == "resource-constraint", f"a refused stream's error: {out}")
            ra = r.stream_error_el.find(q(NS_RELOGIN, "retry-after"))
            require(ra is not None, "resource-constraint without <retry-after/>")
            waits.append(int(ra.get("seconds")))
            refused += 1
        say(f"{BURST} streams at once: {admitted} admitted (the last after "
            f"{last_admitted:.2f} s), {refused} refused, retry-after "
            f"{min(waits) if waits else '-'}..{max(waits) if waits else '-'} s")
        require(refused > 0, "the burst beyond the queue is refused")
        # A second's tokens at once, then the queue: well over one second's worth gets in,
        # the last of it after about two seconds more, never later than the queue's wait.
        require(admitted >= 2 * rate, f"the queued streams are admitted: {admitted}")
        require(1.0 <= last_admitted <= 3.0 + 2.0,
                f"the queued streams get in within the queue's wait: {last_admitted:.2f} s")
        require(all(1 <= w <= left + 3 for w in waits),
                f"retry-after within the window ({left} s): {sorted(set(waits))}")
        require(len(set(waits)) > 1 or refused < 3, f"retry-after spread: {set(waits)}")
    finally:
        for r in conns:
            r.close()


def step_auto(pair):
    """`srmctl profile --hardware auto`: limits from node 2's measured login capacity (the
    logins above were observed, or a calibration runs), then applied to both nodes."""
    res = pair.ctl(2, "profile", "--hardware", "auto", "--mode", "active-standby",
                   "--users", "20000", "--json")
    a = json.loads(res.stdout)
    say(f"auto profile on node 2: {a}")
    require(a["hardware"] == "auto" and a["cpu_us_per_login"] > 0 and
            a["rate_per_s"] > 0 and a["source"], f"auto answer: {a}")
    require(a["lower"] == 120, f"auto keeps the node's lower limit (120 s): {a}")
    want = 120 + max(1, -(-20000 // a["rate_per_s"]))  # ceil
    require(abs(a["upper"] - want) <= 1, f"upper = lower + ceil(users / rate): {a}")
    cal = json.loads(pair.ctl(2, "profile", "--hardware", "auto", "--mode", "active-standby",
                              "--users", "20000", "--calibrate", "--json").stdout)
    require(cal["source"] == "calibrated" and cal["cpu_us_per_login"] > 0, f"calibrated: {cal}")
    # node 1 is down since step 3: this node only
    out = pair.ctl(2, "profile", "apply", "--local", "--hardware", "auto", "--mode",
                   "active-standby", "--users", "20000", "--yes").stdout
    say(out.strip())
    require(f"node 2: relogin lower 120 s, upper {a['upper']} s" in out or
            "node 2: relogin lower 120 s" in out, f"applied on node 2: {out}")
    c = login(pair, 2, "bob", "auto")
    f = relogin_form(c)
    c.close()
    require(f.get("relogin-lower-limit") == "120" and
            int(f.get("relogin-upper-limit")) > 120, f"the auto limits in the form: {f}")
    bad = pair.ctl(2, "profile", "--hardware", "auto", "--mode", "bogus", "--users", "5",
                   check=False)
    require(bad.returncode == 2, f"a bad mode is a usage error: {bad.returncode}")


def main():
    build = os.environ.get("DUET_BUILD", str(ROOT / "build"))
    if not os.access(os.path.join(build, "bin", "srmd"), os.X_OK):
        print(f"{PROG}: SKIP: {build}/bin/srmd not built")
        return 77
    pair = Pair(build, say)
    failed = None
    try:
        # SASL without TLS, so that the burst of step 4 costs no handshakes.
        pair.up(extra_env={"DUET_EXTRA_XMPP_CONF": "require_starttls = 0"})
        pair.wait_normal(60, "pair up")
        pair.ctl(1, "user", "add", "alice", PW["alice"])
        pair.ctl(2, "user", "add", "bob", PW["bob"])
        for name, fn in (("disco form", step_disco), ("planned move", step_planned)):
            fn(pair)
            say(f"PASS {name}")
        # The profile applied on both nodes: lower 120 s, upper 253 s (Table 45, 100 users).
        pair.ctl(1, "profile", "apply", "--hardware", "500", "--mode", "active-standby",
                 "--users", "100", "--yes")
        c = login(pair, 2, "bob", "x")
        f = relogin_form(c)
        c.close()
        require(f.get("relogin-lower-limit") == "120" and f.get("relogin-upper-limit") == "253",
                f"the applied profile in node 2's form: {f}")
        say("PASS profile apply shows in the form")
        for name, fn in (("crash", step_crash), ("burst over the throttle", step_burst),
                         ("auto profile", step_auto)):
            fn(pair)
            say(f"PASS {name}")
    except (Fail, XmppError, OSError) as e:
        failed = str(e)
        say(f"FAIL: {e}")
        pair.dump_logs()
    finally:
        pair.down(keep=bool(failed) or bool(os.environ.get("DUET_TEST_KEEP")))
    say("all passed" if not failed else "failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
