/*
 * data.h - training data as token shards: the files `moe data` writes
 * (moe_data_prepare of include/moe_data.h, data_prep.c) and the reader the trainer samples from
 * (data_open ..., data.c).
 *
 * A prepared directory holds train.bin, val.bin (two shards) and meta.json
 * (inputs, tokenizer, split rule, token counts, domains, written by
 * moe_data_prepare), optionally documents.jsonl (one line per document).
 *
 * Shard format, version 1. All integers little-endian.
 *   offset  bytes  field
 *   0       8      magic "MOETOKS\0"
 *   8       4      version (1)
 *   12      4      dtype: bytes per token id, 2 (uint16) or 4 (uint32);
 *                  moe_data_prepare writes 2 when the vocabulary fits (<= 65536)
 *   16      8      n_tokens
 *   24      4      vocab: every id is < vocab (1..2^31-1: ids are int32_t)
 *   28      4      n_domains, 1..DATA_MAX_DOMAINS
 *   32      8      data_offset: first token byte (a multiple of 64)
 *   40      4      eos_id (0xFFFFFFFF: none)
 *   44      20     reserved (zero)
 *   64      48 * n_domains: the domain table, each entry
 *                    name[32] (UTF-8, NUL-padded, NUL-terminated),
 *                    start u64, end u64: its tokens are [start, end);
 *                  ranges are in order, contiguous, and cover [0, n_tokens)
 *   data_offset    n_tokens * dtype bytes: the ids
 * The file is exactly data_offset + n_tokens * dtype bytes long. Documents
 * are concatenated, each followed by eos_id.
 */
#ifndef MOE_TRAIN_DATA_H
#define MOE_TRAIN_DATA_H

#include <stdint.h>

#include "base/mapfile.h"
#include "base/rng.h"
#include "moe.h"
#include "moe_data.h"

#define DATA_MAGIC "MOETOKS"     /* + NUL: 8 bytes */
#define DATA_VERSION 1
#define DATA_HEADER_BYTES 64
#define DATA_DOMAIN_BYTES 48
#define DATA_MAX_DOMAINS 1024
#define DATA_NAME_MAX 31         /* bytes in a domain name */

/* ---------------------------------------------------------------- reader */

typedef struct data_domain {
    char name[DATA_NAME_MAX + 1];
    uint64_t start, end; /* token range [start, end) */
} data_domain;

typedef struct data_shard {
    mapped_file map;
    const unsigned char *tok; /* the ids: n_tokens * dtype bytes, little-endian */
    uint64_t n_tokens;
    uint32_t vocab;
    int32_t eos_id;           /* -1: none */
    int dtype;                /* 2 or 4 */
    int n_domains;
    data_domain *domain;      /* [n_domains] */
    uint32_t max_id;          /* the largest id (0 when empty) */
    uint64_t max_at;          /* its first position */
    char path[256];           /* for messages */
} data_shard;

/* Map a shard and check it whole: magic, version, dtype, sizes against the
 * file size (truncated or padded files are refused), the domain table, and
 * every id < vocab (one pass; a bad id names its position). */
int data_open(data_shard *s, const char *path, moe_err *err);
void data_close(data_shard *s);

/* Every id of s < vocab (a model's vocabulary), from the pass data_open made:
 * else an error naming the shard, the position of its largest id and the id. */
int data_check_vocab(const data_shard *s, int vocab, moe_err *err);

static inline uint64_t data_n_tokens(const data_shard *s) { return s->n_tokens; }

/* Id at position i (i < n_tokens). */
static inline int32_t data_token(const data_shard *s, uint64_t i) {
    const unsigned char *p = s->tok + i * (uint64_t)s->dtype;
    return s->dtype == 2 ? (int32_t)(p[0] | p[1] << 8)
                         : (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                                     (uint32_t)p[3] << 24);
}

/* Copy ids [start, start + n) into out[n]. */
int data_read(const data_shard *s, uint64_t start, int64_t n, int32_t *out, moe_err *err);

/* A random window of T + 1 tokens (inputs out[0..T), targets out[1..T]):
 * its start is uniform over [0, n_tokens - T - 1], drawn from *r. The same
 * rng state always gives the same window and the same next state, so a run
 * resumed from a saved state (rng_save / rng_restore) continues bit for bit.
 * *start (may be NULL) gets the start. Fails if n_tokens < T + 1. */
int data_random_window(const data_shard *s, rng *r, int T, int32_t *out, uint64_t *start,
                       moe_err *err);
/* B such windows, one after another: out[B][T + 1], starts[B] (may be NULL). */
int data_random_batch(const data_shard *s, rng *r, int B, int T, int32_t *out, uint64_t *starts,
                      moe_err *err);

/* Sequential windows for evaluation: window k is [k T, k T + T + 1), for
 * k < data_n_windows (a last partial window is left out), so every token
 * after the first is a target exactly once. */
uint64_t data_n_windows(const data_shard *s, int T);
int data_window(const data_shard *s, uint64_t k, int T, int32_t *out, moe_err *err);

/* Which sequential window to read as the i-th of n samples of the shard
 * (i < n): floor(i * W / n) with W = data_n_windows(s, T), so n windows
 * spread evenly over the whole shard (n >= W: window i itself, every window
 * in order). `moe data` writes a shard domain by domain, so the first n
 * windows would see only the first domains; these see each domain in
 * proportion to its size. The trainer's validation windows and the routing
 * statistics (moe_route_data_run) both sample with it. */
uint64_t data_spread_window(const data_shard *s, int T, uint64_t i, uint64_t n);

/* Index of the domain holding position pos (binary search), -1 if pos is
 * past the end. */
int data_domain_of(const data_shard *s, uint64_t pos);

/* Unbiased integer in [0, n) from r (n > 0), Lemire's multiply-shift with
 * rejection. */
uint64_t data_rng_below(rng *r, uint64_t n);

/* Preparation (moe data): moe_data_prepare of include/moe_data.h, data_prep.c. */

#endif
