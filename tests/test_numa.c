/*
 * test_numa.c - NUMA placement (base/numa.h): MOE_NUMA is parsed or
 * refused with a message; "interleave" puts the interleave policy on the
 * region over exactly the nodes the process may use (read back from the
 * kernel with get_mempolicy, which works on one node too), "off" leaves the
 * default, "auto" interleaves only with two nodes or more; and a model read
 * into memory, with or without an expert cache, gives the same logits
 * whatever the placement.
 */
#include "test.h"
#include "test_util.h"

#include <errno.h>
#include <linux/mempolicy.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/numa.h"
#include "moe_cache.h"

#define BITS 4096
#define WORDS (BITS / (8 * sizeof(unsigned long)))

/* MOE_NUMA set to v (NULL: unset) until env_restore. */
static char *env_saved;
static int env_had;
static void env_set(const char *v) {
    const char *was = getenv("MOE_NUMA");
    env_had = was != NULL;
    env_saved = was ? strdup(was) : NULL;
    if (v)
        setenv("MOE_NUMA", v, 1);
    else
        unsetenv("MOE_NUMA");
}
static void env_restore(void) {
    if (env_had)
        setenv("MOE_NUMA", env_saved, 1);
    else
        unsetenv("MOE_NUMA");
    free(env_saved);
    env_saved = NULL;
}

/* The policy of the page at p and its nodes; -1 when the kernel will not say. */
static int policy_at(void *p, unsigned long *mask) {
    int mode = -1;
    memset(mask, 0, WORDS * sizeof *mask);
    if (syscall(SYS_get_mempolicy, &mode, mask, (unsigned long)BITS, p, (unsigned long)MPOL_F_ADDR)) return -1;
    return mode;
}

TEST(numa_mode_parsed) {
    static const struct {
        const char *v;
        int mode;
    } cases[] = {{NULL, NUMA_AUTO}, {"", NUMA_AUTO}, {"auto", NUMA_AUTO}, {"interleave", NUMA_INTERLEAVE},
                 {"off", NUMA_OFF}, {"on", -1}, {"Interleave", -1}, {"interleave ", -1}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        env_set(cases[i].v);
        moe_err err = {{0}};
        const int m = numa_mode(&err);
        CHECK_MSG(m == cases[i].mode, "MOE_NUMA=%s: %d, expected %d", cases[i].v ? cases[i].v : "(unset)", m,
                  cases[i].mode);
        if (cases[i].mode < 0) {
            CHECK_STR_CONTAINS(err.msg, "MOE_NUMA=");
            CHECK_STR_CONTAINS(err.msg, "expected auto, interleave or off");
        }
        env_restore();
    }
    CHECK(numa_nodes() >= 1);
}

TEST(numa_place_sets_the_policy) {
    unsigned long allowed[WORDS], got[WORDS];
    memset(allowed, 0, sizeof allowed);
    if (syscall(SYS_get_mempolicy, NULL, allowed, (unsigned long)BITS, NULL, (unsigned long)MPOL_F_MEMS_ALLOWED))
        SKIP("get_mempolicy refused here");
    const size_t len = (size_t)4 << 20;
    static const char *const modes[] = {"interleave", "off", "auto", "bogus"};
    for (int k = 0; k < 4; k++) {
        unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        CHECK(p != MAP_FAILED);
        if (p == MAP_FAILED) return;
        env_set(modes[k]);
        moe_err err = {{0}};
        const int64_t before = numa_interleaved_bytes();
        const int r = numa_place(p, len, &err);
        env_restore();
        if (k == 3) {
            CHECK_EQ_INT(r, -1);
            CHECK_STR_CONTAINS(err.msg, "MOE_NUMA=bogus");
        } else if (r == 0 && k == 0) {
            CHECK_MSG(numa_last_refusal() != NULL, "interleave placed nothing and gave no reason");
        }
        memset(p, 0x5a, len); /* the pages work wherever they went */
        CHECK(p[0] == 0x5a && p[len - 1] == 0x5a);
        const int mode = policy_at(p + len / 2, got);
        if (k == 1 || (k == 2 && numa_nodes() < 2)) CHECK_EQ_INT(r, 0); /* off; auto on one node */
        if (r == 1) {
            CHECK(k == 0 || k == 2);
            CHECK_EQ_INT(mode, MPOL_INTERLEAVE);
            CHECK_MSG(!memcmp(got, allowed, sizeof got), "interleaved over other nodes than the allowed ones");
            CHECK_EQ_INT(numa_interleaved_bytes() - before, (int64_t)len);
        } else {
            CHECK_EQ_INT(mode, MPOL_DEFAULT);
            CHECK_EQ_INT(numa_interleaved_bytes(), before);
        }
        munmap(p, len);
    }
}

/* Logits of a 12-token prompt, the model read into memory (MOE_LOAD=read),
 * its experts in a cache of mem bytes when mem > 0. */
static int run_logits(const char *path, int64_t mem, float *out, int V) {
    moe_model *m = NULL;
    moe_session *s = NULL;
    moe_err err = {{0}};
    moe_load_opts o = {.mem = mem, .prefetch = mem ? 1 : 0};
    int rc = test_load_read(&m, path, &o, &err);
    if (rc) {
        CHECK_MSG(0, "%s: %s", path, err.msg);
        return -1;
    }
    moe_session_opts so = {.n_ctx = 32, .n_threads = 2};
    int32_t ids[12];
    for (int i = 0; i < 12; i++) ids[i] = (int32_t)((i * 53 + 7) % V);
    rc = moe_session_new(&s, m, &so, &err);
    if (!rc && moe_model_cache(m)) moe_cache_attach(moe_model_cache(m), s);
    if (!rc) rc = moe_forward(s, ids, 12, out, 0, &err);
    if (rc) CHECK_MSG(0, "forward: %s", err.msg);
    moe_session_free(s);
    moe_model_free(m);
    return rc;
}

TEST(numa_interleaved_model_same_logits) {
    char path[512];
    snprintf(path, sizeof path, "%s/gguf_models/qwen3_moe_q8_0.gguf", test_fixtures());
    moe_model *m = NULL;
    moe_err err = {{0}};
    if (moe_model_load(&m, path, &err)) {
        CHECK_MSG(0, "%s: %s", path, err.msg);
        return;
    }
    const int V = moe_model_config(m)->vocab;
    moe_model_free(m);
    float *a = malloc(sizeof(float) * (size_t)V), *b = malloc(sizeof(float) * (size_t)V);
    CHECK(a && b);
    for (int cached = 0; a && b && cached < 2; cached++) {
        const int64_t mem = cached ? (int64_t)1 << 20 : 0;
        env_set("off");
        const int64_t before = numa_interleaved_bytes();
        CHECK_EQ_INT(run_logits(path, mem, a, V), 0);
        CHECK_EQ_INT(numa_interleaved_bytes(), before);
        env_restore();
        env_set("interleave");
        CHECK_EQ_INT(run_logits(path, mem, b, V), 0);
        const int64_t placed = numa_interleaved_bytes() - before;
        env_restore();
        if (!numa_last_refusal()) CHECK_MSG(placed > 0, "mem %lld: nothing interleaved", (long long)mem);
        CHECK_MSG(!memcmp(a, b, sizeof(float) * (size_t)V), "mem %lld: logits differ with the pages interleaved",
                  (long long)mem);
    }
    /* a bad value fails the load with the message (mapped here; tests/cli/numa.sh reads too) */
    env_set("sideways");
    CHECK(moe_model_load(&m, path, &err) != 0);
    CHECK_STR_CONTAINS(err.msg, "MOE_NUMA=sideways");
    env_restore();
    free(a);
    free(b);
}
