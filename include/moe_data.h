/*
 * moe_data.h - training data for `moe train`: text files, grouped in named
 * domains, tokenized into the token shards DIR/train.bin and DIR/val.bin
 * (their format is documented in src/train/data.h and docs/DATA.md) plus
 * DIR/meta.json. The public entry point behind `moe data`.
 *
 * Same conventions as moe.h: 0 on success, -1 with *err filled on error;
 * nothing here prints or exits.
 */
#ifndef MOE_DATA_H
#define MOE_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "moe.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    MOE_DATA_DOCS_BLANK = 0, /* documents are separated by blank lines */
    MOE_DATA_DOCS_FILE,      /* each file is one document */
} moe_data_docs;

typedef struct moe_data_domain_spec {
    const char *name;          /* [A-Za-z0-9_.-], 1..31 bytes, unique */
    const char *const *files;  /* [n_files] text files */
    int n_files;
} moe_data_domain_spec;

typedef struct moe_data_prep_progress {
    int64_t bytes_done, bytes_total;      /* text read / in all files */
    int64_t docs[2], tokens[2];           /* train, val; tokens include EOS */
    double seconds;
    int done;                             /* 1 in the last call */
} moe_data_prep_progress;

typedef struct moe_data_prep_opts {
    const char *tokenizer;                /* tokenizer.json or a directory with one */
    const char *out_dir;                  /* created if missing (its parent must exist) */
    const moe_data_domain_spec *domain;   /* [n_domains], in shard order */
    int n_domains;
    double val_frac;                      /* [0, 1]: share of documents in val */
    uint64_t seed;                        /* split seed */
    moe_data_docs docs;
    int n_threads;                        /* tokenizing threads, 0 = online CPUs */
    int list_docs;                        /* 1: also write documents.jsonl */
    size_t piece_bytes;                   /* longest text tokenized at once; 0 = 8 MiB */
    void (*progress)(void *user, const moe_data_prep_progress *p);
    void *user;
} moe_data_prep_opts;

/* Tokenize every document (no BOS; EOS after each), send each to train or
 * val by the split rule, and write out_dir/train.bin, val.bin, meta.json
 * (through temporary files renamed at the end). Split rule: document j of
 * file i of domain k goes to val iff
 *     splitmix64(seed ^ (k << 48) ^ (i << 32) ^ j) < floor(val_frac * 2^64)
 * (splitmix64: one step of the generator from that value; every document
 * when val_frac = 1), except that when no document went to val and
 * val_frac > 0, the last one does.
 * *result (may be NULL) gets the final counts. */
int moe_data_prepare(const moe_data_prep_opts *o, moe_data_prep_progress *result, moe_err *err);

#ifdef __cplusplus
}
#endif
#endif
