/*
 * fuzz_tokenizer_json.c - libFuzzer target for tokenizer.json loading
 * (src/tokenizer/tokenizer_json.c and the normalizer, pre-tokenizer,
 * post-processor and decoder parsers it calls). The input is the file. An
 * accepted tokenizer must encode a few fixed texts and the input's own first
 * bytes to ids inside its vocabulary, and decode them again.
 */
#include "fuzz_util.h"
#include "moe.h"

static const char *const texts[] = {
    "Hello world! It's 2024, isn't it?",
    "  leading spaces\tand\ttabs\n\nnew lines",
    "caf\xc3\xa9 na\xc3\xafve \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\x98\x80",
    "<s> </s> <|endoftext|> <unk> [CLS]",
    "\xff\xfe invalid \xc3 utf-8",
};

void fuzz_tokenizer_use(const moe_tokenizer *t, const uint8_t *data, size_t size);
void fuzz_tokenizer_use(const moe_tokenizer *t, const uint8_t *data, size_t size) {
    int V = moe_tokenizer_vocab(t);
    for (int k = 0; k < (int)(sizeof texts / sizeof *texts) + 1; k++) {
        const char *s = k < 5 ? texts[k] : (const char *)data;
        size_t n = k < 5 ? strlen(s) : (size < 256 ? size : 256);
        for (int special = 0; special < 2; special++) {
            int32_t *ids = NULL;
            int n_ids = 0;
            moe_err err = {{0}};
            if (moe_tokenize(t, s, n, special, &ids, &n_ids, &err) != 0) {
                fuzz_rejected("moe_tokenize", err.msg);
                continue;
            }
            for (int i = 0; i < n_ids; i++)
                if (ids[i] < 0 || ids[i] >= V) fuzz_die("moe_tokenize", "an id outside the vocabulary");
            char *text = NULL;
            size_t len = 0;
            if (moe_detokenize(t, ids, n_ids, special, &text, &len, &err) != 0)
                fuzz_rejected("moe_detokenize", err.msg);
            else if (text[len] != 0)
                fuzz_die("moe_detokenize", "text not NUL-terminated");
            free(text);
            free(ids);
        }
    }
}

#ifndef FUZZ_TOKENIZER_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* a GGUF input would be read as GGUF (fuzz_tokenizer_gguf covers that) */
    if (size >= 4 && memcmp(data, "GGUF", 4) == 0) return 0;
    const char *path = fuzz_write("tokenizer.json", data, size);
    moe_tokenizer *t = NULL;
    moe_err err = {{0}};
    if (moe_tokenizer_load(&t, path, &err) != 0) {
        fuzz_rejected("moe_tokenizer_load", err.msg);
        return 0;
    }
    fuzz_tokenizer_use(t, data, size);
    moe_tokenizer_free(t);
    return 0;
}
#endif
