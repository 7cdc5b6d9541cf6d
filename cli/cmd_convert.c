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
 * Everything streams tensor by tensor (moe_quant.h); docs/QUANT.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "moe_file.h"
#include "args.h"
#include "cli.h"
#include "convert.h"
#include "moe_gguf.h"
#include "moe_quant.h"

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

/* The summary line of the vocabulary, after checking the written file. */
static void report_vocab(const char *cmd, const moe_gguf_vocab *voc, const char *out) {
    static const char *const how[] = {"hash", "by llama.cpp's tokenizer hash", "layout",
                                      "by tokenizer.json's pre-tokenizer", "none", "not recognized"};
    moe_gguf_vocab_info v;
    moe_gguf_vocab_info_get(voc, &v);
    const char *h = "";
    for (int i = 0; i < 6; i += 2)
        if (!strcmp(v.pre_how, how[i])) h = how[i + 1];
    printf("  vocabulary: %s, %d tokens", v.model, v.n_tokens);
    if (v.n_padded) printf(" (%d [PAD] ids past tokenizer.json's)", v.n_padded);
    if (!strcmp(v.model, "gpt2")) printf(", pre-tokenizer \"%s\" (%s)", v.pre, h);
    int same = 0, total = 0;
    moe_err err = {{0}};
    if (moe_gguf_vocab_check(out, v.dir, &same, &total, &err)) {
        printf("\n");
        fprintf(stderr, "moe %s: warning: the written vocabulary cannot be read back: %s\n", cmd, err.msg);
        return;
    }
    printf("; tokenizer.json's ids on %d/%d probe texts\n", same, total);
    if (same != total)
        fprintf(stderr, "moe %s: warning: the GGUF's tokenizer differs from %s/tokenizer.json on "
                "%d of %d probe texts\n", cmd, v.dir, total - same, total);
}

int convert_write_gguf(const char *cmd, const moe_model *m, const moe_quant_plan *plan,
                       const char *in, const char *out, int threads, const char *tok) {
    moe_gguf_vocab *voc = NULL;
    moe_err err = {{0}};
    if (moe_gguf_vocab_for(&voc, m, in, tok, &err)) {
        cli_error(cmd, "%s", err.msg);
        return 1;
    }
    moe_gguf_vocab_info vi;
    moe_gguf_vocab_info_get(voc, &vi);
    if (vi.note[0]) fprintf(stderr, "moe %s: note: %s\n", cmd, vi.note);
    moe_quant_summary sum;
    moe_quant_plan_summary(plan, &sum);
    char nb[512];
    convert_progress pr = {cmd, isatty(STDERR_FILENO) && sum.bytes > (64 << 20), -1};
    moe_quant_write_opts wo = {threads, base_name(in, nb, sizeof nb), convert_show_progress, &pr,
                               moe_gguf_vocab_writes(voc) ? voc : NULL};
    double t0 = cli_now();
    int rc = moe_quant_write_gguf(m, plan, out, &wo, &err);
    if (pr.show) fprintf(stderr, "\r");
    if (rc) {
        cli_error(cmd, "%s", err.msg);
        moe_gguf_vocab_free(voc);
        return 1;
    }
    char b1[32], b2[32];
    struct stat sb;
    int64_t size = stat(out, &sb) == 0 ? (int64_t)sb.st_size : sum.bytes;
    printf("wrote %s: %d tensors, %s parameters, %s (%.2f bits/weight), %s in %.1f s\n", out,
           sum.n_tensors, cli_count(sum.params, b1, sizeof b1), cli_bytes(size, b2, sizeof b2),
           8.0 * (double)sum.bytes / (double)(sum.params ? sum.params : 1), sum.types,
           cli_now() - t0);
    if (sum.n_fallback)
        printf("  %d tensors had rows that do not suit the type and use a fallback type "
               "(docs/QUANT.md)\n", sum.n_fallback);
    if (moe_gguf_vocab_writes(voc)) report_vocab(cmd, voc, out);
    moe_gguf_vocab_free(voc);
    return 0;
}

/* ------------------------------------------------------------ tokenizer */

/* src (a regular file, at most 64 MiB: the tokenizer.json cap) copied to
 * dst through a temporary file (moe_file.h: fsync'd, renamed, never
 * through a planted symlink). */
static int copy_file(const char *src, const char *dst) {
    char *text = NULL;
    size_t len = 0;
    moe_err err = {{0}};
    if (moe_file_read(src, (size_t)64 << 20, &text, &len, &err) != 0) return -1;
    int rc = moe_file_write(dst, text, len, &err);
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

/* "f32", "f16", "bf16": a float type as the summary line names it. */
static const char *float_name(int type) {
    return type == MOE_QTYPE_BF16 ? "bf16" : type == MOE_QTYPE_F16 ? "f16" : "f32";
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
        type = moe_qtype_from_name(type_s);
        if (!moe_qtype_is_float(type)) {
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
        moe_quant_opts qo = {.mode = type < 0 ? MOE_QUANT_KEEP : MOE_QUANT_FLOAT, .type = type};
        moe_quant_plan *plan;
        moe_err err = {{0}};
        if (moe_quant_plan_new(&plan, m, &qo, &err)) {
            cli_error("convert", "%s: %s", in, err.msg);
        } else {
            code = convert_write_gguf("convert", m, plan, in, out, threads, tok_dir);
            moe_quant_plan_free(plan);
        }
        moe_model_free(m);
        return code;
    }
    /* to an HF directory */
    int dt = type < 0 ? moe_model_float_type(m) : type;
    if (dt < 0) dt = MOE_QTYPE_F32;
    if ((code = convert_prepare_out_dir("convert", out, force))) {
        moe_model_free(m);
        return code;
    }
    convert_progress pr = {"convert", isatty(STDERR_FILENO), -1};
    moe_quant_write_opts wo = {threads, NULL, convert_show_progress, &pr, NULL};
    moe_err err = {{0}};
    double t0 = cli_now();
    int rc = moe_quant_write_hf(m, out, dt, &wo, &err);
    if (pr.show) fprintf(stderr, "\r");
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
        int r = moe_gguf_to_tokenizer_json(in, out, note, sizeof note, &err);
        if (r < 0) {
            cli_error("convert", "%s", err.msg);
            return 1;
        }
        rebuilt = r == 0;
    }
    char b1[32], b2[32];
    printf("wrote %s: config.json + model.safetensors, %s parameters, %s %s in %.1f s",
           out, cli_count(st.params_total, b1, sizeof b1),
           cli_bytes(st.params_total * (dt == MOE_QTYPE_F32 ? 4 : 2), b2, sizeof b2),
           float_name(dt), cli_now() - t0);
    if (ncopied) printf(", %d tokenizer file%s from %s", ncopied, ncopied > 1 ? "s" : "", src);
    if (rebuilt) printf(", tokenizer.json + tokenizer_config.json from the GGUF's vocabulary");
    printf("\n");
    return 0;
}
