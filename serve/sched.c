/*
 * sched.c - continuous batching (sched.h). The engine thread loops:
 *   1. drop what is over: cancelled requests and those past their deadline
 *      leave their slot;
 *   2. admit queued requests into free slots, oldest first. A slot's cache
 *      outlives its request: a new prompt that begins with tokens some slot
 *      holds (a shared system prompt, the earlier turns of a chat) starts
 *      from a copy of them (moe_seq_cp, then moe_seq_rm of the rest) and
 *      prefills only what follows;
 *   3. build ONE batch: the pending token of every decoding sequence, then
 *      prefill chunks of the admitted prompts, oldest first, until the batch
 *      holds step_tokens (so a long prompt is prefilled over several steps,
 *      interleaved with the others' decoding);
 *   4. moe_decode it (the only work done without the lock);
 *   5. for every sequence whose logits came back (a decode token, or the
 *      last prompt token): sample with its own sampler, record logprobs,
 *      release the text that can no longer change, stop at EOS, a stop
 *      string, max_tokens or a full context.
 * Each sequence's logits row depends only on its own tokens (the library
 * runs a batch as each sequence alone), and each has its own sampler, so a
 * request's answer does not depend on what else is running.
 *
 * Text: the generated ids are decoded after each token behind a few prompt
 * tokens of context, as `moe generate` prints them (cli/cmd_generate.c), so
 * a greedy answer is the text `moe generate --temp 0` writes.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "moe_route.h"
#include "sched.h"
#include "text.h"

#define CONTEXT_TOKENS 4 /* prompt tokens decoded in front of the output (as moe generate) */
#define SERVE_MIN_REUSE 4 /* cached prompt tokens worth a copy */

struct serve_sched {
    moe_model *model;
    moe_session *sess;
    const moe_tokenizer *tok;
    serve_metrics *metrics;
    serve_sched_opts o;
    int vocab;            /* V: rows of logits */
    int tok_vocab;        /* ids the tokenizer can decode */
    int ctx;              /* positions per sequence */
    int eos_tok, eos_cfg; /* end-of-sequence ids (-1: none) */
    uint64_t seed_counter;

    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t wake;  /* the engine: a new request or a cancellation */
    int quit;             /* the thread ends */
    int stopped;          /* it has ended (joined) */
    int closed;           /* no new requests */
    int abort;            /* end every request (shutdown past its grace) */
    serve_req *q_head, *q_tail;
    int n_queued;
    serve_req **running;  /* [n_slots] */
    int n_running;
    long long admitted;   /* admission order */

    /* what each slot's cache holds, kept after its request ends */
    int32_t *hist;        /* [n_slots][ctx] token ids */
    int *hist_n;          /* [n_slots] tokens in the cache */
    long long *used;      /* [n_slots] admission number of its last request */

    /* one step's batch (sized at creation) */
    int32_t *b_tok, *b_seq, *b_pos; /* [step_tokens] */
    int8_t *b_want;                 /* [step_tokens] */
    float *logits;                  /* [n_slots][V] */
};

double serve_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

void serve_sched_lock(serve_sched *s) { pthread_mutex_lock(&s->mu); }
void serve_sched_unlock(serve_sched *s) { pthread_mutex_unlock(&s->mu); }

void serve_sched_wait(serve_sched *s, serve_req *r, double seconds) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    double ns = (double)t.tv_nsec + seconds * 1e9;
    t.tv_sec += (time_t)(ns / 1e9);
    t.tv_nsec = (long)fmod(ns, 1e9);
    pthread_cond_timedwait(&r->cond, &s->mu, &t);
}

/* ------------------------------------------------------------- requests */

serve_req *serve_req_new(void) {
    serve_req *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->slot = -1;
    r->row = -1;
    r->refs = 1;
    pthread_cond_init(&r->cond, NULL);
    return r;
}

static void req_free(serve_req *r) {
    serve_params_free(&r->p);
    free(r->prompt);
    moe_sampler_free(r->smp);
    free(r->ids);
    free(r->prefix);
    free(r->text);
    free(r->lp);
    pthread_cond_destroy(&r->cond);
    free(r);
}

/* lock held */
static void unref_locked(serve_req *r) {
    if (--r->refs == 0) req_free(r);
}

void serve_req_release(serve_sched *s, serve_req *r) {
    if (!s) {
        if (--r->refs == 0) req_free(r);
        return;
    }
    pthread_mutex_lock(&s->mu);
    unref_locked(r);
    pthread_mutex_unlock(&s->mu);
}

static void queue_remove(serve_sched *s, serve_req *r) {
    serve_req **pp = &s->q_head, *prev = NULL;
    while (*pp && *pp != r) {
        prev = *pp;
        pp = &(*pp)->q_next;
    }
    if (!*pp) return;
    *pp = r->q_next;
    if (s->q_tail == r) s->q_tail = prev;
    r->q_next = NULL;
    r->queued = 0;
    s->n_queued--;
}

/* Forget r's slot and mark it done; drops the engine's reference. Lock held. */
static void end_locked(serve_sched *s, serve_req *r) {
    if (r->slot >= 0) { /* the slot keeps its cache for a later prompt */
        s->running[r->slot] = NULL;
        s->n_running--;
        r->slot = -1;
    }
    if (r->queued) queue_remove(s, r);
    r->done = 1;
    pthread_cond_broadcast(&r->cond);
    unref_locked(r);
}

static void fail_locked(serve_sched *s, serve_req *r, int status, const char *msg) {
    serve_fail(&r->error, status, NULL, "%s", msg);
    end_locked(s, r);
}

void serve_req_cancel(serve_sched *s, serve_req *r) {
    pthread_mutex_lock(&s->mu);
    if (!r->done && !r->cancelled) {
        r->cancelled = 1;
        /* a queued request holds no slot: gone at once; a running one is
         * dropped by the engine before its next step */
        if (r->queued) end_locked(s, r);
        pthread_cond_signal(&s->wake);
    }
    pthread_mutex_unlock(&s->mu);
}

int serve_sched_submit(serve_sched *s, serve_req *r) {
    pthread_mutex_lock(&s->mu);
    int rc = SERVE_SUBMIT_OK;
    int free_slots = s->o.n_slots - s->n_running;
    if (s->closed) rc = SERVE_SUBMIT_CLOSED;
    else if (s->n_queued >= s->o.max_queue + (free_slots > 0 ? free_slots : 0)) rc = SERVE_SUBMIT_FULL;
    if (rc == SERVE_SUBMIT_OK) {
        r->refs++;
        r->queued = 1;
        if (s->q_tail) s->q_tail->q_next = r;
        else s->q_head = r;
        s->q_tail = r;
        s->n_queued++;
        pthread_cond_signal(&s->wake);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

void serve_sched_close(serve_sched *s) {
    pthread_mutex_lock(&s->mu);
    s->closed = 1;
    pthread_mutex_unlock(&s->mu);
}

int serve_sched_active(serve_sched *s) {
    pthread_mutex_lock(&s->mu);
    int n = s->n_queued + s->n_running;
    pthread_mutex_unlock(&s->mu);
    return n;
}

static void cancel_all_locked(serve_sched *s) {
    while (s->q_head) fail_locked(s, s->q_head, 503, "the server is shutting down");
    for (int i = 0; i < s->o.n_slots; i++)
        if (s->running[i]) fail_locked(s, s->running[i], 503, "the server is shutting down");
}

/* The running ones are ended by the engine thread (their slots are its
 * session's), before its next step. */
void serve_sched_cancel_all(serve_sched *s) {
    pthread_mutex_lock(&s->mu);
    s->abort = 1;
    while (s->q_head) fail_locked(s, s->q_head, 503, "the server is shutting down");
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->mu);
}

/* ------------------------------------------------------------ admission */

/* Tokens at the start of r's prompt that slot j's cache holds, leaving at
 * least the last prompt token to run (its logits give the first answer). */
static int cached_prefix(const serve_sched *s, int j, const serve_req *r) {
    const int32_t *h = s->hist + (size_t)j * (size_t)s->ctx;
    int n = s->hist_n[j] < r->n_prompt - 1 ? s->hist_n[j] : r->n_prompt - 1, L = 0;
    while (L < n && h[L] == r->prompt[L]) L++;
    return L;
}

/* Start slot's cache as the first L tokens of src's (src < 0 or L below
 * SERVE_MIN_REUSE: empty). Returns the tokens kept; a model whose state
 * cannot be cut (linear attention) keeps a copy only when it is whole. */
static int reuse_prefix(serve_sched *s, int slot, int src, int L) {
    moe_err err;
    int keep = 0;
    if (src >= 0 && L >= SERVE_MIN_REUSE && (src == slot || !moe_seq_cp(s->sess, src, slot, &err))) {
        if (src != slot) {
            memcpy(s->hist + (size_t)slot * (size_t)s->ctx, s->hist + (size_t)src * (size_t)s->ctx,
                   (size_t)L * sizeof *s->hist);
            s->hist_n[slot] = s->hist_n[src];
        }
        if (s->hist_n[slot] == L || !moe_seq_rm(s->sess, slot, L, -1, &err)) keep = L;
    }
    if (!keep && moe_seq_rm(s->sess, slot, 0, -1, &err)) return -1;
    s->hist_n[slot] = keep;
    return keep;
}

/* Take r into slot, its cache starting as the first L tokens of slot src's
 * (src < 0: empty): its sampler and the decode context. Lock held. */
static int admit_locked(serve_sched *s, serve_req *r, int slot, int src, int L) {
    moe_err err;
    moe_sampler_opts so = {.temp = r->p.temperature, .top_k = r->p.top_k, .top_p = r->p.top_p,
                           .seed = r->p.has_seed ? r->p.seed
                                                 : (uint64_t)(serve_now() * 1e9) ^ ++s->seed_counter * 0x9E3779B97F4A7C15ull};
    if (moe_sampler_new(&r->smp, &so, s->vocab, &err)) return -1;
    r->n_ctx_ids = r->n_prompt < CONTEXT_TOKENS ? r->n_prompt : CONTEXT_TOKENS;
    r->ids = malloc((size_t)(r->n_ctx_ids + r->max_tokens) * sizeof *r->ids);
    if (!r->ids) return -1;
    memcpy(r->ids, r->prompt + r->n_prompt - r->n_ctx_ids, (size_t)r->n_ctx_ids * sizeof *r->ids);
    r->n_ids = r->n_ctx_ids;
    if (moe_detokenize(s->tok, r->ids, r->n_ids, 1, &r->prefix, &r->prefix_len, &err)) return -1;
    int keep = reuse_prefix(s, slot, src, L);
    if (keep < 0) return -1;
    r->slot = slot;
    r->pos = keep;
    r->n_fed = keep;
    s->running[slot] = r;
    s->n_running++;
    s->used[slot] = ++s->admitted;
    serve_metrics_tokens(s->metrics, r->n_prompt, 0);
    serve_metrics_cached(s->metrics, keep);
    return 0;
}

/* Oldest first, each into a free slot: the slot that holds the longest
 * start of its prompt if that slot is free, else the free slot used least
 * recently (whose cache then starts as a copy of that start). */
static void admit_queued_locked(serve_sched *s) {
    while (s->q_head) {
        serve_req *r = s->q_head;
        int src = -1, best = 0, dst = -1;
        for (int j = 0; j < s->o.n_slots; j++) {
            int L = cached_prefix(s, j, r);
            if (L > best) best = L, src = j;
        }
        if (src >= 0 && !s->running[src]) dst = src;
        for (int j = 0; j < s->o.n_slots && dst < 0; j++)
            if (!s->running[j]) dst = j;
        if (dst < 0) break; /* no free slot */
        for (int j = 0; j < s->o.n_slots && dst != src; j++)
            if (!s->running[j] && s->used[j] < s->used[dst]) dst = j;
        queue_remove(s, r);
        if (admit_locked(s, r, dst, src, best)) fail_locked(s, r, 500, "cannot start the request (out of memory)");
    }
}

/* ------------------------------------------------------------------ text */

static int append_text(serve_req *r, const char *t, size_t n) {
    if (r->text_len + n + 1 > r->text_cap) {
        size_t cap = (r->text_len + n + 1) * 2;
        char *p = realloc(r->text, cap);
        if (!p) return -1;
        r->text = p;
        r->text_cap = cap;
    }
    memcpy(r->text + r->text_len, t, n);
    r->text_len += n;
    r->text[r->text_len] = 0;
    return 0;
}

/* Release the text that can no longer change; final: all of it. Returns 1
 * when a stop string ended the generation, -1 on error. Lock held. */
static int release_text(serve_sched *s, serve_req *r, int final) {
    char *full = NULL;
    size_t len = 0;
    moe_err err;
    if (moe_detokenize(s->tok, r->ids, r->n_ids, 1, &full, &len, &err)) return -1;
    size_t base = 0; /* the continuation starts after the context's text */
    while (base < r->prefix_len && base < len && full[base] == r->prefix[base]) base++;
    const char *cont = full + base;
    size_t clen = len - base, upto;
    long stop = serve_text_find_stop(cont, clen, r->p.stop, r->p.n_stop);
    if (stop >= 0) upto = (size_t)stop;
    else if (final) upto = clen;
    else upto = serve_text_holdback(cont, serve_text_stable(cont, clen), r->p.stop, r->p.n_stop);
    int rc = stop >= 0;
    if (upto > r->released) {
        if (append_text(r, cont + r->released, upto - r->released)) rc = -1;
        r->released = upto;
    }
    free(full);
    pthread_cond_broadcast(&r->cond);
    return rc;
}

static void finish_locked(serve_sched *s, serve_req *r, const char *reason) {
    r->finish = reason;
    end_locked(s, r);
}

/* ------------------------------------------------------------- one step */

/* log-softmax of row at the sampled token, and its n_top best alternatives
 * (best first; among equals the lower id), in one pass over the row. */
static void logprobs_of(const float *row, int V, int32_t t, int n_top, serve_logprob *lp) {
    float mx = row[0];
    for (int i = 1; i < V; i++) mx = row[i] > mx ? row[i] : mx;
    double sum = 0;
    for (int i = 0; i < V; i++) sum += exp((double)row[i] - mx);
    double lse = mx + log(sum);
    lp->token = t;
    lp->logprob = (float)(row[t] - lse);
    int n = 0;
    if (n_top > V) n_top = V;
    for (int i = 0; i < V && n_top > 0; i++) {
        if (n == n_top && !(row[i] > row[lp->top_id[n - 1]])) continue;
        int at = n < n_top ? n++ : n - 1; /* the last place, dropping the worst if full */
        while (at > 0 && row[i] > row[lp->top_id[at - 1]]) {
            lp->top_id[at] = lp->top_id[at - 1];
            at--;
        }
        lp->top_id[at] = i;
    }
    lp->n_top = n;
    for (int k = 0; k < n; k++) lp->top_lp[k] = (float)(row[lp->top_id[k]] - lse);
}

/* A sequence's logits came back: pick its next token. Lock held. */
static void take_token(serve_sched *s, serve_req *r, const float *row) {
    int32_t t = moe_sample(r->smp, row);
    if (!r->p.ignore_eos && (t == s->eos_tok || t == s->eos_cfg)) {
        if (release_text(s, r, 1) < 0) return fail_locked(s, r, 500, "decoding the text failed");
        return finish_locked(s, r, "stop");
    }
    double now = serve_now();
    if (r->n_gen == 0) serve_metrics_ttft(s->metrics, now - r->t_arrival);
    else serve_metrics_tpot(s->metrics, now - r->t_last);
    r->t_last = now;
    r->n_gen++;
    serve_metrics_tokens(s->metrics, 0, 1);
    if (r->p.logprobs) {
        if (r->n_lp == r->lp_cap) {
            int cap = r->lp_cap ? 2 * r->lp_cap : 16;
            serve_logprob *p = realloc(r->lp, (size_t)cap * sizeof *p);
            if (!p) return fail_locked(s, r, 500, "out of memory");
            r->lp = p;
            r->lp_cap = cap;
        }
        logprobs_of(row, s->vocab, t, r->p.top_logprobs, &r->lp[r->n_lp++]);
    }
    int last = r->n_gen >= r->max_tokens || r->pos >= s->ctx;
    /* ids the tokenizer does not know (padding rows of the embedding) are
     * fed to the model but have no text */
    if (t < s->tok_vocab) r->ids[r->n_ids++] = t;
    int stopped = release_text(s, r, last);
    if (stopped < 0) return fail_locked(s, r, 500, "decoding the text failed");
    if (stopped) return finish_locked(s, r, "stop");
    if (last) return finish_locked(s, r, "length");
    r->next = t;
    r->decoding = 1;
    pthread_cond_broadcast(&r->cond);
}

/* Build the batch (lock held); returns its token count. */
static int build_batch(serve_sched *s) {
    int n = 0, rows = 0;
    for (int i = 0; i < s->o.n_slots; i++) {
        serve_req *r = s->running[i];
        if (!r) continue;
        r->row = -1;
        r->in_batch = 0;
        if (!r->decoding || n == s->o.step_tokens) continue;
        s->b_tok[n] = r->next;
        s->b_seq[n] = r->slot;
        s->b_pos[n] = r->pos;
        if (r->pos < s->ctx) s->hist[(size_t)r->slot * (size_t)s->ctx + (size_t)r->pos] = r->next;
        s->b_want[n] = 1;
        r->row = rows++;
        r->in_batch = 1;
        n++;
    }
    /* prefill, oldest admitted first (slots are reused; order by arrival) */
    for (;;) {
        serve_req *r = NULL;
        for (int i = 0; i < s->o.n_slots; i++) {
            serve_req *c = s->running[i];
            if (c && !c->decoding && c->in_batch == 0 && c->n_fed < c->n_prompt &&
                (!r || c->t_arrival < r->t_arrival))
                r = c;
        }
        if (!r || n == s->o.step_tokens) break;
        int take = r->n_prompt - r->n_fed;
        if (take > s->o.step_tokens - n) take = s->o.step_tokens - n;
        for (int k = 0; k < take; k++) {
            int at = r->n_fed + k;
            s->b_tok[n] = r->prompt[at];
            s->b_seq[n] = r->slot;
            s->b_pos[n] = r->pos + k;
            if (r->pos + k < s->ctx) s->hist[(size_t)r->slot * (size_t)s->ctx + (size_t)(r->pos + k)] = r->prompt[at];
            s->b_want[n] = at == r->n_prompt - 1;
            n++;
        }
        r->in_batch = take;
        if (r->n_fed + take == r->n_prompt) r->row = rows++;
    }
    return n;
}

static void step(serve_sched *s) {
    int n = build_batch(s);
    if (n == 0) return;
    int n_slots = s->o.n_slots;
    moe_batch b = {.n = n, .token = s->b_tok, .seq = s->b_seq, .pos = s->b_pos, .logits = s->b_want};
    moe_err err = {{0}};
    pthread_mutex_unlock(&s->mu);
    int rc = moe_decode(s->sess, &b, s->logits, &err);
    pthread_mutex_lock(&s->mu);
    serve_metrics_batch(s->metrics, n);
    for (int i = 0; i < n_slots; i++) {
        serve_req *r = s->running[i];
        if (!r || r->in_batch == 0) continue;
        if (rc) {
            char msg[600];
            snprintf(msg, sizeof msg, "the forward pass failed: %s", err.msg);
            fail_locked(s, r, 500, msg);
            continue;
        }
        r->pos += r->in_batch;
        s->hist_n[r->slot] = r->pos < s->ctx ? r->pos : s->ctx;
        if (!r->decoding) r->n_fed += r->in_batch;
        if (r->cancelled) continue; /* dropped at the top of the next round */
        if (r->row >= 0) take_token(s, r, s->logits + (size_t)r->row * s->vocab);
    }
}

/* Cancelled and timed-out requests leave their slots. Lock held. */
static void reap_locked(serve_sched *s) {
    double now = serve_now();
    for (int i = 0; i < s->o.n_slots; i++) {
        serve_req *r = s->running[i];
        if (!r) continue;
        if (r->cancelled) {
            end_locked(s, r);
        } else if (now > r->deadline) {
            if (release_text(s, r, 1) < 0) fail_locked(s, r, 500, "decoding the text failed");
            else finish_locked(s, r, "length");
        }
    }
    for (serve_req *r = s->q_head, *nx; r; r = nx) {
        nx = r->q_next;
        if (now > r->deadline) finish_locked(s, r, "length");
    }
}

static void *engine_main(void *arg) {
    serve_sched *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->quit) {
        if (s->abort) cancel_all_locked(s);
        reap_locked(s);
        admit_queued_locked(s);
        serve_metrics_load(s->metrics, s->n_queued, s->n_running);
        if (s->n_running == 0) {
            /* wake at least once a second to time queued requests out */
            struct timespec t;
            clock_gettime(CLOCK_REALTIME, &t);
            t.tv_sec += 1;
            pthread_cond_timedwait(&s->wake, &s->mu, &t);
            continue;
        }
        step(s);
    }
    cancel_all_locked(s);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ------------------------------------------------------------ lifecycle */

/* The engine's buffers and itself (s may be NULL or partly made). */
static void free_bufs(serve_sched *s) {
    if (!s) return;
    free(s->running);
    free(s->b_tok);
    free(s->b_seq);
    free(s->b_pos);
    free(s->b_want);
    free(s->logits);
    free(s->hist);
    free(s->hist_n);
    free(s->used);
    free(s);
}

int serve_sched_new(serve_sched **out, moe_model *m, moe_session *sess, const moe_tokenizer *tok,
                    serve_metrics *metrics, const serve_sched_opts *o, moe_err *err) {
    *out = NULL;
    serve_sched *s = calloc(1, sizeof *s);
    if (!s) goto oom;
    s->model = m;
    s->sess = sess;
    s->tok = tok;
    s->metrics = metrics;
    s->o = *o;
    if (s->o.n_slots > moe_session_n_seq(sess)) s->o.n_slots = moe_session_n_seq(sess);
    if (s->o.step_tokens < s->o.n_slots) s->o.step_tokens = s->o.n_slots;
    const moe_config *cfg = moe_model_config(m);
    s->vocab = cfg->vocab;
    s->tok_vocab = moe_tokenizer_vocab(tok);
    s->ctx = moe_session_ctx(sess);
    s->eos_tok = moe_tokenizer_eos(tok);
    s->eos_cfg = cfg->eos_id;
    s->running = calloc((size_t)s->o.n_slots, sizeof *s->running);
    s->b_tok = malloc((size_t)s->o.step_tokens * sizeof *s->b_tok);
    s->b_seq = malloc((size_t)s->o.step_tokens * sizeof *s->b_seq);
    s->b_pos = malloc((size_t)s->o.step_tokens * sizeof *s->b_pos);
    s->b_want = malloc((size_t)s->o.step_tokens);
    s->logits = malloc((size_t)s->o.n_slots * s->vocab * sizeof *s->logits);
    s->hist = malloc((size_t)s->o.n_slots * (size_t)s->ctx * sizeof *s->hist + 1);
    s->hist_n = calloc((size_t)s->o.n_slots, sizeof *s->hist_n);
    s->used = calloc((size_t)s->o.n_slots, sizeof *s->used);
    if (!s->running || !s->b_tok || !s->b_seq || !s->b_pos || !s->b_want || !s->logits || !s->hist ||
        !s->hist_n || !s->used)
        goto oom;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->wake, NULL);
    moe_session_set_route_observer(sess, serve_metrics_route, metrics);
    int e = pthread_create(&s->thread, NULL, engine_main, s);
    if (e) {
        snprintf(err->msg, sizeof err->msg, "cannot start the engine thread: %s", strerror(e));
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->wake);
        s->running = (free(s->running), NULL);
        goto fail;
    }
    *out = s;
    return 0;
oom:
    if (err) snprintf(err->msg, sizeof err->msg, "out of memory starting the engine");
fail:
    free_bufs(s);
    return -1;
}

void serve_sched_stop(serve_sched *s) {
    if (!s || s->stopped) return;
    pthread_mutex_lock(&s->mu);
    s->quit = 1;
    s->closed = 1;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    s->stopped = 1;
    moe_session_set_route_observer(s->sess, NULL, NULL);
}

void serve_sched_free(serve_sched *s) {
    if (!s) return;
    serve_sched_stop(s);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->wake);
    free_bufs(s);
}
