#!/usr/bin/env python3
"""A stand-in presence engine speaking docs/engine-protocol.md, for testing srmd's supervision
without presenced.  Started by srmd as `fake-engine.py --config PATH --control-fd N`.

Knobs (environment, inherited from srmd):
  FAKE_ENGINE_EXIT=CODE        exit with CODE at once (2 = configuration fault)
  FAKE_ENGINE_LOG=FILE         append "<pid> <request>" for every request received
  FAKE_ENGINE_READY_DELAY=S    seconds before saying ready (default 0.1)
  FAKE_ENGINE_HEALTH_FILE=FILE if it exists, its first word is the health answer
                               (e.g. db-down, no-listener); otherwise "ok"
  FAKE_ENGINE_IGNORE_STOP=1    answer "stop ok" but keep running (srmd must SIGKILL)
"""
import argparse
import os
import select
import sys
import time

MAX_LINE = 65536


def log_request(line):
    path = os.environ.get("FAKE_ENGINE_LOG")
    if path:
        with open(path, "a") as f:
            f.write("%d %s\n" % (os.getpid(), line))


def health_answer():
    path = os.environ.get("FAKE_ENGINE_HEALTH_FILE")
    if path and os.path.exists(path):
        with open(path) as f:
            words = f.read().split()
        if words:
            return words[0]
    return "ok"


class Engine:
    def __init__(self, fd):
        self.fd = fd
        self.said_hello = False
        self.serving = "-"
        self.kicks = 0
        self.ignore_stop = os.environ.get("FAKE_ENGINE_IGNORE_STOP") == "1"
        self.stopping = False

    def send(self, line):
        data = (line + "\n").encode()
        while data:
            n = os.write(self.fd, data)
            data = data[n:]

    def handle(self, line):
        log_request(line)
        words = line.split(" ")
        cmd, args = words[0], words[1:]
        if not self.said_hello and cmd != "hello":
            self.send("error %s hello-first" % cmd)
            return
        if cmd == "hello":
            if args[:1] != ["1"]:
                self.send("error hello unsupported")
                sys.exit(2)
            self.said_hello = True
            self.send("hello 1 fake-engine 0.1")
        elif cmd == "serve" and len(args) == 1:
            self.serving = args[0]
            self.send("serve ok")
        elif cmd == "redirect" and len(args) == 2:
            self.send("redirect ok")
        elif cmd == "release" and len(args) == 3:
            self.send("release ok 0")
        elif cmd == "throttle" and len(args) in (1, 2):
            self.send("throttle ok")
        elif cmd == "relogin" and len(args) == 2:
            self.send("relogin ok")
        elif cmd == "health" and len(args) == 1:
            self.send("health %s %s" % (args[0], health_answer()))
        elif cmd == "stats":
            self.send("stats sessions=0 users=0 logins=0 login_failures=0 messages=0 "
                      "offline_stored=0 rss_kb=1000 db_connected=1 kicks=%d" % self.kicks)
        elif cmd == "kick" and len(args) == 1:
            self.kicks += 1
            self.send("kick ok 0")
        elif cmd == "stop":
            self.send("stop ok")
            if not self.ignore_stop:
                sys.exit(0)
            self.stopping = True
        else:
            self.send("error %s unknown-request" % cmd)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--control-fd", type=int, required=True)
    opts = ap.parse_args()
    code = os.environ.get("FAKE_ENGINE_EXIT")
    if code:
        print("fake-engine: exiting with %s as asked" % code, file=sys.stderr)
        sys.exit(int(code))
    if not os.path.exists(opts.config):
        print("fake-engine: no config %s" % opts.config, file=sys.stderr)
        sys.exit(2)
    engine = Engine(opts.control_fd)
    ready_at = time.monotonic() + float(os.environ.get("FAKE_ENGINE_READY_DELAY", "0.1"))
    ready_sent = False
    buf = b""
    while True:
        timeout = None if ready_sent else max(0.0, ready_at - time.monotonic())
        r, _, _ = select.select([opts.control_fd], [], [], timeout)
        if not ready_sent and time.monotonic() >= ready_at and engine.said_hello:
            engine.send("ready")
            ready_sent = True
        elif not ready_sent and time.monotonic() >= ready_at:
            ready_at = time.monotonic() + 0.05  # say ready only after the handshake
        if not r:
            continue
        data = os.read(opts.control_fd, 65536)
        if not data:
            # srmd went away: an engine never runs unsupervised.
            sys.exit(0)
        buf += data
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if len(line) > MAX_LINE:
                sys.exit(1)
            engine.handle(line.decode("utf-8", "replace"))
        if len(buf) > MAX_LINE:
            print("fake-engine: line too long", file=sys.stderr)
            sys.exit(1)


if __name__ == "__main__":
    main()
