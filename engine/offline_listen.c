/* Offline messages that replication writes (docs/replication-protocol.md): the peer's
 * srmd applies them in replica mode, so no engine saw them, and a recipient already online
 * here would get them only at its next login.  Schema migration 5 makes every such row
 * announce itself (NOTIFY duet_offline, payload: the username); this engine LISTENs and
 * flushes the store of a recipient that is online.
 *
 * The LISTEN has a pool of its own (one connection), so it never waits behind queries; the
 * pool sends it again after every reconnect.  A notification lost while the connection is
 * down costs only the delay until the recipient's next login, as before. */
#include "engine/engine.h"
#include "lib/log.h"
#include "lib/pg.h"

static struct pg_pool *listen_pool;

static void on_notify(void *arg, const char *channel, const char *username)
{
	struct user *u = user_find_loaded(username);
	if (u)
		offline_replicated(u);
}

void offline_listen_start(void)
{
	listen_pool = pg_pool_new(server.base, server.cfg.db_conninfo, 1);
	if (!listen_pool || pg_pool_listen(listen_pool, "duet_offline", on_notify, NULL) < 0)
		log_warnx("offline listen: cannot set up (out of memory): replicated offline "
			  "messages wait for their recipient's next login");
}
