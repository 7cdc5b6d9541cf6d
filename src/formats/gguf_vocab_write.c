/*
 * gguf_vocab_write.c - a Hugging Face tokenizer directory as GGUF
 * tokenizer metadata, written the way llama.cpp's convert_hf_to_gguf.py
 * writes it (llama.cpp's conversion/base.py and gguf-py's vocab.py, the
 * versions vendored in llama-cpp-python 0.3.36), so a file from `moe
 * convert` / `moe quantize` is what the converter would have made:
 *
 * Byte-level BPE (TextModel._set_vocab_gpt2 + get_vocab_base): one token per
 * id up to the model's vocabulary; ids tokenizer.json does not name are
 * "[PADn]" (UNUSED); added tokens are CONTROL when special (or when they
 * look special: "<|...|>" etc.), else USER_DEFINED with "▁" written as a
 * space; the rest NORMAL. Merges as tokenizer.json lists them ([a, b] pairs
 * joined by a space, a space inside a part written U+0120).
 * tokenizer.ggml.pre: the converter hashes the ids of a probe text (chkhsh)
 * and looks the hash up in its table; we do the same with moe's tokenizer
 * (which gives HF's ids), for the names moe reads. A vocabulary no table
 * knows (a model trained here, a test fixture) is named by its layout: the
 * normalizer, the Split regexes and ignore_merges of tokenizer.json equal to
 * those of a family (tokenizer_gguf.c's table). Else "default", with a note.
 *
 * SentencePiece BPE (byte fallback; LlamaModel.set_vocab ->
 * _set_vocab_sentencepiece, which reads tokenizer.model): tokens and types
 * as that path makes them (the unknown token UNKNOWN, <0xNN> BYTE, added
 * special tokens CONTROL; tokenizer_config.json's added_tokens_decoder
 * makes its tokens CONTROL or USER_DEFINED with score -1000), and scores.
 * tokenizer.json has none, and the converter's path for a tokenizer.json
 * alone (_set_vocab_llama_hf) writes -1000 for every token, which loses the
 * merge order (moe refuses such files). So scores are rebuilt:
 * SentencePiece's BPE trainer numbers its pieces best first, score = -i,
 * and transformers lists a piece's merges by that score; so where the
 * merges' order agrees with the ids, score = -(id - first normal id), which
 * is tokenizer.model's own value. A token whose merges come out of id order
 * (Llama's whitespace pieces, scored -1e9 in tokenizer.model) is placed
 * just below the token merged before it. Tokens whose merges interleave in
 * the list (equal scores in tokenizer.model) share one score. So the rule
 * "the adjacent pair whose joined token scores best, leftmost first" that
 * moe and llama.cpp apply gives tokenizer.json's merge order.
 */
#include "formats/gguf_vocab_write_impl.h"
#include "base/err.h"
#include "base/mapfile.h"
#include "base/sha256.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define SPACE_MARK "\xE2\x96\x81" /* ▁ */

/* ------------------------------------------------------------- storage */

void *tgw_keep(tok_gguf_vocab *v, void *p) {
    if (!p) return NULL;
    if (v->n_owned == v->cap_owned) {
        int cap = v->cap_owned ? 2 * v->cap_owned : 32;
        void **o = realloc(v->owned, (size_t)cap * sizeof *o);
        if (!o) {
            free(p);
            return NULL;
        }
        v->owned = o;
        v->cap_owned = cap;
    }
    v->owned[v->n_owned++] = p;
    return p;
}

char *tgw_strndup(tok_gguf_vocab *v, const char *s, size_t n) {
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = 0;
    }
    return tgw_keep(v, p);
}

int tgw_add(tok_gguf_vocab *v, gguf_wkv kv, moe_err *err) {
    if (v->n_kv == v->cap_kv) {
        int cap = v->cap_kv ? 2 * v->cap_kv : 32;
        gguf_wkv *k = realloc(v->kv, (size_t)cap * sizeof *k);
        if (!k) return moe_fail(err, "tokenizer metadata: out of memory");
        v->kv = k;
        v->cap_kv = cap;
    }
    v->kv[v->n_kv++] = kv;
    return 0;
}

void tgw_note(tok_gguf_vocab *v, const char *fmt, ...) {
    size_t n = strlen(v->note);
    if (n && n + 2 < sizeof v->note) {
        strcat(v->note, " ");
        n++;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->note + n, sizeof v->note - n, fmt, ap);
    va_end(ap);
}

void tok_gguf_vocab_free(tok_gguf_vocab *v) {
    for (int i = 0; i < v->n_owned; i++) free(v->owned[i]);
    for (int i = 0; i < 3; i++) cJSON_Delete(v->json[i]);
    moe_tokenizer_free(v->tok);
    free(v->owned);
    free(v->kv);
    memset(v, 0, sizeof *v);
}

/* ------------------------------------------------------------- helpers */

static const cJSON *field(const cJSON *o, const char *name) {
    return cJSON_GetObjectItemCaseSensitive(o, name);
}

static int is_type(const cJSON *o, const char *type) {
    const cJSON *t = field(o, "type");
    return cJSON_IsString(t) && strcmp(t->valuestring, type) == 0;
}

static int flag(const cJSON *o, const char *name, int dflt) {
    const cJSON *x = field(o, name);
    return cJSON_IsBool(x) ? cJSON_IsTrue(x) : dflt;
}

static int starts(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

static int ends(const char *s, const char *p) {
    size_t n = strlen(s), k = strlen(p);
    return n >= k && memcmp(s + n - k, p, k) == 0;
}

int tgw_looks_special(const char *s) {
    return !strcmp(s, "<pad>") || !strcmp(s, "<mask>") || !strcmp(s, "<2mass>") ||
           !strcmp(s, "[@BOS@]") || (starts(s, "<|") && ends(s, "|>")) ||
           (starts(s, "<\xEF\xBD\x9C") && ends(s, "\xEF\xBD\x9C>")) || /* <｜...｜> */
           (starts(s, "<unused") && ends(s, ">"));
}

/* A JSON file of dir, or NULL (absent, or broken: then a note). */
static cJSON *read_json(tok_gguf_vocab *v, const char *dir, const char *name) {
    char path[4096];
    struct stat sb;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (stat(path, &sb) != 0) return NULL;
    char *buf = NULL;
    size_t len = 0;
    moe_err e = {{0}};
    cJSON *j = NULL;
    if (read_file(path, TOK_MAX_JSON, &buf, &len, &e) == 0) j = cJSON_ParseWithLength(buf, len);
    free(buf);
    if (!j) tgw_note(v, "%s is not readable JSON and was ignored.", name);
    return j;
}

/* The token string of id: an added token's content, else the model's. */
static const char *tok_string(const moe_tokenizer *t, int32_t id, uint32_t *len) {
    if (id >= t->n_ids) return NULL;
    if (t->tok_added[id] >= 0) {
        const tok_added *a = &t->added[t->tok_added[id]];
        *len = a->len;
        return t->pool.p + a->off;
    }
    if (t->tok_off[id] == UINT32_MAX) return NULL;
    *len = t->tok_len[id];
    return t->pool.p + t->tok_off[id];
}

/* s with every "▁" written as a space (user-defined tokens are matched in
 * the raw text); s itself when it has none. */
static const char *unmark(tok_gguf_vocab *v, const char *s) {
    if (!strstr(s, SPACE_MARK)) return s;
    char *o = tgw_strndup(v, s, strlen(s));
    if (!o) return NULL;
    char *w = o;
    for (const char *r = s; *r;) {
        if (starts(r, SPACE_MARK)) {
            *w++ = ' ';
            r += 3;
        } else {
            *w++ = *r++;
        }
    }
    *w = 0;
    return o;
}

/* ------------------------------------------------------ tokens and types */

/* tokens[n], types[n] for either kind; "[PADn]" where tokenizer.json names
 * no token. */
static int fill_tokens(tgw *g, const char **tokens, int32_t *types, int spm, moe_err *err) {
    const moe_tokenizer *t = g->tok;
    tok_gguf_vocab *v = g->v;
    int32_t unk = spm && t->unk_id >= 0 ? t->unk_id : -1;
    for (int32_t id = 0; id < g->n; id++) {
        uint32_t len = 0;
        const char *s = tok_string(t, id, &len);
        if (!s || len == 0) {
            char pad[32];
            int k = snprintf(pad, sizeof pad, "[PAD%d]", id);
            if (!(tokens[id] = tgw_strndup(v, pad, (size_t)k)))
                return moe_fail(err, "tokenizer metadata: out of memory");
            types[id] = TGW_UNUSED;
            v->n_padded++;
            continue;
        }
        tokens[id] = s;
        types[id] = TGW_NORMAL;
        int added = t->tok_added[id] >= 0;
        int special = added && t->added[t->tok_added[id]].special;
        if (id == unk) {
            types[id] = TGW_UNKNOWN;
        } else if (spm && len == 6 && starts(s, "<0x") && s[5] == '>' &&
                   strspn(s + 3, "0123456789abcdefABCDEF") >= 2) {
            types[id] = TGW_BYTE;
        } else if (added && (special || tgw_looks_special(s))) {
            types[id] = TGW_CONTROL;
        } else if (added) {
            types[id] = TGW_USER_DEFINED;
            if (!(tokens[id] = unmark(v, s))) return moe_fail(err, "tokenizer metadata: out of memory");
        }
    }
    return 0;
}

/* The SentencePiece path's overrides: added_tokens.json (USER_DEFINED) and
 * tokenizer_config.json's added_tokens_decoder, both scored -1000. */
static int spm_overrides(tgw *g, const char **tokens, int32_t *types, float *scores, moe_err *err) {
    cJSON *at = read_json(g->v, g->dir, "added_tokens.json");
    const cJSON *e;
    cJSON_ArrayForEach(e, at) {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble >= g->n) continue;
        int32_t id = (int32_t)e->valuedouble;
        if (!(tokens[id] = tgw_strndup(g->v, e->string, strlen(e->string)))) {
            cJSON_Delete(at);
            return moe_fail(err, "tokenizer metadata: out of memory");
        }
        types[id] = TGW_USER_DEFINED;
        scores[id] = -1000.0f;
    }
    cJSON_Delete(at);
    cJSON_ArrayForEach(e, field(g->tc, "added_tokens_decoder")) {
        char *end;
        long id = strtol(e->string, &end, 10);
        const cJSON *c = field(e, "content");
        if (*end || id < 0 || id >= g->n || !cJSON_IsString(c)) continue;
        const char *s = c->valuestring;
        if (flag(e, "special", 0) || tgw_looks_special(s)) {
            types[id] = TGW_CONTROL;
        } else {
            types[id] = TGW_USER_DEFINED;
            if (!(s = unmark(g->v, s))) return moe_fail(err, "tokenizer metadata: out of memory");
        }
        tokens[id] = s;
        scores[id] = -1000.0f;
    }
    return 0;
}

/* ------------------------------------------------------------- merges */

/* The parts of merge m ("a b" or [a, b]); 1 for a "#version" line, -1 if
 * malformed (moe's loader has refused those already). */
static int merge_parts(const cJSON *m, const char **a, size_t *na, const char **b, size_t *nb) {
    if (cJSON_IsString(m)) {
        const char *s = m->valuestring, *sp = strchr(s, ' ');
        if (starts(s, "#version")) return 1;
        if (!sp) return -1;
        *a = s, *na = (size_t)(sp - s), *b = sp + 1, *nb = strlen(sp + 1);
        return 0;
    }
    const cJSON *x = cJSON_GetArrayItem(m, 0), *y = cJSON_GetArrayItem(m, 1);
    if (!cJSON_IsString(x) || !cJSON_IsString(y)) return -1;
    *a = x->valuestring, *na = strlen(*a), *b = y->valuestring, *nb = strlen(*b);
    return 0;
}

/* tokenizer.ggml.merges: as listed; pairs joined by a space, a space in a
 * part written as U+0120 (gguf-py's SpecialVocab). */
static int gpt2_merges(tgw *g, moe_err *err) {
    const cJSON *ms = field(field(g->tj, "model"), "merges");
    int n = cJSON_GetArraySize(ms), k = 0;
    const char **out = tgw_keep(g->v, malloc(((size_t)n + 1) * sizeof *out));
    if (!out) return moe_fail(err, "tokenizer metadata: out of memory");
    const cJSON *m;
    cJSON_ArrayForEach(m, ms) {
        const char *a, *b;
        size_t na, nb;
        if (merge_parts(m, &a, &na, &b, &nb) != 0) continue;
        if (cJSON_IsString(m)) {
            out[k++] = m->valuestring;
            continue;
        }
        char *s = tgw_keep(g->v, malloc(2 * (na + nb) + 2)), *w = s;
        if (!s) return moe_fail(err, "tokenizer metadata: out of memory");
        for (int part = 0; part < 2; part++) {
            const char *p = part ? b : a;
            size_t np = part ? nb : na;
            for (size_t i = 0; i < np; i++) {
                if (p[i] == ' ') {
                    *w++ = (char)0xC4; /* U+0120 */
                    *w++ = (char)0xA0;
                } else {
                    *w++ = p[i];
                }
            }
            if (!part) *w++ = ' ';
        }
        *w = 0;
        out[k++] = s;
    }
    return tgw_add(g->v, gguf_wstrs("tokenizer.ggml.merges", out, NULL, (uint64_t)k), err);
}

/* ------------------------------------------------ SentencePiece scores */

typedef struct merge_span {
    int32_t id;           /* merged token */
    uint32_t first, last; /* ranks of its first and last merge */
} merge_span;

static int span_first(const void *a, const void *b) {
    const merge_span *x = a, *y = b;
    return x->first < y->first ? -1 : x->first > y->first;
}

/* Scores as the top of the file says. types decide which tokens are
 * scored by merges (NORMAL ones); the others keep the converter's values. */
static int spm_scores(tgw *g, const int32_t *types, float *scores, moe_err *err) {
    const moe_tokenizer *t = g->tok;
    int32_t n = g->n, base = 0;
    while (base < n && types[base] != TGW_NORMAL) base++;
    for (int32_t id = 0; id < n; id++)
        scores[id] = types[id] == TGW_NORMAL ? -(float)(id - base) : types[id] == TGW_UNUSED ? -10000.0f : 0.0f;
    merge_span *sp = calloc((size_t)n + 1, sizeof *sp);
    int32_t *at = malloc(((size_t)n + 1) * sizeof *at);
    tok_buf ab = {0};
    int rc = 0;
    if (!sp || !at) {
        rc = moe_fail(err, "tokenizer metadata: out of memory");
        goto done;
    }
    for (int32_t id = 0; id < n; id++) at[id] = -1;
    int32_t n_sp = 0;
    uint32_t rank = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, field(field(g->tj, "model"), "merges")) {
        const char *a, *b;
        size_t na, nb;
        if (merge_parts(m, &a, &na, &b, &nb) != 0) continue;
        ab.n = 0;
        if (buf_put(&ab, a, na) != 0 || buf_put(&ab, b, nb) != 0) {
            rc = moe_fail(err, "tokenizer metadata: out of memory");
            goto done;
        }
        int32_t r = strmap_get(&t->vocab, ab.p, ab.n);
        if (r >= 0 && r < n && types[r] == TGW_NORMAL) {
            if (at[r] < 0) {
                at[r] = n_sp;
                sp[n_sp++] = (merge_span){r, rank, rank};
            }
            sp[at[r]].last = rank;
        }
        rank++;
    }
    /* tokens in the order of their first merge; overlapping spans tie */
    qsort(sp, (size_t)n_sp, sizeof *sp, span_first);
    double prev = INFINITY;
    for (int32_t i = 0; i < n_sp;) {
        int32_t j = i + 1;
        uint32_t end = sp[i].last;
        while (j < n_sp && sp[j].first <= end) {
            if (sp[j].last > end) end = sp[j].last;
            j++;
        }
        double s = -(double)(sp[i].id - base);
        if (!(s < prev)) s = prev - 1;
        for (int32_t k = i; k < j; k++) scores[sp[k].id] = (float)s;
        prev = s;
        i = j;
    }
    /* pairs that join into a token without a merge: SentencePiece merges
     * every such pair, tokenizer.json only the listed ones */
    int64_t extra = 0;
    for (int32_t id = 0; id < n && id < t->n_ids; id++) {
        if (types[id] != TGW_NORMAL || t->tok_off[id] == UINT32_MAX) continue;
        const char *s = t->pool.p + t->tok_off[id];
        uint32_t len = t->tok_len[id], r;
        for (uint32_t k = (uint32_t)utf8_len((unsigned char)s[0]); k < len;
             k += (uint32_t)utf8_len((unsigned char)s[k])) {
            int32_t a = strmap_get(&t->vocab, s, k), b = strmap_get(&t->vocab, s + k, len - k), x;
            extra += a >= 0 && b >= 0 && !pairmap_get(&t->merges, a, b, &r, &x);
        }
    }
    if (extra)
        tgw_note(g->v, "%lld token pairs join into a token without a merge in tokenizer.json; "
                 "a SentencePiece vocabulary merges them too, so some ids may differ.",
                 (long long)extra);
done:
    free(sp);
    free(at);
    buf_free(&ab);
    return rc;
}

/* Does tokenizer.json put "▁" before the text (normalizer Prepend, or a
 * Metaspace pre-tokenizer that prepends)? Notes what a GGUF cannot say. */
static int spm_prepends(tgw *g) {
    const cJSON *norm = field(g->tj, "normalizer"), *pre = field(g->tj, "pre_tokenizer");
    int prepend = 0;
    const cJSON *list = is_type(norm, "Sequence") ? field(norm, "normalizers") : NULL, *x;
    int other = 0;
    if (is_type(norm, "Prepend")) prepend = 1;
    else if (!list && norm && !cJSON_IsNull(norm) && !is_type(norm, "Replace")) other = 1;
    cJSON_ArrayForEach(x, list) {
        prepend |= is_type(x, "Prepend");
        other |= !is_type(x, "Prepend") && !is_type(x, "Replace");
    }
    if (other)
        tgw_note(g->v, "tokenizer.json's normalizer does more than put \"\xE2\x96\x81\" for spaces, "
                 "which a SentencePiece GGUF cannot say; ids may differ.");
    list = is_type(pre, "Sequence") ? field(pre, "pretokenizers") : NULL;
    const cJSON *ms = is_type(pre, "Metaspace") ? pre : NULL;
    cJSON_ArrayForEach(x, list) if (is_type(x, "Metaspace")) ms = x;
    if (ms) {
        const cJSON *scheme = field(ms, "prepend_scheme");
        const char *s = cJSON_IsString(scheme) ? scheme->valuestring
                                               : flag(ms, "add_prefix_space", 1) ? "always" : "never";
        if (strcmp(s, "never") != 0) prepend = 1;
        /* HF's Metaspace prepends only to text not starting with "▁" (a space),
         * the first word only for "first", and may split at every space; a
         * SentencePiece GGUF always prepends, after each special token too */
        int split = flag(ms, "split", 1), first = strcmp(s, "first") == 0;
        if (prepend || split)
            tgw_note(g->v, "tokenizer.json's Metaspace pre-tokenizer (prepend_scheme \"%s\"%s) is not "
                     "the fixed layout of a SentencePiece GGUF; text starting with a space%s%s may "
                     "tokenize differently.", s, split ? ", split" : "", split ? ", runs of spaces" : "",
                     first ? ", text after a special token" : "");
    }
    return prepend;
}

/* ------------------------------------------------------ the pre-tokenizer */

/* llama.cpp's probe text (get_vocab_base_pre's chktxt), byte for byte. */
static const char CHKTXT[] =
    "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n\360\237\232\200 (normal) "
    "\360\237\230\266\342\200\215\360\237\214\253\357\270\217 (multiple emojis "
    "concatenated) \342\234\205 \360\237\246\231\360\237\246\231 3 33 333 3333 "
    "33333 333333 3333333 33333333 3.3 3..3 3...3 \341\236\200\341\236\266\341\236\223\341\237\213"
    "\341\236\217\341\237\202\341\236\226\341\236\267\341\236\237\341\237\201\341\236\237\341\236\242"
    "\341\236\266\341\236\205\360\237\230\201 "
    "?\346\210\221\346\203\263\345\234\250apple\345\267\245\344\275\2341314151\345\244\251\357\275\236 "
    "------======= \320\275\320\265\321\211\320\276 \320\275\320\260 \320\221\321\212\320\273\320\263"
    "\320\260\321\200\321\201\320\272\320\270 "
    "''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, 'RE "
    "you sure? 'M not sure I'll make it, 'D you like some tea? We'Ve a'lL";

/* The converter's hashes whose names moe reads (a later entry of the same
 * hash wins there, as here: mpt-7b and OLMo-1.7 share one, named "olmo"). */
static const struct {
    const char *hash, *name;
} PRE_HASHES[] = {
    {"d4540891389ea895b53b399da6ac824becc30f2fba0e9ddbb98f92e55ca0e97c", "qwen2"},     /* Qwen3-Embedding */
    {"0fe1cf6eda062318a1af7270f3331a85c539a01778ff948e24388e949c5282f4", "gpt-2"},     /* ruGPT3XL */
    {"0ef9807a4087ebef797fc749390439009c3b9eda9ad1a097abbe738f486c01e5", "llama-bpe"}, /* Llama 3 */
    {"049ecf7629871e3041641907f3de7c733e4dbfdc736f57d882ba0b0845599754", "deepseek-llm"},
    {"b6dc8df998e1cfbdc4eac8243701a65afe638679230920b50d6f17d81c098166", "olmo"},      /* OLMo, MPT */
    {"3ce83efda5659b07b1ad37ca97ca5797ea4285d9b9ab0dc679e4a720c9da7454", "gpt-2"},     /* GPT-2 */
    {"e636dc30a262dcc0d8c323492e32ae2b70728f4df7dfe9737d9f920a282b8aea", "qwen2"},     /* Qwen1.5 */
    {"877081d19cf6996e2c4ff0e1236341e9b7bde288f5311a56a937f0afbbb3aeb5", "deepseek-v3"},
    {"b3f499bb4255f8ca19fccd664443283318f2fd2414d5e0b040fbdd0cc195d6c5", "deepseek-r1-qwen"},
};

/* chkhsh: sha256 of Python's str() of the ids (with special tokens). */
static int pre_by_hash(tgw *g, char hex[65], moe_err *err) {
    int32_t *ids = NULL;
    int n = 0;
    if (moe_tokenize(g->tok, CHKTXT, sizeof CHKTXT - 1, 1, &ids, &n, err) != 0) return -1;
    tok_buf s = {0};
    int ok = buf_put(&s, "[", 1) == 0;
    for (int i = 0; i < n && ok; i++) {
        char num[24];
        int k = snprintf(num, sizeof num, i ? ", %d" : "%d", ids[i]);
        ok = buf_put(&s, num, (size_t)k) == 0;
    }
    ok = ok && buf_put(&s, "]", 1) == 0;
    if (ok) sha256_hex(s.p, s.n, hex);
    free(ids);
    buf_free(&s);
    if (!ok) return moe_fail(err, "tokenizer metadata: out of memory");
    for (size_t i = 0; i < sizeof PRE_HASHES / sizeof PRE_HASHES[0]; i++)
        if (strcmp(PRE_HASHES[i].hash, hex) == 0) {
            snprintf(g->v->pre, sizeof g->v->pre, "%s", PRE_HASHES[i].name);
            return 1;
        }
    return 0;
}

/* The layout of tokenizer.json: NFC or no normalizer, Split regexes
 * (Isolated, not inverted) then ByteLevel without a regex, or ByteLevel with
 * its regex alone. 0 and the parts, or -1 when it is none of these. */
static int layout(const cJSON *tj, int *nfc, const char **splits, int max, int *n_splits) {
    const cJSON *norm = field(tj, "normalizer"), *pre = field(tj, "pre_tokenizer");
    *nfc = 0;
    *n_splits = 0;
    if (is_type(norm, "Sequence") && cJSON_GetArraySize(field(norm, "normalizers")) == 1)
        norm = cJSON_GetArrayItem(field(norm, "normalizers"), 0);
    if (norm && !cJSON_IsNull(norm)) {
        if (!is_type(norm, "NFC")) return -1;
        *nfc = 1;
    }
    const cJSON *items = is_type(pre, "Sequence") ? field(pre, "pretokenizers") : NULL;
    int n = items ? cJSON_GetArraySize(items) : 1;
    for (int i = 0; i < n; i++) {
        const cJSON *x = items ? cJSON_GetArrayItem(items, i) : pre;
        if (i == n - 1) { /* ByteLevel, with its regex exactly when nothing split before */
            return is_type(x, "ByteLevel") && !flag(x, "add_prefix_space", 1) &&
                           flag(x, "use_regex", 1) == (*n_splits == 0)
                       ? 0 : -1;
        }
        const cJSON *pat = field(field(x, "pattern"), "Regex"), *beh = field(x, "behavior");
        if (!is_type(x, "Split") || !cJSON_IsString(pat) || !cJSON_IsString(beh) ||
            strcmp(beh->valuestring, "Isolated") != 0 || flag(x, "invert", 0) || *n_splits == max)
            return -1;
        splits[(*n_splits)++] = pat->valuestring;
    }
    return -1;
}

static int pre_by_layout(tgw *g) {
    static const char *const names[] = {"gpt-2", "olmo", "llama-bpe", "qwen2", "deepseek-llm",
                                        "deepseek-v3"};
    const char *splits[8];
    int nfc, n_splits;
    if (layout(g->tj, &nfc, splits, 8, &n_splits) != 0) return 0;
    int ignore = flag(field(g->tj, "model"), "ignore_merges", 0);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        int fnfc, fignore, k = 0;
        const char *const *fs;
        if (tok_gguf_pre_layout(names[i], &fnfc, &fs, &fignore) != 0) continue;
        if (fnfc != nfc || fignore != ignore) continue;
        while (fs[k] && k < n_splits && strcmp(fs[k], splits[k]) == 0) k++;
        if (k == n_splits && !fs[k]) {
            snprintf(g->v->pre, sizeof g->v->pre, "%s", names[i]);
            return 1;
        }
    }
    return 0;
}

/* --------------------------------------------------------------- build */

static int is_bytelevel(const cJSON *tj) {
    const cJSON *pre = field(tj, "pre_tokenizer"), *x;
    const cJSON *list = is_type(pre, "Sequence") ? field(pre, "pretokenizers") : NULL;
    if (is_type(pre, "ByteLevel")) return 1;
    cJSON_ArrayForEach(x, list) if (is_type(x, "ByteLevel")) return 1;
    return 0;
}

/* Added tokens that strip spaces around them: GGUF has no field for it. */
static void note_added_flags(tgw *g) {
    const moe_tokenizer *t = g->tok;
    int k = 0;
    for (int i = 0; i < t->n_added; i++)
        k += t->added[i].lstrip || t->added[i].rstrip || t->added[i].single_word;
    if (k)
        tgw_note(g->v, "%d added tokens have lstrip/rstrip/single_word, which GGUF cannot say "
                 "(spaces next to them may tokenize differently).", k);
}

static int build(tgw *g, const char *arch, moe_err *err) {
    tok_gguf_vocab *v = g->v;
    const moe_tokenizer *t = g->tok;
    int spm = t->byte_fallback;
    if (!spm && !is_bytelevel(g->tj)) {
        tgw_note(v, "tokenizer.json is a BPE with neither byte fallback nor ByteLevel, which no "
                 "GGUF tokenizer model describes; the file carries no vocabulary.");
        return 1;
    }
    if (t->n_ids > g->n) {
        tgw_note(v, "tokenizer.json has %d ids, more than the model's %d embedding rows; the file "
                 "carries no vocabulary.", t->n_ids, g->n);
        return 1;
    }
    v->model = spm ? "llama" : "gpt2";
    const char **tokens = tgw_keep(v, malloc((size_t)g->n * sizeof *tokens));
    int32_t *types = tgw_keep(v, malloc((size_t)g->n * sizeof *types));
    float *scores = spm ? tgw_keep(v, malloc((size_t)g->n * sizeof *scores)) : NULL;
    if (!tokens || !types || (spm && !scores)) return moe_fail(err, "tokenizer metadata: out of memory");
    if (fill_tokens(g, tokens, types, spm, err) != 0) return -1;
    /* add_space_prefix: tokenizer_config.json's add_prefix_space (LlamaModel), or
     * false when tokenizer.json puts no "▁" before the text (the GGUF default is true) */
    const cJSON *aps = field(g->tc, "add_prefix_space");
    int prepends = spm ? spm_prepends(g) : 1;
    if (cJSON_IsBool(aps) && (!strcmp(arch, "llama") || spm)) {
        if (tgw_add(v, gguf_wbool("tokenizer.ggml.add_space_prefix", cJSON_IsTrue(aps)), err)) return -1;
    } else if (!prepends) {
        if (tgw_add(v, gguf_wbool("tokenizer.ggml.add_space_prefix", false), err)) return -1;
    }
    if (spm) {
        if (spm_scores(g, types, scores, err) != 0 || spm_overrides(g, tokens, types, scores, err) != 0)
            return -1;
        snprintf(v->pre, sizeof v->pre, "default");
        v->pre_how = "layout";
    } else {
        char hex[65];
        int r = pre_by_hash(g, hex, err);
        if (r < 0) return -1;
        if (r) v->pre_how = "hash";
        else if (pre_by_layout(g)) v->pre_how = "layout";
        else {
            snprintf(v->pre, sizeof v->pre, "default");
            tgw_note(v, "the pre-tokenizer of tokenizer.json (hash %.12s...) is not one llama.cpp "
                     "names that moe reads; wrote tokenizer.ggml.pre = \"default\", so ids may differ.",
                     hex);
        }
    }
    note_added_flags(g);
    if (tgw_add(v, gguf_wstr("tokenizer.ggml.model", v->model), err) ||
        tgw_add(v, gguf_wstr("tokenizer.ggml.pre", v->pre), err) ||
        tgw_add(v, gguf_wstrs("tokenizer.ggml.tokens", tokens, NULL, (uint64_t)g->n), err) ||
        (spm && tgw_add(v, gguf_warr("tokenizer.ggml.scores", GGUF_VT_F32, scores, (uint64_t)g->n), err)) ||
        tgw_add(v, gguf_warr("tokenizer.ggml.token_type", GGUF_VT_I32, types, (uint64_t)g->n), err))
        return -1;
    if (!spm && gpt2_merges(g, err) != 0) return -1;
    return tgw_special(g, err);
}

int tok_gguf_vocab_build(tok_gguf_vocab *v, const char *dir, const char *arch, int32_t n_vocab,
                         moe_err *err) {
    memset(v, 0, sizeof *v);
    v->pre_how = "none";
    char path[4096];
    struct stat sb;
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    if (stat(path, &sb) != 0) return 1;
    tgw g = {.v = v, .dir = dir, .n = n_vocab};
    moe_err e = {{0}};
    if (n_vocab <= 0) {
        tgw_note(v, "the model has no vocabulary size; the file carries no vocabulary.");
        return 1;
    }
    if (moe_tokenizer_load(&g.tok, dir, &e) != 0) {
        tgw_note(v, "%s; the file carries no vocabulary.", e.msg);
        return 1;
    }
    /* the pairs point into these: kept until tok_gguf_vocab_free */
    v->tok = g.tok;
    v->json[0] = g.tj = read_json(v, dir, "tokenizer.json");
    v->json[1] = g.tc = read_json(v, dir, "tokenizer_config.json");
    v->json[2] = g.cfg = read_json(v, dir, "config.json");
    int rc = g.tj ? build(&g, arch ? arch : "", err) : 1;
    if (rc == 0) v->n_tokens = n_vocab;
    return rc;
}

/* --------------------------------------------------------------- check */

static const char *const PROBES[] = {
    CHKTXT,
    "Hello world! \xC3\x87" "a va? \xC3\x9C" "ber na\xC3\xAFve caf\xC3\xA9 \xE2\x80\x94 se\xC3\xB1or.",
    "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E\xE3\x81\xAE\xE3\x83\x86\xE3\x82\xAD\xE3\x82\xB9\xE3\x83\x88"
    "\xE4\xB8\xAD\xE6\x96\x87 \xED\x95\x9C\xEA\xB5\xAD\xEC\x96\xB4 \xCE\x95\xCE\xBB\xCE\xBB\xCE\xB7\xCE\xBD\xCE\xB9\xCE\xBA\xCE\xAC",
    "Emoji: \xF0\x9F\x91\x8B\xF0\x9F\x8F\xBD \xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7 \xE2\x9D\xA4\xEF\xB8\x8F",
    "def foo(x):\n\tif x > 0:\n\t\treturn x * 3.14\n    else:\n        return -12345  # neg\n",
    "int main(void) { for (int i = 0; i < 10; i++) { printf(\"%d\\n\", i); } }",
    "1234567 89 3.14159 2024-01-01 x1000000y 12,345,678 0x1F 1e-9",
    "DON'T I'M HE'LL WE'VE they'RE it'S can't O'Neil 's",
    "a  b   c    d\n\n\n  \t\t end   \n     leading and trailing     ",
    "cafe\xCC\x81 e\xCC\x81le\xCC\x80ve \xE2\x84\xAB \xC3\x85 \xEF\xBC\xA1\xEF\xBC\xA2 \xEF\xAC\x81",
    "line one\r\nline two\r\n\r\n  indented\n",
    ".Hello,World!(foo)[bar]{baz} --flag=1 a.b.c x+y=z \xE2\x82\xAC" "uro",
    " ",
    "",
};

/* Does the tokenizer of a give b's ids for text, with and without specials? */
static int probe(const moe_tokenizer *a, const moe_tokenizer *b, const char *text, size_t len, int *same,
                 int *total) {
    for (int sp = 0; sp < 2; sp++) {
        int32_t *x = NULL, *y = NULL;
        int nx = 0, ny = 0;
        moe_err e;
        int rx = moe_tokenize(a, text, len, sp, &x, &nx, &e), ry = moe_tokenize(b, text, len, sp, &y, &ny, &e);
        *same += rx == 0 && ry == 0 && nx == ny && memcmp(x, y, (size_t)nx * sizeof *x) == 0;
        (*total)++;
        free(x);
        free(y);
    }
    return 0;
}

int tok_gguf_vocab_check(const char *gguf_path, const char *dir, int *same, int *total, moe_err *err) {
    moe_tokenizer *a = NULL, *b = NULL;
    *same = *total = 0;
    if (moe_tokenizer_load(&a, dir, err) != 0) return -1;
    if (moe_tokenizer_load(&b, gguf_path, err) != 0) {
        moe_tokenizer_free(a);
        return -1;
    }
    for (size_t i = 0; i < sizeof PROBES / sizeof PROBES[0]; i++)
        probe(a, b, PROBES[i], strlen(PROBES[i]), same, total);
    /* each added token (the first 256) inside text, at the start and the end */
    tok_buf s = {0};
    int rc = 0;
    for (int i = 0; i < a->n_added && i < 256 && rc == 0; i++) {
        const tok_added *t = &a->added[i];
        const char *c = a->pool.p + t->off;
        s.n = 0;
        if (buf_put(&s, c, t->len) || buf_put(&s, "Hello ", 6) || buf_put(&s, c, t->len) ||
            buf_put(&s, "world\n", 6) || buf_put(&s, c, t->len) || buf_put(&s, " x", 2) ||
            buf_put(&s, c, t->len))
            rc = moe_fail(err, "%s: out of memory", gguf_path);
        else
            probe(a, b, s.p, s.n, same, total);
    }
    buf_free(&s);
    moe_tokenizer_free(a);
    moe_tokenizer_free(b);
    return rc;
}
