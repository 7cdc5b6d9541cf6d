/*
 * gguf_vocab_special.c - the special tokens of a GGUF vocabulary, found
 * as gguf-py's SpecialVocab finds them (vocab.py, _try_load_from_tokenizer_json
 * and _try_load_from_config_json), so the ids and flags are the converter's:
 *
 *  1. tokenizer.json's post_processor: ByteLevel -> add_bos/add_eos false
 *     (unless set later); RobertaProcessing -> add_bos, add_eos, add_sep;
 *     TemplateProcessing -> add_bos when the single template starts with the
 *     BOS (or CLS) token, add_eos when it ends with the EOS token (another
 *     last token becomes the EOS, the old one EOT), add_sep from the pair
 *     template. Processors of a Sequence in order.
 *  2. tokenizer_config.json: add_{type}_token where the post-processor did
 *     not say; {type}_token (a string or {"content": ...}) -> the id of the
 *     first added token of tokenizer.json with that content; the first id
 *     found for a type stays.
 *  3. config.json: {type}_token_id (or text_config's) for types still unset.
 * Types: bos, eos, unk, sep, pad, cls, mask (+ eot, eom from 1). Written:
 * the ids llama.cpp has keys for (cls has none), add_{bos,eos,sep}_token,
 * tokenizer.chat_template (tokenizer_config.json's, else chat_template.jinja
 * or chat_template.json; a list gives tokenizer.chat_template.NAME too), and
 * tokenizer.ggml.normalizer.{lowercase,strip_accents}.
 *
 * Where the converter would write a file moe cannot read back, we do not:
 * an id outside the vocabulary is left out, and so is add_bos/add_eos_token
 * without its id (both with a note).
 */
#include "formats/gguf_vocab_write_impl.h"
#include "base/err.h"
#include "base/mapfile.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define N_TYPES 9
static const char *const TYPES[N_TYPES] = {"bos", "eos", "unk", "sep", "pad", "cls", "mask", "eot", "eom"};
/* llama.cpp's key of each type's id (NULL: gguf-py has no handler) */
static const char *const ID_KEYS[N_TYPES] = {
    "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id",
    "tokenizer.ggml.seperator_token_id", "tokenizer.ggml.padding_token_id", NULL,
    "tokenizer.ggml.mask_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"};
enum { T_BOS, T_EOS, T_UNK, T_SEP, T_PAD, T_CLS, T_MASK, T_EOT, T_EOM };

typedef struct sv {
    tgw *g;
    int types[N_TYPES], n_types;     /* special_token_types, in order */
    int id_type[N_TYPES], n_ids;     /* special_token_ids: types in insertion order */
    int32_t id[N_TYPES];             /* by type */
    int add_type[N_TYPES], n_add;    /* add_special_token: types in insertion order */
    int add[N_TYPES];                /* by type */
    const char *tcv[N_TYPES];        /* tokenizer_config.json's {type}_token as it is changed */
    int has_tc;                      /* tokenizer_config.json is a non-empty object */
    const char *pp_first, *pp_last;  /* the single template's first and last special tokens */
} sv;

static const cJSON *field(const cJSON *o, const char *name) {
    return cJSON_GetObjectItemCaseSensitive(o, name);
}

static int is_type(const cJSON *o, const char *type) {
    const cJSON *t = field(o, "type");
    return cJSON_IsString(t) && strcmp(t->valuestring, type) == 0;
}

/* Python truthiness of a token name. */
static int truthy(const char *s) { return s && *s; }

static int same(const char *a, const char *b) { return a && b && strcmp(a, b) == 0; }

/* A {type}_token value: a string, or an AddedToken object's content. */
static const char *token_name(const cJSON *x) {
    if (cJSON_IsObject(x)) x = field(x, "content");
    return cJSON_IsString(x) ? x->valuestring : NULL;
}

static int has_add(const sv *s, int t) {
    for (int i = 0; i < s->n_add; i++)
        if (s->add_type[i] == t) return 1;
    return 0;
}

static void set_add(sv *s, int t, int val) {
    if (!has_add(s, t)) s->add_type[s->n_add++] = t;
    s->add[t] = val;
}

static void set_default_add(sv *s, int t, int val) {
    if (!has_add(s, t)) set_add(s, t, val);
}

static int has_type(const sv *s, int t) {
    for (int i = 0; i < s->n_types; i++)
        if (s->types[i] == t) return 1;
    return 0;
}

/* _set_special_token: integers only, the first one found stays. */
static void set_special(sv *s, int t, const cJSON *x) {
    if (!cJSON_IsNumber(x) || x->valuedouble != (double)(int64_t)x->valuedouble) return;
    double d = x->valuedouble;
    for (int i = 0; i < s->n_ids; i++)
        if (s->id_type[i] == t) return;
    if (d < 0 || d >= s->g->n) {
        tgw_note(s->g->v, "%s token id %.0f is outside the vocabulary and was left out.", TYPES[t], d);
        return;
    }
    s->id_type[s->n_ids++] = t;
    s->id[t] = (int32_t)d;
}

/* The first added token of tokenizer.json with this content. */
static const cJSON *added_id(const tgw *g, const char *content) {
    const cJSON *a;
    cJSON_ArrayForEach(a, field(g->tj, "added_tokens")) {
        const cJSON *c = field(a, "content");
        if (cJSON_IsString(c) && strcmp(c->valuestring, content) == 0) return field(a, "id");
    }
    return NULL;
}

/* The id of a template item's SpecialToken, or NULL. */
static const char *special_of(const cJSON *item) {
    const cJSON *id = field(field(item, "SpecialToken"), "id");
    return cJSON_IsString(id) && id->valuestring[0] ? id->valuestring : NULL;
}

static const char *sequence_of(const cJSON *item) {
    const cJSON *id = field(field(item, "Sequence"), "id");
    return cJSON_IsString(id) ? id->valuestring : NULL;
}

static void template_processing(sv *s, const cJSON *p) {
    const cJSON *single = field(p, "single"), *pair = field(p, "pair");
    int ns = cJSON_GetArraySize(single), np = cJSON_GetArraySize(pair);
    const char *first = NULL, *last = NULL;
    const char **bos = &s->tcv[T_BOS], **eos = &s->tcv[T_EOS], **cls = &s->tcv[T_CLS];
    if (ns > 1) {
        if ((first = special_of(cJSON_GetArrayItem(single, 0)))) {
            if (!s->has_tc) {
                *bos = first;
            } else if (!same(first, *bos) && !same(first, *cls)) {
                if (!truthy(*bos)) *bos = first;
                if (!truthy(*cls)) *cls = first;
            }
            set_add(s, T_BOS, same(first, *bos) || same(first, *cls));
            s->pp_first = first;
        }
        if ((last = special_of(cJSON_GetArrayItem(single, ns - 1)))) {
            if (!s->has_tc) {
                *eos = last;
            } else if (!same(last, *eos)) {
                if (!has_type(s, T_EOT)) {
                    s->types[s->n_types++] = T_EOT;
                    s->tcv[T_EOT] = *eos;
                } else if (!has_type(s, T_EOM)) {
                    s->types[s->n_types++] = T_EOM;
                    s->tcv[T_EOM] = *eos;
                }
                *eos = last;
            }
            set_add(s, T_EOS, same(last, *eos));
            s->pp_last = last;
        }
    }
    if (np == 0) return;
    int start = first && same(special_of(cJSON_GetArrayItem(pair, 0)), first) ? 1 : 0;
    int stop = last && same(special_of(cJSON_GetArrayItem(pair, np - 1)), last) ? np - 1 : np;
    if (stop - start <= 0) return;
    const char *a = sequence_of(cJSON_GetArrayItem(pair, start));
    const char *b = sequence_of(cJSON_GetArrayItem(pair, stop - 1));
    if (!same(a, "A") || !same(b, "B") || stop - start - 2 <= 0) return;
    /* A [sep] [eos] B */
    int add_sep = 0, mid = start + 1, n_mid = stop - start - 2;
    const char *sep = s->tcv[T_SEP], *e = s->tcv[T_EOS], *x;
    if ((x = special_of(cJSON_GetArrayItem(pair, mid))) && (same(x, sep) || same(x, e)) && !last)
        add_sep = 1;
    if (n_mid == 2 && (x = special_of(cJSON_GetArrayItem(pair, mid + 1))) && (same(x, sep) || same(x, e)))
        add_sep = 1;
    set_add(s, T_SEP, add_sep);
    if (add_sep && !truthy(sep) && s->has_tc) s->tcv[T_SEP] = e;
}

static void post_processor(sv *s) {
    const cJSON *pp = field(s->g->tj, "post_processor");
    if (!cJSON_IsObject(pp)) return;
    const cJSON *list = field(pp, "processors");
    int n = cJSON_IsArray(list) ? cJSON_GetArraySize(list) : 1;
    for (int i = 0; i < n; i++) {
        const cJSON *p = cJSON_IsArray(list) ? cJSON_GetArrayItem(list, i) : pp;
        if (is_type(p, "ByteLevel")) {
            set_default_add(s, T_BOS, 0);
            set_default_add(s, T_EOS, 0);
        } else if (is_type(p, "RobertaProcessing")) {
            set_add(s, T_BOS, 1);
            set_add(s, T_EOS, 1);
            set_add(s, T_SEP, 1);
            if (!truthy(s->tcv[T_CLS]) && s->has_tc) {
                const char *c = token_name(cJSON_GetArrayItem(field(p, "cls"), 0));
                s->tcv[T_CLS] = c ? c : s->tcv[T_BOS];
            }
            if (!truthy(s->tcv[T_SEP]) && s->has_tc) {
                const char *c = token_name(cJSON_GetArrayItem(field(p, "sep"), 0));
                s->tcv[T_SEP] = c ? c : s->tcv[T_EOS];
            }
        } else if (is_type(p, "TemplateProcessing")) {
            template_processing(s, p);
        }
    }
}

/* ------------------------------------------------------- chat template */

/* Name characters other than [A-Za-z0-9] become '_' (GGUFWriter). */
static char *template_key(tok_gguf_vocab *v, const char *name) {
    size_t n = strlen(name);
    char *k = tgw_keep(v, malloc(n + 32));
    if (!k) return NULL;
    int o = snprintf(k, n + 32, "tokenizer.chat_template.");
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        k[o++] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ? c : '_';
    }
    k[o] = 0;
    return k;
}

static int chat_template(sv *s, moe_err *err) {
    tgw *g = s->g;
    tok_gguf_vocab *v = g->v;
    const cJSON *ct = field(g->tc, "chat_template");
    const char *text = NULL;
    if (!ct) { /* chat_template.jinja, else chat_template.json's "chat_template" */
        char path[4096];
        struct stat sb;
        snprintf(path, sizeof path, "%s/chat_template.jinja", g->dir);
        if (stat(path, &sb) == 0) {
            char *buf = NULL;
            size_t len = 0;
            moe_err e = {{0}};
            if (read_file(path, (size_t)64 << 20, &buf, &len, &e) == 0) text = tgw_keep(v, buf);
        } else {
            snprintf(path, sizeof path, "%s/chat_template.json", g->dir);
            char *buf = NULL;
            size_t len = 0;
            moe_err e = {{0}};
            /* a JSON tree costs up to ~45 bytes per byte: templates are a few kB */
            if (stat(path, &sb) == 0 && read_file(path, (size_t)4 << 20, &buf, &len, &e) == 0) {
                cJSON *j = cJSON_ParseWithLength(buf, len);
                const cJSON *c = field(j, "chat_template");
                free(buf);
                if (cJSON_IsString(c)) text = tgw_strndup(v, c->valuestring, strlen(c->valuestring));
                cJSON_Delete(j);
            }
        }
        if (text) return tgw_add(v, gguf_wstr("tokenizer.chat_template", text), err);
        return 0;
    }
    if (cJSON_IsString(ct)) return tgw_add(v, gguf_wstr("tokenizer.chat_template", ct->valuestring), err);
    if (!cJSON_IsArray(ct)) {
        if (!cJSON_IsNull(ct)) tgw_note(v, "tokenizer_config.json: chat_template is not a string or list; ignored.");
        return 0;
    }
    /* a list of {"name", "template"}: "default" is the main one */
    int n = cJSON_GetArraySize(ct), k = 0;
    const char **names = tgw_keep(v, calloc((size_t)n + 1, sizeof *names));
    if (!names) return moe_fail(err, "tokenizer metadata: out of memory");
    const cJSON *e;
    cJSON_ArrayForEach(e, ct) {
        const cJSON *nm = field(e, "name"), *tp = field(e, "template");
        if (!cJSON_IsString(nm) || !nm->valuestring[0] || !cJSON_IsString(tp)) continue;
        char *key = template_key(v, nm->valuestring);
        if (!key) return moe_fail(err, "tokenizer metadata: out of memory");
        const char *clean = key + strlen("tokenizer.chat_template.");
        if (strcmp(clean, "default") == 0) {
            text = tp->valuestring;
            continue;
        }
        int dup = 0;
        for (int i = 0; i < k; i++) dup |= strcmp(names[i], clean) == 0;
        if (dup) continue;
        names[k++] = clean;
        if (tgw_add(v, gguf_wstr(key, tp->valuestring), err)) return -1;
    }
    if (k && tgw_add(v, gguf_wstrs("tokenizer.chat_templates", names, NULL, (uint64_t)k), err)) return -1;
    if (text) return tgw_add(v, gguf_wstr("tokenizer.chat_template", text), err);
    return 0;
}

/* ---------------------------------------------------------- normalizer */

static void normalizer_flags(const cJSON *n, int *lower, int *strip) {
    if (is_type(n, "Lowercase")) {
        *lower = 1;
    } else if (is_type(n, "StripAccents")) {
        *strip = 1;
    } else if (is_type(n, "BertNormalizer")) {
        const cJSON *l = field(n, "lowercase"), *s = field(n, "strip_accents");
        if (cJSON_IsBool(l)) *lower = cJSON_IsTrue(l);
        if (cJSON_IsBool(s)) *strip = cJSON_IsTrue(s);
    } else if (is_type(n, "Sequence")) {
        const cJSON *x;
        cJSON_ArrayForEach(x, field(n, "normalizers")) normalizer_flags(x, lower, strip);
    }
}

/* ---------------------------------------------------------------- all */

int tgw_special(tgw *g, moe_err *err) {
    sv s = {.g = g};
    tok_gguf_vocab *v = g->v;
    for (int t = 0; t < 7; t++) s.types[s.n_types++] = t;
    s.has_tc = cJSON_IsObject(g->tc) && g->tc->child != NULL;
    if (s.has_tc)
        for (int t = 0; t < N_TYPES; t++) {
            char key[32];
            snprintf(key, sizeof key, "%s_token", TYPES[t]);
            s.tcv[t] = token_name(field(g->tc, key));
        }
    const char **bos = &s.tcv[T_BOS], **eos = &s.tcv[T_EOS];
    if (!truthy(*bos) && truthy(s.tcv[T_CLS]) && s.has_tc) *bos = s.tcv[T_CLS];
    if (!truthy(*eos) && truthy(s.tcv[T_SEP]) && s.has_tc) *eos = s.tcv[T_SEP];
    post_processor(&s);
    if (s.has_tc) {
        for (int i = 0; i < s.n_types; i++) {
            int t = s.types[i];
            char key[32];
            snprintf(key, sizeof key, "add_%s_token", TYPES[t]);
            const cJSON *a = field(g->tc, key);
            if (cJSON_IsBool(a) && !has_add(&s, t)) set_add(&s, t, cJSON_IsTrue(a));
            if (s.tcv[t]) set_special(&s, t, added_id(g, s.tcv[t]));
        }
    }
    for (int i = 0; i < s.n_types; i++) {
        int t = s.types[i];
        char key[32];
        snprintf(key, sizeof key, "%s_token_id", TYPES[t]);
        const cJSON *x = field(g->cfg, key);
        if (!x && field(g->cfg, "text_config")) x = field(field(g->cfg, "text_config"), key);
        set_special(&s, t, x);
    }
    /* beyond SpecialVocab: a token the post-processor adds names its id when
     * nothing else did (else the flag would go without an id) */
    const char *pp[2] = {s.pp_first, s.pp_last};
    for (int t = T_BOS; t <= T_EOS; t++) {
        int n = s.n_ids;
        if (has_add(&s, t) && s.add[t] && pp[t]) set_special(&s, t, added_id(g, pp[t]));
        if (s.n_ids > n)
            tgw_note(v, "the %s token id is the one tokenizer.json's post-processor adds (%s); "
                     "no file names it.", TYPES[t], pp[t]);
    }
    /* SpecialVocab.add_to_gguf: ids, flags, chat template, normalizer */
    int has_id[N_TYPES] = {0};
    for (int i = 0; i < s.n_ids; i++) {
        int t = s.id_type[i];
        has_id[t] = 1;
        if (ID_KEYS[t] && tgw_add(v, gguf_wu32(ID_KEYS[t], (uint32_t)s.id[t]), err)) return -1;
    }
    for (int i = 0; i < s.n_add; i++) {
        int t = s.add_type[i];
        static const char *const keys[N_TYPES] = {[T_BOS] = "tokenizer.ggml.add_bos_token",
                                                  [T_EOS] = "tokenizer.ggml.add_eos_token",
                                                  [T_SEP] = "tokenizer.ggml.add_sep_token"};
        if (!keys[t]) continue;
        if (s.add[t] && (t == T_BOS || t == T_EOS) && !has_id[t]) {
            tgw_note(v, "add_%s_token is true but no %s token id was found; left out.", TYPES[t], TYPES[t]);
            continue;
        }
        if (tgw_add(v, gguf_wbool(keys[t], s.add[t] != 0), err)) return -1;
    }
    if (s.has_tc && chat_template(&s, err) != 0) return -1;
    int lower = -1, strip = -1;
    normalizer_flags(field(g->tj, "normalizer"), &lower, &strip);
    if (lower >= 0 && tgw_add(v, gguf_wbool("tokenizer.ggml.normalizer.lowercase", lower != 0), err))
        return -1;
    if (strip >= 0 && tgw_add(v, gguf_wbool("tokenizer.ggml.normalizer.strip_accents", strip != 0), err))
        return -1;
    return 0;
}
