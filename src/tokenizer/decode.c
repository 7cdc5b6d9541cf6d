/*
 * decode.c - ids back to text: the "decoder" chain of tokenizer.json, as
 * HF's Tokenizer::decode runs it. Ids become token strings (an added token's
 * content first, else the model's token; ids that name nothing are dropped,
 * as HF drops them, so a model whose embedding is padded past the tokenizer
 * can still be decoded), special added tokens are dropped when skip_special,
 * then each decoder rewrites the token list:
 *   ByteLevel    chars -> bytes (GPT-2 map; a token with an unmapped char
 *                keeps its UTF-8), all joined, invalid UTF-8 -> U+FFFD
 *   Replace      pattern -> content in each token
 *   ByteFallback runs of <0xNN> tokens -> their bytes if valid UTF-8, else
 *                one U+FFFD per byte
 *   Fuse         join all tokens into one
 *   Strip        drop up to `start` leading / `stop` trailing `content` chars
 *   Metaspace    '▁' -> ' ', dropped in the first token unless prepend never
 * and the tokens are joined. With no decoder HF joins tokens with ' '.
 */
#include "tokenizer/tok_internal.h"
#include "base/err.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------- parsing */

static int dec_parse_one(moe_tokenizer *t, const cJSON *j, int depth, moe_err *err) {
    if (cJSON_IsNull(j)) return 0;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(j, "type");
    if (!cJSON_IsObject(j) || !cJSON_IsString(type))
        return moe_fail(err, "decoder: not an object with a \"type\"");
    const char *ty = type->valuestring;
    t->has_decoder = 1;
    if (strcmp(ty, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(j, "decoders");
        if (!cJSON_IsArray(list)) return moe_fail(err, "decoder Sequence: no \"decoders\" list");
        if (depth > 4) return moe_fail(err, "decoder Sequence: nested too deeply");
        const cJSON *e;
        cJSON_ArrayForEach(e, list) if (dec_parse_one(t, e, depth + 1, err) != 0) return -1;
        return 0;
    }
    if (t->n_dec >= TOK_MAX_STEPS) return moe_fail(err, "decoder: more than %d steps", TOK_MAX_STEPS);
    tok_dec *d = &t->dec[t->n_dec];
    memset(d, 0, sizeof *d);
    if (strcmp(ty, "ByteLevel") == 0) {
        d->kind = DEC_BYTELEVEL;
    } else if (strcmp(ty, "ByteFallback") == 0) {
        d->kind = DEC_BYTEFALLBACK;
    } else if (strcmp(ty, "Fuse") == 0) {
        d->kind = DEC_FUSE;
    } else if (strcmp(ty, "Replace") == 0) {
        d->kind = DEC_REPLACE;
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(j, "content");
        if (!cJSON_IsString(c)) return moe_fail(err, "decoder Replace: no \"content\" string");
        d->str_len = strlen(c->valuestring);
        if (!(d->str = malloc(d->str_len + 1))) return moe_fail(err, "decoder: out of memory");
        memcpy(d->str, c->valuestring, d->str_len + 1);
        t->n_dec++; /* owned from here */
        return tok_parse_pattern(cJSON_GetObjectItemCaseSensitive(j, "pattern"), &d->re,
                                 "decoder Replace", err);
    } else if (strcmp(ty, "Strip") == 0) {
        d->kind = DEC_STRIP;
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(j, "content");
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "start");
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(j, "stop");
        int l;
        if (!cJSON_IsString(c) || !c->valuestring[0] || !cJSON_IsNumber(a) || !cJSON_IsNumber(b) ||
            a->valuedouble < 0 || a->valuedouble > 1e6 || b->valuedouble < 0 || b->valuedouble > 1e6)
            return moe_fail(err, "decoder Strip: needs a \"content\" char and \"start\"/\"stop\" counts");
        size_t cl = strlen(c->valuestring);
        if (!utf8_is_valid(c->valuestring, cl) || (size_t)utf8_len((unsigned char)c->valuestring[0]) != cl)
            return moe_fail(err, "decoder Strip: content must be one character");
        d->ch = utf8_decode(c->valuestring, &l);
        d->start = (int)a->valuedouble;
        d->stop = (int)b->valuedouble;
    } else if (strcmp(ty, "Metaspace") == 0) {
        d->kind = DEC_METASPACE;
        char rep[8];
        int rep_len;
        if (tok_parse_replacement(j, rep, &rep_len, &d->ch, "decoder Metaspace", err) != 0) return -1;
        const cJSON *ps = cJSON_GetObjectItemCaseSensitive(j, "prepend_scheme");
        const cJSON *ap = cJSON_GetObjectItemCaseSensitive(j, "add_prefix_space");
        if (cJSON_IsString(ps)) d->prepend = strcmp(ps->valuestring, "never") == 0 ? PREPEND_NEVER : PREPEND_ALWAYS;
        else d->prepend = (!ap || cJSON_IsTrue(ap)) ? PREPEND_ALWAYS : PREPEND_NEVER;
    } else {
        return moe_fail(err, "decoder \"%s\" is unsupported (supported: ByteLevel, Replace, "
                        "ByteFallback, Fuse, Strip, Metaspace, Sequence)", ty);
    }
    t->n_dec++;
    return 0;
}

int dec_parse(moe_tokenizer *t, const cJSON *j, moe_err *err) {
    if (!j) return 0;
    return dec_parse_one(t, j, 0, err);
}

void dec_free(moe_tokenizer *t) {
    for (int i = 0; i < t->n_dec; i++) {
        free(t->dec[i].str);
        regex_free(&t->dec[i].re);
    }
    t->n_dec = 0;
}

/* ------------------------------------------------------------- decoders */

#define OOM() moe_fail(err, "tokenizer: out of memory decoding")

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Flush a run of fallback bytes: the string if valid UTF-8, else one
 * U+FFFD per byte (HF's ByteFallback). */
static int flush_bytes(tok_pieces *out, tok_buf *bytes) {
    int rc = 0;
    if (bytes->n == 0) return 0;
    if (utf8_is_valid(bytes->p, bytes->n)) {
        rc = pieces_add(out, bytes->p, bytes->n, 0);
    } else {
        for (size_t i = 0; i < bytes->n && rc == 0; i++) rc = pieces_add(out, "\xEF\xBF\xBD", 3, 0);
    }
    bytes->n = 0;
    return rc;
}

static int dec_step(const tok_dec *d, tok_matcher *mt, const tok_pieces *in, tok_pieces *out,
                    size_t cap, tok_buf *tmp, moe_err *err) {
    switch (d->kind) {
    case DEC_BYTELEVEL: {
        tmp->n = 0;
        for (size_t i = 0; i < in->n; i++) {
            const char *s = in->text.p + in->p[i].off;
            size_t n = in->p[i].len, k = 0, mark = tmp->n;
            while (k < n) {
                int l, b = tok_char_byte(utf8_decode(s + k, &l));
                if (b < 0) break;
                char c = (char)b;
                if (buf_put(tmp, &c, 1) != 0) return OOM();
                k += (size_t)l;
            }
            if (k < n) { /* an unmapped char: the token keeps its own bytes */
                tmp->n = mark;
                if (buf_put(tmp, s, n) != 0) return OOM();
            }
        }
        tok_buf fixed = {0};
        int rc = utf8_lossy(&fixed, tmp->p, tmp->n);
        if (rc == 0) rc = pieces_add(out, fixed.p ? fixed.p : "", fixed.n, 0);
        buf_free(&fixed);
        return rc ? OOM() : 0;
    }
    case DEC_REPLACE:
        for (size_t i = 0; i < in->n; i++) {
            tmp->n = 0;
            if (tok_replace_all(&d->re, mt, in->text.p + in->p[i].off, in->p[i].len, d->str,
                                d->str_len, cap > out->text.n ? cap - out->text.n : 0, tmp, err) != 0)
                return -1;
            if (pieces_add(out, tmp->p ? tmp->p : "", tmp->n, 0) != 0) return OOM();
        }
        return 0;
    case DEC_BYTEFALLBACK:
        tmp->n = 0;
        for (size_t i = 0; i < in->n; i++) {
            const char *s = in->text.p + in->p[i].off;
            size_t n = in->p[i].len;
            int hi = n == 6 ? hexval(s[3]) : -1, lo = n == 6 ? hexval(s[4]) : -1;
            if (n == 6 && memcmp(s, "<0x", 3) == 0 && s[5] == '>' && hi >= 0 && lo >= 0) {
                char b = (char)(hi * 16 + lo);
                if (buf_put(tmp, &b, 1) != 0) return OOM();
                continue;
            }
            if (flush_bytes(out, tmp) != 0 || pieces_add(out, s, n, 0) != 0) return OOM();
        }
        return flush_bytes(out, tmp) ? OOM() : 0;
    case DEC_FUSE:
        tmp->n = 0;
        for (size_t i = 0; i < in->n; i++)
            if (buf_put(tmp, in->text.p + in->p[i].off, in->p[i].len) != 0) return OOM();
        return pieces_add(out, tmp->p ? tmp->p : "", tmp->n, 0) ? OOM() : 0;
    case DEC_STRIP:
        for (size_t i = 0; i < in->n; i++) {
            const char *s = in->text.p + in->p[i].off;
            size_t a = 0, b = in->p[i].len;
            int l;
            for (int k = 0; k < d->start && a < b && utf8_decode(s + a, &l) == d->ch; k++) a += (size_t)l;
            for (int k = 0; k < d->stop && b > a; k++) {
                size_t c = b - 1;
                while (c > a && ((unsigned char)s[c] & 0xC0) == 0x80) c--;
                if (utf8_decode(s + c, &l) != d->ch) break;
                b = c;
            }
            if (pieces_add(out, s + a, b - a, 0) != 0) return OOM();
        }
        return 0;
    case DEC_METASPACE:
        for (size_t i = 0; i < in->n; i++) {
            const char *s = in->text.p + in->p[i].off;
            size_t n = in->p[i].len;
            tmp->n = 0;
            for (size_t k = 0; k < n;) {
                int l;
                int32_t cp = utf8_decode(s + k, &l);
                if (cp != d->ch) {
                    if (buf_put(tmp, s + k, (size_t)l) != 0) return OOM();
                } else if (!(i == 0 && d->prepend != PREPEND_NEVER)) {
                    if (buf_put(tmp, " ", 1) != 0) return OOM();
                }
                k += (size_t)l;
            }
            if (pieces_add(out, tmp->p ? tmp->p : "", tmp->n, 0) != 0) return OOM();
        }
        return 0;
    }
    return 0;
}

int moe_detokenize(const moe_tokenizer *t, const int32_t *ids, int n_ids, int skip_special,
                   char **text, size_t *len, moe_err *err) {
    if (text) *text = NULL;
    if (len) *len = 0;
    if (!t || !text) return moe_fail(err, "moe_detokenize: NULL tokenizer or output");
    if (n_ids < 0 || (n_ids > 0 && !ids)) return moe_fail(err, "moe_detokenize: bad id list (%d ids)", n_ids);
    tok_pieces a = {0}, b = {0};
    tok_buf tmp = {0};
    tok_matcher mt = {0};
    int rc = 0;
    for (int i = 0; i < n_ids && rc == 0; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= t->n_ids) continue;
        if (skip_special && t->tok_special[id]) continue;
        const char *s;
        size_t n;
        if (t->tok_added[id] >= 0) {
            const tok_added *ad = &t->added[t->tok_added[id]];
            s = t->pool.p + ad->off;
            n = ad->len;
        } else if (t->tok_off[id] != UINT32_MAX) {
            s = t->pool.p + t->tok_off[id];
            n = t->tok_len[id];
        } else {
            continue;
        }
        if (pieces_add(&a, s, n, 0) != 0) rc = OOM();
    }
    if (rc == 0 && !t->has_decoder) { /* HF: tokens joined with spaces */
        for (size_t i = 0; i < a.n && rc == 0; i++)
            if ((i && buf_put(&tmp, " ", 1) != 0) || buf_put(&tmp, a.text.p + a.p[i].off, a.p[i].len) != 0)
                rc = OOM();
        if (rc == 0) {
            b.n = 0;
            rc = pieces_add(&b, tmp.p ? tmp.p : "", tmp.n, 0) ? OOM() : 0;
            tok_pieces x = a;
            a = b;
            b = x;
        }
    }
    size_t cap = tok_growth_cap(a.text.n); /* the decoders' output, see tok_internal.h */
    for (int k = 0; k < t->n_dec && rc == 0; k++) {
        b.n = 0;
        b.text.n = 0;
        rc = dec_step(&t->dec[k], &mt, &a, &b, cap, &tmp, err);
        if (rc == 0 && b.text.n > cap)
            rc = moe_fail(err, "tokenizer: the decoders grow the text past %zu bytes, more than "
                          "%dx its length + %d", cap, TOK_GROWTH, TOK_GROWTH_SLACK);
        tok_pieces x = a;
        a = b;
        b = x;
    }
    if (rc == 0) {
        tok_buf out = {0};
        for (size_t i = 0; i < a.n && rc == 0; i++)
            if (buf_put(&out, a.text.p + a.p[i].off, a.p[i].len) != 0) rc = OOM();
        if (rc == 0 && buf_put(&out, "", 1) != 0) rc = OOM();
        if (rc == 0) {
            *text = out.p;
            if (len) *len = out.n - 1;
        } else {
            buf_free(&out);
        }
    }
    pieces_free(&a);
    pieces_free(&b);
    buf_free(&tmp);
    matcher_free(&mt);
    return rc;
}
