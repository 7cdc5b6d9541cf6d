/*
 * text.h - how much of a generation's text may be sent yet (text.c): never
 * a partial UTF-8 character or a trailing U+FFFD (a byte-level tokenizer
 * writes one for a character whose other bytes are still to come), never
 * the start of what may turn out to be a stop string, and nothing from the
 * first stop string on.
 */
#ifndef MOE_SERVE_TEXT_H
#define MOE_SERVE_TEXT_H

#include <stddef.h>

/* Length of the prefix of s[0..n) that is complete UTF-8 and does not end
 * in U+FFFD. */
size_t serve_text_stable(const char *s, size_t n);

/* Offset of the earliest occurrence in s[0..n) of any of the stop strings,
 * or -1 when none occurs. */
long serve_text_find_stop(const char *s, size_t n, char *const *stop, int n_stop);

/* Bytes of s[0..n) that can be sent while more text may follow: n less the
 * longest tail of s that is a proper prefix of a stop string. */
size_t serve_text_holdback(const char *s, size_t n, char *const *stop, int n_stop);

#endif
