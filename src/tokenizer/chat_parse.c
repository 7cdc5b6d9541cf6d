/*
 * chat_parse.c - tokens -> syntax tree, following jinja2's parser (Parser in
 * jinja2/parser.py) rule for rule so precedence and tuple handling match:
 *   expr    := or ('if' or ('else' expr)?)*
 *   or      := and ('or' and)*        and := not ('and' not)*
 *   not     := 'not' not | compare    compare := math1 (cmp math1)*
 *   math1   := concat (('+'|'-') concat)*    concat := math2 ('~' math2)*
 *   math2   := pow (('*'|'/'|'//'|'%') pow)* pow := unary ('**' unary)*
 *   unary   := ('-'|'+') unary-without-filters | primary postfix* (filter|test|call)*
 * Statements: if/elif/else, for (with else, loop filter), set (plain,
 * ns.attr, block), macro, call, filter, break, continue, generation, raw (in
 * the lexer). Other tags, and filters/tests this interpreter lacks, are
 * refused with the feature's name and line, as jinja2 refuses unknown ones.
 *
 * Node fields by kind (chat_internal.h):
 *   N_IF a=cond kids=body kids2=else      N_FOR a=target b=iter c=filter kids=body kids2=else
 *   N_SET a=target b=value                N_SETBLOCK a=target c=filter kids=body
 *   N_MACRO name names=params kids2=defaults kids=body
 *   N_CALLBLOCK a=call names/kids2=caller params kids=body   N_FILTERBLOCK a=filter kids=body
 *   E_CALL/E_FILTER a=callee/input kids=args names+kids2=keyword args
 *   E_SLICE a=obj b,c,d=start,stop,step   E_COND a=then b=cond c=else
 */
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "tokenizer/chat_internal.h"

typedef struct parser {
    chat_arena *a;
    const chat_tok *t;
    int n, pos;
    const char *name;
    moe_err *err;
    int failed;
    int depth;
} parser;

#define FAIL_IF(c) do { if (c) return NULL; } while (0)

static void *pfail(parser *P, int line, const char *fmt, const char *arg) {
    if (!P->failed) {
        char m[300];
        snprintf(m, sizeof m, fmt, arg ? arg : "");
        moe_fail(P->err, "%s:%d: %s", P->name, line, m);
    }
    P->failed = 1;
    return NULL;
}

static const chat_tok *cur(parser *P) { return &P->t[P->pos]; }
static const chat_tok *peek(parser *P, int k) {
    int i = P->pos + k;
    return &P->t[i < P->n ? i : P->n - 1];
}
static void next(parser *P) { if (P->pos < P->n - 1) P->pos++; }
static int is_op(const chat_tok *t, const char *op) { return t->kind == T_OP && !strcmp(t->s, op); }
static int is_name(const chat_tok *t, const char *nm) { return t->kind == T_NAME && !strcmp(t->s, nm); }
static int skip_op(parser *P, const char *op) {
    if (!is_op(cur(P), op)) return 0;
    next(P);
    return 1;
}
static int skip_name(parser *P, const char *nm) {
    if (!is_name(cur(P), nm)) return 0;
    next(P);
    return 1;
}
static const char *tok_desc(const chat_tok *t) {
    switch (t->kind) {
    case T_EOF: return "end of template";
    case T_VAR_END: return "'}}'";
    case T_BLOCK_END: return "'%}'";
    case T_NAME: case T_OP: return t->s;
    case T_STRING: return "string";
    default: return "token";
    }
}
static int expect_op(parser *P, const char *op) {
    if (skip_op(P, op)) return 0;
    char m[64];
    snprintf(m, sizeof m, "expected '%s', got '%%s'", op);
    pfail(P, cur(P)->line, m, tok_desc(cur(P)));
    return -1;
}

static chat_node *mk(parser *P, chat_node_kind k, int line) {
    chat_node *n = arena_alloc(P->a, sizeof *n);
    if (!n) return pfail(P, line, "template too large%s", "");
    n->kind = k;
    n->line = line;
    return n;
}

/* a growable array of node pointers in the arena */
typedef struct nvec { chat_node **v; int n, cap; } nvec;
static int nv_push(parser *P, nvec *v, chat_node *x) {
    if (v->n == v->cap) {
        int cap = v->cap ? v->cap * 2 : 8;
        chat_node **nv = arena_alloc(P->a, (size_t)cap * sizeof *nv);
        if (!nv) { pfail(P, cur(P)->line, "template too large%s", ""); return -1; }
        if (v->n) memcpy(nv, v->v, (size_t)v->n * sizeof *nv);
        v->v = nv;
        v->cap = cap;
    }
    v->v[v->n++] = x;
    return 0;
}
typedef struct svec { const char **v; int n, cap; } svec;
static int sv_push(parser *P, svec *v, const char *x) {
    if (v->n == v->cap) {
        int cap = v->cap ? v->cap * 2 : 8;
        const char **nv = arena_alloc(P->a, (size_t)cap * sizeof *nv);
        if (!nv) { pfail(P, cur(P)->line, "template too large%s", ""); return -1; }
        if (v->n) memcpy((void *)nv, (const void *)v->v, (size_t)v->n * sizeof *nv);
        v->v = nv;
        v->cap = cap;
    }
    v->v[v->n++] = x;
    return 0;
}

static jv const_str(parser *P, const char *s, size_t n) {
    jv v = {0};
    jstr *js = arena_alloc(P->a, sizeof *js + n + 1);
    if (!js) { pfail(P, cur(P)->line, "template too large%s", ""); return v; }
    js->len = n;
    memcpy(js->s, s, n);
    v.t = JV_STR;
    v.u.s = js;
    return v;
}

static chat_node *parse_expression(parser *P, int with_condexpr);
static chat_node *parse_unary(parser *P, int with_filter);
static chat_node *parse_primary(parser *P);
static chat_node *parse_postfix(parser *P, chat_node *n);

static int is_tuple_end(parser *P, const char *extra) {
    const chat_tok *t = cur(P);
    if (t->kind == T_VAR_END || t->kind == T_BLOCK_END || t->kind == T_EOF || is_op(t, ")")) return 1;
    return extra && is_name(t, extra);
}

/* simplified: names only (assignment targets); explicit: inside ( ) */
static chat_node *parse_tuple(parser *P, int simplified, int with_condexpr, const char *extra, int explicit_paren) {
    int line = cur(P)->line;
    nvec items = {0};
    int is_tuple = 0;
    while (1) {
        if (items.n && expect_op(P, ",")) return NULL;
        if (is_tuple_end(P, extra)) break;
        chat_node *e;
        if (simplified) {
            if (cur(P)->kind != T_NAME) return pfail(P, cur(P)->line, "expected a name, got '%s'", tok_desc(cur(P)));
            FAIL_IF(!(e = mk(P, E_NAME, cur(P)->line)));
            e->name = cur(P)->s;
            next(P);
        } else {
            FAIL_IF(!(e = parse_expression(P, with_condexpr)));
        }
        if (nv_push(P, &items, e)) return NULL;
        if (is_op(cur(P), ",")) is_tuple = 1;
        else break;
    }
    if (!is_tuple) {
        if (items.n) return items.v[0];
        if (!explicit_paren) return pfail(P, line, "expected an expression, got '%s'", tok_desc(cur(P)));
    }
    chat_node *t = mk(P, E_TUPLE, line);
    FAIL_IF(!t);
    t->kids = items.v;
    t->n_kids = items.n;
    return t;
}

static int parse_call_args(parser *P, chat_node *call) {
    nvec args = {0}, kwv = {0};
    svec kwn = {0};
    if (expect_op(P, "(")) return -1;
    while (!is_op(cur(P), ")")) {
        if (args.n || kwv.n) {
            if (expect_op(P, ",")) return -1;
            if (is_op(cur(P), ")")) break;
        }
        if (is_op(cur(P), "*") || is_op(cur(P), "**")) {
            pfail(P, cur(P)->line, "unsupported feature: *args / **kwargs in a call%s", "");
            return -1;
        }
        if (cur(P)->kind == T_NAME && is_op(peek(P, 1), "=")) {
            const char *k = cur(P)->s;
            next(P);
            next(P);
            chat_node *v = parse_expression(P, 1);
            if (!v || sv_push(P, &kwn, k) || nv_push(P, &kwv, v)) return -1;
        } else {
            if (kwv.n) {
                pfail(P, cur(P)->line, "positional argument follows keyword argument%s", "");
                return -1;
            }
            chat_node *v = parse_expression(P, 1);
            if (!v || nv_push(P, &args, v)) return -1;
        }
    }
    next(P);
    call->kids = args.v;
    call->n_kids = args.n;
    call->names = kwn.v;
    call->kids2 = kwv.v;
    call->n_names = call->n_kids2 = kwv.n;
    return 0;
}

/* input NULL: the placeholder of a filter block / filtered set block */
static chat_node *parse_filter(parser *P, chat_node *input, int start_inline) {
    while (is_op(cur(P), "|") || start_inline) {
        if (!start_inline) next(P);
        start_inline = 0;
        if (cur(P)->kind != T_NAME) return pfail(P, cur(P)->line, "expected a filter name, got '%s'", tok_desc(cur(P)));
        const char *name = cur(P)->s;
        int line = cur(P)->line;
        next(P);
        if (is_op(cur(P), ".")) return pfail(P, line, "unsupported feature: dotted filter name '%s'", name);
        chat_node *f = mk(P, E_FILTER, line);
        FAIL_IF(!f);
        f->unknown = !chat_filter_known(name);
        f->a = input;
        f->name = name;
        if (is_op(cur(P), "(") && parse_call_args(P, f)) return NULL;
        input = f;
    }
    return input;
}

static chat_node *parse_test(parser *P, chat_node *x) {
    int line = cur(P)->line;
    next(P); /* 'is' */
    int negated = skip_name(P, "not");
    if (cur(P)->kind != T_NAME) return pfail(P, cur(P)->line, "expected a test name, got '%s'", tok_desc(cur(P)));
    const char *name = cur(P)->s;
    next(P);
    chat_node *t = mk(P, E_TEST, line);
    FAIL_IF(!t);
    t->unknown = !chat_test_known(name);
    t->a = x;
    t->name = name;
    t->op = negated;
    const chat_tok *c = cur(P);
    if (is_op(c, "(")) {
        if (parse_call_args(P, t)) return NULL;
        if (t->n_names) return pfail(P, line, "unsupported feature: keyword arguments to test '%s'", name);
    } else if ((c->kind == T_NAME || c->kind == T_STRING || c->kind == T_INT || c->kind == T_FLOAT || is_op(c, "(") ||
                is_op(c, "[") || is_op(c, "{")) &&
               !is_name(c, "else") && !is_name(c, "or") && !is_name(c, "and")) {
        if (is_name(c, "is")) return pfail(P, c->line, "you cannot chain multiple tests with is%s", "");
        chat_node *arg = parse_primary(P);
        FAIL_IF(!arg);
        FAIL_IF(!(arg = parse_postfix(P, arg)));
        chat_node **kids = arena_alloc(P->a, sizeof *kids);
        if (!kids) return pfail(P, line, "template too large%s", "");
        kids[0] = arg;
        t->kids = kids;
        t->n_kids = 1;
    }
    return t;
}

static chat_node *parse_subscribed(parser *P) {
    int line = cur(P)->line;
    chat_node *parts[3] = {0};
    if (is_op(cur(P), ":")) {
        next(P);
    } else {
        chat_node *e = parse_expression(P, 1);
        FAIL_IF(!e);
        if (!is_op(cur(P), ":")) return e;
        next(P);
        parts[0] = e;
    }
    if (!is_op(cur(P), ":") && !is_op(cur(P), "]") && !is_op(cur(P), ",")) FAIL_IF(!(parts[1] = parse_expression(P, 1)));
    if (is_op(cur(P), ":")) {
        next(P);
        if (!is_op(cur(P), "]") && !is_op(cur(P), ",")) FAIL_IF(!(parts[2] = parse_expression(P, 1)));
    }
    chat_node *s = mk(P, E_SLICE, line);
    FAIL_IF(!s);
    s->b = parts[0];
    s->c = parts[1];
    s->d = parts[2];
    return s;
}

static chat_node *parse_postfix(parser *P, chat_node *n) {
    while (1) {
        const chat_tok *t = cur(P);
        if (is_op(t, ".")) {
            next(P);
            const chat_tok *a = cur(P);
            if (a->kind == T_NAME) {
                chat_node *g = mk(P, E_GETATTR, a->line);
                FAIL_IF(!g);
                g->a = n;
                g->name = a->s;
                next(P);
                n = g;
            } else if (a->kind == T_INT) {
                chat_node *g = mk(P, E_GETITEM, a->line), *k = mk(P, E_CONST, a->line);
                FAIL_IF(!g || !k);
                k->value = jv_int(a->i);
                g->a = n;
                g->b = k;
                next(P);
                n = g;
            } else {
                return pfail(P, a->line, "expected a name after '.', got '%s'", tok_desc(a));
            }
        } else if (is_op(t, "[")) {
            next(P);
            nvec args = {0};
            while (!is_op(cur(P), "]")) {
                if (args.n && expect_op(P, ",")) return NULL;
                if (is_op(cur(P), "]")) break;
                chat_node *s = parse_subscribed(P);
                if (!s || nv_push(P, &args, s)) return NULL;
            }
            next(P);
            if (args.n == 0) return pfail(P, t->line, "empty subscript%s", "");
            chat_node *key = args.v[0];
            if (args.n > 1) {
                FAIL_IF(!(key = mk(P, E_TUPLE, t->line)));
                key->kids = args.v;
                key->n_kids = args.n;
            }
            if (key->kind == E_SLICE) {
                key->a = n;
                n = key;
            } else {
                chat_node *g = mk(P, E_GETITEM, t->line);
                FAIL_IF(!g);
                g->a = n;
                g->b = key;
                n = g;
            }
        } else if (is_op(t, "(")) {
            chat_node *c = mk(P, E_CALL, t->line);
            FAIL_IF(!c);
            c->a = n;
            if (parse_call_args(P, c)) return NULL;
            n = c;
        } else {
            return n;
        }
    }
}

static chat_node *parse_primary(parser *P) {
    const chat_tok *t = cur(P);
    chat_node *n;
    if (++P->depth > CHAT_MAX_DEPTH) return pfail(P, t->line, "expression nested too deep%s", "");
    if (t->kind == T_NAME) {
        const char *s = t->s;
        FAIL_IF(!(n = mk(P, E_CONST, t->line)));
        if (!strcmp(s, "true") || !strcmp(s, "True")) n->value = jv_bool(1);
        else if (!strcmp(s, "false") || !strcmp(s, "False")) n->value = jv_bool(0);
        else if (!strcmp(s, "none") || !strcmp(s, "None")) n->value = jv_none();
        else {
            n->kind = E_NAME;
            n->name = s;
        }
        next(P);
    } else if (t->kind == T_STRING) {
        /* adjacent literals join, as in Python */
        size_t total = 0;
        int k = 0;
        while (peek(P, k)->kind == T_STRING) total += peek(P, k++)->len;
        char *buf = arena_alloc(P->a, total + 1);
        if (!buf) return pfail(P, t->line, "template too large%s", "");
        size_t o = 0;
        for (int j = 0; j < k; j++) {
            memcpy(buf + o, cur(P)->s, cur(P)->len);
            o += cur(P)->len;
            next(P);
        }
        FAIL_IF(!(n = mk(P, E_CONST, t->line)));
        n->value = const_str(P, buf, total);
    } else if (t->kind == T_INT || t->kind == T_FLOAT) {
        FAIL_IF(!(n = mk(P, E_CONST, t->line)));
        n->value = t->kind == T_INT ? jv_int(t->i) : jv_float(t->f);
        next(P);
    } else if (is_op(t, "(")) {
        next(P);
        FAIL_IF(!(n = parse_tuple(P, 0, 1, NULL, 1)));
        if (expect_op(P, ")")) return NULL;
    } else if (is_op(t, "[") || is_op(t, "{")) {
        int dict = is_op(t, "{");
        const char *close = dict ? "}" : "]";
        next(P);
        nvec keys = {0}, vals = {0};
        while (!is_op(cur(P), close)) {
            if (keys.n && expect_op(P, ",")) return NULL;
            if (is_op(cur(P), close)) break;
            chat_node *k = parse_expression(P, 1);
            if (!k || nv_push(P, &keys, k)) return NULL;
            if (dict) {
                if (expect_op(P, ":")) return NULL;
                chat_node *v = parse_expression(P, 1);
                if (!v || nv_push(P, &vals, v)) return NULL;
            }
        }
        next(P);
        FAIL_IF(!(n = mk(P, dict ? E_DICT : E_LIST, t->line)));
        n->kids = keys.v;
        n->n_kids = keys.n;
        n->kids2 = vals.v;
        n->n_kids2 = vals.n;
    } else {
        return pfail(P, t->line, "unexpected '%s'", tok_desc(t));
    }
    P->depth--;
    return n;
}

static chat_node *parse_unary(parser *P, int with_filter) {
    const chat_tok *t = cur(P);
    chat_node *n;
    if (++P->depth > CHAT_MAX_DEPTH) return pfail(P, t->line, "expression nested too deep%s", "");
    if (is_op(t, "-") || is_op(t, "+")) {
        next(P);
        FAIL_IF(!(n = mk(P, is_op(t, "-") ? E_NEG : E_POS, t->line)));
        FAIL_IF(!(n->a = parse_unary(P, 0)));
    } else {
        FAIL_IF(!(n = parse_primary(P)));
    }
    FAIL_IF(!(n = parse_postfix(P, n)));
    while (with_filter) {
        if (is_op(cur(P), "|")) FAIL_IF(!(n = parse_filter(P, n, 0)));
        else if (is_name(cur(P), "is")) FAIL_IF(!(n = parse_test(P, n)));
        else if (is_op(cur(P), "(")) {
            chat_node *c = mk(P, E_CALL, cur(P)->line);
            FAIL_IF(!c);
            c->a = n;
            if (parse_call_args(P, c)) return NULL;
            n = c;
        } else break;
    }
    P->depth--;
    return n;
}

static chat_node *mk_binop(parser *P, int op, chat_node *a, chat_node *b, int line) {
    chat_node *n = mk(P, E_BINOP, line);
    FAIL_IF(!n);
    n->op = op;
    n->a = a;
    n->b = b;
    return n;
}

static chat_node *parse_pow(parser *P) {
    chat_node *l = parse_unary(P, 1);
    while (l && is_op(cur(P), "**")) {
        int line = cur(P)->line;
        next(P);
        chat_node *r = parse_unary(P, 1);
        FAIL_IF(!r);
        l = mk_binop(P, OP_POW, l, r, line);
    }
    return l;
}

static chat_node *parse_math2(parser *P) {
    chat_node *l = parse_pow(P);
    while (l) {
        const chat_tok *t = cur(P);
        int op = is_op(t, "*") ? OP_MUL : is_op(t, "/") ? OP_DIV : is_op(t, "//") ? OP_FLOORDIV : is_op(t, "%") ? OP_MOD : -1;
        if (op < 0) break;
        next(P);
        chat_node *r = parse_pow(P);
        FAIL_IF(!r);
        l = mk_binop(P, op, l, r, t->line);
    }
    return l;
}

static chat_node *parse_concat(parser *P) {
    int line = cur(P)->line;
    chat_node *first = parse_math2(P);
    FAIL_IF(!first);
    if (!is_op(cur(P), "~")) return first;
    nvec v = {0};
    if (nv_push(P, &v, first)) return NULL;
    while (skip_op(P, "~")) {
        chat_node *r = parse_math2(P);
        if (!r || nv_push(P, &v, r)) return NULL;
    }
    chat_node *n = mk(P, E_CONCAT, line);
    FAIL_IF(!n);
    n->kids = v.v;
    n->n_kids = v.n;
    return n;
}

static chat_node *parse_math1(parser *P) {
    chat_node *l = parse_concat(P);
    while (l && (is_op(cur(P), "+") || is_op(cur(P), "-"))) {
        const chat_tok *t = cur(P);
        next(P);
        chat_node *r = parse_concat(P);
        FAIL_IF(!r);
        l = mk_binop(P, is_op(t, "+") ? OP_ADD : OP_SUB, l, r, t->line);
    }
    return l;
}

static chat_node *parse_compare(parser *P) {
    int line = cur(P)->line;
    chat_node *first = parse_math1(P);
    FAIL_IF(!first);
    nvec v = {0};
    int ops[64], n_ops = 0;
    while (1) {
        const chat_tok *t = cur(P);
        int op = is_op(t, "==") ? OP_EQ : is_op(t, "!=") ? OP_NE : is_op(t, "<") ? OP_LT : is_op(t, "<=") ? OP_LE
               : is_op(t, ">") ? OP_GT : is_op(t, ">=") ? OP_GE : is_name(t, "in") ? OP_IN : -1;
        if (op < 0 && is_name(t, "not") && is_name(peek(P, 1), "in")) {
            op = OP_NOTIN;
            next(P);
        }
        if (op < 0) break;
        next(P);
        if (n_ops == 64) return pfail(P, line, "comparison chain too long%s", "");
        ops[n_ops++] = op;
        chat_node *r = parse_math1(P);
        if (!r || nv_push(P, &v, r)) return NULL;
    }
    if (!n_ops) return first;
    chat_node *n = mk(P, E_COMPARE, line);
    FAIL_IF(!n);
    n->a = first;
    n->kids = v.v;
    n->n_kids = v.n;
    n->ops = arena_alloc(P->a, (size_t)n_ops * sizeof(int));
    if (!n->ops) return pfail(P, line, "template too large%s", "");
    memcpy(n->ops, ops, (size_t)n_ops * sizeof(int));
    return n;
}

static chat_node *parse_not(parser *P) {
    if (is_name(cur(P), "not")) {
        int line = cur(P)->line;
        next(P);
        if (++P->depth > CHAT_MAX_DEPTH) return pfail(P, line, "expression nested too deep%s", "");
        chat_node *n = mk(P, E_NOT, line);
        FAIL_IF(!n);
        FAIL_IF(!(n->a = parse_not(P)));
        P->depth--;
        return n;
    }
    return parse_compare(P);
}

static chat_node *parse_and_or(parser *P, int is_or) {
    chat_node *l = is_or ? parse_and_or(P, 0) : parse_not(P);
    while (l && is_name(cur(P), is_or ? "or" : "and")) {
        int line = cur(P)->line;
        next(P);
        chat_node *r = is_or ? parse_and_or(P, 0) : parse_not(P);
        FAIL_IF(!r);
        chat_node *n = mk(P, is_or ? E_OR : E_AND, line);
        FAIL_IF(!n);
        n->a = l;
        n->b = r;
        l = n;
    }
    return l;
}

static chat_node *parse_condexpr(parser *P) {
    chat_node *e1 = parse_and_or(P, 1);
    while (e1 && is_name(cur(P), "if")) {
        int line = cur(P)->line;
        next(P);
        chat_node *n = mk(P, E_COND, line);
        FAIL_IF(!n);
        n->a = e1;
        FAIL_IF(!(n->b = parse_and_or(P, 1)));
        if (skip_name(P, "else")) {
            if (++P->depth > CHAT_MAX_DEPTH) return pfail(P, line, "expression nested too deep%s", "");
            FAIL_IF(!(n->c = parse_condexpr(P)));
            P->depth--;
        }
        e1 = n;
    }
    return e1;
}

static chat_node *parse_expression(parser *P, int with_condexpr) {
    if (++P->depth > CHAT_MAX_DEPTH) return pfail(P, cur(P)->line, "expression nested too deep%s", "");
    chat_node *n = with_condexpr ? parse_condexpr(P) : parse_and_or(P, 1);
    P->depth--;
    return n;
}

/* ------------------------------------------------------------ statements */

static int expect_block_end(parser *P) {
    if (cur(P)->kind == T_BLOCK_END) { next(P); return 0; }
    pfail(P, cur(P)->line, "expected '%%}', got '%s'", tok_desc(cur(P)));
    return -1;
}

/* Statements until a block tag whose name is one of ends (NULL-terminated);
 * leaves the cursor on that name and stores which in *which. */
static int parse_body(parser *P, const char *const *ends, nvec *out, int *which);

static chat_node *parse_for(parser *P, int line) {
    chat_node *n = mk(P, N_FOR, line);
    FAIL_IF(!n);
    FAIL_IF(!(n->a = parse_tuple(P, 1, 0, "in", 0)));
    if (!skip_name(P, "in")) return pfail(P, cur(P)->line, "expected 'in', got '%s'", tok_desc(cur(P)));
    FAIL_IF(!(n->b = parse_tuple(P, 0, 0, "recursive", 0)));
    if (skip_name(P, "if")) FAIL_IF(!(n->c = parse_expression(P, 1)));
    if (is_name(cur(P), "recursive")) return pfail(P, line, "unsupported feature: recursive for loop%s", "");
    if (expect_block_end(P)) return NULL;
    static const char *const ends[] = {"endfor", "else", NULL};
    nvec body = {0}, els = {0};
    int which;
    if (parse_body(P, ends, &body, &which)) return NULL;
    next(P);
    if (which == 1) {
        static const char *const ends2[] = {"endfor", NULL};
        if (expect_block_end(P) || parse_body(P, ends2, &els, &which)) return NULL;
        next(P);
    }
    if (expect_block_end(P)) return NULL;
    n->kids = body.v;
    n->n_kids = body.n;
    n->kids2 = els.v;
    n->n_kids2 = els.n;
    return n;
}

static chat_node *parse_if(parser *P, int line) {
    chat_node *n = mk(P, N_IF, line);
    FAIL_IF(!n);
    FAIL_IF(!(n->a = parse_tuple(P, 0, 0, NULL, 0)));
    if (expect_block_end(P)) return NULL;
    static const char *const ends[] = {"elif", "else", "endif", NULL};
    nvec body = {0}, els = {0};
    int which;
    if (parse_body(P, ends, &body, &which)) return NULL;
    n->kids = body.v;
    n->n_kids = body.n;
    int eline = cur(P)->line;
    next(P);
    if (which == 0) {
        chat_node *e = parse_if(P, eline);
        if (!e || nv_push(P, &els, e)) return NULL;
    } else {
        if (which == 1) {
            static const char *const ends2[] = {"endif", NULL};
            if (expect_block_end(P) || parse_body(P, ends2, &els, &which)) return NULL;
            next(P);
        }
        if (expect_block_end(P)) return NULL;
    }
    n->kids2 = els.v;
    n->n_kids2 = els.n;
    return n;
}

/* ( name [= default], ... ) into names / kids2 */
static int parse_signature(parser *P, chat_node *n) {
    svec names = {0};
    nvec defs = {0};
    if (expect_op(P, "(")) return -1;
    while (!is_op(cur(P), ")")) {
        if (names.n && expect_op(P, ",")) return -1;
        if (cur(P)->kind != T_NAME) {
            pfail(P, cur(P)->line, "expected a parameter name, got '%s'", tok_desc(cur(P)));
            return -1;
        }
        const char *nm = cur(P)->s;
        next(P);
        chat_node *d = NULL;
        if (skip_op(P, "=") && !(d = parse_expression(P, 1))) return -1;
        if (!d && defs.n && defs.v[defs.n - 1]) {
            pfail(P, cur(P)->line, "parameter without a default follows one with a default%s", "");
            return -1;
        }
        if (sv_push(P, &names, nm) || nv_push(P, &defs, d)) return -1;
    }
    next(P);
    n->names = names.v;
    n->n_names = names.n;
    n->kids2 = defs.v;
    n->n_kids2 = defs.n;
    return 0;
}

static chat_node *parse_statement(parser *P) {
    const chat_tok *t = cur(P);
    int line = t->line;
    if (t->kind != T_NAME) return pfail(P, line, "expected a tag name, got '%s'", tok_desc(t));
    const char *tag = t->s;
    next(P);
    if (!strcmp(tag, "for")) return parse_for(P, line);
    if (!strcmp(tag, "if")) return parse_if(P, line);
    if (!strcmp(tag, "break") || !strcmp(tag, "continue")) {
        chat_node *n = mk(P, tag[0] == 'b' ? N_BREAK : N_CONTINUE, line);
        FAIL_IF(!n || expect_block_end(P));
        return n;
    }
    if (!strcmp(tag, "set")) {
        chat_node *target;
        if (cur(P)->kind == T_NAME && is_op(peek(P, 1), ".")) {
            FAIL_IF(!(target = mk(P, E_GETATTR, line)));
            FAIL_IF(!(target->a = mk(P, E_NAME, line)));
            target->a->name = cur(P)->s;
            next(P);
            next(P);
            if (cur(P)->kind != T_NAME) return pfail(P, line, "expected an attribute name, got '%s'", tok_desc(cur(P)));
            target->name = cur(P)->s;
            next(P);
        } else {
            FAIL_IF(!(target = parse_tuple(P, 1, 1, NULL, 0)));
        }
        if (skip_op(P, "=")) {
            chat_node *n = mk(P, N_SET, line);
            FAIL_IF(!n);
            n->a = target;
            FAIL_IF(!(n->b = parse_tuple(P, 0, 1, NULL, 0)));
            FAIL_IF(expect_block_end(P));
            return n;
        }
        if (target->kind != E_NAME) return pfail(P, line, "a block set needs a single name%s", "");
        chat_node *n = mk(P, N_SETBLOCK, line);
        FAIL_IF(!n);
        n->a = target;
        if (is_op(cur(P), "|")) FAIL_IF(!(n->c = parse_filter(P, NULL, 0)));
        FAIL_IF(expect_block_end(P));
        static const char *const ends[] = {"endset", NULL};
        nvec body = {0};
        int which;
        if (parse_body(P, ends, &body, &which)) return NULL;
        next(P);
        FAIL_IF(expect_block_end(P));
        n->kids = body.v;
        n->n_kids = body.n;
        return n;
    }
    if (!strcmp(tag, "macro") || !strcmp(tag, "call")) {
        int is_macro = tag[0] == 'm';
        chat_node *n = mk(P, is_macro ? N_MACRO : N_CALLBLOCK, line);
        FAIL_IF(!n);
        if (is_macro) {
            if (cur(P)->kind != T_NAME) return pfail(P, line, "expected a macro name, got '%s'", tok_desc(cur(P)));
            n->name = cur(P)->s;
            next(P);
            if (parse_signature(P, n)) return NULL;
        } else {
            if (is_op(cur(P), "(") && parse_signature(P, n)) return NULL;
            FAIL_IF(!(n->a = parse_expression(P, 1)));
            if (n->a->kind != E_CALL) return pfail(P, line, "expected a call after {%% call %%}%s", "");
        }
        FAIL_IF(expect_block_end(P));
        static const char *const mends[] = {"endmacro", NULL}, *const cends[] = {"endcall", NULL};
        nvec body = {0};
        int which;
        if (parse_body(P, is_macro ? mends : cends, &body, &which)) return NULL;
        next(P);
        if (cur(P)->kind == T_NAME) next(P); /* {% endmacro name %} */
        FAIL_IF(expect_block_end(P));
        n->kids = body.v;
        n->n_kids = body.n;
        return n;
    }
    if (!strcmp(tag, "filter") || !strcmp(tag, "generation")) {
        int is_filter = tag[0] == 'f';
        chat_node *n = mk(P, is_filter ? N_FILTERBLOCK : N_BODY, line);
        FAIL_IF(!n);
        if (is_filter) FAIL_IF(!(n->a = parse_filter(P, NULL, 1)));
        FAIL_IF(expect_block_end(P));
        static const char *const fends[] = {"endfilter", NULL}, *const gends[] = {"endgeneration", NULL};
        nvec body = {0};
        int which;
        if (parse_body(P, is_filter ? fends : gends, &body, &which)) return NULL;
        next(P);
        FAIL_IF(expect_block_end(P));
        n->kids = body.v;
        n->n_kids = body.n;
        return n;
    }
    static const char *const refused[] = {"extends", "block", "include", "import", "from", "with", "autoescape",
                                          "trans", "do", "raw", NULL};
    for (int i = 0; refused[i]; i++)
        if (!strcmp(tag, refused[i])) return pfail(P, line, "unsupported feature: {%% %s %%}", tag);
    return pfail(P, line, "unknown tag '%s'", tag);
}

static int parse_body(parser *P, const char *const *ends, nvec *out, int *which) {
    if (++P->depth > CHAT_MAX_DEPTH) { pfail(P, cur(P)->line, "blocks nested too deep%s", ""); return -1; }
    while (1) {
        const chat_tok *t = cur(P);
        if (t->kind == T_EOF) {
            if (ends) {
                int e = 0;
                while (ends[e + 1] && strncmp(ends[e], "end", 3)) e++;
                pfail(P, t->line, "unexpected end of template: missing {%% %s %%}", ends[e]);
                return -1;
            }
            break;
        }
        chat_node *n = NULL;
        if (t->kind == T_DATA) {
            if (!(n = mk(P, N_TEXT, t->line))) return -1;
            n->value = const_str(P, t->s, t->len);
            next(P);
        } else if (t->kind == T_VAR_BEGIN) {
            next(P);
            if (!(n = mk(P, N_OUTPUT, t->line)) || !(n->a = parse_tuple(P, 0, 1, NULL, 0))) return -1;
            if (cur(P)->kind != T_VAR_END) {
                pfail(P, cur(P)->line, "expected '}}', got '%s'", tok_desc(cur(P)));
                return -1;
            }
            next(P);
        } else if (t->kind == T_BLOCK_BEGIN) {
            next(P);
            const chat_tok *nm = cur(P);
            if (nm->kind == T_NAME && ends) {
                for (int i = 0; ends[i]; i++)
                    if (!strcmp(nm->s, ends[i])) {
                        *which = i;
                        P->depth--;
                        return 0;
                    }
            }
            if (nm->kind == T_NAME && (!strncmp(nm->s, "end", 3) || !strcmp(nm->s, "else") || !strcmp(nm->s, "elif"))) {
                pfail(P, nm->line, "unexpected '%s'", nm->s);
                return -1;
            }
            if (!(n = parse_statement(P))) return -1;
        } else {
            pfail(P, t->line, "unexpected '%s'", tok_desc(t));
            return -1;
        }
        if (nv_push(P, out, n)) return -1;
    }
    P->depth--;
    return 0;
}

/* Refuse filters and tests this interpreter lacks where jinja2 refuses
 * unknown ones: anywhere but inside an if (its test and branches) or a
 * conditional expression; a for, macro, call or block body starts afresh. */
static int check_names(parser *P, const chat_node *n, int soft) {
    if (!n) return 0;
    if (n->unknown && !soft) {
        pfail(P, n->line, n->kind == E_FILTER ? "unsupported feature: filter '%s'" : "unsupported feature: test '%s'", n->name);
        return -1;
    }
    int inner = soft;
    if (n->kind == N_IF || n->kind == E_COND) inner = 1;
    int body_soft = inner;
    if (n->kind == N_FOR || n->kind == N_MACRO || n->kind == N_CALLBLOCK || n->kind == N_FILTERBLOCK || n->kind == N_SETBLOCK)
        body_soft = 0;
    if (check_names(P, n->a, inner) || check_names(P, n->b, inner) || check_names(P, n->c, inner) || check_names(P, n->d, inner))
        return -1;
    for (int i = 0; i < n->n_kids; i++)
        if (check_names(P, n->kids[i], n->kind <= N_BODY ? body_soft : inner)) return -1;
    for (int i = 0; i < n->n_kids2; i++)
        if (check_names(P, n->kids2[i], n->kind <= N_BODY ? body_soft : inner)) return -1;
    return 0;
}

int chat_parse(chat_arena *a, const chat_tok *toks, int n, const char *name, chat_node **out, moe_err *err) {
    parser P = {.a = a, .t = toks, .n = n, .name = name, .err = err};
    nvec body = {0};
    int which;
    if (parse_body(&P, NULL, &body, &which) || P.failed) {
        if (!P.failed) moe_fail(err, "%s: parse failed", name);
        return -1;
    }
    chat_node *root = mk(&P, N_BODY, 1);
    if (!root) return -1;
    for (int i = 0; i < body.n; i++)
        if (check_names(&P, body.v[i], 0)) return -1;
    root->kids = body.v;
    root->n_kids = body.n;
    *out = root;
    return 0;
}
