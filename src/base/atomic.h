/*
 * atomic.h - writing a file so that a reader sees the old file or the whole
 * new one, never a part, and never writing through a link planted by
 * someone else.
 *
 * The bytes go to a fresh temporary file beside the target,
 * PATH.tmp.XXXXXX, made by mkstemp: O_CREAT|O_EXCL under a random name, so
 * an existing file or symlink is never opened, followed or reused.
 * atomic_commit flushes and fsyncs it, renames it over PATH (a rename
 * replaces a symlink at PATH, it does not write through it) and fsyncs the
 * directory, so the new name survives a crash too.
 *
 * A set of files that must change together (data shards and their
 * manifest): atomic_finish each (written and fsynced, still under its
 * temporary name), then atomic_rename each in the order the reader needs
 * (the manifest last), then atomic_sync_dir once.
 */
#ifndef MOE_BASE_ATOMIC_H
#define MOE_BASE_ATOMIC_H

#include <stddef.h>
#include <stdio.h>

#include "moe.h"

typedef struct atomic_file {
    char *path; /* the target (malloc'd) */
    char *tmp;  /* the temporary file (malloc'd), NULL once renamed or removed */
    int fd;     /* its descriptor, -1 once closed */
    FILE *f;    /* a stdio stream on fd (atomic_stream), or NULL */
} atomic_file;

/* Create PATH.tmp.XXXXXX (mode 0644) for writing. */
int atomic_open(atomic_file *a, const char *path, moe_err *err);
/* A read/write stdio stream on the temporary file (closed by finish/abort). */
int atomic_stream(atomic_file *a, moe_err *err);
/* Write n bytes at the current position of the descriptor (not the stream). */
int atomic_put(atomic_file *a, const void *data, size_t n, moe_err *err);
/* Flush, fsync and close the temporary file; it keeps its temporary name. */
int atomic_finish(atomic_file *a, moe_err *err);
/* Rename a finished temporary file over the target. */
int atomic_rename(atomic_file *a, moe_err *err);
/* finish + rename + fsync the directory; on failure the temporary file is
 * removed. */
int atomic_commit(atomic_file *a, moe_err *err);
/* Close and remove the temporary file if it is still there; free. Safe to
 * call after a commit and more than once. */
void atomic_abort(atomic_file *a);
/* fsync the directory holding path, so renames in it are durable. */
int atomic_sync_dir(const char *path, moe_err *err);
/* The whole file in one call. */
int atomic_write(const char *path, const void *data, size_t n, moe_err *err);

#endif
