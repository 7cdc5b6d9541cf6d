/*
 * sha256.h - SHA-256 (FIPS 180-4) of a byte string. Used where a format
 * identifies things by a digest: llama.cpp's converter names a byte-level
 * pre-tokenizer by the SHA-256 of the ids a tokenizer gives for a probe
 * text (gguf_vocab_write.c).
 */
#ifndef MOE_BASE_SHA256_H
#define MOE_BASE_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct sha256_ctx {
    uint32_t h[8];         /* state */
    uint64_t len;          /* bytes hashed so far */
    unsigned char buf[64]; /* partial block */
    size_t n;              /* bytes in buf */
} sha256_ctx;

void sha256_init(sha256_ctx *c);
void sha256_update(sha256_ctx *c, const void *data, size_t n);
void sha256_final(sha256_ctx *c, unsigned char out[32]);
/* The digest of data[0..n) as 64 lowercase hex digits and a NUL. */
void sha256_hex(const void *data, size_t n, char out[65]);

#endif
