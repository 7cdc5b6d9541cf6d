/*
 * route_stats.c - routing decisions out of a forward (include/moe_route.h).
 *
 * After moe_forward a session holds only the last layer's routing of the
 * last chunk, so the trace hooks the forward instead: moe_block calls
 * s->route_hook right after routing (model.h). moe_route_trace installs a
 * hook for the duration of one call, runs the tokens chunk by chunk (so it
 * knows each chunk's first token), and restores whatever hook was there.
 */
#include "moe_route.h"

#include "base/err.h"
#include "model/model.h"

typedef struct trace_ctx {
    moe_route_fn fn;
    void *user;
    int t0; /* first token of the chunk being run */
} trace_ctx;

static void trace_hook(void *user, int layer, int T, const int *sel_expert,
                       const float *sel_weight, int K, const float *scores, int E) {
    trace_ctx *c = user;
    moe_route_info r = {layer, c->t0, T, K, E, sel_expert, sel_weight, scores};
    c->fn(c->user, &r);
}

int moe_route_trace(moe_session *s, const int32_t *ids, int n, moe_route_fn fn, void *user,
                    moe_err *err) {
    if (!fn) return moe_fail(err, "route: no callback given");
    if (n <= 0) return moe_fail(err, "route: no tokens given");
    /* refused whole rather than after some chunks have been reported */
    if ((int64_t)s->pos + n > s->n_ctx)
        return moe_fail(err, "route: %d tokens at position %d exceed the context of %d positions", n,
                        s->pos, s->n_ctx);
    trace_ctx c = {fn, user, 0};
    void (*old_hook)(void *, int, int, const int *, const float *, int, const float *, int) =
        s->route_hook;
    void *old_user = s->route_user;
    s->route_hook = trace_hook;
    s->route_user = &c;
    int rc = 0;
    for (int done = 0; done < n && rc == 0;) {
        int T = n - done < s->max_batch ? n - done : s->max_batch;
        c.t0 = done;
        rc = moe_forward(s, ids + done, T, NULL, 0, err);
        done += T;
    }
    s->route_hook = old_hook;
    s->route_user = old_user;
    return rc;
}
