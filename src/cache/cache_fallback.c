/*
 * cache_fallback.c - the resident low-precision copy of every routed expert
 * (moe_load_opts.fallback): built once at load, inside the budget; an
 * acquire whose expert is not in a READY slot hands it out instead of
 * waiting for the read (cache.c), so decode never waits on the disk, at the
 * cost of exactness.
 *
 * The copy is what `moe quantize` writes for the experts with that type:
 * each matrix is converted by the same routine (qz_convert_rows: rows
 * widened to f32, then the type's reference quantizer; a plain copy where
 * the stored type is the type), and a matrix whose rows do not fit the
 * type's blocks takes the same substitute (qz_fallback: Q2_K and Q3_K
 * Q4_0, Q4_K Q5_0, ...). So a model run with every expert from the copy
 * computes what the file `moe quantize` writes with those expert types
 * computes (tests/test_cache_fallback.c).
 *
 * Building reads each expert once from the file into a slot of the pool
 * (direct I/O, as the cache reads: the file's pages never enter the page
 * cache) and converts its three matrices from there, rows in parallel.
 */
#include "cache/cache.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "base/err.h"
#include "base/numa.h"
#include "formats/gguf.h"
#include "kernels/quant.h"
#include "model/model.h"
#include "model/quantize.h"
#include "model/quantize_impl.h"

#define FB_ALIGN 64 /* each matrix of the copy starts on a cache line */

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static const mat *expert_mats(const moe_cache *c, const cache_expert *x, int i) {
    const ffn_w *f = &c->m->layers[x->layer].experts[x->expert];
    return i == 0 ? &f->gate : i == 1 ? &f->up : &f->down;
}

int64_t cache_fallback_plan(moe_cache *c, const moe_load_opts *o, moe_err *err) {
    c->fb_type = 0;
    if (!o->fallback) return 0;
    int t = o->fallback;
    const qtype_traits *q = gguf_type_block(t) > 1 ? quant_traits(t) : NULL;
    if (!q || !q->quantize) {
        const char *name = gguf_type_name(t);
        return moe_fail(err, "expert fallback: type %s (%d) is not a quantized type that can be "
                        "written (q2_k, q3_k, q4_k, q5_k, q6_k, q4_0, q4_1, q5_0, q5_1, q8_0, "
                        "iq4_nl, iq4_xs, mxfp4)", name ? name : "?", t);
    }
    int64_t at = 0;
    for (int g = 0; g < c->n_ex; g++) {
        cache_expert *x = &c->ex[g];
        for (int i = 0; i < 3; i++) {
            const mat *w = expert_mats(c, x, i);
            int ti = qz_fallback(t, w->cols);
            size_t rb = qz_row_bytes(ti, w->cols);
            if (!rb)
                return moe_fail(err, "expert fallback %s: layer %d expert %d: rows of %lld "
                                "values fit no type", gguf_type_name(t), x->layer, x->expert,
                                (long long)w->cols);
            x->fb_type[i] = ti;
            struct moe_model *mm = (struct moe_model *)c->m; /* told the types, for scratch */
            int known = 0;
            for (int k = 0; k < mm->n_expert_alt_types; k++) known |= mm->expert_alt_types[k] == ti;
            if (!known && mm->n_expert_alt_types < 4) mm->expert_alt_types[mm->n_expert_alt_types++] = ti;
            x->fb_at[i] = at;
            at += ((int64_t)rb * w->rows + FB_ALIGN - 1) / FB_ALIGN * FB_ALIGN;
        }
    }
    c->fb_type = t;
    return (at + CACHE_ALIGN - 1) / CACHE_ALIGN * CACHE_ALIGN;
}

int cache_fallback_build(moe_cache *c, int64_t bytes, moe_err *err) {
    double t0 = now_s();
    void *p = mmap(NULL, (size_t)bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return moe_fail(err, "expert fallback: cannot map %lld bytes: %s", (long long)bytes,
                        strerror(errno));
    if (numa_place(p, (size_t)bytes, err) < 0) {
        munmap(p, (size_t)bytes);
        return -1;
    }
    madvise(p, (size_t)bytes, MADV_HUGEPAGE);
    c->fb = p;
    c->fb_map_bytes = (size_t)bytes;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int nth = ncpu > 1 ? (ncpu > 16 ? 16 : (int)ncpu) : 1;
    int64_t cols_max = 1;
    for (int g = 0; g < c->n_ex; g++)
        for (int i = 0; i < 3; i++)
            if (expert_mats(c, &c->ex[g], i)->cols > cols_max)
                cols_max = expert_mats(c, &c->ex[g], i)->cols;
    float *scratch = malloc((size_t)nth * 2 * (size_t)cols_max * sizeof(float));
    pool *pl = pool_create(nth);
    if (!scratch || !pl) {
        free(scratch);
        pool_free(pl);
        return moe_fail(err, "expert fallback: out of memory");
    }
    unsigned char *stage = c->slots[0].buf; /* a FREE slot: the pool is not in use yet */
    int rc = 0;
    for (int g = 0; g < c->n_ex && !rc; g++) {
        cache_expert *x = &c->ex[g];
        int64_t got;
        if (cache_read_expert(c, x, stage, &got, err)) {
            rc = -1;
            break;
        }
        for (int i = 0; i < 3; i++) {
            const mat *w = expert_mats(c, x, i);
            mat src = {stage + x->at[i], w->type, w->rows, w->cols};
            qz_rows job = {&src, 0, w->rows, 0, x->fb_type[i], c->fb + x->fb_at[i], scratch,
                           NULL, NULL};
            qz_convert_rows(pl, &job);
        }
    }
    pool_free(pl);
    free(scratch);
    if (rc) return -1;
    mprotect(c->fb, c->fb_map_bytes, PROT_READ);
    c->st.fallback_type = c->fb_type;
    c->st.fallback_bytes = bytes;
    c->st.fallback_seconds = now_s() - t0;
    return 0;
}
