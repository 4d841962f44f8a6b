"""The fault scenarios (issue #6), each checked against the manual's Table 31 (rows T1-T24,
shared/spec/inventory-part2.md §17.3; docs/state-machine.md) with the state and reason
names srmd reports, and against the clients' ledger (traffic.py) and the load generator's
report (loadgen.py): every client ends up served, no message lost or duplicated, both
databases equal (`srmctl digest`).

Every scenario starts and ends with both nodes Normal, the network healed and every user
at its home node, so they share one pair.  A scenario is a function of a Run; `F` is the
node the fault hits, `P` its peer.
"""

import signal
import time

import loadgen
import transports
from pair_harness import Fail

NORMAL = ("Normal", "Normal")
CSNR = "Failed Over with Critical Services Not Running"
BACKUP = "Running in Backup Mode"
DOWN = ("(srmd down)", None)  # T16/T17: the failed node shows no state


class ScenarioFailure(Fail):
    """The scenario ran to its end (the pair is back to T1, every user home), but the
    clients' ledger or a check found problems: [(kind, text, traffic.Sent or None)]."""

    def __init__(self, name, problems):
        self.problems = problems
        super().__init__(f"{name}: {len(problems)} problem(s) with the clients' messages or "
                         "the data:\n  " + "\n  ".join(t for _, t, _ in problems[:40]))


class KnownBug:
    """A product bug a scenario shows, described in the report of the fault tests and not
    fixed here.  The scenario's failure is expected (XFAIL) as long as every problem is
    explained by the bug (`matches(run, problem)`); if the scenario passes, the fix has
    landed and the marker must be removed (the run fails until it is), unless the bug is
    `intermittent` (a race the scenario hits now and then): then a pass is a pass."""

    def __init__(self, text, matches, intermittent=False):
        self.text = text
        self.matches = matches
        self.intermittent = intermittent


# A confirmed message sent this long or less before a kill -9 of presenced may have been
# in the killed engine's memory only (docs/benchmarks.md "Failover": a few hundred ms).
ENGINE_KILL_WINDOW_S = 0.5


def lost_in_killed_engine(run, problem):
    """A confirmed message lost because the presenced that had taken it was killed before
    it was written on: sent at most ENGINE_KILL_WINDOW_S before one of the scenario's
    kills of presenced (the ping's answer only means the engine routed it in memory)."""
    kind, msg = problem[0], (problem[2] if len(problem) > 2 else None)
    if kind not in ("lost", "loadgen-lost") or msg is None or msg.t is None:
        return False
    # -0.05: the load generator's send times are whole ms from its mark, which it takes
    # a moment after ours (msg.t errs early, never late by more than the rounding).
    return any(-0.05 <= k - msg.t <= ENGINE_KILL_WINDOW_S
               for k, n in run.pair.engine_kills if n == run.failed)


KILL9_LOSES_ACCEPTED = KnownBug(
    "kill -9 of presenced loses a message it had confirmed (ping answered) while it sat "
    "in a slow recipient's output buffer (docs/benchmarks.md \"Failover\")",
    lost_in_killed_engine, intermittent=True)


class Run:
    """What a scenario works with: the pair, the network, the clients, the options."""

    def __init__(self, stage, log, opts):
        self.pair = stage.pair
        self.net = stage.net
        self.traffic = stage.traffic
        self.transport = stage.transport
        self.log = log
        self.opts = opts
        self.name = None
        self.offsets = {}
        self.mark = 0
        self.extra = []    # problems found by the scenario's own checks
        self.window = None  # stop-postgres: (start, end) of the database outage
        self.failed = None  # the node the fault hit
        self.build = stage.build
        self.load = None    # this scenario's loadgen.LoadRun

    def silent_s(self, hung=False):
        """How long the transport takes to notice a silent peer (hung: an srmd that stopped
        while its host and network are fine)."""
        return transports.silent_detect_s(self.transport, hung)

    def detect_s(self, hung=False):
        """Bound for a silent failure to be noticed, with slack for a loaded sanitizer
        build."""
        return self.silent_s(hung) + 15

    def begin(self, name):
        self.name = name
        self.net.heal()
        self.pair.wait_normal(30, f"{name}: start")
        self.offsets = {n: self.pair.log_size(n) for n in (1, 2)}
        self.mark = self.pair.watcher.mark()
        self.load = loadgen.LoadRun(self.pair, self.build, name, self.log)
        self.traffic.begin(name)
        self.traffic.wait_flowing(2, 30, f"{name}: messages before the fault")
        self.load.wait_up()

    def close(self):
        """Whatever the scenario left running (its load generator after a failure)."""
        if self.load:
            self.load.kill()

    def fault(self, text):
        self.log(f"{self.name}: FAULT: {text}")
        self.load.mark()

    def expect(self, want, timeout, row):
        """want: {node: (state, reason or None)}; row: the Table 31 row(s) it shows."""
        self.pair.wait(want, timeout, f"{self.name}: {row}")

    def users_at(self, where, what, timeout=45):
        """where(account) -> node every user must be logged in at."""
        self.traffic.wait_placed(where, timeout, f"{self.name}: {what}")
        self.log(f"{self.name}: {what}: {self.traffic.placement()}")

    def transitions(self, n):
        return self.pair.transitions_since(n, self.offsets[n])

    def logged(self, n, needle):
        return self.pair.log_lines_since(n, self.offsets[n], needle)

    def fallback(self, f):
        """The operator's manual fallback of node f, once its services run: T4 (Taking Back
        / Falling Back) and then T1."""
        self.pair.wait_services(f, 30)
        self.pair.ctl(f, "fallback", "--yes")
        self.expect({1: NORMAL, 2: NORMAL}, 30, "T4 fallback, then T1 Normal / Normal")
        for n, state in ((f, "Taking Back"), (3 - f, "Falling Back")):
            if not any(t[3] == state for t in self.transitions(n)):
                raise Fail(f"{self.name}: node {n} never logged {state} during the fallback "
                           "(T4)")

    def finish(self):
        """T1 again, digests equal, every user home, the ledger clean."""
        self.expect({1: NORMAL, 2: NORMAL}, 30, "T1 Normal / Normal at the end")
        # The load generator ends first: its messages are not in flight while the
        # databases are compared.
        report = self.load.end()
        self.pair.wait_converged(f"{self.name}: end", timeout=30)
        load_problems, load_summary = self.load.check(report, self.traffic)
        problems, summary = self.traffic.settle()
        problems += self.extra + load_problems
        states = (self.pair.state(1), self.pair.state(2))
        if states != (NORMAL, NORMAL):  # T1 must hold, not only have been seen
            raise Fail(f"{self.name}: not T1 any more at the end: {self.pair.both()}")
        history = self.pair.watcher.since(self.mark)
        self.log(f"{self.name}: states seen: " + "; ".join(
            f"node {n} {s} ({r})" for _, n, s, r in history))
        for n in (1, 2):
            self.log(f"{self.name}: node {n} transitions: " + "; ".join(
                f"{a} ({b}) -> {c} ({d}) [{e}]" for _, a, b, c, d, e in self.transitions(n)))
        self.log(f"{self.name}: {summary}")
        self.log(f"{self.name}: {load_summary}")
        if problems:
            for line in self.traffic.events[-30:]:
                self.log(f"  client event at {line[0]:.2f}: {line[1]}")
            raise ScenarioFailure(self.name, problems)


# ---- process faults ---------------------------------------------------------------------

def kill_srmd(run, f=1):
    """kill -9 of srmd (presenced exits with it): T16 Peer Down, restart: T11 Failed Over
    (Initialization), fallback."""
    p = 3 - f
    run.fault(f"kill -9 of node {f}'s srmd")
    run.pair.lg("stop", run.pair.dir, str(f), "--kill")
    run.expect({f: DOWN, p: (BACKUP, "Peer Down")}, run.detect_s(),
               f"T16: node {p} lost node {f}'s heartbeat, Running in Backup Mode (Peer Down)")
    run.users_at(lambda a: p, f"every user served by node {p}")
    run.traffic.wait_flowing(2, 30, f"{run.name}: messages while node {f} is down")
    run.pair.lg("start", run.pair.dir, str(f))
    run.expect({f: ("Failed Over", "Initialization"), p: (BACKUP, "Peer Down")}, 45,
               f"T11: node {f} restarted, Failed Over (Initialization)")
    run.fallback(f)
    run.finish()


def kill_presenced(run, f=2):
    """kill -9 of presenced: once (restarted inside the Critical Service Down Delay: T1
    throughout), then again and again until the delay runs out: T12, then T11."""
    p = 3 - f
    run.failed = f
    # After the repeated kills of an earlier round srmd waits longer than the Critical
    # Service Down Delay before a restart, until the engine ran 60 s without a crash.
    wait = run.pair.engine_backoff_reset_in(f)
    if wait:
        run.log(f"{run.name}: waiting {wait:.0f} s for srmd's engine restart backoff to reset")
        time.sleep(wait)
    pid = run.pair.kill_engine(f)
    run.fault(f"kill -9 of node {f}'s presenced (pid {pid}), once")
    deadline = time.monotonic() + 20
    while not (run.pair.engine_pid(f) not in (0, pid) and
               (run.pair.status(f) or {}).get("engine", {}).get("state") == "ready"):
        if time.monotonic() > deadline:
            raise Fail(f"{run.name}: node {f}'s presenced not restarted: {run.pair.both()}")
        time.sleep(0.1)
    run.users_at(lambda a: a.home, "every user back at its home node after one crash")
    moved = [t for n in (1, 2) for t in run.transitions(n)]
    if moved:
        raise Fail(f"{run.name}: one presenced crash inside the Critical Service Down Delay "
                   f"changed states (T1 expected throughout): {moved}")
    run.log(f"{run.name}: T1 throughout: restarted inside the Critical Service Down Delay")

    run.fault(f"node {f}'s presenced killed whenever it runs")
    want = {f: (CSNR, "Critical Service Down"), p: (BACKUP, "Critical Service Down")}
    deadline = time.monotonic() + 60
    kills = 0
    while tuple(run.pair.state(f)) != want[f] or tuple(run.pair.state(p)) != want[p]:
        if run.pair.kill_engine(f):
            kills += 1
        if time.monotonic() > deadline:
            raise Fail(f"{run.name}: not {want} after 60 s of killing presenced: "
                       f"{run.pair.both()}")
        time.sleep(0.05)
    run.log(f"{run.name}: T12 after {kills} kills: {run.pair.both()}")
    run.users_at(lambda a: p, f"every user served by node {p}")
    run.expect({f: ("Failed Over", "Critical Service Down"),
                p: (BACKUP, "Critical Service Down")}, 30,
               f"T11: presenced runs again on node {f}, Failed Over (Critical Service Down)")
    run.traffic.wait_flowing(2, 30, f"{run.name}: messages while node {f} is failed over")
    run.fallback(f)
    run.finish()


def stop_postgres(run, f=1):
    """The database stops: T13 (Database Failure); started again: Failed Over.  Right after
    the stop, before the failover, a probe message from a node-F user to an offline user of
    P (never looked up by F's engine before) must end up in the offline store of both
    nodes, like every other message of the outage."""
    p = 3 - f
    run.failed = f
    t0 = time.monotonic()
    run.fault(f"node {f}'s PostgreSQL stopped")
    run.pair.lg("db-stop", run.pair.dir, str(f))
    probe = run.traffic.probe(f, run.traffic.offline[p])
    run.expect({f: (CSNR, "Database Failure"), p: (BACKUP, "Database Failure")}, 30,
               f"T13: database down on node {f}")
    # Until the moved sessions have left node F (re-login window 1 s, and some slack).
    run.window = (t0, time.monotonic() + 3)
    run.users_at(lambda a: p, f"every user served by node {p}")
    run.traffic.wait_flowing(2, 30, f"{run.name}: messages while the database is down")
    run.pair.lg("db-start", run.pair.dir, str(f))
    run.expect({f: ("Failed Over", "Database Failure"), p: (BACKUP, "Database Failure")}, 30,
               f"T11: database back on node {f}, Failed Over (Database Failure)")
    run.fallback(f)
    run.pair.wait_converged(f"{run.name}: after the fallback", timeout=30)
    stored = {n: int(run.pair.psql(n, "SELECT count(*) FROM offline_messages WHERE username ="
                                      f" '{probe.rcpt.name}' AND position('{probe.mid}' IN"
                                      " stanza) > 0")[0][0]) for n in (1, 2)}
    if stored != {1: 1, 2: 1}:
        run.extra.append(("lost", f"{probe}: the message to an offline user, sent while node "
                                  f"{f}'s database was down, is stored {stored} times in the "
                                  f"offline store of nodes 1 and 2, want once on each", probe))
    run.finish()



def sigstop_srmd(run, f=1):
    """srmd hangs (SIGSTOP) for longer than the detection time, then continues: the peer
    takes over (T16 Peer Down), and once the hung node is back the split brain resolves
    itself to T1 (the owner keeps its users).  presenced never hung, so srmd must not
    restart it after the SIGCONT."""
    p = 3 - f
    hold = run.silent_s(hung=True) + 3
    wait = run.pair.engine_backoff_reset_in(f)
    if wait:  # a restart of presenced now would come after the delay (see kill_presenced)
        run.log(f"{run.name}: waiting {wait:.0f} s for srmd's engine restart backoff to reset")
        time.sleep(wait)
    restarts = run.pair.status(f)["engine"]["restarts"]
    pid = run.pair.signal_srmd(f, signal.SIGSTOP)
    t0 = time.monotonic()
    run.fault(f"SIGSTOP of node {f}'s srmd (pid {pid}) for {hold:.0f} s")
    try:
        run.expect({f: ("(srmd stopped)", None), p: (BACKUP, "Peer Down")},
                   run.detect_s(hung=True), f"T16: node {p} lost the hung node's heartbeat")
        time.sleep(max(0.0, hold - (time.monotonic() - t0)))
        run.traffic.wait_flowing(1, 30, f"{run.name}: messages while node {f}'s srmd hangs")
    finally:
        run.pair.signal_srmd(f, signal.SIGCONT)
    run.log(f"{run.name}: SIGCONT")
    run.expect({1: NORMAL, 2: NORMAL}, 30, "T1: the hung node is back, split brain resolved")
    killed = run.logged(f, "hung: sending SIGKILL")
    if killed:
        run.pair.engine_killed[f] = time.monotonic()
    now = run.pair.status(f)["engine"]["restarts"]
    if now != restarts or killed:
        # srmd once counted the time it was stopped against presenced's health deadline
        # and killed the engine that had served all along (fixed in ha/engine_child.c).
        raise Fail(f"{run.name}: srmd restarted node {f}'s healthy presenced "
                   f"{now - restarts} time(s) after the SIGCONT: {killed}")
    run.finish()


# ---- network faults ---------------------------------------------------------------------

def link_down(run, f=2):
    """The peer link goes down (ip link set down) for longer than the dead timeout: both
    nodes alive and apart (T16 on each side: split brain, nobody unserved), then up: T1."""
    hold = run.silent_s() + 3
    run.fault(f"ip link set {run.net.ns[f]}/p{f} down for {hold:.0f} s")
    run.net.link(f, False)
    t0 = time.monotonic()
    try:
        run.expect({1: (BACKUP, "Peer Down"), 2: (BACKUP, "Peer Down")}, run.detect_s(),
                   "T16 on both nodes: each lost the other's heartbeat")
        run.traffic.wait_flowing(2, 30, f"{run.name}: messages while the link is down")
        time.sleep(max(0.0, hold - (time.monotonic() - t0)))
    finally:
        run.net.link(f, True)
    run.log(f"{run.name}: link up")
    run.expect({1: NORMAL, 2: NORMAL}, 30, "T1: link back, split brain resolved")
    run.finish()


def loss(run):
    """20% random loss each way for loss_s seconds: no flapping (no state change, neither
    the peer link nor the engines' route link declared down), messages keep flowing."""
    secs = run.opts.loss_s
    run.fault(f"20% random loss each way on the peer link for {secs:.0f} s (nftables numgen)")
    run.net.loss(20)
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < secs:
            time.sleep(1)
            states = (run.pair.state(1), run.pair.state(2))
            if states != (NORMAL, NORMAL):
                raise Fail(f"{run.name}: state changed under loss after "
                           f"{time.monotonic() - t0:.1f} s: {run.pair.both()}")
        run.traffic.wait_flowing(1, 10, f"{run.name}: messages under loss")
    finally:
        run.net.heal()
    flaps = []
    for n in (1, 2):
        flaps += [f"node {n}: {t}" for t in run.transitions(n)]
        flaps += [f"node {n}: {line}" for line in run.logged(n, "ha: peer lost")]
    # The engines' route link flapping would show users' contacts going unavailable and
    # back: flapping too.
    flaps += [f"node {n}: {line}" for n in (1, 2)
              for line in run.logged(n, "route: link to the peer engine lost")]
    hist = [(f"{t - t0:+.1f}s", n, st, r) for t, n, st, r in run.pair.watcher.since(run.mark)
            if (st, r) != NORMAL]
    if flaps or hist:
        raise Fail(f"{run.name}: flapping under 20% loss: {flaps} {hist}")
    run.log(f"{run.name}: {secs:.0f} s of loss: no transition, neither the peer link nor "
            "the route link ever declared down")
    run.finish()


def partition(run):
    """Both nodes alive and apart (nftables drops everything between them): both serve
    everyone (T16 on each side); clients write on both sides, some of them the same rows
    (a user's roster item and vCard from a second session on the other node); heal: T1,
    nothing lost, the later write wins on both nodes (docs/replication-protocol.md §5),
    digests equal, the conflicts recorded."""
    from writes import PartitionWrites
    writes = PartitionWrites(run)
    run.fault("partition: nftables drops everything between the nodes")
    run.net.partition()
    try:
        run.expect({1: (BACKUP, "Peer Down"), 2: (BACKUP, "Peer Down")}, run.detect_s(),
                   "T16 on both nodes (split brain: both serve everyone)")
        writes.while_apart()
        run.traffic.wait_flowing(2, 30, f"{run.name}: messages while apart")
    finally:
        writes.close()
        run.net.heal()
    run.log(f"{run.name}: healed")
    run.expect({1: NORMAL, 2: NORMAL}, 30, "T1: healed, split brain resolved")
    run.pair.wait_converged(f"{run.name}: after the heal", timeout=30)
    writes.check_after_heal()
    run.finish()


# ---- restarts ---------------------------------------------------------------------------

def clean_restart(run, f=2):
    """A clean shutdown (goodbye): T17 Peer Reboot at once; started again: Failed Over
    (Initialization); fallback."""
    p = 3 - f
    run.fault(f"clean stop of node {f} (SIGTERM: goodbye)")
    run.pair.lg("stop", run.pair.dir, str(f))
    run.expect({f: DOWN, p: (BACKUP, "Peer Reboot")}, 10, f"T17: node {f} shut down")
    run.users_at(lambda a: p, f"every user served by node {p}")
    run.traffic.wait_flowing(2, 30, f"{run.name}: messages while node {f} is stopped")
    run.pair.lg("start", run.pair.dir, str(f))
    run.expect({f: ("Failed Over", "Initialization"), p: (BACKUP, "Peer Reboot")}, 45,
               f"T11: node {f} started again, Failed Over (Initialization)")
    run.fallback(f)
    run.finish()


def restart_both_in_manual_failover(run, f=1):
    """Manual failover (T2, T3); both nodes restarted while in manual-failover mode: T6;
    manual fallback (T4) to T1."""
    p = 3 - f
    run.fault(f"manual failover of node {f}")
    run.pair.ctl(f, "failover", "--yes")
    run.expect({f: ("Idle", "On Admin Request"), p: (BACKUP, "On Admin Request")}, 30,
               "T3: manual failover completed")
    for n, state in ((f, "Failing Over"), (p, "Taking Over")):
        if not any(t[3] == state and t[4] == "On Admin Request" for t in run.transitions(n)):
            raise Fail(f"{run.name}: node {n} never logged {state} (On Admin Request) (T2)")
    run.users_at(lambda a: p, f"every user served by node {p}")
    run.fault("both nodes restarted (clean stop of both srmds, then start)")
    for n in (f, p):
        run.pair.lg("stop", run.pair.dir, str(n))
    for n in (f, p):
        run.pair.lg("start", run.pair.dir, str(n))
    run.expect({f: ("Idle", "Initialization"), p: (BACKUP, "Initialization")}, 45,
               "T6: both restarted in manual-failover mode")
    if not run.pair.status(f)["pair"]["manual_failover"]:
        raise Fail(f"{run.name}: manual-failover mode lost over the restart: "
                   f"{run.pair.both()}")
    run.users_at(lambda a: p, f"every user served by node {p} after the restart")
    run.traffic.wait_flowing(2, 30, f"{run.name}: messages in manual-failover mode")
    run.fallback(f)
    run.finish()


# name -> (function, short description, KnownBug or None), in the order of a run.
SCENARIOS = {
    "kill-srmd": (kill_srmd, "kill -9 srmd (T16, T11)", None),
    "kill-presenced": (kill_presenced, "kill -9 presenced (T1, T12, T11)",
                       KILL9_LOSES_ACCEPTED),
    "stop-postgres": (stop_postgres, "PostgreSQL stopped (T13, T11)", None),
    "sigstop-srmd": (sigstop_srmd, "srmd hung past the dead timeout (T16, T1)", None),
    "link-down": (link_down, "peer link down, then up (T16 both, T1)", None),
    "loss": (loss, "20% random loss each way, no flapping (T1)", None),
    "partition": (partition, "partition, writes on both sides, heal (T16 both, LWW, T1)",
                  None),
    "clean-restart": (clean_restart, "clean shutdown and restart (T17, T11)", None),
    "manual-failover-restart": (restart_both_in_manual_failover,
                                "both restarted during a manual failover (T2, T3, T6, T4)",
                                None),
}
