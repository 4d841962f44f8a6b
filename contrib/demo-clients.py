#!/usr/bin/python3
"""The demo's clients: alice and bob (real slixmpp clients) log in with SCRAM-SHA-256 over
STARTTLS, subscribe to each other, see each other's presence and chat, while a narrative
with timings is printed.  Run by contrib/demo; exits 1 as soon as a step fails.

usage: demo-clients.py --env DIR/group.env --alice-password P --bob-password P
                       [--alice-node N] [--bob-node N] [--verbose]
"""

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

# The clients are shared with the interop tests (tests/lib/xmpp_clients.py).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "lib"))
from xmpp_clients import (Client, Narrator, XmppFailure, load_group_env,  # noqa: E402
                          quiet_slixmpp, subscribe_mutually, wait_until)

TIMEOUT = 15      # seconds for any one step
ROUND_TRIPS = 20  # ping-pong chats measured after the greeting


def ms(seconds):
    return f"{seconds * 1000:.1f} ms"


async def chat(narrator, sender, receiver, body, quiet=False):
    """sender sends body to receiver's bare JID; returns the delivery time in seconds."""
    t0 = time.monotonic()
    sender.send_message(mto=receiver.boundjid.bare, mbody=body, mtype="chat")
    got = await wait_until(lambda: receiver.received(body), TIMEOUT,
                           f"{receiver.boundjid.bare} to receive {body!r}")
    took = got[0].at - t0
    if not quiet:
        narrator.say(f"{sender.boundjid.user} -> {receiver.boundjid.user}: {body!r} "
                     f"(delivered in {ms(took)})")
    return took


async def run(args, env, narrator):
    cert = env["TLS_CERT"]
    domain = env["DOMAIN"]

    def make(user, password, node):
        port = env[f"NODE{node}_XMPP_PORT"]
        narrator.say(f"{user}@{domain}/demo connects to 127.0.0.1:{port} (node {node}), "
                     f"STARTTLS required, trusting only {cert}")
        return Client(f"{user}@{domain}/demo", password, "127.0.0.1", port, cert, domain)

    alice = make("alice", args.alice_password, args.alice_node)
    bob = make("bob", args.bob_password, args.bob_node)
    try:
        for c in (alice, bob):
            await c.login(TIMEOUT)
            narrator.say(f"{c.boundjid.user} logged in as {c.boundjid.full}: {c.mechanism} "
                         f"over {c.tls_version}, {ms(c.login_seconds)} from connect to session")

        t0 = time.monotonic()
        narrator.say("alice asks to see bob's presence; bob approves and asks back")
        await subscribe_mutually(alice, bob, TIMEOUT)
        narrator.say(f"both rosters now say 'both' ({ms(time.monotonic() - t0)})")

        await wait_until(lambda: bob.boundjid.full in alice.available, TIMEOUT,
                         "alice to see bob online")
        narrator.say("alice sees bob online")
        await wait_until(lambda: alice.boundjid.full in bob.available, TIMEOUT,
                         "bob to see alice online")
        narrator.say("bob sees alice online")

        await chat(narrator, alice, bob, "Hi Bob! Duet here, over TLS.")
        await chat(narrator, bob, alice, "Hi Alice, loud and clear.")

        times = []
        for i in range(ROUND_TRIPS):
            times.append(await chat(narrator, alice, bob, f"ping {i}", quiet=True) +
                         await chat(narrator, bob, alice, f"pong {i}", quiet=True))
        narrator.say(f"{ROUND_TRIPS} chat round trips alice -> bob -> alice: median "
                     f"{ms(statistics.median(times))}, max {ms(max(times))}")

        t0 = time.monotonic()
        narrator.say("bob logs out")
        await bob.logout(TIMEOUT)
        await wait_until(lambda: bob.boundjid.full not in alice.available, TIMEOUT,
                         "alice to see bob go offline")
        narrator.say(f"alice saw bob go offline ({ms(time.monotonic() - t0)})")
        await alice.logout(TIMEOUT)
        narrator.say("alice logs out")

        errors = alice.errors + bob.errors
        if errors:
            raise XmppFailure("error stanzas received: " + "; ".join(errors))
    finally:
        alice.drop()
        bob.drop()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", required=True, help="group.env written by contrib/local-group")
    p.add_argument("--alice-password", required=True)
    p.add_argument("--bob-password", required=True)
    p.add_argument("--alice-node", type=int, default=1)
    p.add_argument("--bob-node", type=int, default=1)
    p.add_argument("--verbose", action="store_true", help="show slixmpp's debug log")
    args = p.parse_args()
    quiet_slixmpp(args.verbose)
    narrator = Narrator()
    try:
        env = load_group_env(args.env)
        asyncio.run(run(args, env, narrator))
    except (XmppFailure, OSError, KeyError) as e:
        narrator.say(f"FAILED: {e}")
        return 1
    narrator.say("all steps passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
