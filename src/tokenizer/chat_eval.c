/*
 * chat_eval.c - runs a parsed template: scopes, statements, expressions,
 * attribute and item lookup, arithmetic, and the public render entry.
 *
 * Scopes follow jinja2: a for loop runs each iteration in a fresh scope
 * (a {% set %} inside it is gone at the next iteration and after the loop),
 * a macro call gets a scope whose parent is the scope it was defined in
 * (read at call time), and namespace() objects are the one mutable thing a
 * template can share across scopes. Missing variables and attributes are
 * jinja2's default Undefined: printing one gives '', testing it works, but
 * an attribute or item of it, arithmetic on it or calling it is an error.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "tokenizer/chat_internal.h"

_Noreturn void rt_fail(chat_rt *rt, const char *fmt, ...) {
    char m[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof m, fmt, ap);
    va_end(ap);
    moe_fail(rt->err, "%s:%d: %s", rt->t->name, rt->line, m);
    longjmp(rt->jmp, 1);
}

void *rt_alloc(chat_rt *rt, size_t n) {
    void *p = arena_alloc(&rt->arena, n);
    if (!p) rt_fail(rt, "the template needs more than %u MiB of memory", CHAT_MAX_ARENA >> 20);
    return p;
}

void rt_step(chat_rt *rt) {
    if (++rt->steps > CHAT_MAX_STEPS) rt_fail(rt, "the template runs more than %lld steps", CHAT_MAX_STEPS);
}

/* ------------------------------------------------------------------ scopes */

static chat_frame *frame_new(chat_rt *rt, chat_frame *parent) {
    chat_frame *f = rt_alloc(rt, sizeof *f);
    f->parent = parent;
    return f;
}

static void frame_set(chat_rt *rt, chat_frame *f, const char *name, jv v) {
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->names[i], name)) {
            f->vals[i] = v;
            return;
        }
    if (f->n == f->cap) {
        int cap = f->cap ? f->cap * 2 : 8;
        const char **nn = rt_alloc(rt, (size_t)cap * sizeof *nn);
        jv *nv = rt_alloc(rt, (size_t)cap * sizeof *nv);
        if (f->n) {
            memcpy((void *)nn, (const void *)f->names, (size_t)f->n * sizeof *nn);
            memcpy(nv, f->vals, (size_t)f->n * sizeof *nv);
        }
        f->names = nn;
        f->vals = nv;
        f->cap = cap;
    }
    f->names[f->n] = name;
    f->vals[f->n++] = v;
}

static jv lookup(chat_rt *rt, chat_frame *f, const char *name) {
    for (; f; f = f->parent)
        for (int i = f->n - 1; i >= 0; i--)
            if (!strcmp(f->names[i], name)) return f->vals[i];
    if (builtin_exists(name)) {
        jv v = {0};
        v.t = JV_FUNC;
        v.u.fn = rt_alloc(rt, sizeof *v.u.fn);
        v.u.fn->kind = FN_BUILTIN;
        v.u.fn->name = name;
        return v;
    }
    jv u = jv_undef();
    u.undef_name = name;
    return u;
}

/* ------------------------------------------------------- lookup of parts */

static jv undef_attr(chat_rt *rt, jv obj, const char *name) {
    jv u = jv_undef();
    size_t n = strlen(name) + 64;
    char *m = rt_alloc(rt, n);
    snprintf(m, n, "'%s object' has no attribute '%s'", jv_type_name(obj), name);
    u.undef_name = m;
    return u;
}

static _Noreturn void fail_undef(chat_rt *rt, jv u) {
    if (u.undef_name && strchr(u.undef_name, '\'')) rt_fail(rt, "%s", u.undef_name);
    rt_fail(rt, "'%s' is undefined", u.undef_name ? u.undef_name : "value");
}

static jv method_value(chat_rt *rt, jv self, const char *name) {
    jv v = {0};
    v.t = JV_FUNC;
    v.u.fn = rt_alloc(rt, sizeof *v.u.fn);
    v.u.fn->kind = FN_METHOD;
    v.u.fn->name = name;
    v.u.fn->self = self;
    return v;
}

jv get_attr(chat_rt *rt, jv obj, const char *name) {
    jv v;
    if (obj.t == JV_UNDEF) fail_undef(rt, obj);
    if (obj.t == JV_NS) {
        if (jv_dict_get_str(obj, name, &v)) return v;
        return undef_attr(rt, obj, name);
    }
    if (method_exists(obj, name)) return method_value(rt, obj, name);
    if (obj.t == JV_DICT && jv_dict_get_str(obj, name, &v)) return v;
    return undef_attr(rt, obj, name);
}

static int64_t norm_index(jv key, size_t n, int *ok) {
    int64_t i = key.t == JV_BOOL ? key.u.b : key.u.i;
    if (i < 0) i += (int64_t)n;
    *ok = i >= 0 && (uint64_t)i < n;
    return i;
}

jv get_item(chat_rt *rt, jv obj, jv key) {
    jv v;
    if (obj.t == JV_UNDEF) fail_undef(rt, obj);
    if (obj.t == JV_DICT && jv_dict_get(obj, key, &v)) return v;
    if (((obj.t == JV_LIST && (obj.u.l->view == JL_PLAIN || obj.u.l->view == JL_RANGE)) || obj.t == JV_STR) &&
        (key.t == JV_INT || key.t == JV_BOOL)) {
        int ok;
        if (obj.t == JV_LIST) {
            int64_t i = norm_index(key, obj.u.l->n, &ok);
            if (ok) return obj.u.l->v[i];
        } else {
            const jstr *s = obj.u.s;
            int64_t i = norm_index(key, utf8_count(s->s, s->len), &ok);
            if (ok) {
                size_t a = utf8_offset(s->s, s->len, (size_t)i), b = utf8_offset(s->s, s->len, (size_t)i + 1);
                return jv_str(rt, s->s + a, b - a);
            }
        }
    }
    if (key.t == JV_STR) {
        if (obj.t == JV_NS && jv_dict_get(obj, key, &v)) return v;
        if (method_exists(obj, key.u.s->s)) return method_value(rt, obj, key.u.s->s);
        return undef_attr(rt, obj, key.u.s->s);
    }
    jv u = jv_undef();
    u.undef_name = "item";
    return u;
}

/* Python's slice.indices + the walk */
static jv do_slice(chat_rt *rt, jv obj, jv start, jv stop, jv step) {
    if (obj.t == JV_UNDEF) fail_undef(rt, obj);
    if ((obj.t != JV_LIST || (obj.u.l->view != JL_PLAIN && obj.u.l->view != JL_RANGE)) && obj.t != JV_STR) return jv_undef();
    int64_t n = obj.t == JV_LIST ? (int64_t)obj.u.l->n : (int64_t)utf8_count(obj.u.s->s, obj.u.s->len);
    int64_t st = 1, a, b;
    for (int k = 0; k < 3; k++) {
        jv x = k == 0 ? start : k == 1 ? stop : step;
        if (x.t != JV_UNDEF && x.t != JV_NONE && x.t != JV_INT && x.t != JV_BOOL)
            rt_fail(rt, "slice indices must be integers or None");
    }
    if (step.t == JV_INT) st = step.u.i;
    if (st == 0) rt_fail(rt, "slice step cannot be zero");
    int has_a = start.t == JV_INT || start.t == JV_BOOL, has_b = stop.t == JV_INT || stop.t == JV_BOOL;
    a = has_a ? (start.t == JV_INT ? start.u.i : start.u.b) : 0;
    b = has_b ? (stop.t == JV_INT ? stop.u.i : stop.u.b) : 0;
    if (!has_a) a = st > 0 ? 0 : n - 1;
    else {
        if (a < 0) a += n;
        if (a < 0) a = st > 0 ? 0 : -1;
        if (a >= n) a = st > 0 ? n : n - 1;
    }
    if (!has_b) b = st > 0 ? n : -1;
    else {
        if (b < 0) b += n;
        if (b < 0) b = st > 0 ? 0 : -1;
        if (b >= n) b = st > 0 ? n : n - 1;
    }
    if (obj.t == JV_LIST) {
        jv out = jv_list_new(rt, 0, obj.u.l->tuple);
        for (int64_t i = a; st > 0 ? i < b : i > b; i += st) jv_list_push(rt, out, obj.u.l->v[i]);
        if (obj.u.l->view == JL_RANGE) { /* a range slice is a range */
            out.u.l->view = JL_RANGE;
            int64_t r0 = obj.u.l->range[0], rs = obj.u.l->range[2];
            out.u.l->range[0] = r0 + a * rs;
            out.u.l->range[1] = r0 + (a + (int64_t)out.u.l->n * st) * rs;
            out.u.l->range[2] = rs * st;
        }
        return out;
    }
    const jstr *s = obj.u.s;
    if (st == 1) {
        if (b <= a) return jv_str(rt, "", 0);
        size_t x = utf8_offset(s->s, s->len, (size_t)a), y = utf8_offset(s->s, s->len, (size_t)b);
        return jv_str(rt, s->s + x, y - x);
    }
    sbuf sb = {.rt = rt};
    sb_put(&sb, "", 0);
    for (int64_t i = a; st > 0 ? i < b : i > b; i += st) {
        size_t x = utf8_offset(s->s, s->len, (size_t)i), y = utf8_offset(s->s, s->len, (size_t)i + 1);
        sb_put(&sb, s->s + x, y - x);
    }
    return sb_finish(&sb);
}

jlist *jv_iter(chat_rt *rt, jv v) {
    jlist *l;
    switch (v.t) {
    case JV_UNDEF: return jv_list_new(rt, 0, 0).u.l;
    case JV_LIST: return v.u.l;
    case JV_DICT: {
        l = jv_list_new(rt, v.u.d->n, 0).u.l;
        memcpy(l->v, v.u.d->k, v.u.d->n * sizeof(jv));
        l->n = v.u.d->n;
        return l;
    }
    case JV_STR: {
        jv out = jv_list_new(rt, 0, 0);
        const jstr *s = v.u.s;
        for (size_t i = 0; i < s->len;) {
            size_t j = i + 1;
            while (j < s->len && ((unsigned char)s->s[j] & 0xC0) == 0x80) j++;
            jv_list_push(rt, out, jv_str(rt, s->s + i, j - i));
            i = j;
        }
        return out.u.l;
    }
    default: rt_fail(rt, "'%s' object is not iterable", jv_type_name(v));
    }
}

int jv_contains(chat_rt *rt, jv c, jv item) {
    if (c.t == JV_STR) {
        if (item.t != JV_STR) rt_fail(rt, "'in <string>' requires string as left operand, not %s", jv_type_name(item));
        if (item.u.s->len == 0) return 1;
        return memmem(c.u.s->s, c.u.s->len, item.u.s->s, item.u.s->len) != NULL;
    }
    if (c.t == JV_DICT || c.t == JV_NS) {
        jv v;
        return jv_dict_get(c, item, &v);
    }
    if (c.t == JV_LIST) {
        for (size_t i = 0; i < c.u.l->n; i++)
            if (jv_equal(c.u.l->v[i], item)) return 1;
        return 0;
    }
    if (c.t == JV_UNDEF) return 0;
    rt_fail(rt, "argument of type '%s' is not iterable", jv_type_name(c));
}

/* -------------------------------------------------------------- arithmetic */

static int is_intlike(jv v) { return v.t == JV_INT || v.t == JV_BOOL; }
static int64_t ival(jv v) { return v.t == JV_INT ? v.u.i : v.u.b; }
static int is_number(jv v) { return is_intlike(v) || v.t == JV_FLOAT; }
static double fval(jv v) { return v.t == JV_FLOAT ? v.u.f : (double)ival(v); }

static const char *op_sym(int op) {
    static const char *const s[] = {"+", "-", "*", "/", "//", "%", "**"};
    return op >= 0 && op <= OP_POW ? s[op] : "?";
}

jv binop(chat_rt *rt, int op, jv a, jv b) {
    if (a.t == JV_UNDEF) fail_undef(rt, a);
    if (b.t == JV_UNDEF) fail_undef(rt, b);
    if (is_intlike(a) && is_intlike(b)) {
        int64_t x = ival(a), y = ival(b), r;
        switch (op) {
        case OP_ADD: if (__builtin_add_overflow(x, y, &r)) goto overflow; return jv_int(r);
        case OP_SUB: if (__builtin_sub_overflow(x, y, &r)) goto overflow; return jv_int(r);
        case OP_MUL: if (__builtin_mul_overflow(x, y, &r)) goto overflow; return jv_int(r);
        case OP_DIV: if (!y) goto zero; return jv_float((double)x / (double)y);
        case OP_FLOORDIV:
        case OP_MOD: {
            if (!y) goto zero;
            if (x == INT64_MIN && y == -1) goto overflow;
            int64_t q = x / y, m = x % y;
            if (m && ((m < 0) != (y < 0))) { q--; m += y; }
            return jv_int(op == OP_MOD ? m : q);
        }
        case OP_POW:
            if (y < 0) return jv_float(pow((double)x, (double)y));
            r = 1;
            for (int64_t k = 0; k < y; k++) {
                if (__builtin_mul_overflow(r, x, &r)) goto overflow;
                if (r == 0 || r == 1) break;
                if (k > 64 && r == -1) { r = (y % 2) ? -1 : 1; break; }
            }
            return jv_int(r);
        }
    }
    if (is_number(a) && is_number(b)) {
        double x = fval(a), y = fval(b);
        switch (op) {
        case OP_ADD: return jv_float(x + y);
        case OP_SUB: return jv_float(x - y);
        case OP_MUL: return jv_float(x * y);
        case OP_DIV: if (y == 0) goto zero; return jv_float(x / y);
        case OP_FLOORDIV: if (y == 0) goto zero; return jv_float(floor(x / y));
        case OP_MOD: {
            if (y == 0) goto zero;
            double m = fmod(x, y);
            if (m && ((m < 0) != (y < 0))) m += y;
            return jv_float(m);
        }
        case OP_POW: return jv_float(pow(x, y));
        }
    }
    if (op == OP_ADD && a.t == JV_STR && b.t == JV_STR) {
        int markup = a.markup || b.markup;
        if (markup) { /* Markup + str escapes the str */
            a = html_escape(rt, a);
            b = html_escape(rt, b);
        }
        sbuf sb = {.rt = rt};
        sb_put(&sb, a.u.s->s, a.u.s->len);
        sb_put(&sb, b.u.s->s, b.u.s->len);
        jv r = sb_finish(&sb);
        r.markup = markup;
        return r;
    }
    if (op == OP_ADD && a.t == JV_LIST && b.t == JV_LIST && a.u.l->tuple == b.u.l->tuple && !a.u.l->view && !b.u.l->view) {
        jv out = jv_list_new(rt, a.u.l->n + b.u.l->n, a.u.l->tuple);
        for (size_t i = 0; i < a.u.l->n; i++) jv_list_push(rt, out, a.u.l->v[i]);
        for (size_t i = 0; i < b.u.l->n; i++) jv_list_push(rt, out, b.u.l->v[i]);
        return out;
    }
    if (op == OP_MUL && (is_intlike(a) || is_intlike(b)) &&
        (a.t == JV_STR || b.t == JV_STR || (a.t == JV_LIST && !a.u.l->view) || (b.t == JV_LIST && !b.u.l->view))) {
        jv seq = is_intlike(a) ? b : a;
        int64_t k = is_intlike(a) ? ival(a) : ival(b);
        size_t unit = seq.t == JV_STR ? seq.u.s->len : seq.u.l->n;
        if (k > 0 && unit && (uint64_t)k > (uint64_t)CHAT_MAX_OUTPUT / unit) rt_fail(rt, "sequence repeated too many times");
        if (seq.t == JV_STR) {
            sbuf sb = {.rt = rt};
            sb_put(&sb, "", 0);
            for (int64_t i = 0; i < k; i++) sb_put(&sb, seq.u.s->s, seq.u.s->len);
            return sb_finish(&sb);
        }
        jv out = jv_list_new(rt, 0, seq.u.l->tuple);
        for (int64_t i = 0; i < k; i++)
            for (size_t j = 0; j < seq.u.l->n; j++) jv_list_push(rt, out, seq.u.l->v[j]);
        return out;
    }
    if (op == OP_MOD && a.t == JV_STR) rt_fail(rt, "unsupported feature: printf-style '%%' formatting of strings");
    rt_fail(rt, "unsupported operand type(s) for %s: '%s' and '%s'", op_sym(op), jv_type_name(a), jv_type_name(b));
overflow:
    rt_fail(rt, "integer overflow in '%s' (beyond 64 bits)", op_sym(op));
zero:
    rt_fail(rt, "division by zero");
}

/* ------------------------------------------------------------- expressions */

static void eval_args(chat_rt *rt, chat_frame *f, const chat_node *e, jv **args, jv **kw) {
    *args = e->n_kids ? rt_alloc(rt, (size_t)e->n_kids * sizeof(jv)) : NULL;
    for (int i = 0; i < e->n_kids; i++) (*args)[i] = eval_expr(rt, f, e->kids[i]);
    *kw = e->n_names ? rt_alloc(rt, (size_t)e->n_names * sizeof(jv)) : NULL;
    for (int i = 0; i < e->n_names; i++) (*kw)[i] = eval_expr(rt, f, e->kids2[i]);
}

/* a filter node whose input is x (for chains whose first input is a block's text) */
static jv eval_filter_on(chat_rt *rt, chat_frame *f, const chat_node *e, jv x) {
    jv *args, *kw;
    if (e->unknown) rt_fail(rt, "unsupported feature: filter '%s'", e->name);
    eval_args(rt, f, e, &args, &kw);
    rt->line = e->line;
    return apply_filter(rt, f, e->name, x, args, e->n_kids, e->names, kw, e->n_names);
}

static jv eval_filter_chain(chat_rt *rt, chat_frame *f, const chat_node *e, jv input) {
    jv x = e->a ? eval_filter_chain(rt, f, e->a, input) : input;
    return eval_filter_on(rt, f, e, x);
}

static int exec_body(chat_rt *rt, chat_frame *f, chat_node *const *kids, int n, sbuf *out);

jv eval_expr(chat_rt *rt, chat_frame *f, const chat_node *e) {
    if (++rt->depth > CHAT_MAX_DEPTH * 4) rt_fail(rt, "expression or call nesting deeper than %d", CHAT_MAX_DEPTH * 4);
    rt->line = e->line;
    jv r;
    switch (e->kind) {
    case E_CONST: r = e->value; break;
    case E_NAME: r = lookup(rt, f, e->name); break;
    case E_TUPLE: case E_LIST:
        r = jv_list_new(rt, (size_t)e->n_kids, e->kind == E_TUPLE);
        for (int i = 0; i < e->n_kids; i++) jv_list_push(rt, r, eval_expr(rt, f, e->kids[i]));
        break;
    case E_DICT:
        r = jv_dict_new(rt, 0);
        for (int i = 0; i < e->n_kids; i++) {
            jv k = eval_expr(rt, f, e->kids[i]);
            if (k.t == JV_LIST && !k.u.l->tuple) rt_fail(rt, "unhashable type: 'list'");
            if (k.t == JV_DICT || k.t == JV_NS) rt_fail(rt, "unhashable type: 'dict'");
            jv_dict_set(rt, r, k, eval_expr(rt, f, e->kids2[i]));
        }
        break;
    case E_GETATTR: r = get_attr(rt, eval_expr(rt, f, e->a), e->name); break;
    case E_GETITEM: {
        jv o = eval_expr(rt, f, e->a);
        r = get_item(rt, o, eval_expr(rt, f, e->b));
        break;
    }
    case E_SLICE: {
        jv o = eval_expr(rt, f, e->a);
        jv a = e->b ? eval_expr(rt, f, e->b) : jv_none(), b = e->c ? eval_expr(rt, f, e->c) : jv_none();
        jv s = e->d ? eval_expr(rt, f, e->d) : jv_none();
        r = do_slice(rt, o, a, b, s);
        break;
    }
    case E_CALL: {
        jv fn = eval_expr(rt, f, e->a);
        jv *args, *kw;
        eval_args(rt, f, e, &args, &kw);
        rt->line = e->line;
        r = call_value(rt, fn, args, e->n_kids, e->names, kw, e->n_names);
        break;
    }
    case E_FILTER: r = eval_filter_on(rt, f, e, eval_expr(rt, f, e->a)); break;
    case E_TEST: {
        if (e->unknown) rt_fail(rt, "unsupported feature: test '%s'", e->name);
        jv x = eval_expr(rt, f, e->a);
        jv *args, *kw;
        eval_args(rt, f, e, &args, &kw);
        rt->line = e->line;
        r = jv_bool(apply_test(rt, f, e->name, x, args, e->n_kids) != e->op);
        break;
    }
    case E_NEG: case E_POS: {
        jv x = eval_expr(rt, f, e->a);
        if (x.t == JV_UNDEF) fail_undef(rt, x);
        if (x.t == JV_FLOAT) r = jv_float(e->kind == E_NEG ? -x.u.f : x.u.f);
        else if (is_intlike(x)) {
            if (e->kind == E_NEG && ival(x) == INT64_MIN) rt_fail(rt, "integer overflow in unary '-'");
            r = jv_int(e->kind == E_NEG ? -ival(x) : ival(x));
        } else rt_fail(rt, "bad operand type for unary %s: '%s'", e->kind == E_NEG ? "-" : "+", jv_type_name(x));
        break;
    }
    case E_NOT: r = jv_bool(!jv_truthy(eval_expr(rt, f, e->a))); break;
    case E_AND: r = eval_expr(rt, f, e->a); if (jv_truthy(r)) r = eval_expr(rt, f, e->b); break;
    case E_OR: r = eval_expr(rt, f, e->a); if (!jv_truthy(r)) r = eval_expr(rt, f, e->b); break;
    case E_BINOP: {
        jv a = eval_expr(rt, f, e->a), b = eval_expr(rt, f, e->b);
        rt->line = e->line;
        r = binop(rt, e->op, a, b);
        break;
    }
    case E_COMPARE: {
        jv a = eval_expr(rt, f, e->a);
        r = jv_bool(1);
        for (int i = 0; i < e->n_kids; i++) {
            jv b = eval_expr(rt, f, e->kids[i]);
            int ok;
            rt->line = e->line;
            switch (e->ops[i]) {
            case OP_EQ: ok = jv_equal(a, b); break;
            case OP_NE: ok = !jv_equal(a, b); break;
            case OP_IN: ok = jv_contains(rt, b, a); break;
            case OP_NOTIN: ok = !jv_contains(rt, b, a); break;
            default: {
                if (a.t == JV_UNDEF) fail_undef(rt, a);
                if (b.t == JV_UNDEF) fail_undef(rt, b);
                int c = jv_compare(rt, a, b);
                ok = e->ops[i] == OP_LT ? c < 0 : e->ops[i] == OP_LE ? c <= 0 : e->ops[i] == OP_GT ? c > 0 : c >= 0;
            }
            }
            if (!ok) { r = jv_bool(0); break; }
            a = b;
        }
        break;
    }
    case E_COND:
        if (jv_truthy(eval_expr(rt, f, e->b))) r = eval_expr(rt, f, e->a);
        else r = e->c ? eval_expr(rt, f, e->c) : jv_undef();
        break;
    case E_CONCAT: {
        sbuf sb = {.rt = rt};
        sb_put(&sb, "", 0);
        for (int i = 0; i < e->n_kids; i++) jv_write_str(&sb, eval_expr(rt, f, e->kids[i]));
        r = sb_finish(&sb);
        break;
    }
    default: rt_fail(rt, "internal: statement in expression position");
    }
    rt->depth--;
    return r;
}

/* --------------------------------------------------------------- calls */

static jv call_macro(chat_rt *rt, const jfunc *fn, jv *args, int n_args, const char **kw_names, jv *kw_vals, int n_kw) {
    const chat_node *m = fn->macro;
    if (++rt->depth > CHAT_MAX_DEPTH) rt_fail(rt, "macro calls nested deeper than %d", CHAT_MAX_DEPTH);
    rt_step(rt);
    if (n_args > m->n_names) rt_fail(rt, "macro '%s' takes not more than %d argument(s)", fn->name, m->n_names);
    chat_frame *f = frame_new(rt, fn->closure);
    unsigned char *set = rt_alloc(rt, (size_t)m->n_names + 1);
    for (int i = 0; i < n_args; i++) {
        frame_set(rt, f, m->names[i], args[i]);
        set[i] = 1;
    }
    for (int k = 0; k < n_kw; k++) {
        int i;
        for (i = 0; i < m->n_names && strcmp(m->names[i], kw_names[k]); i++) {}
        if (i == m->n_names) {
            if (!strcmp(kw_names[k], "caller")) { frame_set(rt, f, "caller", kw_vals[k]); continue; }
            rt_fail(rt, "macro '%s' takes no keyword argument '%s'", fn->name, kw_names[k]);
        }
        if (set[i]) rt_fail(rt, "macro '%s' got multiple values for argument '%s'", fn->name, kw_names[k]);
        frame_set(rt, f, m->names[i], kw_vals[k]);
        set[i] = 1;
    }
    for (int i = 0; i < m->n_names; i++)
        if (!set[i]) {
            jv d = jv_undef();
            if (m->kids2[i]) d = eval_expr(rt, f, m->kids2[i]);
            else d.undef_name = m->names[i];
            frame_set(rt, f, m->names[i], d);
        }
    if (fn->caller.t != JV_UNDEF) frame_set(rt, f, "caller", fn->caller);
    sbuf out = {.rt = rt};
    sb_put(&out, "", 0);
    exec_body(rt, f, m->kids, m->n_kids, &out);
    rt->depth--;
    return sb_finish(&out);
}

jv call_value(chat_rt *rt, jv fn, jv *args, int n_args, const char **kw_names, jv *kw_vals, int n_kw) {
    if (fn.t == JV_UNDEF) fail_undef(rt, fn);
    if (fn.t != JV_FUNC) rt_fail(rt, "'%s' object is not callable", jv_type_name(fn));
    switch (fn.u.fn->kind) {
    case FN_MACRO: return call_macro(rt, fn.u.fn, args, n_args, kw_names, kw_vals, n_kw);
    case FN_BUILTIN: return call_builtin(rt, fn.u.fn->name, args, n_args, kw_names, kw_vals, n_kw);
    default: return call_method(rt, fn.u.fn->self, fn.u.fn->name, args, n_args, kw_names, kw_vals, n_kw);
    }
}

/* -------------------------------------------------------------- statements */

static void assign(chat_rt *rt, chat_frame *f, const chat_node *target, jv v) {
    if (target->kind == E_NAME) {
        frame_set(rt, f, target->name, v);
        return;
    }
    if (target->kind == E_GETATTR) {
        jv ns = lookup(rt, f, target->a->name);
        if (ns.t != JV_NS) rt_fail(rt, "cannot assign attribute on non-namespace object");
        if (target->name[0] == '_')
            rt_fail(rt, "Chat templates cannot store underscore-prefixed attributes on a namespace, but got '%s'", target->name);
        jv_dict_set(rt, ns, jv_cstr(rt, target->name), v);
        return;
    }
    /* tuple unpacking */
    jlist *items = jv_iter(rt, v);
    if (items->n != (size_t)target->n_kids)
        rt_fail(rt, "%s values to unpack (expected %d, got %zu)", items->n > (size_t)target->n_kids ? "too many" : "not enough",
                target->n_kids, items->n);
    for (int i = 0; i < target->n_kids; i++) assign(rt, f, target->kids[i], items->v[i]);
}

static void emit(chat_rt *rt, sbuf *out, jv v) {
    if (v.t == JV_STR) sb_put(out, v.u.s->s, v.u.s->len);
    else jv_write_str(out, v);
    if (out->n > CHAT_MAX_OUTPUT) rt_fail(rt, "output beyond %u MiB", CHAT_MAX_OUTPUT >> 20);
}

static jv make_loop(chat_rt *rt, jlist *items, size_t i) {
    jv loop = jv_dict_new(rt, 0);
    size_t n = items->n;
    const char *keys[] = {"index", "index0", "revindex", "revindex0", "first", "last", "length", "depth", "depth0"};
    jv vals[] = {jv_int((int64_t)i + 1), jv_int((int64_t)i), jv_int((int64_t)(n - i)), jv_int((int64_t)(n - i - 1)),
                 jv_bool(i == 0), jv_bool(i + 1 == n), jv_int((int64_t)n), jv_int(1), jv_int(0)};
    for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) jv_dict_set(rt, loop, jv_cstr(rt, keys[k]), vals[k]);
    if (i > 0) jv_dict_set(rt, loop, jv_cstr(rt, "previtem"), items->v[i - 1]);
    if (i + 1 < n) jv_dict_set(rt, loop, jv_cstr(rt, "nextitem"), items->v[i + 1]);
    jv cyc = method_value(rt, jv_int((int64_t)i), "cycle");
    jv_dict_set(rt, loop, jv_cstr(rt, "cycle"), cyc);
    return loop;
}

enum { FLOW_NEXT = 0, FLOW_BREAK, FLOW_CONTINUE };

static void exec_for(chat_rt *rt, chat_frame *f, const chat_node *n, sbuf *out) {
    jlist *all = jv_iter(rt, eval_expr(rt, f, n->b)), *items = all;
    if (n->c) {
        jv kept = jv_list_new(rt, all->n, 0);
        for (size_t i = 0; i < all->n; i++) {
            rt_step(rt);
            chat_frame *tf = frame_new(rt, f);
            assign(rt, tf, n->a, all->v[i]);
            if (jv_truthy(eval_expr(rt, tf, n->c))) jv_list_push(rt, kept, all->v[i]);
        }
        items = kept.u.l;
    }
    for (size_t i = 0; i < items->n; i++) {
        rt_step(rt);
        chat_frame *bf = frame_new(rt, f);
        rt->line = n->line;
        frame_set(rt, bf, "loop", make_loop(rt, items, i));
        assign(rt, bf, n->a, items->v[i]);
        if (exec_body(rt, bf, n->kids, n->n_kids, out) == FLOW_BREAK) break;
    }
    if (items->n == 0 && n->n_kids2) exec_body(rt, frame_new(rt, f), n->kids2, n->n_kids2, out);
}

static int exec_body(chat_rt *rt, chat_frame *f, chat_node *const *kids, int n, sbuf *out) {
    for (int k = 0; k < n; k++) {
        const chat_node *s = kids[k];
        rt->line = s->line;
        switch (s->kind) {
        case N_TEXT: emit(rt, out, s->value); break;
        case N_OUTPUT: {
            jv v = eval_expr(rt, f, s->a);
            emit(rt, out, v);
            break;
        }
        case N_IF: {
            int flow = jv_truthy(eval_expr(rt, f, s->a)) ? exec_body(rt, f, s->kids, s->n_kids, out)
                                                         : exec_body(rt, f, s->kids2, s->n_kids2, out);
            if (flow != FLOW_NEXT) return flow;
            break;
        }
        case N_FOR: exec_for(rt, f, s, out); break;
        case N_SET: assign(rt, f, s->a, eval_expr(rt, f, s->b)); break;
        case N_SETBLOCK: {
            sbuf b = {.rt = rt};
            sb_put(&b, "", 0);
            exec_body(rt, f, s->kids, s->n_kids, &b);
            jv v = sb_finish(&b);
            if (s->c) v = eval_filter_chain(rt, f, s->c, v);
            assign(rt, f, s->a, v);
            break;
        }
        case N_MACRO: {
            jv m = {0};
            m.t = JV_FUNC;
            m.u.fn = rt_alloc(rt, sizeof *m.u.fn);
            m.u.fn->kind = FN_MACRO;
            m.u.fn->name = s->name;
            m.u.fn->macro = s;
            m.u.fn->closure = f;
            frame_set(rt, f, s->name, m);
            break;
        }
        case N_CALLBLOCK: {
            const chat_node *c = s->a;
            jv fn = eval_expr(rt, f, c->a);
            jv *args, *kw;
            eval_args(rt, f, c, &args, &kw);
            if (fn.t != JV_FUNC || fn.u.fn->kind != FN_MACRO) rt_fail(rt, "{%% call %%} needs a macro");
            jv caller = {0};
            caller.t = JV_FUNC;
            caller.u.fn = rt_alloc(rt, sizeof *caller.u.fn);
            caller.u.fn->kind = FN_MACRO;
            caller.u.fn->name = "caller";
            caller.u.fn->macro = s;
            caller.u.fn->closure = f;
            jfunc *copy = rt_alloc(rt, sizeof *copy);
            *copy = *fn.u.fn;
            copy->caller = caller;
            fn.u.fn = copy;
            rt->line = s->line;
            emit(rt, out, call_value(rt, fn, args, c->n_kids, c->names, kw, c->n_names));
            break;
        }
        case N_FILTERBLOCK: {
            sbuf b = {.rt = rt};
            sb_put(&b, "", 0);
            exec_body(rt, f, s->kids, s->n_kids, &b);
            emit(rt, out, eval_filter_chain(rt, f, s->a, sb_finish(&b)));
            break;
        }
        case N_BODY: {
            int flow = exec_body(rt, f, s->kids, s->n_kids, out);
            if (flow != FLOW_NEXT) return flow;
            break;
        }
        case N_BREAK: return FLOW_BREAK;
        case N_CONTINUE: return FLOW_CONTINUE;
        default: rt_fail(rt, "internal: expression in statement position");
        }
    }
    return FLOW_NEXT;
}

/* ------------------------------------------------------------ public API */

int moe_chat_template_render(const moe_chat_template *t, const char *ctx_json, size_t ctx_len, char **out,
                             size_t *out_len, moe_err *err) {
    *out = NULL;
    if (out_len) *out_len = 0;
    chat_rt *rt = calloc(1, sizeof *rt);
    if (!rt) return moe_fail(err, "%s: out of memory", t->name);
    rt->t = t;
    rt->err = err;
    rt->arena.limit = CHAT_MAX_ARENA;
    cJSON *volatile ctx = NULL;
    if (setjmp(rt->jmp)) {
        cJSON_Delete(ctx);
        arena_free(&rt->arena);
        free(rt);
        return -1;
    }
    rt->globals = frame_new(rt, NULL);
    if (ctx_json && ctx_len) {
        ctx = cJSON_ParseWithLength(ctx_json, ctx_len);
        if (!ctx || !cJSON_IsObject(ctx)) rt_fail(rt, "the context is not a JSON object");
        size_t n_flags, idx = 0;
        unsigned char *flags = json_float_flags(rt, ctx_json, ctx_len, &n_flags);
        for (const cJSON *c = ctx->child; c; c = c->next) {
            size_t kl = strlen(c->string);
            char *name = rt_alloc(rt, kl + 1);
            memcpy(name, c->string, kl);
            frame_set(rt, rt->globals, name, jv_from_cjson(rt, c, flags, n_flags, &idx));
        }
    }
    chat_frame *top = frame_new(rt, rt->globals);
    sbuf o = {.rt = rt};
    sb_put(&o, "", 0);
    exec_body(rt, top, t->body->kids, t->body->n_kids, &o);
    char *res = malloc(o.n + 1);
    if (!res) rt_fail(rt, "out of memory");
    memcpy(res, o.p, o.n + 1);
    *out = res;
    if (out_len) *out_len = o.n;
    cJSON_Delete(ctx);
    arena_free(&rt->arena);
    free(rt);
    return 0;
}

int moe_chat_template_parse(moe_chat_template **out, const char *src, size_t len, const char *name, moe_err *err) {
    *out = NULL;
    if (!name) name = "template";
    moe_chat_template *t = calloc(1, sizeof *t);
    if (!t) return moe_fail(err, "%s: out of memory", name);
    t->fixed_time = -1;
    t->arena.limit = CHAT_MAX_ARENA;
    t->name = strdup(name);
    t->src = malloc(len + 1);
    if (!t->name || !t->src) {
        moe_chat_template_free(t);
        return moe_fail(err, "%s: out of memory", name);
    }
    memcpy(t->src, src, len);
    t->src[len] = 0;
    chat_tok *toks;
    int n = chat_lex(&t->arena, src, len, t->name, &toks, err);
    if (n < 0 || chat_parse(&t->arena, toks, n, t->name, &t->body, err)) {
        moe_chat_template_free(t);
        return -1;
    }
    *out = t;
    return 0;
}

void moe_chat_template_free(moe_chat_template *t) {
    if (!t) return;
    arena_free(&t->arena);
    free(t->name);
    free(t->src);
    free(t);
}

const char *moe_chat_template_source(const moe_chat_template *t) { return t->src; }

void moe_chat_template_set_time(moe_chat_template *t, int64_t unix_time) { t->fixed_time = unix_time < 0 ? -1 : unix_time; }
