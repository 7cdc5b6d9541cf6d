/* err.c - see err.h. */
#include "base/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int moe_fail(moe_err *e, const char *fmt, ...) {
    if (!e) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return -1;
}

int moe_fail_prefix(moe_err *e, const char *fmt, ...) {
    if (!e) return -1;
    char old[sizeof e->msg];
    memcpy(old, e->msg, sizeof old);
    old[sizeof old - 1] = 0;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    /* append ": old", truncating by hand (no snprintf truncation warning) */
    size_t at = n < 0 ? 0 : (size_t)n, cap = sizeof e->msg - 1;
    const char *parts[2] = {": ", old};
    for (int p = 0; p < 2; p++)
        for (const char *c = parts[p]; *c && at < cap; c++) e->msg[at++] = *c;
    if (at > cap) at = cap;
    e->msg[at] = 0;
    return -1;
}
