/*
 * fuzz_safetensors.c - libFuzzer target for the safetensors reader
 * (src/formats/safetensors.c): header length, JSON, dtypes, shapes, offsets.
 * The input is a .safetensors file. An accepted file must hold together:
 * every tensor's bytes lie in the mapping (both ends are touched, so ASan
 * sees a read past the file), its size is shape x dtype, and every name is
 * found by st_find. A refused one gets a message.
 */
#include "formats/safetensors.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write("in.safetensors", data, size);
    st_store s;
    moe_err err = {{0}};
    if (st_open_file(&s, path, &err) != 0) {
        fuzz_rejected("st_open_file", err.msg);
        return 0;
    }
    volatile unsigned sink = 0;
    for (int i = 0; i < s.n_tensors; i++) {
        const st_tensor *t = &s.tensors[i];
        if (st_find(&s, t->name) != t) fuzz_die(t->name, "st_find does not find its own tensor");
        if (t->n_dims < 0 || t->n_dims > ST_MAX_DIMS) fuzz_die(t->name, "dims out of range");
        int64_t n = 1;
        for (int d = 0; d < t->n_dims; d++) n *= t->shape[d];
        if (n != t->n_elems || (size_t)n * (size_t)dtype_size(t->type) != t->nbytes)
            fuzz_die(t->name, "size is not shape x dtype");
        if (t->nbytes) {
            const unsigned char *p = t->data;
            sink += p[0] + p[t->nbytes - 1];
        }
    }
    (void)sink;
    st_close(&s);
    return 0;
}
