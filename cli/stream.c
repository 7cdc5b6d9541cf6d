/*
 * stream.c - generated text to stdout as it is produced (stream.h).
 */
#include <stdio.h>
#include <stdlib.h>

#include "../serve/text.h"
#include "stream.h"

int stream_emit(streamer *st, int final, moe_err *err) {
    char *text = NULL;
    size_t len = 0;
    if (moe_detokenize(st->tok, st->ids, st->n_ids, 1, &text, &len, err)) return -1;
    size_t base = 0; /* where the continuation starts: after the context's text */
    while (base < st->prefix_len && base < len && text[base] == st->prefix[base]) base++;
    const char *cont = text + base;
    size_t clen = len - base, upto = final ? clen : serve_text_stable(cont, clen);
    if (upto > st->printed) {
        fwrite(cont + st->printed, 1, upto - st->printed, stdout);
        fflush(stdout);
        st->printed = upto;
    }
    free(text);
    return 0;
}

