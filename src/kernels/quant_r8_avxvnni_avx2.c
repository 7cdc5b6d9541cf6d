/*
 * quant_r8_avxvnni_avx2.c - quant_r8_avx2.c's products built for AVX-VNNI
 * (vpdpbusd on 256 bits): avxvnni_rows_r8, which quant_avx2.c calls when the
 * kernel choice has AVX-VNNI (kern_cfg.avxvnni).
 */
#define R8_VNNI 1
#include "quant_r8_avx2.c"
