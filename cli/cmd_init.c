/*
 * cmd_init.c - `moe init --preset NAME [--layers N] [--experts N] [--vocab N] OUT`:
 * a random-weight model with the shape of a real one, in the Hugging Face
 * layout (OUT/config.json + OUT/model.safetensors, per-expert tensor names
 * as the published checkpoints have them), so transformers and `moe` both
 * load it; or, when OUT ends in .gguf (or --type T is given), straight to
 * one GGUF file: the bytes `moe quantize --type T` (without --type, `moe
 * convert`) writes from that directory, without the directory.
 *
 * Weights are N(0, std) (std 0.02 as transformers initializes), norms 1
 * (zero-centred ones 0). --layers, --experts and --vocab shrink a real shape
 * (a benchmark of a few layers; a quick test of a preset).
 * Each tensor's values come from generators seeded by (seed, tensor name,
 * chunk), so a layer is the same whatever --layers or --threads is. Chunks
 * are made (and quantized) in parallel and written in order as they are
 * made: a multi-GB model needs a few tens of MiB of memory.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "args.h"
#include "cli.h"
#include "convert.h"
#include "moe_init.h"
#include "moe_quant.h"
#include "presets.h"

/* ------------------------------------------------------------ the command */

typedef struct init_progress {
    int show;
    int last; /* percent shown */
} init_progress;

static void show_progress(void *user, int64_t done, int64_t total) {
    init_progress *p = user;
    int pct = total ? (int)(100 * done / total) : 100;
    if (p->show && pct / 5 != p->last / 5) fprintf(stderr, "\rmoe init: %3d%%", pct);
    p->last = pct;
}

static int parse_dtype(const char *s, moe_init_type *t, const char **torch_name) {
    if (!strcmp(s, "bf16")) *t = MOE_INIT_BF16, *torch_name = "bfloat16";
    else if (!strcmp(s, "f16")) *t = MOE_INIT_F16, *torch_name = "float16";
    else if (!strcmp(s, "f32")) *t = MOE_INIT_F32, *torch_name = "float32";
    else return -1;
    return 0;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

#define GGUF_TYPES "q8_0, q6_k, q5_k, q5_1, q5_0, q4_k, q4_1, q4_0, iq4_xs, iq4_nl, q3_k, q2_k, mxfp4, f32, f16, bf16"

/* Free bytes where path will be written (its directory); -1 if unknown. */
static int64_t free_bytes(const char *dir) {
    struct statvfs vfs;
    if (statvfs(dir, &vfs) != 0) return -1;
    return (int64_t)((uint64_t)vfs.f_bavail * vfs.f_frsize);
}

/* OUT.gguf: the file `moe quantize --type` would write from the directory. */
static int init_gguf(const moe_config *cfg, const char *preset_name, const char *out,
                     const moe_init_opts *io, int qtype, const char *type_s, int force, int dry) {
    char stem[256], b1[32], b2[32];
    const char *base = strrchr(out, '/') ? strrchr(out, '/') + 1 : out;
    snprintf(stem, sizeof stem, "%.*s", (int)(strlen(base) - 5), base); /* less .gguf */
    /* general.name: the stem, as `moe quantize` names a file after its directory */
    moe_init_gguf_opts go = {qtype, stem};
    moe_err err = {{0}};
    int64_t params = 0;
    int n_tensors = 0;
    int64_t total = moe_init_gguf_size(cfg, io, &go, &params, &n_tensors, &err);
    if (total < 0) {
        cli_error("init", "%s: %s", out, err.msg);
        return 1;
    }
    const char *tname = type_s ? type_s : "as stored";
    const char *mx = io->mxfp4_experts ? " (experts mxfp4)" : "";
    if (dry) {
        printf("would write %s: %s preset, %d layers, %d tensors, %s parameters, %s (%lld bytes "
               "of tensor data) %s%s\n", out, preset_name, cfg->n_layers, n_tensors,
               cli_count(params, b1, sizeof b1), cli_bytes(total, b2, sizeof b2),
               (long long)total, tname, mx);
        return 0;
    }
    int code = convert_check_out_file("init", out, force);
    if (code) return code;
    char dir[4096];
    /* OUT's directory: "." for a bare name, "/" for one at the root */
    int dl = base == out ? 1 : base - out > 1 ? (int)(base - out) - 1 : 1;
    snprintf(dir, sizeof dir, "%.*s", dl, base == out ? "." : out);
    int64_t need = total + (int64_t)n_tensors * 32 + (1 << 20), have = free_bytes(dir);
    if (have >= 0 && have < need) {
        cli_error("init", "%s needs %s but only %s is free in %s (fewer --layers, or a smaller "
                  "--type?)", out, cli_bytes(need, b1, sizeof b1), cli_bytes(have, b2, sizeof b2),
                  dir);
        return 1;
    }
    init_progress ip = {isatty(STDERR_FILENO) && total > (256 << 20), 0};
    moe_init_opts o = *io;
    o.progress = show_progress;
    o.user = &ip;
    double t0 = cli_now();
    int rc = moe_init_gguf(cfg, out, &o, &go, &err);
    if (ip.show) fprintf(stderr, "\r");
    if (rc) {
        cli_error("init", "%s", err.msg);
        return 1;
    }
    double dt = cli_now() - t0;
    printf("wrote %s: %s preset, %d layers, %d tensors, %s parameters, %s %s%s in %.1f s "
           "(%.0f MB/s)\n", out, preset_name, cfg->n_layers, n_tensors,
           cli_count(params, b1, sizeof b1), cli_bytes(total, b2, sizeof b2), tname, mx, dt,
           dt > 0 ? (double)total / dt / 1e6 : 0.0);
    return 0;
}

int cmd_init(int argc, char **argv) {
    const char *preset_name = NULL, *dtype_s = "bf16", *etype_s = NULL, *type_s = NULL;
    int layers = 0, experts = 0, vocab = 0, force = 0, threads = 0, dry = 0;
    uint64_t seed = 0;
    float std = 0.02f, embed_std = 0.0f;
    const arg_opt opts[] = {
        {"--preset", NULL, ARG_STR, &preset_name, 0, 0, 0, "NAME", "model shape (required; see below)"},
        {"--layers", NULL, ARG_INT, &layers, 1, MOE_MAX_LAYERS, 0, "N",
         "number of layers (default: the real model's)"},
        {"--experts", NULL, ARG_INT, &experts, 1, 1 << 16, 0, "N",
         "routed experts per MoE layer (default: the real model's; top-k at most N)"},
        {"--vocab", NULL, ARG_INT, &vocab, 2, 1 << 24, 0, "N",
         "vocabulary size (default: the real model's; bos/eos past it dropped)"},
        {"--dtype", NULL, ARG_STR, &dtype_s, 0, 0, 0, "T",
         "bf16 (default), f16 or f32: the weights' type (GGUF: before --type)"},
        {"--type", NULL, ARG_STR, &type_s, 0, 0, 0, "T",
         "write OUT.gguf as 'moe quantize --type T' would: " GGUF_TYPES},
        {"--expert-type", NULL, ARG_STR, &etype_s, 0, 0, 0, "T",
         "gpt-oss experts: mxfp4 (default, as released) or float (--dtype)"},
        {"--dry-run", NULL, ARG_FLAG, &dry, 0, 0, 0, NULL,
         "print the tensors, parameters and bytes it would write; write nothing"},
        {"--seed", NULL, ARG_U64, &seed, 0, 0, 0, "S", "random seed (0)"},
        {"--std", NULL, ARG_FLOAT, &std, 0, 10, 0, "X", "standard deviation of the weights (0.02)"},
        {"--embed-std", NULL, ARG_FLOAT, &embed_std, 0, 10, 0, "X",
         "standard deviation of the token embedding (default: --std); near 1 the routers spread "
         "tokens over the experts as trained ones do, at --std they send most to a few"},
        ARG_THREADS(&threads, "-t",
                    "threads making random numbers (0 = all CPUs; the result does not depend on it)"),
        {"--force", NULL, ARG_FLAG, &force, 0, 0, 0, NULL, "overwrite a model already in OUT"},
    };
    char details[2048];
    int o = snprintf(details, sizeof details, "presets:\n");
    for (int i = 0; i < n_presets && o > 0 && (size_t)o < sizeof details; i++)
        o += snprintf(details + o, sizeof details - (size_t)o, "  %-19s %s\n", presets[i].name,
                      presets[i].about);
    if (o > 0 && (size_t)o < sizeof details)
        snprintf(details + o, sizeof details - (size_t)o,
                 "\nWeights are N(0, std), norms 1 (zero-centred ones 0); no tokenizer is written. "
                 "OUT.gguf is\nthe file 'moe init' + 'moe quantize --type T' would give (the same "
                 "bytes; general.name\nis OUT's stem), streamed: memory stays at a few tens of MiB "
                 "whatever its size.\nExamples:\n"
                 "  moe init --preset olmoe-1b-7b --layers 4 /tmp/olmoe-4l   (about 3.8 GB)\n"
                 "  moe init --preset qwen3-30b-a3b --type q8_0 /tmp/q3-30b-q8_0.gguf   (about 32 GB)");
    const arg_cmd c = {"init", "--preset NAME [--layers N] [--experts N] [--vocab N] "
                               "[--dtype bf16|f16|f32] [--type T] [--expert-type mxfp4|float] "
                               "[--seed S] [--dry-run] OUT|OUT.gguf",
                       "Write a random-weight model with the shape of a real one to the directory OUT\n"
                       "(config.json + model.safetensors, Hugging Face layout), or to OUT.gguf,\n"
                       "quantized as 'moe quantize --type T' quantizes (as stored without --type).",
                       details, opts, (int)(sizeof opts / sizeof opts[0]), 1, 1, "OUT"};
    const char *pos[1];
    int np;
    int r = args_parse(&c, argc, argv, pos, &np);
    if (r != ARGS_OK) return args_exit(r);
    if (!preset_name) {
        cli_error("init", "--preset NAME is required (run 'moe init --help' for the list)");
        return 2;
    }
    const preset *ps = preset_find(preset_name);
    if (!ps) {
        cli_error("init", "--preset: unknown preset '%s' (run 'moe init --help' for the list)",
                  preset_name);
        return 2;
    }
    moe_init_type dt;
    const char *torch_dtype;
    if (parse_dtype(dtype_s, &dt, &torch_dtype)) {
        cli_error("init", "--dtype: '%s' is not one of bf16, f16, f32", dtype_s);
        return 2;
    }
    const char *out = pos[0];
    int gguf = ends_with(out, ".gguf") && strlen(out) > 5, qtype = -1;
    if (type_s) {
        qtype = moe_qtype_from_name(type_s);
        if (qtype < 0) {
            cli_error("init", "--type: '%s' is not one of " GGUF_TYPES, type_s);
            return 2;
        }
        if (!gguf) {
            cli_error("init", "--type %s writes a GGUF file: OUT must end in .gguf (got '%s'; "
                      "for a safetensors directory use --dtype)", type_s, out);
            return 2;
        }
    }

    static moe_config cfg; /* ~20 KB of layer configs: off the stack */
    ps->fill(&cfg);
    if (layers) cfg.n_layers = layers;
    for (int i = 0; experts && i < MOE_MAX_LAYERS; i++) {
        moe_layer_config *l = &cfg.layer[i];
        l->n_experts = experts;
        if (l->top_k > experts) l->top_k = experts;
        /* group-limited routing: keep the groups when they still divide the experts
         * (two or more each, enough for top-k), else route over all of them */
        if (l->group != MOE_GROUP_NONE &&
            (experts % l->n_group || experts / l->n_group < 2 ||
             l->top_k > l->topk_group * (experts / l->n_group)))
            l->group = MOE_GROUP_NONE, l->n_group = l->topk_group = 0;
    }
    if (vocab) {
        cfg.vocab = vocab;
        if (cfg.bos_id >= vocab) cfg.bos_id = -1;
        if (cfg.eos_id >= vocab) cfg.eos_id = -1;
    }
    moe_err err = {{0}};
    if (moe_config_validate(&cfg, ps->name, &err)) {
        cli_error("init", "preset %s: %s", ps->name, err.msg);
        return 1;
    }
    int mxfp4 = cfg.arch == MOE_ARCH_GPT_OSS;
    if (etype_s && (strcmp(etype_s, "mxfp4") && strcmp(etype_s, "float"))) {
        cli_error("init", "--expert-type: '%s' is not one of mxfp4, float", etype_s);
        return 2;
    }
    if (etype_s && !mxfp4) {
        cli_error("init", "--expert-type: only gpt-oss presets have MXFP4 experts");
        return 2;
    }
    if (etype_s) mxfp4 = !strcmp(etype_s, "mxfp4");
    moe_init_opts io = {dt, seed, std, threads, show_progress, NULL, mxfp4, embed_std};
    if (gguf) return init_gguf(&cfg, ps->name, out, &io, qtype, type_s, force, dry);
    int64_t params = 0;
    int n_tensors = 0;
    int64_t total = moe_init_size(&cfg, &io, &params, &n_tensors);
    if (total < 0) {
        cli_error("init", "out of memory");
        return 1;
    }
    char b1[32], b2[32];
    if (dry) {
        printf("would write %s: %s preset, %d layers, %d tensors, %s parameters, %s %s%s\n", out,
               ps->name, cfg.n_layers, n_tensors, cli_count(params, b1, sizeof b1),
               cli_bytes(total, b2, sizeof b2), dtype_s, mxfp4 ? " (experts mxfp4)" : "");
        return 0;
    }

    /* the directory: create it, or refuse to overwrite a model in it */
    char cfg_path[4096], st_path[4096];
    snprintf(cfg_path, sizeof cfg_path, "%s/config.json", out);
    snprintf(st_path, sizeof st_path, "%s/model.safetensors", out);
    struct stat sb;
    if (stat(out, &sb) == 0) {
        if (!S_ISDIR(sb.st_mode)) {
            cli_error("init", "%s exists and is not a directory", out);
            return 1;
        }
        if (!force && (stat(cfg_path, &sb) == 0 || stat(st_path, &sb) == 0)) {
            cli_error("init", "%s already holds a model (use --force to overwrite)", out);
            return 1;
        }
    } else if (mkdir(out, 0755) != 0) {
        cli_error("init", "cannot create directory %s: %s", out, strerror(errno));
        return 1;
    }

    int64_t have = free_bytes(out);
    if (have >= 0 && have < total + (1 << 20)) {
        cli_error("init", "%s needs %s but only %s is free (fewer --layers?)", out,
                  cli_bytes(total, b1, sizeof b1), cli_bytes(have, b2, sizeof b2));
        return 1;
    }
    init_progress ip = {isatty(STDERR_FILENO) && total > (256 << 20), 0};
    io.user = &ip;
    double t0 = cli_now();
    int rc = moe_init_random(&cfg, out, &io, &err);
    if (ip.show) fprintf(stderr, "\r");
    if (rc) {
        cli_error("init", "%s", err.msg);
        return 1;
    }
    printf("wrote %s: %s preset, %d layers, %d tensors, %s parameters, %s %s%s in %.1f s\n", out,
           ps->name, cfg.n_layers, n_tensors, cli_count(params, b1, sizeof b1),
           cli_bytes(total, b2, sizeof b2), dtype_s, mxfp4 ? " (experts mxfp4)" : "",
           cli_now() - t0);
    (void)torch_dtype;
    return 0;
}
