/*
 * pretok.c - the "pre_tokenizer" of tokenizer.json: cut normalized text into
 * the pieces BPE sees. Supported: ByteLevel (GPT-2/NeoX: optional prefix
 * space, optional GPT-2 regex split, bytes -> printable chars), Split (a regex
 * or literal with HF's five delimiter behaviours, optionally inverted; Qwen2,
 * Llama-3, DeepSeek use it), Metaspace (SentencePiece: ' ' -> '▁', prepend
 * scheme first/always/never, optional split), and Sequence of these.
 *
 * Each step mirrors the HF Rust code (the pre_tokenizers module and
 * NormalizedString::split) including its corner cases: empty pieces are
 * dropped, a ByteLevel prefix space is added to every piece, Metaspace's
 * "first" looks at whether the piece starts the original text.
 */
#include "tokenizer/tok_internal.h"
#include "base/err.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

/* The regex ByteLevel(use_regex=true) splits with (GPT-2's). */
static const char GPT2_REGEX[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* --------------------------------------------------- GPT-2 byte mapping */

/* bytes_to_unicode(): printable Latin-1 bytes map to themselves, the other
 * 68 bytes (0-32, 127-160, 173) to U+0100.. in byte order. */
int32_t tok_byte_char(unsigned char b) {
    if (b <= 32) return 256 + b;
    if (b >= 127 && b <= 160) return 289 + (b - 127);
    if (b == 173) return 323;
    return b;
}

int tok_char_byte(int32_t cp) {
    if (cp < 0) return -1;
    if (cp < 256) return (cp <= 32 || (cp >= 127 && cp <= 160) || cp == 173) ? -1 : cp;
    if (cp <= 288) return cp - 256;
    if (cp <= 322) return cp - 289 + 127;
    if (cp == 323) return 173;
    return -1;
}

/* --------------------------------------------------------------- pieces */

int pieces_add(tok_pieces *ps, const char *s, size_t n, int first) {
    if (ps->n == ps->cap) {
        size_t cap = ps->cap ? ps->cap * 2 : 64;
        tok_piece *p = realloc(ps->p, cap * sizeof *p);
        if (!p) return -1;
        ps->p = p;
        ps->cap = cap;
    }
    size_t off = ps->text.n;
    if (buf_put(&ps->text, s, n) != 0) return -1;
    ps->p[ps->n++] = (tok_piece){off, n, first};
    return 0;
}

void pieces_free(tok_pieces *ps) {
    buf_free(&ps->text);
    free(ps->p);
    ps->p = NULL;
    ps->n = ps->cap = 0;
}

/* ------------------------------------------------------------- parsing */

static int parse_prepend(const cJSON *j, tok_prepend *out, const char *what, moe_err *err) {
    const cJSON *ps = cJSON_GetObjectItemCaseSensitive(j, "prepend_scheme");
    if (cJSON_IsString(ps)) {
        if (strcmp(ps->valuestring, "first") == 0) *out = PREPEND_FIRST;
        else if (strcmp(ps->valuestring, "always") == 0) *out = PREPEND_ALWAYS;
        else if (strcmp(ps->valuestring, "never") == 0) *out = PREPEND_NEVER;
        else return moe_fail(err, "%s: unknown prepend_scheme \"%s\"", what, ps->valuestring);
        return 0;
    }
    /* Files written before prepend_scheme existed: add_prefix_space. */
    const cJSON *ap = cJSON_GetObjectItemCaseSensitive(j, "add_prefix_space");
    *out = (!ap || cJSON_IsTrue(ap)) ? PREPEND_ALWAYS : PREPEND_NEVER;
    return 0;
}

/* Metaspace's replacement: exactly one character. */
int tok_parse_replacement(const cJSON *j, char *rep, int *rep_len, int32_t *cp,
                          const char *what, moe_err *err) {
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "replacement");
    const char *s = cJSON_IsString(r) ? r->valuestring : "\xE2\x96\x81";
    size_t n = strlen(s);
    int l;
    if (n == 0 || n > 4 || !utf8_is_valid(s, n) || (size_t)utf8_len((unsigned char)s[0]) != n)
        return moe_fail(err, "%s: replacement must be one character", what);
    memcpy(rep, s, n);
    *rep_len = (int)n;
    if (cp) *cp = utf8_decode(s, &l);
    return 0;
}

static int bool_field(const cJSON *j, const char *name, int dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, name);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

static int pre_parse_one(moe_tokenizer *t, const cJSON *j, int depth, moe_err *err) {
    if (cJSON_IsNull(j)) return 0;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(j, "type");
    if (!cJSON_IsObject(j) || !cJSON_IsString(type))
        return moe_fail(err, "pre_tokenizer: not an object with a \"type\"");
    const char *ty = type->valuestring;
    if (strcmp(ty, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(j, "pretokenizers");
        if (!cJSON_IsArray(list)) return moe_fail(err, "pre_tokenizer Sequence: no \"pretokenizers\" list");
        if (depth > 4) return moe_fail(err, "pre_tokenizer Sequence: nested too deeply");
        const cJSON *e;
        cJSON_ArrayForEach(e, list) if (pre_parse_one(t, e, depth + 1, err) != 0) return -1;
        return 0;
    }
    if (t->n_pre >= TOK_MAX_STEPS) return moe_fail(err, "pre_tokenizer: more than %d steps", TOK_MAX_STEPS);
    tok_pre *p = &t->pre[t->n_pre];
    memset(p, 0, sizeof *p);
    if (strcmp(ty, "ByteLevel") == 0) {
        p->kind = PRE_BYTELEVEL;
        p->add_prefix_space = bool_field(j, "add_prefix_space", 1);
        p->use_regex = bool_field(j, "use_regex", 1);
        t->n_pre++;
        if (p->use_regex) return regex_compile(&p->re, GPT2_REGEX, sizeof GPT2_REGEX - 1, 0, err);
        return 0;
    }
    if (strcmp(ty, "Split") == 0) {
        p->kind = PRE_SPLIT;
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(j, "behavior");
        const char *bs = cJSON_IsString(b) ? b->valuestring : "";
        if (strcmp(bs, "Removed") == 0) p->behavior = SPLIT_REMOVED;
        else if (strcmp(bs, "Isolated") == 0) p->behavior = SPLIT_ISOLATED;
        else if (strcmp(bs, "MergedWithPrevious") == 0) p->behavior = SPLIT_MERGED_PREV;
        else if (strcmp(bs, "MergedWithNext") == 0) p->behavior = SPLIT_MERGED_NEXT;
        else if (strcmp(bs, "Contiguous") == 0) p->behavior = SPLIT_CONTIGUOUS;
        else return moe_fail(err, "pre_tokenizer Split: unknown behavior \"%s\"", bs);
        p->invert = bool_field(j, "invert", 0);
        t->n_pre++;
        return tok_parse_pattern(cJSON_GetObjectItemCaseSensitive(j, "pattern"), &p->re,
                                 "pre_tokenizer Split", err);
    }
    if (strcmp(ty, "Metaspace") == 0) {
        p->kind = PRE_METASPACE;
        if (tok_parse_replacement(j, p->rep, &p->rep_len, NULL, "pre_tokenizer Metaspace", err) != 0 ||
            parse_prepend(j, &p->prepend, "pre_tokenizer Metaspace", err) != 0)
            return -1;
        p->split = bool_field(j, "split", 1);
        t->n_pre++;
        return 0;
    }
    return moe_fail(err, "pre_tokenizer \"%s\" is unsupported (supported: ByteLevel, Split, "
                    "Metaspace, Sequence)", ty);
}

int pre_parse(moe_tokenizer *t, const cJSON *j, moe_err *err) {
    if (!j) return 0;
    return pre_parse_one(t, j, 0, err);
}

void pre_free(moe_tokenizer *t) {
    for (int i = 0; i < t->n_pre; i++) regex_free(&t->pre[i].re);
    t->n_pre = 0;
}

/* ------------------------------------------------------------ splitting */

/* One stretch of a piece: [s, e), a delimiter match or not. */
typedef struct span {
    size_t s, e;
    int match;
} span;

typedef struct pre_ctx {
    tok_matcher *mt;
    span *sp;      /* [cap] scratch: the spans of the piece being split */
    size_t n, cap;
    tok_buf tmp;   /* scratch: a piece being rewritten */
    tok_buf pfx;   /* scratch: a piece with ByteLevel's prefix space */
    moe_err *err;
} pre_ctx;

static int span_push(pre_ctx *c, size_t s, size_t e, int match) {
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        span *p = realloc(c->sp, cap * sizeof *p);
        if (!p) return moe_fail(c->err, "tokenizer: out of memory splitting");
        c->sp = p;
        c->cap = cap;
    }
    c->sp[c->n++] = (span){s, e, match};
    return 0;
}

/* HF's Pattern::find_matches for a regex: spans covering s, matches marked. */
static int find_regex(pre_ctx *c, const tok_regex *re, const char *s, size_t n) {
    c->n = 0;
    if (n == 0) return span_push(c, 0, 0, 0);
    size_t prev = 0, pos = 0;
    size_t last_end = (size_t)-1;
    while (pos <= n) {
        size_t ms, me;
        int rc = regex_next(re, c->mt, s, n, pos, &ms, &me, c->err);
        if (rc < 0) return -1;
        if (rc == 0) break;
        if (me == ms && ms == last_end) { /* no empty match right after a match */
            if (ms >= n) break;
            pos = ms + (size_t)utf8_len((unsigned char)s[ms]);
            continue;
        }
        if (prev != ms && span_push(c, prev, ms, 0) != 0) return -1;
        if (span_push(c, ms, me, 1) != 0) return -1;
        prev = last_end = me;
        if (me > ms) pos = me;
        else if (me >= n) break;
        else pos = me + (size_t)utf8_len((unsigned char)s[me]);
    }
    if (prev != n && span_push(c, prev, n, 0) != 0) return -1;
    return 0;
}

/* Spans for a one-character delimiter (Metaspace's split). */
static int find_char(pre_ctx *c, const char *ch, int ch_len, const char *s, size_t n) {
    c->n = 0;
    if (n == 0) return span_push(c, 0, 0, 0);
    size_t prev = 0;
    for (size_t i = 0; i + (size_t)ch_len <= n;) {
        if (memcmp(s + i, ch, (size_t)ch_len) == 0) {
            if (prev != i && span_push(c, prev, i, 0) != 0) return -1;
            if (span_push(c, i, i + (size_t)ch_len, 1) != 0) return -1;
            i += (size_t)ch_len;
            prev = i;
        } else {
            i += (size_t)utf8_len((unsigned char)s[i]);
        }
    }
    if (prev != n && span_push(c, prev, n, 0) != 0) return -1;
    return 0;
}

/* NormalizedString::split: fold the spans by behaviour (in place), then
 * emit the non-empty kept ones. */
static int emit_spans(pre_ctx *c, tok_split_behavior bh, int invert, const char *s, int first,
                      tok_pieces *out) {
    span *sp = c->sp;
    size_t n = c->n, k = 0;
    if (invert)
        for (size_t i = 0; i < n; i++) sp[i].match = !sp[i].match;
    int prev = 0;
    switch (bh) {
    case SPLIT_REMOVED: /* drop the matches */
        for (size_t i = 0; i < n; i++)
            if (!sp[i].match) sp[k++] = sp[i];
        break;
    case SPLIT_ISOLATED:
        k = n;
        break;
    case SPLIT_CONTIGUOUS: /* runs of equal kind merge */
        for (size_t i = 0; i < n; i++) {
            int m = sp[i].match;
            if (m == prev && k > 0) sp[k - 1].e = sp[i].e;
            else sp[k++] = sp[i];
            prev = m;
        }
        break;
    case SPLIT_MERGED_PREV: /* a match joins the piece before it */
        for (size_t i = 0; i < n; i++) {
            int m = sp[i].match;
            if (m && !prev && k > 0) sp[k - 1].e = sp[i].e;
            else sp[k++] = sp[i];
            prev = m;
        }
        break;
    case SPLIT_MERGED_NEXT: { /* a match joins the piece after it: fold from the right */
        size_t top = n; /* output grows leftwards from n */
        for (size_t i = n; i-- > 0;) {
            int m = sp[i].match;
            if (m && !prev && top < n) sp[top].s = sp[i].s;
            else sp[--top] = sp[i];
            prev = m;
        }
        for (size_t i = top; i < n; i++) sp[k++] = sp[i];
        break;
    }
    }
    for (size_t i = 0; i < k; i++) {
        if (sp[i].e == sp[i].s) continue;
        if (pieces_add(out, s + sp[i].s, sp[i].e - sp[i].s, first && sp[i].s == 0) != 0)
            return moe_fail(c->err, "tokenizer: out of memory splitting");
    }
    return 0;
}

/* ---------------------------------------------------------------- steps */

/* Map each byte to its printable char (GPT-2 bytes_to_unicode). */
static int bytelevel_map(pre_ctx *c, const char *s, size_t n, int first, tok_pieces *out) {
    if (n == 0) return 0;
    c->tmp.n = 0;
    if (buf_reserve(&c->tmp, n * 2) != 0) return moe_fail(c->err, "tokenizer: out of memory");
    for (size_t i = 0; i < n; i++)
        c->tmp.n += (size_t)utf8_encode(tok_byte_char((unsigned char)s[i]), c->tmp.p + c->tmp.n);
    if (pieces_add(out, c->tmp.p, c->tmp.n, first) != 0)
        return moe_fail(c->err, "tokenizer: out of memory");
    return 0;
}

static int step_bytelevel(pre_ctx *c, const tok_pre *p, const char *s, size_t n, int first,
                          tok_pieces *out) {
    if (p->add_prefix_space && (n == 0 || s[0] != ' ')) {
        /* Its own buffer: the map step below reuses tmp. */
        c->pfx.n = 0;
        if (buf_put(&c->pfx, " ", 1) != 0 || buf_put(&c->pfx, s, n) != 0)
            return moe_fail(c->err, "tokenizer: out of memory");
        s = c->pfx.p;
        n = c->pfx.n;
    }
    int rc = 0;
    if (!p->use_regex) {
        rc = bytelevel_map(c, s, n, first, out);
    } else if ((rc = find_regex(c, &p->re, s, n)) == 0) {
        /* Isolated: every span is a piece; map each. */
        for (size_t i = 0; i < c->n && rc == 0; i++) {
            span sp = c->sp[i];
            if (sp.e > sp.s) rc = bytelevel_map(c, s + sp.s, sp.e - sp.s, first && sp.s == 0, out);
        }
    }
    return rc;
}

static int step_metaspace(pre_ctx *c, const tok_pre *p, const char *s, size_t n, int first,
                          tok_pieces *out) {
    c->tmp.n = 0;
    /* ' ' -> replacement, then maybe prepend one. */
    int starts_rep = 0;
    if (n > 0) starts_rep = (s[0] == ' ') || (n >= (size_t)p->rep_len && memcmp(s, p->rep, (size_t)p->rep_len) == 0);
    int prepend = !starts_rep && (p->prepend == PREPEND_ALWAYS || (p->prepend == PREPEND_FIRST && first));
    if (prepend && buf_put(&c->tmp, p->rep, (size_t)p->rep_len) != 0) goto oom;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ' ') {
            if (buf_put(&c->tmp, p->rep, (size_t)p->rep_len) != 0) goto oom;
        } else {
            size_t j = i;
            while (j < n && s[j] != ' ') j++;
            if (buf_put(&c->tmp, s + i, j - i) != 0) goto oom;
            i = j - 1;
        }
    }
    if (!p->split) {
        if (c->tmp.n && pieces_add(out, c->tmp.p, c->tmp.n, first) != 0) goto oom;
        return 0;
    }
    if (find_char(c, p->rep, p->rep_len, c->tmp.p, c->tmp.n) != 0) return -1;
    return emit_spans(c, SPLIT_MERGED_NEXT, 0, c->tmp.p, first, out);
oom:
    return moe_fail(c->err, "tokenizer: out of memory");
}

int pre_apply(const moe_tokenizer *t, tok_matcher *mt, tok_pieces *in, tok_pieces *scratch,
              moe_err *err) {
    pre_ctx c = {.mt = mt, .err = err};
    int rc = 0;
    for (int k = 0; k < t->n_pre && rc == 0; k++) {
        const tok_pre *p = &t->pre[k];
        scratch->n = 0;
        scratch->text.n = 0;
        for (size_t i = 0; i < in->n && rc == 0; i++) {
            const char *s = in->text.p + in->p[i].off;
            size_t n = in->p[i].len;
            int first = in->p[i].first;
            switch (p->kind) {
            case PRE_BYTELEVEL: rc = step_bytelevel(&c, p, s, n, first, scratch); break;
            case PRE_METASPACE: rc = step_metaspace(&c, p, s, n, first, scratch); break;
            case PRE_SPLIT:
                rc = find_regex(&c, &p->re, s, n);
                if (rc == 0) rc = emit_spans(&c, p->behavior, p->invert, s, first, scratch);
                break;
            }
        }
        tok_pieces x = *in;
        *in = *scratch;
        *scratch = x;
    }
    free(c.sp);
    buf_free(&c.tmp);
    buf_free(&c.pfx);
    return rc;
}
