/*
 * mapfile.h - a read-only memory-mapped file. Weights are used where they
 * lie in the mapping; nothing is copied unless a conversion is needed.
 */
#ifndef MOE_BASE_MAPFILE_H
#define MOE_BASE_MAPFILE_H

#include <stddef.h>
#include "moe.h"

typedef struct mapped_file {
    const unsigned char *data; /* NULL for an empty file */
    size_t size;               /* bytes */
} mapped_file;

struct stat;
/* Open path for reading if it is a regular file; else fail at once with a
 * message saying what it is (a FIFO, device or directory named like a model
 * file never blocks the open). Returns the descriptor (blocking mode) and
 * fills *st, or -1. Every file the library reads is opened here. */
int open_regular(const char *path, struct stat *st, moe_err *err);

/* Map path (a regular file, see open_regular). */
int mapped_open(mapped_file *m, const char *path, moe_err *err);
void mapped_close(mapped_file *m);

/* Read a whole (small) file into a malloc'd NUL-terminated buffer. Refuses
 * files larger than max_bytes. */
int read_file(const char *path, size_t max_bytes, char **out, size_t *len, moe_err *err);

#endif
