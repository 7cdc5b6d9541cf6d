/*
 * chat_internal.h - the Jinja interpreter behind moe_chat.h, shared by
 * chat_lex.c (source -> tokens), chat_parse.c (tokens -> tree),
 * chat_value.c (values, Python str/repr, JSON), chat_eval.c (tree -> text)
 * and chat_filters.c (filters, tests, methods of str/dict/list).
 *
 * Values follow Python as jinja2 sees them: None, bool, int (64-bit here;
 * overflow is an error), float, str (UTF-8; lengths and indices count code
 * points), list, tuple, dict (insertion-ordered), namespace, callables, and
 * jinja2's default Undefined. Everything a render allocates comes from one
 * arena freed when the render ends; errors unwind with longjmp to the render
 * entry, so no code path has to free.
 */
#ifndef MOE_CHAT_INTERNAL_H
#define MOE_CHAT_INTERNAL_H

#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>

#include "moe.h"
#include "moe_chat.h"

struct cJSON;

/* ------------------------------------------------------------------ arena */

typedef struct chat_chunk chat_chunk;
typedef struct chat_arena {
    chat_chunk *head; /* newest chunk first */
    size_t total;     /* bytes handed out so far */
    size_t limit;     /* refuse beyond this many bytes */
} chat_arena;

/* NULL when the limit is reached or malloc fails. Memory is zeroed. */
void *arena_alloc(chat_arena *a, size_t n);
void arena_free(chat_arena *a);

/* ----------------------------------------------------------------- values */

typedef enum {
    JV_UNDEF = 0, /* jinja2 Undefined: prints '', falsy, iterates empty */
    JV_NONE,
    JV_BOOL,
    JV_INT,
    JV_FLOAT,
    JV_STR,
    JV_LIST, /* also tuples (jlist.tuple) */
    JV_DICT,
    JV_NS,   /* namespace(): a dict whose attributes may be set */
    JV_FUNC, /* macro, builtin function or bound method */
} jv_type;

typedef struct jstr {
    size_t len; /* bytes, without the NUL */
    char s[];   /* NUL-terminated UTF-8 */
} jstr;

struct jlist;
struct jdict;
struct jfunc;

typedef struct jv {
    jv_type t;
    int markup; /* JV_STR: a markupsafe Markup (from |safe, |escape): adding a plain str to it
                   HTML-escapes that str, as jinja2 does */
    union {
        int b;
        int64_t i;
        double f;
        jstr *s;
        struct jlist *l;
        struct jdict *d; /* JV_DICT and JV_NS */
        struct jfunc *fn;
    } u;
    const char *undef_name; /* JV_UNDEF: what was missing (for messages), may be NULL */
} jv;

/* What Python object a jlist stands for besides list/tuple: jinja2's map,
 * select, ... filters return generators (no len(), not JSON-serializable),
 * dict.items() a view, range() a range. */
typedef enum {
    JL_PLAIN = 0,   /* list, or tuple when .tuple */
    JL_GENERATOR,
    JL_DICT_ITEMS,
    JL_DICT_KEYS,
    JL_DICT_VALUES,
    JL_RANGE,
} jlist_view;

typedef struct jlist {
    size_t n, cap;
    int tuple;       /* prints as (a, b) */
    jlist_view view;
    int64_t range[3]; /* JL_RANGE: start, stop, step (for printing) */
    jv *v;
} jlist;

typedef struct jdict {
    size_t n, cap;
    jv *k, *v;
} jdict;

struct chat_node;
struct chat_frame;
typedef struct chat_rt chat_rt;

typedef enum {
    FN_MACRO = 0, /* a {% macro %} (or the caller of a {% call %} block) */
    FN_BUILTIN,   /* a global such as range or namespace */
    FN_METHOD,    /* self.name(...) on a str / dict / list / loop */
} jfunc_kind;

typedef struct jfunc {
    jfunc_kind kind;
    const char *name;
    const struct chat_node *macro; /* FN_MACRO */
    struct chat_frame *closure;    /* FN_MACRO: the frame it was defined in */
    jv caller;                     /* FN_MACRO: the caller() of a {% call %} block, or JV_UNDEF */
    jv self;                       /* FN_METHOD */
} jfunc;

static inline jv jv_undef(void) { jv v = {0}; return v; }
static inline jv jv_none(void) { jv v = {0}; v.t = JV_NONE; return v; }
static inline jv jv_bool(int b) { jv v = {0}; v.t = JV_BOOL; v.u.b = b != 0; return v; }
static inline jv jv_int(int64_t i) { jv v = {0}; v.t = JV_INT; v.u.i = i; return v; }
static inline jv jv_float(double f) { jv v = {0}; v.t = JV_FLOAT; v.u.f = f; return v; }

/* ----------------------------------------------------------- syntax tree */

typedef enum {
    /* statements */
    N_TEXT = 0, N_OUTPUT, N_IF, N_FOR, N_SET, N_SETBLOCK, N_MACRO, N_CALLBLOCK,
    N_FILTERBLOCK, N_BREAK, N_CONTINUE, N_BODY,
    /* expressions */
    E_CONST, E_NAME, E_TUPLE, E_LIST, E_DICT, E_GETATTR, E_GETITEM, E_SLICE, E_CALL,
    E_FILTER, E_TEST, E_NEG, E_POS, E_NOT, E_AND, E_OR, E_BINOP, E_COMPARE, E_COND, E_CONCAT,
} chat_node_kind;

typedef enum {
    OP_ADD = 0, OP_SUB, OP_MUL, OP_DIV, OP_FLOORDIV, OP_MOD, OP_POW,
    OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE, OP_IN, OP_NOTIN,
} chat_op;

typedef struct chat_node {
    chat_node_kind kind;
    int line;
    int op;                  /* E_BINOP: chat_op; E_TEST: 1 when negated; N_SET: 1 for ns.attr */
    const char *name;        /* E_NAME, E_GETATTR, E_FILTER, E_TEST, N_MACRO, N_SET ns attr */
    jv value;                /* E_CONST */
    struct chat_node *a, *b, *c, *d; /* operands / target, iter, cond, ... (see chat_parse.c) */
    struct chat_node **kids; /* bodies, list/tuple items, call args, compare operands */
    int n_kids;
    struct chat_node **kids2; /* else-body, dict values, keyword args values, macro defaults */
    int n_kids2;
    const char **names;      /* keyword argument names, macro parameter names */
    int n_names;
    int *ops;                /* E_COMPARE: the operators between kids */
    int unknown;             /* E_FILTER / E_TEST: a name this interpreter lacks (jinja2 refuses it
                                when compiling, except inside an if or a conditional expression,
                                where only running it fails) */
} chat_node;

/* ---------------------------------------------------------------- lexer */

typedef enum {
    T_EOF = 0, T_DATA, T_VAR_BEGIN, T_VAR_END, T_BLOCK_BEGIN, T_BLOCK_END,
    T_NAME, T_STRING, T_INT, T_FLOAT, T_OP,
} chat_tok_kind;

typedef struct chat_tok {
    chat_tok_kind kind;
    int line;
    const char *s; /* T_DATA, T_NAME, T_STRING (decoded), T_OP: NUL-terminated, in the arena */
    size_t len;    /* bytes of s */
    int64_t i;     /* T_INT */
    double f;      /* T_FLOAT */
} chat_tok;

/* Tokenize src (newlines normalized, one trailing newline dropped, as
 * jinja2 does). Returns the token count (>= 1, the last is T_EOF) or -1. */
int chat_lex(chat_arena *a, const char *src, size_t len, const char *name, chat_tok **out, moe_err *err);

/* Parse tokens into the template's body (an N_BODY). */
int chat_parse(chat_arena *a, const chat_tok *toks, int n, const char *name, chat_node **out, moe_err *err);

/* ----------------------------------------------------------- the runtime */

struct moe_chat_template {
    chat_arena arena;   /* tokens and tree */
    chat_node *body;
    char *name;
    char *src;
    int64_t fixed_time; /* < 0: strftime_now reads the clock */
};

typedef struct chat_frame {
    struct chat_frame *parent;
    const char **names;
    jv *vals;
    int n, cap;
} chat_frame;

/* Limits a render runs under. */
#define CHAT_MAX_DEPTH 200            /* nested macro calls / expression depth */
#define CHAT_MAX_OUTPUT (64u << 20)   /* bytes of rendered text */
#define CHAT_MAX_ARENA (512u << 20)   /* bytes of working memory */
#define CHAT_MAX_STEPS 20000000LL     /* loop iterations + calls */

struct chat_rt {
    const moe_chat_template *t;
    chat_arena arena;
    jmp_buf jmp;
    moe_err *err;
    int line;          /* the line being run, for messages */
    int depth;
    long long steps;
    chat_frame *globals;
};

/* Fail the render: "name:line: message". Never returns. */
_Noreturn void rt_fail(chat_rt *rt, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void *rt_alloc(chat_rt *rt, size_t n);
void rt_step(chat_rt *rt); /* count one unit of work against CHAT_MAX_STEPS */

/* growable string builder in the arena */
typedef struct sbuf {
    chat_rt *rt;
    char *p;
    size_t n, cap;
} sbuf;
void sb_put(sbuf *b, const char *s, size_t n);
void sb_puts(sbuf *b, const char *s);
void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
jv sb_finish(sbuf *b); /* the built string as a JV_STR */

/* values (chat_value.c) */
jv jv_str(chat_rt *rt, const char *s, size_t n);
jv jv_cstr(chat_rt *rt, const char *s);
jv jv_list_new(chat_rt *rt, size_t cap, int tuple);
void jv_list_push(chat_rt *rt, jv list, jv item);
jv jv_dict_new(chat_rt *rt, int ns);
void jv_dict_set(chat_rt *rt, jv dict, jv key, jv val);
int jv_dict_get(jv dict, jv key, jv *val); /* 1 if found */
int jv_dict_get_str(jv dict, const char *key, jv *val);
int jv_truthy(jv v);
int jv_equal(jv a, jv b);
int jv_compare(chat_rt *rt, jv a, jv b); /* <0, 0, >0; fails on unorderable types */
const char *jv_type_name(jv v);      /* Python's type name: 'str', 'int', 'NoneType' ... */
void jv_write_str(sbuf *b, jv v);    /* Python str(v) */
void jv_write_repr(sbuf *b, jv v);   /* Python repr(v) */
jv jv_to_str(chat_rt *rt, jv v);     /* str(v) as a JV_STR */
jv html_escape(chat_rt *rt, jv s);   /* markupsafe.escape: a Markup */
void py_float_repr(char *out, size_t cap, double f);
/* json.dumps(v, ensure_ascii=False, indent=, separators=, sort_keys=).
 * indent < 0: none. item_sep/key_sep NULL: the defaults. */
void jv_write_json(chat_rt *rt, sbuf *b, jv v, int indent, const char *item_sep, const char *key_sep,
                   int sort_keys, int level);
unsigned char *json_float_flags(chat_rt *rt, const char *text, size_t n, size_t *count);
jv jv_from_cjson(chat_rt *rt, const struct cJSON *j, const unsigned char *flags, size_t n_flags, size_t *idx);
/* str helpers counting code points */
size_t utf8_count(const char *s, size_t n);
size_t utf8_offset(const char *s, size_t n, size_t cps); /* byte offset of code point cps */
int py_isspace(int32_t cp);

/* evaluation (chat_eval.c) */
jv eval_expr(chat_rt *rt, chat_frame *f, const chat_node *e);
jv call_value(chat_rt *rt, jv fn, jv *args, int n_args, const char **kw_names, jv *kw_vals, int n_kw);
jv get_attr(chat_rt *rt, jv obj, const char *name);
jv get_item(chat_rt *rt, jv obj, jv key);
jv binop(chat_rt *rt, int op, jv a, jv b);
int jv_contains(chat_rt *rt, jv container, jv item);
/* Iterate: a list of the items (dict -> keys, str -> chars). */
jlist *jv_iter(chat_rt *rt, jv v);

/* filters, tests, methods, builtins (chat_filters.c) */
jv apply_filter(chat_rt *rt, chat_frame *f, const char *name, jv x, jv *args, int n_args, const char **kw_names,
                jv *kw_vals, int n_kw);
int apply_test(chat_rt *rt, chat_frame *f, const char *name, jv x, jv *args, int n_args);
int chat_filter_known(const char *name);
int chat_test_known(const char *name);
jv call_method(chat_rt *rt, jv self, const char *name, jv *args, int n_args, const char **kw_names, jv *kw_vals,
               int n_kw);
int method_exists(jv self, const char *name);
jv call_builtin(chat_rt *rt, const char *name, jv *args, int n_args, const char **kw_names, jv *kw_vals, int n_kw);
int builtin_exists(const char *name);

#endif
