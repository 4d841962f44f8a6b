#!/bin/bash
# The main job, as a test: contrib/demo on a pair — alice (node 1) and bob (node 2) subscribe
# and chat across the nodes, node 1 crashes (kill -9 of its srmd), node 2 takes alice, they
# chat again, node 1 is repaired, fallback sends alice home, final chat.  The demo asserts
# every step itself and exits non-zero on any failure.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${DUET_BUILD:-$root/build}
if ! /usr/bin/python3 -c 'import slixmpp' 2>/dev/null; then
	echo "SKIP: python3-slixmpp is not installed"
	exit 77
fi
DUET_BUILD=$build DEMO_NODES=2 DEMO_BASE_PORT=${DEMO_BASE_PORT:-23500} \
	timeout 300 "$root/contrib/demo"
