/* The manual's bulk tools (inventory-part2 §14.3-14.6, §15; docs/bulk-tools.md) as srmd
 * control commands:
 *   contacts export / import / rename   the contact-list CSV formats (ctl_bulk_contacts.c,
 *                                       ctl_bulk_rename.c), rows parsed by ctl_bulk_csv.c
 *   users export / import / assign      moving users to another group (ctl_bulk_users.c)
 *   users check                         duplicate and invalid user IDs, also on a timer
 *                                       ([srm] user_check_interval, ctl_bulk_check.c)
 * Imports arrive as a request body (ctl_conn_read_body), exports leave in pages (srmctl asks
 * for the next page with the cursor the previous one ended with), so no single message is
 * larger than a page and srmd never holds a whole file. */
#ifndef DUET_CTL_BULK_H
#define DUET_CTL_BULK_H

#include <stddef.h>
#include <stdint.h>

#include "ha/ctl_server.h"
#include "lib/pg.h"

struct srm;
struct bulk_check;

/* ---- CSV rows (ctl_bulk_csv.c, pure code) ---- */

#define BULK_CSV_MAX_LINE 4096 /* bytes; a longer row is "Invalid format" */
#define BULK_CSV_MAX_FIELDS 8
#define BULK_ID_MAX_CHARS 132     /* User ID, Contact ID (Table 26) */
#define BULK_DOMAIN_MAX_CHARS 128 /* User Domain, Contact Domain */
#define BULK_TEXT_MAX_CHARS 255   /* Nickname, Group Name */
#define BULK_DEFAULT_GROUP "General" /* exported for a contact in no group (manual L5874) */
/* Byte sizes that hold the longest valid values (4 bytes per character). */
#define BULK_ID_BUF (4 * BULK_ID_MAX_CHARS + 1)
#define BULK_JID_BUF (4 * BULK_ID_MAX_CHARS + 1 + BULK_DOMAIN_MAX_CHARS + 1)
#define BULK_TEXT_BUF (4 * BULK_TEXT_MAX_CHARS + 1)

/* Why a row was not imported: the manual's ignore reasons (L6015-6020). */
enum bulk_reason {
	BULK_OK = 0,
	BULK_INVALID_FORMAT,         /* Invalid format */
	BULK_INVALID_CONTACT_DOMAIN, /* Invalid contact domain ("invalid access domain") */
	BULK_SELF_CONTACT,           /* Cannot add self as contact */
	BULK_CONTACT_LIST_LIMIT,     /* User's contact list exceeds limit */
	BULK_NOT_ASSIGNED,           /* User not assigned to local node */
	BULK_REASON_COUNT
};
extern const char *const bulk_reason_code[BULK_REASON_COUNT];    /* "invalid-format" */
extern const char *const bulk_reason_message[BULK_REASON_COUNT]; /* "Invalid format" */
/* From a code as the database query returns it; BULK_REASON_COUNT if unknown. */
enum bulk_reason bulk_reason_from_code(const char *code);

struct bulk_csv_fields {
	int n;
	char *f[BULK_CSV_MAX_FIELDS];
	char buf[BULK_CSV_MAX_LINE + 1];
};

/* Split one line (no LF; a final CR is dropped) into fields: comma-separated, a field may
 * be "quoted" with "" for a quote inside, spaces and tabs around a field are trimmed.  0, or
 * -1 with *why set (too long, unterminated quote, text after a closing quote, too many
 * fields, NUL byte). */
int bulk_csv_split(const char *line, size_t len, struct bulk_csv_fields *out, const char **why);
/* Append s to out (cap bytes, always terminated), quoted when it needs to be. */
void bulk_csv_field(char *out, size_t cap, const char *s);

/* One contact-list row: <User ID>,<User Domain>,<Contact ID>,<Contact Domain>,<Nickname>,
 * <Group Name>.  user is the normalized localpart, contact the bare JID, both lowercased
 * in ASCII as srmd and the engine store them; nick is "" when none. */
struct bulk_contact_row {
	char user[BULK_ID_BUF];
	char contact[BULK_JID_BUF];
	char nick[BULK_TEXT_BUF];
	char group[BULK_TEXT_BUF];
};
/* Checks Table 26's rules; domain is the node's.  BULK_OK, or the reason with detail set
 * (which field, what is wrong). */
enum bulk_reason bulk_contact_row_parse(const struct bulk_csv_fields *f, const char *domain,
					 struct bulk_contact_row *row, char *detail,
					 size_t dlen);
/* Whether the line is the optional header row of the import / rename formats. */
int bulk_csv_is_header(const struct bulk_csv_fields *f, const char *first_word);

/* A contact domain by the manual's rules (letters, digits, hyphens; labels of 1-63
 * characters not starting or ending with a hyphen; a top-level label of at least two
 * letters; at most 128 characters).  1 if valid. */
int bulk_contact_domain_valid(const char *d);
/* A bare JID "local@domain" for rename: local a valid localpart of at most 132 characters,
 * domain valid as above.  Normalized (ASCII lowercase) into out.  1 if valid. */
int bulk_jid_parse(const char *s, char *out, size_t cap);
/* Characters (UTF-8 code points) in s, or -1 when s is not valid UTF-8 or holds a
 * control character. */
long bulk_text_chars(const char *s);

/* ---- shared by the commands (ctl_bulk_common.c) ---- */

/* The home nodes this node's engine serves now (a pair: the state machine's set; a single
 * node: itself), as a PostgreSQL int[] literal "{1,2}" ("{}" when none). */
void bulk_served_nodes(const struct srm *srm, char *out, size_t cap);
/* The node's domain, ASCII-lowercased. */
void bulk_domain(const struct srm *srm, char *out, size_t cap);
/* Tell the engine that user's roster changed in the database (roster-reload).  0 when
 * sent, -1 when no engine runs. */
int bulk_engine_reload(struct srm *srm, const char *user);
/* One bulk job at a time on a node: 0 and taken, or -1 (answered "busy"). */
int bulk_job_begin(struct ctl_conn *c);
void bulk_job_end(void);
/* A database error message on one line. */
void bulk_db_error(PGresult *res, const char *errmsg, char *out, size_t cap);
/* A body line quoted for the text output ("" around, control bytes as \xNN). */
void bulk_printable(const char *s, size_t len, char *out, size_t cap);
/* A PostgreSQL array literal built in b: bulk_pg_array_add appends an element (NULL = SQL
 * NULL; the first call opens the "{"), bulk_pg_array_end closes it and returns the text
 * (owned by b).  An empty b gives "{}". */
struct evbuffer;
void bulk_pg_array_add(struct evbuffer *b, const char *s);
const char *bulk_pg_array_end(struct evbuffer *b);
/* Lowercase hex of len bytes, and back (0 or -1). */
void bulk_hex_encode(const void *p, size_t len, char *out, size_t cap);
int bulk_hex_decode(const char *hex, char *out, size_t cap);

/* ---- the periodic user check (ctl_bulk_check.c) ---- */

struct bulk_check *bulk_check_new(struct srm *srm);
void bulk_check_free(struct bulk_check *bc);

extern const struct ctl_command ctl_bulk_commands[];
void ctl_bulk_contacts_export(struct ctl_conn *c, int argc, char **argv);
void ctl_bulk_contacts_import(struct ctl_conn *c, int argc, char **argv);
void ctl_bulk_contacts_rename(struct ctl_conn *c, int argc, char **argv);
void ctl_bulk_users_export(struct ctl_conn *c, int argc, char **argv);
void ctl_bulk_users_import(struct ctl_conn *c, int argc, char **argv);
void ctl_bulk_users_assign(struct ctl_conn *c, int argc, char **argv);
void ctl_bulk_users_check(struct ctl_conn *c, int argc, char **argv);

#endif
