/*
 * moe_file.h - writing an output file so that a reader sees the old file or
 * the whole new one, never a part, and never writes through a link planted
 * at its name: the bytes go to a fresh temporary file beside the target
 * (PATH.tmp.XXXXXX, created exclusively), which is flushed, fsynced and
 * renamed over PATH, then the directory is fsynced. Every file the library
 * writes goes this way; tools built on it (the moe command) use the same.
 *
 * Same conventions as moe.h: 0 on success, -1 with *err filled.
 */
#ifndef MOE_FILE_H
#define MOE_FILE_H

#include <stddef.h>
#include <stdio.h>

#include "moe.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct moe_file_out moe_file_out;

/* Start replacing path: *stream writes to the temporary file. */
int moe_file_out_open(moe_file_out **out, const char *path, FILE **stream, moe_err *err);
/* Flush, fsync, rename over the target, fsync the directory; frees o (also
 * on failure, when the temporary file is removed). */
int moe_file_out_commit(moe_file_out *o, moe_err *err);
/* Give up: the temporary file is removed, the target untouched; frees o.
 * NULL is ignored. */
void moe_file_out_abort(moe_file_out *o);
/* The whole file in one call. */
int moe_file_write(const char *path, const void *data, size_t n, moe_err *err);
/* A regular file read whole (at most max bytes; FIFOs, devices and
 * directories refused without blocking): *data malloc'd, NUL-terminated. */
int moe_file_read(const char *path, size_t max, char **data, size_t *n, moe_err *err);

#ifdef __cplusplus
}
#endif
#endif
