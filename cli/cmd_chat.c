/*
 * cmd_chat.c - `moe chat MODEL`: a conversation in the terminal. Each line
 * read from stdin is a user message; the whole conversation is rendered with
 * the model's chat template (as apply_chat_template does, generation prompt
 * on), tokenized without added special tokens, and the reply is sampled and
 * streamed to stdout, ending at EOS or any special token (end of turn) or
 * after -n tokens, followed by a newline. "/exit" or end of input ends the
 * chat. Only the tokens past what the KV cache already holds are run: the
 * cache is cut back to the longest common prefix of the new prompt and the
 * tokens fed so far. Works the same with stdin a pipe (no prompts are shown
 * then), so it can be scripted. --messages starts from a saved conversation
 * and --save writes the conversation out at the end.
 */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "args.h"
#include "chat_prompt.h"
#include "cli.h"
#include "stream.h"

typedef struct chat_state {
    moe_tokenizer *tok;
    moe_model *m;
    moe_session *s;
    moe_sampler *smp;
    moe_chat_template *t;
    cJSON *msgs;     /* the conversation so far */
    int32_t *fed;    /* [n_fed] tokens in the KV cache, in order */
    int n_fed, cap_fed;
    float *logits;   /* [vocab] */
    int vocab, ctx;
} chat_state;

static int fed_push(chat_state *c, int32_t id) {
    if (c->n_fed == c->cap_fed) {
        int cap = c->cap_fed ? 2 * c->cap_fed : 1024;
        int32_t *p = realloc(c->fed, (size_t)cap * sizeof *p);
        if (!p) return -1;
        c->fed = p;
        c->cap_fed = cap;
    }
    c->fed[c->n_fed++] = id;
    return 0;
}

/* A special token (EOS, an end-of-turn marker): text only when special tokens are kept. */
static int is_special(const moe_tokenizer *tok, int32_t id) {
    char *a = NULL, *b = NULL;
    size_t la = 0, lb = 0;
    moe_err err = {{0}};
    int special = 0;
    if (!moe_detokenize(tok, &id, 1, 1, &a, &la, &err) && !moe_detokenize(tok, &id, 1, 0, &b, &lb, &err))
        special = la == 0 && lb > 0;
    free(a);
    free(b);
    return special;
}

/* The conversation in path: a JSON list of messages (moe template's format,
 * or an object with a "messages" list); NULL after a printed error. */
static cJSON *load_messages(const char *path) {
    char *buf;
    size_t len;
    moe_err err = {{0}};
    if (cli_read_file(path, (size_t)64 << 20, &buf, &len, &err)) {
        cli_error("chat", "--messages: %s", err.msg);
        return NULL;
    }
    cJSON *j = cJSON_ParseWithLength(buf, len);
    if (j && chat_keep_number_literals(j, buf, len)) {
        cJSON_Delete(j);
        j = NULL;
    }
    free(buf);
    cJSON *list = cJSON_IsObject(j) ? cJSON_DetachItemFromObjectCaseSensitive(j, "messages") : NULL;
    if (list) {
        cJSON_Delete(j);
        j = list;
    }
    if (!cJSON_IsArray(j)) {
        cli_error("chat", "--messages: %s is not a JSON list of messages", path);
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

static int save_messages(const char *path, const cJSON *msgs) {
    char *text = cJSON_Print(msgs);
    FILE *f = text ? fopen(path, "wb") : NULL;
    int ok = f && fputs(text, f) >= 0 && fputc('\n', f) != EOF;
    if (f && fclose(f) != 0) ok = 0;
    free(text);
    if (!ok) cli_error("chat", "--save: cannot write %s", path);
    return ok ? 0 : -1;
}

static void add_message(cJSON *msgs, const char *role, const char *content) {
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", role);
    cJSON_AddStringToObject(m, "content", content);
    cJSON_AddItemToArray(msgs, m);
}

/* Bring the cache to ids[0..n) (keeping the common prefix) and leave the
 * last token's logits in c->logits. */
static int prefill(chat_state *c, const int32_t *ids, int n) {
    moe_err err = {{0}};
    int common = 0;
    while (common < n && common < c->n_fed && c->fed[common] == ids[common]) common++;
    if (common == n) common = n - 1; /* the last token runs again for its logits */
    if (common < c->n_fed) {
        if (moe_seq_rm(c->s, 0, common, -1, &err)) {
            cli_error("chat", "trimming the cache: %s", err.msg);
            return -1;
        }
        c->n_fed = common;
    }
    for (int i = common; i < n; i++) {
        if (ids[i] >= c->vocab) {
            cli_error("chat", "the tokenizer produced id %d but the model's vocabulary is %d", ids[i], c->vocab);
            return -1;
        }
    }
    if (moe_forward(c->s, ids + common, n - common, c->logits, 0, &err)) {
        cli_error("chat", "prefill: %s", err.msg);
        return -1;
    }
    for (int i = common; i < n; i++)
        if (fed_push(c, ids[i])) return -1;
    return 0;
}

/* One assistant turn after the conversation c->msgs: streamed, then added to it. */
static int reply(chat_state *c, int max_new) {
    char *prompt = NULL;
    size_t plen = 0;
    int32_t *ids = NULL;
    int n = 0, rc = -1;
    moe_err err = {{0}};
    streamer st = {0};
    if (chat_render("chat", c->t, c->msgs, NULL, 1, c->tok, &prompt, &plen)) return -1;
    if (moe_tokenize(c->tok, prompt, plen, 0, &ids, &n, &err)) {
        cli_error("chat", "tokenizing the conversation: %s", err.msg);
        goto done;
    }
    if (n == 0 || n >= c->ctx) {
        cli_error("chat", "the conversation is %d tokens and the context holds %d (raise --ctx)", n, c->ctx);
        goto done;
    }
    if (prefill(c, ids, n)) goto done;
    st.tok = c->tok;
    st.tok_vocab = moe_tokenizer_vocab(c->tok);
    st.n_ctx_ids = n < CONTEXT_TOKENS ? n : CONTEXT_TOKENS;
    st.ids = malloc((size_t)(st.n_ctx_ids + max_new + 1) * sizeof *st.ids);
    if (!st.ids) goto done;
    memcpy(st.ids, ids + n - st.n_ctx_ids, (size_t)st.n_ctx_ids * sizeof *st.ids);
    st.n_ids = st.n_ctx_ids;
    if (moe_detokenize(c->tok, st.ids, st.n_ids, 1, &st.prefix, &st.prefix_len, &err)) goto decode_fail;
    const int eos_tok = moe_tokenizer_eos(c->tok), eos_cfg = moe_model_config(c->m)->eos_id;
    for (int k = 0; k < max_new; k++) {
        int32_t t = moe_sample(c->smp, c->logits);
        if (t == eos_tok || t == eos_cfg || (t < st.tok_vocab && is_special(c->tok, t))) break;
        if (t < st.tok_vocab) {
            st.ids[st.n_ids++] = t;
            if (stream_emit(&st, 0, &err)) goto decode_fail;
        }
        if (k + 1 == max_new || c->n_fed + 1 >= c->ctx) break;
        if (moe_forward(c->s, &t, 1, c->logits, 0, &err)) {
            cli_error("chat", "decode: %s", err.msg);
            goto done;
        }
        if (fed_push(c, t)) goto done;
    }
    if (stream_emit(&st, 1, &err)) goto decode_fail;
    printf("\n");
    fflush(stdout);
    char *text = NULL;
    size_t tlen = 0;
    if (moe_detokenize(c->tok, st.ids + st.n_ctx_ids, st.n_ids - st.n_ctx_ids, 1, &text, &tlen, &err)) goto decode_fail;
    add_message(c->msgs, "assistant", text);
    free(text);
    rc = 0;
    goto done;
decode_fail:
    cli_error("chat", "decoding: %s", err.msg);
done:
    free(st.ids);
    free(st.prefix);
    free(ids);
    free(prompt);
    return rc;
}

int cmd_chat(int argc, char **argv) {
    const char *tpl_file = NULL, *system = NULL, *msgs_file = NULL, *save_file = NULL;
    int n_new = 512, top_k = 40, threads = 0, n_ctx = 0;
    float temp = 0.8f, top_p = 0.95f;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t seed = (uint64_t)now.tv_sec * 1000000007ull ^ (uint64_t)now.tv_nsec;
    const arg_opt opts[] = {
        {"--chat-template", NULL, ARG_STR, &tpl_file, 0, 0, 0, "FILE", "a Jinja template file instead of the model's own"},
        {"--system", NULL, ARG_STR, &system, 0, 0, 0, "TEXT", "a system message to start the conversation"},
        {"--messages", "-m", ARG_STR, &msgs_file, 0, 0, 0, "FILE", "start from this conversation (as 'moe template' takes it)"},
        {"--save", NULL, ARG_STR, &save_file, 0, 0, 0, "FILE", "write the conversation (JSON) there at the end"},
        {"--max-tokens", "-n", ARG_INT, &n_new, 1, 1 << 24, 0, "N", "at most N tokens per reply (512)"},
        {"--temp", NULL, ARG_FLOAT, &temp, 0, 1e6, 0, "T", "temperature, 0 = greedy (0.8)"},
        {"--top-k", NULL, ARG_INT, &top_k, 0, 1 << 30, 0, "K", "keep the K most likely, 0 = off (40)"},
        {"--top-p", NULL, ARG_FLOAT, &top_p, 0, 1, 1, "P", "nucleus mass in (0, 1], 1 = off (0.95)"},
        {"--seed", NULL, ARG_U64, &seed, 0, 0, 0, "S", "random seed (default: from the clock)"},
        ARG_THREADS(&threads, "-t", "threads (0 = all CPUs)"),
        {"--ctx", "-c", ARG_INT, &n_ctx, 0, 1 << 24, 0, "N", "context positions (0 = the model's, at most 4096)"},
    };
    const arg_cmd cmd = {"chat", "MODEL [--system TEXT] [-m FILE] [--save FILE] [-n N] [--temp T] [--top-k K] [--top-p P] [--seed S] "
                         "[--threads N] [--ctx N] [--chat-template FILE]",
                         "Chat with a model in the terminal: each line of input is a user message, the\n"
                         "reply is streamed to stdout. '/exit' or the end of input ends the chat.",
                         "The conversation is rendered with the model's chat template (see 'moe template')\n"
                         "and only the tokens the KV cache does not hold yet are run. A reply ends at EOS,\n"
                         "at any special token (the end of the model's turn) or after -n tokens. With\n"
                         "stdin not a terminal no prompt is shown, so a chat can be piped in.",
                         opts, (int)(sizeof opts / sizeof *opts), 1, 1, "MODEL"};
    const char *pos[1];
    int np;
    int r = args_parse(&cmd, argc, argv, pos, &np);
    if (r != ARGS_OK) return args_exit(r);
    chat_state c = {0};
    int rc = 1;
    char *line = NULL;
    size_t line_cap = 0;
    moe_err err = {{0}};
    if (chat_load_template("chat", pos[0], tpl_file, &c.t)) goto done;
    if (cli_load_tokenizer("chat", pos[0], &c.tok)) goto done;
    if (cli_load_model("chat", pos[0], &c.m)) goto done;
    c.vocab = moe_model_config(c.m)->vocab;
    moe_sampler_opts so = {.temp = temp, .top_k = top_k, .top_p = top_p, .seed = seed};
    if (moe_sampler_new(&c.smp, &so, c.vocab, &err)) {
        cli_error("chat", "%s", err.msg);
        rc = 2;
        goto done;
    }
    moe_session_opts sopt = {.n_ctx = n_ctx, .n_threads = threads};
    if (moe_session_new(&c.s, c.m, &sopt, &err)) {
        cli_error("chat", "%s", err.msg);
        goto done;
    }
    c.ctx = moe_session_ctx(c.s);
    cli_warn_positions("chat", pos[0], c.m, c.ctx);
    c.logits = malloc((size_t)c.vocab * sizeof *c.logits);
    c.msgs = msgs_file ? load_messages(msgs_file) : cJSON_CreateArray();
    if (msgs_file && !c.msgs) goto done;
    if (!c.logits || !c.msgs) {
        cli_error("chat", "out of memory");
        goto done;
    }
    if (system) add_message(c.msgs, "system", system);
    const int interactive = isatty(STDIN_FILENO);
    for (;;) {
        if (interactive) {
            fprintf(stderr, "> ");
            fflush(stderr);
        }
        ssize_t len = getline(&line, &line_cap, stdin);
        if (len < 0) break;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (!strcmp(line, "/exit")) break;
        if (len == 0) continue;
        add_message(c.msgs, "user", line);
        if (reply(&c, n_new)) goto done;
    }
    rc = save_file && save_messages(save_file, c.msgs) ? 1 : 0;
done:
    free(line);
    free(c.fed);
    free(c.logits);
    cJSON_Delete(c.msgs);
    moe_chat_template_free(c.t);
    moe_sampler_free(c.smp);
    moe_session_free(c.s);
    moe_model_free(c.m);
    moe_tokenizer_free(c.tok);
    return rc;
}
