/*
 * st_stream.h - write a safetensors file tensor by tensor, without holding
 * the tensors in memory (st_write takes them all at once; a
 * random multi-GB model is produced chunk by chunk instead). The header is
 * known up front from names, dtypes and shapes, so it is written first and
 * the data appended in the same order. Written to a temporary file made
 * exclusively beside PATH (base/atomic.h), then fsync'd and renamed, so a
 * failed run never leaves a half-written PATH and a planted symlink is never
 * written through.
 */
#ifndef MOE_FORMATS_ST_STREAM_H
#define MOE_FORMATS_ST_STREAM_H

#include <stdint.h>
#include <stdio.h>

#include "base/atomic.h"
#include "formats/safetensors.h"

typedef struct st_stream {
    atomic_file out;          /* the temporary file, its stream and the target */
    const st_write_tensor *t; /* [n] the layout (data fields unused) */
    int n;
    int cur;                  /* tensor being written */
    uint64_t cur_left;        /* its bytes still to come */
    uint64_t total;           /* data bytes in all */
} st_stream;

/* Write the header for tensors t[0..n) (t must outlive the stream). */
int sts_begin(st_stream *w, const char *path, const st_write_tensor *t, int n,
              const char *metadata_json, moe_err *err);
/* Append bytes of the current tensor(s), in order. */
int sts_write(st_stream *w, const void *data, size_t nbytes, moe_err *err);
/* All bytes written: fsync and move into place. */
int sts_finish(st_stream *w, moe_err *err);
/* Give up: close and remove the temporary file. */
void sts_abort(st_stream *w);

#endif
