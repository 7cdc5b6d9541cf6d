/*
 * chat_methods.c - what a sandboxed chat template may call besides filters:
 * the methods of str (startswith, split, strip, replace, format, ...), dict
 * (get, items, keys, values) and list (index, count), and the globals
 * (range, namespace, dict, raise_exception, strftime_now), each as its
 * Python original behaves. The immutable sandbox's refusals (list.append,
 * dict.update, ...) are errors here too. Also the string and argument
 * helpers chat_filters.c shares.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <utf8proc.h>

#include "tokenizer/chat_internal.h"
#include "tokenizer/tok_internal.h"

/* ------------------------------------------------------------ arguments */


jv arg(const fargs *a, int pos, const char *name, jv def) {
    for (int i = 0; i < a->n_kw; i++)
        if (name && !strcmp(a->kw_names[i], name)) return a->kw_vals[i];
    if (pos >= 0 && pos < a->n_args) return a->args[pos];
    return def;
}

void check_args(chat_rt *rt, const char *what, const fargs *a, int max_pos, const char *const *names) {
    if (a->n_args > max_pos) rt_fail(rt, "%s takes at most %d positional argument(s), got %d", what, max_pos, a->n_args);
    for (int i = 0; i < a->n_kw; i++) {
        int ok = 0;
        for (int k = 0; names && names[k]; k++) ok |= !strcmp(names[k], a->kw_names[i]);
        if (!ok) rt_fail(rt, "%s got an unexpected keyword argument '%s'", what, a->kw_names[i]);
    }
}

const jstr *need_str(chat_rt *rt, jv v, const char *what) {
    if (v.t != JV_STR) rt_fail(rt, "%s: expected a string, got %s", what, jv_type_name(v));
    return v.u.s;
}

int64_t need_int(chat_rt *rt, jv v, const char *what) {
    if (v.t == JV_INT) return v.u.i;
    if (v.t == JV_BOOL) return v.u.b;
    rt_fail(rt, "%s: expected an integer, got %s", what, jv_type_name(v));
}

/* ------------------------------------------------------------ string ops */

int32_t cp_at(const char *s, size_t n, size_t i, int *len) {
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
jv str_strip(chat_rt *rt, const jstr *s, const jstr *chars, int which) {
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

void put_cp(sbuf *b, int32_t cp) {
    char u[4];
    sb_put(b, u, (size_t)utf8_encode(cp, u));
}
int32_t cp_upper(int32_t c) { return utf8proc_toupper(c); }
int32_t cp_lower(int32_t c) { return utf8proc_tolower(c); }
static int32_t cp_title(int32_t c) { return utf8proc_totitle(c); }
static int cp_cased(int32_t c) { return utf8proc_tolower(c) != c || utf8proc_toupper(c) != c; }

/* mode 0 upper, 1 lower, 2 capitalize (first title... Python: first upper, rest lower), 3 Python str.title */
jv str_case(chat_rt *rt, const jstr *s, int mode) {
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

jv str_replace(chat_rt *rt, const jstr *s, const jstr *old, const jstr *new_, int64_t count) {
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
            size_t a = st[maxsplit]; /* the rest as it is */
            jv_list_push(rt, out, jv_str(rt, s->s + a, n - a));
        } else {
            size_t keep = cnt - (size_t)maxsplit;
            jv_list_push(rt, out, jv_str(rt, s->s, en[keep - 1]));
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

int in_list(const char *const *l, const char *name) {
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

jv dict_items(chat_rt *rt, jv d, int which) {
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
