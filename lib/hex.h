/* Lower-case hexadecimal, as PostgreSQL's encode(..., 'hex') writes it. */
#ifndef DUET_HEX_H
#define DUET_HEX_H

#include <stddef.h>

/* Writes 2n characters and a NUL into out (2n + 1 bytes). */
void hex_encode(const unsigned char *in, size_t n, char *out);
/* Decodes exactly strlen(in) / 2 bytes into out (max bytes); -1 on odd length, a
 * non-hex character or more than max bytes, else the number of bytes. */
long hex_decode(const char *in, unsigned char *out, size_t max);

#endif
