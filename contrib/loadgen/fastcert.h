/* The load generator's shortcut around OpenSSL 3.0's certificate key decoding (fastcert.c). */
#ifndef LOADGEN_FASTCERT_H
#define LOADGEN_FASTCERT_H

/* Route EC public keys of certificates through OpenSSL's direct (legacy) decoder, with each
 * named curve built once.  0, or -1 when OpenSSL refuses (the load generator then runs
 * without it). */
int fastcert_enable(void);
/* Undo fastcert_enable and free what it holds, once no key or TLS object made while it was
 * on is left (at exit).  Harmless when it is off. */
void fastcert_disable(void);

#endif
