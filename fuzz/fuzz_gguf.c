/*
 * fuzz_gguf.c - libFuzzer target for the GGUF reader (src/formats/gguf.c),
 * and, for inputs it accepts, the writer: `make fuzz-gguf FUZZ_SECONDS=60`.
 *
 * Each input is parsed from an exactly-sized heap copy, so ASan catches any
 * read past the end. An accepted file must hold together: every tensor's
 * bytes are touched, every value read through the getters, every lookup
 * finds its own entry; then it is written back with gguf_write and re-read,
 * and the two must have the same canonical dump (tests/gguf_canon.h).
 * Anything else the reader does must be a clean -1 with a message.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "formats/gguf.h"
#include "gguf_canon.h"

static void die(const char *what, const char *msg) {
    fprintf(stderr, "fuzz_gguf: %s: %s\n", what, msg);
    abort();
}

static char *dump_str(const gguf_file *g, size_t *len) {
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    if (!f) die("open_memstream", "failed");
    canon_dump(g, f);
    fclose(f);
    return buf;
}

/* Every pair through the public getters. */
static void read_all(const gguf_file *g) {
    volatile uint64_t sink = 0;
    for (int i = 0; i < g->n_kv; i++) {
        const gguf_kv *kv = &g->kvs[i];
        if (gguf_find_kv(g, kv->key) != kv) die(kv->key, "lookup does not find its own key");
        moe_err err = {{0}};
        int64_t iv;
        double fv;
        if (kv->type == GGUF_VT_STR) {
            const char *s;
            uint64_t len;
            if (gguf_get_str(g, kv->key, &s, &len, &err)) die(kv->key, err.msg);
            if (len && s[len - 1] == 0x7f) sink++;
            if (s[len] != 0) die(kv->key, "string not NUL-terminated");
        } else if (kv->type == GGUF_VT_ARR) {
            gguf_arr a;
            if (gguf_get_arr(g, kv->key, kv->arr_type, &a, &err)) die(kv->key, err.msg);
            if (a.type != GGUF_VT_STR) { /* an aligned copy of the elements */
                void *buf = malloc((size_t)a.n * (size_t)gguf_vtype_size(a.type) + 1);
                if (!buf || gguf_arr_copy(&a, buf)) die(kv->key, "gguf_arr_copy failed");
                free(buf);
            }
            for (uint64_t j = 0; j < a.n; j++) {
                if (a.type == GGUF_VT_STR) sink += (uint64_t)gguf_arr_str(&a, j)[0] + a.lens[j];
                else if (a.type == GGUF_VT_F32 || a.type == GGUF_VT_F64)
                    sink += gguf_arr_float(&a, j) > 0;
                else sink += (uint64_t)gguf_arr_int(&a, j);
            }
        } else if (kv->type == GGUF_VT_F32 || kv->type == GGUF_VT_F64) {
            if (gguf_get_float(g, kv->key, &fv, &err)) die(kv->key, err.msg);
            sink += fv > 0;
        } else if (kv->type != GGUF_VT_BOOL) {
            int rc = gguf_get_int(g, kv->key, &iv, &err);
            if (rc && kv->type != GGUF_VT_U64) die(kv->key, err.msg);
            sink += (uint64_t)iv * (rc == 0);
        }
        /* the strict getters: the value when the type matches, else a message */
        uint32_t u32;
        bool b;
        if (gguf_get_u32(g, kv->key, &u32, &err) != (kv->type == GGUF_VT_U32 ? 0 : -1) ||
            gguf_get_bool(g, kv->key, &b, &err) != (kv->type == GGUF_VT_BOOL ? 0 : -1))
            die(kv->key, "typed getter disagrees with the type");
    }
    for (int i = 0; i < g->n_tensors; i++) {
        const gguf_tensor *t = &g->tensors[i];
        if (gguf_find(g, t->name) != t) die(t->name, "lookup does not find its own tensor");
        const unsigned char *p = t->data;
        sink += p[0] + p[t->nbytes - 1]; /* both ends inside the input (ASan) */
    }
    (void)sink;
}

/* Write g back out and read it again: the same dump. */
static void round_trip(const gguf_file *g) {
    static char path[256];
    if (!path[0]) {
        const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(path, sizeof path, "%s/fuzz_gguf.%d.gguf", dir, (int)getpid());
    }
    gguf_wkv *kv = calloc((size_t)g->n_kv + 1, sizeof *kv);
    gguf_wtensor *t = calloc((size_t)g->n_tensors + 1, sizeof *t);
    for (int i = 0; i < g->n_kv; i++) {
        const gguf_kv *s = &g->kvs[i];
        gguf_wkv *d = &kv[i];
        d->key = s->key;
        d->type = s->type;
        d->arr_type = s->arr_type;
        d->n = s->n;
        if (s->type == GGUF_VT_STR) d->str = s->strs[0], d->lens = s->lens;
        else if (s->type == GGUF_VT_ARR && s->arr_type == GGUF_VT_STR) d->strs = s->strs, d->lens = s->lens;
        else if (s->type == GGUF_VT_ARR) d->arr = s->raw;
        else memcpy(&d->v, s->raw, (size_t)gguf_vtype_size(s->type));
    }
    /* the writer packs tensors in the order given: use the file's data order */
    for (int i = 0; i < g->n_tensors; i++) {
        const gguf_tensor *s = &g->tensors[i];
        t[i] = (gguf_wtensor){.name = s->name, .type = s->type, .n_dims = s->n_dims, .data = s->data};
        memcpy(t[i].ne, s->ne, sizeof t[i].ne);
    }
    moe_err err = {{0}};
    int long_name = 0;
    for (int i = 0; i < g->n_tensors; i++) long_name |= strlen(t[i].name) > GGUF_NAME_MAX;
    if (gguf_write(path, kv, g->n_kv, t, g->n_tensors, &err)) {
        if (!long_name) die("write back", err.msg);
    } else {
        gguf_file h;
        if (gguf_open(&h, path, &err)) die("re-read", err.msg);
        size_t la, lb;
        char *a = dump_str(g, &la), *b = dump_str(&h, &lb);
        /* The pairs must match from the alignment line on (the version may go
         * from 2 to 3); tensor offsets may change (the writer packs them), so
         * the tensors are compared below by their bytes. */
        const char *ka = strstr(a, "\nalignment"), *kb = strstr(b, "\nalignment");
        const char *ea = strstr(a, "\ntensor "), *eb = strstr(b, "\ntensor ");
        size_t na = (size_t)((ea ? ea : a + la) - ka), nb = (size_t)((eb ? eb : b + lb) - kb);
        if (!ka || !kb || na != nb || memcmp(ka, kb, na)) die("round trip", "metadata differs");
        if (h.n_kv != g->n_kv || h.n_tensors != g->n_tensors) die("round trip", "counts differ");
        for (int i = 0; i < h.n_tensors; i++)
            if (h.tensors[i].nbytes != g->tensors[i].nbytes ||
                memcmp(h.tensors[i].data, g->tensors[i].data, h.tensors[i].nbytes))
                die("round trip", h.tensors[i].name);
        free(a);
        free(b);
        gguf_close(&h);
        unlink(path);
    }
    free(kv);
    free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    unsigned char *copy = malloc(size ? size : 1);
    if (size) memcpy(copy, data, size);
    gguf_file g;
    moe_err err = {{0}};
    if (gguf_open_mem(&g, copy, size, "fuzz", &err) == 0) {
        read_all(&g);
        round_trip(&g);
        gguf_close(&g);
    } else if (!err.msg[0]) {
        die("reject", "error without a message");
    }
    free(copy);
    return 0;
}
