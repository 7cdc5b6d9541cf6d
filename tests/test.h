/*
 * test.h - a small test harness. A test is
 *     TEST(safetensors_truncated) { ... CHECK(cond); CHECK_NEAR(a, b, tol); ... }
 * in any test file under tests/; it registers itself. A failed CHECK prints the file,
 * line and expression and marks the test failed (the test goes on, so one
 * run shows every failure). SKIP("why") ends a test as skipped.
 * The runner (tests/main.c) ends with "N passed, N failed[, N skipped]".
 */
#ifndef MOE_TEST_H
#define MOE_TEST_H

#include <math.h>
#include <stdio.h>
#include <string.h>

typedef void (*test_fn)(void);
void test_register(const char *name, const char *file, test_fn fn);
void test_fail_at(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void test_skip(const char *why);
extern int test_failed_now; /* set by failed checks in the running test */

/* Directory of committed fixtures (tests/fixtures), overridable with the
 * environment variable MOE_FIXTURES. */
const char *test_fixtures(void);
/* A fresh empty temporary directory for this test (removed by the runner). */
const char *test_tmpdir(void);

#define TEST(name)                                                       \
    static void test_##name(void);                                       \
    __attribute__((constructor)) static void test_reg_##name(void) {     \
        test_register(#name, __FILE__, test_##name);                     \
    }                                                                    \
    static void test_##name(void)

#define CHECK(cond)                                                      \
    do {                                                                 \
        if (!(cond)) test_fail_at(__FILE__, __LINE__, "CHECK(%s)", #cond); \
    } while (0)

#define CHECK_MSG(cond, ...)                                             \
    do {                                                                 \
        if (!(cond)) test_fail_at(__FILE__, __LINE__, __VA_ARGS__);      \
    } while (0)

#define CHECK_EQ_INT(a, b)                                               \
    do {                                                                 \
        long long va_ = (long long)(a), vb_ = (long long)(b);            \
        if (va_ != vb_)                                                  \
            test_fail_at(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, va_, vb_); \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                            \
    do {                                                                 \
        double va_ = (double)(a), vb_ = (double)(b);                     \
        if (!(fabs(va_ - vb_) <= (tol)))                                 \
            test_fail_at(__FILE__, __LINE__, "%s ~ %s: %.9g vs %.9g (tol %g)", #a, #b, va_, vb_, \
                         (double)(tol));                                 \
    } while (0)

#define CHECK_STR_CONTAINS(hay, needle)                                  \
    do {                                                                 \
        const char *h_ = (hay), *n_ = (needle);                          \
        if (!h_ || !strstr(h_, n_))                                      \
            test_fail_at(__FILE__, __LINE__, "\"%s\" does not contain \"%s\"", h_ ? h_ : "(null)", n_); \
    } while (0)

#define SKIP(why)                                                        \
    do {                                                                 \
        test_skip(why);                                                  \
        return;                                                          \
    } while (0)

#endif
