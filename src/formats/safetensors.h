/*
 * safetensors.h - read (mmap) and write Hugging Face safetensors files.
 *
 * Format: u64 little-endian header length N, then N bytes of JSON
 *   {"__metadata__": {...}, "name": {"dtype": "BF16", "shape": [..],
 *    "data_offsets": [begin, end]}, ...}
 * then the data region; offsets are relative to its start.
 *
 * The reader checks everything against the file before use: header length
 * within the file, JSON well formed, known dtype, shape product * dtype size
 * == end - begin without overflow, offsets inside the data region, no two
 * tensors overlapping, no duplicate names. Any violation is an error naming
 * the file and tensor.
 */
#ifndef MOE_FORMATS_SAFETENSORS_H
#define MOE_FORMATS_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>
#include "moe.h"
#include "base/dtype.h"
#include "base/mapfile.h"

#define ST_MAX_DIMS 8

/* The largest header read or written. A header is parsed into a cJSON tree,
 * which costs up to ~45 bytes of memory per header byte (a 64-byte item plus
 * allocator overhead per value, and a value can be as short as "0,"), so
 * this cap bounds that memory at ~720 MiB. Real headers are far smaller: an
 * entry is ~130 bytes, so 16 MiB holds ~120k tensors, more than a single-file
 * DeepSeek-V3 or Kimi-K2 with per-expert names (~10 MB); Hugging Face shards
 * hold a few thousand each. (The reference reader allows 100 MB.) */
#define ST_MAX_HEADER ((uint64_t)16 << 20)

typedef struct st_tensor {
    char *name;                 /* owned */
    dtype type;
    int n_dims;
    int64_t shape[ST_MAX_DIMS];
    int64_t n_elems;
    const void *data;           /* points into the mapping */
    size_t nbytes;
    int file;                   /* index into st_store.files */
} st_tensor;

typedef struct st_store {
    mapped_file *files;   /* [n_files] */
    char **paths;         /* [n_files], owned */
    int n_files;
    st_tensor *tensors;   /* [n_tensors], sorted by name */
    int n_tensors;
    int weights;          /* 1: files opened with mapped_open_weights */
} st_store;

/* Open one .safetensors file. */
int st_open_file(st_store *s, const char *path, moe_err *err);

/* Open a model directory: model.safetensors, or the shards listed in
 * model.safetensors.index.json (the weight_map must agree with the shards'
 * contents). Tensor names must be unique across shards. */
int st_open_dir(st_store *s, const char *dir, moe_err *err);
/* The same for a model's weights: each file through mapped_open_weights
 * (read into huge pages when it fits in memory, see base/mapfile.h). */
int st_open_dir_weights(st_store *s, const char *dir, moe_err *err);

void st_close(st_store *s);

/* Lookup by exact name; NULL if absent. O(log n). */
const st_tensor *st_find(const st_store *s, const char *name);

/* ---------------------------------------------------------------- writer */

typedef struct st_write_tensor {
    const char *name;
    dtype type;
    int n_dims;
    int64_t shape[ST_MAX_DIMS];
    const void *data;   /* product(shape) elements of `type` */
} st_write_tensor;

/* Write tensors to path atomically (temp file, fsync, rename, fsync dir).
 * metadata_json: NULL or a JSON object of string values for __metadata__. */
int st_write(const char *path, const st_write_tensor *t, int n, const char *metadata_json,
             moe_err *err);

#endif
