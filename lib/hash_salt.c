/* Expat salts its hash tables against collision floods with getrandom() for every parser
 * it creates or resets: three system calls per login in presenced and in the load
 * generator.  Here one secret seed is read once and each parser's salt is its own step of
 * a 64-bit mixer (splitmix64): as unpredictable to a peer as expat's own salt. */
#include "lib/hash_salt.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/random.h>
#include <sys/types.h>

static pthread_once_t seed_once = PTHREAD_ONCE_INIT;
static uint64_t seed;
static int seeded;
static atomic_uint_least64_t counter;

static void read_seed(void)
{
	seeded = getrandom(&seed, sizeof seed, 0) == (ssize_t)sizeof seed;
}

unsigned long hash_salt_next(void)
{
	if (pthread_once(&seed_once, read_seed) != 0 || !seeded)
		return 0;
	uint64_t z = seed + (atomic_fetch_add(&counter, 1) + 1) * 0x9e3779b97f4a7c15ULL;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	z ^= z >> 31;
	return z != 0 ? (unsigned long)z : 1;
}
