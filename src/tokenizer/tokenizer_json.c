/*
 * tokenizer_json.c - loading a Hugging Face tokenizer.json (model type BPE)
 * into a moe_tokenizer: vocab, merges (as "a b" strings or [a, b] pairs),
 * added tokens, and the normalizer / pre_tokenizer / post_processor /
 * decoder chains (parsed by their own files). Loading a directory reads
 * DIR/tokenizer.json and, if present, DIR/tokenizer_config.json for the
 * bos_token / eos_token names. A path to a GGUF file goes to
 * tokenizer_gguf.c, which builds the same structure from its metadata.
 *
 * Everything read is checked: ids must be integers in range and not sparse
 * past 2x the token count (so a hostile id cannot make us allocate
 * gigabytes), strings valid UTF-8, every merge's parts and result in the
 * vocab. WordPiece, Unigram and WordLevel models are refused as unsupported.
 */
#include "tokenizer/tok_internal.h"
#include "base/err.h"
#include "base/mapfile.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define TOK_MAX_ID (1 << 24)

int32_t tok_lookup(const moe_tokenizer *t, const char *s, size_t n) {
    int32_t id = strmap_get(&t->added_map, s, n);
    return id >= 0 ? id : strmap_get(&t->vocab, s, n);
}

/* ------------------------------------------------------------- helpers */

static const cJSON *field(const cJSON *o, const char *name) {
    return cJSON_GetObjectItemCaseSensitive(o, name);
}

static int flag(const cJSON *o, const char *name, int dflt) {
    const cJSON *v = field(o, name);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

static int get_id(const cJSON *v, int32_t *id) {
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (!(d >= 0 && d < TOK_MAX_ID) || d != (double)(int32_t)d) return -1;
    *id = (int32_t)d;
    return 0;
}

static int pool_add(moe_tokenizer *t, const char *s, size_t n, uint32_t *off, moe_err *err) {
    if (t->pool.n + n + 1 > UINT32_MAX) return moe_fail(err, "%s: strings over 4 GiB", t->path);
    *off = (uint32_t)t->pool.n;
    if (buf_put(&t->pool, s, n) != 0 || buf_put(&t->pool, "", 1) != 0)
        return moe_fail(err, "%s: out of memory", t->path);
    return 0;
}

/* ----------------------------------------------------------- the model */

static int check_model(moe_tokenizer *t, const cJSON *model, moe_err *err) {
    if (!cJSON_IsObject(model)) return moe_fail(err, "%s: no \"model\" object", t->path);
    const cJSON *type = field(model, "type");
    const char *ty = cJSON_IsString(type) ? type->valuestring : NULL;
    if (!ty) { /* old files omit the type: infer it as HF does */
        if (cJSON_IsArray(field(model, "merges"))) ty = "BPE";
        else if (cJSON_IsArray(field(model, "vocab"))) ty = "Unigram";
        else ty = "WordPiece";
    }
    if (strcmp(ty, "BPE") != 0)
        return moe_fail(err, "%s: model type \"%s\" is unsupported (only BPE)", t->path, ty);
    const cJSON *dropout = field(model, "dropout");
    if (dropout && !cJSON_IsNull(dropout) && !(cJSON_IsNumber(dropout) && dropout->valuedouble == 0))
        return moe_fail(err, "%s: BPE dropout is unsupported (random at encode time)", t->path);
    static const char *const affixes[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        const cJSON *a = field(model, affixes[i]);
        if (a && !cJSON_IsNull(a) && !(cJSON_IsString(a) && a->valuestring[0] == 0))
            return moe_fail(err, "%s: BPE %s is unsupported (no MoE model uses it)", t->path, affixes[i]);
    }
    if (!cJSON_IsObject(field(model, "vocab")))
        return moe_fail(err, "%s: model.vocab is not an object", t->path);
    if (!cJSON_IsArray(field(model, "merges")))
        return moe_fail(err, "%s: model.merges is not a list", t->path);
    t->fuse_unk = flag(model, "fuse_unk", 0);
    t->byte_fallback = flag(model, "byte_fallback", 0);
    t->ignore_merges = flag(model, "ignore_merges", 0);
    return 0;
}

/* Pass over vocab and added tokens: count, find the largest id. */
static int scan_ids(moe_tokenizer *t, const cJSON *vocab, const cJSON *added, moe_err *err) {
    int32_t max_id = -1, id;
    size_t count = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab) {
        if (get_id(e, &id) != 0)
            return moe_fail(err, "%s: vocab \"%.40s\": id is not an integer in [0, %d)", t->path,
                            e->string, TOK_MAX_ID);
        if (id > max_id) max_id = id;
        count++;
    }
    size_t i = 0;
    cJSON_ArrayForEach(e, added) {
        if (get_id(field(e, "id"), &id) != 0)
            return moe_fail(err, "%s: added_tokens[%zu]: id is not an integer in [0, %d)", t->path,
                            i, TOK_MAX_ID);
        if (id > max_id) max_id = id;
        count++;
        i++;
    }
    if ((size_t)max_id + 1 > 2 * count + 1024)
        return moe_fail(err, "%s: ids up to %d for %zu tokens: too sparse", t->path, max_id, count);
    return tok_alloc_ids(t, max_id + 1, err);
}

int tok_alloc_ids(moe_tokenizer *t, int32_t n_ids, moe_err *err) {
    t->n_ids = n_ids;
    size_t n = (size_t)t->n_ids + 1;
    t->tok_off = malloc(n * sizeof *t->tok_off);
    t->tok_len = calloc(n, sizeof *t->tok_len);
    t->tok_special = calloc(n, 1);
    t->tok_added = malloc(n * sizeof *t->tok_added);
    if (!t->tok_off || !t->tok_len || !t->tok_special || !t->tok_added)
        return moe_fail(err, "%s: out of memory for %d ids", t->path, t->n_ids);
    for (size_t i = 0; i < n; i++) {
        t->tok_off[i] = UINT32_MAX;
        t->tok_added[i] = -1;
    }
    return 0;
}

static int load_vocab(moe_tokenizer *t, const cJSON *vocab, moe_err *err) {
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab) {
        int32_t id = 0;
        get_id(e, &id); /* checked by scan_ids */
        size_t n = strlen(e->string);
        if (!utf8_is_valid(e->string, n))
            return moe_fail(err, "%s: vocab id %d: token is not valid UTF-8", t->path, id);
        if (t->tok_off[id] != UINT32_MAX)
            return moe_fail(err, "%s: vocab id %d is used by two tokens", t->path, id);
        if (pool_add(t, e->string, n, &t->tok_off[id], err) != 0) return -1;
        t->tok_len[id] = (uint32_t)n;
    }
    return 0;
}

/* The parts of one merge: "a b" (exactly one space, as HF requires) or
 * ["a", "b"]. Returns 1 for a "#version" line HF skips. */
static int merge_parts(const cJSON *m, const char **a, size_t *na, const char **b, size_t *nb) {
    if (cJSON_IsString(m)) {
        const char *s = m->valuestring;
        if (strncmp(s, "#version", 8) == 0) return 1;
        const char *sp = strchr(s, ' ');
        if (!sp || strchr(sp + 1, ' ')) return -1;
        *a = s, *na = (size_t)(sp - s), *b = sp + 1, *nb = strlen(sp + 1);
        return 0;
    }
    const cJSON *x = cJSON_GetArrayItem(m, 0), *y = cJSON_GetArrayItem(m, 1);
    if (!cJSON_IsArray(m) || cJSON_GetArraySize(m) != 2 || !cJSON_IsString(x) || !cJSON_IsString(y))
        return -1;
    *a = x->valuestring, *na = strlen(x->valuestring), *b = y->valuestring, *nb = strlen(y->valuestring);
    return 0;
}

static int load_merges(moe_tokenizer *t, const cJSON *merges, moe_err *err) {
    tok_buf ab = {0};
    uint32_t rank = 0;
    size_t idx = 0;
    int rc = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, merges) {
        const char *a, *b;
        size_t na, nb;
        int k = merge_parts(m, &a, &na, &b, &nb);
        if (k == 1) {
            idx++;
            continue;
        }
        if (k < 0) {
            rc = moe_fail(err, "%s: merges[%zu] is not \"a b\" or [a, b]", t->path, idx);
            break;
        }
        ab.n = 0;
        if (buf_put(&ab, a, na) != 0 || buf_put(&ab, b, nb) != 0) {
            rc = moe_fail(err, "%s: out of memory", t->path);
            break;
        }
        int32_t ia = strmap_get(&t->vocab, a, na), ib = strmap_get(&t->vocab, b, nb);
        int32_t inew = strmap_get(&t->vocab, ab.p, ab.n);
        if (ia < 0 || ib < 0 || inew < 0) {
            rc = moe_fail(err, "%s: merges[%zu] (\"%.*s\" \"%.*s\"): %s not in the vocab", t->path,
                          idx, (int)(na > 40 ? 40 : na), a, (int)(nb > 40 ? 40 : nb), b,
                          ia < 0 ? "left part" : ib < 0 ? "right part" : "merged token");
            break;
        }
        if (pairmap_put(&t->merges, ia, ib, rank++, inew) != 0) {
            rc = moe_fail(err, "%s: out of memory", t->path);
            break;
        }
        idx++;
    }
    buf_free(&ab);
    return rc;
}

/* Added tokens, in the order HF matches them: the special ones first, then
 * the others (AddedVocabulary::refresh_added_tokens). */
static int load_added(moe_tokenizer *t, const cJSON *added, moe_err *err) {
    int n = cJSON_GetArraySize(added);
    t->added = calloc((size_t)n + 1, sizeof *t->added);
    if (!t->added) return moe_fail(err, "%s: out of memory", t->path);
    tok_buf nb = {0}, tmp = {0};
    tok_matcher mt = {0};
    int rc = 0;
    for (int pass = 1; pass >= 0 && rc == 0; pass--) {
        int i = -1;
        const cJSON *e;
        cJSON_ArrayForEach(e, added) {
            i++;
            const cJSON *c = field(e, "content");
            int special = flag(e, "special", 0);
            if (special != pass) continue;
            if (!cJSON_IsString(c)) {
                rc = moe_fail(err, "%s: added_tokens[%d]: no \"content\" string", t->path, i);
                break;
            }
            size_t len = strlen(c->valuestring);
            if (len == 0) continue; /* HF ignores empty tokens */
            if (!utf8_is_valid(c->valuestring, len)) {
                rc = moe_fail(err, "%s: added_tokens[%d]: content is not valid UTF-8", t->path, i);
                break;
            }
            tok_added *a = &t->added[t->n_added];
            get_id(field(e, "id"), &a->id);
            a->special = (uint8_t)special;
            a->normalized = (uint8_t)flag(e, "normalized", 1);
            a->lstrip = (uint8_t)flag(e, "lstrip", 0);
            a->rstrip = (uint8_t)flag(e, "rstrip", 0);
            a->single_word = (uint8_t)flag(e, "single_word", 0);
            if ((rc = pool_add(t, c->valuestring, len, &a->off, err)) != 0) break;
            a->len = (uint32_t)len;
            if (a->normalized) { /* matched against normalized text: normalize it too */
                if ((rc = norm_apply(t, &mt, c->valuestring, len, &nb, &tmp, err)) != 0) break;
                if ((rc = pool_add(t, nb.p ? nb.p : "", nb.n, &a->noff, err)) != 0) break;
                a->nlen = (uint32_t)nb.n;
            }
            if (special) t->tok_special[a->id] = 1;
            t->tok_added[a->id] = t->n_added++;
        }
    }
    buf_free(&nb);
    buf_free(&tmp);
    matcher_free(&mt);
    return rc;
}

/* The maps and tries, built once the string pool stops moving. */
static int build_lookups(moe_tokenizer *t, const cJSON *vocab, const cJSON *merges, moe_err *err) {
    if (strmap_init(&t->vocab, (size_t)cJSON_GetArraySize(vocab)) != 0 ||
        strmap_init(&t->added_map, (size_t)t->n_added) != 0 ||
        pairmap_init(&t->merges, (size_t)cJSON_GetArraySize(merges)) != 0)
        return moe_fail(err, "%s: out of memory", t->path);
    for (int32_t id = 0; id < t->n_ids; id++)
        if (t->tok_off[id] != UINT32_MAX &&
            strmap_put(&t->vocab, t->pool.p + t->tok_off[id], t->tok_len[id], id) != 0)
            return moe_fail(err, "%s: out of memory", t->path);
    for (int i = 0; i < t->n_added; i++) {
        const tok_added *a = &t->added[i];
        int rc = strmap_put(&t->added_map, t->pool.p + a->off, a->len, a->id);
        if (rc == 0)
            rc = a->normalized ? trie_add(&t->trie_norm, t->pool.p + a->noff, a->nlen, i)
                               : trie_add(&t->trie_raw, t->pool.p + a->off, a->len, i);
        if (rc != 0) return moe_fail(err, "%s: out of memory", t->path);
    }
    for (int b = 0; b < 256; b++) { /* HF spells them format!("<{:#04X}>") */
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        t->byte_id[b] = strmap_get(&t->vocab, name, 6);
    }
    return load_merges(t, merges, err);
}

/* For SentencePiece-style files the whole text reaches BPE as one word;
 * record which chars are ever adjacent inside a token so bpe.c can cut such
 * words where no merge reaches across. Not needed (and not built) when a
 * pre-tokenizer splits the text. */
int tok_build_char_pairs(moe_tokenizer *t, moe_err *err) {
    for (int i = 0; i < t->n_pre; i++)
        if (!(t->pre[i].kind == PRE_METASPACE && !t->pre[i].split)) return 0;
    if (pairmap_init(&t->char_pairs, (size_t)t->n_ids * 4) != 0)
        return moe_fail(err, "%s: out of memory", t->path);
    for (int32_t id = 0; id < t->n_ids; id++) {
        if (t->tok_off[id] == UINT32_MAX) continue;
        const char *s = t->pool.p + t->tok_off[id];
        uint32_t n = t->tok_len[id];
        int l;
        int32_t prev = -1;
        for (uint32_t k = 0; k < n; k += (uint32_t)l) {
            int32_t cp = utf8_decode(s + k, &l);
            if (prev >= 0 && pairmap_put(&t->char_pairs, prev, cp, 0, 0) != 0)
                return moe_fail(err, "%s: out of memory", t->path);
            prev = cp;
        }
    }
    t->split_words = 1;
    return 0;
}

/* ------------------------------------------------------------ BOS / EOS */

/* A tokenizer_config.json token entry: "tok", {"content": "tok"} or null.
 * Returns 1 and the id if it names a token, 0 if absent/unknown, -1 if null. */
static int config_token(const moe_tokenizer *t, const cJSON *cfg, const char *key, int32_t *id) {
    const cJSON *v = field(cfg, key);
    if (!v) return 0;
    if (cJSON_IsNull(v)) return -1;
    if (cJSON_IsObject(v)) v = field(v, "content");
    if (!cJSON_IsString(v)) return 0;
    *id = tok_lookup(t, v->valuestring, strlen(v->valuestring));
    return *id >= 0 ? 1 : 0;
}

static int32_t first_named(const moe_tokenizer *t, const char *const *names) {
    for (; *names; names++) {
        int32_t id = tok_lookup(t, *names, strlen(*names));
        if (id >= 0) return id;
    }
    return -1;
}

/* tokenizer_config.json first; else what add_special prepends/appends;
 * else the usual names. */
static void pick_bos_eos(moe_tokenizer *t, const cJSON *cfg) {
    static const char *const bos_names[] = {"<s>", "<|begin_of_text|>", "<|startoftext|>", "<bos>", NULL};
    static const char *const eos_names[] = {"</s>", "<|endoftext|>", "<|im_end|>", "<|end_of_text|>",
                                            "<eos>", "<|eot_id|>", NULL};
    int32_t id;
    int k = cfg ? config_token(t, cfg, "bos_token", &id) : 0;
    if (k != 0) t->bos_id = k > 0 ? id : -1;
    else if (t->n_prefix > 0) t->bos_id = t->prefix[0];
    else t->bos_id = first_named(t, bos_names);
    k = cfg ? config_token(t, cfg, "eos_token", &id) : 0;
    if (k != 0) t->eos_id = k > 0 ? id : -1;
    else if (t->n_suffix > 0) t->eos_id = t->suffix[t->n_suffix - 1];
    else t->eos_id = first_named(t, eos_names);
}

/* ------------------------------------------------------------- loading */

/* cJSON ends a decoded string at a \u0000 escape, so a vocab key "a\u0000b"
 * would be read as "a" and take over that token (a regex or added token would
 * be cut short the same way). The offset of the first JSON string holding
 * one (its opening quote) and its end (after the closing quote), or -1. */
static long json_nul_string(const char *s, size_t n, size_t *end) {
    long start = -1;
    int found = 0;
    for (size_t i = 0; i < n; i++) {
        if (start < 0) {
            if (s[i] == '"') start = (long)i;
        } else if (s[i] == '\\') {
            if (i + 5 < n && memcmp(s + i + 1, "u0000", 5) == 0) found = 1;
            i++; /* the escaped character */
        } else if (s[i] == '"') {
            if (found) {
                *end = i + 1;
                return start;
            }
            start = -1;
        }
    }
    *end = n;
    return found ? start : -1;
}

static int parse_json_file(const char *path, cJSON **out, moe_err *err) {
    char *buf;
    size_t len;
    *out = NULL;
    if (read_file(path, TOK_MAX_JSON, &buf, &len, err) != 0) return -1;
    if (len >= 4 && memcmp(buf, "GGUF", 4) == 0) {
        free(buf);
        return moe_fail(err, "%s: a GGUF file, not JSON", path);
    }
    size_t nul_end;
    long nul = json_nul_string(buf, len, &nul_end);
    if (nul >= 0) {
        int shown = (int)(nul_end - (size_t)nul > 80 ? 80 : nul_end - (size_t)nul);
        moe_fail(err, "%s: the string at byte %ld (%.*s%s) holds \\u0000, which is unsupported "
                 "(it would be cut there)", path, nul, shown, buf + nul,
                 nul_end - (size_t)nul > 80 ? "..." : "");
        free(buf);
        return -1;
    }
    const char *end = NULL;
    *out = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
    if (!*out) {
        size_t at = end && end >= buf && end <= buf + len ? (size_t)(end - buf) : 0;
        free(buf);
        return moe_fail(err, "%s: bad JSON near byte %zu", path, at);
    }
    free(buf);
    if (!cJSON_IsObject(*out)) {
        cJSON_Delete(*out);
        *out = NULL;
        return moe_fail(err, "%s: not a JSON object", path);
    }
    return 0;
}

static int load_json(moe_tokenizer *t, const cJSON *root, const cJSON *cfg, moe_err *err) {
    const cJSON *model = field(root, "model");
    if (check_model(t, model, err) != 0) return -1;
    const cJSON *vocab = field(model, "vocab"), *merges = field(model, "merges");
    const cJSON *added = field(root, "added_tokens");
    if (added && !cJSON_IsNull(added) && !cJSON_IsArray(added))
        return moe_fail(err, "%s: added_tokens is not a list", t->path);
    if (!cJSON_IsArray(added)) added = NULL;
    if (norm_parse(t, field(root, "normalizer"), err) != 0 ||
        pre_parse(t, field(root, "pre_tokenizer"), err) != 0 ||
        dec_parse(t, field(root, "decoder"), err) != 0)
        return moe_fail_prefix(err, "%s", t->path);
    if (scan_ids(t, vocab, added, err) != 0 || load_vocab(t, vocab, err) != 0) return -1;
    if (added && load_added(t, added, err) != 0) return -1;
    if (build_lookups(t, vocab, merges, err) != 0 || tok_build_char_pairs(t, err) != 0) return -1;
    const cJSON *unk = field(model, "unk_token");
    t->unk_id = -1;
    if (cJSON_IsString(unk)) t->unk_id = strmap_get(&t->vocab, unk->valuestring, strlen(unk->valuestring));
    if (cJSON_IsString(unk) && t->unk_id < 0) t->unk_id = -2; /* HF fails only if it is needed */
    if (post_parse(t, field(root, "post_processor"), err) != 0) return moe_fail_prefix(err, "%s", t->path);
    pick_bos_eos(t, cfg);
    return 0;
}

int moe_tokenizer_load(moe_tokenizer **out, const char *path, moe_err *err) {
    if (!out || !path) return moe_fail(err, "moe_tokenizer_load: NULL argument");
    *out = NULL;
    char file[4096], cfg_file[4096];
    struct stat st;
    int is_dir = stat(path, &st) == 0 && S_ISDIR(st.st_mode);
    cfg_file[0] = 0;
    if (is_dir) {
        snprintf(file, sizeof file, "%s/tokenizer.json", path);
        snprintf(cfg_file, sizeof cfg_file, "%s/tokenizer_config.json", path);
        if (stat(file, &st) != 0)
            return moe_fail(err, "%s: no tokenizer.json (only Hugging Face tokenizer.json is supported)", path);
        if (stat(cfg_file, &st) != 0) cfg_file[0] = 0;
    } else if (tok_is_gguf(path)) { /* a .gguf model: its tokenizer.ggml.* metadata */
        return tok_gguf_load(out, path, err);
    } else {
        snprintf(file, sizeof file, "%s", path);
    }
    moe_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return moe_fail(err, "%s: out of memory", path);
    snprintf(t->path, sizeof t->path, "%.255s", file);
    t->bos_id = t->eos_id = t->unk_id = -1;
    cJSON *root = NULL, *cfg = NULL;
    int rc = parse_json_file(file, &root, err);
    if (rc == 0 && cfg_file[0]) rc = parse_json_file(cfg_file, &cfg, err);
    if (rc == 0) rc = load_json(t, root, cfg, err);
    cJSON_Delete(root);
    cJSON_Delete(cfg);
    if (rc != 0) {
        moe_tokenizer_free(t);
        return -1;
    }
    *out = t;
    return 0;
}

void moe_tokenizer_free(moe_tokenizer *t) {
    if (!t) return;
    norm_free(t);
    pre_free(t);
    dec_free(t);
    buf_free(&t->pool);
    free(t->tok_off);
    free(t->tok_len);
    free(t->tok_special);
    free(t->tok_added);
    strmap_free(&t->vocab);
    strmap_free(&t->added_map);
    pairmap_free(&t->merges);
    pairmap_free(&t->char_pairs);
    free(t->added);
    trie_free(&t->trie_raw);
    trie_free(&t->trie_norm);
    free(t->prefix);
    free(t->suffix);
    free(t);
}

int moe_tokenizer_vocab(const moe_tokenizer *t) { return t ? t->n_ids : 0; }
int moe_tokenizer_bos(const moe_tokenizer *t) { return t ? t->bos_id : -1; }
int moe_tokenizer_eos(const moe_tokenizer *t) { return t ? t->eos_id : -1; }
