/*
 * fuzz_tokenizer_gguf.c - libFuzzer target for the tokenizer a GGUF file's
 * tokenizer.ggml.* metadata describes (src/tokenizer/tokenizer_gguf*.c).
 * The input is the .gguf file, loaded through moe_tokenizer_load as `moe`
 * does for a GGUF model. An accepted tokenizer is used as in
 * fuzz_tokenizer_json.c: fixed texts and the input's first bytes encode to
 * ids inside the vocabulary and decode again.
 */
#define FUZZ_TOKENIZER_NO_MAIN
#include "fuzz_tokenizer_json.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 4 || memcmp(data, "GGUF", 4) != 0) return 0; /* the JSON path otherwise */
    const char *path = fuzz_write("tokenizer.gguf", data, size);
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
