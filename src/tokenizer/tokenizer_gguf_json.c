/*
 * tokenizer_gguf_json.c - a Hugging Face tokenizer.json and
 * tokenizer_config.json rebuilt from a GGUF file's tokenizer metadata, so
 * `moe convert model.gguf DIR` gives a directory transformers and HF
 * `tokenizers` load with the ids the GGUF tokenizer gives (moe's reader,
 * tokenizer_gguf.c, and llama.cpp).
 *
 * The file is loaded with tokenizer_gguf.c first (which checks it), and the
 * JSON says what that reader builds:
 *   gpt2   BPE over the tokens with the file's merges ("a b" -> ["a", "b"]);
 *          the normalizer (NFC or none), Split regexes + ByteLevel (or
 *          ByteLevel with its regex) and ignore_merges of the family
 *          tokenizer.ggml.pre names; ByteLevel decoder.
 *   llama  BPE with byte fallback and fused unknowns; the merges the scores
 *          imply, listed as transformers' SentencePiece converter lists them
 *          (every split of a token into two tokens, by the joined token's
 *          score, best first; ties: longer left part, longer right part,
 *          then token order); Prepend("▁") + Replace(" ", "▁") normalizer
 *          (Replace only without add_space_prefix); Replace / ByteFallback /
 *          Fuse / Strip decoder - Mixtral's and Llama 2's layout.
 * Control, unknown and user-defined tokens are added tokens (special or not)
 * matched on the raw text; BOS/EOS added as the file says, by a
 * TemplateProcessing post-processor. tokenizer_config.json names the
 * BOS/EOS/UNK/PAD tokens and carries add_bos_token / add_eos_token and the
 * chat template.
 */
#include "tokenizer/tok_internal.h"
#include "formats/gguf_vocab_write.h"
#include "base/atomic.h"
#include "base/err.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SPACE_MARK "\xE2\x96\x81" /* ▁ */

/* ------------------------------------------------------------- helpers */

static cJSON *parse(const char *json) { return cJSON_Parse(json); }

/* An object from a JSON literal, added to o under name. 0 or -1. */
static int add_literal(cJSON *o, const char *name, const char *json) {
    cJSON *x = parse(json);
    if (!x) return -1;
    if (!cJSON_AddItemToObject(o, name, x)) {
        cJSON_Delete(x);
        return -1;
    }
    return 0;
}

static int write_json(const char *dir, const char *name, const cJSON *j, moe_err *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *s = cJSON_PrintUnformatted(j);
    if (!s) return moe_fail(err, "%s: out of memory", path);
    int rc = atomic_write(path, s, strlen(s), err);
    free(s);
    return rc;
}

static const char *tok_str(const moe_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_ids && t->tok_off[id] != UINT32_MAX ? t->pool.p + t->tok_off[id] : NULL;
}

static int cp_len(const char *s, size_t n) {
    int k = 0;
    for (size_t i = 0; i < n; i++) k += ((unsigned char)s[i] & 0xC0) != 0x80;
    return k;
}

/* --------------------------------------------------- SentencePiece merges */

typedef struct smerge {
    int32_t a, b, tok;   /* parts and the joined token */
    float score;         /* the joined token's */
    int la, lb;          /* lengths in code points */
} smerge;

static int smerge_cmp(const void *x, const void *y) {
    const smerge *p = x, *q = y;
    if (p->score != q->score) return p->score > q->score ? -1 : 1;
    if (p->la != q->la) return p->la > q->la ? -1 : 1;
    if (p->lb != q->lb) return p->lb > q->lb ? -1 : 1;
    if (p->tok != q->tok) return p->tok < q->tok ? -1 : 1;
    if (p->a != q->a) return p->a < q->a ? -1 : 1;
    return (p->b > q->b) - (p->b < q->b);
}

typedef struct smerge_list {
    smerge *m;
    size_t n, cap;
    int32_t id;        /* the token being split */
    float score;       /* its score */
    uint32_t cps;      /* its length in code points */
} smerge_list;

static int add_smerge(void *ctx, uint32_t k, int32_t a, int32_t b, uint32_t cp_left) {
    smerge_list *l = ctx;
    if (l->n == l->cap) {
        smerge *x = realloc(l->m, 2 * l->cap * sizeof *l->m);
        if (!x) return -1;
        l->m = x;
        l->cap *= 2;
    }
    l->m[l->n++] = (smerge){a, b, l->id, l->score, (int)cp_left, (int)(l->cps - cp_left)};
    return 0;
}

/* The merges of a "llama" file, as transformers' generate_merges lists them. */
static int spm_merges(const moe_tokenizer *t, const gguf_arr *scores, cJSON *out, moe_err *err) {
    smerge_list l = {.cap = (size_t)t->n_ids * 2 + 16};
    uint32_t *lens = NULL;
    size_t n_lens = 0;
    l.m = malloc(l.cap * sizeof *l.m);
    if (!l.m || strmap_lengths(&t->vocab, &lens, &n_lens) != 0) {
        free(l.m);
        return moe_fail(err, "%s: out of memory", t->path);
    }
    for (l.id = 0; l.id < t->n_ids; l.id++) {
        const char *s = tok_str(t, l.id);
        if (!s) continue;
        uint32_t len = t->tok_len[l.id];
        l.score = (float)gguf_arr_float(scores, (uint64_t)l.id);
        l.cps = (uint32_t)cp_len(s, len);
        if (strmap_splits(&t->vocab, lens, n_lens, s, len, add_smerge, &l) != 0) {
            free(l.m);
            free(lens);
            return moe_fail(err, "%s: out of memory", t->path);
        }
    }
    free(lens);
    smerge *m = l.m;
    size_t n = l.n;
    qsort(m, n, sizeof *m, smerge_cmp);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        cJSON *pair = cJSON_CreateArray();
        if (!pair || !cJSON_AddItemToArray(out, pair) ||
            !cJSON_AddItemToArray(pair, cJSON_CreateString(tok_str(t, m[i].a))) ||
            !cJSON_AddItemToArray(pair, cJSON_CreateString(tok_str(t, m[i].b))))
            rc = moe_fail(err, "%s: out of memory", t->path);
    }
    free(m);
    return rc;
}

/* The merges of a "gpt2" file: "a b", split after the first byte's space. */
static int gpt2_merges(const gguf_arr *ms, cJSON *out, moe_err *err) {
    for (uint64_t i = 0; i < ms->n; i++) {
        const char *s = ms->strs[i];
        size_t len = (size_t)ms->lens[i];
        const char *sp = len > 1 ? memchr(s + 1, ' ', len - 1) : NULL;
        if (!sp) continue; /* the reader refused such files already */
        cJSON *pair = cJSON_CreateArray();
        if (!pair || !cJSON_AddItemToArray(out, pair)) {
            cJSON_Delete(pair);
            return moe_fail(err, "tokenizer.json: out of memory");
        }
        char *a = strndup(s, (size_t)(sp - s));
        int ok = a && cJSON_AddItemToArray(pair, cJSON_CreateString(a)) &&
                 cJSON_AddItemToArray(pair, cJSON_CreateString(sp + 1));
        free(a);
        if (!ok) return moe_fail(err, "tokenizer.json: out of memory");
    }
    return 0;
}

/* ------------------------------------------------------------ pipelines */

static cJSON *gpt2_pre(const char *pre, int *nfc, int *ignore) {
    const char *const *splits;
    if (tok_gguf_pre_layout(pre, nfc, &splits, ignore) != 0) return NULL;
    if (!splits[0])
        return parse("{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":true}");
    return tok_gguf_pre_json(splits);
}

/* One SpecialToken item of a template, its entry in special_tokens too. */
static int template_special(const moe_tokenizer *t, int32_t id, int type_id, cJSON *list, cJSON *sp) {
    const char *name = t->tok_added[id] >= 0 ? t->pool.p + t->added[t->tok_added[id]].off : tok_str(t, id);
    cJSON *x = cJSON_CreateObject();
    if (!x || !cJSON_AddItemToArray(list, x)) {
        cJSON_Delete(x);
        return -1;
    }
    cJSON *st = cJSON_AddObjectToObject(x, "SpecialToken");
    if (!name || !st || !cJSON_AddStringToObject(st, "id", name) || !cJSON_AddNumberToObject(st, "type_id", type_id))
        return -1;
    if (cJSON_GetObjectItemCaseSensitive(sp, name)) return 0;
    cJSON *e = cJSON_AddObjectToObject(sp, name);
    cJSON *idl = e ? cJSON_AddArrayToObject(e, "ids") : NULL, *tl = e ? cJSON_AddArrayToObject(e, "tokens") : NULL;
    return idl && tl && cJSON_AddStringToObject(e, "id", name) &&
                   cJSON_AddItemToArray(idl, cJSON_CreateNumber(id)) &&
                   cJSON_AddItemToArray(tl, cJSON_CreateString(name))
               ? 0 : -1;
}

/* TemplateProcessing adding what the tokenizer adds: single = prefix $A
 * suffix; pair = prefix $A suffix prefix $B suffix (the second half type 1,
 * as HF's Llama files). */
static cJSON *post_json(const moe_tokenizer *t) {
    cJSON *p = cJSON_CreateObject();
    cJSON *single = p ? cJSON_AddArrayToObject(p, "single") : NULL;
    cJSON *pair = p ? cJSON_AddArrayToObject(p, "pair") : NULL;
    cJSON *sp = p ? cJSON_AddObjectToObject(p, "special_tokens") : NULL;
    int ok = single && pair && sp && cJSON_AddStringToObject(p, "type", "TemplateProcessing");
    for (int part = 0; ok && part < 3; part++) { /* single, pair's A half, pair's B half */
        cJSON *list = part == 0 ? single : pair;
        int type_id = part == 2;
        for (int i = 0; ok && i < t->n_prefix; i++) ok = template_special(t, t->prefix[i], type_id, list, sp) == 0;
        char item[64];
        snprintf(item, sizeof item, "{\"Sequence\":{\"id\":\"%s\",\"type_id\":%d}}", part == 2 ? "B" : "A", type_id);
        cJSON *x = ok ? parse(item) : NULL;
        if (!x || !cJSON_AddItemToArray(list, x)) {
            cJSON_Delete(x);
            ok = 0;
        }
        for (int i = 0; ok && i < t->n_suffix; i++) ok = template_special(t, t->suffix[i], type_id, list, sp) == 0;
    }
    if (!ok) {
        cJSON_Delete(p);
        return NULL;
    }
    return p;
}

/* ----------------------------------------------------------------- build */

static const char *kv_str(const gguf_file *g, const char *key) {
    const gguf_kv *kv = gguf_find_kv(g, key);
    return kv && kv->type == GGUF_VT_STR ? kv->strs[0] : NULL;
}

static int add_name(cJSON *tc, const char *key, const moe_tokenizer *t, int32_t id) {
    if (id < 0 || id >= t->n_ids) return 1;
    const char *s = t->tok_added[id] >= 0 ? t->pool.p + t->added[t->tok_added[id]].off : tok_str(t, id);
    return s ? cJSON_AddStringToObject(tc, key, s) != NULL : 1;
}

static int build(const moe_tokenizer *t, const gguf_file *g, const char *dir, moe_err *err) {
    const char *model = kv_str(g, "tokenizer.ggml.model");
    int spm = model && !strcmp(model, "llama");
    cJSON *tj = cJSON_CreateObject(), *tc = cJSON_CreateObject();
    int rc = -1;
    if (!tj || !tc) goto oom;
    /* added tokens */
    cJSON *added = cJSON_AddArrayToObject(tj, "added_tokens");
    if (!added) goto oom;
    for (int32_t id = 0; id < t->n_ids; id++) {
        if (t->tok_added[id] < 0) continue;
        const tok_added *a = &t->added[t->tok_added[id]];
        cJSON *x = cJSON_CreateObject();
        if (!x || !cJSON_AddItemToArray(added, x) || !cJSON_AddNumberToObject(x, "id", id) ||
            !cJSON_AddItemToObject(x, "content", cJSON_CreateString(t->pool.p + a->off)) ||
            !cJSON_AddFalseToObject(x, "single_word") || !cJSON_AddFalseToObject(x, "lstrip") ||
            !cJSON_AddFalseToObject(x, "rstrip") || !cJSON_AddFalseToObject(x, "normalized") ||
            !cJSON_AddBoolToObject(x, "special", a->special))
            goto oom;
    }
    /* the pipeline */
    int nfc = 0, ignore = 0;
    cJSON *pre = NULL;
    if (spm) {
        const gguf_kv *sp = gguf_find_kv(g, "tokenizer.ggml.add_space_prefix");
        int prefix = !sp || sp->type != GGUF_VT_BOOL || *(const uint8_t *)sp->raw;
        if (add_literal(tj, "normalizer", prefix
                ? "{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":\"" SPACE_MARK "\"},"
                  "{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"" SPACE_MARK "\"}]}"
                : "{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"" SPACE_MARK "\"}") ||
            !cJSON_AddNullToObject(tj, "pre_tokenizer") ||
            add_literal(tj, "decoder", prefix
                ? "{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\",\"pattern\":{\"String\":\"" SPACE_MARK
                  "\"},\"content\":\" \"},{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"},{\"type\":\"Strip\","
                  "\"content\":\" \",\"start\":1,\"stop\":0}]}"
                : "{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\",\"pattern\":{\"String\":\"" SPACE_MARK
                  "\"},\"content\":\" \"},{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"}]}"))
            goto oom;
    } else {
        const char *name = kv_str(g, "tokenizer.ggml.pre");
        pre = gpt2_pre(name ? name : "default", &nfc, &ignore);
        if (!pre || !cJSON_AddItemToObject(tj, "pre_tokenizer", pre)) {
            cJSON_Delete(pre);
            goto oom;
        }
        if ((nfc ? add_literal(tj, "normalizer", "{\"type\":\"NFC\"}") : !cJSON_AddNullToObject(tj, "normalizer")) ||
            add_literal(tj, "decoder", "{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"trim_offsets\":true,"
                                       "\"use_regex\":true}"))
            goto oom;
    }
    if (t->n_prefix || t->n_suffix) {
        cJSON *p = post_json(t);
        if (!p || !cJSON_AddItemToObject(tj, "post_processor", p)) {
            cJSON_Delete(p);
            goto oom;
        }
    } else if (spm ? !cJSON_AddNullToObject(tj, "post_processor")
                   : add_literal(tj, "post_processor", "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,"
                                                        "\"trim_offsets\":false,\"use_regex\":false}")) {
        goto oom;
    }
    /* the model */
    cJSON *m = cJSON_AddObjectToObject(tj, "model");
    const char *unk = spm && t->unk_id >= 0 ? tok_str(t, t->unk_id) : NULL;
    if (!m || !cJSON_AddStringToObject(m, "type", "BPE") || !cJSON_AddNullToObject(m, "dropout") ||
        !(unk ? cJSON_AddStringToObject(m, "unk_token", unk) : cJSON_AddNullToObject(m, "unk_token")) ||
        !cJSON_AddBoolToObject(m, "fuse_unk", spm) || !cJSON_AddBoolToObject(m, "byte_fallback", spm) ||
        !cJSON_AddBoolToObject(m, "ignore_merges", ignore))
        goto oom;
    cJSON *vocab = cJSON_AddObjectToObject(m, "vocab"), *merges = cJSON_AddArrayToObject(m, "merges");
    if (!vocab || !merges) goto oom;
    for (int32_t id = 0; id < t->n_ids; id++) {
        const char *s = tok_str(t, id);
        if (s && !cJSON_AddNumberToObject(vocab, s, id)) goto oom;
    }
    if (spm) {
        gguf_arr scores;
        if (gguf_get_arr(g, "tokenizer.ggml.scores", GGUF_VT_COUNT, &scores, err) != 0) goto done;
        if (gguf_find_kv(g, "tokenizer.ggml.merges")) {
            gguf_arr ms;
            if (gguf_get_arr(g, "tokenizer.ggml.merges", GGUF_VT_STR, &ms, err) || gpt2_merges(&ms, merges, err))
                goto done;
        } else if (spm_merges(t, &scores, merges, err) != 0) {
            goto done;
        }
    } else {
        gguf_arr ms;
        if (gguf_get_arr(g, "tokenizer.ggml.merges", GGUF_VT_STR, &ms, err) || gpt2_merges(&ms, merges, err))
            goto done;
    }
    /* tokenizer_config.json */
    const char *tmpl = kv_str(g, "tokenizer.chat_template");
    int32_t pad = -1;
    const gguf_kv *pk = gguf_find_kv(g, "tokenizer.ggml.padding_token_id");
    int64_t pv;
    moe_err ignore_err;
    if (pk && gguf_get_int(g, "tokenizer.ggml.padding_token_id", &pv, &ignore_err) == 0 && pv >= 0 &&
        pv < t->n_ids)
        pad = (int32_t)pv;
    if (!cJSON_AddStringToObject(tc, "tokenizer_class", "PreTrainedTokenizerFast") ||
        !cJSON_AddBoolToObject(tc, "add_bos_token", t->n_prefix > 0) ||
        !cJSON_AddBoolToObject(tc, "add_eos_token", t->n_suffix > 0) ||
        !cJSON_AddFalseToObject(tc, "clean_up_tokenization_spaces") ||
        (t->bos_id >= 0 ? !add_name(tc, "bos_token", t, t->bos_id) : !cJSON_AddNullToObject(tc, "bos_token")) ||
        (t->eos_id >= 0 ? !add_name(tc, "eos_token", t, t->eos_id) : !cJSON_AddNullToObject(tc, "eos_token")) ||
        (unk && !cJSON_AddStringToObject(tc, "unk_token", unk)) || !add_name(tc, "pad_token", t, pad) ||
        (tmpl && !cJSON_AddStringToObject(tc, "chat_template", tmpl)))
        goto oom;
    rc = write_json(dir, "tokenizer.json", tj, err);
    if (rc == 0) rc = write_json(dir, "tokenizer_config.json", tc, err);
    goto done;
oom:
    rc = moe_fail(err, "%s: out of memory", t->path);
done:
    cJSON_Delete(tj);
    cJSON_Delete(tc);
    return rc;
}

int tok_gguf_to_json(const char *gguf_path, const char *dir, char *note, size_t note_size, moe_err *err) {
    moe_tokenizer *t = NULL;
    moe_err e = {{0}};
    if (note_size) note[0] = 0;
    if (tok_gguf_load(&t, gguf_path, &e) != 0) {
        snprintf(note, note_size, "%s", e.msg);
        return 1;
    }
    gguf_file g;
    if (gguf_open(&g, gguf_path, err) != 0) {
        moe_tokenizer_free(t);
        return -1;
    }
    int rc = build(t, &g, dir, err);
    gguf_close(&g);
    moe_tokenizer_free(t);
    return rc;
}
