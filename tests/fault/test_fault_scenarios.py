#!/usr/bin/python3
"""Fault tests on two "real hosts" (issue #6): a pair whose nodes each run in their own
network namespace (PostgreSQL, srmd, presenced; corosync too with that transport), joined
by a veth pair, with clients in a third namespace messaging on both nodes (fault_net.py:
the topology, scenarios.py: the scenarios, docs/testing.md "Fault tests").

    tests/fault/test_fault_scenarios.py [--scenario NAME ...] [--soak] [--rounds N]
        [--loss-seconds S] [--transport tcp|corosync ...] [--list] [-v]

Environment (for tests/run and make soak): DUET_BUILD (default build/), DUET_FAULT_MODE
(check | soak), DUET_FAULT_SCENARIOS (comma-separated names), DUET_FAULT_ROUNDS,
DUET_FAULT_LOSS_S, DUET_FAULT_TRANSPORTS (space-separated), DUET_FAULT_VERBOSE=1,
DUET_FAULT_STRICT=1 (known product bugs fail), DUET_FAULT_HOLD=SECONDS (keep a failed pair).
check: every scenario once, 20 s of loss; soak: every scenario DUET_FAULT_ROUNDS times
(default 3), 60 s of loss.  Needs root, ip netns and nft: otherwise exit 77 with the reason.
Everything it creates (namespaces, processes, nftables tables, directories) is removed on
exit, also on failure, Ctrl-C or SIGTERM; what a crashed earlier run left is removed at the
start.  A failed run keeps its logs (not the databases) in /tmp/duetf<pid>.*.
Exit 0 pass, 1 fail, 77 skipped.
"""

import argparse
import atexit
import os
import shutil
import signal
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "tests" / "lib"))
sys.path.insert(0, str(HERE))

T0 = time.monotonic()
PG_INITDB = "/usr/lib/postgresql/15/bin/initdb"


def log(text):
    print(f"[{time.monotonic() - T0:7.2f}s] fault: {text}", flush=True)


def skip(reason):
    print(f"SKIP: {reason}", flush=True)
    return 77


def options(argv):
    env = os.environ.get
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenario", action="append", default=None,
                    help="run only this scenario (repeatable); --list shows them")
    ap.add_argument("--soak", action="store_true", default=env("DUET_FAULT_MODE") == "soak")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--loss-seconds", type=float, default=None)
    ap.add_argument("--transport", action="append", default=None)
    ap.add_argument("--list", action="store_true")
    ap.add_argument("-v", "--verbose", action="store_true",
                    default=env("DUET_FAULT_VERBOSE") == "1")
    o = ap.parse_args(argv)
    if o.scenario is None and env("DUET_FAULT_SCENARIOS"):
        o.scenario = [s.strip() for s in env("DUET_FAULT_SCENARIOS").split(",") if s.strip()]
    if o.rounds is None:
        o.rounds = int(env("DUET_FAULT_ROUNDS") or (3 if o.soak else 1))
    if o.loss_seconds is None:
        o.loss_seconds = float(env("DUET_FAULT_LOSS_S") or (60 if o.soak else 20))
    if o.transport is None and env("DUET_FAULT_TRANSPORTS"):
        o.transport = env("DUET_FAULT_TRANSPORTS").split()
    o.loss_s = o.loss_seconds
    return o


class Stage:
    """The network, the pair on it and the clients; `down()` removes all of it and may be
    called any number of times, from any exit path."""

    def __init__(self, build, transport, opts):
        self.build = build
        self.transport = transport
        self.opts = opts
        self.net = None
        self.pair = None
        self.traffic = None
        self.corosync = {}

    def up(self):
        import fault_net
        import transports
        from fault_pair import FaultPair
        from traffic import Traffic
        import loadgen
        self.net = fault_net.Network(log)
        self.net.create()
        self.net.enter_clients()
        self.pair = FaultPair(self.build, log, self.net)
        t = time.monotonic()
        self.pair.up(**transports.start(self.transport, self))
        log(f"pair up ({self.transport}) in {time.monotonic() - t:.1f} s: {self.pair.both()}")
        self.pair.start_watcher()
        self.traffic = Traffic(self.pair, log)
        self.traffic.verbose = self.opts.verbose
        self.traffic.provision()
        loadgen.provision(self.pair, self.build, log)
        self.traffic.start()
        log(f"{len(self.traffic.accounts)} users logged in at their home nodes: "
            f"{self.traffic.placement()}")

    def down(self, keep):
        # Each step runs even if the one before failed: the namespaces must go in any case.
        traffic, pair, net = self.traffic, self.pair, self.net
        self.traffic = self.pair = self.net = None
        try:
            if traffic:
                traffic.close()
        finally:
            try:
                if pair:
                    self._pair_down(pair, keep)
            finally:
                if net:
                    self._net_down(net)

    def _pair_down(self, pair, keep):
        if keep:
            pair.dump_logs()
        pair.down(keep=keep)
        if keep:  # the logs are what matters; the databases are big
            for n in (1, 2):
                shutil.rmtree(os.path.join(pair.dir, f"node{n}", "pg"), ignore_errors=True)

    def _net_down(self, net):
        import transports
        try:
            transports.stop(self)
        finally:
            for e in net.remove():
                log(f"cleanup: {e}")


def hold_for_inspection(stage):
    """DUET_FAULT_HOLD=SECONDS: leave the failed pair running that long (srmctl, psql, ip
    netns exec work on it) before it is torn down."""
    secs = float(os.environ.get("DUET_FAULT_HOLD") or 0)
    if secs > 0 and stage.pair:
        log(f"holding the failed pair for {secs:.0f} s: group dir {stage.pair.dir}, "
            f"namespaces {stage.net.ns}")
        time.sleep(secs)


def main(argv):
    opts = options(argv)
    import scenarios
    if opts.list:
        for name, (_, what, known) in scenarios.SCENARIOS.items():
            print(f"{name:26} {what}" + (f" [known bug: {known.text}]" if known else ""))
        return 0
    names = opts.scenario or list(scenarios.SCENARIOS)
    unknown = [n for n in names if n not in scenarios.SCENARIOS]
    if unknown:
        print(f"unknown scenario(s) {unknown}; --list shows them", file=sys.stderr)
        return 2

    build = os.environ.get("DUET_BUILD", str(ROOT / "build"))
    if not os.path.isabs(build):
        build = str(ROOT / build)
    for b in ("srmd", "srmctl", "presenced", "duet-loadgen"):
        if not os.access(os.path.join(build, "bin", b), os.X_OK):
            return skip(f"{build}/bin/{b} is not built")
    if not os.path.exists(PG_INITDB):
        return skip("PostgreSQL 15 is not installed")
    try:
        import xmpp_clients  # noqa: F401  (slixmpp)
    except ImportError as e:
        return skip(f"{e} (contrib/install-deps test installs python3-slixmpp)")
    import fault_net
    import fault_pair
    import transports
    why = fault_net.why_unusable()
    if why:
        return skip(why)
    # Directories first: local-group down stops their databases cleanly.
    fault_pair.remove_stale_dirs(log)
    fault_net.remove_stale(log)
    xmpp_clients.quiet_slixmpp(verbose=False)

    wanted = opts.transport or transports.ALL
    runnable = []
    for t in wanted:
        why = transports.unavailable(t)
        if why:
            log(f"transport {t}: not run: {why}")
        else:
            runnable.append(t)
    if not runnable:
        return skip(f"no usable transport among {wanted}")

    results = []  # (label, outcome: pass | xfail | FAIL, seconds, why)
    for transport in runnable:
        stage = Stage(build, transport, opts)
        atexit.register(stage.down, False)
        try:
            for rnd in range(1, opts.rounds + 1):
                for name in names:
                    label = f"{transport}/{name}" + (f"#{rnd}" if opts.rounds > 1 else "")
                    outcome = run_one(stage, label, name, opts)
                    results.append((label, *outcome))
        finally:
            stage.down(keep=False)
    failed = [r for r in results if r[1] == "FAIL"]
    xfailed = [r for r in results if r[1] == "xfail"]
    log("summary: " + ", ".join(f"{o} {n} {s:.0f}s" for n, o, s, _ in results))
    # Last, so that tests/run's tail of a failed run shows why.
    for n, _, _, why in failed:
        log(f"FAILED {n}: {why}")
    log(f"{len(results) - len(failed) - len(xfailed)} passed, {len(xfailed)} failed as "
        f"expected (known product bugs), {len(failed)} failed, "
        f"{time.monotonic() - T0:.0f} s in all")
    return 1 if failed else 0


def run_one(stage, label, name, opts):
    """One scenario on the stage (brought up first if needed): (outcome, seconds).  After
    an unexpected failure the stage is torn down (logs kept) for a fresh pair."""
    import scenarios
    fn, _, known = scenarios.SCENARIOS[name]
    if os.environ.get("DUET_FAULT_STRICT") == "1":
        known = None  # known product bugs fail like any other problem
    t = time.monotonic()
    run = None
    try:
        if stage.pair is None:
            stage.up()
        run = scenarios.Run(stage, log, opts)
        run.begin(label)
        fn(run)
    except scenarios.ScenarioFailure as err:
        run.close()
        if known and all(known.matches(run, p) for p in err.problems):
            log(f"XFAIL {label} ({time.monotonic() - t:.1f} s): known product bug: "
                f"{known.text}; {len(err.problems)} problem(s), all of that kind, e.g.\n  "
                + "\n  ".join(text for _, text, _ in err.problems[:5]))
            return "xfail", time.monotonic() - t, ""
        return failed(stage, label, err, t)
    except Exception as err:  # noqa: BLE001 - report, rebuild, go on
        if run:
            run.close()
        return failed(stage, label, err, t)
    except BaseException:  # SystemExit from a signal: no load generator left behind
        if run:
            run.close()
        raise
    if known and known.intermittent:
        log(f"PASS {label} ({time.monotonic() - t:.1f} s); its intermittent known product "
            f"bug did not show: {known.text}")
        return "pass", time.monotonic() - t, ""
    if known:
        why = (f"passed, but it is marked with a known product bug ({known.text}): if that "
               "is fixed, remove the marker in tests/fault/scenarios.py")
        log(f"FAIL {label}: {why}")
        return "FAIL", time.monotonic() - t, why
    log(f"PASS {label} ({time.monotonic() - t:.1f} s)")
    return "pass", time.monotonic() - t, ""


def failed(stage, label, err, t):
    log(f"FAIL {label}: {err}")
    traceback.print_exc()
    hold_for_inspection(stage)
    kept = stage.pair.dir if stage.pair else None
    stage.down(keep=True)  # a fresh pair for the next scenario
    why = " | ".join(str(err).splitlines()[:4])[:600]
    return "FAIL", time.monotonic() - t, why + (f" (logs in {kept})" if kept else "")


def on_signal(signum, _frame):
    # Unwind main(): its finally blocks and atexit remove everything.
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)
    sys.exit(main(sys.argv[1:]))
