/* The persisted HA snapshot (ha_snapshot_format's one line) in run_dir/ha.state: written
 * atomically (temporary file, fsync, rename, fsync of the directory) so a crash leaves
 * either the old or the new line, never a torn one. */
#ifndef DUET_HA_STATE_FILE_H
#define DUET_HA_STATE_FILE_H

#include <stddef.h>

#include "ha/ha_fsm.h"

/* 0 and snap filled; 1 when there is no file (a node that never ran); -1 on a read error
 * or a malformed file (err says why). */
int ha_state_file_load(const char *path, struct ha_snapshot *snap, char *err, size_t errlen);
/* 0, or -1 with err set. */
int ha_state_file_save(const char *path, const struct ha_snapshot *snap, char *err,
		       size_t errlen);

#endif
