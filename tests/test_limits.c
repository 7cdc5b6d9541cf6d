/*
 * test_limits.c - the costs a hostile file or text can impose are bounded:
 *  - JSON documents (safetensors header and index, config.json,
 *    tokenizer.json) over their caps are refused from their size alone,
 *    before any byte is parsed into a JSON tree;
 *  - a GGUF "llama" vocabulary with a huge token loads in time linear in
 *    its length;
 *  - chained normalizers cannot multiply the text without bound;
 *  - keys cut short by a \u0000 escape are refused;
 *  - numbers out of range in trainer_state.json are refused.
 */
#include "test.h"
#include "formats/gguf.h"
#include "formats/hf_config.h"
#include "formats/safetensors.h"
#include "moe.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *tmp_path(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "%s/%s", test_tmpdir(), name);
    return buf;
}

static int write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int ok = fwrite(p, 1, n, f) == n;
    return fclose(f) == 0 && ok ? 0 : -1;
}

/* A file of `size` bytes starting with head, the rest a hole (read as zeros). */
static int sparse_file(const char *path, const void *head, size_t n, size_t size) {
    if (write_bytes(path, head, n) != 0) return -1;
    return truncate(path, (off_t)size);
}

/* -------------------------------------------------------- JSON caps */

TEST(limits_json_size_caps) {
    char dir[1024], p[1200];
    moe_err err = {{0}};

    /* a safetensors header just over the cap (the file holds all of it) */
    tmp_path(p, sizeof p, "big.safetensors");
    uint64_t hlen = ST_MAX_HEADER + 8;
    unsigned char len8[9] = {0};
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)(hlen >> (8 * i));
    len8[8] = '{';
    CHECK(sparse_file(p, len8, 9, (size_t)hlen + 8) == 0);
    st_store s;
    CHECK(st_open_file(&s, p, &err) == -1);
    CHECK_STR_CONTAINS(err.msg, "too large");
    CHECK(ST_MAX_HEADER <= ((uint64_t)16 << 20));

    /* model.safetensors.index.json over 16 MiB */
    tmp_path(dir, sizeof dir, "index");
    CHECK(mkdir(dir, 0755) == 0);
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    CHECK(sparse_file(p, "{", 1, ((size_t)16 << 20) + 1) == 0);
    CHECK(st_open_dir(&s, dir, &err) == -1);
    CHECK_STR_CONTAINS(err.msg, "allowed");

    /* config.json over 1 MiB */
    tmp_path(dir, sizeof dir, "config");
    CHECK(mkdir(dir, 0755) == 0);
    snprintf(p, sizeof p, "%s/config.json", dir);
    CHECK(sparse_file(p, "{", 1, ((size_t)1 << 20) + 1) == 0);
    moe_config cfg;
    CHECK(hf_config_load(&cfg, dir, &err) == -1);
    CHECK_STR_CONTAINS(err.msg, "allowed");

    /* tokenizer.json over 64 MiB */
    tmp_path(p, sizeof p, "tokenizer.json");
    CHECK(sparse_file(p, "{", 1, ((size_t)64 << 20) + 1) == 0);
    moe_tokenizer *t = NULL;
    CHECK(moe_tokenizer_load(&t, p, &err) == -1);
    CHECK_STR_CONTAINS(err.msg, "allowed");
    moe_tokenizer_free(t);
}
