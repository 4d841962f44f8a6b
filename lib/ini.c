#include "lib/ini.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	char *e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

long ini_parse_ms(const char *s)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || v < 0)
		return -1;
	double mult;
	if (*end == '\0' || strcmp(end, "s") == 0)
		mult = 1000;
	else if (strcmp(end, "ms") == 0)
		mult = 1;
	else if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0)
		mult = 60000;
	else if (strcmp(end, "h") == 0)
		mult = 3600000;
	else
		return -1;
	double ms = v * mult;
	if (ms > 1e15)
		return -1;
	return (long)ms;
}

int ini_set(const struct ini_directive *d, void *target, const char *value, char *err,
	    size_t errlen)
{
	char *field = (char *)target + d->offset;
	long n;
	char *end;

	switch (d->type) {
	case INI_STR:
		if (strlen(value) >= d->size) {
			snprintf(err, errlen, "%s: value too long (max %zu)", d->key, d->size - 1);
			return -1;
		}
		memcpy(field, value, strlen(value) + 1);
		return 0;
	case INI_INT:
		errno = 0;
		n = strtol(value, &end, 10);
		if (errno || end == value || *end) {
			snprintf(err, errlen, "%s: not an integer: %s", d->key, value);
			return -1;
		}
		break;
	case INI_MS:
		n = ini_parse_ms(value);
		if (n < 0) {
			snprintf(err, errlen, "%s: not a duration: %s", d->key, value);
			return -1;
		}
		break;
	case INI_BOOL:
		if (!strcasecmp(value, "yes") || !strcasecmp(value, "true") ||
		    !strcasecmp(value, "on") || !strcmp(value, "1"))
			*(int *)field = 1;
		else if (!strcasecmp(value, "no") || !strcasecmp(value, "false") ||
			 !strcasecmp(value, "off") || !strcmp(value, "0"))
			*(int *)field = 0;
		else {
			snprintf(err, errlen, "%s: not a boolean: %s", d->key, value);
			return -1;
		}
		return 0;
	default:
		snprintf(err, errlen, "%s: bad directive type", d->key);
		return -1;
	}
	if (n < d->min || n > d->max) {
		snprintf(err, errlen, "%s: %s out of range [%ld, %ld]", d->key, value, d->min,
			 d->max);
		return -1;
	}
	*(long *)field = n;
	return 0;
}

int ini_load(const char *path, const struct ini_directive *table, void *target, char *err,
	     size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	char line[4096], section[64] = "", msg[256];
	int lineno = 0, rc = 0;
	while (fgets(line, sizeof line, f)) {
		lineno++;
		char *s = trim(line);
		if (*s == '\0' || *s == '#' || *s == ';')
			continue;
		if (*s == '[') {
			char *e = strchr(s, ']');
			if (!e || e[1] || (size_t)(e - s - 1) >= sizeof section) {
				snprintf(err, errlen, "%s:%d: bad section header", path, lineno);
				rc = -1;
				break;
			}
			*e = '\0';
			snprintf(section, sizeof section, "%s", trim(s + 1));
			continue;
		}
		char *eq = strchr(s, '=');
		if (!eq) {
			snprintf(err, errlen, "%s:%d: expected key = value", path, lineno);
			rc = -1;
			break;
		}
		*eq = '\0';
		char *key = trim(s), *value = trim(eq + 1);
		const struct ini_directive *d = table;
		while (d->key && !(strcmp(d->section, section) == 0 && strcmp(d->key, key) == 0))
			d++;
		if (!d->key) {
			snprintf(err, errlen, "%s:%d: unknown setting [%s] %s", path, lineno,
				 section, key);
			rc = -1;
			break;
		}
		if (ini_set(d, target, value, msg, sizeof msg) < 0) {
			snprintf(err, errlen, "%s:%d: %s", path, lineno, msg);
			rc = -1;
			break;
		}
	}
	fclose(f);
	return rc;
}
