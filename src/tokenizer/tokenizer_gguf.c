/*
 * tokenizer_gguf.c - a moe_tokenizer from the tokenizer metadata of a GGUF
 * file, so a user holding only a .gguf gets the ids the model was trained
 * with. It builds the same structure tokenizer_json.c builds from a Hugging
 * Face tokenizer.json: the normalizer / pre-tokenizer / decoder chains are
 * written as the tokenizer.json fragments HF ships for that model family and
 * parsed by the same code (normalize.c, pretok.c, decode.c), so encoding and
 * decoding are shared and a GGUF tokenizer gives the ids its tokenizer.json
 * gives.
 *
 * The keys (llama.cpp's, as gguf-py writes them):
 *   tokenizer.ggml.model        "llama": SentencePiece BPE with byte fallback
 *                               (Llama, Mistral, Mixtral); "gpt2": byte-level
 *                               BPE (Qwen, OLMoE, DeepSeek, Llama 3, NeoX)
 *   tokenizer.ggml.pre          gpt2: the pre-tokenizer by name (table below)
 *   tokenizer.ggml.tokens       [n] strings, the id is the index
 *   tokenizer.ggml.token_type   [n] ints: 1 normal, 2 unknown, 3 control,
 *                               4 user-defined, 5 unused, 6 byte (0 undefined)
 *   tokenizer.ggml.scores       [n] floats: SentencePiece piece scores
 *   tokenizer.ggml.merges       [m] "a b" strings, best first (gpt2)
 *   tokenizer.ggml.{bos,eos,unknown,padding}_token_id
 *   tokenizer.ggml.add_bos_token, add_eos_token, add_space_prefix (bools)
 *
 * What is built:
 *   llama  normalizer Prepend("▁") (when add_space_prefix, the default) +
 *          Replace(" ", "▁"); BPE with byte fallback and fused unknowns;
 *          decoder Replace("▁", " "), ByteFallback, Fuse, Strip(1 leading
 *          space). This is the layout of Mixtral's and Llama 2's
 *          tokenizer.json, and what llama.cpp does: the prefix space goes
 *          before every stretch of text that follows a special token.
 *          The file has no merges: they are the SentencePiece rule itself.
 *          Each token splits into two tokens in up to len-1 ways; each such
 *          pair merges into it with the priority of its score (higher first).
 *          Pairs whose tokens have equal scores share one rank, so bpe.c's
 *          heap then takes the leftmost: exactly SentencePiece's (and
 *          llama.cpp's) "best score, then leftmost" choice.
 *   gpt2   the pre-tokenizer HF uses for the named family, ByteLevel
 *          decoding, the merges from the file.
 * Control, unknown and user-defined tokens are added tokens matched whole in
 * the raw text (control and unknown ones special), as llama.cpp does.
 *
 * Everything is checked against the file: array types and lengths (scores
 * and token types must match the token count), token strings valid UTF-8
 * and unique, token types known, scores finite, merges naming tokens, the
 * special ids in range, add_bos/add_eos only with a BOS/EOS id. Unknown
 * model or pre-tokenizer names are refused naming the key and the value.
 */
#include "tokenizer/tok_internal.h"
#include "base/err.h"
#include "base/mapfile.h"
#include "formats/gguf.h"

#include <cjson/cJSON.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define GG_MAX_TOKENS (1 << 24) /* as tokenizer.json ids */

#define K_MODEL "tokenizer.ggml.model"
#define K_PRE "tokenizer.ggml.pre"
#define K_TOKENS "tokenizer.ggml.tokens"
#define K_TYPES "tokenizer.ggml.token_type"
#define K_SCORES "tokenizer.ggml.scores"
#define K_MERGES "tokenizer.ggml.merges"
#define K_BOS "tokenizer.ggml.bos_token_id"
#define K_EOS "tokenizer.ggml.eos_token_id"
#define K_UNK "tokenizer.ggml.unknown_token_id"
#define K_PAD "tokenizer.ggml.padding_token_id"
#define K_ADD_BOS "tokenizer.ggml.add_bos_token"
#define K_ADD_EOS "tokenizer.ggml.add_eos_token"
#define K_ADD_SPACE "tokenizer.ggml.add_space_prefix"

/* token_type values (llama.cpp's llama_token_type) */
enum { TT_UNDEFINED, TT_NORMAL, TT_UNKNOWN, TT_CONTROL, TT_USER_DEFINED, TT_UNUSED, TT_BYTE };

/* ------------------------------------------ pipelines as tokenizer.json */

/* The fixed SentencePiece (Mixtral / Llama 2) chains. */
static const char SPM_NORM_PREPEND[] =
    "{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":\"\xE2\x96\x81\"},"
    "{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\xE2\x96\x81\"}]}";
static const char SPM_NORM_PLAIN[] =
    "{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\xE2\x96\x81\"}";
static const char SPM_DEC_STRIP[] =
    "{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\",\"pattern\":{\"String\":\"\xE2\x96\x81\"},"
    "\"content\":\" \"},{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"},"
    "{\"type\":\"Strip\",\"content\":\" \",\"start\":1,\"stop\":0}]}";
static const char SPM_DEC_PLAIN[] =
    "{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\",\"pattern\":{\"String\":\"\xE2\x96\x81\"},"
    "\"content\":\" \"},{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"}]}";
static const char BYTELEVEL_DEC[] = "{\"type\":\"ByteLevel\"}";
static const char NFC_NORM[] = "{\"type\":\"NFC\"}";

/* Parse one chain with its tokenizer.json parser. */
static int parse_chain(moe_tokenizer *t, const char *json, cJSON *built,
                       int (*parse)(moe_tokenizer *, const cJSON *, moe_err *), moe_err *err) {
    cJSON *j = built ? built : cJSON_Parse(json);
    if (!j) return moe_fail(err, "%s: out of memory", t->path);
    int rc = parse(t, j, err);
    cJSON_Delete(j);
    return rc ? moe_fail_prefix(err, "%s", t->path) : 0;
}

/* ------------------------------------------------------------- helpers */

static int pool_add(moe_tokenizer *t, const char *s, size_t n, uint32_t *off, moe_err *err) {
    if (t->pool.n + n + 1 > UINT32_MAX) return moe_fail(err, "%s: strings over 4 GiB", t->path);
    *off = (uint32_t)t->pool.n;
    if (buf_put(&t->pool, s, n) != 0 || buf_put(&t->pool, "", 1) != 0)
        return moe_fail(err, "%s: out of memory", t->path);
    return 0;
}

/* An optional array: 0 absent, 1 present (in *a), -1 wrong type. Its
 * elements must be numbers (strings: elem STR). */
static int opt_arr(const gguf_file *g, const char *key, int want_str, gguf_arr *a, moe_err *err) {
    if (!gguf_find_kv(g, key)) return 0;
    if (gguf_get_arr(g, key, GGUF_VT_COUNT, a, err) != 0) return -1;
    int is_str = a->type == GGUF_VT_STR;
    int is_num = !is_str && a->type != GGUF_VT_BOOL && gguf_vtype_size(a->type) > 0;
    if (want_str ? !is_str : !is_num)
        return moe_fail(err, "%s: key \"%s\": is an array of %s, not of %s (wrong type)", g->path, key,
                        gguf_vtype_name(a->type), want_str ? "str" : "numbers");
    return 1;
}

/* An optional bool key: its value, or dflt when absent. */
static int opt_bool(const gguf_file *g, const char *key, int dflt, int *out, moe_err *err) {
    *out = dflt;
    if (!gguf_find_kv(g, key)) return 0;
    bool b;
    if (gguf_get_bool(g, key, &b, err) != 0) return -1;
    *out = b;
    return 0;
}

/* An optional token id key: -1 when absent, else an id in [0, n). */
static int opt_id(const gguf_file *g, const char *key, int32_t n, int32_t *out, moe_err *err) {
    *out = -1;
    if (!gguf_find_kv(g, key)) return 0;
    int64_t v;
    if (gguf_get_int(g, key, &v, err) != 0) return -1;
    if (v < 0 || v >= n)
        return moe_fail(err, "%s: key \"%s\": %lld is not a token id (the vocabulary has %d)", g->path,
                        key, (long long)v, n);
    *out = (int32_t)v;
    return 0;
}

/* --------------------------------------------------------- the vocabulary */

/* Token strings into the pool and the vocab map; types checked. */
static int load_tokens(moe_tokenizer *t, const gguf_file *g, const gguf_arr *tok,
                       const gguf_arr *types, int has_types, moe_err *err) {
    int32_t n = t->n_ids;
    size_t total = 0;
    for (int32_t i = 0; i < n; i++) total += tok->lens[i] + 1;
    if (buf_reserve(&t->pool, total) != 0) return moe_fail(err, "%s: out of memory", t->path);
    for (int32_t i = 0; i < n; i++) {
        const char *s = tok->strs[i];
        size_t len = (size_t)tok->lens[i];
        if (has_types) {
            int64_t ty = gguf_arr_int(types, (uint64_t)i);
            if (ty < TT_UNDEFINED || ty > TT_BYTE)
                return moe_fail(err, "%s: key \"%s\": [%d] = %lld is not a token type (0..6)", g->path,
                                K_TYPES, i, (long long)ty);
        }
        if (len == 0) continue; /* names nothing: never produced, decodes to nothing */
        if (!utf8_is_valid(s, len))
            return moe_fail(err, "%s: key \"%s\": [%d] is not valid UTF-8", g->path, K_TOKENS, i);
        if (pool_add(t, s, len, &t->tok_off[i], err) != 0) return -1;
        t->tok_len[i] = (uint32_t)len;
    }
    if (strmap_init(&t->vocab, (size_t)n) != 0) return moe_fail(err, "%s: out of memory", t->path);
    for (int32_t i = 0; i < n; i++) {
        if (t->tok_off[i] == UINT32_MAX) continue;
        const char *s = t->pool.p + t->tok_off[i];
        int32_t prev = strmap_get(&t->vocab, s, t->tok_len[i]);
        if (prev >= 0) /* llama.cpp refuses these too: an id could not be looked up */
            return moe_fail(err, "%s: key \"%s\": [%d] \"%.40s\" repeats token %d", g->path, K_TOKENS,
                            i, s, prev);
        if (strmap_put(&t->vocab, s, t->tok_len[i], i) != 0)
            return moe_fail(err, "%s: out of memory", t->path);
    }
    for (int b = 0; b < 256; b++) { /* byte-fallback tokens, spelled <0xNN> */
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        t->byte_id[b] = strmap_get(&t->vocab, name, 6);
    }
    return 0;
}

/* Control, unknown and user-defined tokens become added tokens matched on
 * the raw text: the special ones first, then the others (HF's order). */
static int load_added(moe_tokenizer *t, const gguf_arr *types, int has_types, moe_err *err) {
    if (!has_types) return 0;
    int32_t n = t->n_ids, count = 0;
    for (int32_t i = 0; i < n; i++) {
        int64_t ty = gguf_arr_int(types, (uint64_t)i);
        count += (ty == TT_CONTROL || ty == TT_UNKNOWN || ty == TT_USER_DEFINED) &&
                 t->tok_off[i] != UINT32_MAX;
    }
    t->added = calloc((size_t)count + 1, sizeof *t->added);
    if (!t->added || strmap_init(&t->added_map, (size_t)count) != 0)
        return moe_fail(err, "%s: out of memory", t->path);
    for (int pass = 1; pass >= 0; pass--) {
        for (int32_t i = 0; i < n; i++) {
            int64_t ty = gguf_arr_int(types, (uint64_t)i);
            int special = ty == TT_CONTROL || ty == TT_UNKNOWN;
            if (!(special || ty == TT_USER_DEFINED) || special != pass) continue;
            if (t->tok_off[i] == UINT32_MAX) continue;
            tok_added *a = &t->added[t->n_added];
            a->id = i;
            a->off = t->tok_off[i];
            a->len = t->tok_len[i];
            a->special = (uint8_t)special;
            if (strmap_put(&t->added_map, t->pool.p + a->off, a->len, i) != 0 ||
                trie_add(&t->trie_raw, t->pool.p + a->off, a->len, t->n_added) != 0)
                return moe_fail(err, "%s: out of memory", t->path);
            t->tok_special[i] = (uint8_t)special;
            t->tok_added[i] = t->n_added++;
        }
    }
    return 0;
}

/* Merges written out: "a b", split at the first space after the first
 * byte (as llama.cpp reads them); rank = position. */
static int load_merges(moe_tokenizer *t, const gguf_file *g, const gguf_arr *m, moe_err *err) {
    if (m->n >= UINT32_MAX) return moe_fail(err, "%s: key \"%s\": too many merges", g->path, K_MERGES);
    if (pairmap_init(&t->merges, (size_t)m->n) != 0) return moe_fail(err, "%s: out of memory", t->path);
    tok_buf ab = {0};
    int rc = 0;
    for (uint64_t i = 0; i < m->n && rc == 0; i++) {
        const char *s = m->strs[i];
        size_t len = (size_t)m->lens[i];
        const char *sp = len > 1 ? memchr(s + 1, ' ', len - 1) : NULL;
        if (!sp) {
            rc = moe_fail(err, "%s: key \"%s\": [%llu] \"%.40s\" is not \"a b\"", g->path, K_MERGES,
                          (unsigned long long)i, s);
            break;
        }
        size_t na = (size_t)(sp - s), nb = len - na - 1;
        const char *b = sp + 1;
        ab.n = 0;
        if (buf_put(&ab, s, na) != 0 || buf_put(&ab, b, nb) != 0) {
            rc = moe_fail(err, "%s: out of memory", t->path);
            break;
        }
        int32_t ia = strmap_get(&t->vocab, s, na), ib = strmap_get(&t->vocab, b, nb);
        int32_t inew = strmap_get(&t->vocab, ab.p, ab.n);
        if (ia < 0 || ib < 0 || inew < 0) {
            rc = moe_fail(err, "%s: key \"%s\": [%llu] (\"%.*s\" \"%.*s\"): %s is not a token", g->path,
                          K_MERGES, (unsigned long long)i, (int)(na > 40 ? 40 : na), s,
                          (int)(nb > 40 ? 40 : nb), b,
                          ia < 0 ? "the left part" : ib < 0 ? "the right part" : "the merged token");
            break;
        }
        if (pairmap_put(&t->merges, ia, ib, (uint32_t)i, inew) != 0)
            rc = moe_fail(err, "%s: out of memory", t->path);
    }
    buf_free(&ab);
    return rc;
}

typedef struct score_id {
    float score;
    int32_t id;
} score_id;

static int score_desc(const void *a, const void *b) {
    const score_id *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

typedef struct score_merges {
    moe_tokenizer *t;
    const uint32_t *rank; /* [n_ids] */
    int32_t id;           /* the token being split */
} score_merges;

static int put_score_merge(void *ctx, uint32_t k, int32_t a, int32_t b, uint32_t cp_left) {
    score_merges *c = ctx;
    return pairmap_put(&c->t->merges, a, b, c->rank[c->id], c->id);
}

/* SentencePiece's merges, from the scores (see the top of the file). */
static int merges_from_scores(moe_tokenizer *t, const gguf_file *g, const gguf_arr *scores,
                              const gguf_arr *types, int has_types, moe_err *err) {
    int32_t n = t->n_ids;
    score_id *order = malloc((size_t)n * sizeof *order);
    uint32_t *rank = malloc((size_t)n * sizeof *rank), *lens = NULL;
    size_t n_lens = 0;
    int rc = 0;
    if (!order || !rank) {
        rc = moe_fail(err, "%s: out of memory", t->path);
        goto done;
    }
    float lo = INFINITY, hi = -INFINITY;
    int32_t n_normal = 0;
    for (int32_t i = 0; i < n; i++) {
        double d = gguf_arr_float(scores, (uint64_t)i);
        if (!isfinite(d) || fabs(d) > FLT_MAX) {
            rc = moe_fail(err, "%s: key \"%s\": [%d] = %g is not a finite score", g->path, K_SCORES, i, d);
            goto done;
        }
        order[i] = (score_id){(float)d, i};
        if (!has_types || gguf_arr_int(types, (uint64_t)i) == TT_NORMAL) {
            if (order[i].score < lo) lo = order[i].score;
            if (order[i].score > hi) hi = order[i].score;
            n_normal++;
        }
    }
    if (n_normal > 1 && lo == hi) { /* written from tokenizer.json by gguf-py's LlamaHfVocab */
        rc = moe_fail(err, "%s: key \"%s\": all %d normal tokens score %g, so the merge order is "
                      "lost; use the model's tokenizer.json instead", g->path, K_SCORES, n_normal, lo);
        goto done;
    }
    qsort(order, (size_t)n, sizeof *order, score_desc);
    for (int32_t k = 0, r = 0; k < n; k++) {
        if (k > 0 && order[k].score != order[k - 1].score) r++;
        rank[order[k].id] = (uint32_t)r;
    }
    if (pairmap_init(&t->merges, (size_t)n * 2) != 0) {
        rc = moe_fail(err, "%s: out of memory", t->path);
        goto done;
    }
    if (strmap_lengths(&t->vocab, &lens, &n_lens) != 0) {
        rc = moe_fail(err, "%s: out of memory", t->path);
        goto done;
    }
    score_merges c = {t, rank, 0};
    for (c.id = 0; c.id < n && rc == 0; c.id++) {
        if (t->tok_off[c.id] == UINT32_MAX) continue;
        if (strmap_splits(&t->vocab, lens, n_lens, t->pool.p + t->tok_off[c.id], t->tok_len[c.id],
                          put_score_merge, &c) != 0)
            rc = moe_fail(err, "%s: out of memory", t->path);
    }
done:
    free(order);
    free(rank);
    free(lens);
    return rc;
}

/* ---------------------------------------------------------- the two kinds */

static int build_llama(moe_tokenizer *t, const gguf_file *g, const gguf_arr *types, int has_types,
                       moe_err *err) {
    gguf_arr scores, merges;
    int s = opt_arr(g, K_SCORES, 0, &scores, err);
    if (s < 0) return -1;
    if (s == 1 && scores.n != (uint64_t)t->n_ids)
        return moe_fail(err, "%s: key \"%s\": %llu scores for %d tokens", g->path, K_SCORES,
                        (unsigned long long)scores.n, t->n_ids);
    int k = opt_arr(g, K_MERGES, 1, &merges, err);
    if (k < 0) return -1;
    if (k == 1) { /* merges written out win, as in transformers' GGUF loader */
        if (load_merges(t, g, &merges, err) != 0) return -1;
    } else if (s == 0) {
        return moe_fail(err, "%s: key \"%s\": missing (a \"llama\" tokenizer needs the piece "
                        "scores, or \"%s\")", g->path, K_SCORES, K_MERGES);
    } else if (merges_from_scores(t, g, &scores, types, has_types, err) != 0) {
        return -1;
    }
    int add_space;
    if (opt_bool(g, K_ADD_SPACE, 1, &add_space, err) != 0) return -1;
    if (parse_chain(t, add_space ? SPM_NORM_PREPEND : SPM_NORM_PLAIN, NULL, norm_parse, err) != 0 ||
        parse_chain(t, add_space ? SPM_DEC_STRIP : SPM_DEC_PLAIN, NULL, dec_parse, err) != 0)
        return -1;
    t->byte_fallback = 1;
    t->fuse_unk = 1;
    /* the unknown token: the file's, else its first token typed unknown */
    if (opt_id(g, K_UNK, t->n_ids, &t->unk_id, err) != 0) return -1;
    for (int32_t i = 0; t->unk_id < 0 && has_types && i < t->n_ids; i++)
        if (gguf_arr_int(types, (uint64_t)i) == TT_UNKNOWN) t->unk_id = i;
    if (t->unk_id >= 0 && t->tok_off[t->unk_id] == UINT32_MAX) t->unk_id = -2;
    return tok_build_char_pairs(t, err);
}

static int build_gpt2(moe_tokenizer *t, const gguf_file *g, int *add_bos, moe_err *err) {
    const char *pre_name = "default";
    if (gguf_find_kv(g, K_PRE) && gguf_get_str(g, K_PRE, &pre_name, NULL, err) != 0) return -1;
    const tok_gguf_pre *p = tok_gguf_pre_find(pre_name);
    if (!p) {
        char names[512];
        tok_gguf_pre_names(names, sizeof names);
        return moe_fail(err, "%s: key \"%s\": pre-tokenizer \"%.60s\" is unsupported (supported: %s)",
                        g->path, K_PRE, pre_name, names);
    }
    gguf_arr merges;
    int k = opt_arr(g, K_MERGES, 1, &merges, err);
    if (k < 0) return -1;
    if (k == 0)
        return moe_fail(err, "%s: key \"%s\": missing (a \"gpt2\" tokenizer needs its merges)",
                        g->path, K_MERGES);
    if (load_merges(t, g, &merges, err) != 0) return -1;
    if ((p->nfc && parse_chain(t, NFC_NORM, NULL, norm_parse, err) != 0) ||
        parse_chain(t, NULL, tok_gguf_pre_json(p->splits), pre_parse, err) != 0 ||
        parse_chain(t, BYTELEVEL_DEC, NULL, dec_parse, err) != 0)
        return -1;
    t->ignore_merges = p->ignore_merges;
    *add_bos = p->add_bos;
    return 0;
}

/* BOS/EOS ids and what add_special adds. */
static int load_specials(moe_tokenizer *t, const gguf_file *g, int is_llama, int add_bos,
                         moe_err *err) {
    int32_t pad, unk; /* checked; not used here */
    if (opt_id(g, K_BOS, t->n_ids, &t->bos_id, err) != 0 ||
        opt_id(g, K_EOS, t->n_ids, &t->eos_id, err) != 0 ||
        opt_id(g, K_UNK, t->n_ids, &unk, err) != 0 || opt_id(g, K_PAD, t->n_ids, &pad, err) != 0)
        return -1;
    if (is_llama) { /* llama.cpp's defaults for SentencePiece files */
        if (!gguf_find_kv(g, K_BOS) && t->n_ids > 1) t->bos_id = 1;
        if (!gguf_find_kv(g, K_EOS) && t->n_ids > 2) t->eos_id = 2;
    }
    int add_eos;
    if (opt_bool(g, K_ADD_BOS, add_bos, &add_bos, err) != 0 ||
        opt_bool(g, K_ADD_EOS, 0, &add_eos, err) != 0)
        return -1;
    if (add_bos && t->bos_id < 0 && !gguf_find_kv(g, K_ADD_BOS)) add_bos = 0; /* a default only */
    if (add_bos && t->bos_id < 0)
        return moe_fail(err, "%s: key \"%s\" is true but the file names no BOS token (%s)", g->path,
                        K_ADD_BOS, K_BOS);
    if (add_eos && t->eos_id < 0)
        return moe_fail(err, "%s: key \"%s\" is true but the file names no EOS token (%s)", g->path,
                        K_ADD_EOS, K_EOS);
    t->prefix = malloc(sizeof *t->prefix);
    t->suffix = malloc(sizeof *t->suffix);
    if (!t->prefix || !t->suffix) return moe_fail(err, "%s: out of memory", t->path);
    if (add_bos) t->prefix[t->n_prefix++] = t->bos_id;
    if (add_eos) t->suffix[t->n_suffix++] = t->eos_id;
    return 0;
}

static int build(moe_tokenizer *t, const gguf_file *g, moe_err *err) {
    const char *model;
    if (!gguf_find_kv(g, K_MODEL))
        return moe_fail(err, "%s: key \"%s\": missing (the file carries no tokenizer)", g->path, K_MODEL);
    if (gguf_get_str(g, K_MODEL, &model, NULL, err) != 0) return -1;
    if (strcmp(model, "none") == 0 || strcmp(model, "no_vocab") == 0)
        return moe_fail(err, "%s: key \"%s\": \"%s\": the file carries no vocabulary", g->path,
                        K_MODEL, model);
    int is_llama = strcmp(model, "llama") == 0;
    if (!is_llama && strcmp(model, "gpt2") != 0)
        return moe_fail(err, "%s: key \"%s\": tokenizer \"%.60s\" is unsupported (supported: llama, "
                        "gpt2)", g->path, K_MODEL, model);
    gguf_arr tok, types;
    int k = opt_arr(g, K_TOKENS, 1, &tok, err);
    if (k < 0) return -1;
    if (k == 0) return moe_fail(err, "%s: key \"%s\": missing", g->path, K_TOKENS);
    if (tok.n == 0 || tok.n > GG_MAX_TOKENS)
        return moe_fail(err, "%s: key \"%s\": %llu tokens (1..%d allowed)", g->path, K_TOKENS,
                        (unsigned long long)tok.n, GG_MAX_TOKENS);
    int has_types = opt_arr(g, K_TYPES, 0, &types, err);
    if (has_types < 0) return -1;
    if (has_types && types.n != tok.n)
        return moe_fail(err, "%s: key \"%s\": %llu types for %llu tokens", g->path, K_TYPES,
                        (unsigned long long)types.n, (unsigned long long)tok.n);

    if (tok_alloc_ids(t, (int32_t)tok.n, err) != 0) return -1;
    if (load_tokens(t, g, &tok, &types, has_types, err) != 0 ||
        load_added(t, &types, has_types, err) != 0)
        return -1;
    int add_bos = 1;
    if (is_llama ? build_llama(t, g, &types, has_types, err) : build_gpt2(t, g, &add_bos, err))
        return -1;
    return load_specials(t, g, is_llama, add_bos, err);
}

/* ------------------------------------------------------------------ API */

int tok_is_gguf(const char *path) {
    struct stat st;
    moe_err e;
    int fd = open_regular(path, &st, &e); /* a FIFO named *.gguf must not block */
    if (fd < 0) return 0;
    char magic[4];
    ssize_t got = read(fd, magic, 4);
    close(fd);
    return got == 4 && memcmp(magic, "GGUF", 4) == 0;
}

int tok_gguf_load(moe_tokenizer **out, const char *path, moe_err *err) {
    *out = NULL;
    gguf_file g;
    if (gguf_open(&g, path, err) != 0) return -1;
    moe_tokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        gguf_close(&g);
        return moe_fail(err, "%s: out of memory", path);
    }
    snprintf(t->path, sizeof t->path, "%.255s", path);
    t->bos_id = t->eos_id = t->unk_id = -1;
    int rc = build(t, &g, err);
    gguf_close(&g);
    if (rc != 0) {
        moe_tokenizer_free(t);
        return -1;
    }
    *out = t;
    return 0;
}
