/* Salts for expat's hash tables without a system call per parser. */
#ifndef DUET_HASH_SALT_H
#define DUET_HASH_SALT_H

/* A fresh salt for XML_SetHashSalt, never 0; 0 only when the process could not read its
 * secret seed (then let expat draw its own). */
unsigned long hash_salt_next(void);

#endif
