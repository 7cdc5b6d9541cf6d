/*
 * chat_filters.c - jinja2's builtin filters and tests that chat templates
 * use, the methods of str / dict / list a sandboxed template may call, and
 * the globals transformers adds (raise_exception, strftime_now, namespace,
 * dict) besides jinja2's range. Each behaves as its jinja2 / Python
 * original; the immutable sandbox's refusals (list.append, dict.update, ...)
 * are errors here too.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <utf8proc.h>

#include "tokenizer/chat_internal.h"
#include "tokenizer/tok_internal.h"

/* ------------------------------------------------------------ arguments */

/* The argument called name (position pos, or keyword), or def. */
typedef struct fargs {
    jv *args;
    int n_args;
    const char **kw_names;
    jv *kw_vals;
    int n_kw;
} fargs;

static jv arg(const fargs *a, int pos, const char *name, jv def) {
    for (int i = 0; i < a->n_kw; i++)
        if (name && !strcmp(a->kw_names[i], name)) return a->kw_vals[i];
    if (pos >= 0 && pos < a->n_args) return a->args[pos];
    return def;
}

static void check_args(chat_rt *rt, const char *what, const fargs *a, int max_pos, const char *const *names) {
    if (a->n_args > max_pos) rt_fail(rt, "%s takes at most %d positional argument(s), got %d", what, max_pos, a->n_args);
    for (int i = 0; i < a->n_kw; i++) {
        int ok = 0;
        for (int k = 0; names && names[k]; k++) ok |= !strcmp(names[k], a->kw_names[i]);
        if (!ok) rt_fail(rt, "%s got an unexpected keyword argument '%s'", what, a->kw_names[i]);
    }
}

static const jstr *need_str(chat_rt *rt, jv v, const char *what) {
    if (v.t != JV_STR) rt_fail(rt, "%s: expected a string, got %s", what, jv_type_name(v));
    return v.u.s;
}

static int64_t need_int(chat_rt *rt, jv v, const char *what) {
    if (v.t == JV_INT) return v.u.i;
    if (v.t == JV_BOOL) return v.u.b;
    rt_fail(rt, "%s: expected an integer, got %s", what, jv_type_name(v));
}

/* ------------------------------------------------------------ string ops */

static int32_t cp_at(const char *s, size_t n, size_t i, int *len) {
    if ((unsigned char)s[i] < 0x80) { *len = 1; return (unsigned char)s[i]; }
    int l = utf8_len((unsigned char)s[i]);
    if (i + (size_t)l > n) { *len = 1; return (unsigned char)s[i]; }
    return utf8_decode(s + i, len);
}

static int in_chars(int32_t cp, const jstr *chars) {
    for (size_t i = 0; i < chars->len;) {
        int l;
        if (cp_at(chars->s, chars->len, i, &l) == cp) return 1;
        i += (size_t)l;
    }
    return 0;
}

/* which: 1 left, 2 right, 3 both; chars NULL: whitespace */
static jv str_strip(chat_rt *rt, const jstr *s, const jstr *chars, int which) {
    size_t a = 0, b = s->len;
    if (which & 1)
        while (a < b) {
            int l;
            int32_t cp = cp_at(s->s, s->len, a, &l);
            if (chars ? !in_chars(cp, chars) : !py_isspace(cp)) break;
            a += (size_t)l;
        }
    if (which & 2)
        while (b > a) {
            size_t p = b - 1;
            while (p > a && ((unsigned char)s->s[p] & 0xC0) == 0x80) p--;
            int l;
            int32_t cp = cp_at(s->s, s->len, p, &l);
            if (chars ? !in_chars(cp, chars) : !py_isspace(cp)) break;
            b = p;
        }
    return jv_str(rt, s->s + a, b - a);
}

typedef int32_t (*case_fn)(int32_t);
static void put_cp(sbuf *b, int32_t cp) {
    char u[4];
    sb_put(b, u, (size_t)utf8_encode(cp, u));
}
static int32_t cp_upper(int32_t c) { return utf8proc_toupper(c); }
static int32_t cp_lower(int32_t c) { return utf8proc_tolower(c); }
static int32_t cp_title(int32_t c) { return utf8proc_totitle(c); }
static int cp_cased(int32_t c) { return utf8proc_tolower(c) != c || utf8proc_toupper(c) != c; }

/* mode 0 upper, 1 lower, 2 capitalize (first title... Python: first upper, rest lower), 3 Python str.title */
static jv str_case(chat_rt *rt, const jstr *s, int mode) {
    sbuf b = {.rt = rt};
    sb_put(&b, "", 0);
    int prev_cased = 0, first = 1;
    for (size_t i = 0; i < s->len;) {
        int l;
        int32_t cp = cp_at(s->s, s->len, i, &l);
        int32_t o;
        if (mode == 0) o = cp_upper(cp);
        else if (mode == 1) o = cp_lower(cp);
        else if (mode == 2) o = first ? cp_title(cp) : cp_lower(cp);
        else o = prev_cased ? cp_lower(cp) : cp_title(cp);
        if (mode == 3) prev_cased = cp_cased(cp);
        first = 0;
        put_cp(&b, o);
        i += (size_t)l;
    }
    return sb_finish(&b);
}

static const char *find_bytes(const jstr *s, size_t from, const jstr *sub) {
    if (from > s->len) return NULL;
    return memmem(s->s + from, s->len - from, sub->s, sub->len);
}

static jv str_replace(chat_rt *rt, const jstr *s, const jstr *old, const jstr *new_, int64_t count) {
    sbuf b = {.rt = rt};
    sb_put(&b, "", 0);
    if (old->len == 0) { /* Python inserts new between every character */
        int64_t done = 0;
        for (size_t i = 0; i <= s->len;) {
            if (count < 0 || done < count) { sb_put(&b, new_->s, new_->len); done++; }
            if (i == s->len) break;
            int l;
            cp_at(s->s, s->len, i, &l);
            sb_put(&b, s->s + i, (size_t)l);
            i += (size_t)l;
        }
        return sb_finish(&b);
    }
    size_t i = 0;
    for (int64_t done = 0; count < 0 || done < count; done++) {
        const char *p = find_bytes(s, i, old);
        if (!p) break;
        size_t at = (size_t)(p - s->s);
        sb_put(&b, s->s + i, at - i);
        sb_put(&b, new_->s, new_->len);
        i = at + old->len;
    }
    sb_put(&b, s->s + i, s->len - i);
    return sb_finish(&b);
}

/* Python str.split / rsplit */
static jv str_split(chat_rt *rt, const jstr *s, jv sepv, int64_t maxsplit, int from_right) {
    jv out = jv_list_new(rt, 0, 0);
    if (sepv.t == JV_NONE || sepv.t == JV_UNDEF) {
        /* runs of whitespace, no empty strings */
        size_t n = s->len;
        size_t *st = rt_alloc(rt, (n + 1) * sizeof *st), *en = rt_alloc(rt, (n + 1) * sizeof *en);
        size_t cnt = 0;
        for (size_t i = 0; i < n;) {
            int l;
            while (i < n && py_isspace(cp_at(s->s, n, i, &l))) i += (size_t)l;
            if (i >= n) break;
            st[cnt] = i;
            while (i < n && !py_isspace(cp_at(s->s, n, i, &l))) i += (size_t)l;
            en[cnt++] = i;
        }
        if (maxsplit < 0 || (size_t)maxsplit >= cnt) {
            for (size_t k = 0; k < cnt; k++) jv_list_push(rt, out, jv_str(rt, s->s + st[k], en[k] - st[k]));
        } else if (!from_right) {
            for (int64_t k = 0; k < maxsplit; k++) jv_list_push(rt, out, jv_str(rt, s->s + st[k], en[k] - st[k]));
            jv rest = str_strip(rt, &(jstr){0}, NULL, 0);
            size_t a = st[maxsplit];
            jstr *tail = rest.u.s;
            (void)tail;
            jv_list_push(rt, out, str_strip(rt, (jstr *)jv_str(rt, s->s + a, n - a).u.s, NULL, 2));
        } else {
            size_t keep = cnt - (size_t)maxsplit;
            jv head = jv_str(rt, s->s, en[keep - 1]);
            jv_list_push(rt, out, str_strip(rt, head.u.s, NULL, 1));
            for (size_t k = keep; k < cnt; k++) jv_list_push(rt, out, jv_str(rt, s->s + st[k], en[k] - st[k]));
        }
        return out;
    }
    const jstr *sep = need_str(rt, sepv, "split");
    if (sep->len == 0) rt_fail(rt, "empty separator");
    if (!from_right) {
        size_t i = 0;
        for (int64_t done = 0; maxsplit < 0 || done < maxsplit; done++) {
            const char *p = find_bytes(s, i, sep);
            if (!p) break;
            size_t at = (size_t)(p - s->s);
            jv_list_push(rt, out, jv_str(rt, s->s + i, at - i));
            i = at + sep->len;
        }
        jv_list_push(rt, out, jv_str(rt, s->s + i, s->len - i));
        return out;
    }
    /* rsplit: collect from the right, then reverse */
    jv rev = jv_list_new(rt, 0, 0);
    size_t end = s->len;
    for (int64_t done = 0; maxsplit < 0 || done < maxsplit; done++) {
        const char *p = NULL;
        for (size_t k = end; k >= sep->len; k--)
            if (!memcmp(s->s + k - sep->len, sep->s, sep->len)) { p = s->s + k - sep->len; break; }
        if (!p) break;
        size_t at = (size_t)(p - s->s);
        jv_list_push(rt, rev, jv_str(rt, s->s + at + sep->len, end - at - sep->len));
        end = at;
    }
    jv_list_push(rt, rev, jv_str(rt, s->s, end));
    for (size_t k = rev.u.l->n; k > 0; k--) jv_list_push(rt, out, rev.u.l->v[k - 1]);
    return out;
}

static int str_starts(const jstr *s, const jstr *p) { return p->len <= s->len && !memcmp(s->s, p->s, p->len); }
static int str_ends(const jstr *s, const jstr *p) { return p->len <= s->len && !memcmp(s->s + s->len - p->len, p->s, p->len); }

/* str.format with {} / {0} / {name} fields and no format specs */
static jv str_format(chat_rt *rt, const jstr *s, const fargs *a) {
    sbuf b = {.rt = rt};
    sb_put(&b, "", 0);
    int auto_idx = 0;
    for (size_t i = 0; i < s->len; i++) {
        char c = s->s[i];
        if ((c == '{' || c == '}') && i + 1 < s->len && s->s[i + 1] == c) { sb_put(&b, &c, 1); i++; continue; }
        if (c == '}') rt_fail(rt, "Single '}' encountered in format string");
        if (c != '{') { sb_put(&b, &c, 1); continue; }
        size_t j = i + 1;
        while (j < s->len && s->s[j] != '}') j++;
        if (j >= s->len) rt_fail(rt, "Single '{' encountered in format string");
        char field[64];
        size_t fl = j - i - 1;
        if (fl >= sizeof field) rt_fail(rt, "format field too long");
        memcpy(field, s->s + i + 1, fl);
        field[fl] = 0;
        if (strpbrk(field, ":!.[")) rt_fail(rt, "unsupported feature: str.format field '{%s}'", field);
        jv v;
        if (fl == 0 || (field[0] >= '0' && field[0] <= '9')) {
            int k = fl == 0 ? auto_idx++ : atoi(field);
            if (k >= a->n_args) rt_fail(rt, "Replacement index %d out of range for positional args tuple", k);
            v = a->args[k];
        } else {
            v = arg(a, -1, field, jv_undef());
            if (v.t == JV_UNDEF) rt_fail(rt, "KeyError: '%s'", field);
        }
        jv_write_str(&b, v);
        i = j;
    }
    return sb_finish(&b);
}

/* ----------------------------------------------------------- methods */

static const char *const STR_METHODS[] = {"startswith", "endswith", "strip", "lstrip", "rstrip", "split", "rsplit",
    "replace", "upper", "lower", "title", "capitalize", "find", "rfind", "count", "join", "format", "isdigit",
    "isalpha", "isspace", "islower", "isupper", "isalnum", "splitlines", NULL};
static const char *const DICT_METHODS[] = {"get", "items", "keys", "values", "copy", "pop", "update", "setdefault",
    "clear", "popitem", "fromkeys", NULL};
static const char *const LIST_METHODS[] = {"index", "count", "copy", "append", "pop", "insert", "extend", "remove",
    "sort", "reverse", "clear", NULL};

static int in_list(const char *const *l, const char *name) {
    for (int i = 0; l[i]; i++)
        if (!strcmp(l[i], name)) return 1;
    return 0;
}

int method_exists(jv self, const char *name) {
    if (self.t == JV_STR) return in_list(STR_METHODS, name);
    if (self.t == JV_DICT) return in_list(DICT_METHODS, name);
    if (self.t == JV_LIST) return in_list(LIST_METHODS, name);
    return 0;
}

static jv dict_items(chat_rt *rt, jv d, int which) {
    jv out = jv_list_new(rt, d.u.d->n, 0);
    out.u.l->view = which == 0 ? JL_DICT_ITEMS : which == 1 ? JL_DICT_KEYS : JL_DICT_VALUES;
    for (size_t i = 0; i < d.u.d->n; i++) {
        if (which == 0) {
            jv t = jv_list_new(rt, 2, 1);
            jv_list_push(rt, t, d.u.d->k[i]);
            jv_list_push(rt, t, d.u.d->v[i]);
            jv_list_push(rt, out, t);
        } else jv_list_push(rt, out, which == 1 ? d.u.d->k[i] : d.u.d->v[i]);
    }
    return out;
}

static int str_all(const jstr *s, int kind) {
    if (!s->len) return 0;
    int cased = 0;
    for (size_t i = 0; i < s->len;) {
        int l;
        int32_t cp = cp_at(s->s, s->len, i, &l);
        utf8proc_category_t c = utf8proc_category(cp);
        int is_alpha = c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO;
        int is_digit = c == UTF8PROC_CATEGORY_ND;
        switch (kind) {
        case 0: if (!is_digit) return 0; break;
        case 1: if (!is_alpha) return 0; break;
        case 2: if (!py_isspace(cp)) return 0; break;
        case 3: if (!is_alpha && !is_digit) return 0; break;
        case 4: if (cp_upper(cp) != cp) cased = 1; if (cp_lower(cp) != cp) return 0; break; /* islower */
        case 5: if (cp_lower(cp) != cp) cased = 1; if (cp_upper(cp) != cp) return 0; break; /* isupper */
        }
        i += (size_t)l;
    }
    return kind >= 4 ? cased : 1;
}

jv call_method(chat_rt *rt, jv self, const char *name, jv *args, int n_args, const char **kw_names, jv *kw_vals,
               int n_kw) {
    fargs a = {args, n_args, kw_names, kw_vals, n_kw};
    if (self.t == JV_INT && !strcmp(name, "cycle")) { /* loop.cycle(a, b, ...) */
        if (!n_args) rt_fail(rt, "no items for cycling given");
        return args[self.u.i % n_args];
    }
    if (self.t == JV_STR) {
        const jstr *s = self.u.s;
        if (!strcmp(name, "startswith") || !strcmp(name, "endswith")) {
            check_args(rt, name, &a, 1, NULL);
            jv p = arg(&a, 0, NULL, jv_undef());
            int ends = name[0] == 'e';
            if (p.t == JV_LIST && p.u.l->tuple) {
                for (size_t i = 0; i < p.u.l->n; i++) {
                    const jstr *x = need_str(rt, p.u.l->v[i], name);
                    if (ends ? str_ends(s, x) : str_starts(s, x)) return jv_bool(1);
                }
                return jv_bool(0);
            }
            const jstr *x = need_str(rt, p, name);
            return jv_bool(ends ? str_ends(s, x) : str_starts(s, x));
        }
        if (!strcmp(name, "strip") || !strcmp(name, "lstrip") || !strcmp(name, "rstrip")) {
            check_args(rt, name, &a, 1, NULL);
            jv c = arg(&a, 0, NULL, jv_none());
            return str_strip(rt, s, c.t == JV_NONE ? NULL : need_str(rt, c, name), name[0] == 'l' ? 1 : name[0] == 'r' ? 2 : 3);
        }
        if (!strcmp(name, "split") || !strcmp(name, "rsplit")) {
            static const char *const kn[] = {"sep", "maxsplit", NULL};
            check_args(rt, name, &a, 2, kn);
            return str_split(rt, s, arg(&a, 0, "sep", jv_none()), need_int(rt, arg(&a, 1, "maxsplit", jv_int(-1)), name),
                             name[0] == 'r');
        }
        if (!strcmp(name, "replace")) {
            check_args(rt, name, &a, 3, NULL);
            return str_replace(rt, s, need_str(rt, arg(&a, 0, NULL, jv_undef()), name), need_str(rt, arg(&a, 1, NULL, jv_undef()), name),
                               need_int(rt, arg(&a, 2, NULL, jv_int(-1)), name));
        }
        if (!strcmp(name, "upper")) return str_case(rt, s, 0);
        if (!strcmp(name, "lower")) return str_case(rt, s, 1);
        if (!strcmp(name, "capitalize")) return str_case(rt, s, 2);
        if (!strcmp(name, "title")) return str_case(rt, s, 3);
        if (!strcmp(name, "find") || !strcmp(name, "rfind") || !strcmp(name, "count")) {
            check_args(rt, name, &a, 1, NULL);
            const jstr *sub = need_str(rt, arg(&a, 0, NULL, jv_undef()), name);
            if (!strcmp(name, "count")) {
                if (!sub->len) return jv_int((int64_t)utf8_count(s->s, s->len) + 1);
                int64_t c = 0;
                for (const char *p = find_bytes(s, 0, sub); p; p = find_bytes(s, (size_t)(p - s->s) + sub->len, sub)) c++;
                return jv_int(c);
            }
            const char *hit = NULL;
            if (name[0] == 'f') hit = find_bytes(s, 0, sub);
            else
                for (size_t k = s->len + 1; k-- > 0;)
                    if (k + sub->len <= s->len && !memcmp(s->s + k, sub->s, sub->len)) { hit = s->s + k; break; }
            return jv_int(hit ? (int64_t)utf8_count(s->s, (size_t)(hit - s->s)) : -1);
        }
        if (!strcmp(name, "join")) {
            check_args(rt, name, &a, 1, NULL);
            jlist *items = jv_iter(rt, arg(&a, 0, NULL, jv_undef()));
            sbuf b = {.rt = rt};
            sb_put(&b, "", 0);
            for (size_t i = 0; i < items->n; i++) {
                if (i) sb_put(&b, s->s, s->len);
                sb_put(&b, need_str(rt, items->v[i], "join")->s, items->v[i].u.s->len);
            }
            return sb_finish(&b);
        }
        if (!strcmp(name, "format")) return str_format(rt, s, &a);
        if (!strcmp(name, "isdigit")) return jv_bool(str_all(s, 0));
        if (!strcmp(name, "isalpha")) return jv_bool(str_all(s, 1));
        if (!strcmp(name, "isspace")) return jv_bool(str_all(s, 2));
        if (!strcmp(name, "isalnum")) return jv_bool(str_all(s, 3));
        if (!strcmp(name, "islower")) return jv_bool(str_all(s, 4));
        if (!strcmp(name, "isupper")) return jv_bool(str_all(s, 5));
    }
    if (self.t == JV_DICT) {
        if (!strcmp(name, "get")) {
            check_args(rt, name, &a, 2, NULL);
            jv v;
            if (jv_dict_get(self, arg(&a, 0, NULL, jv_none()), &v)) return v;
            return arg(&a, 1, NULL, jv_none());
        }
        if (!strcmp(name, "items")) return dict_items(rt, self, 0);
        if (!strcmp(name, "keys")) return dict_items(rt, self, 1);
        if (!strcmp(name, "values")) return dict_items(rt, self, 2);
        if (!strcmp(name, "copy")) {
            jv d = jv_dict_new(rt, 0);
            for (size_t i = 0; i < self.u.d->n; i++) jv_dict_set(rt, d, self.u.d->k[i], self.u.d->v[i]);
            return d;
        }
    }
    if (self.t == JV_LIST) {
        if (!strcmp(name, "index") || !strcmp(name, "count")) {
            check_args(rt, name, &a, 1, NULL);
            jv x = arg(&a, 0, NULL, jv_undef());
            int64_t c = 0;
            for (size_t i = 0; i < self.u.l->n; i++)
                if (jv_equal(self.u.l->v[i], x)) {
                    if (name[0] == 'i') return jv_int((int64_t)i);
                    c++;
                }
            if (name[0] == 'i') rt_fail(rt, "list.index(x): x not in list");
            return jv_int(c);
        }
        if (!strcmp(name, "copy")) return binop(rt, OP_ADD, self, jv_list_new(rt, 0, self.u.l->tuple));
    }
    rt_fail(rt, "access to attribute '%s' of '%s' object is unsafe (the sandbox forbids modifying values)", name,
            jv_type_name(self));
}

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
    if (!strcmp(name, "lower") || !strcmp(name, "upper")) {
        jv s = jv_to_str(rt, x);
        jv c = str_case(rt, s.u.s, name[0] == 'l' ? 1 : 0);
        return jv_equal(s, c);
    }
    if (n_args == (name[0] == 'd') && (!strcmp(name, "odd") || !strcmp(name, "even") || !strcmp(name, "divisibleby"))) {
        jv m = binop(rt, OP_MOD, x, !strcmp(name, "divisibleby") ? y : jv_int(2));
        int zero = m.t == JV_FLOAT ? m.u.f == 0 : m.u.i == 0;
        return name[0] == 'o' ? !zero : zero;
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
        double m = pow(10, (double)prec), r = v * m;
        const char *md = need_str(rt, method, "round")->s;
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
    if (!strcmp(name, "indent")) return filter_indent(rt, s, &a);
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

/* ---------------------------------------------------------------- globals */

static const char *const BUILTINS[] = {"range", "namespace", "dict", "raise_exception", "strftime_now", NULL};

int builtin_exists(const char *name) { return in_list(BUILTINS, name); }

jv call_builtin(chat_rt *rt, const char *name, jv *args, int n_args, const char **kw_names, jv *kw_vals, int n_kw) {
    fargs a = {args, n_args, kw_names, kw_vals, n_kw};
    if (!strcmp(name, "raise_exception")) {
        jv m = jv_to_str(rt, arg(&a, 0, "message", jv_cstr(rt, "")));
        rt_fail(rt, "raise_exception: %s", m.u.s->s);
    }
    if (!strcmp(name, "range")) {
        check_args(rt, name, &a, 3, NULL);
        if (!n_args) rt_fail(rt, "range expected at least 1 argument, got 0");
        int64_t start = 0, stop, step = 1;
        if (n_args == 1) stop = need_int(rt, args[0], "range");
        else {
            start = need_int(rt, args[0], "range");
            stop = need_int(rt, args[1], "range");
            if (n_args == 3) step = need_int(rt, args[2], "range");
        }
        if (step == 0) rt_fail(rt, "range() arg 3 must not be zero");
        jv out = jv_list_new(rt, 0, 0);
        for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
            if (out.u.l->n >= 100000) rt_fail(rt, "Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
            jv_list_push(rt, out, jv_int(i));
        }
        out.u.l->view = JL_RANGE;
        out.u.l->range[0] = start;
        out.u.l->range[1] = stop;
        out.u.l->range[2] = step;
        return out;
    }
    if (!strcmp(name, "namespace") || !strcmp(name, "dict")) {
        int ns = name[0] == 'n';
        jv d = jv_dict_new(rt, ns);
        if (n_args > 1) rt_fail(rt, "%s expected at most 1 positional argument", name);
        if (n_args == 1) {
            if (args[0].t != JV_DICT) rt_fail(rt, "unsupported feature: %s() from a %s", name, jv_type_name(args[0]));
            for (size_t i = 0; i < args[0].u.d->n; i++) jv_dict_set(rt, d, args[0].u.d->k[i], args[0].u.d->v[i]);
        }
        for (int i = 0; i < n_kw; i++) jv_dict_set(rt, d, jv_cstr(rt, kw_names[i]), kw_vals[i]);
        if (ns)
            for (size_t i = 0; i < d.u.d->n; i++)
                if (d.u.d->k[i].t == JV_STR && d.u.d->k[i].u.s->s[0] == '_')
                    rt_fail(rt, "Chat templates cannot store underscore-prefixed attributes on a namespace, but got '%s'", d.u.d->k[i].u.s->s);
        return d;
    }
    if (!strcmp(name, "strftime_now")) {
        const char *fmt = need_str(rt, arg(&a, 0, "format", jv_undef()), "strftime_now")->s;
        time_t now = rt->t->fixed_time >= 0 ? (time_t)rt->t->fixed_time : time(NULL);
        struct tm tmv;
        if (rt->t->fixed_time >= 0) gmtime_r(&now, &tmv);
        else localtime_r(&now, &tmv);
        char buf[512];
        size_t n = strftime(buf, sizeof buf, fmt, &tmv);
        if (n == 0 && fmt[0]) rt_fail(rt, "strftime_now: format too long or empty result");
        return jv_str(rt, buf, n);
    }
    rt_fail(rt, "unsupported feature: global '%s'", name);
}
