/*
 * quant_r8k_avxvnni_avx2.c - quant_r8k_avx2.c's products built for AVX-VNNI
 * (vpdpbusd on 256 bits): avxvnni_rows_r8k, which quant_avx2.c calls when
 * the kernel choice has AVX-VNNI (kern_cfg.avxvnni).
 */
#define R8_VNNI 1
#include "quant_r8k_avx2.c"
