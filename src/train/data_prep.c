/*
 * data_prep.c - moe_data_prepare (data.h): text files -> documents -> token ids
 * -> train.bin / val.bin shards + meta.json.
 *
 * Files are memory-mapped and cut into documents (blank-line separated, or
 * one per file); documents are tokenized in batches of ~8 MiB spread over a
 * thread pool (a loaded tokenizer is read-only) and written in input order,
 * so the output does not depend on the thread count. Each document goes to
 * train or val by a hash of (seed, domain, file, document index): adding or
 * removing a file does not move the documents of the others. A document
 * over 8 MiB is tokenized in pieces cut after a newline (text without
 * newlines: at a character boundary), which keeps memory bounded.
 *
 * Output files are written under temporary names made exclusively
 * (base/atomic.h: a planted symlink is never followed) and fsynced; only
 * when all are complete is the set moved into place: meta.json is removed
 * first, then train.bin, val.bin and documents.jsonl are renamed, and
 * meta.json is renamed last, so a directory holding a meta.json holds the
 * shards it describes (during the swap it briefly has no meta.json).
 */
#include "train/data.h"
#include "base/atomic.h"
#include "base/err.h"
#include "base/pool.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BATCH_BYTES ((size_t)8 << 20) /* text tokenized per parallel batch */
#define BATCH_JOBS 8192               /* documents (or pieces) per batch */
#define PIECE_MAX ((size_t)8 << 20)   /* longest text given to moe_tokenize at once */
#define OUT_BUF 65536                 /* bytes buffered per shard before a write */

enum { TRAIN = 0, VAL = 1 };
static const char *const SPLIT_NAME[2] = {"train", "val"};

/* ------------------------------------------------------------ shard out */

typedef struct shard_out {
    atomic_file af;         /* the temporary file (af.f its stream) and the target */
    FILE *f;                /* af.f while open */
    int dtype;
    uint64_t data_off;
    uint64_t n;             /* tokens written */
    uint64_t *start, *end;  /* [n_domains] token ranges */
    unsigned char buf[OUT_BUF];
    size_t nb;
} shard_out;

static void wr32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static void wr64(unsigned char *p, uint64_t v) {
    wr32(p, (uint32_t)v);
    wr32(p + 4, (uint32_t)(v >> 32));
}

static int shard_flush(shard_out *w, moe_err *err) {
    if (w->nb && fwrite(w->buf, 1, w->nb, w->f) != w->nb)
        return moe_fail(err, "%s: write failed: %s", w->af.tmp, strerror(errno));
    w->nb = 0;
    return 0;
}

static int shard_put(shard_out *w, const int32_t *ids, size_t n, moe_err *err) {
    for (size_t i = 0; i < n; i++) {
        if (w->nb + 4 > OUT_BUF && shard_flush(w, err) != 0) return -1;
        if (w->dtype == 2) {
            w->buf[w->nb++] = (unsigned char)ids[i];
            w->buf[w->nb++] = (unsigned char)(ids[i] >> 8);
        } else {
            wr32(w->buf + w->nb, (uint32_t)ids[i]);
            w->nb += 4;
        }
    }
    w->n += n;
    return 0;
}

/* Header and domain table (data.h), written at the start and again at the end. */
static int shard_header(shard_out *w, uint32_t vocab, int32_t eos, const moe_data_prep_opts *o,
                        moe_err *err) {
    size_t len = (size_t)w->data_off;
    unsigned char *h = calloc(1, len);
    if (!h) return moe_fail(err, "%s: out of memory", w->af.tmp);
    memcpy(h, DATA_MAGIC, 8);
    wr32(h + 8, DATA_VERSION);
    wr32(h + 12, (uint32_t)w->dtype);
    wr64(h + 16, w->n);
    wr32(h + 24, vocab);
    wr32(h + 28, (uint32_t)o->n_domains);
    wr64(h + 32, w->data_off);
    wr32(h + 40, eos < 0 ? UINT32_MAX : (uint32_t)eos);
    for (int d = 0; d < o->n_domains; d++) {
        unsigned char *e = h + DATA_HEADER_BYTES + (size_t)d * DATA_DOMAIN_BYTES;
        memcpy(e, o->domain[d].name, strlen(o->domain[d].name));
        wr64(e + 32, w->start[d]);
        wr64(e + 40, w->end[d]);
    }
    int rc = 0;
    if (fseek(w->f, 0, SEEK_SET) != 0 || fwrite(h, 1, len, w->f) != len)
        rc = moe_fail(err, "%s: write failed: %s", w->af.tmp, strerror(errno));
    free(h);
    return rc;
}

static int shard_open(shard_out *w, const char *dir, const char *name, int dtype, int n_domains,
                      moe_err *err) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    w->dtype = dtype;
    uint64_t table = DATA_HEADER_BYTES + (uint64_t)n_domains * DATA_DOMAIN_BYTES;
    w->data_off = (table + 63) / 64 * 64;
    w->start = calloc((size_t)n_domains, sizeof *w->start);
    w->end = calloc((size_t)n_domains, sizeof *w->end);
    if (!w->start || !w->end) return moe_fail(err, "%s: out of memory", path);
    if (atomic_open(&w->af, path, err) != 0) return -1;
    if (atomic_stream(&w->af, err) != 0) return -1;
    w->f = w->af.f;
    if (fseek(w->f, (long)w->data_off, SEEK_SET) != 0)
        return moe_fail(err, "%s: seek failed: %s", w->af.tmp, strerror(errno));
    return 0;
}

static void shard_discard(shard_out *w) {
    atomic_abort(&w->af); /* removes the temporary file unless it was renamed */
    w->f = NULL;
    free(w->start);
    free(w->end);
    w->start = w->end = NULL;
}

/* ---------------------------------------------------------- documents */

static int blank_line(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!strchr(" \t\r\f\v", s[i]) || s[i] == 0) return 0;
    return 1;
}

/* The next document at or after *pos: [*ds, *de). 0 when none is left. */
static int next_doc(const char *s, size_t n, moe_data_docs mode, size_t *pos, size_t *ds, size_t *de) {
    if (mode == MOE_DATA_DOCS_FILE) {
        if (*pos >= n) return 0;
        *ds = *pos;
        *de = *pos = n;
        return 1;
    }
    size_t p = *pos, e;
    for (;; p = e + 1) { /* skip blank lines */
        if (p >= n) {
            *pos = n;
            return 0;
        }
        const char *nl = memchr(s + p, '\n', n - p);
        e = nl ? (size_t)(nl - s) : n;
        if (!blank_line(s + p, e - p)) break;
    }
    *ds = p;
    size_t last = e;
    for (p = e + 1; p < n; p = e + 1) { /* take lines up to the next blank one */
        const char *nl = memchr(s + p, '\n', n - p);
        e = nl ? (size_t)(nl - s) : n;
        if (blank_line(s + p, e - p)) break;
        last = e;
    }
    if (last > *ds && s[last - 1] == '\r') last--;
    *de = last;
    *pos = p < n ? p : n;
    return 1;
}

/* Where to end a piece of a long document: after the last newline in
 * s[0..max), else at the last character boundary. */
static size_t piece_cut(const char *s, size_t max) {
    for (size_t i = max; i > max / 2; i--)
        if (s[i - 1] == '\n') return i;
    size_t i = max;
    while (i > 1 && ((unsigned char)s[i] & 0xC0) == 0x80) i--;
    return i;
}

/* ------------------------------------------------------------- batches */

typedef struct job {
    size_t off, len;      /* text in the mapped file */
    int last;             /* 1: the last piece of its document */
    uint64_t doc;         /* document index in its file */
    size_t doc_off, doc_len;
    int32_t *ids;         /* moe_tokenize's result */
    int n_ids;
    int rc;
    moe_err err;
} job;

typedef struct prep {
    const moe_data_prep_opts *o;
    moe_tokenizer *tok;
    uint32_t vocab;
    int32_t eos;
    pool *pool;
    shard_out out[2];
    FILE *docs;            /* documents.jsonl's stream (docs_af.f), or NULL */
    atomic_file docs_af;
    atomic_file meta_af;   /* meta.json */
    const char *text;      /* the mapped file being read */
    job *job;
    int n_jobs;
    moe_data_prep_progress p;
    double t0;
    /* per file of the current domain */
    int64_t file_docs, file_tokens;
    /* the last document written, so the end can move it to val */
    int last_split;
    uint64_t last_start, last_len;
    int last_domain;
    char *last_line;       /* its documents.jsonl line (malloc'd) */
    const char *last_file;
    size_t last_off, last_bytes;
    int have_last;         /* a document was written */
    int line_pending;      /* last_line is not in documents.jsonl yet */
} prep;

static void tokenize_jobs(void *ctx, int64_t i0, int64_t i1, int tid) {
    prep *P = ctx;
    for (int64_t i = i0; i < i1; i++) {
        job *j = &P->job[i];
        j->rc = moe_tokenize(P->tok, P->text + j->off, j->len, 0, &j->ids, &j->n_ids, &j->err);
    }
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* An exact integer rule (no rounding of h), so a reimplementation in any
 * language draws the same split: val iff h < floor(val_frac * 2^64). */
static int split_of(const moe_data_prep_opts *o, int k, int i, uint64_t j) {
    if (o->val_frac >= 1) return VAL;
    uint64_t x = o->seed ^ ((uint64_t)k << 48) ^ ((uint64_t)i << 32) ^ j;
    uint64_t h = rng_splitmix64(&x);
    return h < (uint64_t)(o->val_frac * 18446744073709551616.0) ? VAL : TRAIN;
}

/* The documents.jsonl line of the last document written. */
static int make_last_line(prep *P, moe_err *err) {
    cJSON *j = cJSON_CreateObject();
    free(P->last_line);
    P->last_line = NULL;
    if (j && cJSON_AddStringToObject(j, "file", P->last_file) &&
        cJSON_AddNumberToObject(j, "offset", (double)P->last_off) &&
        cJSON_AddNumberToObject(j, "bytes", (double)P->last_bytes) &&
        cJSON_AddStringToObject(j, "domain", P->o->domain[P->last_domain].name) &&
        cJSON_AddStringToObject(j, "split", SPLIT_NAME[P->last_split]) &&
        cJSON_AddNumberToObject(j, "start", (double)P->last_start) &&
        cJSON_AddNumberToObject(j, "tokens", (double)P->last_len))
        P->last_line = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return P->last_line ? 0 : moe_fail(err, "%s: out of memory", P->docs_af.tmp);
}

/* documents.jsonl: the line of the previous document goes out once the
 * next one exists (the last one may still move to val). */
static int flush_last_line(prep *P, moe_err *err) {
    if (!P->docs || !P->line_pending) return 0;
    if (fputs(P->last_line, P->docs) == EOF || fputc('\n', P->docs) == EOF)
        return moe_fail(err, "%s: write failed", P->docs_af.tmp);
    P->line_pending = 0;
    return 0;
}

/* Write the finished batch in order: each piece's ids, EOS after a document. */
static int write_jobs(prep *P, int k, int i, const char *file, moe_err *err) {
    const moe_data_prep_opts *o = P->o;
    for (int q = 0; q < P->n_jobs; q++) {
        job *j = &P->job[q];
        if (j->rc != 0) {
            moe_fail(err, "%s: document %llu: %s", file, (unsigned long long)j->doc, j->err.msg);
            return -1;
        }
        int s = split_of(o, k, i, j->doc);
        shard_out *w = &P->out[s];
        if (j->off == j->doc_off) { /* first piece: the document starts here */
            if (flush_last_line(P, err) != 0) return -1;
            P->last_split = s;
            P->last_start = w->n;
        }
        for (int t = 0; t < j->n_ids; t++)
            if (j->ids[t] < 0 || (uint32_t)j->ids[t] >= P->vocab)
                return moe_fail(err, "%s: document %llu: id %d out of the vocab (%u)", file,
                                (unsigned long long)j->doc, j->ids[t], P->vocab);
        if (shard_put(w, j->ids, (size_t)j->n_ids, err) != 0) return -1;
        P->file_tokens += j->n_ids;
        P->p.tokens[s] += j->n_ids;
        free(j->ids);
        j->ids = NULL;
        if (!j->last) continue;
        if (shard_put(w, &P->eos, 1, err) != 0) return -1;
        P->file_tokens++;
        P->p.tokens[s]++;
        P->p.docs[s]++;
        P->file_docs++;
        P->last_len = w->n - P->last_start;
        P->last_domain = k;
        P->last_file = file;
        P->last_off = j->doc_off;
        P->last_bytes = j->doc_len;
        P->have_last = 1;
        if (P->docs && make_last_line(P, err) != 0) return -1;
        P->line_pending = P->docs != NULL;
    }
    return 0;
}

static int run_batch(prep *P, int k, int i, const char *file, moe_err *err) {
    if (P->n_jobs == 0) return 0;
    pool_for(P->pool, P->n_jobs, 1, tokenize_jobs, P);
    int rc = write_jobs(P, k, i, file, err);
    for (int q = 0; q < P->n_jobs; q++) free(P->job[q].ids);
    P->n_jobs = 0;
    return rc;
}

/* -------------------------------------------------------- the last doc */

/* No document went to val though val_frac > 0: move the last one there
 * (it is the tail of train.bin, in the last domain that had documents). */
static int move_last_to_val(prep *P, moe_err *err) {
    shard_out *tr = &P->out[TRAIN], *va = &P->out[VAL];
    uint64_t len = P->last_len, bytes = len * (uint64_t)tr->dtype;
    if (shard_flush(tr, err) != 0 || shard_flush(va, err) != 0) return -1;
    if (fflush(tr->f) != 0 || fseek(tr->f, (long)(tr->data_off + P->last_start * (uint64_t)tr->dtype), SEEK_SET) != 0)
        return moe_fail(err, "%s: seek failed: %s", tr->af.tmp, strerror(errno));
    unsigned char buf[OUT_BUF];
    for (uint64_t done = 0; done < bytes;) {
        size_t n = bytes - done < sizeof buf ? (size_t)(bytes - done) : sizeof buf;
        if (fread(buf, 1, n, tr->f) != n || fwrite(buf, 1, n, va->f) != n)
            return moe_fail(err, "%s: moving the last document to val failed", tr->af.tmp);
        done += n;
    }
    if (fflush(tr->f) != 0 || ftruncate(fileno(tr->f), (off_t)(tr->data_off + P->last_start * (uint64_t)tr->dtype)) != 0)
        return moe_fail(err, "%s: truncate failed: %s", tr->af.tmp, strerror(errno));
    tr->n -= len;
    uint64_t at = va->n;
    va->n += len;
    for (int d = P->last_domain; d < P->o->n_domains; d++) {
        if (d > P->last_domain) tr->start[d] -= len, va->start[d] += len;
        tr->end[d] -= len;
        va->end[d] += len;
    }
    P->p.docs[TRAIN]--, P->p.docs[VAL]++;
    P->p.tokens[TRAIN] -= (int64_t)len, P->p.tokens[VAL] += (int64_t)len;
    P->last_split = VAL;
    P->last_start = at;
    return P->docs ? make_last_line(P, err) : 0;
}

/* ------------------------------------------------------------- meta.json */

typedef struct file_stat {
    char *path;          /* absolute */
    int64_t bytes, docs, tokens;
} file_stat;

static cJSON *range_json(const shard_out *w, int d) {
    cJSON *r = cJSON_CreateObject();
    if (r) {
        cJSON_AddNumberToObject(r, "start", (double)w->start[d]);
        cJSON_AddNumberToObject(r, "end", (double)w->end[d]);
    }
    return r;
}

static int write_meta(prep *P, file_stat **fs, const char *tok_path, moe_err *err) {
    const moe_data_prep_opts *o = P->o;
    cJSON *m = cJSON_CreateObject();
    char rule[512];
    snprintf(rule, sizeof rule,
             "document j of file i of domain k goes to val iff rng_splitmix64(seed ^ k<<48 ^ i<<32 ^ j) "
             "< floor(val_frac * 2^64) (all when val_frac = 1); if none did and val_frac > 0, the "
             "last document does");
    cJSON *split = cJSON_CreateObject(), *doms = cJSON_CreateArray();
    if (!m || !split || !doms) goto oom;
    cJSON_AddStringToObject(m, "format", "moe-tokens");
    cJSON_AddNumberToObject(m, "version", DATA_VERSION);
    cJSON_AddStringToObject(m, "tokenizer", tok_path);
    cJSON_AddNumberToObject(m, "vocab", P->vocab);
    cJSON_AddNumberToObject(m, "eos_id", P->eos);
    cJSON_AddStringToObject(m, "dtype", P->out[0].dtype == 2 ? "uint16" : "uint32");
    cJSON_AddStringToObject(m, "document_split", o->docs == MOE_DATA_DOCS_FILE ? "file" : "blank-line");
    cJSON_AddItemToObject(m, "split", split);
    cJSON_AddStringToObject(split, "rule", rule);
    cJSON_AddNumberToObject(split, "val_frac", o->val_frac);
    cJSON_AddNumberToObject(split, "seed", (double)o->seed);
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)o->seed);
    cJSON_AddStringToObject(split, "seed_str", seed); /* exact past 2^53 */
    for (int s = 0; s < 2; s++) {
        cJSON *x = cJSON_CreateObject();
        if (!x) goto oom;
        cJSON_AddItemToObject(m, SPLIT_NAME[s], x);
        cJSON_AddStringToObject(x, "file", s == TRAIN ? "train.bin" : "val.bin");
        cJSON_AddNumberToObject(x, "tokens", (double)P->p.tokens[s]);
        cJSON_AddNumberToObject(x, "documents", (double)P->p.docs[s]);
    }
    cJSON_AddItemToObject(m, "domains", doms);
    for (int d = 0; d < o->n_domains; d++) {
        cJSON *dj = cJSON_CreateObject(), *files = cJSON_CreateArray();
        if (!dj || !files) {
            cJSON_Delete(dj);
            cJSON_Delete(files);
            goto oom;
        }
        cJSON_AddItemToArray(doms, dj);
        cJSON_AddStringToObject(dj, "name", o->domain[d].name);
        cJSON_AddItemToObject(dj, "train", range_json(&P->out[TRAIN], d));
        cJSON_AddItemToObject(dj, "val", range_json(&P->out[VAL], d));
        cJSON_AddItemToObject(dj, "files", files);
        for (int i = 0; i < o->domain[d].n_files; i++) {
            cJSON *f = cJSON_CreateObject();
            if (!f) goto oom;
            cJSON_AddItemToArray(files, f);
            cJSON_AddStringToObject(f, "path", fs[d][i].path);
            cJSON_AddNumberToObject(f, "bytes", (double)fs[d][i].bytes);
            cJSON_AddNumberToObject(f, "documents", (double)fs[d][i].docs);
            cJSON_AddNumberToObject(f, "tokens", (double)fs[d][i].tokens);
        }
    }
    if (P->docs) cJSON_AddStringToObject(m, "documents_file", "documents.jsonl");
    cJSON_AddNumberToObject(m, "bytes", (double)P->p.bytes_total);
    char *txt = cJSON_Print(m);
    cJSON_Delete(m);
    m = NULL;
    if (!txt) goto oom;
    char path[4200];
    snprintf(path, sizeof path, "%s/meta.json", o->out_dir);
    int rc = atomic_open(&P->meta_af, path, err);
    if (rc == 0) rc = atomic_put(&P->meta_af, txt, strlen(txt), err);
    if (rc == 0) rc = atomic_put(&P->meta_af, "\n", 1, err);
    if (rc == 0) rc = atomic_finish(&P->meta_af, err);
    free(txt);
    return rc;
oom:
    cJSON_Delete(m);
    cJSON_Delete(split);
    cJSON_Delete(doms);
    return moe_fail(err, "%s: out of memory writing meta.json", o->out_dir);
}

/* ------------------------------------------------------------ checking */

static int check_name(const char *s) {
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > DATA_NAME_MAX) return -1;
    for (size_t i = 0; i < n; i++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-", s[i])) return -1;
    return 0;
}

static int check_opts(const moe_data_prep_opts *o, moe_err *err) {
    if (!o || !o->tokenizer || !o->out_dir) return moe_fail(err, "moe_data_prepare: no tokenizer or output directory");
    if (o->n_threads < 0 || o->n_threads > MOE_MAX_THREADS)
        return moe_fail(err, "moe_data_prepare: %d threads (expected 0..%d)", o->n_threads, MOE_MAX_THREADS);
    if (o->n_domains < 1 || o->n_domains > DATA_MAX_DOMAINS || !o->domain)
        return moe_fail(err, "moe_data_prepare: %d domains (expected 1..%d)", o->n_domains, DATA_MAX_DOMAINS);
    if (!(o->val_frac >= 0 && o->val_frac <= 1))
        return moe_fail(err, "moe_data_prepare: val_frac %g is not in [0, 1]", o->val_frac);
    if (o->docs != MOE_DATA_DOCS_BLANK && o->docs != MOE_DATA_DOCS_FILE)
        return moe_fail(err, "moe_data_prepare: unknown document mode %d", (int)o->docs);
    for (int d = 0; d < o->n_domains; d++) {
        const moe_data_domain_spec *ds = &o->domain[d];
        if (check_name(ds->name) != 0)
            return moe_fail(err, "domain name \"%.40s\": use 1..%d of A-Z a-z 0-9 _ . -",
                            ds->name ? ds->name : "", DATA_NAME_MAX);
        for (int e = 0; e < d; e++)
            if (!strcmp(o->domain[e].name, ds->name))
                return moe_fail(err, "domain \"%s\" given twice", ds->name);
        if (ds->n_files < 1 || ds->n_files > 1 << 16 || !ds->files)
            return moe_fail(err, "domain \"%s\": %d files (expected 1..65536)", ds->name, ds->n_files);
    }
    return 0;
}

/* ----------------------------------------------------------- the driver */

static int do_file(prep *P, int k, int i, file_stat *fs, moe_err *err) {
    const char *path = P->o->domain[k].files[i];
    mapped_file mf;
    if (mapped_open(&mf, path, err) != 0) return -1;
    if (mf.data) madvise((void *)mf.data, mf.size, MADV_SEQUENTIAL);
    P->text = (const char *)mf.data;
    P->file_docs = P->file_tokens = 0;
    int64_t base = P->p.bytes_done;
    size_t pos = 0, ds, de, batch = 0;
    uint64_t doc = 0;
    int rc = 0;
    while (rc == 0 && next_doc(P->text, mf.size, P->o->docs, &pos, &ds, &de)) {
        for (size_t off = ds; off < de && rc == 0;) {
            size_t max = P->o->piece_bytes ? P->o->piece_bytes : PIECE_MAX;
            size_t len = de - off > max ? piece_cut(P->text + off, max) : de - off;
            P->job[P->n_jobs++] = (job){.off = off, .len = len, .last = off + len == de, .doc = doc,
                                        .doc_off = ds, .doc_len = de - ds};
            off += len;
            batch += len;
            if (P->n_jobs == BATCH_JOBS || batch >= BATCH_BYTES) {
                rc = run_batch(P, k, i, fs->path, err);
                P->p.bytes_done = base + (int64_t)off;
                batch = 0;
                P->p.seconds = now_s() - P->t0;
                if (rc == 0 && P->o->progress) P->o->progress(P->o->user, &P->p);
            }
        }
        doc++;
    }
    if (rc == 0) rc = run_batch(P, k, i, fs->path, err);
    P->p.bytes_done = base + (int64_t)mf.size;
    fs->docs = P->file_docs;
    fs->tokens = P->file_tokens;
    mapped_close(&mf);
    P->text = NULL;
    return rc;
}

int moe_data_prepare(const moe_data_prep_opts *o, moe_data_prep_progress *result, moe_err *err) {
    if (check_opts(o, err) != 0) return -1;
    prep P = {.o = o, .t0 = now_s(), .last_domain = 0};
    P.out[TRAIN].af.fd = P.out[VAL].af.fd = P.docs_af.fd = P.meta_af.fd = -1;
    file_stat **fs = calloc((size_t)o->n_domains, sizeof *fs);
    char tok_path[PATH_MAX];
    int rc = fs ? 0 : moe_fail(err, "moe_data_prepare: out of memory");
    for (int d = 0; d < o->n_domains && rc == 0; d++) {
        fs[d] = calloc((size_t)o->domain[d].n_files, sizeof **fs);
        if (!fs[d]) rc = moe_fail(err, "moe_data_prepare: out of memory");
        for (int i = 0; i < o->domain[d].n_files && rc == 0; i++) {
            const char *f = o->domain[d].files[i];
            struct stat st;
            if (!f || stat(f, &st) != 0) rc = moe_fail(err, "%s: %s", f ? f : "(null)", f ? strerror(errno) : "no name");
            else if (!S_ISREG(st.st_mode)) rc = moe_fail(err, "%s: not a regular file", f);
            else {
                char abs[PATH_MAX];
                fs[d][i].path = strdup(realpath(f, abs) ? abs : f);
                fs[d][i].bytes = st.st_size;
                P.p.bytes_total += st.st_size;
                if (!fs[d][i].path) rc = moe_fail(err, "moe_data_prepare: out of memory");
            }
        }
    }
    if (rc == 0 && moe_tokenizer_load(&P.tok, o->tokenizer, err) != 0)
        rc = moe_fail_prefix(err, "cannot load the tokenizer");
    if (rc == 0) {
        struct stat st;
        char tj[PATH_MAX];
        snprintf(tj, sizeof tj, "%s%s", o->tokenizer,
                 stat(o->tokenizer, &st) == 0 && S_ISDIR(st.st_mode) ? "/tokenizer.json" : "");
        if (!realpath(tj, tok_path)) snprintf(tok_path, sizeof tok_path, "%s", tj);
        P.vocab = (uint32_t)moe_tokenizer_vocab(P.tok);
        P.eos = moe_tokenizer_eos(P.tok);
        if (P.eos < 0)
            rc = moe_fail(err, "%s: the tokenizer has no EOS token (set eos_token in "
                          "tokenizer_config.json)", o->tokenizer);
    }
    if (rc == 0) {
        struct stat st;
        if (stat(o->out_dir, &st) == 0) {
            if (!S_ISDIR(st.st_mode)) rc = moe_fail(err, "%s: exists and is not a directory", o->out_dir);
        } else if (mkdir(o->out_dir, 0777) != 0) {
            rc = moe_fail(err, "%s: cannot create directory: %s", o->out_dir, strerror(errno));
        }
    }
    int dtype = P.vocab <= 65536 ? 2 : 4;
    if (rc == 0) rc = shard_open(&P.out[TRAIN], o->out_dir, "train.bin", dtype, o->n_domains, err);
    if (rc == 0) rc = shard_open(&P.out[VAL], o->out_dir, "val.bin", dtype, o->n_domains, err);
    if (rc == 0 && o->list_docs) {
        char path[4200];
        snprintf(path, sizeof path, "%s/documents.jsonl", o->out_dir);
        rc = atomic_open(&P.docs_af, path, err);
        if (rc == 0) rc = atomic_stream(&P.docs_af, err);
        if (rc == 0) P.docs = P.docs_af.f;
    }
    if (rc == 0) {
        P.job = calloc(BATCH_JOBS, sizeof *P.job);
        P.pool = pool_create(o->n_threads);
        if (!P.job || !P.pool) rc = moe_fail(err, "moe_data_prepare: out of memory (threads)");
    }
    for (int k = 0; k < o->n_domains && rc == 0; k++) {
        for (int s = 0; s < 2; s++) P.out[s].start[k] = P.out[s].n;
        for (int i = 0; i < o->domain[k].n_files && rc == 0; i++) rc = do_file(&P, k, i, &fs[k][i], err);
        for (int s = 0; s < 2; s++) P.out[s].end[k] = P.out[s].n;
    }
    if (rc == 0 && o->val_frac > 0 && P.p.docs[VAL] == 0 && P.p.docs[TRAIN] >= 2)
        rc = move_last_to_val(&P, err);
    if (rc == 0) rc = flush_last_line(&P, err);
    for (int s = 0; s < 2 && rc == 0; s++) {
        shard_out *w = &P.out[s];
        rc = shard_flush(w, err);
        if (rc == 0) rc = shard_header(w, P.vocab, P.eos, o, err);
        if (rc == 0) rc = atomic_finish(&w->af, err); /* flushed, fsynced, closed */
        w->f = NULL;
    }
    if (rc == 0 && P.docs) rc = atomic_finish(&P.docs_af, err);
    P.docs = NULL;
    if (rc == 0) rc = write_meta(&P, fs, tok_path, err);
    if (rc == 0) { /* every file complete: move the set into place, meta.json last */
        char meta[4200];
        snprintf(meta, sizeof meta, "%s/meta.json", o->out_dir);
        if (unlink(meta) != 0 && errno != ENOENT)
            rc = moe_fail(err, "%s: cannot remove the old one: %s", meta, strerror(errno));
        if (rc == 0) rc = atomic_rename(&P.out[TRAIN].af, err);
        if (rc == 0) rc = atomic_rename(&P.out[VAL].af, err);
        if (rc == 0 && o->list_docs) rc = atomic_rename(&P.docs_af, err);
        if (rc == 0) rc = atomic_rename(&P.meta_af, err);
        if (rc == 0) rc = atomic_sync_dir(meta, err);
    }
    P.p.seconds = now_s() - P.t0;
    P.p.done = 1;
    if (rc == 0 && o->progress) o->progress(o->user, &P.p);
    if (result) *result = P.p;
    /* leave no partial output behind (no-ops for files renamed into place) */
    for (int s = 0; s < 2; s++) shard_discard(&P.out[s]);
    atomic_abort(&P.docs_af);
    atomic_abort(&P.meta_af);
    pool_free(P.pool);
    free(P.job);
    free(P.last_line);
    moe_tokenizer_free(P.tok);
    for (int d = 0; fs && d < o->n_domains; d++) {
        for (int i = 0; fs[d] && i < o->domain[d].n_files; i++) free(fs[d][i].path);
        free(fs[d]);
    }
    free(fs);
    return rc;
}
