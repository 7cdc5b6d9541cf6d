/*
 * test_mxfp4.c - the MXFP4 type against its definition written out by
 * hand: every E2M1 code at scales from E8M0's extremes (0, 1, 254, 255 as
 * ggml reads them) to the middle, ggml's reference quantizer on cases worked
 * by hand, Hugging Face's blocks/scales layout against transformers'
 * dequantization formula, and a GGUF file with an MXFP4 expert tensor
 * through `matmul`. The dot kernels of every path are held to the reference
 * (and the reference to fixtures) with the other types in test_quant.c.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/gguf.h"
#include "kernels/kernels.h"
#include "kernels/quant.h"
#include "kernels/quant_impl.h"
#include "test.h"

/* The OCP E2M1 values of codes 0..15 (sign bit 3), as transformers'
 * FP4_VALUES lists them. */
static const float k_e2m1[16] = {+0.0f, +0.5f, +1.0f, +1.5f, +2.0f, +3.0f, +4.0f, +6.0f,
                                 -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};

/* v * 2^p in f32, overflowing to inf (exact otherwise: v has 2 significant
 * bits and the result stays at or above 2^-149 for the scales used). */
static float scaled(float v, int p) {
    double d = ldexp((double)v, p);
    if (d > FLT_MAX) return INFINITY;
    if (d < -FLT_MAX) return -INFINITY;
    return (float)d;
}

static uint32_t rng(uint32_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

TEST(mxfp4_scale_is_e8m0_halved) {
    for (int e = 0; e < 256; e++) {
        float want = scaled(1.0f, e - 128); /* 2^(e-127) / 2, 2^-128 and 2^-127 subnormal */
        float got = mxfp4_scale_half((uint8_t)e);
        CHECK_MSG(memcmp(&got, &want, 4) == 0, "e=%d: %g, want %g", e, got, want);
    }
    CHECK(mxfp4_scale_half(255) == 0x1p127f); /* ggml: not NaN */
    CHECK(mxfp4_scale_half(0) == 0x1p-128f);
    for (int c = 0; c < 16; c++) CHECK_EQ_INT(kvalues_mxfp4[c], (int)(2 * k_e2m1[c]));
    const uint8_t *t = mxfp4_biased_table();
    for (int c = 0; c < 16; c++) CHECK_EQ_INT(t[c], kvalues_mxfp4[c] + MXFP4_BIAS);
}

TEST(mxfp4_dequantize_every_code_and_scale) {
    static const int es[] = {0, 1, 2, 100, 126, 127, 128, 129, 200, 253, 254, 255};
    for (size_t ei = 0; ei < sizeof es / sizeof es[0]; ei++) {
        /* two blocks: codes c in element c (low nibbles) and 16 + (15 - c) (high) */
        block_mxfp4 b[2];
        for (int k = 0; k < 2; k++) {
            b[k].e = (uint8_t)es[ei];
            for (int j = 0; j < 16; j++) b[k].qs[j] = (uint8_t)(j | (15 - j) << 4);
        }
        float y[64];
        dequantize_row_mxfp4(b, y, 64);
        for (int k = 0; k < 64; k++) {
            int j = k % 32, code = j < 16 ? j : 15 - (j - 16);
            float want = scaled(k_e2m1[code], es[ei] - 127);
            /* ggml's zero is +0 for both zero codes (0 * d) */
            if (want == 0) want = 0.0f;
            CHECK_MSG(memcmp(&y[k], &want, 4) == 0, "e=%d code %d: %.9g, want %.9g", es[ei], code, y[k], want);
        }
    }
    /* a few by hand: e = 127 is 2^0 */
    block_mxfp4 b = {127, {0x7F, 0x19, 0x00}};
    float y[32];
    dequantize_row_mxfp4(&b, y, 32);
    CHECK(y[0] == -6.0f && y[16] == 6.0f && y[1] == -0.5f && y[17] == 0.5f && y[2] == 0 && y[18] == 0);
    b.e = 130; /* 2^3 */
    dequantize_row_mxfp4(&b, y, 32);
    CHECK(y[0] == -48.0f && y[16] == 48.0f && y[1] == -4.0f && y[17] == 4.0f);
    b.e = 255; /* 2^128: 0.5 * 2^128 is the largest finite, 6 * 2^128 overflows */
    dequantize_row_mxfp4(&b, y, 32);
    CHECK(y[17] == 0x1p127f && isinf(y[16]) && y[16] > 0 && isinf(y[0]) && y[0] < 0);
}

/* The code quantize_row_mxfp4_ref picks for element k of a block. */
static int code_at(const block_mxfp4 *b, int k) { return k < 16 ? b->qs[k] & 15 : b->qs[k - 16] >> 4; }

TEST(mxfp4_quantize_worked_cases) {
    float x[32];
    block_mxfp4 b;
    /* zeros: e = 0, every code 0 */
    memset(x, 0, sizeof x);
    memset(&b, 0xAB, sizeof b);
    quantize_row_mxfp4_ref(x, &b, 32);
    CHECK_EQ_INT(b.e, 0);
    for (int j = 0; j < 16; j++) CHECK_EQ_INT(b.qs[j], 0);
    /* amax 6: floor(log2 6) = 2, e = 127, values 0, 0.5, ... 6 */
    static const float v[] = {6.0f, -3.0f, 0.25f, 0.75f, 5.0f, -0.1f, 1.2f, -5.5f, 2.5f, 0.0f};
    static const int want[] = {7, 13, 0, 1, 6, 0, 2, 15, 4, 0};
    /* 0.25: 0 and 0.5 tie, the first (0) wins; 0.75: 0.5 before 1; 5: 4
     * before 6; -0.1: code 0 (+0) before code 8 (-0); 2.5: 2 before 3 */
    memset(x, 0, sizeof x);
    for (int i = 0; i < 10; i++) x[3 * i % 32] = v[i];
    quantize_row_mxfp4_ref(x, &b, 32);
    CHECK_EQ_INT(b.e, 127);
    for (int i = 0; i < 10; i++)
        CHECK_MSG(code_at(&b, 3 * i % 32) == want[i], "x=%g: code %d, want %d", v[i], code_at(&b, 3 * i % 32), want[i]);
    /* amax 8 (a power of two): e = 128, values doubled: -8 is code 14 */
    x[0] = -8.0f;
    quantize_row_mxfp4_ref(x, &b, 32);
    CHECK_EQ_INT(b.e, 128);
    CHECK_EQ_INT(code_at(&b, 0), 14);
    CHECK_EQ_INT(code_at(&b, 3), 11); /* -3 is now -1.5 * 2 */
    /* amax 7.99: e = 127, 7.99 rounds to 6 (the largest) */
    x[0] = 7.99f;
    quantize_row_mxfp4_ref(x, &b, 32);
    CHECK_EQ_INT(b.e, 127);
    CHECK_EQ_INT(code_at(&b, 0), 7);
    /* tiny blocks (amax < 2^-125, where ggml's conversion is undefined)
     * clamp to e = 0; inf to 255; both give defined codes */
    memset(x, 0, sizeof x);
    x[5] = 1e-38f;
    quantize_row_mxfp4_ref(x, &b, 32);
    CHECK_EQ_INT(b.e, 0);
    CHECK_EQ_INT(code_at(&b, 5), 3); /* 1e-38 / 2^-128 = 3.4: nearest 3 */
    x[5] = INFINITY;
    quantize_row_mxfp4_ref(x, &b, 32);
    CHECK_EQ_INT(b.e, 255);
}

/* transformers' convert_moe_packed_tensors for one row: blocks [nb][16],
 * scales [nb]: out[b*32 + 2i] = FP4_VALUES[byte & 15] * 2^(scale - 127),
 * out[b*32 + 2i + 1] = FP4_VALUES[byte >> 4] * 2^(scale - 127). */
static void hf_dequant(const uint8_t *blocks, const uint8_t *scales, int nb, float *out) {
    for (int b = 0; b < nb; b++)
        for (int i = 0; i < 16; i++) {
            uint8_t byte = blocks[b * 16 + i];
            out[b * 32 + 2 * i] = scaled(k_e2m1[byte & 15], scales[b] - 127);
            out[b * 32 + 2 * i + 1] = scaled(k_e2m1[byte >> 4], scales[b] - 127);
        }
}

TEST(mxfp4_from_hf_layout) {
    enum { ROWS = 3, NB = 6, COLS = NB * 32 };
    uint32_t s = 99;
    uint8_t blocks[ROWS * NB * 16], scales[ROWS * NB];
    for (size_t i = 0; i < sizeof blocks; i++) blocks[i] = (uint8_t)rng(&s);
    static const uint8_t ex[] = {0, 1, 2, 127, 254, 255};
    for (int i = 0; i < ROWS * NB; i++) scales[i] = i < 6 ? ex[i] : (uint8_t)(100 + rng(&s) % 50);
    block_mxfp4 q[ROWS * NB];
    mxfp4_from_hf(blocks, scales, q, ROWS * NB);
    for (int r = 0; r < ROWS; r++) {
        float want[COLS], got[COLS];
        hf_dequant(blocks + r * NB * 16, scales + r * NB, NB, want);
        dequantize_row_mxfp4(q + r * NB, got, COLS);
        for (int k = 0; k < COLS; k++) /* equal as values: HF's code 8 is -0, ggml's +0 */
            CHECK_MSG(got[k] == want[k] || (isnan(got[k]) && isnan(want[k])), "row %d value %d: %g, HF %g", r, k,
                      got[k], want[k]);
    }
    /* round trip: quantized blocks -> HF layout (the inverse, by hand) -> blocks */
    float x[COLS];
    for (int k = 0; k < COLS; k++) x[k] = ((float)(int)(rng(&s) % 2001) - 1000.0f) / 300.0f;
    block_mxfp4 a[NB], back[NB];
    quantize_row_mxfp4_ref(x, a, COLS);
    uint8_t hb[NB * 16], hs[NB];
    for (int b = 0; b < NB; b++) {
        hs[b] = a[b].e;
        for (int i = 0; i < 16; i++)
            hb[b * 16 + i] = (uint8_t)(code_at(&a[b], 2 * i) | code_at(&a[b], 2 * i + 1) << 4);
    }
    mxfp4_from_hf(hb, hs, back, NB);
    CHECK(memcmp(a, back, sizeof a) == 0);
}

/* ------------------------------------------------------------------ GGUF */

/* mxfp4_to_hf is mxfp4_from_hf's inverse, byte for byte, both ways. */
TEST(mxfp4_to_hf_inverse) {
    enum { NB = 5 };
    uint8_t hb[NB * 16], hs[NB], hb2[NB * 16], hs2[NB];
    for (int i = 0; i < NB * 16; i++) hb[i] = (uint8_t)(i * 37 + 11);
    for (int i = 0; i < NB; i++) hs[i] = (uint8_t)(100 + 7 * i);
    block_mxfp4 g[NB], g2[NB];
    mxfp4_from_hf(hb, hs, g, NB);
    mxfp4_to_hf(g, hb2, hs2, NB);
    CHECK(!memcmp(hb, hb2, sizeof hb) && !memcmp(hs, hs2, sizeof hs));
    mxfp4_from_hf(hb2, hs2, g2, NB);
    CHECK(!memcmp(g, g2, sizeof g));
    memset(hs2, 0, sizeof hs2);
    mxfp4_to_hf(g, NULL, hs2, NB); /* scales alone */
    CHECK(!memcmp(hs, hs2, sizeof hs));
}

TEST(mxfp4_gguf_expert_tensor_matmul) {
    enum { E = 3, ROWS = 8, COLS = 96, NX = 5 };
    const int64_t rb = COLS / 32 * 17;
    uint32_t s = 7;
    /* experts [E][ROWS][COLS]: scales 2^-3 .. 2^1 so every product below is exact */
    uint8_t *w = malloc((size_t)(E * ROWS * rb));
    for (int64_t i = 0; i < E * ROWS * rb; i++) w[i] = (uint8_t)rng(&s);
    for (int64_t i = 0; i < E * ROWS * rb; i += 17) w[i] = (uint8_t)(125 + rng(&s) % 5);
    int64_t ne[4] = {COLS, ROWS, E, 1};
    CHECK_EQ_INT(gguf_nbytes(GGUF_TYPE_MXFP4, 3, ne), E * ROWS * rb);
    int64_t bad[4] = {COLS + 16, ROWS, E, 1};
    CHECK_EQ_INT(gguf_nbytes(GGUF_TYPE_MXFP4, 3, bad), -1);
    char path[600];
    snprintf(path, sizeof path, "%s/mxfp4.gguf", test_tmpdir());
    gguf_wkv kv = gguf_wstr("general.architecture", "test");
    gguf_wtensor t = {"blk.0.ffn_gate_exps.weight", GGUF_TYPE_MXFP4, 3, {COLS, ROWS, E, 1}, w};
    moe_err err;
    CHECK_MSG(gguf_write(path, &kv, 1, &t, 1, &err) == 0, "%s", err.msg);
    gguf_file g;
    if (gguf_open(&g, path, &err) != 0) {
        CHECK_MSG(0, "%s", err.msg);
        free(w);
        return;
    }
    const gguf_tensor *gt = gguf_find(&g, "blk.0.ffn_gate_exps.weight");
    CHECK(gt && gt->type == GGUF_TYPE_MXFP4 && gt->n_dims == 3 && (int64_t)gt->nbytes == E * ROWS * rb);
    CHECK(gt && memcmp(gt->data, w, (size_t)(E * ROWS * rb)) == 0);
    CHECK(dtype_from_ggml(GGUF_TYPE_MXFP4) == DT_MXFP4 && dtype_row_bytes(DT_MXFP4, COLS) == rb);
    /* x exact in Q8_0: codes in [-127, 127] with one of +-127, times 2^-5 */
    float x[NX * COLS];
    for (int b = 0; b < NX * COLS; b += 32) {
        for (int k = 0; k < 32; k++) x[b + k] = (float)((int)(rng(&s) % 255) - 127) / 32.0f;
        x[b + (int)(rng(&s) % 32)] = 127.0f / 32.0f;
    }
    for (int e = 0; gt && e < E; e++) {
        mat W = {(const uint8_t *)gt->data + e * ROWS * rb, DT_MXFP4, ROWS, COLS};
        float wf[ROWS * COLS], y[NX * ROWS], yf[NX * ROWS];
        for (int r = 0; r < ROWS; r++) mat_row_f32(wf + r * COLS, &W, r);
        mat Wf = {wf, DT_F32, ROWS, COLS};
        matmul(NULL, y, x, &W, NX);
        matmul_ref(yf, x, &Wf, NX);
        for (int i = 0; i < NX * ROWS; i++) CHECK_MSG(y[i] == yf[i], "expert %d y[%d]: %.9g, f32 %.9g", e, i, y[i], yf[i]);
        /* decode (one row) and the grouped call agree too */
        float y1[ROWS];
        matmul(NULL, y1, x + 2 * COLS, &W, 1);
        CHECK(memcmp(y1, yf + 2 * ROWS, sizeof y1) == 0);
        float yg[2 * ROWS];
        mm_task tk[2] = {{&W, x, yg, 1}, {&W, x + COLS, yg + ROWS, 1}};
        matmul_grouped(NULL, tk, 2);
        CHECK(memcmp(yg, yf, sizeof yg) == 0);
    }
    gguf_close(&g);
    free(w);
}
