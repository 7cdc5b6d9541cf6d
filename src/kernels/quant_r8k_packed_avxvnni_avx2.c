/*
 * quant_r8k_packed_avxvnni_avx2.c - quant_r8k_packed_avx2.c built for
 * AVX-VNNI (vpdpbusd in rk_tile): avxvnni_rows_packed_k, which quant.c
 * calls for packed Q4_K, Q5_K, Q6_K and IQ4_XS when the kernel choice has
 * AVX-VNNI (kern_cfg.avxvnni).
 */
#define R8_VNNI 1
#include "quant_r8k_packed_avx2.c"
