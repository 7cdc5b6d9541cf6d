/*
 * route_stats.c - routing decisions out of a forward (include/moe_route.h).
 *
 * After moe_forward a session holds only the last layer's routing of the
 * last chunk, so the trace uses the session's route observer instead
 * (moe_block calls it right after routing). moe_route_trace installs one
 * for the duration of one call, runs the tokens chunk by chunk (so it
 * knows each chunk's first token), and restores whatever was there.
 */
#include "moe_route.h"

#include "base/err.h"
#include "model/model.h"

typedef struct trace_ctx {
    moe_route_fn fn;
    void *user;
    int t0; /* first token of the chunk being run */
} trace_ctx;

static void trace_observer(void *user, const moe_route_info *r) {
    trace_ctx *c = user;
    moe_route_info o = *r;
    o.t0 += c->t0;
    c->fn(c->user, &o);
}

int moe_route_trace(moe_session *s, const int32_t *ids, int n, moe_route_fn fn, void *user,
                    moe_err *err) {
    if (!fn) return moe_fail(err, "route: no callback given");
    if (n <= 0) return moe_fail(err, "route: no tokens given");
    /* refused whole rather than after some chunks have been reported */
    int pos = moe_session_pos(s);
    if ((int64_t)pos + n > s->n_ctx)
        return moe_fail(err, "route: %d tokens at position %d exceed the context of %d positions", n,
                        pos, s->n_ctx);
    trace_ctx c = {fn, user, 0};
    moe_route_fn old_fn = s->route_fn;
    void *old_user = s->route_user;
    moe_session_set_route_observer(s, trace_observer, &c);
    int rc = 0;
    for (int done = 0; done < n && rc == 0;) {
        int T = n - done < s->max_batch ? n - done : s->max_batch;
        c.t0 = done;
        rc = moe_forward(s, ids + done, T, NULL, 0, err);
        done += T;
    }
    moe_session_set_route_observer(s, old_fn, old_user);
    return rc;
}
