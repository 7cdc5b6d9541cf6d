/*
 * gemm.c - the blocked GEMM of gemm.h: tiling, packing, the ISA choice and
 * the threading; the micro-kernels are in gemm_avx512.c / gemm_avx2.c and
 * the plain one here (scalar ISA).
 *
 * Per tile (one pool item), per KC block of k: B's KC x NC panel is packed
 * into NR-wide strips (contiguous, L2-resident: no 4 KiB-stride aliasing),
 * then the micro-kernel runs over each MR rows of A and each strip. A is
 * read in place (rows contiguous, as dy for dx or x for the forward; or
 * columns contiguous, as dy^T for dW) and packed only for a partial tile of
 * a column-contiguous A, an odd layout, or streams 4 KiB-aliased (see
 * gemm_tile). A `set` product stores its first K block instead of adding,
 * so callers need not zero C.
 */
#include "kernels/gemm.h"

#include <stdlib.h>
#include <string.h>

#include "kernels/gemm_impl.h"
#include "kernels/kernels.h"
#include "kernels/kernels_impl.h"

/* Tile of C per pool item: MC rows (a multiple of every MR) x NC columns (a
 * multiple of every NR). Big tiles reuse each packed B panel over more rows
 * (measured: 384 x 256 beats 96 x 128 by 10-40% on the model's shapes);
 * a call with too few tiles for the threads falls back to smaller ones. */
#define MC_MAX 384
#define NC_MAX 256
#define MC_MIN 96
#define NC_MIN 128
#define TILES_PER_THREAD 4
#define KC 256 /* k per packed block (measured: 384 and 512 are no faster) */
#define PACK_A_STRIPS 2 /* pack A only when it feeds more NR-wide strips than this */
#define ALIAS_STRIDE 1024 /* and its streams are a multiple of this many floats apart */
#define GROUP_MAX 512 /* products per parallel region */

#define GEN_MR 4
#define GEN_NR 16

/* Packed panels, in the calling thread's scratch (gemm_scratch_bytes):
 * B [NC/NR strips][KC][NR], then A [KC][MR] (only when A cannot be read in
 * place, see gemm_tile). */
#define BPACK_FLOATS (KC * NC_MAX)
#define APACK_FLOATS (KC * GEMM_MR_MAX)

size_t gemm_scratch_bytes(void) { return (size_t)(BPACK_FLOATS + APACK_FLOATS) * sizeof(float); }

/* ------------------------------------------------- generic micro-kernel */

static void gemm_ukernel_generic(int64_t kc, const float *a, int64_t sm, int64_t sk,
                                 const float *bp, float *c, int64_t ldc, int mr, int nr, int add) {
    float acc[GEN_MR][GEN_NR] = {{0}};
    for (int64_t k = 0; k < kc; k++, bp += GEN_NR)
        for (int r = 0; r < mr; r++) {
            float ar = a[r * sm + k * sk];
            for (int j = 0; j < GEN_NR; j++) acc[r][j] += ar * bp[j];
        }
    for (int r = 0; r < mr; r++)
        for (int j = 0; j < nr; j++) c[r * ldc + j] = add ? c[r * ldc + j] + acc[r][j] : acc[r][j];
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
    int init;             /* gemm_op.set: C is overwritten (its old values never read) */
    const float *B2;      /* gemm_op.B2, k_split */
    int64_t k_split;
    int64_t mc, nc;       /* tile (gemm_blocking) */
    int64_t nt;           /* column tiles: ceil(N / nc) */
} gemm_prob;

typedef struct gemm_isa {
    gemm_ukernel_fn fn;
    int mr, nr;
    int avx512; /* the AVX-512 packing routines may run */
} gemm_isa;

static gemm_isa gemm_pick(const kern_cfg *k) {
    switch ((k ? k : kernels_default())->isa) {
    case ISA_AVX512: return (gemm_isa){gemm_ukernel_avx512, GEMM_MR_AVX512, GEMM_NR_AVX512, 1};
    case ISA_AVX2: return (gemm_isa){gemm_ukernel_avx2, GEMM_MR_AVX2, GEMM_NR_AVX2, 0};
    default: return (gemm_isa){gemm_ukernel_generic, GEN_MR, GEN_NR, 0};
    }
}

/* A's rows m0..m0+mr-1, k0..k0+kc-1, copied to a contiguous panel. Rows
 * contiguous (as_k == 1): ap[r][kc], read by the kernel with sm = kc, sk = 1
 * (rows past mr are not read). Otherwise ap[k][MR] (sm = 1, sk = MR), the
 * rows past mr zero. Returns the panel's sm. A power-of-two row stride
 * (dy of the LM head: 16 KiB) would put the kernel's 12 row streams, or
 * its 256 k rows, in one cache set; the panel never does. */
static int64_t pack_a(float *ap, const gemm_prob *g, int64_t m0, int mr, int64_t k0, int64_t kc,
                      int MR, int avx512) {
    if (g->as_k == 1) {
        for (int r = 0; r < mr; r++)
            memcpy(ap + r * kc, g->A + (m0 + r) * g->as_m + k0, (size_t)kc * sizeof(float));
        return kc;
    }
    if (g->as_m == 1 && MR == GEMM_MR_AVX512 && avx512) {
        gemm_pack_a_avx512(ap, g->A + m0 + k0 * g->as_k, g->as_k, kc, mr);
        return 1;
    }
    if (mr < MR) memset(ap, 0, (size_t)(kc * MR) * sizeof(float));
    if (g->as_m == 1) { /* dW: the tile's rows are contiguous for each k */
        const float *a = g->A + m0 + k0 * g->as_k;
        for (int64_t k = 0; k < kc; k++) memcpy(ap + k * MR, a + k * g->as_k, (size_t)mr * sizeof(float));
        return 1;
    }
    for (int r = 0; r < mr; r++) {
        const float *a = g->A + (m0 + r) * g->as_m + k0 * g->as_k;
        for (int64_t k = 0; k < kc; k++) ap[k * MR + r] = a[k * g->as_k];
    }
    return 1;
}

/* dst[k][NR] = b[k*bs_k + j*bs_n] for k < kc, j < w; zero for j >= w. */
static void pack_strip(float *dst, const float *b, int64_t bs_k, int64_t bs_n, int64_t kc,
                       int64_t w, int NR, int avx512) {
    int fast = NR == GEMM_NR_AVX512 && avx512;
    if (fast && bs_n == 1) {
        gemm_pack_b_avx512(dst, b, bs_k, kc, (int)w);
        return;
    }
    if (fast && bs_k == 1) {
        gemm_pack_bt_avx512(dst, b, bs_n, kc, (int)w); /* B^T: 16 x 16 transposes */
        return;
    }
    if (w < NR) memset(dst, 0, (size_t)(kc * NR) * sizeof(float));
    if (bs_n == 1) { /* rows of B run along n: copy them */
        for (int64_t k = 0; k < kc; k++) memcpy(dst + k * NR, b + k * bs_k, (size_t)w * sizeof(float));
    } else { /* B transposed (W^T, attention's K^T, V^T): gather, k inner */
        for (int64_t j = 0; j < w; j++)
            for (int64_t k = 0; k < kc; k++) dst[k * NR + j] = b[j * bs_n + k * bs_k];
    }
}

/* bp[s][k][NR] = B(k0 + k, n0 + s*NR + j), zero past nc; a block that
 * crosses k_split takes its rows from both matrices. */
static void pack_b(float *bp, const gemm_prob *g, int64_t k0, int64_t kc, int64_t n0, int64_t nc,
                   int NR, int avx512) {
    int64_t ks = g->B2 ? g->k_split : g->K; /* rows [k0, ks) from B, the rest from B2 */
    for (int64_t s = 0; s * NR < nc; s++) {
        int64_t w = nc - s * NR < NR ? nc - s * NR : NR, col = (n0 + s * NR) * g->bs_n;
        float *dst = bp + s * kc * NR;
        int64_t k1 = k0 + kc < ks ? k0 + kc : ks; /* end of the B part */
        if (k1 > k0) pack_strip(dst, g->B + k0 * g->bs_k + col, g->bs_k, g->bs_n, k1 - k0, w, NR, avx512);
        int64_t k2 = k0 > ks ? k0 : ks; /* start of the B2 part */
        if (k0 + kc > k2)
            pack_strip(dst + (k2 - k0) * NR, g->B2 + (k2 - ks) * g->bs_k + col, g->bs_k, g->bs_n,
                       k0 + kc - k2, w, NR, avx512);
    }
}

/* One MC x NC tile of C. A is read in place where the kernel can (rows
 * contiguous; or columns contiguous and a full tile). A micro-panel is
 * packed (pack_a) when its streams are a multiple of 4 KiB apart (they
 * would share cache sets: the LM head's dy) and it feeds enough strips of
 * B to repay the copy; measured, packing A otherwise costs more than it
 * saves. */
static void gemm_tile(const gemm_prob *g, int64_t tile, const gemm_isa *is, float *scratch) {
    float *bpack = scratch, *apack = scratch + BPACK_FLOATS;
    int64_t mi = tile / g->nt, ni = tile % g->nt;
    int64_t m0 = mi * g->mc, n0 = ni * g->nc;
    int64_t mc = g->M - m0 < g->mc ? g->M - m0 : g->mc, nc = g->N - n0 < g->nc ? g->N - n0 : g->nc;
    int64_t stride = g->as_k == 1 ? g->as_m : g->as_k; /* between A's streams */
    int pack = nc > PACK_A_STRIPS * is->nr && stride % ALIAS_STRIDE == 0;
    for (int64_t k0 = 0; k0 < g->K; k0 += KC) {
        int64_t kc = g->K - k0 < KC ? g->K - k0 : KC;
        int add = !(g->init && k0 == 0);
        pack_b(bpack, g, k0, kc, n0, nc, is->nr, is->avx512);
        for (int64_t mm = 0; mm < mc; mm += is->mr) {
            int mr = mc - mm < is->mr ? (int)(mc - mm) : is->mr;
            const float *a = g->A + (m0 + mm) * g->as_m + k0 * g->as_k;
            int64_t sm = g->as_m, sk = g->as_k;
            if (pack || (!(sk == 1 && sm != 1) && !(sm == 1 && mr == is->mr))) {
                sm = pack_a(apack, g, m0 + mm, mr, k0, kc, is->mr, is->avx512);
                a = apack, sk = sm == 1 ? is->mr : 1;
            }
            float *c = g->C + (m0 + mm) * g->ldc + n0;
            for (int64_t s = 0; s * is->nr < nc; s++) {
                int nr = nc - s * is->nr < is->nr ? (int)(nc - s * is->nr) : is->nr;
                is->fn(kc, a, sm, sk, bpack + s * kc * is->nr, c + s * is->nr, g->ldc, mr, nr, add);
            }
        }
    }
}

static int64_t gemm_tiles(const gemm_prob *g) {
    if (g->M <= 0 || g->N <= 0 || g->K <= 0) return 0;
    return (g->M + g->mc - 1) / g->mc * g->nt;
}

/* Tile size of every problem: the biggest, unless that leaves fewer than
 * TILES_PER_THREAD items per thread. */
static void gemm_blocking(gemm_prob *probs, int n, int threads) {
    static const int64_t mcs[3] = {MC_MAX, MC_MAX / 2, MC_MIN}, ncs[3] = {NC_MAX, NC_MAX, NC_MIN};
    for (int b = 0; b < 3; b++) {
        int64_t tiles = 0;
        for (int i = 0; i < n; i++) {
            probs[i].mc = mcs[b];
            probs[i].nc = ncs[b];
            probs[i].nt = (probs[i].N + ncs[b] - 1) / ncs[b];
            tiles += gemm_tiles(&probs[i]);
        }
        if (tiles >= (int64_t)TILES_PER_THREAD * threads) return;
    }
}

/* An overwritten C with nothing to sum (K == 0) is zero. */
static void gemm_empty(const gemm_prob *g) {
    if (g->init && g->K <= 0 && g->N > 0)
        for (int64_t m = 0; m < g->M; m++) memset(g->C + m * g->ldc, 0, (size_t)g->N * sizeof(float));
}

typedef struct gemm_ctx {
    const gemm_prob *probs;
    const int64_t *start; /* [n + 1] first item of each problem */
    int n;
    gemm_isa is;
    pool *p;
} gemm_ctx;

static void gemm_nan_tile(const gemm_prob *g, int64_t tile) {
    int64_t mi = tile / g->nt, ni = tile % g->nt;
    int64_t m0 = mi * g->mc, n0 = ni * g->nc;
    int64_t mc = g->M - m0 < g->mc ? g->M - m0 : g->mc, nc = g->N - n0 < g->nc ? g->N - n0 : g->nc;
    for (int64_t m = 0; m < mc; m++)
        for (int64_t n = 0; n < nc; n++) g->C[(m0 + m) * g->ldc + n0 + n] = __builtin_nanf("");
}

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
    void *own;
    float *pack = kern_scratch(c->p, tid, gemm_scratch_bytes(), &own);
    if (!pack) { /* out of memory: visible, never silently wrong */
        for (int64_t u = u0; u < u1; u++) {
            while (c->start[lo + 1] <= u) lo++;
            gemm_nan_tile(&c->probs[lo], u - c->start[lo]);
        }
        return;
    }
    for (int64_t u = u0; u < u1; u++) {
        while (c->start[lo + 1] <= u) lo++;
        gemm_tile(&c->probs[lo], u - c->start[lo], &c->is, pack);
    }
    free(own);
}

void gemm_acc(const kern_cfg *k, float *C, int64_t ldc, const float *A, int64_t as_m, int64_t as_k,
              const float *B, int64_t bs_k, int64_t bs_n, int64_t M, int64_t N, int64_t K, float *pack) {
    gemm_prob g = {C, ldc, A, as_m, as_k, B, bs_k, bs_n, M, N, K, 0, NULL, 0, MC_MAX, NC_MAX,
                   (N + NC_MAX - 1) / NC_MAX};
    gemm_isa is = gemm_pick(k);
    int64_t n = gemm_tiles(&g);
    for (int64_t t = 0; t < n; t++) gemm_tile(&g, t, &is, pack);
}

void gemm_set(const kern_cfg *k, float *C, int64_t ldc, const float *A, int64_t as_m, int64_t as_k,
              const float *B, int64_t bs_k, int64_t bs_n, int64_t M, int64_t N, int64_t K, float *pack) {
    gemm_prob g = {C, ldc, A, as_m, as_k, B, bs_k, bs_n, M, N, K, 1, NULL, 0, MC_MAX, NC_MAX,
                   (N + NC_MAX - 1) / NC_MAX};
    gemm_isa is = gemm_pick(k);
    int64_t n = gemm_tiles(&g);
    gemm_empty(&g);
    for (int64_t t = 0; t < n; t++) gemm_tile(&g, t, &is, pack);
}

void gemm_run(pool *p, const gemm_op *ops, int n_ops) {
    gemm_prob probs[GROUP_MAX];
    int64_t start[GROUP_MAX + 1];
    gemm_ctx c = {probs, start, 0, gemm_pick(kern_of(p)), p};
    for (int t0 = 0; t0 < n_ops; t0 += GROUP_MAX) {
        int m = n_ops - t0 < GROUP_MAX ? n_ops - t0 : GROUP_MAX;
        for (int i = 0; i < m; i++) {
            const gemm_op *o = &ops[t0 + i];
            probs[i] = (gemm_prob){o->C, o->ldc, o->A, o->as_m, o->as_k, o->B, o->bs_k, o->bs_n,
                                   o->M, o->N, o->K, o->set, o->B2, o->k_split, 0, 0, 0};
        }
        gemm_blocking(probs, m, pool_size(p));
        start[0] = 0;
        for (int i = 0; i < m; i++) {
            gemm_empty(&probs[i]);
            start[i + 1] = start[i] + gemm_tiles(&probs[i]);
        }
        if (start[m] == 0) continue;
        c.n = m;
        pool_for(p, start[m], 1, gemm_items, &c);
    }
}
