/*
 * normalize.c - the "normalizer" of tokenizer.json: Unicode normalization
 * forms (utf8proc), Prepend, Replace, Strip, and Sequence of these. These are
 * the ones BPE models of the supported families ship: Qwen2/3 and GPT-NeoX
 * (OLMoE, MPT) use NFC; Llama/Mistral/Mixtral files use
 * Sequence[Prepend("▁"), Replace(" ", "▁")]. Anything else is refused at
 * load time with an "unsupported" message rather than silently ignored.
 */
#include "tokenizer/tok_internal.h"
#include "base/err.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* ------------------------------------------------------------- parsing */

static int norm_parse_one(moe_tokenizer *t, const cJSON *j, int depth, moe_err *err);

/* The text of a {"String": s} / {"Regex": r} pattern object, compiled. */
int tok_parse_pattern(const cJSON *pat, tok_regex *re, const char *what, moe_err *err) {
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(pat, "String");
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(pat, "Regex");
    if (cJSON_IsString(s)) {
        if (!s->valuestring[0]) return moe_fail(err, "%s: empty String pattern", what);
        return regex_compile(re, s->valuestring, strlen(s->valuestring), 1, err);
    }
    if (cJSON_IsString(r)) {
        if (regex_compile(re, r->valuestring, strlen(r->valuestring), 0, err) != 0)
            return moe_fail_prefix(err, "%s", what);
        return 0;
    }
    return moe_fail(err, "%s: pattern is neither {\"String\": ...} nor {\"Regex\": ...}", what);
}

static int dup_string(const cJSON *j, const char *field, const char *what, char **out,
                      size_t *len, moe_err *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, field);
    if (!cJSON_IsString(v)) return moe_fail(err, "%s: field \"%s\" missing or not a string", what, field);
    *len = strlen(v->valuestring);
    *out = malloc(*len + 1);
    if (!*out) return moe_fail(err, "%s: out of memory", what);
    memcpy(*out, v->valuestring, *len + 1);
    return 0;
}

static int norm_parse_one(moe_tokenizer *t, const cJSON *j, int depth, moe_err *err) {
    if (cJSON_IsNull(j)) return 0;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(j, "type");
    if (!cJSON_IsObject(j) || !cJSON_IsString(type))
        return moe_fail(err, "normalizer: not an object with a \"type\"");
    const char *ty = type->valuestring;
    if (strcmp(ty, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(j, "normalizers");
        if (!cJSON_IsArray(list)) return moe_fail(err, "normalizer Sequence: no \"normalizers\" list");
        if (depth > 4) return moe_fail(err, "normalizer Sequence: nested too deeply");
        const cJSON *e;
        cJSON_ArrayForEach(e, list) if (norm_parse_one(t, e, depth + 1, err) != 0) return -1;
        return 0;
    }
    if (t->n_norm >= TOK_MAX_STEPS)
        return moe_fail(err, "normalizer: more than %d steps", TOK_MAX_STEPS);
    tok_norm *n = &t->norm[t->n_norm];
    memset(n, 0, sizeof *n);
    if (strcmp(ty, "NFC") == 0) n->kind = NORM_NFC;
    else if (strcmp(ty, "NFD") == 0) n->kind = NORM_NFD;
    else if (strcmp(ty, "NFKC") == 0) n->kind = NORM_NFKC;
    else if (strcmp(ty, "NFKD") == 0) n->kind = NORM_NFKD;
    else if (strcmp(ty, "Prepend") == 0) {
        n->kind = NORM_PREPEND;
        if (dup_string(j, "prepend", "normalizer Prepend", &n->str, &n->str_len, err) != 0) return -1;
    } else if (strcmp(ty, "Replace") == 0) {
        n->kind = NORM_REPLACE;
        if (dup_string(j, "content", "normalizer Replace", &n->str, &n->str_len, err) != 0) return -1;
        t->n_norm++; /* owned from here: freed by norm_free on any error */
        return tok_parse_pattern(cJSON_GetObjectItemCaseSensitive(j, "pattern"), &n->re,
                                 "normalizer Replace", err);
    } else if (strcmp(ty, "Strip") == 0) {
        n->kind = NORM_STRIP;
        n->left = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "strip_left"));
        n->right = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "strip_right"));
    } else {
        return moe_fail(err, "normalizer \"%s\" is unsupported (supported: NFC, NFD, NFKC, NFKD, "
                        "Prepend, Replace, Strip, Sequence)", ty);
    }
    t->n_norm++;
    return 0;
}

int norm_parse(moe_tokenizer *t, const cJSON *j, moe_err *err) {
    if (!j) return 0;
    return norm_parse_one(t, j, 0, err);
}

void norm_free(moe_tokenizer *t) {
    for (int i = 0; i < t->n_norm; i++) {
        free(t->norm[i].str);
        regex_free(&t->norm[i].re);
    }
    t->n_norm = 0;
}

/* ------------------------------------------------------------ applying */

/* Replace every match of re in s by rep (non-overlapping, left to right; an
 * empty match inserts rep and moves on by one character, as Rust does). */
static int grown_past(size_t cap, moe_err *err) {
    return moe_fail(err, "tokenizer: the normalizers (or decoders) grow the text past %zu bytes, "
                    "more than %dx its length + %d", cap, TOK_GROWTH, TOK_GROWTH_SLACK);
}

int tok_replace_all(const tok_regex *re, tok_matcher *mt, const char *s, size_t n,
                    const char *rep, size_t rep_len, size_t cap, tok_buf *out, moe_err *err) {
    size_t pos = 0, copied = 0;
    while (pos <= n) {
        size_t ms, me;
        int rc = regex_next(re, mt, s, n, pos, &ms, &me, err);
        if (rc < 0) return -1;
        if (rc == 0) break;
        if (out->n > cap || ms - copied > cap - out->n || rep_len > cap - out->n - (ms - copied))
            return grown_past(cap, err);
        if (buf_put(out, s + copied, ms - copied) != 0 || buf_put(out, rep, rep_len) != 0)
            return moe_fail(err, "tokenizer: out of memory replacing");
        copied = me;
        if (me > ms) {
            pos = me;
        } else {
            if (me >= n) break;
            pos = me + (size_t)utf8_len((unsigned char)s[me]);
        }
    }
    if (out->n > cap || n - copied > cap - out->n) return grown_past(cap, err);
    if (buf_put(out, s + copied, n - copied) != 0) return moe_fail(err, "tokenizer: out of memory");
    return 0;
}

static int norm_unicode(tok_norm_kind kind, const char *s, size_t n, tok_buf *out, moe_err *err) {
    int opt = UTF8PROC_STABLE;
    switch (kind) {
    case NORM_NFC: opt |= UTF8PROC_COMPOSE; break;
    case NORM_NFD: opt |= UTF8PROC_DECOMPOSE; break;
    case NORM_NFKC: opt |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT; break;
    default: opt |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT; break;
    }
    if (n == 0) return 0;
    /* Pure ASCII is in every normal form already: skip the copy utf8proc
     * would make (the common case for code and English). */
    size_t i = 0;
    while (i < n && (unsigned char)s[i] < 0x80) i++;
    if (i == n) {
        if (buf_put(out, s, n) != 0) return moe_fail(err, "tokenizer: out of memory");
        return 0;
    }
    utf8proc_uint8_t *dst = NULL;
    utf8proc_ssize_t m = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &dst,
                                      (utf8proc_option_t)opt);
    if (m < 0)
        return moe_fail(err, "tokenizer: Unicode normalization failed: %s", utf8proc_errmsg(m));
    int rc = buf_put(out, dst, (size_t)m);
    free(dst);
    if (rc != 0) return moe_fail(err, "tokenizer: out of memory");
    return 0;
}

static int norm_step(const tok_norm *nm, tok_matcher *mt, const char *s, size_t n, size_t cap,
                     tok_buf *out, moe_err *err) {
    switch (nm->kind) {
    case NORM_NFC: case NORM_NFD: case NORM_NFKC: case NORM_NFKD:
        return norm_unicode(nm->kind, s, n, out, err);
    case NORM_PREPEND:
        if (n && buf_put(out, nm->str, nm->str_len) != 0) break;
        if (buf_put(out, s, n) != 0) break;
        return 0;
    case NORM_REPLACE:
        return tok_replace_all(&nm->re, mt, s, n, nm->str, nm->str_len, cap, out, err);
    case NORM_STRIP: {
        size_t a = 0, b = n;
        while (nm->left && a < b) {
            int l;
            int32_t cp = utf8_decode(s + a, &l);
            if (!uni_is_space(cp)) break;
            a += (size_t)l;
        }
        while (nm->right && b > a) {
            size_t k = b - 1;
            while (k > a && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
            int l;
            if (!uni_is_space(utf8_decode(s + k, &l))) break;
            b = k;
        }
        if (buf_put(out, s + a, b - a) != 0) break;
        return 0;
    }
    }
    return moe_fail(err, "tokenizer: out of memory normalizing");
}

int norm_apply(const moe_tokenizer *t, tok_matcher *mt, const char *s, size_t n, tok_buf *out,
               tok_buf *tmp, moe_err *err) {
    out->n = 0;
    if (buf_put(out, s, n) != 0) return moe_fail(err, "tokenizer: out of memory normalizing");
    size_t cap = tok_growth_cap(n); /* the whole chain's output, see tok_internal.h */
    for (int i = 0; i < t->n_norm; i++) {
        tmp->n = 0;
        if (norm_step(&t->norm[i], mt, out->p, out->n, cap, tmp, err) != 0) return -1;
        /* NFKD grows ~11x at most and Prepend by its string: checked after */
        if (tmp->n > cap) return grown_past(cap, err);
        tok_buf x = *out;
        *out = *tmp;
        *tmp = x;
    }
    return 0;
}
