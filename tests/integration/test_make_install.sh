#!/bin/sh
# make install / uninstall into a scratch DESTDIR with PREFIX=/usr, using the binaries of
# DUET_BUILD (not rebuilt): every file in place, the systemd unit filled in and accepted by
# `systemd-analyze verify` (skipped without systemd-analyze), the installed srmctl and srmd
# run (help, --check-config of the example config and of a broken one), the man pages render
# without warnings (skipped without man), uninstall leaves nothing; and srmd's log lines
# carry journald priorities exactly when stderr is the stream $JOURNAL_STREAM names.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd) || exit 1
build=${DUET_BUILD:-$root/build}
for b in srmd presenced srmctl; do
	[ -x "$build/bin/$b" ] || {
		echo "FAIL: $build/bin/$b not built"
		exit 1
	}
done
if [ -n "${DUET_TEST_TMP:-}" ]; then
	tmp=$DUET_TEST_TMP
else
	tmp=$(mktemp -d /tmp/install-test.XXXXXX) || exit 1
	trap 'rm -rf "$tmp"' EXIT
fi
dest=$tmp/root
fail() {
	echo "FAIL: $*"
	exit 1
}
note() { echo "ok: $*"; }

# The build directory as the Makefile names it, and its flavour.
case $build in
"$root"/*) mkbuild=${build#"$root"/} ;;
*) mkbuild=$build ;;
esac
case $mkbuild in
*san) san=1 ;;
*) san=0 ;;
esac
# -o: take the built binaries as they are, never rebuild them here.
make_install() {
	make -s -C "$root" "$@" BUILD="$mkbuild" SAN="$san" DESTDIR="$dest" PREFIX=/usr \
		-o "$mkbuild/bin/srmd" -o "$mkbuild/bin/presenced" -o "$mkbuild/bin/srmctl"
}

# --- install ----------------------------------------------------------------------------
out=$(make_install install 2>&1) || fail "make install: $out"
unit=$dest/usr/lib/systemd/system/duet-srmd.service
for f in usr/sbin/srmd usr/sbin/presenced usr/sbin/srmctl usr/share/man/man8/srmctl.8 \
	usr/share/man/man8/srmd.8 usr/lib/systemd/system/duet-srmd.service \
	usr/lib/sysusers.d/duet.conf usr/share/doc/duet/duet.conf.example \
	usr/share/doc/duet/operator-guide.md usr/share/doc/duet/parameters.md; do
	[ -f "$dest/$f" ] || fail "make install did not install /$f"
done
for b in srmd presenced srmctl; do
	[ -x "$dest/usr/sbin/$b" ] || fail "/usr/sbin/$b is not executable"
done
grep -q '@' "$unit" && fail "unit still has a placeholder: $(grep '@' "$unit")"
grep -qx 'ExecStart=/usr/sbin/srmd -c /etc/duet/duet.conf' "$unit" ||
	fail "unit ExecStart: $(grep ExecStart "$unit")"
grep -qx 'Type=notify' "$unit" || fail "unit is not Type=notify"
grep -q '^u duet ' "$dest/usr/lib/sysusers.d/duet.conf" || fail "sysusers file has no user duet"
note "make install DESTDIR=... PREFIX=/usr: $(find "$dest" -type f | wc -l) files"

# --- the unit ---------------------------------------------------------------------------
if command -v systemd-analyze >/dev/null 2>&1; then
	# verify checks that ExecStart exists: point it into DESTDIR.  It exits 0 on lines it
	# ignores, so any output is a failure too.
	mkdir -p "$tmp/verify"
	sed "s|/usr/sbin/|$dest/usr/sbin/|g" "$unit" >"$tmp/verify/duet-srmd.service"
	out=$(systemd-analyze verify --man=no "$tmp/verify/duet-srmd.service" 2>&1)
	rc=$?
	if [ "$rc" -ne 0 ] || [ -n "$out" ]; then
		fail "systemd-analyze verify ($rc): $out"
	fi
	note "systemd-analyze verify accepts the unit"
else
	echo "skip: systemd-analyze not installed, unit not verified"
fi

# --- the installed programs -------------------------------------------------------------
out=$("$dest/usr/sbin/srmctl" --help 2>&1) || fail "srmctl --help exited $?: $out"
printf '%s\n' "$out" | grep -q '^usage: srmctl' || fail "srmctl --help: $out"
printf '%s\n' "$out" | grep -q 'failover \[NODE\] \[--yes\]' || fail "srmctl --help: $out"
out=$("$dest/usr/sbin/srmctl" help history 2>&1) || fail "srmctl help history: $out"
printf '%s\n' "$out" | grep -q '^usage: srmctl history' || fail "srmctl help history: $out"
note "installed srmctl --help and help COMMAND"

example=$dest/usr/share/doc/duet/duet.conf.example
out=$("$dest/usr/sbin/srmd" --check-config "$example" 2>&1) ||
	fail "srmd --check-config of the example config: $out"
printf '%s\n' "$out" | grep -q ': ok: ' || fail "--check-config: $out"
# Every default the example shows, uncommented, is a valid value.
sed 's/^# \([a-z_]* =\)/\1/' "$example" >"$tmp/defaults.conf"
[ "$(grep -c '^[a-z_]* =' "$tmp/defaults.conf")" -ge 60 ] || fail "uncommenting the example failed"
out=$("$dest/usr/sbin/srmd" --check-config "$tmp/defaults.conf" 2>&1) ||
	fail "the example's defaults, uncommented, do not parse: $out"
printf '[node]\nid = 3\n' >"$tmp/bad.conf"
out=$("$dest/usr/sbin/srmd" --check-config "$tmp/bad.conf" 2>&1) &&
	fail "--check-config accepted id = 3: $out"
printf '[node]\nbogus = 1\n' >"$tmp/bad.conf"
"$dest/usr/sbin/srmd" --check-config "$tmp/bad.conf" >/dev/null 2>&1 &&
	fail "--check-config accepted an unknown key"
note "srmd --check-config: the example config parses, broken ones are refused"

# --- man pages --------------------------------------------------------------------------
if command -v man >/dev/null 2>&1; then
	for page in srmctl srmd; do
		out=$(MANWIDTH=80 man --warnings -l "$dest/usr/share/man/man8/$page.8" 2>&1 >"$tmp/$page.txt")
		[ -z "$out" ] || fail "man $page.8 warns: $out"
		grep -q "^NAME" "$tmp/$page.txt" || fail "man $page.8 did not render"
	done
	grep -q "EXIT STATUS" "$tmp/srmctl.txt" || fail "srmctl.8 has no EXIT STATUS"
	note "man -l renders srmctl.8 and srmd.8 without warnings"
else
	echo "skip: man not installed, pages not rendered"
fi

# --- uninstall --------------------------------------------------------------------------
out=$(make_install uninstall 2>&1) || fail "make uninstall: $out"
left=$(find "$dest" -type f)
[ -z "$left" ] || fail "make uninstall left: $left"
note "make uninstall removes every installed file"

# --- journald log format ----------------------------------------------------------------
# srmd -c on a missing file logs one fatal line and exits 1.
errfile=$tmp/stderr
devino=$(: >"$errfile" && stat -c '%d:%i' "$errfile")
JOURNAL_STREAM=$devino "$build/bin/srmd" -c "$tmp/none.conf" 2>"$errfile"
line=$(head -n 1 "$errfile")
case $line in
"<2>srmd fatal: "*) ;;
*) fail "with JOURNAL_STREAM naming stderr: '$line'" ;;
esac
JOURNAL_STREAM=1:2 "$build/bin/srmd" -c "$tmp/none.conf" 2>"$errfile"
line=$(head -n 1 "$errfile")
printf '%s\n' "$line" | grep -Eq '^[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3} srmd fatal: ' ||
	fail "with JOURNAL_STREAM naming another file: '$line'"
DUET_LOG_FORMAT=journal "$build/bin/srmd" -c "$tmp/none.conf" 2>"$errfile"
grep -q '^<2>srmd fatal: ' "$errfile" || fail "DUET_LOG_FORMAT=journal: $(cat "$errfile")"
note "log lines: <N> priorities on journald's stream, timestamps otherwise"
echo "PASS: make install, unit, programs, man pages, uninstall, log format"
