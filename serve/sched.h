/*
 * sched.h - the engine of `moe serve` (sched.c): one thread owns the
 * session and runs continuous batching over its sequence slots. Requests
 * wait in a bounded queue, join the running batch when a slot frees, and
 * leave it as soon as they finish or their client goes away. Every step is
 * ONE moe_decode over the next token of every decoding sequence plus
 * prefill chunks of newly admitted prompts (at most step_tokens in all), so
 * the MoE layers group all of them by expert.
 *
 * A request is shared by the HTTP thread that answers it and the engine:
 * both hold a reference (serve_req_release drops one). The fields under
 * "shared" are read and written only with the engine's lock held
 * (serve_sched_lock); the HTTP side waits for news with serve_sched_wait.
 */
#ifndef MOE_SERVE_SCHED_H
#define MOE_SERVE_SCHED_H

#include <pthread.h>

#include "api.h"
#include "metrics.h"
#include "moe.h"

typedef struct serve_sched serve_sched;

typedef struct serve_req {
    /* set before serve_sched_submit, read-only afterwards */
    serve_params p;
    int32_t *prompt;       /* [n_prompt] token ids (malloc'd) */
    int n_prompt;
    int max_tokens;        /* tokens to generate at most */
    double t_arrival;      /* monotonic seconds */
    double deadline;       /* monotonic seconds: ended (finish "length") past it */

    /* the engine's own */
    int slot;              /* sequence of the session, -1 while queued */
    int n_fed;             /* prompt tokens in the cache */
    int pos;               /* tokens of the slot in the cache */
    int decoding;          /* 1: the prompt is in, next is the token to feed */
    int32_t next;
    int in_batch;          /* tokens of it in this step's batch */
    int row;               /* its logits row in this step, -1: none */
    moe_sampler *smp;
    int32_t *ids;          /* [n_ctx_ids + max_tokens] prompt tail, then the generated ids */
    int n_ids, n_ctx_ids;
    char *prefix;          /* decode of the prompt tail */
    size_t prefix_len;
    size_t released;       /* bytes of the continuation already in text */
    double t_last;         /* when the last token came */
    struct serve_req *q_next;

    /* shared (engine lock) */
    char *text;            /* text released so far (never a partial stop string) */
    size_t text_len, text_cap;
    serve_logprob *lp;     /* [n_lp] logprobs of the generated tokens */
    int n_lp, lp_cap;
    int n_gen;             /* tokens generated (completion_tokens) */
    const char *finish;    /* "stop" / "length" once done without error */
    int done;              /* 1: nothing more will come */
    serve_error error;     /* error.status != 0: ended by an error */
    int cancelled;         /* 1: the client is gone; the engine drops it */
    int queued;            /* 1: in the queue */
    int refs;
    pthread_cond_t cond;   /* signalled on news */
} serve_req;

typedef struct serve_sched_opts {
    int n_slots;       /* sequences run at once (the session's n_seq) */
    int step_tokens;   /* most tokens in one forward pass */
    int max_queue;     /* requests waiting beyond the running ones */
} serve_sched_opts;

enum { SERVE_SUBMIT_OK = 0, SERVE_SUBMIT_FULL = 1, SERVE_SUBMIT_CLOSED = 2 };

/* Start the engine thread over a session of opts->n_slots sequences. The
 * session, model, tokenizer and metrics stay the caller's (they must outlive
 * the engine); the route observer of the session is set to the metrics. */
int serve_sched_new(serve_sched **out, moe_model *m, moe_session *s, const moe_tokenizer *tok,
                    serve_metrics *metrics, const serve_sched_opts *o, moe_err *err);
/* Stop the thread; every request still held is ended (503). Requests can
 * still be released (and cancelled, to no effect) until serve_sched_free. */
void serve_sched_stop(serve_sched *s);
void serve_sched_free(serve_sched *s); /* stops it first if need be */

serve_req *serve_req_new(void);   /* one reference, the caller's */
/* Queue r (takes a reference for the engine). SERVE_SUBMIT_FULL: the queue
 * is full; SERVE_SUBMIT_CLOSED: shutting down. */
int serve_sched_submit(serve_sched *s, serve_req *r);
/* The client is gone: r leaves the queue or its slot at once. */
void serve_req_cancel(serve_sched *s, serve_req *r);
void serve_req_release(serve_sched *s, serve_req *r);

void serve_sched_lock(serve_sched *s);
void serve_sched_unlock(serve_sched *s);
/* With the lock held: wait up to seconds for news of r. */
void serve_sched_wait(serve_sched *s, serve_req *r, double seconds);

/* Shutdown: refuse new requests (SERVE_SUBMIT_CLOSED); the number of
 * requests queued or running; end them all now (error 503). */
void serve_sched_close(serve_sched *s);
int serve_sched_active(serve_sched *s);
void serve_sched_cancel_all(serve_sched *s);

double serve_now(void); /* monotonic seconds */

#endif
