/* The engine's one global: its configuration, loop, tables and counters.  Kept apart from
 * main.c so unit tests and fuzz targets can link the engine without its main(). */
#include "engine/engine.h"

struct server server;
