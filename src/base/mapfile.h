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

int mapped_open(mapped_file *m, const char *path, moe_err *err);
void mapped_close(mapped_file *m);

/* Read a whole (small) file into a malloc'd NUL-terminated buffer. Refuses
 * files larger than max_bytes. */
int read_file(const char *path, size_t max_bytes, char **out, size_t *len, moe_err *err);

#endif
