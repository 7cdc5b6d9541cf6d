/*
 * bigmem.h - allocation of the large working arrays (activation tape,
 * backward scratch, gradients, optimizer moments, logits), which the
 * training step sweeps through every step: 2 MiB-aligned and marked for
 * transparent huge pages, so that streaming through tens of MiB does not
 * miss the TLB on every 4 KiB page. Falls back to plain pages where the
 * system has no huge pages.
 */
#ifndef MOE_KERNELS_BIGMEM_H
#define MOE_KERNELS_BIGMEM_H

#include <stddef.h>

/* bytes of zeroed memory (NULL when out of memory); free with free(). */
void *big_calloc(size_t bytes);

#endif
