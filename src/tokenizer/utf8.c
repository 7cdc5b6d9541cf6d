/*
 * utf8.c - byte buffers and the UTF-8 / Unicode helpers of the tokenizer.
 *
 * HF tokenizers works on Rust `str`, so text is always valid UTF-8 there.
 * Our input is bytes: invalid sequences are replaced by U+FFFD exactly as
 * Python's bytes.decode("utf-8", errors="replace") and Rust's
 * String::from_utf8_lossy do (one U+FFFD per maximal invalid subpart), so
 * encoding raw bytes equals HF encoding of the text Python would hand it.
 */
#include "tokenizer/tok_internal.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* ------------------------------------------------------------ byte buffer */

int buf_reserve(tok_buf *b, size_t extra) {
    if (extra > SIZE_MAX / 2 - b->n) return -1;
    size_t need = b->n + extra;
    if (need <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

int buf_put(tok_buf *b, const void *s, size_t n) {
    if (buf_reserve(b, n) != 0) return -1;
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    return 0;
}

void buf_free(tok_buf *b) {
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

/* ------------------------------------------------------------------ UTF-8 */

int utf8_len(unsigned char c) {
    if (c < 0xC0) return 1;
    if (c < 0xE0) return 2;
    if (c < 0xF0) return 3;
    if (c < 0xF8) return 4;
    return 1;
}

int32_t utf8_decode(const char *s, int *len) {
    const unsigned char *u = (const unsigned char *)s;
    int l = utf8_len(u[0]);
    *len = l;
    switch (l) {
    case 2: return ((u[0] & 0x1F) << 6) | (u[1] & 0x3F);
    case 3: return ((u[0] & 0x0F) << 12) | ((u[1] & 0x3F) << 6) | (u[2] & 0x3F);
    case 4:
        return ((u[0] & 0x07) << 18) | ((u[1] & 0x3F) << 12) | ((u[2] & 0x3F) << 6) |
               (u[3] & 0x3F);
    default: return u[0];
    }
}

int utf8_encode(int32_t cp, char *out) {
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Table 3-7 of the Unicode standard: the allowed range of the second byte
 * depends on the lead byte; later continuation bytes are 80..BF. */
int utf8_valid_at(const unsigned char *s, size_t n, int *bad) {
    unsigned char c = s[0];
    *bad = 1;
    if (c < 0x80) return 1;
    int need;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) need = 1;
    else if (c == 0xE0) need = 2, lo = 0xA0;
    else if (c >= 0xE1 && c <= 0xEC) need = 2;
    else if (c == 0xED) need = 2, hi = 0x9F;
    else if (c >= 0xEE && c <= 0xEF) need = 2;
    else if (c == 0xF0) need = 3, lo = 0x90;
    else if (c >= 0xF1 && c <= 0xF3) need = 3;
    else if (c == 0xF4) need = 3, hi = 0x8F;
    else return 0; /* 80..C1, F5..FF never start a sequence */
    for (int i = 1; i <= need; i++) {
        if ((size_t)i >= n) return 0;
        unsigned char b = s[i];
        if (b < lo || b > hi) return 0;
        lo = 0x80, hi = 0xBF;
        *bad = i + 1;
    }
    return need + 1;
}

int utf8_is_valid(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        int bad, l = utf8_valid_at(u + i, n - i, &bad);
        if (!l) return 0;
        i += (size_t)l;
    }
    return 1;
}

int utf8_lossy(tok_buf *out, const char *s, size_t n) {
    if (n == 0) return 0; /* s may be NULL (an empty buffer): NULL + 0 is undefined */
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, run = 0; /* run: start of the pending valid stretch */
    while (i < n) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        int bad, l = utf8_valid_at(u + i, n - i, &bad);
        if (l) {
            i += (size_t)l;
            continue;
        }
        if (buf_put(out, s + run, i - run) != 0 || buf_put(out, "\xEF\xBF\xBD", 3) != 0) return -1;
        i += (size_t)bad;
        run = i;
    }
    return buf_put(out, s + run, n - run);
}

/* ---------------------------------------------------------------- Unicode */

/* The White_Space property (Rust's char::is_whitespace and regex \s). */
int uni_is_space(int32_t cp) {
    if (cp < 0x80) return (cp >= 9 && cp <= 13) || cp == ' ';
    return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
           cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

/* Rust regex \w: Alphabetic, marks, decimal digits, connector punctuation,
 * join controls. Alphabetic is approximated by the letter categories + Nl. */
int uni_is_word(int32_t cp) {
    if (cp < 0x80)
        return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') ||
               cp == '_';
    if (cp == 0x200C || cp == 0x200D) return 1;
    switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_PC:
        return 1;
    default:
        return 0;
    }
}
