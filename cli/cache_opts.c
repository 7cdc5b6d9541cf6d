/*
 * cache_opts.c - the expert memory budget options of the commands that run
 * a model (--mem SIZE, --cache-policy P, --prefetch N, --mem-fallback TYPE,
 * --repack, --no-repack; cli.h's ARG_CACHE),
 * loading with them, and the cache's statistics as a text line and as JSON.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "moe_quant.h"

int cli_cache_parse(const char *cmd, const cli_cache *cc, moe_load_opts *o) {
    *o = (moe_load_opts){.mem = 0, .policy = MOE_CACHE_POLICY_DEFAULT, .prefetch = cc->prefetch};
    if (cc->mem && moe_parse_size(cc->mem, &o->mem)) {
        cli_error(cmd, "--mem %s: not a size (bytes > 0 with an optional K, M, G or T suffix, "
                  "powers of 1024, e.g. 512M or 16G)", cc->mem);
        return -1;
    }
    if (cc->policy && moe_cache_policy_parse(cc->policy, &o->policy)) {
        cli_error(cmd, "--cache-policy %s: expected lru, lfu or history", cc->policy);
        return -1;
    }
    if (!cc->mem && (cc->policy || cc->prefetch >= 0 || cc->fallback)) {
        cli_error(cmd, "%s goes with --mem", cc->policy ? "--cache-policy"
                                             : cc->fallback ? "--mem-fallback" : "--prefetch");
        return -1;
    }
    if (cc->repack && cc->mem) {
        cli_error(cmd, "--repack does not go with --mem (experts read on demand stay as the file has them)");
        return -1;
    }
    if (cc->repack && cc->no_repack) {
        cli_error(cmd, "--repack and --no-repack: choose one");
        return -1;
    }
    o->repack = cc->repack ? 1 : cc->no_repack ? -1 : 0;
    if (cc->fallback) {
        int t = moe_qtype_from_name(cc->fallback);
        if (t < 0 || moe_qtype_is_float(t)) {
            cli_error(cmd, "--mem-fallback %s: expected a quantized type: q2_k, q3_k, q4_k, q5_k, "
                      "q6_k, q4_0, q4_1, q5_0, q5_1, q8_0, iq4_nl, iq4_xs, mxfp4", cc->fallback);
            return -1;
        }
        o->fallback = t;
    }
    return 0;
}

void cli_cache_attach(moe_model *m, moe_session *s) {
    moe_cache *c = moe_model_cache(m);
    if (c) moe_cache_attach(c, s);
}

void cli_cache_tokens(moe_model *m, int64_t n) {
    moe_cache *c = moe_model_cache(m);
    if (c) moe_cache_add_tokens(c, n);
}

static double ratio(int64_t a, int64_t b) { return b > 0 ? (double)a / (double)b : 0.0; }

void cli_cache_line(const char *cmd, const moe_model *m, FILE *f) {
    moe_cache *c = moe_model_cache(m);
    if (!c) return;
    moe_cache_stats st;
    moe_cache_stats_get(c, &st);
    char a[32], b[32], r[32], t[32];
    char w[32], e[32];
    fprintf(f, "moe %s: expert cache %s (%d slots of %s, %s, prefetch %d; other weights %s "
            "resident, %s embedding mapped): hits %.1f%% (%lld of %lld), read %s", cmd, cli_bytes(st.mem, a, sizeof a),
            st.n_slots, cli_bytes(st.slot_bytes, b, sizeof b), moe_cache_policy_name(st.policy),
            st.prefetch, cli_bytes(st.resident_bytes, w, sizeof w),
            cli_bytes(st.mapped_bytes, e, sizeof e), 100.0 * ratio(st.hits, st.hits + st.misses), (long long)st.hits,
            (long long)(st.hits + st.misses), cli_bytes(st.bytes_read, r, sizeof r));
    if (st.tokens > 0)
        fprintf(f, " (%s/token)", cli_bytes(st.bytes_read / st.tokens, t, sizeof t));
    fprintf(f, " at %.2f GB/s", st.read_busy_seconds > 0 ? st.bytes_read / st.read_busy_seconds / 1e9 : 0.0);
    if (st.prefetch_issued || st.predicted)
        fprintf(f, ", prefetch %lld queued / %lld used / %lld wasted / %lld cancelled, prediction "
                "precision %.1f%% recall %.1f%%", (long long)st.prefetch_issued,
                (long long)st.prefetch_used, (long long)st.prefetch_wasted,
                (long long)st.prefetch_cancelled, 100.0 * ratio(st.predicted_used, st.predicted),
                100.0 * ratio(st.predicted_used, st.used_after_prediction));
    fprintf(f, ", stalls %lld (%.3f s)", (long long)st.stalls, st.stall_seconds);
    if (st.fallback_type) {
        fprintf(f, ", fallback %s %s (built in %.2f s): used %lld", moe_qtype_name(st.fallback_type),
                cli_bytes(st.fallback_bytes, t, sizeof t), st.fallback_seconds,
                (long long)st.fallbacks);
        if (st.tokens > 0) fprintf(f, " (%.2f/token)", ratio(st.fallbacks, st.tokens));
        fprintf(f, ", %lld late reads dropped", (long long)st.fallback_dropped);
    }
    fprintf(f, ", %s\n", st.io_note);
}

void cli_cache_json(const moe_model *m, FILE *f) {
    moe_cache *c = moe_model_cache(m);
    if (!c) {
        fprintf(f, "null");
        return;
    }
    moe_cache_stats st;
    moe_cache_stats_get(c, &st);
    fprintf(f, "{\"mem\": %lld, \"slot_bytes\": %lld, \"slots\": %d, \"max_held\": %d, "
            "\"policy\": \"%s\", \"prefetch\": %d, \"direct_io\": %s, \"io\": ",
            (long long)st.mem, (long long)st.slot_bytes, st.n_slots, st.max_held,
            moe_cache_policy_name(st.policy), st.prefetch, st.direct_io ? "true" : "false");
    cli_json_str(f, st.io_note);
    fprintf(f, ", \"resident_bytes\": %lld, \"mapped_bytes\": %lld, \"expert_bytes\": %lld, \"hits\": %lld, "
            "\"misses\": %lld, \"hit_rate\": %.6f, \"reads\": %lld, \"bytes_read\": %lld, "
            "\"tokens\": %lld, \"bytes_read_per_token\": %.1f, \"read_seconds\": %.6f, "
            "\"read_busy_seconds\": %.6f, \"read_gb_per_s\": %.4f, \"prefetch_issued\": %lld, \"prefetch_used\": %lld, "
            "\"prefetch_wasted\": %lld, \"prefetch_cancelled\": %lld, \"prefetch_dropped\": %lld, "
            "\"predicted\": %lld, "
            "\"predicted_used\": %lld, \"used_after_prediction\": %lld, "
            "\"prediction_precision\": %.6f, \"prediction_recall\": %.6f, \"stalls\": %lld, "
            "\"stall_seconds\": %.6f, ",
            (long long)st.resident_bytes, (long long)st.mapped_bytes, (long long)st.expert_bytes, (long long)st.hits,
            (long long)st.misses, ratio(st.hits, st.hits + st.misses), (long long)st.reads,
            (long long)st.bytes_read, (long long)st.tokens, ratio(st.bytes_read, st.tokens),
            st.read_seconds, st.read_busy_seconds,
            st.read_busy_seconds > 0 ? st.bytes_read / st.read_busy_seconds / 1e9 : 0.0,
            (long long)st.prefetch_issued, (long long)st.prefetch_used,
            (long long)st.prefetch_wasted, (long long)st.prefetch_cancelled,
            (long long)st.prefetch_dropped, (long long)st.predicted, (long long)st.predicted_used,
            (long long)st.used_after_prediction, ratio(st.predicted_used, st.predicted),
            ratio(st.predicted_used, st.used_after_prediction), (long long)st.stalls,
            st.stall_seconds);
    fprintf(f, "\"fallback_type\": ");
    if (st.fallback_type) cli_json_str(f, moe_qtype_name(st.fallback_type));
    else fprintf(f, "null");
    fprintf(f, ", \"fallback_bytes\": %lld, \"fallback_seconds\": %.6f, \"fallbacks\": %lld, "
            "\"fallbacks_per_token\": %.4f, \"fallback_dropped\": %lld, \"predicted_at\": [",
            (long long)st.fallback_bytes, st.fallback_seconds, (long long)st.fallbacks,
            ratio(st.fallbacks, st.tokens), (long long)st.fallback_dropped);
    for (int r = 0; r < MOE_CACHE_GUESS_PLACES; r++)
        fprintf(f, "%s%lld", r ? ", " : "", (long long)st.predicted_at[r]);
    fprintf(f, "], \"predicted_at_used\": [");
    for (int r = 0; r < MOE_CACHE_GUESS_PLACES; r++)
        fprintf(f, "%s%lld", r ? ", " : "", (long long)st.predicted_at_used[r]);
    fprintf(f, "], \"layers\": [");
    for (int l = 0; l < st.n_layers; l++) {
        const moe_cache_layer_stats *y = &st.layer[l];
        fprintf(f, "%s{\"predicted\": %lld, \"predicted_used\": %lld, \"used\": %lld}", l ? ", " : "",
                (long long)y->predicted, (long long)y->predicted_used, (long long)y->used);
    }
    fprintf(f, "]}");
}
