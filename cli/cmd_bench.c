/*
 * cmd_bench.c - `moe bench MODEL`: prefill and decode speed as ratios to what
 * this machine can do, measured in the same run with the same thread count:
 *   prefill is compute bound: achieved FLOP/s = (2 x active matmul weights
 *     per token + attention) / time, against the f32 FMA peak (probe_f32_flops);
 *   decode is bandwidth bound: achieved bytes/s = tok/s * active weight bytes
 *     per token (moe_model_stats.bytes_active), against probe_read_bandwidth.
 * Ids are random (seeded); each rep resets the session; medians are reported.
 * --probe-each probes the bandwidth between reps as well, for machines whose
 * bandwidth moves while other jobs run.
 */
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "moe_bench.h"

static uint64_t bench_rand(uint64_t *x) { /* splitmix64 */
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* --probe-only: the limits alone, for scripts that time other workloads
 * (bench/train_bench.sh) and want the same ratios. */
static int bench_probe_only(int np, int threads, int probe_mb, int json) {
    if (np > 0) {
        cli_error("bench", "--probe-only takes no MODEL");
        return 2;
    }
    moe_probe *p = NULL;
    moe_err err = {{0}};
    if (moe_probe_new(&p, threads, &err)) {
        cli_error("bench", "%s", err.msg);
        return 1;
    }
    double bw = moe_probe_read_bandwidth(p, (size_t)probe_mb << 20, 3);
    double peak = moe_probe_f32_flops(p, 3);
    if (json)
        printf("{\"threads\": %d, \"peak_gflop_s\": %.3f, \"bandwidth_gb_s\": %.3f}\n",
               moe_probe_threads(p), peak / 1e9, bw / 1e9);
    else
        printf("machine  %d threads: f32 peak %.1f GFLOP/s, read bandwidth %.1f GB/s\n",
               moe_probe_threads(p), peak / 1e9, bw / 1e9);
    moe_probe_free(p);
    return 0;
}

int cmd_bench(int argc, char **argv) {
    int n_prompt = 128, n_gen = 32, threads = 0, reps = 3, warmup = 1, json = 0, probe_mb = 1024;
    int probe_only = 0, probe_each = 0;
    uint64_t seed = 1;
    const char *kernels = NULL;
    cli_cache cc = CLI_CACHE_INIT;
    const arg_opt opts[] = {
        {"--prompt", NULL, ARG_INT, &n_prompt, 0, 1 << 20, 0, "N", "prefill N tokens (128)"},
        {"--gen", NULL, ARG_INT, &n_gen, 0, 1 << 20, 0, "N", "then decode N tokens one by one (32)"},
        ARG_THREADS(&threads, "-t", "threads (0 = all CPUs)"),
        {"--reps", NULL, ARG_INT, &reps, 1, 1000, 0, "R", "timed repetitions, median reported (3)"},
        {"--warmup", NULL, ARG_INT, &warmup, 0, 100, 0, "W", "untimed repetitions first (1)"},
        {"--seed", NULL, ARG_U64, &seed, 0, 0, 0, "S", "seed of the random token ids, new ones each rep (1)"},
        {"--probe-mb", NULL, ARG_INT, &probe_mb, 1, 1 << 20, 0, "MB",
         "buffer of the bandwidth probe in MiB (1024)"},
        {"--kernels", NULL, ARG_STR, &kernels, 0, 0, 0, "PATH",
         "kernel path: scalar, avx2 or avx512 (default: the best this CPU has)"},
        {"--json", NULL, ARG_FLAG, &json, 0, 0, 0, NULL, "print one JSON object instead of a table"},
        {"--probe-only", NULL, ARG_FLAG, &probe_only, 0, 0, 0, NULL,
         "only the machine's limits (no MODEL): f32 peak and read bandwidth"},
        {"--probe-each", NULL, ARG_FLAG, &probe_each, 0, 0, 0, NULL,
         "probe the read bandwidth after every rep too; each rep's decode is compared with the probes "
         "around it (for machines other jobs share)"},
        ARG_CACHE(&cc),
    };
    const arg_cmd c = {"bench", "MODEL [--prompt N] [--gen N] [--threads N] [--reps R] [--json] | --probe-only",
                       "Measure prefill and decode tokens/s on random token ids and compare them with\n"
                       "this machine's f32 FLOP peak and memory read bandwidth, probed in the same run\n"
                       "with the same threads.",
                       "Prefill FLOPs are 2 x the active matmul weights per token (active parameters\n"
                       "less the embedding table) plus attention (4 x heads x head dim per layer per\n"
                       "earlier position); decode bytes per token are the active weights as stored.\n"
                       "With --mem the expert cache's statistics of the timed reps follow (hit rate,\n"
                       "bytes read per token, prefetch and prediction accuracy, stalls).",
                       opts, (int)(sizeof opts / sizeof opts[0]), 0, 1, "MODEL"};
    const char *pos[1];
    int np;
    int r = args_parse(&c, argc, argv, pos, &np);
    if (r != ARGS_OK) return args_exit(r);
    moe_load_opts lo;
    if (cli_cache_parse("bench", &cc, &lo)) return 2;
    if (probe_only) return bench_probe_only(np, threads, probe_mb, json);
    if (np == 0) {
        cli_error("bench", "missing argument: expected MODEL");
        fprintf(stderr, "run 'moe bench --help' for usage\n");
        return 2;
    }
    if (n_prompt + n_gen == 0) {
        cli_error("bench", "--prompt and --gen are both 0: nothing to measure");
        return 2;
    }

    int rc = 1;
    moe_model *m = NULL;
    moe_session *s = NULL;
    moe_probe *p = NULL;
    int32_t *ids = NULL;
    float *logits = NULL;
    double *tp = NULL, *td = NULL, *bws = NULL, *fr = NULL;
    moe_err err = {{0}};
    if (cli_load_model_opts("bench", pos[0], &lo, &m)) goto done;
    const moe_config *cfg = moe_model_config(m);
    moe_model_stats st;
    moe_model_stats_get(m, &st);
    moe_session_opts so = {.n_ctx = n_prompt + n_gen, .n_threads = threads, .kernels = kernels};
    if (moe_session_new(&s, m, &so, &err)) {
        cli_error("bench", "%s", err.msg);
        goto done;
    }
    cli_cache_attach(m, s);
    if (moe_probe_new(&p, threads, &err)) {
        cli_error("bench", "%s", err.msg);
        goto done;
    }
    ids = malloc((size_t)(n_prompt + n_gen) * sizeof *ids);
    logits = malloc((size_t)cfg->vocab * sizeof *logits);
    tp = calloc((size_t)reps, sizeof *tp);
    td = calloc((size_t)reps, sizeof *td);
    bws = calloc((size_t)reps + 1, sizeof *bws);
    fr = calloc((size_t)reps, sizeof *fr);
    if (!ids || !logits || !tp || !td || !bws || !fr) {
        cli_error("bench", "out of memory");
        goto done;
    }
    const int n_threads = moe_probe_threads(p);

    /* the machine's limits, with the workload's thread count */
    double bw = moe_probe_read_bandwidth(p, (size_t)probe_mb << 20, 3);
    double peak = moe_probe_f32_flops(p, 3);
    bws[0] = bw;

    for (int rep = 0; rep < warmup + reps; rep++) {
        /* fresh ids each rep: an expert cache must not see a rep it has seen */
        for (int i = 0; i < n_prompt + n_gen; i++)
            ids[i] = (int32_t)(bench_rand(&seed) % (uint64_t)cfg->vocab);
        moe_session_reset(s);
        if (rep == warmup && moe_model_cache(m)) moe_cache_stats_reset(moe_model_cache(m));
        double t0 = cli_now();
        if (n_prompt > 0 && moe_forward(s, ids, n_prompt, logits, 0, &err)) {
            cli_error("bench", "prefill: %s", err.msg);
            goto done;
        }
        double t1 = cli_now();
        for (int i = 0; i < n_gen; i++) {
            if (moe_forward(s, ids + n_prompt + i, 1, logits, 0, &err)) {
                cli_error("bench", "decode: %s", err.msg);
                goto done;
            }
        }
        double t2 = cli_now();
        cli_cache_tokens(m, n_prompt + n_gen);
        if (rep >= warmup) {
            int r = rep - warmup;
            tp[r] = t1 - t0;
            td[r] = t2 - t1;
            if (probe_each) { /* the bandwidth right after this rep; its decode against the mean around it */
                bws[r + 1] = moe_probe_read_bandwidth(p, (size_t)probe_mb << 20, 2);
                double b = 0.5 * (bws[r] + bws[r + 1]);
                fr[r] = b > 0 && td[r] > 0 ? n_gen / td[r] * (double)st.bytes_active / b : 0;
            }
        }
    }
    double frac_each = 0;
    if (probe_each) {
        frac_each = cli_median(fr, reps);
        bw = cli_median(bws, reps + 1);
    }
    double mp = cli_median(tp, reps), md = cli_median(td, reps);
    double pre_tps = n_prompt > 0 && mp > 0 ? n_prompt / mp : 0;
    double dec_tps = n_gen > 0 && md > 0 ? n_gen / md : 0;
    /* prefill FLOPs: 2 per active weight, less the embedding table (a row
     * lookup, not a matmul; with tied embeddings it is also the lm_head and
     * stays), plus attention scores and values: 4 * H * Dh per layer for each
     * earlier position, summed over the N prompt positions. */
    double w_mm = (double)st.params_active -
                  (cfg->tied_embeddings ? 0.0 : (double)cfg->vocab * (double)cfg->dim);
    double attn = 4.0 * cfg->n_heads * cfg->head_dim * cfg->n_layers * 0.5 * n_prompt * (n_prompt + 1.0);
    double flop_prefill = 2.0 * w_mm * n_prompt + attn;
    double pre_flops = mp > 0 ? flop_prefill / mp : 0, dec_bw = dec_tps * (double)st.bytes_active;

    if (json) {
        printf("{\"model\": ");
        cli_json_str(stdout, pos[0]);
        printf(", \"threads\": %d, \"prompt\": %d, \"gen\": %d, \"reps\": %d, "
               "\"params_active\": %lld, \"bytes_active\": %lld, \"prefill_flop\": %.6g, "
               "\"prefill_s\": %.6f, \"prefill_tok_s\": %.3f, \"prefill_gflop_s\": %.3f, "
               "\"peak_gflop_s\": %.3f, \"prefill_frac_peak\": %.4f, "
               "\"decode_s\": %.6f, \"decode_tok_s\": %.3f, \"decode_gb_s\": %.3f, "
               "\"bandwidth_gb_s\": %.3f, \"decode_frac_bandwidth\": %.4f, \"probes\": %d, \"isa\": \"%s\", "
               "\"quant_path\": \"%s\", \"amx\": %s, \"cache\": ",
               n_threads, n_prompt, n_gen, reps, (long long)st.params_active,
               (long long)st.bytes_active, flop_prefill, mp, pre_tps, pre_flops / 1e9, peak / 1e9,
               peak > 0 ? pre_flops / peak : 0.0, md, dec_tps, dec_bw / 1e9, bw / 1e9,
               probe_each ? frac_each : bw > 0 ? dec_bw / bw : 0.0, probe_each ? reps + 1 : 1,
               moe_session_kernels_isa(s), moe_session_quant_path(s),
               moe_session_quant_amx(s) ? "true" : "false");
        cli_cache_json(m, stdout);
        printf("}\n");
    } else {
        char b1[32], b2[32], b3[32];
        printf("model    %s: %d layers, %s params, %s active, %s active weights per token\n",
               pos[0], cfg->n_layers, cli_count(st.params_total, b1, sizeof b1),
               cli_count(st.params_active, b2, sizeof b2),
               cli_bytes(st.bytes_active, b3, sizeof b3));
        printf("machine  %d threads: f32 peak %.1f GFLOP/s, read bandwidth %.1f GB/s\n", n_threads,
               peak / 1e9, bw / 1e9);
        printf("kernels  %s; quantized weights: %s%s\n", moe_session_kernels_isa(s),
               moe_session_quant_path(s),
               moe_session_quant_amx(s) ? ", AMX-INT8 for prefill (Q4_0, Q8_0, Q4_K)" : "");
        char a1[32], a2[32];
        printf("\n%-8s %8s %12s %16s %16s %7s\n", "", "tokens", "tok/s", "achieved", "limit", "ratio");
        if (n_prompt > 0) {
            snprintf(a1, sizeof a1, "%.2f GFLOP/s", pre_flops / 1e9);
            snprintf(a2, sizeof a2, "%.2f GFLOP/s", peak / 1e9);
            printf("%-8s %8d %12.2f %16s %16s %6.1f%%\n", "prefill", n_prompt, pre_tps, a1, a2,
                   peak > 0 ? 100 * pre_flops / peak : 0.0);
        }
        if (n_gen > 0) {
            snprintf(a1, sizeof a1, "%.2f GB/s", dec_bw / 1e9);
            snprintf(a2, sizeof a2, "%.2f GB/s", bw / 1e9);
            printf("%-8s %8d %12.2f %16s %16s %6.1f%%\n", "decode", n_gen, dec_tps, a1, a2,
                   probe_each ? 100 * frac_each : bw > 0 ? 100 * dec_bw / bw : 0.0);
        }
        printf("\nmedian of %d reps (+%d warmup); prefill FLOPs = 2 x active matmul weights per\n"
               "token + attention; decode bytes = active weights per token\n",
               reps, warmup);
        if (probe_each)
            printf("read bandwidth: median of %d probes, one before and one after each rep; decode ratio:\n"
                   "median over reps of the rep's GB/s against the mean of the probes around it\n",
                   reps + 1);
        if (moe_model_cache(m)) {
            printf("\n");
            cli_cache_line("bench", m, stdout);
        }
    }
    rc = 0;
done:
    free(fr);
    free(bws);
    free(tp);
    free(td);
    free(logits);
    free(ids);
    moe_probe_free(p);
    moe_session_free(s);
    moe_model_free(m);
    return rc;
}
