/*
 * err.h - filling a moe_err. Every fallible library function returns 0 or -1
 * and, on -1, leaves a message in *err naming the file, tensor, field or value
 * at fault. moe_fail() is the one way to write such a message.
 */
#ifndef MOE_BASE_ERR_H
#define MOE_BASE_ERR_H

#include "moe.h"

/* Format a message into *e (if e != NULL) and return -1, so callers write
 *     if (n < 0) return moe_fail(e, "%s: tensor %s: negative size", path, name);
 */
int moe_fail(moe_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prefix an existing message: "prefix: old message". Returns -1. */
int moe_fail_prefix(moe_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
