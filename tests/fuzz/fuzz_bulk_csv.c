/* libFuzzer target for the bulk tools' CSV rows (ha/ctl_bulk_csv.c, docs/bulk-tools.md).
 *
 * Input: one line of a contact-list or rename file, as an operator's file (or anyone on the
 * control socket) may hold it.  Properties checked:
 *   - splitting and the Table 26 checks never read outside the input (ASan) nor misbehave
 *     (UBSan), whatever the bytes;
 *   - every field of a split line, written back with bulk_csv_field, splits to the same
 *     value (what export writes, import reads unchanged);
 *   - a row judged valid has a normalized user and contact that pass the checks again. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The fuzz build links engine/ and lib/ only: take the parser's source directly. */
#include "ha/ctl_bulk_csv.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct bulk_csv_fields f, g;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *why = NULL;
	if (bulk_csv_split((const char *)data, size, &f, &why) < 0) {
		if (!why)
			abort();
		return 0;
	}
	for (int i = 0; i < f.n; i++) {
		char line[4 * BULK_CSV_MAX_LINE + 16] = "";
		bulk_csv_field(line, sizeof line, f.f[i]);
		if (bulk_csv_split(line, strlen(line), &g, &why) < 0 || g.n != 1 ||
		    strcmp(g.f[0], f.f[i]) != 0) {
			/* A value with a CR at its end or a NUL cannot come out of a split. */
			abort();
		}
	}
	struct bulk_contact_row row;
	char detail[600];
	enum bulk_reason r = bulk_contact_row_parse(&f, "duet.test", &row, detail, sizeof detail);
	if (r >= BULK_REASON_COUNT)
		abort();
	if (r == BULK_OK) {
		char jid[BULK_JID_BUF];
		if (!bulk_jid_parse(row.contact, jid, sizeof jid) || strcmp(jid, row.contact) != 0)
			abort();
	}
	if (f.n == 2) {
		char a[BULK_JID_BUF];
		bulk_jid_parse(f.f[0], a, sizeof a);
	}
	return 0;
}
