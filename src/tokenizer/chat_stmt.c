/*
 * chat_stmt.c - the statements of a chat template (chat_parse.c has the
 * expressions): if/elif/else, for (with else and a loop filter), set (a
 * name, names, ns.attr, or a block with filters), macro, call, filter,
 * break, continue, generation. Tags jinja2 has but this interpreter lacks
 * (include, import, extends, block, with, ...) are refused with their name
 * and line; so are filters and tests it lacks, where jinja2 refuses unknown
 * ones when compiling (check_names).
 */
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "tokenizer/chat_parse.h"

static int expect_block_end(parser *P) {
    if (cur(P)->kind == T_BLOCK_END) { next(P); return 0; }
    parse_fail(P, cur(P)->line, "expected '%%}', got '%s'", tok_desc(cur(P)));
    return -1;
}

/* Statements until a block tag whose name is one of ends (NULL-terminated);
 * leaves the cursor on that name and stores which in *which. */
static int parse_body(parser *P, const char *const *ends, nvec *out, int *which);

static chat_node *parse_for(parser *P, int line) {
    chat_node *n = parse_node(P, N_FOR, line);
    FAIL_IF(!n);
    FAIL_IF(!(n->a = parse_tuple(P, 1, 0, "in", 0)));
    if (!skip_name(P, "in")) return parse_fail(P, cur(P)->line, "expected 'in', got '%s'", tok_desc(cur(P)));
    FAIL_IF(!(n->b = parse_tuple(P, 0, 0, "recursive", 0)));
    if (skip_name(P, "if")) FAIL_IF(!(n->c = parse_expression(P, 1)));
    if (is_name(cur(P), "recursive")) return parse_fail(P, line, "unsupported feature: recursive for loop%s", "");
    if (expect_block_end(P)) return NULL;
    static const char *const ends[] = {"endfor", "else", NULL};
    nvec body = {0}, els = {0};
    int which;
    P->loops++;
    if (parse_body(P, ends, &body, &which)) return NULL;
    P->loops--;
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
    chat_node *n = parse_node(P, N_IF, line);
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
        if (!e || parse_nv_push(P, &els, e)) return NULL;
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
    if (parse_expect_op(P, "(")) return -1;
    while (!is_op(cur(P), ")")) {
        if (names.n && parse_expect_op(P, ",")) return -1;
        if (cur(P)->kind != T_NAME) {
            parse_fail(P, cur(P)->line, "expected a parameter name, got '%s'", tok_desc(cur(P)));
            return -1;
        }
        const char *nm = cur(P)->s;
        next(P);
        chat_node *d = NULL;
        if (skip_op(P, "=") && !(d = parse_expression(P, 1))) return -1;
        if (!d && defs.n && defs.v[defs.n - 1]) {
            parse_fail(P, cur(P)->line, "parameter without a default follows one with a default%s", "");
            return -1;
        }
        if (parse_sv_push(P, &names, nm) || parse_nv_push(P, &defs, d)) return -1;
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
    if (t->kind != T_NAME) return parse_fail(P, line, "expected a tag name, got '%s'", tok_desc(t));
    const char *tag = t->s;
    next(P);
    if (!strcmp(tag, "for")) return parse_for(P, line);
    if (!strcmp(tag, "if")) return parse_if(P, line);
    if (!strcmp(tag, "break") || !strcmp(tag, "continue")) {
        /* jinja2 compiles these to Python's break / continue: outside a loop they do not compile */
        if (!P->loops) return parse_fail(P, line, "'%s' outside a for loop", tag);
        chat_node *n = parse_node(P, tag[0] == 'b' ? N_BREAK : N_CONTINUE, line);
        FAIL_IF(!n || expect_block_end(P));
        return n;
    }
    if (!strcmp(tag, "set")) {
        chat_node *target;
        if (cur(P)->kind == T_NAME && is_op(peek(P, 1), ".")) {
            FAIL_IF(!(target = parse_node(P, E_GETATTR, line)));
            FAIL_IF(!(target->a = parse_node(P, E_NAME, line)));
            target->a->name = cur(P)->s;
            next(P);
            next(P);
            if (cur(P)->kind != T_NAME) return parse_fail(P, line, "expected an attribute name, got '%s'", tok_desc(cur(P)));
            target->name = cur(P)->s;
            next(P);
        } else {
            FAIL_IF(!(target = parse_tuple(P, 1, 1, NULL, 0)));
        }
        if (skip_op(P, "=")) {
            chat_node *n = parse_node(P, N_SET, line);
            FAIL_IF(!n);
            n->a = target;
            FAIL_IF(!(n->b = parse_tuple(P, 0, 1, NULL, 0)));
            FAIL_IF(expect_block_end(P));
            return n;
        }
        if (target->kind != E_NAME) return parse_fail(P, line, "a block set needs a single name%s", "");
        chat_node *n = parse_node(P, N_SETBLOCK, line);
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
        chat_node *n = parse_node(P, is_macro ? N_MACRO : N_CALLBLOCK, line);
        FAIL_IF(!n);
        if (is_macro) {
            if (cur(P)->kind != T_NAME) return parse_fail(P, line, "expected a macro name, got '%s'", tok_desc(cur(P)));
            n->name = cur(P)->s;
            next(P);
            if (parse_signature(P, n)) return NULL;
        } else {
            if (is_op(cur(P), "(") && parse_signature(P, n)) return NULL;
            FAIL_IF(!(n->a = parse_expression(P, 1)));
            if (n->a->kind != E_CALL) return parse_fail(P, line, "expected a call after {%% call %%}%s", "");
        }
        FAIL_IF(expect_block_end(P));
        static const char *const mends[] = {"endmacro", NULL}, *const cends[] = {"endcall", NULL};
        nvec body = {0};
        int which;
        int loops = P->loops;
        P->loops = 0; /* a macro or call body is a function of its own */
        if (parse_body(P, is_macro ? mends : cends, &body, &which)) return NULL;
        P->loops = loops;
        next(P);
        if (cur(P)->kind == T_NAME) next(P); /* {% endmacro name %} */
        FAIL_IF(expect_block_end(P));
        n->kids = body.v;
        n->n_kids = body.n;
        return n;
    }
    if (!strcmp(tag, "filter") || !strcmp(tag, "generation")) {
        int is_filter = tag[0] == 'f';
        chat_node *n = parse_node(P, is_filter ? N_FILTERBLOCK : N_BODY, line);
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
        if (!strcmp(tag, refused[i])) return parse_fail(P, line, "unsupported feature: {%% %s %%}", tag);
    return parse_fail(P, line, "unknown tag '%s'", tag);
}

static int parse_body(parser *P, const char *const *ends, nvec *out, int *which) {
    if (++P->depth > CHAT_MAX_DEPTH) { parse_fail(P, cur(P)->line, "blocks nested too deep%s", ""); return -1; }
    while (1) {
        const chat_tok *t = cur(P);
        if (t->kind == T_EOF) {
            if (ends) {
                int e = 0;
                while (ends[e + 1] && strncmp(ends[e], "end", 3)) e++;
                parse_fail(P, t->line, "unexpected end of template: missing {%% %s %%}", ends[e]);
                return -1;
            }
            break;
        }
        chat_node *n = NULL;
        if (t->kind == T_DATA) {
            if (!(n = parse_node(P, N_TEXT, t->line))) return -1;
            n->value = parse_const_str(P, t->s, t->len);
            next(P);
        } else if (t->kind == T_VAR_BEGIN) {
            next(P);
            if (!(n = parse_node(P, N_OUTPUT, t->line)) || !(n->a = parse_tuple(P, 0, 1, NULL, 0))) return -1;
            if (cur(P)->kind != T_VAR_END) {
                parse_fail(P, cur(P)->line, "expected '}}', got '%s'", tok_desc(cur(P)));
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
                parse_fail(P, nm->line, "unexpected '%s'", nm->s);
                return -1;
            }
            if (!(n = parse_statement(P))) return -1;
        } else {
            parse_fail(P, t->line, "unexpected '%s'", tok_desc(t));
            return -1;
        }
        if (parse_nv_push(P, out, n)) return -1;
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
        parse_fail(P, n->line, n->kind == E_FILTER ? "unsupported feature: filter '%s'" : "unsupported feature: test '%s'", n->name);
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
    chat_node *root = parse_node(&P, N_BODY, 1);
    if (!root) return -1;
    for (int i = 0; i < body.n; i++)
        if (check_names(&P, body.v[i], 0)) return -1;
    root->kids = body.v;
    root->n_kids = body.n;
    *out = root;
    return 0;
}

