/*
 * delta_rule.c - the gated delta rule of delta_rule.h: the recurrent form
 * (token by token) and the chunked parallel form (GEMMs within a chunk,
 * the state passed from chunk to chunk).
 */
#include "kernels/delta_rule.h"

#include <math.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

#include "kernels/gemm.h"
#include "kernels/kernels.h"
#include "kernels/vmath.h"

static int64_t round16(int64_t n) { return (n + 15) & ~(int64_t)15; }

int64_t delta_rule_recurrent_floats(int Dv) { return round16(Dv); }

/* The chunk's buffers after the GEMM's packing scratch, in floats. */
static int64_t chunk_floats(int Dk, int Dv) {
    int64_t C = DELTA_CHUNK;
    return round16(C * Dk) * 2        /* Q, K */
           + round16(C * (Dv + Dk))   /* X = [U | -W] */
           + round16(C * C) * 2       /* A, M */
           + round16(C * Dv)          /* O */
           + round16(C) * 3;          /* G, beta, one row of decays */
}

size_t delta_rule_chunked_bytes(int Dk, int Dv) {
    return gemm_scratch_bytes() + (size_t)chunk_floats(Dk, Dv) * sizeof(float);
}

static int64_t row_of(const delta_io *io, int i) { return io->rows ? io->rows[i] : i; }

/* Both forms run with subnormal floats flushed to zero (x86's FTZ and DAZ,
 * set on entry and restored on return, so the caller's thread is left as
 * it was). The decays make them: exp(G) over a chunk with strong decay
 * (g = -5 per token reaches exp(-90) within 18 tokens), and a state that
 * decays over many decode steps. Arithmetic on subnormals is 10-100x
 * slower on x86 cores; the chunked form measured 2.7 ms instead of 0.22 ms
 * per 128-token head at g = -0.5 per token. What is flushed is below
 * 1.2e-38 in magnitude, far under the f32 rounding of the outputs. */
typedef struct { unsigned csr; } fp_mode;

static fp_mode flush_subnormals(void) {
    fp_mode m = {0};
#if defined(__x86_64__) || defined(__i386__)
    m.csr = _mm_getcsr();
    _mm_setcsr(m.csr | 0x8040u); /* FTZ (bit 15) | DAZ (bit 6) */
#endif
    return m;
}

static void restore_fp(fp_mode m) {
#if defined(__x86_64__) || defined(__i386__)
    _mm_setcsr(m.csr);
#else
    (void)m;
#endif
}

/* Token by token; scratch holds delta [Dv]. Two passes over S per token:
 * decay it while reading S^T k, then write the update while reading S^T q. */
void delta_rule_recurrent(const struct kern_cfg *kc, float *S, const delta_io *io, float *scratch) {
    int Dk = io->Dk, Dv = io->Dv;
    float *delta = scratch;
    fp_mode fm = flush_subnormals();
    for (int t = 0; t < io->n; t++) {
        int64_t r = row_of(io, t);
        const float *q = io->q + r * io->qs, *k = io->k + r * io->ks, *v = io->v + r * io->vs;
        float decay = expf(io->g[r * io->gs]), beta = io->beta[r * io->gs];
        float *o = io->o + r * io->os;
        memset(delta, 0, sizeof(float) * (size_t)Dv);
        for (int i = 0; i < Dk; i++) {
            vmath_scale(kc, S + (int64_t)i * Dv, decay, Dv);
            axpy(kc, delta, k[i], S + (int64_t)i * Dv, Dv);
        }
        for (int j = 0; j < Dv; j++) delta[j] = (v[j] - delta[j]) * beta;
        memset(o, 0, sizeof(float) * (size_t)Dv);
        for (int i = 0; i < Dk; i++) {
            axpy(kc, S + (int64_t)i * Dv, k[i], delta, Dv);
            axpy(kc, o, q[i], S + (int64_t)i * Dv, Dv);
        }
    }
    restore_fp(fm);
}

/* One chunk of L <= DELTA_CHUNK tokens starting at token c0. */
static void chunk_step(const struct kern_cfg *kc, float *S, const delta_io *io, int c0, int L,
                       float *pack, float *buf) {
    const int64_t C = DELTA_CHUNK, Dk = io->Dk, Dv = io->Dv, W = Dv + Dk;
    float *Q = buf, *K = Q + round16(C * Dk), *X = K + round16(C * Dk);
    float *A = X + round16(C * W), *M = A + round16(C * C), *O = M + round16(C * C);
    float *G = O + round16(C * Dv), *B = G + round16(C), *E = B + round16(C);

    /* gather; G = cumsum(g) in time order; X = [beta v | -beta exp(G) k] */
    float acc = 0.0f;
    for (int i = 0; i < L; i++) {
        int64_t r = row_of(io, c0 + i);
        const float *v = io->v + r * io->vs;
        memcpy(Q + i * Dk, io->q + r * io->qs, sizeof(float) * (size_t)Dk);
        memcpy(K + i * Dk, io->k + r * io->ks, sizeof(float) * (size_t)Dk);
        acc += io->g[r * io->gs];
        G[i] = acc;
        B[i] = io->beta[r * io->gs];
        float *x = X + i * W, kb = -B[i] * expf(G[i]);
        for (int64_t j = 0; j < Dv; j++) x[j] = B[i] * v[j];
        for (int64_t j = 0; j < Dk; j++) x[Dv + j] = kb * K[i * Dk + j];
    }
    /* A = K K^T, M = Q K^T; then the decays exp(G_i - G_j) and masks */
    gemm_set(kc, A, C, K, Dk, 1, K, 1, Dk, L, L, Dk, pack);
    gemm_set(kc, M, C, Q, Dk, 1, K, 1, Dk, L, L, Dk, pack);
    for (int i = 0; i < L; i++) {
        for (int j = 0; j <= i; j++) E[j] = G[i] - G[j];
        vmath_exp(kc, E, E, i + 1);
        float *a = A + i * C, *m = M + i * C;
        for (int j = 0; j < i; j++) a[j] *= B[i] * E[j];
        for (int j = 0; j <= i; j++) m[j] *= E[j];
        for (int j = i + 1; j < L; j++) m[j] = 0.0f;
    }
    /* (I + A) X = X by forward substitution (A strictly lower) */
    for (int i = 1; i < L; i++)
        for (int j = 0; j < i; j++) axpy(kc, X + i * W, -A[i * C + j], X + j * W, (int)W);
    /* V' = U - W S, into X's first Dv columns */
    gemm_acc(kc, X, W, X + Dv, W, 1, S, Dv, 1, L, Dv, Dk, pack);
    /* O = (exp(G) q) S + M V' */
    for (int i = 0; i < L; i++) vmath_scale(kc, Q + i * Dk, expf(G[i]), Dk);
    gemm_set(kc, O, Dv, Q, Dk, 1, S, Dv, 1, L, Dv, Dk, pack);
    gemm_acc(kc, O, Dv, M, C, 1, X, W, 1, L, Dv, L, pack);
    for (int i = 0; i < L; i++)
        memcpy(io->o + row_of(io, c0 + i) * io->os, O + i * Dv, sizeof(float) * (size_t)Dv);
    /* S = exp(G_last) S + (exp(G_last - G) k)^T V' */
    for (int j = 0; j < L; j++) vmath_scale(kc, K + j * Dk, expf(G[L - 1] - G[j]), Dk);
    vmath_scale(kc, S, expf(G[L - 1]), Dk * Dv);
    gemm_acc(kc, S, Dv, K, 1, Dk, X, W, 1, Dk, Dv, L, pack);
}

void delta_rule_chunked(const struct kern_cfg *kc, float *S, const delta_io *io, void *scratch) {
    float *pack = scratch, *buf = (float *)((char *)scratch + gemm_scratch_bytes());
    fp_mode fm = flush_subnormals();
    for (int c0 = 0; c0 < io->n; c0 += DELTA_CHUNK) {
        int L = io->n - c0 < DELTA_CHUNK ? io->n - c0 : DELTA_CHUNK;
        chunk_step(kc, S, io, c0, L, pack, buf);
    }
    restore_fp(fm);
}
