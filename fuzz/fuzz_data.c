/*
 * fuzz_data.c - libFuzzer target for the token shard reader
 * (src/train/data.c): header, domain table, sizes, ids. The input is a
 * shard file. An accepted shard is read the ways the trainer reads it
 * (random and sequential windows, ranges, domains); every id must be below
 * its vocab and every position inside a domain.
 */
#include "fuzz_util.h"
#include "train/data.h"

enum { T = 4, B = 2 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write("shard.bin", data, size);
    data_shard s;
    moe_err err = {{0}};
    if (data_open(&s, path, &err) != 0) {
        fuzz_rejected("data_open", err.msg);
        return 0;
    }
    if (data_check_vocab(&s, (int)(s.vocab > 0x7fffffff ? 0x7fffffff : s.vocab), &err) != 0)
        fuzz_die("data_check_vocab", err.msg);
    uint64_t n = data_n_tokens(&s);
    int32_t buf[16 > B * (T + 1) ? 16 : B * (T + 1)];
    int64_t k = n < 16 ? (int64_t)n : 16;
    if (data_read(&s, n - (uint64_t)k, k, buf, &err) != 0) fuzz_die("data_read", err.msg);
    for (int64_t i = 0; i < k; i++)
        if (buf[i] < 0 || (uint32_t)buf[i] >= s.vocab) fuzz_die("data_read", "an id past the vocab");
    if (n >= T + 1) {
        rng r;
        rng_init(&r, n);
        if (data_random_batch(&s, &r, B, T, buf, NULL, &err) != 0) fuzz_die("data_random_batch", err.msg);
        uint64_t w = data_n_windows(&s, T);
        if (w == 0 || data_window(&s, w - 1, T, buf, &err) != 0) fuzz_die("data_window", err.msg);
    }
    if (n && (data_domain_of(&s, 0) != 0 || data_domain_of(&s, n - 1) < 0))
        fuzz_die("data_domain_of", "a position outside every domain");
    if (data_domain_of(&s, n) != -1) fuzz_die("data_domain_of", "the end is inside a domain");
    data_close(&s);
    return 0;
}
