/* The node database's schema, as numbered migrations applied in order at start-up
 * (blocking libpq: start-up only, never from an event loop).  srmd applies them before it
 * starts the engine; presenced checks the version.  An advisory lock serialises appliers. */
#ifndef DUET_SCHEMA_H
#define DUET_SCHEMA_H

#include <libpq-fe.h>
#include <stddef.h>

int schema_latest_version(void);
/* Apply every missing migration, each in its own transaction.  0 or -1 with err set. */
int schema_migrate(PGconn *conn, char *err, size_t errlen);
/* Current version of the database (0 if none), -1 on error. */
int schema_current_version(PGconn *conn, char *err, size_t errlen);

#endif
