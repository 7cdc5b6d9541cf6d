/*
 * grad_linear.c - backward of y = x W^T: dx += dy W and dW += dy^T x.
 *
 * Both products are one shape of GEMM, C[M][N] += sum_k A(m,k) B(k,n)
 * with A and B given by strides (packing makes any layout fast), here:
 *   dx:  C = dx [n][in],   A(m,k) = dy[m][k]   (M = n,   K = out), B = W [out][in]
 *   dW:  C = dW [out][in], A(m,k) = dy[k][m]   (M = out, K = n),   B = x [n][in]
 * so one blocked kernel serves both (GotoBLAS order): C is cut into MC x NC
 * tiles, one pool item each (race-free: a tile has one owner). An item walks
 * K in KC blocks; per block it packs B's KC x NC panel into NR-wide strips
 * (contiguous, L2-resident: no 4 KiB-stride aliasing) and runs the ISA's
 * register-tile micro-kernel over each MR rows of A and each strip. A is
 * read in place (rows contiguous, as dy for dx; or columns contiguous, as
 * dy^T for dW) and packed only for a partial tile of a column-contiguous A
 * or an odd layout: with one small dimension (attention: Dh) packing A
 * would cost as much as the FMAs. Every element of C sums its k's in
 * ascending order in blocks
 * of KC whichever thread runs the tile, so results do not depend on the
 * thread count. Scalar ISA: the same blocking with a plain C micro-kernel.
 */
#include <string.h>

#include "kernels/kernels.h"
#include "train/grad_linear_impl.h"
#include "train/grad_ops.h"

#define MC 96  /* rows of C per item (a multiple of every MR): B panel reuse */
#define NC 128 /* columns of C per item (a multiple of every NR) */
#define KC 256 /* k per packed block */
#define GROUP_MAX 256 /* tasks per parallel region (2 GEMMs each) */

#define GEN_MR 4
#define GEN_NR 16

/* Packed panels, per thread: B [NC/NR strips][KC][NR], A [KC][MR] (only
 * when A cannot be read in place, see gemm_tile). */
static _Thread_local float g_bpack[KC * NC] __attribute__((aligned(64)));
static _Thread_local float g_apack[KC * GEMM_MR_MAX] __attribute__((aligned(64)));

/* ------------------------------------------------------------ reference */

void linear_backward_ref(float *dx, float *dW, const float *dy, const float *x, const float *W,
                         int64_t n, int64_t out, int64_t in) {
    if (dx)
        for (int64_t i = 0; i < n; i++)
            for (int64_t k = 0; k < in; k++) {
                double s = 0;
                for (int64_t o = 0; o < out; o++) s += (double)dy[i * out + o] * W[o * in + k];
                dx[i * in + k] += (float)s;
            }
    if (dW)
        for (int64_t o = 0; o < out; o++)
            for (int64_t k = 0; k < in; k++) {
                double s = 0;
                for (int64_t i = 0; i < n; i++) s += (double)dy[i * out + o] * x[i * in + k];
                dW[o * in + k] += (float)s;
            }
}

void bias_backward(float *db, const float *dy, int64_t n, int64_t out) {
    for (int64_t i = 0; i < n; i++)
        for (int64_t o = 0; o < out; o++) db[o] += dy[i * out + o];
}

/* ------------------------------------------------- generic micro-kernel */

static void gemm_ukernel_generic(int64_t kc, const float *a, int64_t sm, int64_t sk,
                                 const float *bp, float *c, int64_t ldc, int mr, int nr) {
    float acc[GEN_MR][GEN_NR] = {{0}};
    for (int64_t k = 0; k < kc; k++, bp += GEN_NR)
        for (int r = 0; r < mr; r++) {
            float ar = a[r * sm + k * sk];
            for (int j = 0; j < GEN_NR; j++) acc[r][j] += ar * bp[j];
        }
    for (int r = 0; r < mr; r++)
        for (int j = 0; j < nr; j++) c[r * ldc + j] += acc[r][j];
}

/* ---------------------------------------------------------------- GEMM */

typedef struct gemm_prob {
    float *C;             /* [M][ldc] */
    int64_t ldc;
    const float *A;       /* A(m,k) = A[m*as_m + k*as_k] */
    int64_t as_m, as_k;
    const float *B;       /* B(k,n) = B[k*bs_k + n*bs_n] */
    int64_t bs_k, bs_n;
    int64_t M, N, K;
    int64_t nt;           /* column tiles: ceil(N / NC) */
} gemm_prob;

typedef struct gemm_isa {
    gemm_ukernel_fn fn;
    int mr, nr;
} gemm_isa;

static gemm_isa gemm_pick(void) {
    switch (kernels_isa()) {
    case ISA_AVX512: return (gemm_isa){gemm_ukernel_avx512, GEMM_MR_AVX512, GEMM_NR_AVX512};
    case ISA_AVX2: return (gemm_isa){gemm_ukernel_avx2, GEMM_MR_AVX2, GEMM_NR_AVX2};
    default: return (gemm_isa){gemm_ukernel_generic, GEN_MR, GEN_NR};
    }
}

/* ap[k][MR] = A(m0 + r, k0 + k), zero for r >= mr. */
static void pack_a(float *ap, const gemm_prob *g, int64_t m0, int mr, int64_t k0, int64_t kc,
                   int MR) {
    if (mr < MR) memset(ap, 0, (size_t)(kc * MR) * sizeof(float));
    if (g->as_m == 1) { /* dW: the tile's rows are contiguous for each k */
        const float *a = g->A + m0 + k0 * g->as_k;
        for (int64_t k = 0; k < kc; k++)
            for (int r = 0; r < mr; r++) ap[k * MR + r] = a[k * g->as_k + r];
        return;
    }
    for (int r = 0; r < mr; r++) {
        const float *a = g->A + (m0 + r) * g->as_m + k0 * g->as_k;
        for (int64_t k = 0; k < kc; k++) ap[k * MR + r] = a[k * g->as_k];
    }
}

/* bp[s][k][NR] = B(k0 + k, n0 + s*NR + j), zero past nc. */
static void pack_b(float *bp, const gemm_prob *g, int64_t k0, int64_t kc, int64_t n0, int64_t nc,
                   int NR) {
    for (int64_t s = 0; s * NR < nc; s++) {
        int64_t w = nc - s * NR < NR ? nc - s * NR : NR;
        float *dst = bp + s * kc * NR;
        if (w < NR) memset(dst, 0, (size_t)(kc * NR) * sizeof(float));
        const float *b = g->B + k0 * g->bs_k + (n0 + s * NR) * g->bs_n;
        if (g->bs_n == 1) { /* rows of B run along n: copy them */
            for (int64_t k = 0; k < kc; k++)
                memcpy(dst + k * NR, b + k * g->bs_k, (size_t)w * sizeof(float));
        } else { /* B transposed (attention's K^T, V^T): gather, k inner */
            for (int64_t j = 0; j < w; j++)
                for (int64_t k = 0; k < kc; k++) dst[k * NR + j] = b[j * g->bs_n + k * g->bs_k];
        }
    }
}

/* One MC x NC tile of C. */
static void gemm_tile(const gemm_prob *g, int64_t tile, const gemm_isa *is) {
    int64_t mi = tile / g->nt, ni = tile % g->nt;
    int64_t m0 = mi * MC, n0 = ni * NC;
    int64_t mc = g->M - m0 < MC ? g->M - m0 : MC, nc = g->N - n0 < NC ? g->N - n0 : NC;
    for (int64_t k0 = 0; k0 < g->K; k0 += KC) {
        int64_t kc = g->K - k0 < KC ? g->K - k0 : KC;
        pack_b(g_bpack, g, k0, kc, n0, nc, is->nr);
        for (int64_t mm = 0; mm < mc; mm += is->mr) {
            int mr = mc - mm < is->mr ? (int)(mc - mm) : is->mr;
            /* A in place when a layout the kernel reads allows it (rows
             * contiguous; or columns contiguous and a full tile), else a
             * packed panel [kc][MR] (columns contiguous, zero rows) */
            const float *a = g->A + (m0 + mm) * g->as_m + k0 * g->as_k;
            int64_t sm = g->as_m, sk = g->as_k;
            if (!(sk == 1 && sm != 1) && !(sm == 1 && mr == is->mr)) {
                pack_a(g_apack, g, m0 + mm, mr, k0, kc, is->mr);
                a = g_apack, sm = 1, sk = is->mr;
            }
            float *c = g->C + (m0 + mm) * g->ldc + n0;
            for (int64_t s = 0; s * is->nr < nc; s++) {
                int nr = nc - s * is->nr < is->nr ? (int)(nc - s * is->nr) : is->nr;
                is->fn(kc, a, sm, sk, g_bpack + s * kc * is->nr, c + s * is->nr, g->ldc, mr, nr);
            }
        }
    }
}

static int64_t gemm_tiles(const gemm_prob *g) {
    if (g->M <= 0 || g->N <= 0 || g->K <= 0) return 0;
    return (g->M + MC - 1) / MC * g->nt;
}

typedef struct gemm_ctx {
    const gemm_prob *probs;
    const int64_t *start; /* [n + 1] first item of each problem */
    int n;
    gemm_isa is;
} gemm_ctx;

static void gemm_items(void *vc, int64_t u0, int64_t u1, int tid) {
    const gemm_ctx *c = vc;
    int lo = 0, hi = c->n - 1; /* the problem holding item u0 */
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (c->start[mid + 1] <= u0)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (int64_t u = u0; u < u1; u++) {
        while (c->start[lo + 1] <= u) lo++;
        gemm_tile(&c->probs[lo], u - c->start[lo], &c->is);
    }
}

void gemm_acc(float *C, int64_t ldc, const float *A, int64_t as_m, int64_t as_k, const float *B,
              int64_t bs_k, int64_t bs_n, int64_t M, int64_t N, int64_t K) {
    gemm_prob g = {C, ldc, A, as_m, as_k, B, bs_k, bs_n, M, N, K, (N + NC - 1) / NC};
    gemm_isa is = gemm_pick();
    int64_t n = gemm_tiles(&g);
    for (int64_t t = 0; t < n; t++) gemm_tile(&g, t, &is);
}

/* ------------------------------------------------------------- public */

void linear_backward_grouped(pool *p, const lin_bwd_task *tasks, int n_tasks) {
    gemm_prob probs[2 * GROUP_MAX];
    int64_t start[2 * GROUP_MAX + 1];
    gemm_ctx c = {probs, start, 0, gemm_pick()};
    for (int t0 = 0; t0 < n_tasks; t0 += GROUP_MAX) {
        int m = n_tasks - t0 < GROUP_MAX ? n_tasks - t0 : GROUP_MAX, np = 0;
        for (int i = 0; i < m; i++) {
            const lin_bwd_task *t = &tasks[t0 + i];
            int64_t nt = (t->in + NC - 1) / NC;
            if (t->dx)
                probs[np++] = (gemm_prob){t->dx, t->in, t->dy, t->out, 1, t->W, t->in, 1,
                                          t->n, t->in, t->out, nt};
            if (t->dW)
                probs[np++] = (gemm_prob){t->dW, t->in, t->dy, 1, t->out, t->x, t->in, 1,
                                          t->out, t->in, t->n, nt};
        }
        start[0] = 0;
        for (int i = 0; i < np; i++) start[i + 1] = start[i] + gemm_tiles(&probs[i]);
        if (np == 0 || start[np] == 0) continue;
        c.n = np;
        pool_for(p, start[np], 1, gemm_items, &c);
    }
}

void linear_backward(pool *p, float *dx, float *dW, const float *dy, const float *x,
                     const float *W, int64_t n, int64_t out, int64_t in) {
    lin_bwd_task t = {dx, dW, dy, x, W, n, out, in};
    linear_backward_grouped(p, &t, 1);
}
