/*
 * cmd_bench.c - `moe bench MODEL`: prefill and decode speed as ratios to what
 * this machine can do, measured in the same run with the same thread count:
 *   prefill is compute bound: achieved FLOP/s = (2 x active matmul weights
 *     per token, the output head for the last token only, + attention) / time, against the f32 FMA peak (probe_f32_flops)
 *     and, for quantized weights, the int8 multiply-accumulate peak of the
 *     path their products take (probe_int8_ops: AMX, AVX-512 VNNI, AVX2);
 *   decode is bandwidth bound: achieved bytes/s = tok/s * active weight bytes
 *     per token (moe_model_stats.bytes_active), against probe_read_bandwidth.
 * Prefill is timed at each --prompt size (128, 512 and 2048 tokens unless
 * told), decode after the first size's prefill. Ids are random (seeded, new
 * each rep); each run resets the session; medians are reported. --sweep
 * repeats everything, probes included, at 1, 2, 4, ... threads.
 * --probe-each probes the bandwidth between reps as well, for machines whose
 * bandwidth moves while other jobs run.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "cli.h"
#include "moe_bench.h"

#define MAX_PROMPTS 8
#define MAX_SWEEP 16

static uint64_t bench_rand(uint64_t *x) { /* splitmix64 */
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* "; NUMA: 2 nodes, 3.1 GiB interleaved" where there is something to say
 * (several nodes, or placement asked for on one), else "". */
static const char *numa_note(char *buf, size_t n) {
    moe_numa_info ni;
    moe_numa_get(&ni);
    buf[0] = 0;
    if (ni.nodes < 2 && !ni.interleaved_bytes && !ni.refused) return buf;
    char b[32];
    const int k = snprintf(buf, n, "; NUMA: %d node%s, %s interleaved", ni.nodes, ni.nodes > 1 ? "s" : "",
                           ni.interleaved_bytes ? cli_bytes(ni.interleaved_bytes, b, sizeof b) : "nothing");
    if (ni.refused && k > 0 && (size_t)k < n) snprintf(buf + k, n - (size_t)k, " (placement refused: %s)", ni.refused);
    return buf;
}

static void numa_json(void) {
    moe_numa_info ni;
    moe_numa_get(&ni);
    printf(", \"numa_nodes\": %d, \"numa_interleaved_bytes\": %lld", ni.nodes, (long long)ni.interleaved_bytes);
}

/* --probe-only: the limits alone, for scripts that time other workloads
 * (bench/train_bench.sh) and want the same ratios. */
static int bench_probe_only(int np, int threads, int probe_mb, const char *kernels, int json) {
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
    const char *i8path = "";
    double i8 = moe_probe_int8_ops(p, kernels, 3, &i8path);
    double i8b = moe_probe_int8_block_ops(p, kernels, 3);
    char blk[96] = "";
    if (i8b > 0) snprintf(blk, sizeof blk, ", %.1f GOP/s with a scale per 32-block", i8b / 1e9);
    if (json)
        printf("{\"threads\": %d, \"peak_gflop_s\": %.3f, \"int8_peak_gop_s\": %.3f, "
               "\"int8_path\": \"%s\", \"int8_block_peak_gop_s\": %.3f, \"bandwidth_gb_s\": %.3f",
               moe_probe_threads(p), peak / 1e9, i8 / 1e9, i8path, i8b / 1e9, bw / 1e9);
    else
        printf("machine  %d threads: f32 peak %.1f GFLOP/s, int8 peak %.1f GOP/s (%s)%s, read "
               "bandwidth %.1f GB/s", moe_probe_threads(p), peak / 1e9, i8 / 1e9, i8path, blk, bw / 1e9);
    char nb[160];
    if (json) {
        numa_json();
        printf("}\n");
    } else
        printf("%s\n", numa_note(nb, sizeof nb));
    moe_probe_free(p);
    return 0;
}

/* "128,512,2048" -> sizes; 0 or -1 with the message printed. */
static int parse_list(const char *opt, const char *s, int lo, int hi, int *v, int max, int *n) {
    *n = 0;
    const char *p = s;
    for (;;) {
        char *end;
        errno = 0;
        long x = strtol(p, &end, 10);
        size_t len = strcspn(p, ",");
        if (end == p || (size_t)(end - p) != len) {
            cli_error("bench", "%s: '%.*s' is not an integer", opt, (int)len, p);
            return -1;
        }
        if (errno || x < lo || x > hi) {
            cli_error("bench", "%s: %ld is out of range [%d, %d]", opt, x, lo, hi);
            return -1;
        }
        if (*n == max) {
            cli_error("bench", "%s: at most %d values", opt, max);
            return -1;
        }
        v[(*n)++] = (int)x;
        if (!p[len]) return 0;
        p += len + 1;
    }
}

typedef struct {
    const char *model;
    int prompts[MAX_PROMPTS], n_prompts, n_gen, reps, warmup, probe_mb, probe_each;
    uint64_t seed;
    const char *kernels;
} bench_args;

/* One thread count's measurements. */
typedef struct {
    int threads;
    double bw, peak, i8peak;
    double i8block; /* AMX or VNNI on weights with a scale per 32-block; 0 on other paths */
    const char *i8path;
    double pp_s[MAX_PROMPTS], pp_tps[MAX_PROMPTS], pp_flops[MAX_PROMPTS];
    double dec_s, dec_tps, dec_bw, frac_each;
    const char *isa, *qpath;
    int amx;
} bench_res;

/* FLOPs of a prefill of n tokens: 2 per active matmul weight per token
 * (less the embedding table, a row lookup, unless tied: then it is also the
 * head), except the output head, which a prefill runs for its last token
 * only (moe_forward without all_logits; llama-bench's prefill does the
 * same), plus attention scores and values: 4 * H * Dh per layer for each
 * earlier position, summed over the n positions. */
static double prefill_flop(const moe_config *cfg, const moe_model_stats *st, int n) {
    const double head = (double)cfg->vocab * (double)cfg->dim;
    double w_body = (double)st->params_active - (cfg->tied_embeddings ? 0.0 : head) - head;
    double attn = 4.0 * cfg->n_heads * cfg->head_dim * cfg->n_layers * 0.5 * n * (n + 1.0);
    return 2.0 * w_body * n + 2.0 * head + attn;
}

static int bench_run(const bench_args *A, moe_model *m, int threads, bench_res *r) {
    const moe_config *cfg = moe_model_config(m);
    moe_model_stats st;
    moe_model_stats_get(m, &st);
    int rc = -1, pmax = 0, n_pp = A->n_prompts, reps = A->reps;
    for (int k = 0; k < n_pp; k++) pmax = A->prompts[k] > pmax ? A->prompts[k] : pmax;
    int p0 = n_pp ? A->prompts[0] : 0; /* decode follows this prefill */
    moe_session *s = NULL;
    moe_probe *p = NULL;
    int32_t *ids = NULL;
    float *logits = NULL;
    double *tp = NULL, *td = NULL, *bws = NULL, *fr = NULL;
    moe_err err = {{0}};
    uint64_t seed = A->seed;
    memset(r, 0, sizeof *r);
    moe_session_opts so = {.n_ctx = (pmax > p0 ? pmax : p0) + A->n_gen, .n_threads = threads,
                           .kernels = A->kernels};
    if (moe_session_new(&s, m, &so, &err) || moe_probe_new(&p, threads, &err)) {
        cli_error("bench", "%s", err.msg);
        goto done;
    }
    cli_cache_attach(m, s);
    ids = malloc((size_t)(pmax + A->n_gen + 1) * sizeof *ids);
    logits = malloc((size_t)cfg->vocab * sizeof *logits);
    tp = calloc((size_t)reps * MAX_PROMPTS, sizeof *tp);
    td = calloc((size_t)reps, sizeof *td);
    bws = calloc((size_t)reps + 1, sizeof *bws);
    fr = calloc((size_t)reps, sizeof *fr);
    if (!ids || !logits || !tp || !td || !bws || !fr) {
        cli_error("bench", "out of memory");
        goto done;
    }
    r->threads = moe_probe_threads(p);
    r->isa = moe_session_kernels_isa(s);
    r->qpath = moe_session_quant_path(s);
    r->amx = moe_session_quant_amx(s);

    /* the machine's limits, with the workload's thread count */
    r->bw = moe_probe_read_bandwidth(p, (size_t)A->probe_mb << 20, 3);
    r->peak = moe_probe_f32_flops(p, 3);
    r->i8peak = moe_probe_int8_ops(p, A->kernels, 3, &r->i8path);
    r->i8block = moe_probe_int8_block_ops(p, A->kernels, 3);
    bws[0] = r->bw;

    for (int rep = 0; rep < A->warmup + reps; rep++) {
        if (rep == A->warmup && moe_model_cache(m)) moe_cache_stats_reset(moe_model_cache(m));
        int64_t tokens = 0;
        /* the prefills, the first size last: decode goes on from it */
        for (int k = n_pp - 1; k >= 0; k--) {
            int n = A->prompts[k];
            /* fresh ids each run: an expert cache must not see a run it has seen */
            for (int i = 0; i < n; i++) ids[i] = (int32_t)(bench_rand(&seed) % (uint64_t)cfg->vocab);
            moe_session_reset(s);
            double t0 = cli_now();
            if (n > 0 && moe_forward(s, ids, n, logits, 0, &err)) {
                cli_error("bench", "prefill of %d tokens: %s", n, err.msg);
                goto done;
            }
            if (rep >= A->warmup) tp[(rep - A->warmup) * MAX_PROMPTS + k] = cli_now() - t0;
            tokens += n;
        }
        if (!n_pp) moe_session_reset(s);
        for (int i = 0; i < A->n_gen; i++) ids[i] = (int32_t)(bench_rand(&seed) % (uint64_t)cfg->vocab);
        double t1 = cli_now();
        for (int i = 0; i < A->n_gen; i++) {
            if (moe_forward(s, ids + i, 1, logits, 0, &err)) {
                cli_error("bench", "decode: %s", err.msg);
                goto done;
            }
        }
        double t2 = cli_now();
        cli_cache_tokens(m, tokens + A->n_gen);
        if (rep >= A->warmup) {
            int q = rep - A->warmup;
            td[q] = t2 - t1;
            if (A->probe_each) { /* the bandwidth right after this rep; its decode against the mean around it */
                bws[q + 1] = moe_probe_read_bandwidth(p, (size_t)A->probe_mb << 20, 2);
                double b = 0.5 * (bws[q] + bws[q + 1]);
                fr[q] = b > 0 && td[q] > 0 ? A->n_gen / td[q] * (double)st.bytes_active / b : 0;
            }
        }
    }
    if (A->probe_each) {
        r->frac_each = cli_median(fr, reps);
        r->bw = cli_median(bws, reps + 1);
    }
    double col[1000];
    for (int k = 0; k < n_pp; k++) {
        for (int q = 0; q < reps; q++) col[q] = tp[q * MAX_PROMPTS + k];
        r->pp_s[k] = cli_median(col, reps);
        int n = A->prompts[k];
        r->pp_tps[k] = n > 0 && r->pp_s[k] > 0 ? n / r->pp_s[k] : 0;
        r->pp_flops[k] = r->pp_s[k] > 0 ? prefill_flop(cfg, &st, n) / r->pp_s[k] : 0;
    }
    r->dec_s = cli_median(td, reps);
    r->dec_tps = A->n_gen > 0 && r->dec_s > 0 ? A->n_gen / r->dec_s : 0;
    r->dec_bw = r->dec_tps * (double)st.bytes_active;
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
    return rc;
}

static double ratio(double a, double b) { return b > 0 ? a / b : 0.0; }

/* The int8 peak is the limit of quantized products only: the share of the
 * active matmul weights that are quantized decides whether it is shown. */
static int mostly_quant(const moe_config *cfg, const moe_model_stats *st) {
    double w_mm = (double)st->params_active -
                  (cfg->tied_embeddings ? 0.0 : (double)cfg->vocab * (double)cfg->dim);
    return (double)st->params_active_quant * 2 > w_mm;
}

/* with_cache: the cache's statistics (those of the last run) go here. */
static void print_json(const bench_args *A, moe_model *m, const bench_res *r, int with_cache) {
    const moe_config *cfg = moe_model_config(m);
    moe_model_stats st;
    moe_model_stats_get(m, &st);
    int p0 = A->n_prompts ? A->prompts[0] : 0;
    printf("{\"model\": ");
    cli_json_str(stdout, A->model);
    printf(", \"threads\": %d, \"prompt\": %d, \"gen\": %d, \"reps\": %d, "
           "\"params_active\": %lld, \"params_active_quant\": %lld, \"bytes_active\": %lld, "
           "\"prefill_flop\": %.6g, \"prefill_s\": %.6f, \"prefill_tok_s\": %.3f, "
           "\"prefill_gflop_s\": %.3f, \"peak_gflop_s\": %.3f, \"prefill_frac_peak\": %.4f, "
           "\"int8_peak_gop_s\": %.3f, \"int8_path\": \"%s\", \"prefill_frac_int8_peak\": %.4f, "
           "\"int8_block_peak_gop_s\": %.3f, \"prefill\": [",
           r->threads, p0, A->n_gen, A->reps, (long long)st.params_active,
           (long long)st.params_active_quant, (long long)st.bytes_active, prefill_flop(cfg, &st, p0),
           r->pp_s[0], r->pp_tps[0], r->pp_flops[0] / 1e9, r->peak / 1e9,
           ratio(r->pp_flops[0], r->peak), r->i8peak / 1e9, r->i8path, ratio(r->pp_flops[0], r->i8peak),
           r->i8block / 1e9);
    for (int k = 0; k < A->n_prompts; k++)
        printf("%s{\"tokens\": %d, \"s\": %.6f, \"tok_s\": %.3f, \"gflop_s\": %.3f, "
               "\"frac_peak\": %.4f, \"frac_int8_peak\": %.4f, \"frac_int8_block_peak\": %.4f}",
               k ? ", " : "", A->prompts[k], r->pp_s[k], r->pp_tps[k], r->pp_flops[k] / 1e9,
               ratio(r->pp_flops[k], r->peak), ratio(r->pp_flops[k], r->i8peak),
               ratio(r->pp_flops[k], r->i8block));
    printf("], \"decode_s\": %.6f, \"decode_tok_s\": %.3f, \"decode_gb_s\": %.3f, "
           "\"bandwidth_gb_s\": %.3f, \"decode_frac_bandwidth\": %.4f, \"probes\": %d, \"isa\": \"%s\", "
           "\"quant_path\": \"%s\", \"amx\": %s, \"packed\": %lld, \"cache\": ",
           r->dec_s, r->dec_tps, r->dec_bw / 1e9, r->bw / 1e9,
           A->probe_each ? r->frac_each : ratio(r->dec_bw, r->bw), A->probe_each ? A->reps + 1 : 1,
           r->isa, r->qpath, r->amx ? "true" : "false", (long long)st.packed);
    if (with_cache) cli_cache_json(m, stdout);
    else printf("null");
    numa_json();
    printf("}");
}

static void print_table(const bench_args *A, moe_model *m, const bench_res *r) {
    const moe_config *cfg = moe_model_config(m);
    moe_model_stats st;
    moe_model_stats_get(m, &st);
    int q8 = mostly_quant(cfg, &st), q8b = q8 && r->i8block > 0;
    char b1[32], b2[32], b3[32], blk[96] = "";
    if (r->i8block > 0) snprintf(blk, sizeof blk, ", %.1f GOP/s with a scale per 32-block", r->i8block / 1e9);
    printf("model    %s: %d layers, %s params, %s active, %s active weights per token\n", A->model,
           cfg->n_layers, cli_count(st.params_total, b1, sizeof b1),
           cli_count(st.params_active, b2, sizeof b2), cli_bytes(st.bytes_active, b3, sizeof b3));
    char nb[160];
    printf("machine  %d threads: f32 peak %.1f GFLOP/s, int8 peak %.1f GOP/s (%s)%s, read bandwidth "
           "%.1f GB/s%s\n", r->threads, r->peak / 1e9, r->i8peak / 1e9, r->i8path, blk, r->bw / 1e9,
           numa_note(nb, sizeof nb));
    printf("kernels  %s; quantized weights: %s%s", r->isa, r->qpath,
           r->amx ? ", AMX-INT8 for prefill (Q4_0, Q8_0, Q5_0, IQ4_NL, Q4_K, Q5_K, Q6_K, Q3_K, IQ4_XS)" : "");
    if (st.packed) printf("; %lld expert matrices packed at load (--repack)", (long long)st.packed);
    printf("\n");
    char a1[32], a2[32];
    printf("\n%-8s %8s %12s %16s %16s %7s%s%s\n", "", "tokens", "tok/s", "achieved", "limit", "ratio",
           q8 ? "  of int8 peak" : "", q8b ? "  of block peak" : "");
    for (int k = 0; k < A->n_prompts; k++) {
        if (A->prompts[k] <= 0) continue;
        snprintf(a1, sizeof a1, "%.2f GFLOP/s", r->pp_flops[k] / 1e9);
        snprintf(a2, sizeof a2, "%.2f GFLOP/s", r->peak / 1e9);
        printf("%-8s %8d %12.2f %16s %16s %6.1f%%", "prefill", A->prompts[k], r->pp_tps[k], a1, a2,
               100 * ratio(r->pp_flops[k], r->peak));
        if (q8) printf("  %12.1f%%", 100 * ratio(r->pp_flops[k], r->i8peak));
        if (q8b) printf("  %13.1f%%", 100 * ratio(r->pp_flops[k], r->i8block));
        printf("\n");
    }
    if (A->n_gen > 0) {
        snprintf(a1, sizeof a1, "%.2f GB/s", r->dec_bw / 1e9);
        snprintf(a2, sizeof a2, "%.2f GB/s", r->bw / 1e9);
        printf("%-8s %8d %12.2f %16s %16s %6.1f%%\n", "decode", A->n_gen, r->dec_tps, a1, a2,
               A->probe_each ? 100 * r->frac_each : 100 * ratio(r->dec_bw, r->bw));
    }
    printf("\nmedian of %d reps (+%d warmup); prefill FLOPs = 2 x active matmul weights per\n"
           "token (the output head: the last token's only) + attention%s; decode bytes = active\n"
           "weights per token\n", A->reps, A->warmup,
           q8 ? ",\nthe same count as int8 operations for quantized weights" : "");
    if (q8b && r->amx)
        printf("block peak: the AMX products of weights with a scale per 32-block, probed in L1 (each\n"
               "block's int32 sums stored and scaled by AVX-512, which bounds them)\n");
    else if (q8b)
        printf("block peak: the VNNI products of weights with a scale per 32-block, probed in L1 (per\n"
               "block and 16 W rows 8 vpdpbusd, then a conversion and an fma that bound them)\n");
    if (A->probe_each)
        printf("read bandwidth: median of %d probes, one before and one after each rep; decode ratio:\n"
               "median over reps of the rep's GB/s against the mean of the probes around it\n",
               A->reps + 1);
}

/* --sweep: one row per thread count. */
static void print_sweep(const bench_args *A, const bench_res *rs, int n) {
    printf("%7s %10s %11s %11s", "threads", "read GB/s", "f32 GFLOP/s", "int8 GOP/s");
    for (int k = 0; k < A->n_prompts; k++) {
        char h[32];
        snprintf(h, sizeof h, "pp%d tok/s", A->prompts[k]);
        if (A->prompts[k] > 0) printf(" %12s %6s", h, "int8%");
    }
    if (A->n_gen > 0) printf(" %12s %6s", "decode tok/s", "bw%");
    printf("\n");
    for (int i = 0; i < n; i++) {
        const bench_res *r = &rs[i];
        printf("%7d %10.1f %11.1f %11.1f", r->threads, r->bw / 1e9, r->peak / 1e9, r->i8peak / 1e9);
        for (int k = 0; k < A->n_prompts; k++)
            if (A->prompts[k] > 0)
                printf(" %12.2f %5.1f%%", r->pp_tps[k], 100 * ratio(r->pp_flops[k], r->i8peak));
        if (A->n_gen > 0) printf(" %12.2f %5.1f%%", r->dec_tps, 100 * ratio(r->dec_bw, r->bw));
        printf("\n");
    }
    printf("\nint8%%: prefill operations (2 per active matmul weight per token + attention) against\n"
           "the int8 peak of the path named above each row's probe; bw%%: decode bytes against the\n"
           "read bandwidth probed at that thread count\n");
}

int cmd_bench(int argc, char **argv) {
    int n_gen = 32, threads = 0, reps = 3, warmup = 1, json = 0, probe_mb = 1024;
    int probe_only = 0, probe_each = 0, sweep = 0;
    uint64_t seed = 1;
    const char *kernels = NULL, *prompt = "128,512,2048";
    cli_cache cc = CLI_CACHE_INIT;
    const arg_opt opts[] = {
        {"--prompt", NULL, ARG_STR, &prompt, 0, 0, 0, "N[,N...]",
         "prefill N tokens, timed at each size given (128,512,2048); 0: none"},
        {"--gen", NULL, ARG_INT, &n_gen, 0, 1 << 20, 0, "N",
         "then decode N tokens one by one after the first prefill size (32)"},
        ARG_THREADS(&threads, "-t", "threads (0 = all CPUs); with --sweep the most"),
        {"--sweep", NULL, ARG_FLAG, &sweep, 0, 0, 0, NULL,
         "measure at 1, 2, 4, ... threads up to --threads, probes at each count"},
        {"--reps", NULL, ARG_INT, &reps, 1, 1000, 0, "R", "timed repetitions, median reported (3)"},
        {"--warmup", NULL, ARG_INT, &warmup, 0, 100, 0, "W", "untimed repetitions first (1)"},
        {"--seed", NULL, ARG_U64, &seed, 0, 0, 0, "S", "seed of the random token ids, new ones each rep (1)"},
        {"--probe-mb", NULL, ARG_INT, &probe_mb, 1, 1 << 20, 0, "MB",
         "buffer of the bandwidth probe in MiB (1024)"},
        {"--kernels", NULL, ARG_STR, &kernels, 0, 0, 0, "PATH",
         "kernel path: scalar, avx2 or avx512 (default: the best this CPU has; avx2 takes AVX-VNNI where the CPU "
         "has it unless MOE_AVXVNNI=0, avx512 AMX unless MOE_AMX=0)"},
        {"--json", NULL, ARG_FLAG, &json, 0, 0, 0, NULL,
         "print one JSON object (with --sweep: {\"sweep\": [one per thread count]})"},
        {"--probe-only", NULL, ARG_FLAG, &probe_only, 0, 0, 0, NULL,
         "only the machine's limits (no MODEL): f32 and int8 peaks (and the block peak on AMX and VNNI), read bandwidth"},
        {"--probe-each", NULL, ARG_FLAG, &probe_each, 0, 0, 0, NULL,
         "probe the read bandwidth after every rep too; each rep's decode is compared with the probes "
         "around it (for machines other jobs share)"},
        ARG_CACHE(&cc),
    };
    const arg_cmd c = {"bench", "MODEL [--prompt N,...] [--gen N] [--threads N] [--sweep] [--json] | --probe-only",
                       "Measure prefill and decode tokens/s on random token ids and compare them with\n"
                       "this machine's f32 and int8 peaks and memory read bandwidth, probed in the same\n"
                       "run with the same threads.",
                       "Prefill FLOPs are 2 x the active matmul weights per token (active parameters\n"
                       "less the embedding table; the output head counted once, for the last token, the\n"
                       "only one whose logits a prefill computes) plus attention (4 x heads x head dim\n"
                       "per layer per earlier position); for a model whose active weights are mostly quantized the\n"
                       "same count is also shown against the int8 peak of the path its products take\n"
                       "(AMX-INT8, AVX-512 VNNI or AVX2) and, on AMX and AVX-512 VNNI, against the rate\n"
                       "that path reaches on weights with a scale per 32-block (the \"block peak\":\n"
                       "each block's int32 sums are converted and scaled in f32, which bounds it).\n"
                       "Decode bytes per token are the active weights as stored. With --mem the\n"
                       "expert cache's statistics of the timed reps follow (hit rate, bytes read per\n"
                       "token, prefetch and prediction accuracy, stalls). On a machine with several\n"
                       "NUMA nodes the weights read into memory and the probe's buffer are interleaved\n"
                       "over them (MOE_NUMA=auto, the default; interleave; off), and the machine line\n"
                       "says how much.",
                       opts, (int)(sizeof opts / sizeof opts[0]), 0, 1, "MODEL"};
    const char *pos[1];
    int np;
    int r = args_parse(&c, argc, argv, pos, &np);
    if (r != ARGS_OK) return args_exit(r);
    moe_load_opts lo;
    if (cli_cache_parse("bench", &cc, &lo)) return 2;
    if (probe_only) return bench_probe_only(np, threads, probe_mb, kernels, json);
    bench_args A = {.n_gen = n_gen, .reps = reps, .warmup = warmup, .probe_mb = probe_mb,
                    .probe_each = probe_each, .seed = seed, .kernels = kernels};
    if (parse_list("--prompt", prompt, 0, 1 << 20, A.prompts, MAX_PROMPTS, &A.n_prompts)) return 2;
    int any = n_gen > 0;
    for (int k = 0; k < A.n_prompts; k++) any |= A.prompts[k] > 0;
    if (np == 0) {
        cli_error("bench", "missing argument: expected MODEL");
        fprintf(stderr, "run 'moe bench --help' for usage\n");
        return 2;
    }
    if (!any) {
        cli_error("bench", "--prompt and --gen are both 0: nothing to measure");
        return 2;
    }
    A.model = pos[0];
    int counts[MAX_SWEEP], n_counts = 0;
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    int most = threads > 0 ? threads : online > 0 ? (int)online : 1;
    if (most > MOE_MAX_THREADS) most = MOE_MAX_THREADS;
    if (sweep) {
        for (int t = 1; t < most && n_counts < MAX_SWEEP - 1; t *= 2) counts[n_counts++] = t;
        counts[n_counts++] = most;
    } else {
        counts[n_counts++] = threads;
    }

    int rc = 1;
    moe_model *m = NULL;
    bench_res *res = calloc((size_t)n_counts, sizeof *res);
    if (!res) {
        cli_error("bench", "out of memory");
        return 1;
    }
    if (cli_load_model_opts("bench", A.model, &lo, &m)) goto done;
    for (int i = 0; i < n_counts; i++) {
        if (bench_run(&A, m, counts[i], &res[i])) goto done;
        if (!sweep) break;
        fprintf(stderr, "moe bench: %d threads done\n", res[i].threads);
    }
    if (json) {
        if (sweep) printf("{\"sweep\": [");
        for (int i = 0; i < n_counts; i++) {
            if (i) printf(", ");
            print_json(&A, m, &res[i], i == n_counts - 1);
        }
        printf(sweep ? "]}\n" : "\n");
    } else {
        if (sweep) {
            print_table(&A, m, &res[n_counts - 1]);
            printf("\n");
            print_sweep(&A, res, n_counts);
        } else {
            print_table(&A, m, &res[0]);
        }
        if (moe_model_cache(m)) {
            printf("\n");
            cli_cache_line("bench", m, stdout);
        }
    }
    rc = 0;
done:
    free(res);
    moe_model_free(m);
    return rc;
}
