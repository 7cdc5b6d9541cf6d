/*
 * regex.c - PCRE2 for the pre-tokenizer and Replace patterns of
 * tokenizer.json. Those patterns are written for Oniguruma (what HF's Rust
 * code uses); the ones real models ship (GPT-2, GPT-4/Llama-3, Qwen2,
 * DeepSeek) use only \p{..}, \s, classes, (?i:..) and (?!..), which mean the
 * same in PCRE2 with UTF + UCP. Matching is done with PCRE2_NO_UTF_CHECK:
 * the text was validated once (utf8.c), and re-checking a 1 MB subject on
 * every call would make splitting quadratic.
 *
 * One difference is real and is rewritten away: PCRE2's \s (UCP) also
 * matches U+180E MONGOLIAN VOWEL SEPARATOR (it is in PCRE2's \h list), which
 * stopped being White_Space in Unicode 6.3; Oniguruma's \s is exactly the
 * White_Space property. So \s and \S become explicit White_Space classes.
 * Oniguruma also reads \uHHHH, which PCRE2 refuses: it becomes \x{HHHH}.
 */
#include "tokenizer/tok_internal.h"
#include "base/err.h"

#include <stdio.h>
#include <stdlib.h>

/* The White_Space property: what Oniguruma's \s matches. */
#define WS_SET "\\t-\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}" \
               "\\x{202F}\\x{205F}\\x{3000}"

static int is_hex4(const char *s) {
    for (int i = 0; i < 4; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') || (s[i] >= 'A' && s[i] <= 'F')))
            return 0;
    return 1;
}

/* Copy pattern to out with \uHHHH (Oniguruma syntax, not PCRE2's) as
 * \x{HHHH} and with \s / \S spelled as White_Space classes. Inside a
 * [...] class \s becomes the ranges; \S inside a class (seen in no real
 * tokenizer) is left to PCRE2. */
static int rewrite_space(const char *p, size_t n, tok_buf *out) {
    int in_class = 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '\\' && i + 1 < n) {
            char e = p[i + 1];
            int rc;
            if (e == 's') rc = in_class ? buf_put(out, WS_SET, sizeof WS_SET - 1)
                                        : buf_put(out, "[" WS_SET "]", sizeof WS_SET + 1);
            else if (e == 'S' && !in_class) rc = buf_put(out, "[^" WS_SET "]", sizeof WS_SET + 2);
            else if (e == 'u' && i + 5 < n && is_hex4(p + i + 2)) { /* Oniguruma's \uHHHH */
                char x[12];
                snprintf(x, sizeof x, "\\x{%.4s}", p + i + 2);
                rc = buf_put(out, x, 8);
                i += 4;
            } else rc = buf_put(out, p + i, 2);
            if (rc != 0) return -1;
            i++;
            continue;
        }
        if (!in_class && c == '[') {
            /* a ']' right after '[' or '[^' is a literal member */
            size_t j = i + 1;
            if (j < n && p[j] == '^') j++;
            if (j < n && p[j] == ']') j++;
            if (buf_put(out, p + i, j - i) != 0) return -1;
            i = j - 1;
            in_class = 1;
            continue;
        }
        if (in_class && c == '[' && i + 1 < n && p[i + 1] == ':') { /* [:alpha:] */
            const char *end = NULL;
            for (size_t k = i + 2; k + 1 < n; k++)
                if (p[k] == ':' && p[k + 1] == ']') {
                    end = p + k + 2;
                    break;
                }
            if (end) {
                if (buf_put(out, p + i, (size_t)(end - (p + i))) != 0) return -1;
                i = (size_t)(end - p) - 1;
                continue;
            }
        }
        if (in_class && c == ']') in_class = 0;
        if (buf_put(out, &c, 1) != 0) return -1;
    }
    return 0;
}

int regex_compile(tok_regex *r, const char *pattern, size_t len, int literal, moe_err *err) {
    tok_buf rw = {0};
    if (!literal) {
        if (rewrite_space(pattern, len, &rw) != 0) {
            buf_free(&rw);
            return moe_fail(err, "regex: out of memory");
        }
    }
    int code;
    PCRE2_SIZE off;
    uint32_t opt = PCRE2_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP); /* UCP is not allowed with LITERAL */
    r->code = literal ? pcre2_compile((PCRE2_SPTR)pattern, len, opt, &code, &off, NULL)
                      : pcre2_compile((PCRE2_SPTR)(rw.p ? rw.p : ""), rw.n, opt, &code, &off, NULL);
    buf_free(&rw);
    if (!r->code) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(code, msg, sizeof msg);
        return moe_fail(err, "regex /%.*s/ does not compile (offset %zu after rewriting \\s): %s",
                        (int)(len > 120 ? 120 : len), pattern, (size_t)off, (char *)msg);
    }
    /* JIT is an optimization only: without it (or if it fails) the
     * interpreter gives the same matches. */
    (void)pcre2_jit_compile(r->code, PCRE2_JIT_COMPLETE);
    return 0;
}

void regex_free(tok_regex *r) {
    pcre2_code_free(r->code);
    r->code = NULL;
}

void matcher_free(tok_matcher *mt) {
    pcre2_match_data_free(mt->md);
    pcre2_match_context_free(mt->mctx);
    pcre2_jit_stack_free(mt->jit);
    mt->md = NULL;
    mt->mctx = NULL;
    mt->jit = NULL;
}

static int matcher_ready(tok_matcher *mt, moe_err *err) {
    if (mt->md) return 0;
    /* 16 pairs covers every capture group the patterns of real tokenizers
     * have; only group 0 is read. */
    mt->md = pcre2_match_data_create(16, NULL);
    mt->mctx = pcre2_match_context_create(NULL);
    /* A JIT stack that can grow to 8 MiB: backtracking over long runs of
     * one class (e.g. `\s+(?!\S)` on a long run of spaces) needs more than
     * the 32 KiB default. */
    mt->jit = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, NULL);
    if (!mt->md || !mt->mctx || !mt->jit) {
        matcher_free(mt);
        return moe_fail(err, "tokenizer: out of memory for regex matching");
    }
    pcre2_jit_stack_assign(mt->mctx, NULL, mt->jit);
    return 0;
}

int regex_next(const tok_regex *r, tok_matcher *mt, const char *s, size_t n, size_t pos,
               size_t *ms, size_t *me, moe_err *err) {
    if (matcher_ready(mt, err) != 0) return -1;
    if (pos > n) return 0;
    int rc = pcre2_match(r->code, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK, mt->md, mt->mctx);
    if (rc == PCRE2_ERROR_NOMATCH) return 0;
    if (rc < 0) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(rc, msg, sizeof msg);
        return moe_fail(err, "tokenizer: regex matching failed at byte %zu of %zu: %s", pos, n,
                        (char *)msg);
    }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(mt->md);
    *ms = ov[0];
    *me = ov[1];
    if (*me < *ms) *me = *ms; /* \K tricks could invert them; treat as empty */
    return 1;
}
