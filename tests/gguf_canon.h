/*
 * gguf_canon.h - a canonical text dump of an open GGUF file, written the same
 * way by tools/gguf_crosscheck.py from the Python gguf package's reader, so
 * the two readers can be compared line for line (tests/test_gguf.c checks a
 * Python-written fixture against its committed dump; tools/gguf_dump.c
 * prints it for any file). Floats are printed as their bits, arrays and
 * tensor data as an FNV-1a 64 hash, so the text is exact and short:
 *
 *   version 3
 *   alignment 32
 *   kv general.architecture str "llama"
 *   kv llama.rope.freq_base f32 0x461c4000
 *   kv tokenizer.ggml.tokens arr[str] n=32000 fnv=0123456789abcdef
 *   tensor blk.0.attn_q.weight Q4_K ne=256,8 offset=0 nbytes=1152 fnv=...
 *
 * Pairs in file order, tensors by name. A string array hashes each element
 * as its u64 length then its bytes; a scalar array hashes its raw bytes.
 */
#ifndef MOE_TESTS_GGUF_CANON_H
#define MOE_TESTS_GGUF_CANON_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "formats/gguf.h"

static inline uint64_t canon_fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}
#define CANON_FNV0 0xcbf29ce484222325ULL

/* A string with bytes outside printable ASCII, '"' and '\\' as \xNN. */
static inline void canon_str(FILE *f, const char *s, uint64_t len) {
    fputc('"', f);
    for (uint64_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c > 0x7e || c == '"' || c == '\\') fprintf(f, "\\x%02x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

static inline void canon_scalar(FILE *f, int vt, const void *p) {
    switch (vt) {
    case GGUF_VT_U8: { uint8_t v; memcpy(&v, p, 1); fprintf(f, "%u", v); break; }
    case GGUF_VT_I8: { int8_t v; memcpy(&v, p, 1); fprintf(f, "%d", v); break; }
    case GGUF_VT_U16: { uint16_t v; memcpy(&v, p, 2); fprintf(f, "%u", v); break; }
    case GGUF_VT_I16: { int16_t v; memcpy(&v, p, 2); fprintf(f, "%d", v); break; }
    case GGUF_VT_U32: { uint32_t v; memcpy(&v, p, 4); fprintf(f, "%u", v); break; }
    case GGUF_VT_I32: { int32_t v; memcpy(&v, p, 4); fprintf(f, "%d", v); break; }
    case GGUF_VT_U64: { uint64_t v; memcpy(&v, p, 8); fprintf(f, "%llu", (unsigned long long)v); break; }
    case GGUF_VT_I64: { int64_t v; memcpy(&v, p, 8); fprintf(f, "%lld", (long long)v); break; }
    case GGUF_VT_F32: { uint32_t v; memcpy(&v, p, 4); fprintf(f, "0x%08x", v); break; }
    case GGUF_VT_F64: { uint64_t v; memcpy(&v, p, 8); fprintf(f, "0x%016llx", (unsigned long long)v); break; }
    case GGUF_VT_BOOL: { uint8_t v; memcpy(&v, p, 1); fprintf(f, "%s", v ? "true" : "false"); break; }
    default: fprintf(f, "?");
    }
}

static inline void canon_dump(const gguf_file *g, FILE *f) {
    fprintf(f, "version %u\nalignment %u\n", g->version, g->alignment);
    for (int i = 0; i < g->n_kv; i++) {
        const gguf_kv *kv = &g->kvs[i];
        fprintf(f, "kv %s ", kv->key);
        if (kv->type == GGUF_VT_STR) {
            fprintf(f, "str ");
            canon_str(f, kv->strs[0], kv->lens[0]);
        } else if (kv->type == GGUF_VT_ARR) {
            uint64_t h = CANON_FNV0;
            if (kv->arr_type == GGUF_VT_STR) {
                for (uint64_t j = 0; j < kv->n; j++) {
                    h = canon_fnv(h, &kv->lens[j], 8);
                    h = canon_fnv(h, kv->strs[j], (size_t)kv->lens[j]);
                }
            } else {
                h = canon_fnv(h, kv->raw, (size_t)kv->n * (size_t)gguf_vtype_size(kv->arr_type));
            }
            fprintf(f, "arr[%s] n=%llu fnv=%016llx", gguf_vtype_name(kv->arr_type),
                    (unsigned long long)kv->n, (unsigned long long)h);
        } else {
            fprintf(f, "%s ", gguf_vtype_name(kv->type));
            canon_scalar(f, kv->type, kv->raw);
        }
        fputc('\n', f);
    }
    for (int i = 0; i < g->n_tensors; i++) {
        const gguf_tensor *t = &g->tensors[i];
        fprintf(f, "tensor %s %s ne=", t->name, gguf_type_name(t->type));
        for (int d = 0; d < t->n_dims; d++)
            fprintf(f, d ? ",%lld" : "%lld", (long long)t->ne[d]);
        fprintf(f, " offset=%llu nbytes=%zu fnv=%016llx\n", (unsigned long long)t->offset,
                t->nbytes, (unsigned long long)canon_fnv(CANON_FNV0, t->data, t->nbytes));
    }
}

#endif
