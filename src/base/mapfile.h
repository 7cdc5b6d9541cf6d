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
    size_t span;               /* 0: a mapping of the file; else the bytes of the
                                  anonymous region they were read into */
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

/* Model weights: like mapped_open, but a file that fits well in the memory
 * available (at most half of /proc/meminfo's MemAvailable) is read into
 * anonymous memory backed by transparent huge pages instead of mapped.
 * Weights streamed through a mapping of the page cache cross a 4 KiB page,
 * and often miss the TLB, every 4 KiB; from 2 MiB pages Qwen3.5-35B-A3B's
 * Q8_0 decode went from 30.2 to 38.7 tokens/s (2 threads, same file). A
 * file larger than that (a model bigger than RAM) is mapped as before, and
 * so is every file when the environment sets MOE_LOAD=mmap (MOE_LOAD=read:
 * read whenever the memory can be had). A read error or a file shorter than
 * its size fails here, never later. */
int mapped_open_weights(mapped_file *m, const char *path, moe_err *err);

/* Make the bytes of a file read by mapped_open_weights writable (w = 1) or
 * read-only again (w = 0), for rewriting weights in place (packing at
 * load); -1 when the file is mapped (span 0: writing would copy its pages). */
int mapped_set_writable(mapped_file *m, int w);

/* Read a whole (small) file into a malloc'd NUL-terminated buffer. Refuses
 * files larger than max_bytes. */
int read_file(const char *path, size_t max_bytes, char **out, size_t *len, moe_err *err);

#endif
