/*
 * fuzz_serve_request.c - libFuzzer target for the request bodies of
 * `moe serve` (serve/api.c) and the text it sends back (serve/reply.c,
 * serve/text.c). The input is parsed as a completions body and as a chat
 * body; an accepted one must hold values in range. Then the input is taken
 * as generated text: the reply built from it must be valid UTF-8 and valid
 * JSON, and the stop-string holdback must stay within the text.
 */
#include "../serve/api.h"
#include "../serve/text.h"
#include "fuzz_util.h"

static void check_params(const serve_params *p) {
    if (p->temperature < 0 || p->temperature > 2 || !(p->top_p > 0 && p->top_p <= 1) || p->top_k < 0)
        fuzz_die("accepted", "a sampling field out of range");
    if (p->n_stop < 0 || p->n_stop > SERVE_MAX_STOP || p->top_logprobs < 0 ||
        p->top_logprobs > SERVE_MAX_TOP_LOGPROBS || p->max_tokens == 0 || p->max_tokens < -1)
        fuzz_die("accepted", "a limit out of range");
    for (int i = 0; i < p->n_stop; i++)
        if (!p->stop[i][0] || strlen(p->stop[i]) > SERVE_MAX_STOP_LEN) fuzz_die("accepted", "a stop string");
    if (p->kind == SERVE_COMPLETION) {
        if (!p->prompt == !p->prompt_ids) fuzz_die("accepted", "not exactly one prompt");
        for (int i = 0; i < p->n_prompt_ids; i++)
            if (p->prompt_ids[i] < 0 || p->prompt_ids[i] >= 512) fuzz_die("accepted", "a token id out of range");
    } else if (!cJSON_IsArray(p->messages) || cJSON_GetArraySize(p->messages) < 1) {
        fuzz_die("accepted", "chat without messages");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *copy = malloc(size ? size : 1); /* exactly sized: ASan sees an overread */
    if (size) memcpy(copy, data, size);
    for (int kind = SERVE_COMPLETION; kind <= SERVE_CHAT; kind++) {
        serve_params p;
        serve_error e;
        if (serve_parse_request((serve_kind)kind, copy, size, 512, &p, &e) == 0) {
            check_params(&p);
            serve_params_free(&p);
        } else if (e.status != 400 || !e.message[0]) {
            fuzz_die("refused", "not a 400 with a message");
        }
    }
    /* the input as generated text */
    serve_reply r = {.kind = SERVE_CHAT, .id = "chatcmpl-1", .model = "m", .created = 1};
    char *json = serve_reply_final(&r, copy, size, NULL, 0, "stop", 1, 1);
    if (!json) fuzz_die("reply", "NULL");
    if (!serve_utf8_valid(json, strlen(json))) fuzz_die("reply", "not UTF-8");
    cJSON *o = cJSON_Parse(json);
    if (!o) fuzz_die("reply", "not JSON");
    cJSON_Delete(o);
    free(json);
    char *stops[] = {"\n\n", "END", "\xc3\xa9"};
    size_t keep = serve_text_holdback(copy, serve_text_stable(copy, size), stops, 3);
    long at = serve_text_find_stop(copy, size, stops, 3);
    if (keep > size || at >= (long)size) fuzz_die("text", "past the end");
    free(copy);
    return 0;
}
