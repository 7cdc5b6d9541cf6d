/*
 * chat_lex.c - template source -> tokens, with jinja2's whitespace rules as
 * transformers configures them (trim_blocks, lstrip_blocks):
 *   - newlines are normalized to \n and one trailing newline is dropped;
 *   - "{%-", "{{-", "{#-" strip all whitespace before the tag, "-%}", "-}}",
 *     "-#}" all whitespace after it;
 *   - lstrip_blocks: spaces and tabs from the start of a line to a "{%" or
 *     "{#" (not "{{") are dropped, unless the tag opens with "{%+";
 *   - trim_blocks: the first newline after "%}" or "#}" is dropped, unless the
 *     tag closes with "+%}".
 * Inside a tag an end marker counts only while brackets are balanced, so
 * "{{ {'a': {'b': 1}} }}" ends at the last "}}". {% raw %} bodies become
 * text here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "tokenizer/chat_internal.h"
#include "tokenizer/tok_internal.h"

typedef struct lexer {
    chat_arena *a;
    const char *src; /* normalized source */
    size_t n, pos;
    int line;
    const char *name;
    moe_err *err;
    chat_tok *toks;
    int n_toks, cap;
} lexer;

static int lex_fail(lexer *L, const char *what) {
    return moe_fail(L->err, "%s:%d: %s", L->name, L->line, what);
}

static int push(lexer *L, chat_tok t) {
    if (L->n_toks == L->cap) {
        int cap = L->cap ? L->cap * 2 : 256;
        chat_tok *nt = arena_alloc(L->a, (size_t)cap * sizeof *nt);
        if (!nt) return lex_fail(L, "template too large");
        if (L->n_toks) memcpy(nt, L->toks, (size_t)L->n_toks * sizeof *nt);
        L->toks = nt;
        L->cap = cap;
    }
    L->toks[L->n_toks++] = t;
    return 0;
}

static char *dup_arena(chat_arena *a, const char *s, size_t n) {
    char *p = arena_alloc(a, n + 1);
    if (p) memcpy(p, s, n);
    return p;
}

static int count_nl(const char *s, size_t n) {
    int c = 0;
    for (size_t i = 0; i < n; i++) c += s[i] == '\n';
    return c;
}

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

static int emit_data(lexer *L, const char *s, size_t n, int line) {
    if (n == 0) return 0;
    chat_tok t = {.kind = T_DATA, .line = line, .len = n};
    if (!(t.s = dup_arena(L->a, s, n))) return lex_fail(L, "template too large");
    return push(L, t);
}

/* Python's unicode-escape decoding of a string literal's body. */
static int unescape(lexer *L, const char *s, size_t n, chat_tok *t) {
    char *out = arena_alloc(L->a, n + 1), *o = out;
    if (!out) return lex_fail(L, "template too large");
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '\\' || i + 1 >= n) { *o++ = s[i]; continue; }
        char c = s[++i];
        int32_t cp = -1;
        switch (c) {
        case '\n': continue;
        case '\\': *o++ = '\\'; continue;
        case '\'': *o++ = '\''; continue;
        case '"': *o++ = '"'; continue;
        case 'a': *o++ = '\a'; continue;
        case 'b': *o++ = '\b'; continue;
        case 'f': *o++ = '\f'; continue;
        case 'n': *o++ = '\n'; continue;
        case 'r': *o++ = '\r'; continue;
        case 't': *o++ = '\t'; continue;
        case 'v': *o++ = '\v'; continue;
        case 'x': case 'u': case 'U': {
            int nd = c == 'x' ? 2 : c == 'u' ? 4 : 8;
            cp = 0;
            for (int k = 0; k < nd; k++) {
                char h = i + 1 + (size_t)k < n ? s[i + 1 + k] : 0;
                int d = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10
                      : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
                if (d < 0) return lex_fail(L, "truncated \\x/\\u/\\U escape in a string literal");
                cp = cp * 16 + d;
            }
            i += (size_t)nd;
            break;
        }
        case 'N': return lex_fail(L, "unsupported feature: \\N{...} escape in a string literal");
        default:
            if (c >= '0' && c <= '7') {
                cp = c - '0';
                for (int k = 0; k < 2 && i + 1 < n && s[i + 1] >= '0' && s[i + 1] <= '7'; k++) cp = cp * 8 + (s[++i] - '0');
            } else {
                *o++ = '\\';
                *o++ = c;
                continue;
            }
        }
        if (cp > 0x10FFFF) return lex_fail(L, "escape beyond U+10FFFF in a string literal");
        if (cp >= 0xD800 && cp < 0xDC00 && i + 6 < n && s[i + 1] == '\\' && s[i + 2] == 'u') {
            int32_t lo = (int32_t)strtol((char[5]){s[i + 3], s[i + 4], s[i + 5], s[i + 6], 0}, NULL, 16);
            if (lo >= 0xDC00 && lo < 0xE000) { cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00); i += 6; }
        }
        if (cp >= 0xD800 && cp < 0xE000) return lex_fail(L, "lone surrogate escape in a string literal");
        o += utf8_encode(cp, o);
    }
    *o = 0;
    t->s = out;
    t->len = (size_t)(o - out);
    return 0;
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }
static int is_name0(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }

/* digits with single underscores between them: (\d+_)*\d+ ; returns the end */
static size_t scan_digits(const char *s, size_t i, size_t n) {
    if (i >= n || !is_digit(s[i])) return i;
    while (i < n) {
        while (i < n && is_digit(s[i])) i++;
        if (i + 1 < n && s[i] == '_' && is_digit(s[i + 1])) i++;
        else break;
    }
    return i;
}

static int lex_number(lexer *L, size_t *pos) {
    const char *s = L->src;
    size_t i = *pos, end = scan_digits(s, i, L->n), fend = end;
    int is_float = 0;
    if (fend < L->n && s[fend] == '.' && fend + 1 < L->n && is_digit(s[fend + 1])) {
        fend = scan_digits(s, fend + 1, L->n);
        is_float = 1;
    }
    if (fend < L->n && (s[fend] == 'e' || s[fend] == 'E')) {
        size_t e = fend + 1;
        if (e < L->n && (s[e] == '+' || s[e] == '-')) e++;
        size_t e2 = scan_digits(s, e, L->n);
        if (e2 > e) { fend = e2; is_float = 1; }
    }
    if (!is_float) fend = end;
    char buf[128];
    size_t k = 0;
    for (size_t j = i; j < fend && k + 1 < sizeof buf; j++)
        if (s[j] != '_') buf[k++] = s[j];
    buf[k] = 0;
    chat_tok t = {.kind = is_float ? T_FLOAT : T_INT, .line = L->line};
    if (is_float) t.f = strtod(buf, NULL);
    else {
        if (k > 18) return lex_fail(L, "integer literal beyond 64 bits");
        t.i = strtoll(buf, NULL, 10);
    }
    *pos = fend;
    return push(L, t);
}

static const char *const OPS2[] = {"//", "**", "==", "!=", ">=", "<="};
static const char OPS1[] = "+-/*%~[](){}><=.:|,;";

/* Tokens of one tag until its end marker; var: 1 for {{ }}, 0 for {% %}. */
static int lex_tag(lexer *L, int var) {
    const char *s = L->src;
    char stack[256];
    int depth = 0;
    while (1) {
        size_t i = L->pos;
        if (i >= L->n) return lex_fail(L, var ? "unexpected end of template: missing '}}'" : "unexpected end of template: missing '%}'");
        if (depth == 0) {
            const char *end = var ? "}}" : "%}";
            int sign = 0;
            size_t j = i;
            if ((s[j] == '-' || (s[j] == '+' && !var)) && j + 2 < L->n && !strncmp(s + j + 1, end, 2)) sign = s[j++];
            if (j + 1 < L->n && !strncmp(s + j, end, 2)) {
                j += 2;
                if (sign == '-') while (j < L->n && is_ws(s[j])) j++;
                else if (!var && sign != '+' && j < L->n && s[j] == '\n') j++;
                chat_tok t = {.kind = var ? T_VAR_END : T_BLOCK_END, .line = L->line};
                L->line += count_nl(s + i, j - i);
                L->pos = j;
                return push(L, t);
            }
        }
        char c = s[i];
        if (is_ws(c)) {
            L->line += c == '\n';
            L->pos++;
            continue;
        }
        if (is_digit(c)) {
            if (lex_number(L, &L->pos)) return -1;
            continue;
        }
        if (is_name0(c) || (unsigned char)c >= 0x80) {
            size_t j = i;
            while (j < L->n && (is_name0(s[j]) || is_digit(s[j]) || (unsigned char)s[j] >= 0x80)) j++;
            chat_tok t = {.kind = T_NAME, .line = L->line, .len = j - i};
            if (!(t.s = dup_arena(L->a, s + i, j - i))) return lex_fail(L, "template too large");
            L->pos = j;
            if (push(L, t)) return -1;
            continue;
        }
        if (c == '\'' || c == '"') {
            size_t j = i + 1;
            while (j < L->n && s[j] != c) j += s[j] == '\\' ? 2 : 1;
            if (j >= L->n) return lex_fail(L, "unterminated string literal");
            chat_tok t = {.kind = T_STRING, .line = L->line};
            if (unescape(L, s + i + 1, j - i - 1, &t)) return -1;
            L->line += count_nl(s + i, j - i);
            L->pos = j + 1;
            if (push(L, t)) return -1;
            continue;
        }
        size_t oplen = 0;
        for (size_t k = 0; k < sizeof OPS2 / sizeof *OPS2; k++)
            if (i + 1 < L->n && s[i] == OPS2[k][0] && s[i + 1] == OPS2[k][1]) oplen = 2;
        if (!oplen && strchr(OPS1, c)) oplen = 1;
        if (!oplen) {
            char m[64];
            snprintf(m, sizeof m, "unexpected character '%c' in a tag", c);
            return lex_fail(L, m);
        }
        if (c == '(' || c == '[' || c == '{') {
            if (depth == (int)sizeof stack) return lex_fail(L, "brackets nested too deep");
            stack[depth++] = c == '(' ? ')' : c == '[' ? ']' : '}';
        } else if (c == ')' || c == ']' || c == '}') {
            if (depth == 0 || stack[depth - 1] != c) {
                char m[64];
                snprintf(m, sizeof m, "unexpected '%c'", c);
                return lex_fail(L, m);
            }
            depth--;
        }
        chat_tok t = {.kind = T_OP, .line = L->line, .len = oplen};
        if (!(t.s = dup_arena(L->a, s + i, oplen))) return lex_fail(L, "template too large");
        L->pos += oplen;
        if (push(L, t)) return -1;
    }
}

/* At s[i] = "{%": is this "{%[-+]? raw [-]?%}"? Returns the end of the opener or 0. */
static size_t raw_open(const char *s, size_t i, size_t n, int *strip_after) {
    size_t j = i + 2;
    if (j < n && (s[j] == '-' || s[j] == '+')) j++;
    while (j < n && is_ws(s[j])) j++;
    if (j + 3 > n || strncmp(s + j, "raw", 3)) return 0;
    j += 3;
    size_t k = j;
    while (j < n && is_ws(s[j])) j++;
    *strip_after = 0;
    if (j < n && s[j] == '-') { *strip_after = 1; j++; }
    if (j + 2 > n || strncmp(s + j, "%}", 2)) return 0;
    if (k == j - (*strip_after) && k < n && !is_ws(s[k]) && s[k] != '-' && s[k] != '%') return 0;
    return j + 2;
}

static int lex_raw(lexer *L, size_t body) {
    const char *s = L->src;
    for (size_t i = body; i + 1 < L->n; i++) {
        if (s[i] != '{' || s[i + 1] != '%') continue;
        size_t j = i + 2;
        int sign = 0;
        if (j < L->n && (s[j] == '-' || s[j] == '+')) sign = s[j++];
        while (j < L->n && is_ws(s[j])) j++;
        if (j + 6 > L->n || strncmp(s + j, "endraw", 6)) continue;
        j += 6;
        while (j < L->n && is_ws(s[j])) j++;
        int esign = 0;
        if (j < L->n && (s[j] == '-' || s[j] == '+')) esign = s[j++];
        if (j + 2 > L->n || strncmp(s + j, "%}", 2)) continue;
        j += 2;
        size_t dn = i - body;
        if (sign == '-') while (dn > 0 && is_ws(s[body + dn - 1])) dn--;
        else if (sign != '+') {
            size_t l = dn;
            while (l > 0 && s[body + l - 1] != '\n') l--;
            size_t k = l;
            while (k < dn && is_ws(s[body + k])) k++;
            if (k == dn && dn > l) dn = l;
        }
        if (emit_data(L, s + body, dn, L->line)) return -1;
        if (esign == '-') while (j < L->n && is_ws(s[j])) j++;
        else if (esign != '+' && j < L->n && s[j] == '\n') j++;
        L->line += count_nl(s + L->pos, j - L->pos);
        L->pos = j;
        return 0;
    }
    return lex_fail(L, "missing {% endraw %}");
}

int chat_lex(chat_arena *a, const char *src, size_t len, const char *name, chat_tok **out, moe_err *err) {
    lexer L = {.a = a, .line = 1, .name = name, .err = err};
    char *norm = arena_alloc(a, len + 1);
    if (!norm) return moe_fail(err, "%s: template too large", name);
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '\r') {
            norm[n++] = '\n';
            if (i + 1 < len && src[i + 1] == '\n') i++;
        } else norm[n++] = src[i];
    }
    if (n > 0 && norm[n - 1] == '\n') n--;
    norm[n] = 0;
    L.src = norm;
    L.n = n;
    int line_starting = 1;
    while (L.pos < L.n) {
        const char *s = L.src;
        size_t i = L.pos, tag = L.n;
        for (size_t k = i; k + 1 < L.n; k++)
            if (s[k] == '{' && (s[k + 1] == '{' || s[k + 1] == '%' || s[k + 1] == '#')) { tag = k; break; }
        if (tag == L.n) {
            if (emit_data(&L, s + i, L.n - i, L.line)) return -1;
            break;
        }
        char kind = s[tag + 1];
        char sign = tag + 2 < L.n && (s[tag + 2] == '-' || s[tag + 2] == '+') ? s[tag + 2] : 0;
        size_t dn = tag - i;
        if (sign == '-') {
            while (dn > 0 && is_ws(s[i + dn - 1])) dn--;
        } else if (sign != '+' && kind != '{') {
            size_t l = dn;
            while (l > 0 && s[i + l - 1] != '\n') l--;
            if (l > 0 || line_starting) {
                size_t k = l;
                while (k < dn && is_ws(s[i + k])) k++;
                if (k == dn && dn > l) dn = l;
            }
        }
        int data_line = L.line;
        L.line += count_nl(s + i, tag - i);
        if (emit_data(&L, s + i, dn, data_line)) return -1;
        int raw_strip = 0;
        size_t raw_end = kind == '%' ? raw_open(s, tag, L.n, &raw_strip) : 0;
        if (raw_end) {
            L.pos = raw_end;
            if (raw_strip) while (L.pos < L.n && is_ws(s[L.pos])) { L.line += s[L.pos] == '\n'; L.pos++; }
            if (lex_raw(&L, L.pos)) return -1;
        } else if (kind == '#') {
            size_t j = tag + 2;
            while (j + 1 < L.n && !(s[j] == '#' && s[j + 1] == '}')) j++;
            if (j + 1 >= L.n) return lex_fail(&L, "missing end of comment tag");
            int esign = j > tag + 2 && (s[j - 1] == '-' || s[j - 1] == '+') ? s[j - 1] : 0;
            j += 2;
            if (esign == '-') while (j < L.n && is_ws(s[j])) j++;
            else if (esign != '+' && j < L.n && s[j] == '\n') j++;
            L.line += count_nl(s + tag, j - tag);
            L.pos = j;
        } else {
            chat_tok t = {.kind = kind == '{' ? T_VAR_BEGIN : T_BLOCK_BEGIN, .line = L.line};
            if (push(&L, t)) return -1;
            L.pos = tag + 2 + (sign != 0);
            if (lex_tag(&L, kind == '{')) return -1;
        }
        line_starting = L.pos > 0 && s[L.pos - 1] == '\n';
    }
    chat_tok eof = {.kind = T_EOF, .line = L.line};
    if (push(&L, eof)) return -1;
    *out = L.toks;
    return L.n_toks;
}
