/* Strict base64 (RFC 4648, with padding), as SASL in XMPP needs (RFC 6120 §6.4.2:
 * whitespace or bad padding is incorrect-encoding). */
#ifndef DUET_BASE64_H
#define DUET_BASE64_H

#include <stddef.h>

/* Encoded length for n bytes, without the NUL; the macro is for array sizes. */
#define BASE64_LEN(n) (((n) + 2) / 3 * 4)
size_t base64_encoded_len(size_t n);
/* Encode into out (base64_encoded_len(n) + 1 bytes); returns the length written. */
size_t base64_encode(const unsigned char *in, size_t n, char *out);
/* Decode strictly; out must hold len / 4 * 3 bytes.  Returns bytes written, or -1 on any
 * malformation (bad character, bad length, bad padding, non-zero pad bits). */
long base64_decode(const char *in, size_t len, unsigned char *out);

#endif
