/*
 * data.c - reading token shards (format in data.h): open and validate a
 * shard, and draw the windows training and evaluation consume. The shard is
 * memory-mapped; windows are copied out as int32 ids, so the trainer never
 * sees the on-disk dtype. Nothing here allocates after data_open.
 */
#include "train/data.h"
#include "base/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint32_t rd32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const unsigned char *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }

/* The domain table: names NUL-terminated, ranges in order, contiguous,
 * covering [0, n_tokens). */
static int read_domains(data_shard *s, const unsigned char *p, moe_err *err) {
    s->domain = calloc((size_t)s->n_domains, sizeof *s->domain);
    if (!s->domain) return moe_fail(err, "%s: out of memory", s->path);
    uint64_t at = 0;
    for (int d = 0; d < s->n_domains; d++, p += DATA_DOMAIN_BYTES) {
        data_domain *dm = &s->domain[d];
        if (memchr(p, 0, DATA_NAME_MAX + 1) == NULL || p[0] == 0)
            return moe_fail(err, "%s: domain %d: name empty or not NUL-terminated", s->path, d);
        memcpy(dm->name, p, DATA_NAME_MAX + 1);
        dm->start = rd64(p + 32);
        dm->end = rd64(p + 40);
        if (dm->start != at || dm->end < dm->start || dm->end > s->n_tokens)
            return moe_fail(err, "%s: domain %d (%s): range [%llu, %llu) does not follow %llu within "
                            "%llu tokens", s->path, d, dm->name, (unsigned long long)dm->start,
                            (unsigned long long)dm->end, (unsigned long long)at,
                            (unsigned long long)s->n_tokens);
        at = dm->end;
    }
    if (at != s->n_tokens)
        return moe_fail(err, "%s: domains cover %llu of %llu tokens", s->path, (unsigned long long)at,
                        (unsigned long long)s->n_tokens);
    return 0;
}

/* Every id < vocab: the embedding lookup can then trust them. The largest
 * id and its first position are kept for data_check_vocab. */
static int check_ids(data_shard *s, moe_err *err) {
    uint32_t worst = 0;
    uint64_t at = 0;
    if (s->dtype == 2) {
        for (uint64_t i = 0; i < s->n_tokens; i++) {
            uint32_t v = (uint32_t)s->tok[2 * i] | (uint32_t)s->tok[2 * i + 1] << 8;
            if (v > worst) worst = v, at = i;
        }
    } else {
        for (uint64_t i = 0; i < s->n_tokens; i++) {
            uint32_t v = rd32(s->tok + 4 * i);
            if (v > worst) worst = v, at = i;
        }
    }
    s->max_id = worst;
    s->max_at = at;
    if (s->n_tokens && worst >= s->vocab)
        return moe_fail(err, "%s: token %llu is id %u, not below the vocab size %u", s->path,
                        (unsigned long long)at, worst, s->vocab);
    return 0;
}

int data_check_vocab(const data_shard *s, int vocab, moe_err *err) {
    if (s->n_tokens && (vocab <= 0 || s->max_id >= (uint32_t)vocab))
        return moe_fail(err, "%s: token %llu is id %u, not below the model's vocabulary size %d",
                        s->path, (unsigned long long)s->max_at, s->max_id, vocab);
    return 0;
}

int data_open(data_shard *s, const char *path, moe_err *err) {
    memset(s, 0, sizeof *s);
    snprintf(s->path, sizeof s->path, "%.255s", path ? path : "(null)");
    if (!path) return moe_fail(err, "data_open: no path");
    if (mapped_open(&s->map, path, err) != 0) return -1;
    const unsigned char *h = s->map.data;
    size_t size = s->map.size;
    int rc = 0;
    if (size < DATA_HEADER_BYTES) {
        rc = moe_fail(err, "%s: %zu bytes, shorter than the %d-byte header (truncated?)", s->path,
                      size, DATA_HEADER_BYTES);
        goto out;
    }
    if (memcmp(h, DATA_MAGIC, 8) != 0) {
        rc = moe_fail(err, "%s: bad magic (not a moe token shard; expected \"MOETOKS\")", s->path);
        goto out;
    }
    uint32_t version = rd32(h + 8), dtype = rd32(h + 12), n_dom = rd32(h + 28), eos = rd32(h + 40);
    uint64_t n = rd64(h + 16), data_off = rd64(h + 32);
    s->vocab = rd32(h + 24);
    if (version != DATA_VERSION) {
        rc = moe_fail(err, "%s: format version %u (this build reads %d)", s->path, version, DATA_VERSION);
        goto out;
    }
    if (dtype != 2 && dtype != 4) {
        rc = moe_fail(err, "%s: dtype %u bytes per token (expected 2 or 4)", s->path, dtype);
        goto out;
    }
    if (s->vocab == 0 || s->vocab > INT32_MAX || (dtype == 2 && s->vocab > 65536)) {
        rc = moe_fail(err, "%s: vocab %u does not fit %u-byte ids", s->path, s->vocab, dtype);
        goto out;
    }
    if (n_dom < 1 || n_dom > DATA_MAX_DOMAINS) {
        rc = moe_fail(err, "%s: %u domains (expected 1..%d)", s->path, n_dom, DATA_MAX_DOMAINS);
        goto out;
    }
    uint64_t table_end = DATA_HEADER_BYTES + (uint64_t)n_dom * DATA_DOMAIN_BYTES;
    if (data_off % 64 || data_off < table_end || data_off > size) {
        rc = moe_fail(err, "%s: data offset %llu is not a multiple of 64 between the domain table "
                      "end %llu and the file size %zu", s->path, (unsigned long long)data_off,
                      (unsigned long long)table_end, size);
        goto out;
    }
    /* n * dtype cannot overflow once n is below the bytes left. */
    uint64_t room = (size - data_off) / dtype;
    if (n > room) {
        rc = moe_fail(err, "%s: header says %llu tokens but the file holds %llu (truncated)", s->path,
                      (unsigned long long)n, (unsigned long long)room);
        goto out;
    }
    if (data_off + n * dtype != size) {
        rc = moe_fail(err, "%s: %zu bytes, expected %llu for %llu tokens (trailing bytes)", s->path,
                      size, (unsigned long long)(data_off + n * dtype), (unsigned long long)n);
        goto out;
    }
    s->n_tokens = n;
    s->dtype = (int)dtype;
    s->n_domains = (int)n_dom;
    s->eos_id = eos == UINT32_MAX ? -1 : (int32_t)eos;
    s->tok = h + data_off;
    if (eos != UINT32_MAX && eos >= s->vocab) {
        rc = moe_fail(err, "%s: eos id %u is not below the vocab size %u", s->path, eos, s->vocab);
        goto out;
    }
    rc = read_domains(s, h + DATA_HEADER_BYTES, err);
    if (rc == 0) rc = check_ids(s, err);
out:
    if (rc != 0) data_close(s);
    return rc;
}

void data_close(data_shard *s) {
    mapped_close(&s->map);
    free(s->domain);
    s->domain = NULL;
    s->tok = NULL;
    s->n_tokens = 0;
    s->n_domains = 0;
}

int data_read(const data_shard *s, uint64_t start, int64_t n, int32_t *out, moe_err *err) {
    if (n < 0 || start > s->n_tokens || (uint64_t)n > s->n_tokens - start)
        return moe_fail(err, "%s: tokens [%llu, +%lld) are past the end (%llu tokens)", s->path,
                        (unsigned long long)start, (long long)n, (unsigned long long)s->n_tokens);
    if (s->dtype == 2) {
        const unsigned char *p = s->tok + 2 * start;
        for (int64_t i = 0; i < n; i++) out[i] = (int32_t)(p[2 * i] | p[2 * i + 1] << 8);
    } else {
        const unsigned char *p = s->tok + 4 * start;
        for (int64_t i = 0; i < n; i++) out[i] = (int32_t)rd32(p + 4 * i);
    }
    return 0;
}

uint64_t data_rng_below(rng *r, uint64_t n) {
    /* Lemire: the high half of x * n is uniform once the low half is past
     * the (2^64 mod n) values that would bias it. */
    unsigned __int128 m = (unsigned __int128)rng_next(r) * n;
    uint64_t lo = (uint64_t)m;
    if (lo < n) {
        uint64_t t = -n % n;
        while (lo < t) {
            m = (unsigned __int128)rng_next(r) * n;
            lo = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

int data_random_window(const data_shard *s, rng *r, int T, int32_t *out, uint64_t *start,
                       moe_err *err) {
    if (T < 1) return moe_fail(err, "%s: window length T = %d (must be >= 1)", s->path, T);
    if (s->n_tokens < (uint64_t)T + 1)
        return moe_fail(err, "%s: %llu tokens, fewer than one window of T + 1 = %d", s->path,
                        (unsigned long long)s->n_tokens, T + 1);
    uint64_t at = data_rng_below(r, s->n_tokens - (uint64_t)T);
    if (start) *start = at;
    return data_read(s, at, T + 1, out, err);
}

int data_random_batch(const data_shard *s, rng *r, int B, int T, int32_t *out, uint64_t *starts,
                      moe_err *err) {
    if (B < 1) return moe_fail(err, "%s: batch size B = %d (must be >= 1)", s->path, B);
    for (int b = 0; b < B; b++)
        if (data_random_window(s, r, T, out + (size_t)b * ((size_t)T + 1), starts ? &starts[b] : NULL,
                               err) != 0)
            return -1;
    return 0;
}

uint64_t data_n_windows(const data_shard *s, int T) {
    if (T < 1 || s->n_tokens < (uint64_t)T + 1) return 0;
    return (s->n_tokens - 1) / (uint64_t)T;
}

int data_window(const data_shard *s, uint64_t k, int T, int32_t *out, moe_err *err) {
    uint64_t nw = data_n_windows(s, T);
    if (k >= nw)
        return moe_fail(err, "%s: window %llu of length %d is past the last (%llu windows)", s->path,
                        (unsigned long long)k, T, (unsigned long long)nw);
    return data_read(s, k * (uint64_t)T, T + 1, out, err);
}

uint64_t data_spread_window(const data_shard *s, int T, uint64_t i, uint64_t n) {
    uint64_t W = data_n_windows(s, T);
    if (n >= W) return i;
    /* in 128 bits: i * W may pass 2^64 */
    return (uint64_t)((unsigned __int128)i * W / n);
}

int data_domain_of(const data_shard *s, uint64_t pos) {
    if (pos >= s->n_tokens) return -1;
    int lo = 0, hi = s->n_domains - 1;
    while (lo < hi) { /* the last domain whose start <= pos */
        int mid = (lo + hi + 1) / 2;
        if (s->domain[mid].start <= pos) lo = mid;
        else hi = mid - 1;
    }
    /* empty domains share a start with the next one: move to one holding pos */
    while (lo < s->n_domains - 1 && s->domain[lo].end <= pos) lo++;
    return lo;
}
