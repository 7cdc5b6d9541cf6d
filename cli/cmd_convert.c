/*
 * cmd_convert.c - `moe convert IN OUT`: between Hugging Face directories
 * and GGUF files, without changing what the model computes.
 *   HF dir -> OUT.gguf   llama.cpp's names, metadata and layout (experts
 *                        stacked, llama q/k rows permuted); weights keep
 *                        their type (F32/F16/BF16) or --type f32|f16|bf16;
 *                        norms, biases and routers F32 as the converter does;
 *                        the vocabulary of tokenizer.json as it writes it.
 *   GGUF   -> OUT dir    config.json + model.safetensors, every weight
 *                        dequantized to f32 (or --type bf16|f16), named as
 *                        transformers names them; tokenizer files copied.
 * Also HF -> HF (another dtype) and GGUF -> GGUF (rewritten, --type).
 * Everything streams tensor by tensor (quantize.h); docs/QUANT.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/atomic.h"
#include "base/mapfile.h"
#include "args.h"
#include "cli.h"
#include "convert.h"
#include "formats/gguf.h"
#include "kernels/probe.h"
#include "formats/gguf_vocab_write.h"

/* ------------------------------------------------------------- shared */

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

int convert_check_out_file(const char *cmd, const char *out, int force) {
    struct stat sb;
    if (stat(out, &sb) == 0) {
        if (S_ISDIR(sb.st_mode)) {
            cli_error(cmd, "%s is a directory, expected a .gguf file name", out);
            return 1;
        }
        if (!force) {
            cli_error(cmd, "%s already exists (use --force to overwrite)", out);
            return 1;
        }
    }
    char *d = strdup(out);
    if (!d) return 1;
    const char *dir = dirname(d);
    int ok = stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode);
    int w = ok && access(dir, W_OK) == 0;
    if (!ok) cli_error(cmd, "cannot write %s: directory %s does not exist", out, dir);
    else if (!w) cli_error(cmd, "cannot write %s: directory %s is not writable", out, dir);
    free(d);
    return ok && w ? 0 : 1;
}

int convert_prepare_out_dir(const char *cmd, const char *out, int force) {
    char a[4096], b[4096];
    struct stat sb;
    snprintf(a, sizeof a, "%s/config.json", out);
    snprintf(b, sizeof b, "%s/model.safetensors", out);
    if (stat(out, &sb) == 0) {
        if (!S_ISDIR(sb.st_mode)) {
            cli_error(cmd, "%s exists and is not a directory", out);
            return 1;
        }
        if (!force && (stat(a, &sb) == 0 || stat(b, &sb) == 0)) {
            cli_error(cmd, "%s already holds a model (use --force to overwrite)", out);
            return 1;
        }
        if (access(out, W_OK) != 0) {
            cli_error(cmd, "cannot write into %s: %s", out, strerror(errno));
            return 1;
        }
    } else if (mkdir(out, 0755) != 0) {
        cli_error(cmd, "cannot create directory %s: %s", out, strerror(errno));
        return 1;
    }
    return 0;
}

void convert_show_progress(void *user, int64_t done, int64_t total) {
    convert_progress *p = user;
    int pct = total > 0 ? (int)(100 * done / total) : 100;
    if (p->show && pct != p->last) fprintf(stderr, "\rmoe %s: %3d%%", p->cmd, pct);
    p->last = pct;
}

/* "q8_0 (96), f32 (33)": tensors per type. */
static void type_counts(const qz_plan *p, char *buf, size_t n) {
    int counts[64] = {0};
    for (int i = 0; i < p->n; i++)
        if (p->type[i] >= 0 && p->type[i] < 64) counts[p->type[i]]++;
    size_t o = 0;
    buf[0] = 0;
    for (int t = 63; t >= 0 && o < n; t--) /* BF16 (30) and the quants first */
        if (counts[t])
            o += (size_t)snprintf(buf + o, n - o, "%s%s (%d)", o ? ", " : "",
                                  gguf_type_name(t), counts[t]);
}

static const char *base_name(const char *path, char *buf, size_t n) {
    snprintf(buf, n, "%s", path);
    size_t k = strlen(buf);
    while (k > 1 && buf[k - 1] == '/') buf[--k] = 0;
    char *s = strrchr(buf, '/');
    return s ? s + 1 : buf;
}

/* ----------------------------------------------------------- vocabulary */

static int is_dir(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* Does a GGUF file carry a vocabulary? (Unreadable: say yes, write none.) */
static int gguf_has_vocab(const char *path) {
    gguf_file g;
    moe_err err;
    if (gguf_open(&g, path, &err)) return 1;
    const char *model = NULL;
    int yes = gguf_find_kv(&g, "tokenizer.ggml.model") &&
              !gguf_get_str(&g, "tokenizer.ggml.model", &model, NULL, &err) &&
              strcmp(model, "none") != 0 && strcmp(model, "no_vocab") != 0;
    gguf_close(&g);
    return yes;
}

/* The directory whose tokenizer becomes the vocabulary, or NULL: tok (a
 * directory or a tokenizer.json in one), else IN when it is a directory. */
static const char *vocab_dir(const char *in, const char *tok, char *buf, size_t n) {
    if (tok && is_dir(tok)) return tok;
    if (tok && ends_with(tok, "tokenizer.json")) {
        snprintf(buf, n, "%s", tok);
        return dirname(buf);
    }
    return is_dir(in) ? in : NULL;
}

/* Build the vocabulary; 0 (v filled or empty), or 1 (printed). */
static int build_vocab(const char *cmd, const moe_model *m, const char *in, const char *tok,
                       tok_gguf_vocab *v, const char **dir) {
    static char buf[4096];
    memset(v, 0, sizeof *v);
    *dir = vocab_dir(in, tok, buf, sizeof buf);
    if (!*dir || (!is_dir(in) && gguf_has_vocab(in))) {
        *dir = NULL;
        return 0;
    }
    const moe_config *c = moe_model_config(m);
    moe_err err = {{0}};
    int rc = tok_gguf_vocab_build(v, *dir, tm_gguf_arch(c->arch), c->vocab, &err);
    if (rc < 0) {
        cli_error(cmd, "%s", err.msg);
        return 1;
    }
    if (v->note[0]) fprintf(stderr, "moe %s: note: %s\n", cmd, v->note);
    if (rc > 0) *dir = NULL;
    return 0;
}

/* The summary line of the vocabulary, after checking the written file. */
static void report_vocab(const char *cmd, const tok_gguf_vocab *v, const char *dir, const char *out) {
    static const char *const how[] = {"hash", "by llama.cpp's tokenizer hash", "layout",
                                      "by tokenizer.json's pre-tokenizer", "none", "not recognized"};
    const char *h = "";
    for (int i = 0; i < 6; i += 2)
        if (!strcmp(v->pre_how, how[i])) h = how[i + 1];
    printf("  vocabulary: %s, %d tokens", v->model, v->n_tokens);
    if (v->n_padded) printf(" (%d [PAD] ids past tokenizer.json's)", v->n_padded);
    if (!strcmp(v->model, "gpt2")) printf(", pre-tokenizer \"%s\" (%s)", v->pre, h);
    int same = 0, total = 0;
    moe_err err = {{0}};
    if (tok_gguf_vocab_check(out, dir, &same, &total, &err)) {
        printf("\n");
        fprintf(stderr, "moe %s: warning: the written vocabulary cannot be read back: %s\n", cmd, err.msg);
        return;
    }
    printf("; tokenizer.json's ids on %d/%d probe texts\n", same, total);
    if (same != total)
        fprintf(stderr, "moe %s: warning: the GGUF's tokenizer differs from %s/tokenizer.json on "
                "%d of %d probe texts\n", cmd, dir, total - same, total);
}

int convert_write_gguf(const char *cmd, const moe_model *m, const qz_plan *plan,
                       const char *in, const char *out, int threads, const char *tok) {
    tok_gguf_vocab voc;
    const char *vdir = NULL;
    if (build_vocab(cmd, m, in, tok, &voc, &vdir)) return 1;
    pool *pl = pool_create(threads);
    if (!pl) {
        cli_error(cmd, "cannot start threads");
        tok_gguf_vocab_free(&voc);
        return 1;
    }
    char nb[512];
    convert_progress pr = {cmd, isatty(STDERR_FILENO) && plan->bytes > (64 << 20), -1};
    qz_write_opts wo = {pl, base_name(in, nb, sizeof nb), convert_show_progress, &pr,
                        vdir ? &voc : NULL};
    moe_err err = {{0}};
    double t0 = cli_now();
    int rc = qz_write_gguf(m, plan, out, &wo, &err);
    if (pr.show) fprintf(stderr, "\r");
    pool_free(pl);
    if (rc) {
        cli_error(cmd, "%s", err.msg);
        tok_gguf_vocab_free(&voc);
        return 1;
    }
    char types[512], b1[32], b2[32];
    type_counts(plan, types, sizeof types);
    struct stat sb;
    int64_t size = stat(out, &sb) == 0 ? (int64_t)sb.st_size : plan->bytes;
    printf("wrote %s: %d tensors, %s parameters, %s (%.2f bits/weight), %s in %.1f s\n", out,
           plan->n, cli_count(plan->params, b1, sizeof b1), cli_bytes(size, b2, sizeof b2),
           8.0 * (double)plan->bytes / (double)(plan->params ? plan->params : 1), types,
           cli_now() - t0);
    if (plan->n_fallback)
        printf("  %d tensors had rows that do not suit the type and use a fallback type "
               "(docs/QUANT.md)\n", plan->n_fallback);
    if (vdir) report_vocab(cmd, &voc, vdir, out);
    tok_gguf_vocab_free(&voc);
    return 0;
}

/* ------------------------------------------------------------ tokenizer */

/* src (a regular file, at most 64 MiB: the tokenizer.json cap) copied to
 * dst through a temporary file (base/atomic.h: fsync'd, renamed, never
 * through a planted symlink). */
static int copy_file(const char *src, const char *dst) {
    char *text = NULL;
    size_t len = 0;
    moe_err err = {{0}};
    if (read_file(src, (size_t)64 << 20, &text, &len, &err) != 0) return -1;
    int rc = atomic_write(dst, text, len, &err);
    free(text);
    return rc;
}

/* Copy the tokenizer files found in dir into out; how many were copied, or
 * -1 (printed) when one could not be copied. */
static int copy_tokenizer(const char *cmd, const char *dir, const char *out) {
    static const char *const files[] = {"tokenizer.json", "tokenizer_config.json",
                                        "special_tokens_map.json", "generation_config.json"};
    int n = 0;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char src[4096], dst[4096];
        struct stat sb;
        snprintf(src, sizeof src, "%s/%s", dir, files[i]);
        snprintf(dst, sizeof dst, "%s/%s", out, files[i]);
        if (stat(src, &sb) != 0 || !S_ISREG(sb.st_mode)) continue;
        if (copy_file(src, dst)) {
            cli_error(cmd, "cannot copy %s to %s: %s", src, dst, strerror(errno));
            return -1;
        }
        n++;
    }
    return n;
}

/* ------------------------------------------------------------ the command */

/* The float type all of a model's weights share, or -1. */
static int uniform_float_type(const moe_model *m) {
    const moe_config *c = moe_model_config(m);
    int n = tm_list(c, TM_GGUF, NULL, NULL, 0), t = -1;
    tm_entry *e = malloc(sizeof *e * (size_t)n);
    if (!e) return -1;
    tm_list(c, TM_GGUF, NULL, e, n);
    for (int i = 0; i < n; i++) {
        mat w;
        /* vectors and routers are F32 in every GGUF: they do not decide */
        if (!e[i].rows || tm_keep_f32(e[i].role) || tm_source(m, &e[i], 0, &w))
            continue;
        int x = (int)w.type;
        if (x != DT_F32 && x != DT_BF16 && x != DT_F16) x = -2;
        if (t == -1) t = x;
        else if (t != x) t = -2;
    }
    free(e);
    return t < 0 ? -1 : t;
}

int cmd_convert(int argc, char **argv) {
    const char *type_s = NULL, *tok_dir = NULL;
    int threads = 0, force = 0;
    const arg_opt opts[] = {
        {"--type", NULL, ARG_STR, &type_s, 0, 0, 0, "T",
         "weights as f32, f16 or bf16 (default: as stored; to HF: f32 unless all are bf16/f16)"},
        {"--tokenizer", NULL, ARG_STR, &tok_dir, 0, 0, 0, "DIR",
         "to GGUF: the vocabulary from DIR's tokenizer.json (default: IN's); to HF: copy "
         "tokenizer files from DIR (default: IN, or the GGUF's directory)"},
        ARG_THREADS(&threads, "-t", "threads (0 = all CPUs)"),
        {"--force", NULL, ARG_FLAG, &force, 0, 0, 0, NULL, "overwrite OUT"},
    };
    const arg_cmd c = {
        "convert", "IN OUT [--type f32|f16|bf16]",
        "Convert a model between a Hugging Face directory and a GGUF file. OUT ending in\n"
        ".gguf is written as GGUF (llama.cpp's tensor names, metadata and layout), any\n"
        "other OUT as a directory with config.json + model.safetensors (quantized\n"
        "weights dequantized) that transformers loads.",
        "Tokenizer files (tokenizer.json, tokenizer_config.json, ...) are copied into an HF\n"
        "OUT (or rebuilt from a GGUF IN's vocabulary when there are none beside it); a GGUF\n"
        "OUT carries the vocabulary of tokenizer.json as llama.cpp's converter\n"
        "writes it (docs/GGUF_TOKENIZER.md). To quantize, see 'moe quantize'. Details:\n"
        "docs/QUANT.md. Examples:\n"
        "  moe convert mixtral-dir mixtral-bf16.gguf\n"
        "  moe convert model-q8_0.gguf model-hf --type bf16",
        opts, (int)(sizeof opts / sizeof opts[0]), 2, 2, "IN OUT"};
    const char *pos[2];
    int np;
    int r = args_parse(&c, argc, argv, pos, &np);
    if (r != ARGS_OK) return args_exit(r);
    const char *in = pos[0], *out = pos[1];
    int type = -1;
    if (type_s) {
        type = qz_type_from_name(type_s);
        if (type != GGUF_TYPE_F32 && type != GGUF_TYPE_F16 && type != GGUF_TYPE_BF16) {
            cli_error("convert", "--type: '%s' is not one of f32, f16, bf16%s", type_s,
                      type >= 0 ? " (to quantize, use 'moe quantize')" : "");
            return 2;
        }
    }
    int to_gguf = ends_with(out, ".gguf");
    int code = to_gguf ? convert_check_out_file("convert", out, force) : 0;
    if (code) return code;
    moe_model *m = NULL;
    if (cli_load_model("convert", in, &m)) return 1;
    code = 1;
    if (to_gguf) {
        qz_opts qo = {.mode = type < 0 ? QZ_KEEP : QZ_FLOAT, .type = type};
        qz_plan plan;
        moe_err err = {{0}};
        if (qz_plan_make(&plan, m, &qo, &err)) {
            cli_error("convert", "%s: %s", in, err.msg);
        } else {
            code = convert_write_gguf("convert", m, &plan, in, out, threads, tok_dir);
            qz_plan_free(&plan);
        }
        moe_model_free(m);
        return code;
    }
    /* to an HF directory */
    int dt = type < 0 ? uniform_float_type(m) : (int)dtype_from_ggml(type);
    if (dt < 0) dt = DT_F32;
    if ((code = convert_prepare_out_dir("convert", out, force))) {
        moe_model_free(m);
        return code;
    }
    pool *pl = pool_create(threads);
    if (!pl) {
        cli_error("convert", "cannot start threads");
        moe_model_free(m);
        return 1;
    }
    convert_progress pr = {"convert", isatty(STDERR_FILENO), -1};
    qz_write_opts wo = {pl, NULL, convert_show_progress, &pr, NULL};
    moe_err err = {{0}};
    double t0 = cli_now();
    int rc = qz_write_hf(m, out, dt, &wo, &err);
    if (pr.show) fprintf(stderr, "\r");
    pool_free(pl);
    moe_model_stats st;
    moe_model_stats_get(m, &st);
    moe_model_free(m);
    if (rc) {
        cli_error("convert", "%s", err.msg);
        return 1;
    }
    /* the tokenizer: --tokenizer DIR, else IN itself or the directory of a GGUF IN */
    char dbuf[4096];
    const char *src = tok_dir;
    struct stat sb;
    if (!src) {
        snprintf(dbuf, sizeof dbuf, "%s", in);
        src = stat(in, &sb) == 0 && S_ISDIR(sb.st_mode) ? in : dirname(dbuf);
    }
    int ncopied = 0, rebuilt = 0;
    if (strcmp(src, out) != 0) {
        ncopied = copy_tokenizer("convert", src, out);
        if (ncopied < 0) return 1;
    }
    /* none found beside a GGUF IN: rebuilt from the file's own vocabulary */
    char tpath[4096], note[512];
    snprintf(tpath, sizeof tpath, "%s/tokenizer.json", out);
    if (!tok_dir && !is_dir(in) && stat(tpath, &sb) != 0) {
        int r = tok_gguf_to_json(in, out, note, sizeof note, &err);
        if (r < 0) {
            cli_error("convert", "%s", err.msg);
            return 1;
        }
        rebuilt = r == 0;
    }
    char b1[32], b2[32];
    printf("wrote %s: config.json + model.safetensors, %s parameters, %s %s in %.1f s",
           out, cli_count(st.params_total, b1, sizeof b1),
           cli_bytes(st.params_total * (dt == DT_F32 ? 4 : 2), b2, sizeof b2),
           dtype_name((dtype)dt), cli_now() - t0);
    if (ncopied) printf(", %d tokenizer file%s from %s", ncopied, ncopied > 1 ? "s" : "", src);
    if (rebuilt) printf(", tokenizer.json + tokenizer_config.json from the GGUF's vocabulary");
    printf("\n");
    return 0;
}
