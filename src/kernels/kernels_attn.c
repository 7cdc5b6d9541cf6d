/*
 * kernels_attn.c - attn_block (attn.h): the per-query reference, the
 * dispatch to the AVX-512 block kernel, and the per-thread scratch both
 * use. The scratch is thread-local and only grows (a pthread key frees it
 * when the thread exits), so blocks of a size seen before allocate nothing
 * and pool threads never share it.
 */
#include "kernels/attn.h"

#include <pthread.h>
#include <stdlib.h>

#include "kernels/kernels.h"

static pthread_key_t g_key;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static _Thread_local float *tl_buf;
static _Thread_local size_t tl_cap; /* floats */

static void key_make(void) { (void)pthread_key_create(&g_key, free); }

static float *scratch(size_t floats) {
    if (floats <= tl_cap) return tl_buf;
    pthread_once(&g_once, key_make);
    size_t cap = floats + floats / 2 + 1024;
    float *p = realloc(tl_buf, cap * sizeof(float));
    if (!p) return NULL;
    tl_buf = p;
    tl_cap = cap;
    (void)pthread_setspecific(g_key, p);
    return p;
}

/* Visible keys of query i: [*lo, *hi) (empty when hi <= lo). */
static void visible(int64_t i, int nk, int64_t qpos0, int64_t kpos0, int window, int64_t *lo,
                    int64_t *hi) {
    int64_t p = qpos0 + i - kpos0; /* the query's position among the keys */
    *hi = p + 1 < nk ? p + 1 : nk;
    *lo = window > 0 && p - window + 1 > 0 ? p - window + 1 : 0;
}

int attn_block_ref(float *o, int64_t os, const float *q, int64_t qs, const float *k, const float *v,
                   int64_t kvs, int nq, int nk, int Dh, int64_t qpos0, int64_t kpos0, int window,
                   float scale) {
    float *sc = scratch((size_t)(nk > 0 ? nk : 1));
    if (!sc) return -1;
    for (int64_t i = 0; i < nq; i++) {
        int64_t lo, hi;
        visible(i, nk, qpos0, kpos0, window, &lo, &hi);
        float *oi = o + i * os;
        for (int d = 0; d < Dh; d++) oi[d] = 0.0f;
        if (hi <= lo) continue;
        const float *qi = q + i * qs;
        for (int64_t j = lo; j < hi; j++) sc[j - lo] = dot(qi, k + j * kvs, Dh) * scale;
        softmax(sc, (int)(hi - lo));
        for (int64_t j = lo; j < hi; j++) axpy(oi, sc[j - lo], v + j * kvs, Dh);
    }
    return 0;
}

int attn_block(float *o, int64_t os, const float *q, int64_t qs, const float *k, const float *v,
               int64_t kvs, int nq, int nk, int Dh, int64_t qpos0, int64_t kpos0, int window,
               float scale) {
    if (nq <= 0) return 0;
    if (kernels_isa() != ISA_AVX512 || nq < 4 || Dh % 16 != 0 || Dh > 256 || nk <= 0)
        return attn_block_ref(o, os, q, qs, k, v, kvs, nq, nk, Dh, qpos0, kpos0, window, scale);
    float *sc = scratch((size_t)avx512_attn_scratch(nq, nk, Dh));
    if (!sc) return -1;
    avx512_attn_block(o, os, q, qs, k, v, kvs, nq, nk, Dh, qpos0, kpos0, window, scale, sc);
    return 0;
}
