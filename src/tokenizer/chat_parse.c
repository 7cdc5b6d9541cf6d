/*
 * chat_parse.c - tokens -> syntax tree: the expressions (chat_stmt.c has the
 * statements), following jinja2's parser (Parser in jinja2/parser.py) rule
 * for rule so precedence and tuple handling match:
 *   expr    := or ('if' or ('else' expr)?)*
 *   or      := and ('or' and)*        and := not ('and' not)*
 *   not     := 'not' not | compare    compare := math1 (cmp math1)*
 *   math1   := concat (('+'|'-') concat)*    concat := math2 ('~' math2)*
 *   math2   := pow (('*'|'/'|'//'|'%') pow)* pow := unary ('**' unary)*
 *   unary   := ('-'|'+') unary-without-filters | primary postfix* (filter|test|call)*
 * A filter or test this interpreter lacks is marked (chat_node.unknown) and
 * refused by chat_stmt.c where jinja2 refuses unknown ones.
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
#include "tokenizer/chat_parse.h"

void *parse_fail(parser *P, int line, const char *fmt, const char *arg) {
    if (!P->failed) {
        char m[300];
        snprintf(m, sizeof m, fmt, arg ? arg : "");
        moe_fail(P->err, "%s:%d: %s", P->name, line, m);
    }
    P->failed = 1;
    return NULL;
}

int parse_expect_op(parser *P, const char *op) {
    if (skip_op(P, op)) return 0;
    if (!P->failed) moe_fail(P->err, "%s:%d: expected '%s', got '%s'", P->name, cur(P)->line, op, tok_desc(cur(P)));
    P->failed = 1;
    return -1;
}

chat_node *parse_node(parser *P, chat_node_kind k, int line) {
    chat_node *n = arena_alloc(P->a, sizeof *n);
    if (!n) return parse_fail(P, line, "template too large%s", "");
    n->kind = k;
    n->line = line;
    return n;
}

/* a growable array of node pointers in the arena */
int parse_nv_push(parser *P, nvec *v, chat_node *x) {
    if (v->n == v->cap) {
        int cap = v->cap ? v->cap * 2 : 8;
        chat_node **nv = arena_alloc(P->a, (size_t)cap * sizeof *nv);
        if (!nv) { parse_fail(P, cur(P)->line, "template too large%s", ""); return -1; }
        if (v->n) memcpy(nv, v->v, (size_t)v->n * sizeof *nv);
        v->v = nv;
        v->cap = cap;
    }
    v->v[v->n++] = x;
    return 0;
}
int parse_sv_push(parser *P, svec *v, const char *x) {
    if (v->n == v->cap) {
        int cap = v->cap ? v->cap * 2 : 8;
        const char **nv = arena_alloc(P->a, (size_t)cap * sizeof *nv);
        if (!nv) { parse_fail(P, cur(P)->line, "template too large%s", ""); return -1; }
        if (v->n) memcpy((void *)nv, (const void *)v->v, (size_t)v->n * sizeof *nv);
        v->v = nv;
        v->cap = cap;
    }
    v->v[v->n++] = x;
    return 0;
}

jv parse_const_str(parser *P, const char *s, size_t n) {
    jv v = {0};
    jstr *js = arena_alloc(P->a, sizeof *js + n + 1);
    if (!js) { parse_fail(P, cur(P)->line, "template too large%s", ""); return v; }
    js->len = n;
    memcpy(js->s, s, n);
    v.t = JV_STR;
    v.u.s = js;
    return v;
}

static chat_node *parse_unary(parser *P, int with_filter);
static chat_node *parse_primary(parser *P);
static chat_node *parse_postfix(parser *P, chat_node *n);

static int is_tuple_end(parser *P, const char *extra) {
    const chat_tok *t = cur(P);
    if (t->kind == T_VAR_END || t->kind == T_BLOCK_END || t->kind == T_EOF || is_op(t, ")")) return 1;
    return extra && is_name(t, extra);
}

/* simplified: names only (assignment targets); explicit: inside ( ) */
chat_node *parse_tuple(parser *P, int simplified, int with_condexpr, const char *extra, int explicit_paren) {
    int line = cur(P)->line;
    nvec items = {0};
    int is_tuple = 0;
    while (1) {
        if (items.n && parse_expect_op(P, ",")) return NULL;
        if (is_tuple_end(P, extra)) break;
        chat_node *e;
        if (simplified) {
            if (cur(P)->kind != T_NAME) return parse_fail(P, cur(P)->line, "expected a name, got '%s'", tok_desc(cur(P)));
            FAIL_IF(!(e = parse_node(P, E_NAME, cur(P)->line)));
            e->name = cur(P)->s;
            next(P);
        } else {
            FAIL_IF(!(e = parse_expression(P, with_condexpr)));
        }
        if (parse_nv_push(P, &items, e)) return NULL;
        if (is_op(cur(P), ",")) is_tuple = 1;
        else break;
    }
    if (!is_tuple) {
        if (items.n) return items.v[0];
        if (!explicit_paren) return parse_fail(P, line, "expected an expression, got '%s'", tok_desc(cur(P)));
    }
    chat_node *t = parse_node(P, E_TUPLE, line);
    FAIL_IF(!t);
    t->kids = items.v;
    t->n_kids = items.n;
    return t;
}

static int parse_call_args(parser *P, chat_node *call) {
    nvec args = {0}, kwv = {0};
    svec kwn = {0};
    if (parse_expect_op(P, "(")) return -1;
    while (!is_op(cur(P), ")")) {
        if (args.n || kwv.n) {
            if (parse_expect_op(P, ",")) return -1;
            if (is_op(cur(P), ")")) break;
        }
        if (is_op(cur(P), "*") || is_op(cur(P), "**")) {
            parse_fail(P, cur(P)->line, "unsupported feature: *args / **kwargs in a call%s", "");
            return -1;
        }
        if (cur(P)->kind == T_NAME && is_op(peek(P, 1), "=")) {
            const char *k = cur(P)->s;
            next(P);
            next(P);
            chat_node *v = parse_expression(P, 1);
            if (!v || parse_sv_push(P, &kwn, k) || parse_nv_push(P, &kwv, v)) return -1;
        } else {
            if (kwv.n) {
                parse_fail(P, cur(P)->line, "positional argument follows keyword argument%s", "");
                return -1;
            }
            chat_node *v = parse_expression(P, 1);
            if (!v || parse_nv_push(P, &args, v)) return -1;
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
chat_node *parse_filter(parser *P, chat_node *input, int start_inline) {
    while (is_op(cur(P), "|") || start_inline) {
        if (!start_inline) next(P);
        start_inline = 0;
        if (cur(P)->kind != T_NAME) return parse_fail(P, cur(P)->line, "expected a filter name, got '%s'", tok_desc(cur(P)));
        const char *name = cur(P)->s;
        int line = cur(P)->line;
        next(P);
        if (is_op(cur(P), ".")) return parse_fail(P, line, "unsupported feature: dotted filter name '%s'", name);
        chat_node *f = parse_node(P, E_FILTER, line);
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
    if (cur(P)->kind != T_NAME) return parse_fail(P, cur(P)->line, "expected a test name, got '%s'", tok_desc(cur(P)));
    const char *name = cur(P)->s;
    next(P);
    chat_node *t = parse_node(P, E_TEST, line);
    FAIL_IF(!t);
    t->unknown = !chat_test_known(name);
    t->a = x;
    t->name = name;
    t->op = negated;
    const chat_tok *c = cur(P);
    if (is_op(c, "(")) {
        if (parse_call_args(P, t)) return NULL;
        if (t->n_names) return parse_fail(P, line, "unsupported feature: keyword arguments to test '%s'", name);
    } else if ((c->kind == T_NAME || c->kind == T_STRING || c->kind == T_INT || c->kind == T_FLOAT || is_op(c, "(") ||
                is_op(c, "[") || is_op(c, "{")) &&
               !is_name(c, "else") && !is_name(c, "or") && !is_name(c, "and")) {
        if (is_name(c, "is")) return parse_fail(P, c->line, "you cannot chain multiple tests with is%s", "");
        chat_node *arg = parse_primary(P);
        FAIL_IF(!arg);
        FAIL_IF(!(arg = parse_postfix(P, arg)));
        chat_node **kids = arena_alloc(P->a, sizeof *kids);
        if (!kids) return parse_fail(P, line, "template too large%s", "");
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
    chat_node *s = parse_node(P, E_SLICE, line);
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
                chat_node *g = parse_node(P, E_GETATTR, a->line);
                FAIL_IF(!g);
                g->a = n;
                g->name = a->s;
                next(P);
                n = g;
            } else if (a->kind == T_INT) {
                chat_node *g = parse_node(P, E_GETITEM, a->line), *k = parse_node(P, E_CONST, a->line);
                FAIL_IF(!g || !k);
                k->value = jv_int(a->i);
                g->a = n;
                g->b = k;
                next(P);
                n = g;
            } else {
                return parse_fail(P, a->line, "expected a name after '.', got '%s'", tok_desc(a));
            }
        } else if (is_op(t, "[")) {
            next(P);
            nvec args = {0};
            while (!is_op(cur(P), "]")) {
                if (args.n && parse_expect_op(P, ",")) return NULL;
                if (is_op(cur(P), "]")) break;
                chat_node *s = parse_subscribed(P);
                if (!s || parse_nv_push(P, &args, s)) return NULL;
            }
            next(P);
            if (args.n == 0) return parse_fail(P, t->line, "empty subscript%s", "");
            chat_node *key = args.v[0];
            for (int i = 0; args.n > 1 && i < args.n; i++)
                if (args.v[i]->kind == E_SLICE) return parse_fail(P, t->line, "unsupported feature: a slice in a tuple subscript%s", "");
            if (args.n > 1) {
                FAIL_IF(!(key = parse_node(P, E_TUPLE, t->line)));
                key->kids = args.v;
                key->n_kids = args.n;
            }
            if (key->kind == E_SLICE) {
                key->a = n;
                n = key;
            } else {
                chat_node *g = parse_node(P, E_GETITEM, t->line);
                FAIL_IF(!g);
                g->a = n;
                g->b = key;
                n = g;
            }
        } else if (is_op(t, "(")) {
            chat_node *c = parse_node(P, E_CALL, t->line);
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
    if (++P->depth > CHAT_MAX_DEPTH) return parse_fail(P, t->line, "expression nested too deep%s", "");
    if (t->kind == T_NAME) {
        const char *s = t->s;
        FAIL_IF(!(n = parse_node(P, E_CONST, t->line)));
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
        if (!buf) return parse_fail(P, t->line, "template too large%s", "");
        size_t o = 0;
        for (int j = 0; j < k; j++) {
            memcpy(buf + o, cur(P)->s, cur(P)->len);
            o += cur(P)->len;
            next(P);
        }
        FAIL_IF(!(n = parse_node(P, E_CONST, t->line)));
        n->value = parse_const_str(P, buf, total);
    } else if (t->kind == T_INT || t->kind == T_FLOAT) {
        FAIL_IF(!(n = parse_node(P, E_CONST, t->line)));
        n->value = t->kind == T_INT ? jv_int(t->i) : jv_float(t->f);
        next(P);
    } else if (is_op(t, "(")) {
        next(P);
        FAIL_IF(!(n = parse_tuple(P, 0, 1, NULL, 1)));
        if (parse_expect_op(P, ")")) return NULL;
    } else if (is_op(t, "[") || is_op(t, "{")) {
        int dict = is_op(t, "{");
        const char *close = dict ? "}" : "]";
        next(P);
        nvec keys = {0}, vals = {0};
        while (!is_op(cur(P), close)) {
            if (keys.n && parse_expect_op(P, ",")) return NULL;
            if (is_op(cur(P), close)) break;
            chat_node *k = parse_expression(P, 1);
            if (!k || parse_nv_push(P, &keys, k)) return NULL;
            if (dict) {
                if (parse_expect_op(P, ":")) return NULL;
                chat_node *v = parse_expression(P, 1);
                if (!v || parse_nv_push(P, &vals, v)) return NULL;
            }
        }
        next(P);
        FAIL_IF(!(n = parse_node(P, dict ? E_DICT : E_LIST, t->line)));
        n->kids = keys.v;
        n->n_kids = keys.n;
        n->kids2 = vals.v;
        n->n_kids2 = vals.n;
    } else {
        return parse_fail(P, t->line, "unexpected '%s'", tok_desc(t));
    }
    P->depth--;
    return n;
}

static chat_node *parse_unary(parser *P, int with_filter) {
    const chat_tok *t = cur(P);
    chat_node *n;
    if (++P->depth > CHAT_MAX_DEPTH) return parse_fail(P, t->line, "expression nested too deep%s", "");
    if (is_op(t, "-") || is_op(t, "+")) {
        next(P);
        FAIL_IF(!(n = parse_node(P, is_op(t, "-") ? E_NEG : E_POS, t->line)));
        FAIL_IF(!(n->a = parse_unary(P, 0)));
    } else {
        FAIL_IF(!(n = parse_primary(P)));
    }
    FAIL_IF(!(n = parse_postfix(P, n)));
    while (with_filter) {
        if (is_op(cur(P), "|")) FAIL_IF(!(n = parse_filter(P, n, 0)));
        else if (is_name(cur(P), "is")) FAIL_IF(!(n = parse_test(P, n)));
        else if (is_op(cur(P), "(")) {
            chat_node *c = parse_node(P, E_CALL, cur(P)->line);
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
    chat_node *n = parse_node(P, E_BINOP, line);
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
    if (parse_nv_push(P, &v, first)) return NULL;
    while (skip_op(P, "~")) {
        chat_node *r = parse_math2(P);
        if (!r || parse_nv_push(P, &v, r)) return NULL;
    }
    chat_node *n = parse_node(P, E_CONCAT, line);
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
        if (n_ops == 64) return parse_fail(P, line, "comparison chain too long%s", "");
        ops[n_ops++] = op;
        chat_node *r = parse_math1(P);
        if (!r || parse_nv_push(P, &v, r)) return NULL;
    }
    if (!n_ops) return first;
    chat_node *n = parse_node(P, E_COMPARE, line);
    FAIL_IF(!n);
    n->a = first;
    n->kids = v.v;
    n->n_kids = v.n;
    n->ops = arena_alloc(P->a, (size_t)n_ops * sizeof(int));
    if (!n->ops) return parse_fail(P, line, "template too large%s", "");
    memcpy(n->ops, ops, (size_t)n_ops * sizeof(int));
    return n;
}

static chat_node *parse_not(parser *P) {
    if (is_name(cur(P), "not")) {
        int line = cur(P)->line;
        next(P);
        if (++P->depth > CHAT_MAX_DEPTH) return parse_fail(P, line, "expression nested too deep%s", "");
        chat_node *n = parse_node(P, E_NOT, line);
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
        chat_node *n = parse_node(P, is_or ? E_OR : E_AND, line);
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
        chat_node *n = parse_node(P, E_COND, line);
        FAIL_IF(!n);
        n->a = e1;
        FAIL_IF(!(n->b = parse_and_or(P, 1)));
        if (skip_name(P, "else")) {
            if (++P->depth > CHAT_MAX_DEPTH) return parse_fail(P, line, "expression nested too deep%s", "");
            FAIL_IF(!(n->c = parse_condexpr(P)));
            P->depth--;
        }
        e1 = n;
    }
    return e1;
}

chat_node *parse_expression(parser *P, int with_condexpr) {
    if (++P->depth > CHAT_MAX_DEPTH) return parse_fail(P, cur(P)->line, "expression nested too deep%s", "");
    chat_node *n = with_condexpr ? parse_condexpr(P) : parse_and_or(P, 1);
    P->depth--;
    return n;
}

