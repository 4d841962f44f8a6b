/* `duet-loadgen --print-creds PASSWORD`: SCRAM-SHA-1 and SCRAM-SHA-256 stored credentials
 * for bench users, as shell assignments, so provisioning derives them once for all users. */
#ifndef LOADGEN_CREDS_H
#define LOADGEN_CREDS_H

/* salt: the salt's bytes as text (NULL: 32 random hex digits, which are the salt bytes
 * themselves, so servers that keep the salt as text can store it as is).  0 or -1. */
int creds_print(const char *password, const char *salt, unsigned iterations);

#endif
