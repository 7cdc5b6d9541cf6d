/*
 * chat_filters.c - jinja2's builtin filters and tests that chat templates
 * use, each behaving as its jinja2 original (transformers' tojson in place
 * of jinja2's). Filters that return generators in jinja2 (map, select,
 * selectattr, reject, rejectattr, unique, batch, items, reverse) return
 * JL_GENERATOR lists, so |length and |tojson refuse them as Python does.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tokenizer/chat_internal.h"
#include "tokenizer/tok_internal.h"

/* ------------------------------------------------------------------ tests */

static const char *const TESTS[] = {"defined", "undefined", "none", "string", "mapping", "iterable", "sequence",
    "number", "integer", "float", "boolean", "true", "false", "equalto", "eq", "==", "ne", "!=", "in", "odd", "even",
    "divisibleby", "callable", "lower", "upper", "sameas", "gt", "ge", "lt", "le", ">", ">=", "<", "<=",
    "greaterthan", "lessthan", "escaped", "filter", "test", NULL};

int chat_test_known(const char *name) { return in_list(TESTS, name); }

int apply_test(chat_rt *rt, chat_frame *f, const char *name, jv x, jv *args, int n_args) {
    (void)f;
    jv y = n_args > 0 ? args[0] : jv_undef();
    if (!strcmp(name, "defined")) return x.t != JV_UNDEF;
    if (!strcmp(name, "undefined")) return x.t == JV_UNDEF;
    if (!strcmp(name, "none")) return x.t == JV_NONE;
    if (!strcmp(name, "string")) return x.t == JV_STR;
    if (!strcmp(name, "mapping")) return x.t == JV_DICT;
    if (!strcmp(name, "iterable")) return x.t == JV_STR || x.t == JV_LIST || x.t == JV_DICT || x.t == JV_UNDEF;
    if (!strcmp(name, "sequence"))
        return x.t == JV_STR || (x.t == JV_LIST && (x.u.l->view == JL_PLAIN || x.u.l->view == JL_RANGE)) || x.t == JV_DICT ||
               x.t == JV_UNDEF;
    if (!strcmp(name, "number")) return x.t == JV_INT || x.t == JV_FLOAT || x.t == JV_BOOL;
    if (!strcmp(name, "integer")) return x.t == JV_INT;
    if (!strcmp(name, "float")) return x.t == JV_FLOAT;
    if (!strcmp(name, "boolean")) return x.t == JV_BOOL;
    if (!strcmp(name, "true")) return x.t == JV_BOOL && x.u.b;
    if (!strcmp(name, "false")) return x.t == JV_BOOL && !x.u.b;
    if (!strcmp(name, "callable")) return x.t == JV_FUNC || x.t == JV_UNDEF; /* Undefined has __call__ */
    if (!strcmp(name, "escaped")) return 0;
    if (!strcmp(name, "filter")) return y.t == JV_STR && chat_filter_known(y.u.s->s);
    if (!strcmp(name, "test")) return y.t == JV_STR && chat_test_known(y.u.s->s);
    if (!strcmp(name, "lower") || !strcmp(name, "upper")) /* str(x).islower() / .isupper() */
        return jv_truthy(call_method(rt, jv_to_str(rt, x), name[0] == 'l' ? "islower" : "isupper", NULL, 0, NULL, NULL, 0));
    if (n_args == (name[0] == 'd') && (!strcmp(name, "odd") || !strcmp(name, "even") || !strcmp(name, "divisibleby"))) {
        /* jinja2: value % 2 == 1, value % 2 == 0, value % num == 0 */
        jv m = binop(rt, OP_MOD, x, !strcmp(name, "divisibleby") ? y : jv_int(2));
        return jv_equal(m, jv_int(name[0] == 'o' ? 1 : 0));
    }
    if (n_args != 1) rt_fail(rt, "test '%s' takes one argument", name);
    if (!strcmp(name, "equalto") || !strcmp(name, "eq") || !strcmp(name, "==")) return jv_equal(x, y);
    if (!strcmp(name, "ne") || !strcmp(name, "!=")) return !jv_equal(x, y);
    if (!strcmp(name, "sameas")) return x.t == y.t && (x.t <= JV_BOOL ? jv_equal(x, y) : x.u.s == y.u.s);
    if (!strcmp(name, "in")) return jv_contains(rt, y, x);
    if (!strcmp(name, "gt") || !strcmp(name, ">") || !strcmp(name, "greaterthan")) return jv_compare(rt, x, y) > 0;
    if (!strcmp(name, "ge") || !strcmp(name, ">=")) return jv_compare(rt, x, y) >= 0;
    if (!strcmp(name, "lt") || !strcmp(name, "<") || !strcmp(name, "lessthan")) return jv_compare(rt, x, y) < 0;
    if (!strcmp(name, "le") || !strcmp(name, "<=")) return jv_compare(rt, x, y) <= 0;
    rt_fail(rt, "unsupported feature: test '%s'", name);
}

/* ----------------------------------------------------------------- filters */

static const char *const FILTERS[] = {"trim", "length", "count", "tojson", "items", "string", "upper", "lower",
    "replace", "join", "first", "last", "default", "d", "selectattr", "rejectattr", "select", "reject", "map", "list",
    "int", "float", "round", "capitalize", "title", "indent", "safe", "abs", "unique", "sort", "dictsort", "escape",
    "e", "wordcount", "min", "max", "sum", "batch", "reverse", "center", "attr", NULL};

int chat_filter_known(const char *name) { return in_list(FILTERS, name); }

static jv generator(jv l) {
    l.u.l->view = JL_GENERATOR;
    return l;
}

/* environment.getitem over a dotted path: "a.b.0" */
static jv attr_path(chat_rt *rt, jv x, const jstr *path) {
    size_t i = 0;
    while (i <= path->len) {
        size_t j = i;
        while (j < path->len && path->s[j] != '.') j++;
        jv part = jv_str(rt, path->s + i, j - i);
        int digits = j > i;
        for (size_t k = i; k < j; k++) digits &= path->s[k] >= '0' && path->s[k] <= '9';
        if (digits) part = jv_int(strtoll(part.u.s->s, NULL, 10));
        x = get_item(rt, x, part);
        i = j + 1;
        if (j == path->len) break;
    }
    return x;
}

/* select/reject/selectattr/rejectattr: test on each item (or its attribute) */
static jv filter_select(chat_rt *rt, chat_frame *f, jv x, const fargs *a, int by_attr, int keep) {
    if (!jv_truthy(x)) return generator(jv_list_new(rt, 0, 0)); /* jinja2: "if value:" */
    jlist *items = jv_iter(rt, x);
    int p = 0;
    const jstr *path = NULL;
    if (by_attr) path = need_str(rt, arg(a, p++, NULL, jv_undef()), "selectattr");
    jv test = arg(a, p++, NULL, jv_undef());
    jv out = jv_list_new(rt, 0, 0);
    for (size_t i = 0; i < items->n; i++) {
        rt_step(rt);
        jv v = by_attr ? attr_path(rt, items->v[i], path) : items->v[i];
        int ok;
        if (test.t == JV_UNDEF) ok = jv_truthy(v);
        else {
            const char *tn = need_str(rt, test, "select")->s;
            if (!chat_test_known(tn)) rt_fail(rt, "unsupported feature: test '%s'", tn);
            ok = apply_test(rt, f, tn, v, a->args + p, a->n_args > p ? a->n_args - p : 0);
        }
        if (ok == keep) jv_list_push(rt, out, items->v[i]);
    }
    return generator(out);
}

static int sort_cmp(chat_rt *rt, jv a, jv b, int case_sensitive) {
    if (!case_sensitive && a.t == JV_STR && b.t == JV_STR) {
        a = str_case(rt, a.u.s, 1);
        b = str_case(rt, b.u.s, 1);
    }
    return jv_compare(rt, a, b);
}

/* stable merge sort of v[0..n) by key k (keys parallel to v) */
static void sort_by(chat_rt *rt, jv *v, jv *k, size_t n, int case_sensitive, int reverse) {
    if (n < 2) return;
    jv *tv = rt_alloc(rt, n * sizeof *tv), *tk = rt_alloc(rt, n * sizeof *tk);
    for (size_t w = 1; w < n; w *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * w) {
            size_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n, i = lo, j = mid, o = lo;
            while (i < mid || j < hi) {
                int take_left = j >= hi || (i < mid && (reverse ? sort_cmp(rt, k[j], k[i], case_sensitive) <= 0
                                                                : sort_cmp(rt, k[i], k[j], case_sensitive) <= 0));
                if (take_left) { tv[o] = v[i]; tk[o++] = k[i++]; }
                else { tv[o] = v[j]; tk[o++] = k[j++]; }
            }
        }
        memcpy(v, tv, n * sizeof *v);
        memcpy(k, tk, n * sizeof *k);
    }
}

static jv copy_list(chat_rt *rt, jlist *l) {
    jv out = jv_list_new(rt, l->n, 0);
    for (size_t i = 0; i < l->n; i++) jv_list_push(rt, out, l->v[i]);
    return out;
}

static jv filter_tojson(chat_rt *rt, jv x, const fargs *a) {
    static const char *const kn[] = {"ensure_ascii", "indent", "separators", "sort_keys", NULL};
    check_args(rt, "tojson", a, 4, kn);
    int ascii = jv_truthy(arg(a, 0, "ensure_ascii", jv_bool(0)));
    jv ind = arg(a, 1, "indent", jv_none()), seps = arg(a, 2, "separators", jv_none());
    int indent = -1;
    if (ind.t == JV_INT || ind.t == JV_BOOL) indent = (int)(need_int(rt, ind, "tojson indent") < 0 ? 0 : ind.u.i);
    else if (ind.t != JV_NONE) rt_fail(rt, "unsupported feature: tojson indent of type %s", jv_type_name(ind));
    if (indent > 64) rt_fail(rt, "tojson: indent %d too large", indent);
    const char *is = NULL, *ks = NULL;
    if (seps.t == JV_LIST && seps.u.l->n == 2) {
        is = need_str(rt, seps.u.l->v[0], "tojson separators")->s;
        ks = need_str(rt, seps.u.l->v[1], "tojson separators")->s;
    } else if (seps.t != JV_NONE) rt_fail(rt, "tojson: separators must be a pair of strings");
    sbuf b = {.rt = rt};
    sb_put(&b, "", 0);
    jv_write_json(rt, &b, x, indent, is, ks, jv_truthy(arg(a, 3, "sort_keys", jv_bool(0))), 0);
    if (!ascii) return sb_finish(&b);
    sbuf e = {.rt = rt};
    sb_put(&e, "", 0);
    for (size_t i = 0; i < b.n;) {
        int l;
        int32_t cp = cp_at(b.p, b.n, i, &l);
        if (cp < 0x80) sb_put(&e, b.p + i, 1);
        else if (cp < 0x10000) sb_printf(&e, "\\u%04x", cp);
        else sb_printf(&e, "\\u%04x\\u%04x", 0xD800 + ((cp - 0x10000) >> 10), 0xDC00 + ((cp - 0x10000) & 0x3FF));
        i += (size_t)l;
    }
    return sb_finish(&e);
}

/* Python str.splitlines() boundaries */
static size_t line_break(const char *s, size_t n, size_t i, size_t *brk_len) {
    for (; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\r') { *brk_len = i + 1 < n && s[i + 1] == '\n' ? 2 : 1; return i; }
        if (c == '\n' || c == '\v' || c == '\f' || (c >= 0x1c && c <= 0x1e)) { *brk_len = 1; return i; }
        if (c == 0xc2 && i + 1 < n && (unsigned char)s[i + 1] == 0x85) { *brk_len = 2; return i; }
        if (c == 0xe2 && i + 2 < n && (unsigned char)s[i + 1] == 0x80 && ((unsigned char)s[i + 2] == 0xa8 || (unsigned char)s[i + 2] == 0xa9)) {
            *brk_len = 3;
            return i;
        }
    }
    *brk_len = 0;
    return n;
}

static jv filter_indent(chat_rt *rt, jv x, const fargs *a) {
    static const char *const kn[] = {"width", "first", "blank", NULL};
    check_args(rt, "indent", a, 3, kn);
    jv w = arg(a, 0, "width", jv_int(4));
    jv ind = w.t == JV_STR ? w : binop(rt, OP_MUL, jv_cstr(rt, " "), jv_int(need_int(rt, w, "indent width")));
    int first = jv_truthy(arg(a, 1, "first", jv_bool(0))), blank = jv_truthy(arg(a, 2, "blank", jv_bool(0)));
    jv s = binop(rt, OP_ADD, jv_to_str(rt, x), jv_cstr(rt, "\n"));
    const jstr *t = s.u.s;
    sbuf b = {.rt = rt};
    sb_put(&b, "", 0);
    if (first) sb_put(&b, ind.u.s->s, ind.u.s->len);
    int line_no = 0;
    for (size_t i = 0; i < t->len;) {
        size_t bl, e = line_break(t->s, t->len, i, &bl);
        if (line_no > 0) {
            sb_puts(&b, "\n");
            if (blank || e > i) sb_put(&b, ind.u.s->s, ind.u.s->len);
        }
        sb_put(&b, t->s + i, e - i);
        line_no++;
        i = e + bl;
    }
    return sb_finish(&b);
}

static jv filter_minmax_sum(chat_rt *rt, const char *name, jv x, const fargs *a) {
    static const char *const kn[] = {"case_sensitive", "attribute", "start", NULL};
    check_args(rt, name, a, name[1] == 'u' ? 2 : 2, kn);
    jlist *items = jv_iter(rt, x);
    jv attr = name[1] == 'u' ? arg(a, 0, "attribute", jv_none()) : arg(a, 1, "attribute", jv_none());
    if (name[1] == 'u') {
        jv acc = arg(a, 1, "start", jv_int(0));
        for (size_t i = 0; i < items->n; i++)
            acc = binop(rt, OP_ADD, acc, attr.t == JV_STR ? attr_path(rt, items->v[i], attr.u.s) : items->v[i]);
        return acc;
    }
    int cs = jv_truthy(arg(a, 0, "case_sensitive", jv_bool(0)));
    if (!items->n) {
        jv u = jv_undef();
        u.undef_name = "No aggregated item, sequence was empty.";
        return u;
    }
    size_t best = 0;
    for (size_t i = 1; i < items->n; i++) {
        jv p = attr.t == JV_STR ? attr_path(rt, items->v[i], attr.u.s) : items->v[i];
        jv q = attr.t == JV_STR ? attr_path(rt, items->v[best], attr.u.s) : items->v[best];
        int c = sort_cmp(rt, p, q, cs);
        if (name[1] == 'i' ? c < 0 : c > 0) best = i;
    }
    return items->v[best];
}

jv apply_filter(chat_rt *rt, chat_frame *f, const char *name, jv x, jv *args, int n_args, const char **kw_names,
                jv *kw_vals, int n_kw) {
    fargs a = {args, n_args, kw_names, kw_vals, n_kw};
    rt_step(rt);
    if (!strcmp(name, "safe")) {
        jv m = jv_to_str(rt, x);
        m.markup = 1;
        return m;
    }
    if (!strcmp(name, "default") || !strcmp(name, "d")) {
        jv def = arg(&a, 0, "default_value", jv_cstr(rt, ""));
        int boolean = jv_truthy(arg(&a, 1, "boolean", jv_bool(0)));
        return (x.t == JV_UNDEF || (boolean && !jv_truthy(x))) ? def : x;
    }
    if (!strcmp(name, "length") || !strcmp(name, "count")) {
        if (x.t == JV_STR) return jv_int((int64_t)utf8_count(x.u.s->s, x.u.s->len));
        if (x.t == JV_LIST && x.u.l->view == JL_GENERATOR) rt_fail(rt, "object of type 'generator' has no len()");
        if (x.t == JV_LIST) return jv_int((int64_t)x.u.l->n);
        if (x.t == JV_DICT || x.t == JV_NS) return jv_int((int64_t)x.u.d->n);
        if (x.t == JV_UNDEF) return jv_int(0);
        rt_fail(rt, "object of type '%s' has no len()", jv_type_name(x));
    }
    if (!strcmp(name, "tojson")) return filter_tojson(rt, x, &a);
    if (!strcmp(name, "string")) return jv_to_str(rt, x);
    if (!strcmp(name, "items")) {
        if (x.t == JV_UNDEF) return generator(jv_list_new(rt, 0, 0));
        if (x.t != JV_DICT) rt_fail(rt, "Can only get item pairs from a mapping.");
        jv it = copy_list(rt, dict_items(rt, x, 0).u.l);
        return generator(it);
    }
    if (!strcmp(name, "list")) return copy_list(rt, jv_iter(rt, x));
    if (!strcmp(name, "first") || !strcmp(name, "last")) {
        jlist *l = jv_iter(rt, x);
        if (!l->n) {
            jv u = jv_undef();
            u.undef_name = name[0] == 'f' ? "No first item, sequence was empty." : "No last item, sequence was empty.";
            return u;
        }
        if (name[0] == 'l' && x.t == JV_LIST && x.u.l->view == JL_GENERATOR)
            rt_fail(rt, "'generator' object is not reversible");
        return l->v[name[0] == 'f' ? 0 : l->n - 1];
    }
    if (!strcmp(name, "reverse")) {
        if (x.t == JV_STR) {
            jlist *l = jv_iter(rt, x);
            sbuf b = {.rt = rt};
            sb_put(&b, "", 0);
            for (size_t i = l->n; i > 0; i--) sb_put(&b, l->v[i - 1].u.s->s, l->v[i - 1].u.s->len);
            return sb_finish(&b);
        }
        jlist *l = jv_iter(rt, x);
        jv out = jv_list_new(rt, l->n, 0);
        for (size_t i = l->n; i > 0; i--) jv_list_push(rt, out, l->v[i - 1]);
        return generator(out);
    }
    if (!strcmp(name, "join")) {
        static const char *const kn[] = {"d", "attribute", NULL};
        check_args(rt, name, &a, 2, kn);
        jlist *l = jv_iter(rt, x);
        jv sep = jv_to_str(rt, arg(&a, 0, "d", jv_cstr(rt, "")));
        jv attr = arg(&a, 1, "attribute", jv_none());
        sbuf b = {.rt = rt};
        sb_put(&b, "", 0);
        for (size_t i = 0; i < l->n; i++) {
            if (i) sb_put(&b, sep.u.s->s, sep.u.s->len);
            jv_write_str(&b, attr.t == JV_STR ? attr_path(rt, l->v[i], attr.u.s) : l->v[i]);
        }
        return sb_finish(&b);
    }
    if (!strcmp(name, "selectattr") || !strcmp(name, "rejectattr")) return filter_select(rt, f, x, &a, 1, name[0] == 's');
    if (!strcmp(name, "select") || !strcmp(name, "reject")) return filter_select(rt, f, x, &a, 0, name[0] == 's');
    if (!strcmp(name, "map")) {
        if (!jv_truthy(x)) return generator(jv_list_new(rt, 0, 0));
        jlist *l = jv_iter(rt, x);
        jv out = jv_list_new(rt, l->n, 0);
        jv attr = arg(&a, -1, "attribute", jv_undef());
        if (attr.t != JV_UNDEF) {
            jv def = arg(&a, -1, "default", jv_undef());
            jv path = jv_to_str(rt, attr);
            for (size_t i = 0; i < l->n; i++) {
                jv v = attr_path(rt, l->v[i], path.u.s);
                jv_list_push(rt, out, v.t == JV_UNDEF && def.t != JV_UNDEF ? def : v);
            }
            return generator(out);
        }
        const char *fn = need_str(rt, arg(&a, 0, NULL, jv_undef()), "map")->s;
        if (!chat_filter_known(fn)) rt_fail(rt, "unsupported feature: filter '%s'", fn);
        for (size_t i = 0; i < l->n; i++)
            jv_list_push(rt, out, apply_filter(rt, f, fn, l->v[i], args + 1, n_args - 1, kw_names, kw_vals, n_kw));
        return generator(out);
    }
    if (!strcmp(name, "unique")) {
        jlist *l = jv_iter(rt, x);
        int cs = jv_truthy(arg(&a, 0, "case_sensitive", jv_bool(0)));
        jv attr = arg(&a, 1, "attribute", jv_none());
        jv out = jv_list_new(rt, 0, 0), seen = jv_list_new(rt, 0, 0);
        for (size_t i = 0; i < l->n; i++) {
            jv k = attr.t == JV_STR ? attr_path(rt, l->v[i], attr.u.s) : l->v[i];
            if (!cs && k.t == JV_STR) k = str_case(rt, k.u.s, 1);
            if ((k.t == JV_LIST && !k.u.l->tuple) || k.t == JV_DICT) rt_fail(rt, "unhashable type: '%s'", jv_type_name(k));
            if (jv_contains(rt, seen, k)) continue;
            jv_list_push(rt, seen, k);
            jv_list_push(rt, out, l->v[i]);
        }
        return generator(out);
    }
    if (!strcmp(name, "sort")) {
        static const char *const kn[] = {"reverse", "case_sensitive", "attribute", NULL};
        check_args(rt, name, &a, 3, kn);
        jv out = copy_list(rt, jv_iter(rt, x));
        jv attr = arg(&a, 2, "attribute", jv_none());
        jlist *l = out.u.l;
        jv *keys = rt_alloc(rt, (l->n + 1) * sizeof *keys);
        for (size_t i = 0; i < l->n; i++) keys[i] = attr.t == JV_STR ? attr_path(rt, l->v[i], attr.u.s) : l->v[i];
        sort_by(rt, l->v, keys, l->n, jv_truthy(arg(&a, 1, "case_sensitive", jv_bool(0))), jv_truthy(arg(&a, 0, "reverse", jv_bool(0))));
        return out;
    }
    if (!strcmp(name, "dictsort")) {
        static const char *const kn[] = {"case_sensitive", "by", "reverse", NULL};
        check_args(rt, name, &a, 3, kn);
        if (x.t != JV_DICT) rt_fail(rt, "You can only sort by either \"key\" or \"value\"");
        jv out = copy_list(rt, dict_items(rt, x, 0).u.l);
        jv by = arg(&a, 1, "by", jv_cstr(rt, "key"));
        int pos = by.t == JV_STR && !strcmp(by.u.s->s, "value");
        jlist *l = out.u.l;
        jv *keys = rt_alloc(rt, (l->n + 1) * sizeof *keys);
        for (size_t i = 0; i < l->n; i++) keys[i] = l->v[i].u.l->v[pos];
        sort_by(rt, l->v, keys, l->n, jv_truthy(arg(&a, 0, "case_sensitive", jv_bool(0))), jv_truthy(arg(&a, 2, "reverse", jv_bool(0))));
        return out;
    }
    if (!strcmp(name, "min") || !strcmp(name, "max") || !strcmp(name, "sum")) return filter_minmax_sum(rt, name, x, &a);
    if (!strcmp(name, "batch")) {
        int64_t n = need_int(rt, arg(&a, 0, "linecount", jv_undef()), "batch");
        if (n <= 0) rt_fail(rt, "batch: size must be positive");
        jv fill = arg(&a, 1, "fill_with", jv_undef());
        jlist *l = jv_iter(rt, x);
        jv out = jv_list_new(rt, 0, 0), cur = jv_list_new(rt, 0, 0);
        for (size_t i = 0; i < l->n; i++) {
            if (cur.u.l->n == (size_t)n) { jv_list_push(rt, out, cur); cur = jv_list_new(rt, 0, 0); }
            jv_list_push(rt, cur, l->v[i]);
        }
        if (cur.u.l->n) {
            if (fill.t != JV_UNDEF)
                while (cur.u.l->n < (size_t)n) jv_list_push(rt, cur, fill);
            jv_list_push(rt, out, cur);
        }
        return generator(out);
    }
    if (!strcmp(name, "attr")) return get_attr(rt, x, need_str(rt, arg(&a, 0, "name", jv_undef()), "attr")->s);
    if (!strcmp(name, "abs")) {
        if (x.t == JV_FLOAT) return jv_float(fabs(x.u.f));
        int64_t v = need_int(rt, x, "abs");
        if (v == INT64_MIN) rt_fail(rt, "integer overflow in abs");
        return jv_int(v < 0 ? -v : v);
    }
    if (!strcmp(name, "int") || !strcmp(name, "float")) {
        int is_int = name[0] == 'i';
        if (x.t == JV_UNDEF) rt_fail(rt, "%s", x.undef_name && strchr(x.undef_name, ' ') ? x.undef_name : "undefined value in |int or |float");
        jv def = arg(&a, 0, "default", is_int ? jv_int(0) : jv_float(0));
        if (x.t == JV_INT || x.t == JV_BOOL) return is_int ? jv_int(x.t == JV_INT ? x.u.i : x.u.b) : jv_float((double)(x.t == JV_INT ? x.u.i : x.u.b));
        if (x.t == JV_FLOAT) {
            if (!is_int) return x;
            if (!isfinite(x.u.f) || fabs(x.u.f) >= 9.2e18) return def;
            return jv_int((int64_t)x.u.f);
        }
        if (x.t == JV_STR) {
            jv t = str_strip(rt, x.u.s, NULL, 3);
            char *end;
            const char *s = t.u.s->s;
            if (!*s) return def;
            if (is_int) {
                long long v = strtoll(s, &end, 10);
                if (!*end) return jv_int(v);
            }
            double d = strtod(s, &end);
            if (*end || !s[0]) return def;
            if (is_int) return isfinite(d) && fabs(d) < 9.2e18 ? jv_int((int64_t)d) : def;
            return jv_float(d);
        }
        return def;
    }
    if (!strcmp(name, "round")) {
        int64_t prec = need_int(rt, arg(&a, 0, "precision", jv_int(0)), "round");
        jv method = arg(&a, 1, "method", jv_cstr(rt, "common"));
        double v = x.t == JV_FLOAT ? x.u.f : (double)need_int(rt, x, "round");
        const char *md = need_str(rt, method, "round")->s;
        if (x.t != JV_FLOAT && !strcmp(md, "common")) { /* Python's round(int, n): an int, halves to even */
            int64_t i = need_int(rt, x, "round");
            if (prec >= 0) return jv_int(i);
            if (prec < -18) return jv_int(0);
            int64_t m = 1;
            for (int64_t k = 0; k < -prec; k++) m *= 10;
            int64_t r = ((i % m) + m) % m, base = i - r;
            if (2 * r > m || (2 * r == m && (base / m) % 2 != 0)) base += m;
            return jv_int(base);
        }
        double m = pow(10, (double)prec), r = v * m;
        if (!strcmp(md, "common")) r = nearbyint(r);
        else if (!strcmp(md, "floor")) r = floor(r);
        else if (!strcmp(md, "ceil")) r = ceil(r);
        else rt_fail(rt, "method must be common, ceil or floor");
        return jv_float(r / m);
    }
    if (!strcmp(name, "wordcount")) {
        jv s = jv_to_str(rt, x);
        int64_t n = 0, in = 0;
        for (size_t i = 0; i < s.u.s->len;) {
            int l;
            int32_t cp = cp_at(s.u.s->s, s.u.s->len, i, &l);
            utf8proc_category_t c = utf8proc_category(cp);
            int w = cp == '_' || (c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_NO);
            if (w && !in) n++;
            in = w;
            i += (size_t)l;
        }
        return jv_int(n);
    }
    /* the rest work on str(x) */
    jv s = jv_to_str(rt, x.t == JV_UNDEF ? jv_cstr(rt, "") : x);
    if (!strcmp(name, "trim") || !strcmp(name, "upper") || !strcmp(name, "lower")) {
        jv r;
        if (name[0] == 't') {
            jv c = arg(&a, 0, "chars", jv_none());
            r = str_strip(rt, s.u.s, c.t == JV_NONE ? NULL : need_str(rt, c, "trim"), 3);
        } else r = str_case(rt, s.u.s, name[0] == 'u' ? 0 : 1);
        r.markup = s.markup; /* Markup.strip / .upper / .lower stay Markup */
        return r;
    }
    if (!strcmp(name, "capitalize")) return str_case(rt, s.u.s, 2);
    if (!strcmp(name, "title")) {
        /* jinja2: split on runs of [-\s({[<], capitalize each piece */
        sbuf b = {.rt = rt};
        sb_put(&b, "", 0);
        int start = 1;
        for (size_t i = 0; i < s.u.s->len;) {
            int l;
            int32_t cp = cp_at(s.u.s->s, s.u.s->len, i, &l);
            int sep = cp == '-' || py_isspace(cp) || cp == '(' || cp == '{' || cp == '[' || cp == '<';
            put_cp(&b, start ? cp_upper(cp) : cp_lower(cp));
            start = sep;
            i += (size_t)l;
        }
        return sb_finish(&b);
    }
    if (!strcmp(name, "replace")) {
        jv cnt = arg(&a, 2, "count", jv_none());
        return str_replace(rt, s.u.s, need_str(rt, jv_to_str(rt, arg(&a, 0, "old", jv_undef())), "replace"),
                           need_str(rt, jv_to_str(rt, arg(&a, 1, "new", jv_undef())), "replace"),
                           cnt.t == JV_NONE ? -1 : need_int(rt, cnt, "replace"));
    }
    if (!strcmp(name, "indent")) {
        if (x.t != JV_STR) rt_fail(rt, "unsupported operand type(s) for +=: '%s' and 'str' (|indent needs a string)", jv_type_name(x));
        return filter_indent(rt, s, &a);
    }
    if (!strcmp(name, "center")) {
        int64_t w = need_int(rt, arg(&a, 0, "width", jv_int(80)), "center");
        int64_t n = (int64_t)utf8_count(s.u.s->s, s.u.s->len);
        if (w <= n) return s;
        if (w > 1 << 20) rt_fail(rt, "center: width too large");
        int64_t pad = w - n, left = pad / 2 + (pad & w & 1);
        sbuf b = {.rt = rt};
        for (int64_t i = 0; i < left; i++) sb_puts(&b, " ");
        sb_put(&b, s.u.s->s, s.u.s->len);
        for (int64_t i = 0; i < pad - left; i++) sb_puts(&b, " ");
        return sb_finish(&b);
    }
    if (!strcmp(name, "escape") || !strcmp(name, "e")) return html_escape(rt, s);
    rt_fail(rt, "unsupported feature: filter '%s'", name);
}

