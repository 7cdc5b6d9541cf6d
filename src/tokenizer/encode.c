/*
 * encode.c - moe_tokenize: text -> ids through the pipeline of
 * tok_internal.h, and the post-processor (what add_special adds).
 *
 * Bytes that are not valid UTF-8 are replaced by U+FFFD first (one per
 * maximal invalid subpart): HF only ever sees Python str, and this is what
 * bytes.decode("utf-8", errors="replace") hands it. Memory is O(len): every
 * buffer is sized by the text, and nothing else grows with it.
 */
#include "tokenizer/tok_internal.h"
#include "base/err.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------- post-processor */

#define POST_MAX 64 /* special ids one processor may add */

static int check_id(const moe_tokenizer *t, const cJSON *v, const char *what, moe_err *err) {
    double d = cJSON_IsNumber(v) ? v->valuedouble : -1;
    if (d < 0 || d >= t->n_ids || d != (double)(int32_t)d)
        return moe_fail(err, "post_processor %s: id %g is not a token (vocab %d)", what, d, t->n_ids);
    return 0;
}

/* Each processor of a Sequence wraps the result of the ones before it: its
 * front ids go ahead of the current prefix, its back ids after the suffix. */
static int post_wrap(moe_tokenizer *t, const int32_t *front, int nf, const int32_t *back, int nb,
                     moe_err *err) {
    if (t->n_prefix + nf > 4 * POST_MAX || t->n_suffix + nb > 4 * POST_MAX)
        return moe_fail(err, "post_processor: too many special tokens");
    int32_t *p = realloc(t->prefix, (size_t)(t->n_prefix + nf + 1) * sizeof *p);
    if (!p) return moe_fail(err, "post_processor: out of memory");
    t->prefix = p;
    memmove(p + nf, p, (size_t)t->n_prefix * sizeof *p);
    if (nf) memcpy(p, front, (size_t)nf * sizeof *p);
    t->n_prefix += nf;
    int32_t *q = realloc(t->suffix, (size_t)(t->n_suffix + nb + 1) * sizeof *q);
    if (!q) return moe_fail(err, "post_processor: out of memory");
    t->suffix = q;
    if (nb) memcpy(q + t->n_suffix, back, (size_t)nb * sizeof *q);
    t->n_suffix += nb;
    return 0;
}

/* TemplateProcessing's "single": the special tokens before $A go in front,
 * those after it at the back. */
static int post_template(moe_tokenizer *t, const cJSON *j, moe_err *err) {
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(j, "single");
    const cJSON *specials = cJSON_GetObjectItemCaseSensitive(j, "special_tokens");
    if (!cJSON_IsArray(single)) return moe_fail(err, "post_processor TemplateProcessing: no \"single\" list");
    int32_t front[POST_MAX], back[POST_MAX];
    int nf = 0, nb = 0, seen_a = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, single) {
        const cJSON *seq = cJSON_GetObjectItemCaseSensitive(it, "Sequence");
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(it, "SpecialToken");
        if (seq) {
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(seq, "id");
            if (seen_a || !cJSON_IsString(id) || strcmp(id->valuestring, "A") != 0)
                return moe_fail(err, "post_processor TemplateProcessing: \"single\" must hold $A once");
            seen_a = 1;
            continue;
        }
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(sp, "id");
        if (!cJSON_IsString(name))
            return moe_fail(err, "post_processor TemplateProcessing: an item is neither Sequence nor SpecialToken");
        const cJSON *def = cJSON_GetObjectItemCaseSensitive(specials, name->valuestring);
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(def, "ids");
        if (!cJSON_IsArray(ids))
            return moe_fail(err, "post_processor TemplateProcessing: special token \"%s\" has no ids",
                            name->valuestring);
        const cJSON *v;
        cJSON_ArrayForEach(v, ids) {
            if (check_id(t, v, "TemplateProcessing", err) != 0) return -1;
            if ((seen_a ? nb : nf) >= POST_MAX)
                return moe_fail(err, "post_processor TemplateProcessing: over %d special ids", POST_MAX);
            if (seen_a) back[nb++] = (int32_t)v->valuedouble;
            else front[nf++] = (int32_t)v->valuedouble;
        }
    }
    if (!seen_a) return moe_fail(err, "post_processor TemplateProcessing: \"single\" has no $A");
    return post_wrap(t, front, nf, back, nb, err);
}

/* RobertaProcessing / BertProcessing: cls $A sep, with "cls": [token, id]. */
static int post_cls_sep(moe_tokenizer *t, const cJSON *j, const char *what, moe_err *err) {
    const cJSON *ci = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "cls"), 1);
    const cJSON *si = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "sep"), 1);
    if (check_id(t, ci, what, err) != 0 || check_id(t, si, what, err) != 0)
        return moe_fail_prefix(err, "\"cls\"/\"sep\" must be [token, id]");
    int32_t c = (int32_t)ci->valuedouble, s = (int32_t)si->valuedouble;
    return post_wrap(t, &c, 1, &s, 1, err);
}

static int post_parse_one(moe_tokenizer *t, const cJSON *j, int depth, moe_err *err) {
    if (!j || cJSON_IsNull(j)) return 0;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(j, "type");
    if (!cJSON_IsObject(j) || !cJSON_IsString(type))
        return moe_fail(err, "post_processor: not an object with a \"type\"");
    const char *ty = type->valuestring;
    if (strcmp(ty, "ByteLevel") == 0) return 0; /* only trims offsets */
    if (strcmp(ty, "TemplateProcessing") == 0) return post_template(t, j, err);
    if (strcmp(ty, "RobertaProcessing") == 0 || strcmp(ty, "BertProcessing") == 0)
        return post_cls_sep(t, j, ty, err);
    if (strcmp(ty, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(j, "processors");
        if (!cJSON_IsArray(list)) return moe_fail(err, "post_processor Sequence: no \"processors\" list");
        if (depth > 4) return moe_fail(err, "post_processor Sequence: nested too deeply");
        const cJSON *e;
        cJSON_ArrayForEach(e, list) if (post_parse_one(t, e, depth + 1, err) != 0) return -1;
        return 0;
    }
    return moe_fail(err, "post_processor \"%s\" is unsupported (supported: TemplateProcessing, "
                    "ByteLevel, RobertaProcessing, BertProcessing, Sequence)", ty);
}

int post_parse(moe_tokenizer *t, const cJSON *j, moe_err *err) {
    return post_parse_one(t, j, 0, err);
}

/* ---------------------------------------------------------------- encode */

typedef struct enc_ctx {
    tok_buf clean;      /* input made valid UTF-8 (when it was not) */
    tok_buf norm, tmp;  /* a normalized segment; normalizer scratch */
    tok_seg *raw, *nrm; /* added-token splits of the raw text / a normalized segment */
    size_t n_raw, cap_raw, n_nrm, cap_nrm;
    tok_pieces pieces, scratch;
    tok_matcher mt;
    bpe_scratch *bpe;
    int32_t *ids;
    size_t n_ids, cap_ids;
} enc_ctx;

static void enc_free(enc_ctx *c) {
    buf_free(&c->clean);
    buf_free(&c->norm);
    buf_free(&c->tmp);
    free(c->raw);
    free(c->nrm);
    pieces_free(&c->pieces);
    pieces_free(&c->scratch);
    matcher_free(&c->mt);
    bpe_scratch_free(c->bpe);
    free(c->ids);
}

static int push_id(enc_ctx *c, int32_t id, moe_err *err) {
    if (c->n_ids == c->cap_ids) {
        size_t cap = c->cap_ids ? c->cap_ids * 2 : 256;
        int32_t *p = realloc(c->ids, cap * sizeof *p);
        if (!p) return moe_fail(err, "tokenizer: out of memory for %zu ids", cap);
        c->ids = p;
        c->cap_ids = cap;
    }
    c->ids[c->n_ids++] = id;
    return 0;
}

/* A stretch of text with no added tokens: pre-tokenize, then BPE. */
static int encode_text(const moe_tokenizer *t, enc_ctx *c, const char *s, size_t n, int first,
                       moe_err *err) {
    c->pieces.n = 0;
    c->pieces.text.n = 0;
    if (pieces_add(&c->pieces, s, n, first) != 0) return moe_fail(err, "tokenizer: out of memory");
    if (pre_apply(t, &c->mt, &c->pieces, &c->scratch, err) != 0) return -1;
    for (size_t i = 0; i < c->pieces.n; i++) {
        const tok_piece *p = &c->pieces.p[i];
        if (bpe_encode(t, &c->bpe, c->pieces.text.p + p->off, p->len, &c->ids, &c->n_ids,
                       &c->cap_ids, err) != 0)
            return -1;
    }
    return 0;
}

static int encode_all(const moe_tokenizer *t, enc_ctx *c, const char *s, size_t n, moe_err *err) {
    if (added_split(t, &t->trie_raw, s, n, &c->raw, &c->n_raw, &c->cap_raw, err) != 0) return -1;
    for (size_t i = 0; i < c->n_raw; i++) {
        const tok_seg *g = &c->raw[i];
        if (g->id >= 0) {
            if (push_id(c, g->id, err) != 0) return -1;
            continue;
        }
        if (norm_apply(t, &c->mt, s + g->off, g->len, &c->norm, &c->tmp, err) != 0) return -1;
        if (added_split(t, &t->trie_norm, c->norm.p, c->norm.n, &c->nrm, &c->n_nrm, &c->cap_nrm,
                        err) != 0)
            return -1;
        for (size_t k = 0; k < c->n_nrm; k++) {
            const tok_seg *h = &c->nrm[k];
            int rc = h->id >= 0 ? push_id(c, h->id, err)
                                : encode_text(t, c, c->norm.p + h->off, h->len,
                                              g->off == 0 && h->off == 0, err);
            if (rc != 0) return -1;
        }
    }
    return 0;
}

int moe_tokenize(const moe_tokenizer *t, const char *text, size_t len, int add_special,
                 int32_t **ids, int *n_ids, moe_err *err) {
    if (ids) *ids = NULL;
    if (n_ids) *n_ids = 0;
    if (!t || !ids || !n_ids) return moe_fail(err, "moe_tokenize: NULL tokenizer or output");
    if (!text && len) return moe_fail(err, "moe_tokenize: NULL text of %zu bytes", len);
    if (len > TOK_MAX_TEXT)
        return moe_fail(err, "moe_tokenize: text of %zu bytes is over the %zu-byte limit", len,
                        TOK_MAX_TEXT);
    enc_ctx c;
    memset(&c, 0, sizeof c);
    const char *s = text ? text : "";
    if (!utf8_is_valid(s, len)) {
        if (utf8_lossy(&c.clean, s, len) != 0) {
            enc_free(&c);
            return moe_fail(err, "moe_tokenize: out of memory");
        }
        s = c.clean.p;
        len = c.clean.n;
    }
    int rc = 0;
    for (int i = 0; add_special && i < t->n_prefix && rc == 0; i++) rc = push_id(&c, t->prefix[i], err);
    if (rc == 0) rc = encode_all(t, &c, s, len, err);
    for (int i = 0; add_special && i < t->n_suffix && rc == 0; i++) rc = push_id(&c, t->suffix[i], err);
    if (rc == 0 && c.n_ids > INT_MAX) rc = moe_fail(err, "moe_tokenize: %zu ids overflow int", c.n_ids);
    if (rc == 0 && !c.ids) rc = push_id(&c, 0, err), c.n_ids = 0; /* never hand back NULL */
    if (rc == 0) {
        *ids = c.ids;
        *n_ids = (int)c.n_ids;
        c.ids = NULL;
    }
    enc_free(&c);
    return rc;
}
