/*
 * chat_value.c - the values a template computes with, printed as Python
 * prints them (str() for output, repr() inside containers, json.dumps for
 * tojson), and the arena they live in.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/chat_internal.h"
#include "tokenizer/tok_internal.h"

/* ------------------------------------------------------------------ arena */

struct chat_chunk {
    chat_chunk *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

void *arena_alloc(chat_arena *a, size_t n) {
    n = (n + 15) & ~(size_t)15;
    if (n == 0) n = 16;
    if (a->limit && (n > a->limit || a->total > a->limit - n)) return NULL;
    chat_chunk *c = a->head;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > (1u << 16) ? n : (1u << 16);
        c = malloc(sizeof *c + cap);
        if (!c) return NULL;
        c->next = a->head;
        c->used = 0;
        c->cap = cap;
        a->head = c;
    }
    void *p = c->data + c->used;
    c->used += n;
    a->total += n;
    memset(p, 0, n);
    return p;
}

void arena_free(chat_arena *a) {
    for (chat_chunk *c = a->head, *nx; c; c = nx) {
        nx = c->next;
        free(c);
    }
    a->head = NULL;
    a->total = 0;
}

/* --------------------------------------------------------------- builders */

void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->cap - b->n <= n) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap - b->n <= n) {
            if (cap > CHAT_MAX_ARENA) rt_fail(b->rt, "string too long");
            cap *= 2;
        }
        char *p = rt_alloc(b->rt, cap);
        if (b->n) memcpy(p, b->p, b->n);
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}
void sb_puts(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }
void sb_printf(sbuf *b, const char *fmt, ...) {
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    sb_put(b, tmp, n < (int)sizeof tmp ? (size_t)n : sizeof tmp - 1);
}
jv sb_finish(sbuf *b) { return jv_str(b->rt, b->p ? b->p : "", b->n); }

jv jv_str(chat_rt *rt, const char *s, size_t n) {
    jv v = {0};
    jstr *js = rt_alloc(rt, sizeof *js + n + 1);
    js->len = n;
    if (n) memcpy(js->s, s, n);
    v.t = JV_STR;
    v.u.s = js;
    return v;
}
jv jv_cstr(chat_rt *rt, const char *s) { return jv_str(rt, s, strlen(s)); }

jv jv_list_new(chat_rt *rt, size_t cap, int tuple) {
    jv v = {0};
    v.t = JV_LIST;
    v.u.l = rt_alloc(rt, sizeof *v.u.l);
    v.u.l->tuple = tuple;
    if (cap) {
        v.u.l->v = rt_alloc(rt, cap * sizeof(jv));
        v.u.l->cap = cap;
    }
    return v;
}

void jv_list_push(chat_rt *rt, jv list, jv item) {
    jlist *l = list.u.l;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        jv *nv = rt_alloc(rt, cap * sizeof *nv);
        if (l->n) memcpy(nv, l->v, l->n * sizeof *nv);
        l->v = nv;
        l->cap = cap;
    }
    l->v[l->n++] = item;
}

jv jv_dict_new(chat_rt *rt, int ns) {
    jv v = {0};
    v.t = ns ? JV_NS : JV_DICT;
    v.u.d = rt_alloc(rt, sizeof *v.u.d);
    return v;
}

static long dict_find(const jdict *d, jv key) {
    for (size_t i = 0; i < d->n; i++)
        if (jv_equal(d->k[i], key)) return (long)i;
    return -1;
}

void jv_dict_set(chat_rt *rt, jv dict, jv key, jv val) {
    jdict *d = dict.u.d;
    long i = dict_find(d, key);
    if (i >= 0) {
        d->v[i] = val;
        return;
    }
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 8;
        jv *nk = rt_alloc(rt, cap * sizeof *nk), *nv = rt_alloc(rt, cap * sizeof *nv);
        if (d->n) {
            memcpy(nk, d->k, d->n * sizeof *nk);
            memcpy(nv, d->v, d->n * sizeof *nv);
        }
        d->k = nk;
        d->v = nv;
        d->cap = cap;
    }
    d->k[d->n] = key;
    d->v[d->n++] = val;
}

int jv_dict_get(jv dict, jv key, jv *val) {
    long i = dict_find(dict.u.d, key);
    if (i < 0) return 0;
    *val = dict.u.d->v[i];
    return 1;
}

int jv_dict_get_str(jv dict, const char *key, jv *val) {
    jdict *d = dict.u.d;
    size_t n = strlen(key);
    for (size_t i = 0; i < d->n; i++)
        if (d->k[i].t == JV_STR && d->k[i].u.s->len == n && !memcmp(d->k[i].u.s->s, key, n)) {
            *val = d->v[i];
            return 1;
        }
    return 0;
}

/* ----------------------------------------------------------- comparisons */

int jv_truthy(jv v) {
    switch (v.t) {
    case JV_UNDEF: case JV_NONE: return 0;
    case JV_BOOL: return v.u.b;
    case JV_INT: return v.u.i != 0;
    case JV_FLOAT: return v.u.f != 0;
    case JV_STR: return v.u.s->len != 0;
    case JV_LIST: return v.u.l->view == JL_GENERATOR || v.u.l->n != 0;
    case JV_DICT: return v.u.d->n != 0;
    default: return 1;
    }
}

static int is_num(jv v) { return v.t == JV_BOOL || v.t == JV_INT || v.t == JV_FLOAT; }
static double num(jv v) { return v.t == JV_FLOAT ? v.u.f : v.t == JV_INT ? (double)v.u.i : v.u.b; }

int jv_equal(jv a, jv b) {
    if (is_num(a) && is_num(b)) {
        if (a.t != JV_FLOAT && b.t != JV_FLOAT) return (a.t == JV_INT ? a.u.i : a.u.b) == (b.t == JV_INT ? b.u.i : b.u.b);
        return num(a) == num(b);
    }
    if (a.t != b.t) return 0;
    switch (a.t) {
    case JV_UNDEF: case JV_NONE: return 1;
    case JV_STR: return a.u.s->len == b.u.s->len && !memcmp(a.u.s->s, b.u.s->s, a.u.s->len);
    case JV_LIST:
        if (a.u.l->view == JL_GENERATOR || b.u.l->view == JL_GENERATOR) return a.u.l == b.u.l;
        if (a.u.l->tuple != b.u.l->tuple || a.u.l->view != b.u.l->view || a.u.l->n != b.u.l->n) return 0;
        for (size_t i = 0; i < a.u.l->n; i++)
            if (!jv_equal(a.u.l->v[i], b.u.l->v[i])) return 0;
        return 1;
    case JV_DICT:
        if (a.u.d->n != b.u.d->n) return 0;
        for (size_t i = 0; i < a.u.d->n; i++) {
            jv o;
            if (!jv_dict_get(b, a.u.d->k[i], &o) || !jv_equal(a.u.d->v[i], o)) return 0;
        }
        return 1;
    default: return a.u.d == b.u.d;
    }
}

int jv_compare(chat_rt *rt, jv a, jv b) {
    if (is_num(a) && is_num(b)) {
        if (a.t != JV_FLOAT && b.t != JV_FLOAT) {
            int64_t x = a.t == JV_INT ? a.u.i : a.u.b, y = b.t == JV_INT ? b.u.i : b.u.b;
            return (x > y) - (x < y);
        }
        double x = num(a), y = num(b);
        return (x > y) - (x < y);
    }
    if (a.t == JV_STR && b.t == JV_STR) {
        size_t n = a.u.s->len < b.u.s->len ? a.u.s->len : b.u.s->len;
        int c = memcmp(a.u.s->s, b.u.s->s, n); /* UTF-8 byte order = code point order */
        if (c) return c;
        return (a.u.s->len > b.u.s->len) - (a.u.s->len < b.u.s->len);
    }
    if (a.t == JV_LIST && b.t == JV_LIST && a.u.l->tuple == b.u.l->tuple) {
        size_t n = a.u.l->n < b.u.l->n ? a.u.l->n : b.u.l->n;
        for (size_t i = 0; i < n; i++) {
            if (jv_equal(a.u.l->v[i], b.u.l->v[i])) continue;
            return jv_compare(rt, a.u.l->v[i], b.u.l->v[i]);
        }
        return (a.u.l->n > b.u.l->n) - (a.u.l->n < b.u.l->n);
    }
    rt_fail(rt, "'<' not supported between instances of '%s' and '%s'", jv_type_name(a), jv_type_name(b));
}

const char *jv_type_name(jv v) {
    switch (v.t) {
    case JV_UNDEF: return "Undefined";
    case JV_NONE: return "NoneType";
    case JV_BOOL: return "bool";
    case JV_INT: return "int";
    case JV_FLOAT: return "float";
    case JV_STR: return "str";
    case JV_LIST: {
        static const char *const views[] = {"list", "generator", "dict_items", "dict_keys", "dict_values", "range"};
        return v.u.l->tuple ? "tuple" : views[v.u.l->view];
    }
    case JV_DICT: return "dict";
    case JV_NS: return "Namespace";
    default: return "function";
    }
}

/* ---------------------------------------------------------------- UTF-8 */

size_t utf8_count(const char *s, size_t n) {
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

size_t utf8_offset(const char *s, size_t n, size_t cps) {
    size_t i = 0;
    while (i < n && cps > 0) {
        i++;
        while (i < n && ((unsigned char)s[i] & 0xC0) == 0x80) i++;
        cps--;
    }
    return i;
}

int py_isspace(int32_t cp) {
    return (cp >= 9 && cp <= 13) || (cp >= 0x1c && cp <= 0x20) || cp == 0x85 || cp == 0xa0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 || cp == 0x202f || cp == 0x205f ||
           cp == 0x3000;
}

/* ---------------------------------------------------------------- printing */

/* Python's repr(float): the shortest digits that read back the same, in
 * fixed notation for exponents -5..15 and scientific outside. */
void py_float_repr(char *out, size_t cap, double f) {
    if (isnan(f)) { snprintf(out, cap, "nan"); return; }
    if (isinf(f)) { snprintf(out, cap, f < 0 ? "-inf" : "inf"); return; }
    char buf[64];
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*e", prec - 1, f);
        if (strtod(buf, NULL) == f) break;
    }
    /* buf = [-]d.ddde[+-]XX */
    int neg = buf[0] == '-';
    char digits[32];
    int nd = 0;
    const char *p = buf + neg;
    for (; *p && *p != 'e'; p++)
        if (*p != '.') digits[nd++] = *p;
    int exp = atoi(p + 1);
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    digits[nd] = 0;
    char *o = out;
    size_t left = cap;
#define EMIT(...) do { int k_ = snprintf(o, left, __VA_ARGS__); if (k_ < 0 || (size_t)k_ >= left) return; o += k_; left -= (size_t)k_; } while (0)
    if (neg) EMIT("-");
    if (exp < -4 || exp >= 16) {
        EMIT("%c", digits[0]);
        if (nd > 1) EMIT(".%s", digits + 1);
        EMIT("e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    } else if (exp < 0) {
        EMIT("0.");
        for (int i = 0; i < -exp - 1; i++) EMIT("0");
        EMIT("%s", digits);
    } else {
        for (int i = 0; i <= exp; i++) EMIT("%c", i < nd ? digits[i] : '0');
        EMIT(".");
        if (nd > exp + 1) EMIT("%s", digits + exp + 1);
        else EMIT("0");
    }
#undef EMIT
}

static int py_printable(int32_t cp) {
    if (cp < 0x20 || cp == 0x7f) return 0;
    if (cp >= 0x80 && cp < 0xa0) return 0;
    if (cp == 0xad) return 0;
    if (py_isspace(cp) && cp != ' ') return 0;
    if ((cp >= 0xD800 && cp < 0xE000) || (cp >= 0xE000 && cp < 0xF900) || cp >= 0xF0000) return 0;
    if (cp == 0x200b || cp == 0x200c || cp == 0x200d || cp == 0x200e || cp == 0x200f || cp == 0xfeff ||
        (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2060 && cp <= 0x2064))
        return 0;
    return 1;
}

static void write_str_repr(sbuf *b, const jstr *s) {
    int has_sq = memchr(s->s, '\'', s->len) != NULL, has_dq = memchr(s->s, '"', s->len) != NULL;
    char q = has_sq && !has_dq ? '"' : '\'';
    sb_put(b, &q, 1);
    for (size_t i = 0; i < s->len;) {
        int l;
        int32_t cp = utf8_decode(s->s + i, &l);
        if (cp == q || cp == '\\') {
            char e[2] = {'\\', (char)cp};
            sb_put(b, e, 2);
        } else if (cp == '\n') sb_puts(b, "\\n");
        else if (cp == '\r') sb_puts(b, "\\r");
        else if (cp == '\t') sb_puts(b, "\\t");
        else if (!py_printable(cp)) {
            if (cp < 0x100) sb_printf(b, "\\x%02x", cp);
            else if (cp < 0x10000) sb_printf(b, "\\u%04x", cp);
            else sb_printf(b, "\\U%08x", cp);
        } else sb_put(b, s->s + i, (size_t)l);
        i += (size_t)l;
    }
    sb_put(b, &q, 1);
}

static void write_value(sbuf *b, jv v, int repr) {
    char tmp[64];
    switch (v.t) {
    case JV_UNDEF: if (repr) sb_puts(b, "Undefined"); return;
    case JV_NONE: sb_puts(b, "None"); return;
    case JV_BOOL: sb_puts(b, v.u.b ? "True" : "False"); return;
    case JV_INT: sb_printf(b, "%lld", (long long)v.u.i); return;
    case JV_FLOAT: py_float_repr(tmp, sizeof tmp, v.u.f); sb_puts(b, tmp); return;
    case JV_STR:
        if (repr) write_str_repr(b, v.u.s);
        else sb_put(b, v.u.s->s, v.u.s->len);
        return;
    case JV_LIST: {
        const jlist *l = v.u.l;
        if (l->view == JL_GENERATOR) { sb_puts(b, "<generator object>"); return; }
        if (l->view == JL_RANGE) {
            sb_printf(b, "range(%lld, %lld", (long long)l->range[0], (long long)l->range[1]);
            if (l->range[2] != 1) sb_printf(b, ", %lld", (long long)l->range[2]);
            sb_puts(b, ")");
            return;
        }
        if (l->view != JL_PLAIN) sb_printf(b, "%s(", jv_type_name(v));
        sb_puts(b, l->tuple ? "(" : "[");
        for (size_t i = 0; i < l->n; i++) {
            if (i) sb_puts(b, ", ");
            write_value(b, l->v[i], 1);
        }
        if (l->tuple && l->n == 1) sb_puts(b, ",");
        sb_puts(b, l->tuple ? ")" : "]");
        if (l->view != JL_PLAIN) sb_puts(b, ")");
        return;
    }
    case JV_DICT: case JV_NS: {
        const jdict *d = v.u.d;
        sb_puts(b, v.t == JV_NS ? "<Namespace {" : "{");
        for (size_t i = 0; i < d->n; i++) {
            if (i) sb_puts(b, ", ");
            write_value(b, d->k[i], 1);
            sb_puts(b, ": ");
            write_value(b, d->v[i], 1);
        }
        sb_puts(b, v.t == JV_NS ? "}>" : "}");
        return;
    }
    case JV_FUNC:
        sb_printf(b, "<function %s>", v.u.fn->name ? v.u.fn->name : "?");
        return;
    }
}

void jv_write_str(sbuf *b, jv v) { write_value(b, v, 0); }
void jv_write_repr(sbuf *b, jv v) { write_value(b, v, 1); }

jv html_escape(chat_rt *rt, jv v) {
    if (v.t == JV_STR && v.markup) return v;
    jv s = jv_to_str(rt, v);
    sbuf b = {.rt = rt};
    sb_put(&b, "", 0);
    for (size_t i = 0; i < s.u.s->len; i++) {
        char c = s.u.s->s[i];
        switch (c) {
        case '&': sb_puts(&b, "&amp;"); break;
        case '<': sb_puts(&b, "&lt;"); break;
        case '>': sb_puts(&b, "&gt;"); break;
        case '"': sb_puts(&b, "&#34;"); break;
        case '\'': sb_puts(&b, "&#39;"); break;
        default: sb_put(&b, &c, 1);
        }
    }
    jv r = sb_finish(&b);
    r.markup = 1;
    return r;
}

jv jv_to_str(chat_rt *rt, jv v) {
    if (v.t == JV_STR) return v;
    sbuf b = {.rt = rt};
    jv_write_str(&b, v);
    return sb_finish(&b);
}

/* ------------------------------------------------------------------- JSON */

static void json_string(sbuf *b, const jstr *s) {
    sb_puts(b, "\"");
    size_t run = 0;
    for (size_t i = 0; i < s->len; i++) {
        unsigned char c = (unsigned char)s->s[i];
        const char *e = NULL;
        char u[8];
        switch (c) {
        case '"': e = "\\\""; break;
        case '\\': e = "\\\\"; break;
        case '\n': e = "\\n"; break;
        case '\r': e = "\\r"; break;
        case '\t': e = "\\t"; break;
        case '\b': e = "\\b"; break;
        case '\f': e = "\\f"; break;
        default:
            if (c < 0x20) {
                snprintf(u, sizeof u, "\\u%04x", c);
                e = u;
            }
        }
        if (e) {
            sb_put(b, s->s + run, i - run);
            sb_puts(b, e);
            run = i + 1;
        }
    }
    sb_put(b, s->s + run, s->len - run);
    sb_puts(b, "\"");
}

static void json_newline(sbuf *b, int indent, int level) {
    sb_puts(b, "\n");
    for (int i = 0; i < indent * level; i++) sb_puts(b, " ");
}

static int key_cmp_rt(chat_rt *rt, jv a, jv b) { return jv_compare(rt, a, b); }

void jv_write_json(chat_rt *rt, sbuf *b, jv v, int indent, const char *item_sep, const char *key_sep, int sort_keys,
                   int level) {
    char tmp[64];
    if (level > CHAT_MAX_DEPTH) rt_fail(rt, "tojson: value nested too deep");
    if (!item_sep) item_sep = indent >= 0 ? "," : ", ";
    if (!key_sep) key_sep = ": ";
    switch (v.t) {
    case JV_NONE: sb_puts(b, "null"); return;
    case JV_BOOL: sb_puts(b, v.u.b ? "true" : "false"); return;
    case JV_INT: sb_printf(b, "%lld", (long long)v.u.i); return;
    case JV_FLOAT:
        if (isnan(v.u.f)) sb_puts(b, "NaN");
        else if (isinf(v.u.f)) sb_puts(b, v.u.f < 0 ? "-Infinity" : "Infinity");
        else {
            py_float_repr(tmp, sizeof tmp, v.u.f);
            sb_puts(b, tmp);
        }
        return;
    case JV_STR: json_string(b, v.u.s); return;
    case JV_LIST: {
        const jlist *l = v.u.l;
        if (l->view != JL_PLAIN) rt_fail(rt, "Object of type %s is not JSON serializable", jv_type_name(v));
        if (!l->n) { sb_puts(b, "[]"); return; }
        sb_puts(b, "[");
        for (size_t i = 0; i < l->n; i++) {
            if (i) sb_puts(b, item_sep);
            if (indent >= 0) json_newline(b, indent, level + 1);
            jv_write_json(rt, b, l->v[i], indent, item_sep, key_sep, sort_keys, level + 1);
        }
        if (indent >= 0) json_newline(b, indent, level);
        sb_puts(b, "]");
        return;
    }
    case JV_DICT: {
        const jdict *d = v.u.d;
        if (!d->n) { sb_puts(b, "{}"); return; }
        size_t *order = rt_alloc(rt, d->n * sizeof *order);
        for (size_t i = 0; i < d->n; i++) order[i] = i;
        if (sort_keys) /* insertion sort: stable, no comparator context needed */
            for (size_t i = 1; i < d->n; i++)
                for (size_t j = i; j > 0 && key_cmp_rt(rt, d->k[order[j - 1]], d->k[order[j]]) > 0; j--) {
                    size_t t = order[j];
                    order[j] = order[j - 1];
                    order[j - 1] = t;
                }
        sb_puts(b, "{");
        for (size_t i = 0; i < d->n; i++) {
            jv k = d->k[order[i]];
            if (i) sb_puts(b, item_sep);
            if (indent >= 0) json_newline(b, indent, level + 1);
            if (k.t == JV_STR) json_string(b, k.u.s);
            else if (k.t == JV_INT || k.t == JV_FLOAT || k.t == JV_BOOL || k.t == JV_NONE) {
                sbuf kb = {.rt = rt};
                jv_write_json(rt, &kb, k, -1, NULL, NULL, 0, level + 1);
                sb_puts(b, "\"");
                sb_put(b, kb.p, kb.n);
                sb_puts(b, "\"");
            } else rt_fail(rt, "tojson: keys must be str, int, float, bool or None, not %s", jv_type_name(k));
            sb_puts(b, key_sep);
            jv_write_json(rt, b, d->v[order[i]], indent, item_sep, key_sep, sort_keys, level + 1);
        }
        if (indent >= 0) json_newline(b, indent, level);
        sb_puts(b, "}");
        return;
    }
    default:
        rt_fail(rt, "Object of type %s is not JSON serializable", jv_type_name(v));
    }
}

/* Which JSON number literals of text are floats (have '.', 'e' or 'E'), in
 * document order: cJSON keeps only a double, Python keeps 1 and 1.0 apart. */
unsigned char *json_float_flags(chat_rt *rt, const char *text, size_t n, size_t *count) {
    size_t cnt = 0, cap = 64;
    unsigned char *f = rt_alloc(rt, cap);
    for (size_t i = 0; i < n; i++) {
        char c = text[i];
        if (c == '"') {
            for (i++; i < n && text[i] != '"'; i++)
                if (text[i] == '\\') i++;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            int is_float = 0;
            while (i < n && (strchr("+-.eE", text[i]) || (text[i] >= '0' && text[i] <= '9'))) {
                if (text[i] == '.' || text[i] == 'e' || text[i] == 'E') is_float = 1;
                i++;
            }
            i--;
            if (cnt == cap) {
                unsigned char *nf = rt_alloc(rt, cap * 2);
                memcpy(nf, f, cap);
                f = nf;
                cap *= 2;
            }
            f[cnt++] = (unsigned char)is_float;
        }
    }
    *count = cnt;
    return f;
}

jv jv_from_cjson(chat_rt *rt, const cJSON *j, const unsigned char *flags, size_t n_flags, size_t *idx) {
    if (cJSON_IsNull(j)) return jv_none();
    if (cJSON_IsBool(j)) return jv_bool(cJSON_IsTrue(j));
    if (cJSON_IsNumber(j)) {
        double d = j->valuedouble;
        int is_float = *idx < n_flags ? flags[*idx] : 1;
        (*idx)++;
        if (!is_float && d == floor(d) && fabs(d) < 9.2e18) return jv_int((int64_t)d);
        return jv_float(d);
    }
    if (cJSON_IsString(j)) return jv_cstr(rt, j->valuestring);
    if (cJSON_IsArray(j)) {
        jv l = jv_list_new(rt, (size_t)cJSON_GetArraySize(j), 0);
        for (const cJSON *c = j->child; c; c = c->next) jv_list_push(rt, l, jv_from_cjson(rt, c, flags, n_flags, idx));
        return l;
    }
    if (cJSON_IsObject(j)) {
        jv d = jv_dict_new(rt, 0);
        for (const cJSON *c = j->child; c; c = c->next)
            jv_dict_set(rt, d, jv_cstr(rt, c->string), jv_from_cjson(rt, c, flags, n_flags, idx));
        return d;
    }
    return jv_none();
}
