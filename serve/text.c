/*
 * text.c - the parts of a generation's text that can no longer change
 * (text.h).
 */
#include <string.h>

#include "text.h"

size_t serve_text_stable(const char *s, size_t n) {
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

long serve_text_find_stop(const char *s, size_t n, char *const *stop, int n_stop) {
    long best = -1;
    for (int i = 0; i < n_stop; i++) {
        size_t len = strlen(stop[i]);
        if (len == 0 || len > n) continue;
        const char *at = memmem(s, n, stop[i], len);
        if (at && (best < 0 || at - s < best)) best = at - s;
    }
    return best;
}

size_t serve_text_holdback(const char *s, size_t n, char *const *stop, int n_stop) {
    size_t hold = 0;
    for (int i = 0; i < n_stop; i++) {
        size_t len = strlen(stop[i]);
        for (size_t k = len > 0 ? len - 1 : 0; k > hold; k--) {
            if (k <= n && !memcmp(s + n - k, stop[i], k)) {
                hold = k;
                break;
            }
        }
    }
    return n - hold;
}
