/* A small INI reader driven by a directive table (nginx ngx_command_t style):
 * {section, key, type, offsetof(field), size, min, max}.  Unknown sections or keys,
 * bad values and out-of-range numbers are errors naming file and line. */
#ifndef DUET_INI_H
#define DUET_INI_H

#include <stddef.h>

enum ini_type {
	INI_STR,  /* char[size], value must fit */
	INI_INT,  /* long, within [min, max] */
	INI_BOOL, /* int: yes/no/true/false/on/off/1/0 */
	INI_MS,   /* long milliseconds: "250ms", "3s", "30m", "1h", bare number = seconds */
};

struct ini_directive {
	const char *section;
	const char *key;
	enum ini_type type;
	size_t offset;
	size_t size;
	long min, max;
	const char *help; /* one line, used by docs and `--help-config` */
};

/* Returns 0 on success, -1 with a message in err. */
int ini_load(const char *path, const struct ini_directive *table, void *target, char *err,
	     size_t errlen);
/* Parse one value into target according to d (used by ini_load and for overrides). */
int ini_set(const struct ini_directive *d, void *target, const char *value, char *err,
	    size_t errlen);
/* Parse a duration: returns milliseconds or -1. */
long ini_parse_ms(const char *s);

#endif
