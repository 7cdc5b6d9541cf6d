/*
 * stream.c - generated text to stdout as it is produced (stream.h).
 */
#include <stdio.h>
#include <stdlib.h>

#include "stream.h"

/* Length of the prefix of s[0..n) that is complete UTF-8 and does not end in
 * U+FFFD (EF BF BD). */
static size_t stable_len(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    for (;;) {
        /* drop an incomplete last sequence */
        size_t i = n, back = 0;
        while (i > 0 && back < 4 && (u[i - 1] & 0xC0) == 0x80) {
            i--;
            back++;
        }
        if (i > 0 && u[i - 1] >= 0xC0) {
            unsigned char lead = u[i - 1];
            size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
            if (back + 1 < need) n = i - 1;
        }
        if (n >= 3 && u[n - 3] == 0xEF && u[n - 2] == 0xBF && u[n - 1] == 0xBD) {
            n -= 3;
            continue;
        }
        return n;
    }
}

int stream_emit(streamer *st, int final, moe_err *err) {
    char *text = NULL;
    size_t len = 0;
    if (moe_detokenize(st->tok, st->ids, st->n_ids, 1, &text, &len, err)) return -1;
    size_t base = 0; /* where the continuation starts: after the context's text */
    while (base < st->prefix_len && base < len && text[base] == st->prefix[base]) base++;
    const char *cont = text + base;
    size_t clen = len - base, upto = final ? clen : stable_len(cont, clen);
    if (upto > st->printed) {
        fwrite(cont + st->printed, 1, upto - st->printed, stdout);
        fflush(stdout);
        st->printed = upto;
    }
    free(text);
    return 0;
}

