/*
 * chat_parse.h - the parser state and helpers that chat_parse.c
 * (expressions) and chat_stmt.c (statements) share. Internal to those two.
 */
#ifndef MOE_CHAT_PARSE_H
#define MOE_CHAT_PARSE_H

#include <string.h>

#include "tokenizer/chat_internal.h"

typedef struct parser {
    chat_arena *a;
    const chat_tok *t;
    int n, pos;
    const char *name;
    moe_err *err;
    int failed;
    int depth;
    int loops; /* for-loop bodies around the statement being parsed (reset in a macro) */
} parser;

#define FAIL_IF(c) do { if (c) return NULL; } while (0)

static inline const chat_tok *cur(parser *P) { return &P->t[P->pos]; }
static inline const chat_tok *peek(parser *P, int k) {
    int i = P->pos + k;
    return &P->t[i < P->n ? i : P->n - 1];
}
static inline void next(parser *P) { if (P->pos < P->n - 1) P->pos++; }
static inline int is_op(const chat_tok *t, const char *op) { return t->kind == T_OP && !strcmp(t->s, op); }
static inline int is_name(const chat_tok *t, const char *nm) { return t->kind == T_NAME && !strcmp(t->s, nm); }
static inline int skip_op(parser *P, const char *op) {
    if (!is_op(cur(P), op)) return 0;
    next(P);
    return 1;
}
static inline int skip_name(parser *P, const char *nm) {
    if (!is_name(cur(P), nm)) return 0;
    next(P);
    return 1;
}
static inline const char *tok_desc(const chat_tok *t) {
    switch (t->kind) {
    case T_EOF: return "end of template";
    case T_VAR_END: return "'}}'";
    case T_BLOCK_END: return "'%}'";
    case T_NAME: case T_OP: return t->s;
    case T_STRING: return "string";
    default: return "token";
    }
}

/* growable arrays of node pointers / names in the arena */
typedef struct nvec { chat_node **v; int n, cap; } nvec;
typedef struct svec { const char **v; int n, cap; } svec;

/* Record "name:line: message" (the first failure only); returns NULL. fmt has one %s for arg. */
void *parse_fail(parser *P, int line, const char *fmt, const char *arg);
int parse_expect_op(parser *P, const char *op);
chat_node *parse_node(parser *P, chat_node_kind k, int line);
int parse_nv_push(parser *P, nvec *v, chat_node *x);
int parse_sv_push(parser *P, svec *v, const char *x);
jv parse_const_str(parser *P, const char *s, size_t n);

/* expressions (chat_parse.c) */
chat_node *parse_expression(parser *P, int with_condexpr);
/* simplified: names only (assignment targets); extra: a name that ends the tuple; explicit: inside ( ) */
chat_node *parse_tuple(parser *P, int simplified, int with_condexpr, const char *extra, int explicit_paren);
/* input NULL: the placeholder of a filter block / filtered set block */
chat_node *parse_filter(parser *P, chat_node *input, int start_inline);

#endif
