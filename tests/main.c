/*
 * main.c - the test runner: runs every registered TEST (or those whose name
 * contains one of the arguments), prints one line per failure or skip, and
 * ends with "N passed, N failed, N skipped". Exit status 1 if any failed.
 */
#include "test.h"

#include <ftw.h>
#include <stdarg.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    const char *name, *file;
    test_fn fn;
} test_case;

static test_case g_tests[1024];
static int g_n;
int test_failed_now;
static int g_skipped_now;
static char g_tmp[512];

void test_register(const char *name, const char *file, test_fn fn) {
    if (g_n < (int)(sizeof g_tests / sizeof g_tests[0])) g_tests[g_n++] = (test_case){name, file, fn};
}

static const char *g_cur;

void test_fail_at(const char *file, int line, const char *fmt, ...) {
    if (test_failed_now < 20) {
        fprintf(stderr, "FAIL %s (%s:%d): ", g_cur, file, line);
        va_list ap;
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
    }
    test_failed_now++;
}

void test_skip(const char *why) {
    g_skipped_now = 1;
    fprintf(stderr, "SKIP %s: %s\n", g_cur, why);
}

const char *test_fixtures(void) {
    const char *e = getenv("MOE_FIXTURES");
    return e && *e ? e : "tests/fixtures";
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb; (void)flag; (void)ftw;
    return remove(p);
}

const char *test_tmpdir(void) {
    if (!g_tmp[0]) {
        snprintf(g_tmp, sizeof g_tmp, "/tmp/moe_test_XXXXXX");
        if (!mkdtemp(g_tmp)) {
            g_tmp[0] = 0;
            return "/tmp";
        }
    }
    return g_tmp;
}

static int matches(const char *name, int argc, char **argv) {
    if (argc <= 1) return 1;
    for (int i = 1; i < argc; i++)
        if (strstr(name, argv[i])) return 1;
    return 0;
}

int main(int argc, char **argv) {
    int passed = 0, failed = 0, skipped = 0;
    int verbose = getenv("MOE_TEST_VERBOSE") != NULL;
    for (int i = 0; i < g_n; i++) {
        if (!matches(g_tests[i].name, argc, argv)) continue;
        g_cur = g_tests[i].name;
        test_failed_now = 0;
        g_skipped_now = 0;
        g_tmp[0] = 0;
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        g_tests[i].fn();
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if (g_tmp[0]) nftw(g_tmp, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
        double ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
        if (test_failed_now) {
            failed++;
            fprintf(stderr, "not ok %s (%d failed checks)\n", g_cur, test_failed_now);
        } else if (g_skipped_now) {
            skipped++;
        } else {
            passed++;
            if (verbose) fprintf(stderr, "ok %s (%.1f ms)\n", g_cur, ms);
        }
    }
    printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    return failed ? 1 : 0;
}
