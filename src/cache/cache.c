/*
 * cache.c - the expert cache as the engine sees it (moe.h's expert
 * provider): want, ready, acquire, release; and its statistics.
 *
 * want(layer, experts, predicted = 0): the running layer's experts. Those
 * in a slot are hits and are marked wanted (no prediction may take their
 * slot); for the others a slot is taken (tiers 1-3, cache_policy.c) and a
 * read queued, as long as slots can be had; the rest wait for acquire.
 * want(layer, experts, predicted = 1): a later layer's guessed experts,
 * likeliest first; a read is queued for each one missing, in that order,
 * while a slot of tiers 1-2 can be had whose expert is less likely to be
 * used again (its layer's decayed routing frequency, cache_policy_p) than
 * the guess is to be used; else it is dropped. That chance is the record of
 * the guess's place for its layer: of the guesses at that place that were
 * in no slot (read or not), the share the layer then used, decayed over ~64,
 * a prior of 1/2. A place under 1/2 is not read at all (more reads wasted
 * than saved), and a guess that evicts a likelier expert costs more than it
 * saves. Reads run in queue order, so the running layer's misses go before
 * the predictions that followed them, and a layer's likeliest guesses
 * before its others.
 * acquire: the expert's slot once READY. The parts of its read that no
 * reader has taken yet the caller reads itself, beside the readers; then it
 * waits for the parts in progress (cache_io.c); an expert
 * in no slot is read by the caller into any slot that can be had (tier 4
 * too), after waiting for a release when every slot is held or being read.
 * Without want calls this is a synchronous read per miss.
 * release: the slot may be evicted again.
 * With a fallback (cache_fallback.c), an acquire whose expert is not READY
 * never waits: it hands out the expert's resident low-precision copy (typed
 * weights) and leaves the read going, or queues one (tiers 1-3) for later
 * uses; it never reads itself, so with no reader threads nothing is read.
 *
 * The engine holds at most max_held slots at once (waves), about half the
 * pool (at least the largest top_k), so reads of the experts of the next
 * wave can fill the other half while one computes.
 */
#include "cache/cache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/err.h"
#include "model/model.h"

#define GUESS_DECAY (1.0f - 1.0f / 64.0f) /* the guesses' record forgets over ~64 */

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

const char *cache_fmt_bytes(int64_t n, char *buf, size_t size) {
    const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)n;
    int u = 0;
    while (v >= 1024.0 && u < 4) {
        v /= 1024.0;
        u++;
    }
    if (u == 0) snprintf(buf, size, "%lld B", (long long)n);
    else snprintf(buf, size, "%.*f %s", v < 10 ? 2 : v < 100 ? 1 : 0, v, unit[u]);
    return buf;
}

/* ------------------------------------------------------------ the FIFO */

static void queue_push(moe_cache *c, int s) {
    cache_slot *sl = &c->slots[s];
    sl->state = SLOT_QUEUED;
    sl->qnext = -1;
    sl->qprev = c->q_tail;
    if (c->q_tail >= 0) c->slots[c->q_tail].qnext = s;
    else c->q_head = s;
    c->q_tail = s;
}

void cache_queue_remove(moe_cache *c, int s) {
    cache_slot *sl = &c->slots[s];
    if (sl->qprev >= 0) c->slots[sl->qprev].qnext = sl->qnext;
    else c->q_head = sl->qnext;
    if (sl->qnext >= 0) c->slots[sl->qnext].qprev = sl->qprev;
    else c->q_tail = sl->qprev;
    sl->qprev = sl->qnext = -1;
}

/* A read the running layer waits for: ahead of every queued prediction
 * (behind the layer's other misses), so that guesses never delay a need. */
static void queue_push_need(moe_cache *c, int s) {
    int at = c->q_head;
    while (at >= 0 && !c->slots[at].for_prediction) at = c->slots[at].qnext;
    if (at < 0) {
        queue_push(c, s);
        return;
    }
    cache_slot *sl = &c->slots[s], *next = &c->slots[at];
    sl->state = SLOT_QUEUED;
    sl->qnext = at;
    sl->qprev = next->qprev;
    if (next->qprev >= 0) c->slots[next->qprev].qnext = s;
    else c->q_head = s;
    next->qprev = s;
}

/* ------------------------------------------------------------- slots */

/* Give slot s (a victim) to expert g: the old expert loses it. */
static void slot_assign(moe_cache *c, int s, int g) {
    cache_slot *sl = &c->slots[s];
    if (sl->expert >= 0) {
        c->ex[sl->expert].slot = -1;
        if (sl->for_prediction) c->st.prefetch_wasted++;
    }
    sl->expert = g;
    sl->state = SLOT_FREE;
    sl->held = 0;
    sl->wanted = 0;
    sl->for_prediction = 0;
    c->ex[g].slot = s;
    c->ex[g].last_use = ++c->clock; /* a fresh read counts as a touch (LRU) */
}

/* A read failed or was abandoned: the slot is FREE again, its expert in none. */
static void slot_clear(moe_cache *c, int s) {
    cache_slot *sl = &c->slots[s];
    if (sl->expert >= 0) {
        c->ex[sl->expert].slot = -1;
        if (sl->for_prediction) c->st.prefetch_wasted++;
    }
    sl->expert = -1;
    sl->state = SLOT_FREE;
    sl->held = 0;
    sl->wanted = 0;
    sl->for_prediction = 0;
}

/* A guess still waiting in the queue turned out wrong or was replaced by a
 * newer one: its read is dropped (counted as wasted), the slot FREE. */
static void cancel_guess(moe_cache *c, int s) {
    cache_queue_remove(c, s);
    c->slots[s].for_prediction = 0; /* not a read: not counted as wasted */
    slot_clear(c, s);
    c->st.prefetch_cancelled++;
}

void cache_read_start(moe_cache *c) {
    if (c->reading++ == 0) c->busy_since = now_s();
}

void cache_read_done(moe_cache *c, int s, int rc, int64_t bytes) {
    if (--c->reading == 0) c->st.read_busy_seconds += now_s() - c->busy_since;
    if (rc) {
        slot_clear(c, s); /* the acquire of this expert reads it again and reports why */
    } else {
        c->slots[s].state = SLOT_READY;
        c->st.reads++;
        c->st.bytes_read += bytes;
    }
    pthread_cond_broadcast(&c->cv_done);
}

/* The caller reads expert g into slot s (READING) with mu released. */
static int read_here(moe_cache *c, int s, int g, moe_err *err) {
    cache_slot *sl = &c->slots[s];
    sl->state = SLOT_READING;
    sl->part_next = cache_parts(c, &c->ex[g]); /* whole, here: no part for anyone else */
    sl->part_out = 0;
    cache_read_start(c);
    pthread_mutex_unlock(&c->mu);
    int64_t bytes;
    double t0 = now_s();
    int rc = cache_read_expert(c, &c->ex[g], sl->buf, &bytes, err);
    double dt = now_s() - t0;
    pthread_mutex_lock(&c->mu);
    c->st.read_seconds += dt;
    cache_read_done(c, s, rc, bytes);
    return rc;
}

static int is_waiter(const moe_cache *c, pthread_t t) {
    for (int i = 0; i < c->n_waiters; i++)
        if (pthread_equal(c->waiters[i], t)) return 1;
    return 0;
}

/* Every slot is held, each by this thread or by one waiting for a slot
 * itself (sessions on other threads sharing the cache): no release can
 * come, so waiting would never end. */
static int stuck(const moe_cache *c) {
    pthread_t me = pthread_self();
    for (int i = 0; i < c->n_slots; i++) {
        const cache_slot *s = &c->slots[i];
        if (!s->held || (!pthread_equal(s->holder, me) && !is_waiter(c, s->holder))) return 0;
    }
    return 1;
}

/* Wait for a release while every slot is held, listed as waiting. */
static void wait_release(moe_cache *c) {
    int listed = c->n_waiters < CACHE_MAX_WAITERS;
    if (listed) c->waiters[c->n_waiters++] = pthread_self();
    pthread_cond_wait(&c->cv_done, &c->mu);
    if (!listed) return;
    for (int i = 0; i < c->n_waiters; i++)
        if (pthread_equal(c->waiters[i], pthread_self())) {
            c->waiters[i] = c->waiters[--c->n_waiters];
            break;
        }
}

static int any_in_flight(const moe_cache *c) {
    for (int i = 0; i < c->n_slots; i++)
        if (c->slots[i].state == SLOT_QUEUED || c->slots[i].state == SLOT_READING) return 1;
    return 0;
}

/* ------------------------------------------------------- the provider */

/* The layer's pending prediction against what it used (flags in used[]). */
static void score_prediction(moe_cache *c, int layer, const uint8_t *used, int n_used) {
    int base = c->layer_base[layer], E = c->m->cfg.layer[layer].n_experts;
    for (int e = 0; e < E; e++) {
        cache_expert *x = &c->ex[base + e];
        if (x->slot >= 0 && c->slots[x->slot].for_prediction) {
            if (!used[e] && c->slots[x->slot].state == SLOT_QUEUED) {
                cancel_guess(c, x->slot); /* never read: the bandwidth goes to the misses */
            } else {
                c->slots[x->slot].for_prediction = 0;
                if (used[e]) c->st.prefetch_used++;
                else c->st.prefetch_wasted++;
            }
        }
        if (x->guessed) {
            float *u = &c->guess_used[layer][x->guess_rank];
            x->guessed = 0;
            *u = *u * GUESS_DECAY + (float)used[e];
        }
    }
    if (!c->has_pred[layer]) return;
    int64_t pred = 0, hit = 0;
    for (int e = 0; e < E; e++) {
        cache_expert *x = &c->ex[base + e];
        if (!x->predicted) continue;
        x->predicted = 0;
        pred++;
        hit += used[e];
        c->st.predicted_at[x->pred_rank]++;
        c->st.predicted_at_used[x->pred_rank] += used[e];
    }
    c->has_pred[layer] = 0;
    moe_cache_layer_stats *ls = &c->st.layer[layer];
    ls->predicted += pred;
    ls->predicted_used += hit;
    ls->used += n_used;
    c->st.predicted += pred;
    c->st.predicted_used += hit;
    c->st.used_after_prediction += n_used;
}

/* With a fallback, a read queued for the layer's previous pass and not
 * begun is late: that pass took the copy. Unless the layer uses the expert
 * again now, it is dropped, so that the queue holds the newest needs and
 * the readers never fall further behind than one pass of the layers. */
static void drop_stale_reads(moe_cache *c, int layer, const uint8_t *used) {
    int base = c->layer_base[layer], E = c->m->cfg.layer[layer].n_experts;
    for (int e = 0; e < E; e++) {
        int s = c->ex[base + e].slot;
        if (s < 0 || used[e] || c->slots[s].state != SLOT_QUEUED || c->slots[s].for_prediction)
            continue;
        cache_queue_remove(c, s);
        slot_clear(c, s);
        c->st.fallback_dropped++;
    }
}

static void want_now(moe_cache *c, int layer, const int *experts, int n) {
    int base = c->layer_base[layer], E = c->m->cfg.layer[layer].n_experts;
    cache_policy_layer(c, layer);
    for (int i = 0; i < c->n_slots; i++) c->slots[i].wanted = 0;
    uint8_t used[1024], *u = E <= 1024 ? used : calloc((size_t)E, 1);
    if (u) {
        memset(u, 0, (size_t)E);
        for (int i = 0; i < n; i++)
            if (experts[i] >= 0 && experts[i] < E) u[experts[i]] = 1;
        score_prediction(c, layer, u, n);
        if (c->fb) drop_stale_reads(c, layer, u);
        if (u != used) free(u);
    }
    for (int e = 0; e < E; e++) c->ex[base + e].announced = 0;
    /* the hits first, all of them marked wanted, so that no miss of this
     * layer takes the slot of an expert the layer has */
    for (int i = 0; i < n; i++) {
        if (experts[i] < 0 || experts[i] >= E) continue;
        cache_expert *x = &c->ex[base + experts[i]];
        x->announced = 1;
        if (x->slot >= 0) {
            c->st.hits++;
            c->slots[x->slot].wanted = 1;
        }
    }
    int queued = 0;
    for (int i = 0; i < n; i++) {
        if (experts[i] < 0 || experts[i] >= E) continue;
        int g = base + experts[i];
        cache_expert *x = &c->ex[g];
        if (x->slot >= 0) continue;
        c->st.misses++;
        int s = cache_victim(c, 3);
        if (s < 0) continue; /* read by its acquire once a slot is released */
        slot_assign(c, s, g);
        c->slots[s].wanted = 1;
        queue_push_need(c, s);
        queued = 1;
    }
    if (queued) pthread_cond_broadcast(&c->cv_work);
}

static void want_later(moe_cache *c, int layer, const int *experts, int n) {
    int base = c->layer_base[layer], E = c->m->cfg.layer[layer].n_experts, queued = 0;
    /* a newer guess for the layer (made nearer to it) replaces an older one:
     * the older guesses still queued are dropped, and the layer is scored
     * against the newer */
    for (int e = 0; e < E; e++) {
        cache_expert *x = &c->ex[base + e];
        x->predicted = 0;
        int keep = 0;
        for (int i = 0; i < n && !keep; i++) keep = experts[i] == e;
        if (!keep && x->slot >= 0 && c->slots[x->slot].for_prediction &&
            c->slots[x->slot].state == SLOT_QUEUED)
            cancel_guess(c, x->slot);
    }
    c->has_pred[layer] = 1;
    for (int i = 0; i < n; i++) {
        if (experts[i] < 0 || experts[i] >= E) continue;
        int g = base + experts[i];
        cache_expert *x = &c->ex[g];
        x->predicted = 1;
        x->pred_rank = (uint8_t)(i < MOE_CACHE_GUESS_PLACES ? i : MOE_CACHE_GUESS_PLACES - 1);
        if (x->slot >= 0) continue;
        /* the chance that a guess at this place missing from the slots is
         * used: its decayed record before this guess, read or not (a prior
         * of one in two) */
        int r = x->guessed ? x->guess_rank : x->pred_rank;
        float *gn = &c->guess_n[layer][r];
        double hit = ((double)c->guess_used[layer][r] + 1.0) / ((double)*gn + 2.0);
        if (!x->guessed) { /* once per expert until its layer runs, however often guessed */
            x->guess_rank = (uint8_t)r;
            *gn = *gn * GUESS_DECAY + 1.0f;
        }
        x->guessed = 1;
        int s = hit >= 0.5 ? cache_victim(c, 2) : -1; /* a read more often wasted than not: none */
        if (s >= 0 && c->slots[s].state != SLOT_FREE) {
            /* and takes a cached expert's slot only when it is the better bet */
            if (cache_policy_p(c, &c->ex[c->slots[s].expert]) >= hit) s = -1;
        }
        if (s < 0) {
            c->st.prefetch_dropped++;
            continue;
        }
        slot_assign(c, s, g);
        c->slots[s].for_prediction = 1;
        queue_push(c, s);
        c->st.prefetch_issued++;
        queued = 1;
    }
    if (queued) pthread_cond_broadcast(&c->cv_work);
}

static void cache_want(void *user, int layer, const int *experts, int n, int predicted) {
    moe_cache *c = user;
    if (layer < 0 || layer >= c->n_layers || c->layer_base[layer] < 0 || n <= 0) return;
    pthread_mutex_lock(&c->mu);
    if (predicted) want_later(c, layer, experts, n);
    else want_now(c, layer, experts, n);
    pthread_mutex_unlock(&c->mu);
}

static int cache_ready(void *user, int layer, int expert) {
    moe_cache *c = user;
    if (layer < 0 || layer >= c->n_layers || c->layer_base[layer] < 0) return 0;
    if (expert < 0 || expert >= c->m->cfg.layer[layer].n_experts) return 0;
    pthread_mutex_lock(&c->mu);
    const cache_expert *x = &c->ex[c->layer_base[layer] + expert];
    int r = x->slot >= 0 && c->slots[x->slot].state == SLOT_READY;
    pthread_mutex_unlock(&c->mu);
    return r;
}

/* With mu held: expert g in a READY slot (read here or waited for), or -1. */
static int make_ready(moe_cache *c, int g, int *waited, moe_err *err) {
    cache_expert *x = &c->ex[g];
    for (;;) {
        int s = x->slot;
        if (s >= 0 && c->slots[s].state == SLOT_READY) return s;
        *waited = 1;
        if (s >= 0 && cache_parts_left(c, s)) { /* read its parts beside the readers */
            if (cache_read_part(c, s, err)) return -1; /* the slot is FREE once its parts are done */
            continue;
        }
        if (s >= 0) { /* readers are at it */
            pthread_cond_wait(&c->cv_done, &c->mu);
            continue;
        }
        s = cache_victim(c, 4);
        if (s >= 0) {
            slot_assign(c, s, g);
            if (read_here(c, s, g, err)) return -1;
            continue;
        }
        if (any_in_flight(c)) {
            pthread_cond_wait(&c->cv_done, &c->mu);
            continue;
        }
        if (stuck(c))
            return moe_fail(err, "expert cache: layer %d expert %d: all %d slots are held by "
                            "forward passes that each wait for another slot (sessions sharing the "
                            "cache hold more experts at once than the memory budget has slots "
                            "for; give it more memory or run them one at a time)", x->layer,
                            x->expert, c->n_slots);
        wait_release(c);
    }
}

/* With mu held: expert g is not READY; hand out its fallback copy (never
 * waits). Its read goes on, or is queued now when a slot can be had
 * without taking one the layer wants, so that a later use finds it. */
static void fallback_acquire(moe_cache *c, int g, moe_expert_weights *w) {
    cache_expert *x = &c->ex[g];
    if (x->slot < 0) {
        int s = cache_victim(c, 3);
        if (s >= 0) {
            slot_assign(c, s, g);
            c->slots[s].wanted = 1;
            queue_push_need(c, s);
            pthread_cond_broadcast(&c->cv_work);
        }
    }
    x->fb_held++;
    c->st.fallbacks++;
    cache_policy_use(c, x);
    *w = (moe_expert_weights){c->fb + x->fb_at[0], c->fb + x->fb_at[1], c->fb + x->fb_at[2], 1,
                              x->fb_type[0], x->fb_type[1], x->fb_type[2]};
}

static int cache_acquire(void *user, int layer, int expert, moe_expert_weights *w, moe_err *err) {
    moe_cache *c = user;
    if (layer < 0 || layer >= c->n_layers || c->layer_base[layer] < 0 || expert < 0 ||
        expert >= c->m->cfg.layer[layer].n_experts)
        return moe_fail(err, "expert cache: layer %d expert %d is not a routed expert", layer,
                        expert);
    int g = c->layer_base[layer] + expert;
    cache_expert *x = &c->ex[g];
    pthread_mutex_lock(&c->mu);
    if (!x->announced) { /* no want for this chunk: count here */
        if (layer != c->cur_layer || x->hist_t == c->hist_t[layer]) cache_policy_layer(c, layer);
        if (x->slot >= 0) c->st.hits++;
        else c->st.misses++;
    }
    x->announced = 0;
    if (c->fb && !(x->slot >= 0 && c->slots[x->slot].state == SLOT_READY)) {
        fallback_acquire(c, g, w);
        pthread_mutex_unlock(&c->mu);
        return 0;
    }
    int waited = 0;
    double t0 = now_s();
    int s = make_ready(c, g, &waited, err);
    if (waited) {
        c->st.stalls++;
        c->st.stall_seconds += now_s() - t0;
    }
    if (s < 0) {
        pthread_mutex_unlock(&c->mu);
        return -1;
    }
    cache_slot *sl = &c->slots[s];
    sl->held++;
    sl->holder = pthread_self();
    if (sl->for_prediction) { /* used before its layer said so */
        sl->for_prediction = 0;
        c->st.prefetch_used++;
    }
    cache_policy_use(c, x);
    *w = (moe_expert_weights){sl->buf + x->at[0], sl->buf + x->at[1], sl->buf + x->at[2], 0, 0,
                              0, 0};
    pthread_mutex_unlock(&c->mu);
    return 0;
}

static void cache_release(void *user, int layer, int expert) {
    moe_cache *c = user;
    if (layer < 0 || layer >= c->n_layers || c->layer_base[layer] < 0 || expert < 0 ||
        expert >= c->m->cfg.layer[layer].n_experts)
        return;
    pthread_mutex_lock(&c->mu);
    cache_expert *x = &c->ex[c->layer_base[layer] + expert];
    int s = x->slot;
    if (x->fb_held > 0) {
        /* an acquire of the copy (which never goes away); when another
         * session holds the slot too, its hold lasts until this release
         * instead: a slot is never freed early */
        x->fb_held--;
    } else if (s >= 0 && c->slots[s].held > 0) {
        c->slots[s].held--;
        c->slots[s].wanted = 0;
    }
    pthread_cond_broadcast(&c->cv_done);
    pthread_mutex_unlock(&c->mu);
}

/* ------------------------------------------------------ life and API */

int cache_new(moe_cache **out, moe_model *m, const char *path, const moe_load_opts *o,
              moe_err *err) {
    *out = NULL;
    moe_cache *c = calloc(1, sizeof *c);
    if (!c) return moe_fail(err, "out of memory");
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv_work, NULL);
    pthread_cond_init(&c->cv_done, NULL);
    if (cache_build(c, m, path, o, err)) {
        cache_destroy(c);
        return -1;
    }
    c->readers = calloc((size_t)c->n_readers + 1, sizeof *c->readers);
    if (!c->readers) {
        cache_destroy(c);
        return moe_fail(err, "out of memory");
    }
    int started = 0, want = c->n_readers;
    for (; started < want; started++)
        if (pthread_create(&c->readers[started], NULL, cache_reader_main, c)) break;
    c->n_readers = started;
    if (want && !started) {
        cache_destroy(c);
        return moe_fail(err, "expert cache: cannot start a reader thread");
    }
    *out = c;
    return 0;
}

void cache_destroy(moe_cache *c) {
    if (!c) return;
    pthread_mutex_lock(&c->mu);
    c->stop = 1;
    pthread_cond_broadcast(&c->cv_work);
    pthread_mutex_unlock(&c->mu);
    for (int i = 0; c->readers && i < c->n_readers; i++) pthread_join(c->readers[i], NULL);
    free(c->readers);
    cache_free(c);
    pthread_cond_destroy(&c->cv_work);
    pthread_cond_destroy(&c->cv_done);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

moe_cache *moe_model_cache(const moe_model *m) { return m ? m->cache : NULL; }

void moe_cache_attach(moe_cache *c, moe_session *s) {
    moe_expert_provider p = {cache_acquire, cache_release, c, cache_want, cache_ready,
                             c->max_held, c->prefetch};
    moe_session_set_expert_provider(s, &p);
}

void moe_cache_add_tokens(moe_cache *c, int64_t n) {
    pthread_mutex_lock(&c->mu);
    c->st.tokens += n;
    pthread_mutex_unlock(&c->mu);
}

void moe_cache_stats_get(const moe_cache *c, moe_cache_stats *st) {
    moe_cache *mc = (moe_cache *)c; /* the lock only */
    pthread_mutex_lock(&mc->mu);
    *st = c->st;
    if (c->reading > 0) /* reads in flight (nobody waits for them with a fallback) */
        st->read_busy_seconds += now_s() - c->busy_since;
    pthread_mutex_unlock(&mc->mu);
    st->slot_bytes = c->slot_bytes;
    st->n_slots = c->n_slots;
    st->max_held = c->max_held;
    st->prefetch = c->prefetch;
    st->policy = c->policy;
    st->n_layers = c->n_layers;
    int direct = 1;
    const char *why = NULL;
    for (int i = 0; i < c->n_files; i++)
        if (!__atomic_load_n(&c->files[i].direct, __ATOMIC_RELAXED)) {
            direct = 0;
            why = c->files[i].note[0] ? c->files[i].note : "O_DIRECT reads failed";
        }
    st->direct_io = direct;
    if (direct) snprintf(st->io_note, sizeof st->io_note, "O_DIRECT");
    else snprintf(st->io_note, sizeof st->io_note,
                  "buffered reads, pages dropped after each: %s", why);
}

void moe_cache_stats_reset(moe_cache *c) {
    pthread_mutex_lock(&c->mu);
    int64_t mem = c->st.mem, res = c->st.resident_bytes, exb = c->st.expert_bytes;
    int64_t mapped = c->st.mapped_bytes, fbb = c->st.fallback_bytes;
    int fbt = c->st.fallback_type;
    double fbs = c->st.fallback_seconds;
    memset(&c->st, 0, sizeof c->st);
    c->st.fallback_bytes = fbb;
    c->st.fallback_type = fbt;
    c->st.fallback_seconds = fbs;
    c->st.mem = mem;
    c->st.mapped_bytes = mapped;
    c->st.resident_bytes = res;
    c->st.expert_bytes = exb;
    pthread_mutex_unlock(&c->mu);
}

const char *moe_cache_policy_name(moe_cache_policy p) {
    switch (p) {
    case MOE_CACHE_LRU: return "lru";
    case MOE_CACHE_LFU: return "lfu";
    case MOE_CACHE_HISTORY: return "history";
    }
    return "?";
}

int moe_cache_policy_parse(const char *s, moe_cache_policy *p) {
    const moe_cache_policy all[] = {MOE_CACHE_LRU, MOE_CACHE_LFU, MOE_CACHE_HISTORY};
    for (int i = 0; i < 3; i++)
        if (s && !strcmp(s, moe_cache_policy_name(all[i]))) {
            *p = all[i];
            return 0;
        }
    return -1;
}

int moe_parse_size(const char *s, int64_t *out) {
    if (!s) return -1;
    const char *p = s;
    double v = 0, scale = 1;
    int digits = 0, dot = 0;
    for (; *p; p++) {
        if (*p >= '0' && *p <= '9') {
            if (dot) v += (scale /= 10) * (*p - '0');
            else v = v * 10 + (*p - '0');
            digits++;
        } else if (*p == '.' && !dot) {
            dot = 1;
        } else {
            break;
        }
    }
    if (!digits || v > 1e18) return -1;
    double mult = 1;
    const char *units = "KMGT";
    const char *u = *p ? strchr(units, *p >= 'a' && *p <= 'z' ? *p - 32 : *p) : NULL;
    if (u && *p) { /* K, M, G, T and KiB...: powers of 1024; KB...: of 1000 (as moe quantize --budget) */
        int decimal = (p[1] == 'B' || p[1] == 'b') && !p[2];
        for (const char *q = units; q <= u; q++) mult *= decimal ? 1000 : 1024;
        p++;
        if (*p == 'i' && (p[1] == 'B' || p[1] == 'b')) p++;
    }
    if (*p == 'B' || *p == 'b') p++;
    if (*p) return -1;
    double bytes = v * mult;
    if (bytes < 1 || bytes > 4.0e18) return -1;
    *out = (int64_t)bytes;
    return 0;
}
