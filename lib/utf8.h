/* Strict UTF-8 decoding (RFC 3629): no overlong forms, no surrogates, nothing above
 * U+10FFFF.  One decoder for every place that validates names and text. */
#ifndef DUET_UTF8_H
#define DUET_UTF8_H

#include <stddef.h>

/* Length of the well-formed sequence at p (reading at most n bytes; a NUL ends it as a
 * malformation, so n may exceed what is left of a NUL-terminated string), 0 if malformed.
 * *cp receives the code point. */
size_t utf8_decode(const unsigned char *p, size_t n, unsigned long *cp);

/* The same for a NUL-terminated string, also refusing C1 controls (U+0080..U+009F). */
size_t utf8_char_len_no_c1(const unsigned char *p);

#endif
