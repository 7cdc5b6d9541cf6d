/*
 * test_serve_api.c - the pure parts of `moe serve`: request parsing and
 * validation (serve/api.c), the text that may be streamed yet
 * (serve/text.c), replies (serve/reply.c) and the Prometheus exposition
 * (serve/metrics.c).
 */
#include <stdlib.h>
#include <string.h>

#include "../serve/api.h"
#include "../serve/chat.h"
#include "../serve/metrics.h"
#include "../serve/text.h"
#include "test.h"

static int parse(serve_kind kind, const char *body, serve_params *p, serve_error *e) {
    memset(e, 0, sizeof *e);
    return serve_parse_request(kind, body, strlen(body), 512, p, e);
}

/* The body is refused with 400 naming param ("" for none). */
static void refused(serve_kind kind, const char *body, const char *param) {
    serve_params p;
    serve_error e;
    int rc = parse(kind, body, &p, &e);
    CHECK_MSG(rc == -1, "accepted: %s", body);
    if (rc == 0) {
        serve_params_free(&p);
        return;
    }
    CHECK_MSG(e.status == 400, "%s: status %d", body, e.status);
    CHECK_MSG(!strcmp(e.param, param), "%s: param '%s', expected '%s' (%s)", body, e.param, param, e.message);
    CHECK(e.message[0]);
}

TEST(serve_parse_completion_defaults) {
    serve_params p;
    serve_error e;
    CHECK(parse(SERVE_COMPLETION, "{\"prompt\": \"hello\", \"model\": \"m\"}", &p, &e) == 0);
    CHECK(p.prompt && !strcmp(p.prompt, "hello"));
    CHECK(p.prompt_ids == NULL);
    CHECK_EQ_INT(p.max_tokens, -1);
    CHECK_NEAR(p.temperature, 1.0, 0);
    CHECK_NEAR(p.top_p, 1.0, 0);
    CHECK_EQ_INT(p.top_k, 0);
    CHECK_EQ_INT(p.has_seed, 0);
    CHECK_EQ_INT(p.stream, 0);
    CHECK_EQ_INT(p.ignore_eos, 0);
    CHECK_EQ_INT(p.logprobs, 0);
    CHECK_EQ_INT(p.n_stop, 0);
    serve_params_free(&p);
}

TEST(serve_parse_completion_fields) {
    serve_params p;
    serve_error e;
    const char *body = "{\"prompt\": [1, 2, 511], \"max_tokens\": 7, \"temperature\": 0, \"top_p\": 0.5,"
                       " \"top_k\": 3, \"seed\": -1, \"stop\": [\"a\", \"bc\"], \"stream\": true, \"ignore_eos\": true,"
                       " \"logprobs\": 2, \"n\": 1, \"echo\": false, \"frequency_penalty\": 0,"
                       " \"user\": \"x\", \"something_new\": {\"deep\": [1]}, \"suffix\": null}";
    CHECK(parse(SERVE_COMPLETION, body, &p, &e) == 0);
    CHECK_EQ_INT(p.n_prompt_ids, 3);
    CHECK(p.prompt_ids && p.prompt_ids[2] == 511);
    CHECK_EQ_INT(p.max_tokens, 7);
    CHECK_NEAR(p.temperature, 0, 0);
    CHECK_NEAR(p.top_p, 0.5, 0);
    CHECK_EQ_INT(p.top_k, 3);
    CHECK(p.has_seed && p.seed == UINT64_MAX);
    CHECK_EQ_INT(p.n_stop, 2);
    CHECK(p.n_stop == 2 && !strcmp(p.stop[1], "bc"));
    CHECK_EQ_INT(p.stream, 1);
    CHECK_EQ_INT(p.ignore_eos, 1);
    CHECK(p.logprobs == 1 && p.top_logprobs == 2);
    serve_params_free(&p);
    /* one string stop; a list holding one prompt; null is absent */
    CHECK(parse(SERVE_COMPLETION, "{\"prompt\": [\"x\"], \"stop\": \"\\n\", \"max_tokens\": null}", &p, &e) == 0);
    CHECK(p.prompt && !strcmp(p.prompt, "x") && p.n_stop == 1 && !strcmp(p.stop[0], "\n"));
    CHECK_EQ_INT(p.max_tokens, -1);
    serve_params_free(&p);
    CHECK(parse(SERVE_COMPLETION, "{\"prompt\": [[5, 6]]}", &p, &e) == 0);
    CHECK(p.n_prompt_ids == 2 && p.prompt_ids[0] == 5);
    serve_params_free(&p);
}

TEST(serve_parse_refusals) {
    refused(SERVE_COMPLETION, "{}", "prompt");
    refused(SERVE_COMPLETION, "{\"prompt\": 5}", "prompt");
    refused(SERVE_COMPLETION, "{\"prompt\": []}", "prompt");
    refused(SERVE_COMPLETION, "{\"prompt\": [1, 512]}", "prompt");
    refused(SERVE_COMPLETION, "{\"prompt\": [1, -1]}", "prompt");
    refused(SERVE_COMPLETION, "{\"prompt\": [1, 2.5]}", "prompt");
    refused(SERVE_COMPLETION, "{\"prompt\": [\"a\", \"b\"]}", "prompt");
    refused(SERVE_COMPLETION, "{\"prompt\": \"x\", \"model\": 3}", "model");
    refused(SERVE_COMPLETION, "{\"prompt\": \"x\", \"max_tokens\": \"3\"}", "max_tokens");
    refused(SERVE_COMPLETION, "{\"prompt\": \"x\", \"max_tokens\": 0}", "max_tokens");
    refused(SERVE_COMPLETION, "{\"prompt\": \"x\", \"max_tokens\": 1.5}", "max_tokens");
    refused(SERVE_COMPLETION, "{\"prompt\": \"x\", \"max_tokens\": 1e300}", "max_tokens");
    refused(SERVE_COMPLETION, "{\"prompt\": \"x\", \"temperature\": -0.1}", "temperature");
    refused(SERVE_COMPLETION, "{\"prompt\": \"x\", \"temperature\": \"hot\"}", "temperature");
    refused(SERVE_COMPLETION, "{\"prompt\": \"x\", \"top_p\": 0}", "top_p");
    refused(SERVE_COMPLETION, "{\"prompt\": \"x\", \"top_p\": 1.01}", "top_p");
    refused(SERVE_COMPLETION, "{\"prompt\": \"x\", \"top_k\": -1}", "top_k");
    refused(SERVE_COMPLETION, "{\"prompt\": \"x\", \"seed\": 0.5}", "seed");
    refused(SERVE_COMPLETION, "{\"prompt\": \"x\", \"seed\": 1e20}", "seed");
    refused(SERVE_COMPLETION, "{\"prompt\": \"x\", \"stop\": 3}", "stop");
    refused(SERVE_COMPLETION, "{\"prompt\": \"x\", \"stop\": [\"a\", 3]}", "stop");
    refused(SERVE_COMPLETION, "{\"prompt\": \"x\", \"stop\": \"\"}", "stop");
    refused(SERVE_COMPLETION, "{\"prompt\": \"x\", \"stop\": [\"a\",\"b\",\"c\",\"d\",\"e\"]}", "stop");
    refused(SERVE_COMPLETION, "{\"prompt\": \"x\", \"stream\": 1}", "stream");
    refused(SERVE_COMPLETION, "{\"prompt\": \"x\", \"ignore_eos\": \"yes\"}", "ignore_eos");
    refused(SERVE_COMPLETION, "{\"prompt\": \"x\", \"logprobs\": 21}", "logprobs");
    refused(SERVE_COMPLETION, "{\"prompt\": \"x\", \"logprobs\": true}", "logprobs");
    refused(SERVE_COMPLETION, "{\"prompt\": \"x\", \"echo\": true}", "echo");
    refused(SERVE_COMPLETION, "{\"prompt\": \"x\", \"n\": 2}", "n");
    refused(SERVE_COMPLETION, "{\"prompt\": \"x\", \"best_of\": 3}", "best_of");
    refused(SERVE_COMPLETION, "{\"prompt\": \"x\", \"presence_penalty\": 0.5}", "presence_penalty");
    refused(SERVE_COMPLETION, "{\"prompt\": \"x\", \"logit_bias\": {\"5\": 1}}", "logit_bias");
    refused(SERVE_COMPLETION, "{\"prompt\": \"x\", \"suffix\": \"s\"}", "suffix");
    /* the body as a whole */
    refused(SERVE_COMPLETION, "", "");
    refused(SERVE_COMPLETION, "[1]", "");
    refused(SERVE_COMPLETION, "{\"prompt\": \"x\"", "");
    refused(SERVE_COMPLETION, "{\"prompt\": \"x\"} {}", "");
    refused(SERVE_COMPLETION, "{\"prompt\": \"\xc3\x28\"}", "");
    refused(SERVE_COMPLETION, "null", "");
}

TEST(serve_parse_chat) {
    serve_params p;
    serve_error e;
    const char *body = "{\"messages\": [{\"role\": \"system\", \"content\": \"be brief\"},"
                       " {\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"hi \"},"
                       " {\"type\": \"text\", \"text\": \"there\"}]}], \"max_completion_tokens\": 9,"
                       " \"logprobs\": true, \"top_logprobs\": 4}";
    CHECK(parse(SERVE_CHAT, body, &p, &e) == 0);
    CHECK_EQ_INT(cJSON_GetArraySize(p.messages), 2);
    const cJSON *c = cJSON_GetObjectItem(cJSON_GetArrayItem(p.messages, 1), "content");
    CHECK(cJSON_IsString(c) && !strcmp(c->valuestring, "hi there"));
    CHECK_EQ_INT(p.max_tokens, 9);
    CHECK(p.logprobs == 1 && p.top_logprobs == 4);
    serve_params_free(&p);
    refused(SERVE_CHAT, "{\"prompt\": \"x\"}", "messages");
    refused(SERVE_CHAT, "{\"messages\": []}", "messages");
    refused(SERVE_CHAT, "{\"messages\": {}}", "messages");
    refused(SERVE_CHAT, "{\"messages\": [{\"role\": \"king\", \"content\": \"x\"}]}", "messages");
    refused(SERVE_CHAT, "{\"messages\": [{\"content\": \"x\"}]}", "messages");
    refused(SERVE_CHAT, "{\"messages\": [{\"role\": \"user\", \"content\": 5}]}", "messages");
    refused(SERVE_CHAT, "{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image_url\"}]}]}", "messages");
    refused(SERVE_CHAT, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"logprobs\": 3}", "logprobs");
    refused(SERVE_CHAT, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"top_logprobs\": 2}", "top_logprobs");
    refused(SERVE_CHAT, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"tools\": 1}", "tools");
}

TEST(serve_utf8) {
    CHECK(serve_utf8_valid("", 0));
    CHECK(serve_utf8_valid("a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 10));
    CHECK(!serve_utf8_valid("\xc3", 1));          /* truncated */
    CHECK(!serve_utf8_valid("\xc0\xaf", 2));      /* overlong */
    CHECK(!serve_utf8_valid("\xed\xa0\x80", 3));  /* surrogate */
    CHECK(!serve_utf8_valid("\xf4\x90\x80\x80", 4)); /* past U+10FFFF */
    CHECK(!serve_utf8_valid("\x80", 1));
    CHECK(!serve_utf8_valid("\xff", 1));
}

TEST(serve_error_object) {
    serve_error e;
    serve_fail(&e, 400, "top_p", "'top_p' is %g", 3.0);
    char *s = serve_error_json(&e);
    cJSON *o = cJSON_Parse(s);
    cJSON *err = cJSON_GetObjectItem(o, "error");
    CHECK(cJSON_IsString(cJSON_GetObjectItem(err, "message")));
    CHECK(!strcmp(cJSON_GetObjectItem(err, "type")->valuestring, "invalid_request_error"));
    CHECK(!strcmp(cJSON_GetObjectItem(err, "param")->valuestring, "top_p"));
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(err, "code")));
    cJSON_Delete(o);
    free(s);
    serve_fail(&e, 401, NULL, "no key");
    s = serve_error_json(&e);
    o = cJSON_Parse(s);
    err = cJSON_GetObjectItem(o, "error");
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(err, "param")));
    CHECK(!strcmp(cJSON_GetObjectItem(err, "type")->valuestring, "authentication_error"));
    cJSON_Delete(o);
    free(s);
}

TEST(serve_text_stop_and_holdback) {
    char *stops[] = {"END", "\n\n"};
    const char *t = "abc EN";
    CHECK_EQ_INT(serve_text_find_stop(t, strlen(t), stops, 2), -1);
    CHECK_EQ_INT(serve_text_holdback(t, strlen(t), stops, 2), 4);   /* "EN" may become "END" */
    t = "abc ENDx\n\n";
    CHECK_EQ_INT(serve_text_find_stop(t, strlen(t), stops, 2), 4);
    t = "line\n";
    CHECK_EQ_INT(serve_text_holdback(t, strlen(t), stops, 2), 4);
    CHECK_EQ_INT(serve_text_find_stop("x\n\ny END", 9, stops, 2), 1); /* the earliest */
    CHECK_EQ_INT(serve_text_holdback("abc", 3, stops, 0), 3);
    /* a stop string longer than the text */
    CHECK_EQ_INT(serve_text_holdback("E", 1, stops, 1), 0);
    /* partial UTF-8 and a trailing U+FFFD are held back */
    CHECK_EQ_INT(serve_text_stable("a\xe2\x82", 3), 1);
    CHECK_EQ_INT(serve_text_stable("a\xe2\x82\xac", 4), 4);
    CHECK_EQ_INT(serve_text_stable("ab\xef\xbf\xbd", 5), 2);
    CHECK_EQ_INT(serve_text_stable("", 0), 0);
}

TEST(serve_reply_shapes) {
    serve_reply r = {.kind = SERVE_COMPLETION, .id = "cmpl-1", .model = "m", .created = 5};
    char *s = serve_reply_final(&r, "hi\x01", 3, NULL, 0, "length", 4, 3);
    cJSON *o = cJSON_Parse(s);
    CHECK(o != NULL);
    cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "choices"), 0);
    CHECK(!strcmp(cJSON_GetObjectItem(ch, "text")->valuestring, "hi\x01"));
    CHECK(!strcmp(cJSON_GetObjectItem(ch, "finish_reason")->valuestring, "length"));
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(ch, "logprobs")));
    CHECK_EQ_INT(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "usage"), "total_tokens")->valueint, 7);
    CHECK(!strcmp(cJSON_GetObjectItem(o, "object")->valuestring, "text_completion"));
    cJSON_Delete(o);
    free(s);
    /* a stream chunk: one SSE event; usage and finish_reason only on the last */
    r.kind = SERVE_CHAT;
    s = serve_reply_chunk(&r, "", 0, NULL, 0, 1, NULL, 4, 0);
    CHECK(!strncmp(s, "data: {", 7) && !strcmp(s + strlen(s) - 2, "\n\n"));
    o = cJSON_Parse(s + 6);
    ch = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "choices"), 0);
    CHECK(!strcmp(cJSON_GetObjectItem(cJSON_GetObjectItem(ch, "delta"), "role")->valuestring, "assistant"));
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(ch, "finish_reason")));
    CHECK(cJSON_GetObjectItem(o, "usage") == NULL);
    CHECK(!strcmp(cJSON_GetObjectItem(o, "object")->valuestring, "chat.completion.chunk"));
    cJSON_Delete(o);
    free(s);
    s = serve_reply_chunk(&r, "yo", 2, NULL, 0, 0, "stop", 4, 2);
    o = cJSON_Parse(s + 6);
    ch = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "choices"), 0);
    CHECK(!strcmp(cJSON_GetObjectItem(cJSON_GetObjectItem(ch, "delta"), "content")->valuestring, "yo"));
    CHECK(!strcmp(cJSON_GetObjectItem(ch, "finish_reason")->valuestring, "stop"));
    CHECK_EQ_INT(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "usage"), "completion_tokens")->valueint, 2);
    cJSON_Delete(o);
    free(s);
}

TEST(serve_metrics_exposition) {
    moe_config *cfg = calloc(1, sizeof *cfg);
    cfg->n_layers = 3;
    cfg->layer[0].moe = 1, cfg->layer[0].n_experts = 4;
    cfg->layer[2].moe = 1, cfg->layer[2].n_experts = 2;
    serve_metrics *m = serve_metrics_new(cfg);
    CHECK(m != NULL);
    serve_metrics_request(m, 200);
    serve_metrics_request(m, 200);
    serve_metrics_request(m, 429);
    serve_metrics_tokens(m, 5, 2);
    serve_metrics_batch(m, 3);
    serve_metrics_ttft(m, 0.2);
    int expert[4] = {3, 1, 3, 0}, seq[2] = {0, 0}, pos[2] = {0, 1};
    moe_route_info ri = {.layer = 0, .T = 2, .K = 2, .E = 4, .expert = expert, .seq = seq, .pos = pos};
    serve_metrics_route(m, &ri);
    char *t = serve_metrics_text(m);
    CHECK(strstr(t, "moe_requests_total{status=\"200\"} 2\n") != NULL);
    CHECK(strstr(t, "moe_requests_total{status=\"429\"} 1\n") != NULL);
    CHECK(strstr(t, "moe_prompt_tokens_total 5\n") != NULL);
    CHECK(strstr(t, "moe_batch_tokens_bucket{le=\"2\"} 0\n") != NULL);
    CHECK(strstr(t, "moe_batch_tokens_bucket{le=\"4\"} 1\n") != NULL);
    CHECK(strstr(t, "moe_batch_tokens_bucket{le=\"+Inf\"} 1\n") != NULL);
    CHECK(strstr(t, "moe_time_to_first_token_seconds_count 1\n") != NULL);
    CHECK(strstr(t, "moe_expert_tokens_total{layer=\"0\",expert=\"3\"} 2\n") != NULL);
    CHECK(strstr(t, "moe_expert_tokens_total{layer=\"2\",expert=\"1\"} 0\n") != NULL);
    CHECK(strstr(t, "layer=\"1\"") == NULL); /* dense */
    CHECK(strstr(t, "# TYPE moe_expert_tokens_total counter\n") != NULL);
    free(t);
    serve_metrics_free(m);
    free(cfg);
}

TEST(serve_parse_control_bytes) {
    serve_params p;
    serve_error e;
    static const char nul_body[] = "{\"prompt\": \"a\0b\"}";
    CHECK(serve_parse_request(SERVE_COMPLETION, nul_body, sizeof nul_body - 1, 512, &p, &e) == -1);
    CHECK(e.status == 400 && strstr(e.message, "control character"));
    refused(SERVE_COMPLETION, "{\"prompt\": \"a\x01\"}", "");
    /* whitespace between tokens is fine */
    CHECK(parse(SERVE_COMPLETION, "{\r\n\t\"prompt\": \"a\\u0001\"\n}\n", &p, &e) == 0);
    CHECK(p.prompt && p.prompt[1] == 1);
    serve_params_free(&p);
}

/* A chat request's prompt: the messages rendered with the template (with
 * add_generation_prompt and bos_token), tokenized without added specials. */
TEST(serve_chat_prompt_renders) {
    char path[1024];
    snprintf(path, sizeof path, "%s/cli/tokenizer.json", test_fixtures());
    moe_tokenizer *tok = NULL;
    moe_err err = {{0}};
    CHECK(moe_tokenizer_load(&tok, path, &err) == 0);
    if (!tok) return;
    static const char src[] =
        "{{ bos_token }}{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}"
        "{% if messages[0].role == 'tool' %}{{ raise_exception('a tool message first') }}{% endif %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}";
    moe_chat_template *t = NULL;
    CHECK(moe_chat_template_parse(&t, src, sizeof src - 1, "test", &err) == 0);
    char *bos = serve_chat_special(tok, moe_tokenizer_bos(tok));
    char *none = serve_chat_special(tok, -1);
    CHECK(!strcmp(bos, "<s>") && !strcmp(none, ""));
    serve_params p;
    serve_error e;
    CHECK(parse(SERVE_CHAT, "{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"hi\"}]}]}",
                &p, &e) == 0);
    int32_t *ids = NULL, *want = NULL;
    int n = 0, n_want = 0;
    CHECK(serve_chat_prompt(t, tok, bos, "</s>", &p, &ids, &n, &e) == 0);
    const char *text = "<s><|user|>hi\n<|assistant|>";
    CHECK(moe_tokenize(tok, text, strlen(text), 0, &want, &n_want, &err) == 0);
    CHECK_EQ_INT(n, n_want);
    CHECK(n == n_want && ids && want && !memcmp(ids, want, (size_t)n * sizeof *ids));
    CHECK(n > 0 && ids[0] == moe_tokenizer_bos(tok)); /* the template's BOS, once */
    free(ids);
    free(want);
    serve_params_free(&p);
    /* a conversation the template refuses: 400 with its message */
    CHECK(parse(SERVE_CHAT, "{\"messages\": [{\"role\": \"tool\", \"content\": \"x\"}]}", &p, &e) == 0);
    CHECK(serve_chat_prompt(t, tok, bos, "</s>", &p, &ids, &n, &e) == -1);
    CHECK(e.status == 400 && strstr(e.message, "a tool message first") && !strcmp(e.param, "messages"));
    serve_params_free(&p);
    free(bos);
    free(none);
    moe_chat_template_free(t);
    moe_tokenizer_free(tok);
}

/* Generated text goes out byte for byte: a NUL or control character is
 * escaped (cJSON's strings would end at the NUL), bytes that are not UTF-8
 * become U+FFFD, valid characters stay. */
TEST(serve_reply_text_bytes) {
    serve_reply r = {.kind = SERVE_COMPLETION, .id = "cmpl-1", .model = "m", .created = 5};
    static const char text[] = "a\0b\"\\\n\x7f\xc3\xa9\xff\xe2\x82z";
    char *s = serve_reply_final(&r, text, sizeof text - 1, NULL, 0, "stop", 1, 1);
    CHECK(s && strstr(s, "\"text\":\"a\\u0000b\\\"\\\\\\u000a\\u007f\xc3\xa9\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdz\""));
    CHECK(serve_utf8_valid(s, strlen(s)));
    cJSON *o = cJSON_Parse(s);
    CHECK(o != NULL);
    cJSON_Delete(o);
    free(s);
    r.kind = SERVE_CHAT;
    s = serve_reply_chunk(&r, "\0", 1, NULL, 0, 0, NULL, 1, 1);
    CHECK(s && strstr(s, "\"content\":\"\\u0000\""));
    free(s);
}
