/*
 * tokenizer_gguf_pre.c - what a GGUF's tokenizer.ggml.pre name stands for:
 * the normalizer, pre-tokenizer and ignore_merges of the Hugging Face
 * tokenizer.json of that model family, so that a byte-level ("gpt2") GGUF
 * tokenizes as the family's tokenizer.json does.
 *
 * Names are llama.cpp's (src/llama-vocab.cpp maps each to a
 * LLAMA_VOCAB_PRE_TYPE_*). The regexes are those of the families'
 * tokenizer.json files, in Oniguruma syntax as HF's `tokenizers` reads them
 * (regex.c makes PCRE2 read them the same way); where llama.cpp rewrote a
 * regex for its own engine (the (?i:...) contractions, the o200k letter
 * classes), the tokenizer.json original is kept here. HF pre-tokenizers other
 * than Split are written as the Split they equal:
 *   Digits(individual_digits)  Split(\p{N} / \p{N}+): Rust's char::is_numeric
 *                              is the N categories
 *   Punctuation(Contiguous)    Split([\p{P}$+<=>^`|~]+): is_punc is the P
 *                              categories plus ASCII punctuation, and a
 *                              greedy run is one contiguous group
 * A step may be ByteLevel with the GPT-2 regex in the middle of the sequence
 * (Falcon splits digits after it, on the byte-mapped text): PRE_BYTELEVEL.
 */
#include "tokenizer/tok_internal.h"

#include <cjson/cJSON.h>
#include <string.h>

/* Marks the place of ByteLevel(use_regex=true) in a step list; never a regex. */
const char TOK_GGUF_BYTELEVEL_REGEX[] = "\x01" "ByteLevel";
#define BL TOK_GGUF_BYTELEVEL_REGEX

/* Llama 3 / cl100k (GPT-4); GLM-4 keeps it. */
static const char LLAMA3_SPLIT[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}"
    "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
/* Qwen1.5/2/2.5/3: single digits. */
static const char QWEN2_SPLIT[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}"
    "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
/* Qwen3.5: marks join the letters before them and leave the punctuation. */
static const char QWEN35_SPLIT[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}"
    "| ?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
/* o200k (GPT-4o, gpt-oss, Llama 4): case-aware words, contractions as suffix, "/" in the
 * newline tail. */
static const char O200K_SPLIT[] =
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+"
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    "|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*"
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    "|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
/* Kimi K2 (tokenization_kimi.py's pat_str): o200k with Han runs first and Han
 * taken out of the letter classes. The original writes that as the class
 * intersection [\p{Lu}...\p{M}&&[^\p{Han}]], which PCRE2 10.42 lacks: the
 * negative lookahead before each class member is the same set. Its digits,
 * punctuation and whitespace are cl100k's (no "/" in the newline tail). */
#define K2_UPPER "(?:(?!\\p{Han})[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}])"
#define K2_LOWER "(?:(?!\\p{Han})[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}])"
static const char KIMI_K2_SPLIT[] =
    "[\\p{Han}]+"
    "|[^\\r\\n\\p{L}\\p{N}]?" K2_UPPER "*" K2_LOWER "+(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    "|[^\\r\\n\\p{L}\\p{N}]?" K2_UPPER "+" K2_LOWER "*(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    "|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
/* DeepSeek's CJK ranges (LLM, Coder): 一-龥, ࠀ-一 (sic), 가-퟿. */
#define DS_CJK "[\u4E00-\u9FA5\u0800-\u4E00\uAC00-\uD7FF]+"

static const tok_gguf_pre PRE_TABLE[] = {
    /* GPT-2 (and files written before tokenizer.ggml.pre existed) */
    {{"default", "gpt-2", NULL}, 0, {NULL}, 0, 0},
    /* GPT-NeoX-20B's tokenizer.json, which OLMo/OLMoE and MPT reuse */
    {{"olmo", "mpt", NULL}, 1, {NULL}, 0, 0},
    /* Llama 3 */
    {{"llama3", "llama-v3", "llama-bpe", NULL}, 0, {LLAMA3_SPLIT, NULL}, 1, 1},
    /* Qwen1.5/2/2.5/3 (and their MoE models), DeepSeek-R1 distilled on Qwen */
    {{"qwen2", "deepseek-r1-qwen", NULL}, 1, {QWEN2_SPLIT, NULL}, 0, 0},
    /* Qwen3.5 (its MoE models too) */
    {{"qwen35", NULL}, 1, {QWEN35_SPLIT, NULL}, 0, 0},
    /* DeepSeek LLM / DeepSeekMoE / DeepSeek-V2 (non-ASCII as \u escapes, so no
     * editor can normalize a range end: U+1F7D is not in NFC); Digits(false) */
    {{"deepseek-llm", NULL}, 0,
     {"[\r\n]",
      "\\s?[A-Za-z\u00B5\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u01BA\u01BC-\u01BF\u01C4-\u0293\u0295"
      "-\u02AF\u0370-\u0373\u0376\u0377\u037B-\u037D\u037F\u0386\u0388-\u038A\u038C\u038E-"
      "\u03A1\u03A3-\u03F5\u03F7-\u0481\u048A-\u052F\u0531-\u0556\u10A0-\u10C5\u13A0-\u13F5"
      "\u13F8-\u13FD\u1C90-\u1CBA\u1CBD-\u1CBF\u1D00-\u1D2B\u1D6B-\u1D77\u1D79-\u1D9A\u1E00-"
      "\u1F15\u1F18-\u1F1D\u1F20-\u1F45\u1F48-\u1F4D\u1F50-\u1F57\u1F59\u1F5B\u1F5D\u1F5F-"
      "\u1F7D\u1F80-\u1FB4\u1FB6-\u1FBC\u1FBE\u1FC2-\u1FC4\u1FC6-\u1FCC\u1FD0-\u1FD3\u1FD6-"
      "\u1FDB\u1FE0-\u1FEC\u1FF2-\u1FF4\u1FF6-\u1FFC\u2102\u2107\u210A-\u2113\u2115\u2119-"
      "\u211D\u2124\u2126\u2128\u212A-\u212D\u212F-\u2134\u2139\u213C-\u213F\u2145-\u2149\u214E"
      "\u2183\u2184\u2C00-\u2C7B\u2C7E-\u2CE4\u2CEB-\u2CEE\u2CF2\u2CF3\uA640-\uA66D\uA680-"
      "\uA69B\uA722-\uA76F\uA771-\uA787\uA78B-\uA78E\uAB70-\uABBF\uFB00-\uFB06\uFB13-\uFB17"
      "\uFF21-\uFF3A\uFF41-\uFF5A\U00010400-\U0001044F\U000104B0-\U000104D3\U000104D8-"
      "\U000104FB\U00010C80-\U00010CB2\U00010CC0-\U00010CF2\U000118A0-\U000118DF\U0001E900-"
      "\U0001E943]+",
      "\\s?[!-/:-~\uFF01-\uFF0F\uFF1A-\uFF5E\u2018-\u201F\u3000-\u3002]+",
      "\\s+$",
      DS_CJK,
      "\\p{N}+",
      NULL},
     0, 0},
    /* DeepSeek Coder (v1): Digits(individual_digits=true) */
    {{"deepseek-coder", NULL}, 0,
     {"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", DS_CJK, "\\p{N}", NULL}, 0, 0},
    /* DeepSeek-V3 / R1 */
    {{"deepseek-v3", NULL}, 0,
     {"\\p{N}{1,3}",
      "[\u4E00-\u9FA5\u3040-\u309F\u30A0-\u30FF]+",
      "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}"
      "\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
      NULL},
     0, 0},
    /* Falcon: Punctuation(Contiguous), ByteLevel(use_regex), Digits(false), 3-digit groups */
    {{"falcon", NULL}, 0, {"[\\p{P}$+<=>^`|~]+", BL, "\\p{N}+", "[0-9][0-9][0-9]", NULL}, 0, 0},
    /* StarCoder: Digits(individual_digits=true), ByteLevel(use_regex) */
    {{"starcoder", NULL}, 0, {"\\p{N}", BL, NULL}, 0, 0},
    /* o200k, converted from tiktoken by transformers' TikTokenConverter (gpt-oss,
     * Llama 4): it sets ignore_merges, as tiktoken takes a piece that is a token whole */
    {{"gpt-4o", "llama4", NULL}, 0, {O200K_SPLIT, NULL}, 1, 0},
    /* GLM-4 / GLM-4.5 (MoE) */
    {{"glm4", "chatglm-bpe", NULL}, 0, {LLAMA3_SPLIT, NULL}, 0, 0},
    /* Kimi K2: tiktoken, so whole pieces first as well */
    {{"kimi-k2", NULL}, 0, {KIMI_K2_SPLIT, NULL}, 1, 0},
};

const tok_gguf_pre *tok_gguf_pre_find(const char *name) {
    for (size_t i = 0; i < sizeof PRE_TABLE / sizeof PRE_TABLE[0]; i++)
        for (const char *const *n = PRE_TABLE[i].names; *n; n++)
            if (strcmp(*n, name) == 0) return &PRE_TABLE[i];
    return NULL;
}

size_t tok_gguf_pre_names(char *out, size_t cap) {
    size_t n = 0;
    for (size_t i = 0; i < sizeof PRE_TABLE / sizeof PRE_TABLE[0]; i++)
        for (const char *const *nm = PRE_TABLE[i].names; *nm; nm++) {
            size_t l = strlen(*nm) + (n ? 2 : 0);
            if (n + l + 1 > cap) return n;
            memcpy(out + n, n ? ", " : "", n ? 2 : 0);
            memcpy(out + n + (n ? 2 : 0), *nm, strlen(*nm) + 1);
            n += l;
        }
    return n;
}

int tok_gguf_pre_layout(const char *name, int *nfc, const char *const **splits, int *ignore_merges) {
    const tok_gguf_pre *p = tok_gguf_pre_find(name);
    if (!p) return -1;
    *nfc = p->nfc;
    *splits = p->splits;
    *ignore_merges = p->ignore_merges;
    return 0;
}

/* A new object appended to list (owned by it from the start), or NULL. */
static cJSON *add_obj(cJSON *list, const char *type) {
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddItemToArray(list, o)) {
        cJSON_Delete(o);
        return NULL;
    }
    return cJSON_AddStringToObject(o, "type", type) ? o : NULL;
}

static int add_bytelevel(cJSON *list, int use_regex) {
    cJSON *bl = add_obj(list, "ByteLevel");
    return bl && cJSON_AddFalseToObject(bl, "add_prefix_space") &&
                   cJSON_AddFalseToObject(bl, "trim_offsets") &&
                   cJSON_AddBoolToObject(bl, "use_regex", use_regex)
               ? 0 : -1;
}

cJSON *tok_gguf_pre_json(const char *const *splits) {
    cJSON *seq = cJSON_CreateObject();
    cJSON *list = seq ? cJSON_AddArrayToObject(seq, "pretokenizers") : NULL;
    int ok = list && cJSON_AddStringToObject(seq, "type", "Sequence");
    int has_bl = 0;
    for (int i = 0; ok && splits[i]; i++) {
        if (splits[i] == TOK_GGUF_BYTELEVEL_REGEX) {
            ok = add_bytelevel(list, 1) == 0;
            has_bl = 1;
            continue;
        }
        cJSON *s = add_obj(list, "Split");
        cJSON *pat = s ? cJSON_AddObjectToObject(s, "pattern") : NULL;
        ok = pat && cJSON_AddStringToObject(pat, "Regex", splits[i]) &&
             cJSON_AddStringToObject(s, "behavior", "Isolated") && cJSON_AddFalseToObject(s, "invert");
    }
    /* no steps: ByteLevel splits with its GPT-2 regex; else it only maps bytes */
    if (ok && !has_bl) ok = add_bytelevel(list, splits[0] == NULL) == 0;
    if (!ok) {
        cJSON_Delete(seq);
        return NULL;
    }
    return seq;
}

#undef BL
