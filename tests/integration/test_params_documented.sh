#!/bin/sh
# Every key lib/config.c parses is documented: a row in docs/parameters.md under its
# section's heading ("## [section]") with all six columns (key, manual, default, range,
# restart, meaning) filled, and a line "key = ..." (commented, with its default) in its
# section of contrib/duet.conf.example.  Fails naming each key that is missing.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd) || exit 1
config=$root/lib/config.c
doc=$root/docs/parameters.md
example=$root/contrib/duet.conf.example
for f in "$config" "$doc" "$example"; do
	[ -r "$f" ] || {
		echo "FAIL: $f missing"
		exit 1
	}
done

# "section key" for every directive: {"section", "key", INI_...
keys=$(grep -o '{"[a-z_]*", "[a-z_]*", INI_' "$config" |
	sed 's/^{"\([a-z_]*\)", "\([a-z_]*\)".*/\1 \2/' | sort -u)
n=$(printf '%s\n' "$keys" | grep -c .)
[ "$n" -ge 40 ] || {
	echo "FAIL: only $n keys found in $config: the extraction is broken"
	exit 1
}

# "section key cells" for every table row of the doc; a row may name several keys
# ("tls_cert, tls_key").
documented=$(awk '
	/^## \[[a-z_]+\]/ { sec = $2; gsub(/[][]/, "", sec); next }
	/^## / { sec = ""; next }
	sec != "" && /^\|/ {
		n = split($0, cell, "|")
		if (n < 3) next
		cells = n - 2
		for (i = 2; i < n; i++) {
			c = cell[i]
			gsub(/^ +| +$/, "", c)
			if (c == "") cells = -1
		}
		k = cell[2]
		gsub(/`/, "", k)
		m = split(k, names, ",")
		for (j = 1; j <= m; j++) {
			name = names[j]
			gsub(/^ +| +$/, "", name)
			print sec, name, cells
		}
	}' "$doc")

# "section key" for every "key =" line (commented or not) of the example.
examples=$(awk '
	/^[#;]? *\[[a-z_]+\]/ { sec = $0; sub(/^[#;]? */, "", sec); gsub(/[][]/, "", sec); next }
	sec != "" && /^[#;]? *[a-z_]+ *=/ {
		line = $0
		sub(/^[#;]? */, "", line)
		sub(/ *=.*/, "", line)
		print sec, line
	}' "$example")

missing=0
for_each() {
	printf '%s\n' "$keys" | while read -r sec key; do
		"$@" "$sec" "$key"
	done
}
check_doc() {
	row=$(printf '%s\n' "$documented" | awk -v s="$1" -v k="$2" '$1 == s && $2 == k { print $3; exit }')
	if [ -z "$row" ]; then
		echo "missing from docs/parameters.md: [$1] $2"
		return
	fi
	[ "$row" = 6 ] || echo "docs/parameters.md: [$1] $2: the row needs 6 filled columns (key, manual, default, range, restart, meaning), has $row"
}
check_example() {
	printf '%s\n' "$examples" | grep -qx "$1 $2" ||
		echo "missing from contrib/duet.conf.example: [$1] $2"
}
problems=$( (for_each check_doc; for_each check_example) 2>&1)
if [ -n "$problems" ]; then
	printf '%s\n' "$problems"
	missing=$(printf '%s\n' "$problems" | grep -c .)
	echo "FAIL: $missing problem(s) over $n keys of lib/config.c"
	exit 1
fi
echo "PASS: all $n keys of lib/config.c documented in docs/parameters.md and contrib/duet.conf.example"
