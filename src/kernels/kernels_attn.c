/*
 * kernels_attn.c - attn_block (attn.h): the per-query reference and the
 * dispatch to the AVX-512 and AVX2 block kernels. Their scratch is the calling
 * thread's region of the pool (sized by the session for its context), so
 * no block allocates and pool threads never share it.
 */
#include "kernels/attn.h"

#include <stdlib.h>

#include "kernels/kernels.h"

int64_t attn_block_scratch(int nq, int nk, int Dh) {
    return ((int64_t)Dh + nq) * attn_row_stride(nk) + 64;
}

size_t attn_scratch_bytes(int nq, int nk, int Dh) {
    int64_t ref = (nk > 0 ? nk : 1) + 1, fast = attn_block_scratch(nq > 4 ? nq : 4, nk > 0 ? nk : 1, Dh);
    return (size_t)(ref > fast ? ref : fast) * sizeof(float);
}

int attn_block_ref(pool *p, int tid, float *o, int64_t os, const float *q, int64_t qs,
                   const float *k, const float *v, int64_t kvs, int nq, int nk, int Dh, int Dv,
                   int64_t qpos0, int64_t kpos0, int window, float scale, const float *sink) {
    const kern_cfg *kc = kern_of(p);
    void *own;
    float *sc = kern_scratch(p, tid, (size_t)((nk > 0 ? nk : 1) + 1) * sizeof(float), &own);
    if (!sc) return -1;
    for (int64_t i = 0; i < nq; i++) {
        int64_t lo, hi;
        attn_visible(i, nk, qpos0, kpos0, window, &lo, &hi);
        float *oi = o + i * os;
        for (int d = 0; d < Dv; d++) oi[d] = 0.0f;
        if (hi <= lo) continue;
        const float *qi = q + i * qs;
        for (int64_t j = lo; j < hi; j++) sc[j - lo] = dot(kc, qi, k + j * kvs, Dh) * scale;
        if (sink) sc[hi - lo] = *sink; /* one more logit in the denominator, dropped after */
        softmax(kc, sc, (int)(hi - lo) + (sink != NULL));
        for (int64_t j = lo; j < hi; j++) axpy(kc, oi, sc[j - lo], v + j * kvs, Dv);
    }
    free(own);
    return 0;
}

int attn_block(pool *p, int tid, float *o, int64_t os, const float *q, int64_t qs, const float *k,
               const float *v, int64_t kvs, int nq, int nk, int Dh, int Dv, int64_t qpos0,
               int64_t kpos0, int window, float scale, const float *sink) {
    if (nq <= 0) return 0;
    const kern_cfg *kc = kern_of(p);
    const int fast = kc->isa == ISA_AVX512 || (kc->isa == ISA_AVX2 && !sink);
    if (!fast || nq < 4 || Dh % 16 != 0 || Dh > 1024 || Dv % 16 != 0 || Dv <= 0 || Dv > 1024 || nk <= 0)
        return attn_block_ref(p, tid, o, os, q, qs, k, v, kvs, nq, nk, Dh, Dv, qpos0, kpos0, window,
                              scale, sink);
    void *own;
    float *sc = kern_scratch(p, tid, (size_t)attn_block_scratch(nq, nk, Dh) * sizeof(float), &own);
    if (!sc) return -1;
    if (kc->isa == ISA_AVX512)
        avx512_attn_block(o, os, q, qs, k, v, kvs, nq, nk, Dh, Dv, qpos0, kpos0, window, scale, sink, sc);
    else
        avx2_attn_block(kc, o, os, q, qs, k, v, kvs, nq, nk, Dh, Dv, qpos0, kpos0, window, scale, sc);
    free(own);
    return 0;
}
