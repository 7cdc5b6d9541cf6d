/*
 * cmd_train.c - `moe train`: train an MoE model on `moe data` shards
 * (moe_train in include/moe_train.h). Every option maps onto one field of
 * moe_train_opts; the defaults shown in --help are moe_train_defaults'.
 * Progress goes to stderr (one line redrawn in place on a terminal, else a
 * line every N steps); evaluations, checkpoints and the summary to stdout.
 */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "cli.h"
#include "moe_train.h"

/* ----------------------------------------------------------- progress UI */

typedef struct train_ui {
    int tty;            /* 1: redraw one line on stderr */
    int drawn;          /* 1: a progress line is on screen (tty) */
    int every;          /* non-tty: a line every this many steps */
    int quiet;          /* no progress lines (eval/save lines stay) */
    int64_t first_step; /* first step reported by this invocation, -1 before */
    double t0;          /* clock at the start */
    moe_train_progress last; /* the last training step reported */
    int have_last;
} train_ui;

/* "1:02:03" / "2:03" into buf. */
static const char *fmt_eta(double s, char *buf, size_t n) {
    if (!(s >= 0) || s > 1e8) {
        snprintf(buf, n, "?");
        return buf;
    }
    long long t = (long long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, n, "%lld:%02lld:%02lld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, n, "%lld:%02lld", t / 60, t % 60);
    return buf;
}

static void clear_line(train_ui *ui) {
    if (ui->tty && ui->drawn) {
        fprintf(stderr, "\r\033[K");
        fflush(stderr);
        ui->drawn = 0;
    }
}

/* The step line: redrawn in place on a terminal, else every ui->every steps
 * (and the first and last). */
static void draw_step(train_ui *ui, const moe_train_progress *p) {
    if (!ui->tty && p->step % ui->every != 0 && p->step != p->steps && p->step != ui->first_step)
        return;
    char eta[32];
    int width = snprintf(NULL, 0, "%lld", (long long)p->steps);
    fprintf(stderr, "%sstep %*lld/%lld  loss %.4f  lr %.3e  aux %.4f  %.0f tok/s  ETA %s%s",
            ui->tty ? "\r\033[K" : "", width, (long long)p->step, (long long)p->steps, p->loss,
            p->lr, p->aux, p->tokens_per_s, fmt_eta(p->eta_s, eta, sizeof eta),
            ui->tty ? "" : "\n");
    fflush(stderr);
    ui->drawn = ui->tty;
}

/* One call per training step; the step's evaluation (is_eval) and
 * checkpoint (saved) may come in the same call or in calls of their own
 * for the same step: the step is drawn once either way. */
static void on_progress(void *user, const moe_train_progress *p) {
    train_ui *ui = user;
    int new_step = !ui->have_last || p->step != ui->last.step;
    if (new_step) {
        ui->last = *p;
        ui->have_last = 1;
        if (ui->first_step < 0) ui->first_step = p->step;
    }
    if (p->is_eval || p->saved) {
        clear_line(ui); /* on a terminal the step line goes back below these */
        if (p->is_eval)
            printf("eval  step %lld/%lld: val loss %.4f, perplexity %.2f\n", (long long)p->step,
                   (long long)p->steps, p->val_loss, exp(p->val_loss));
        if (p->saved) printf("saved step %lld: %s\n", (long long)p->step, p->saved);
        fflush(stdout);
    }
    if (!ui->quiet && (new_step || (ui->tty && !ui->drawn))) draw_step(ui, &ui->last);
}

/* --------------------------------------------------------------- options */

/* A double-valued option: taken as a string by the parser (an ARG_FLOAT is a
 * float, which would turn 3e-4 into 3.0000001e-4) and converted here with
 * the same checks and messages as args.c. */
typedef struct dbl_opt {
    const char *name;
    const char *arg; /* NULL: not given */
    double *dst;
    double min, max;
    int min_open, max_open;
} dbl_opt;

static int parse_dbl(const dbl_opt *d) {
    if (!d->arg) return 0;
    char *end;
    double x = strtod(d->arg, &end);
    if (!*d->arg || *end || !isfinite(x)) {
        cli_error("train", "%s: '%s' is not a number", d->name, d->arg);
        return -1;
    }
    if (x < d->min || x > d->max || (d->min_open && x == d->min) || (d->max_open && x == d->max)) {
        cli_error("train", "%s: %s is out of range %s%g, %g%s", d->name, d->arg,
                  d->min_open ? "(" : "[", d->min, d->max, d->max_open ? ")" : "]");
        return -1;
    }
    *d->dst = x;
    return 0;
}

/* int64 fields are set through an int (ARG_INT); defaults beyond INT_MAX
 * (none today) would show clamped. */
static int clamp_int(int64_t v) { return v > INT_MAX ? INT_MAX : v < INT_MIN ? INT_MIN : (int)v; }

#define HELP_LEN 160

int cmd_train(int argc, char **argv) {
    moe_train_opts o;
    moe_train_defaults(&o);
    const moe_train_opts def = o;

    int steps = clamp_int(o.steps), warmup = clamp_int(o.warmup);
    int eval_every = clamp_int(o.eval_every), save_every = clamp_int(o.save_every);
    int stop_after = clamp_int(o.stop_after);
    int print_every = 0, quiet = 0;
    const char *s_noise = NULL;
    double noise = 0;
    const char *s_lr = NULL, *s_min_lr = NULL, *s_wd = NULL, *s_b1 = NULL, *s_b2 = NULL,
               *s_eps = NULL, *s_clip = NULL, *s_lora_alpha = NULL;

    /* help lines with the library's defaults */
    char h[23][HELP_LEN]; /* one per H(i, ...) below */
#define H(i, ...) (snprintf(h[i], HELP_LEN, __VA_ARGS__), h[i])

    const arg_opt opts[] = {
        {"--data", "-d", ARG_STR, &o.data_dir, 0, 0, 0, "DIR",
         "`moe data` output: DIR/train.bin, DIR/val.bin (required)"},
        {"--out", "-o", ARG_STR, &o.out_dir, 0, 0, 0, "DIR",
         "checkpoints OUT/step-N/, OUT/latest, OUT/log.jsonl (required)"},
        {"--config", NULL, ARG_STR, &o.config, 0, 0, 0, "FILE",
         "config.json of a fresh model (random init; see below)"},
        {"--init", NULL, ARG_STR, &o.init, 0, 0, 0, "MODEL",
         "start from this model directory's weights instead"},
        {"--tokenizer", NULL, ARG_STR, &o.tokenizer, 0, 0, 0, "PATH",
         "tokenizer.json or its directory, copied into each checkpoint"},
        {"--resume", NULL, ARG_FLAG, &o.resume, 0, 0, 0, NULL,
         "continue from OUT/latest: same batches and losses as an unbroken run"},
        {"--freeze", NULL, ARG_STR, &o.freeze, 0, 0, 0, "LIST",
         "keep these parameter groups fixed (see below)"},
        {"--upcycle", NULL, ARG_STR, &o.upcycle, 0, 0, 0, "DENSE",
         "start an MoE from this dense model directory (see below)"},
        {"--experts", NULL, ARG_INT, &o.upcycle_experts, 1, 1 << 16, 0, "E",
         "experts per layer of the upcycled model (with --upcycle)"},
        {"--top-k", NULL, ARG_INT, &o.top_k, 1, 1 << 16, 0, "K",
         "experts per token of the upcycled model (default: the dense config's, else 2)"},
        {"--add-experts", NULL, ARG_INT, &o.add_experts, 1, 1 << 16, 0, "N",
         "append N experts to every MoE layer of the --init model"},
        {"--upcycle-noise", NULL, ARG_STR, &s_noise, 0, 0, 0, "X",
         "copied experts' weights times 1 + X N(0,1) (--upcycle, --add-experts; 0)"},
        {"--steps", NULL, ARG_INT, &steps, 1, INT_MAX, 0, "N", H(0, "optimizer steps in all (%lld)", (long long)def.steps)},
        {"--batch", "-b", ARG_INT, &o.batch, 1, 1 << 16, 0, "B", H(1, "sequences per micro-batch (%d)", def.batch)},
        {"--seq", NULL, ARG_INT, &o.seq, 1, 1 << 20, 0, "T", H(2, "tokens per sequence (%d)", def.seq)},
        {"--accum", NULL, ARG_INT, &o.accum, 1, 1 << 16, 0, "A",
         H(3, "micro-batches per step (%d): B x T x A tokens a step", def.accum)},
        {"--lr", NULL, ARG_STR, &s_lr, 0, 0, 0, "X", H(4, "peak learning rate (%g)", def.lr)},
        {"--min-lr", NULL, ARG_STR, &s_min_lr, 0, 0, 0, "X", H(5, "floor of the cosine decay (%g)", def.min_lr)},
        {"--warmup", NULL, ARG_INT, &warmup, 0, INT_MAX, 0, "N", H(6, "linear warmup steps (%lld)", (long long)def.warmup)},
        {"--wd", NULL, ARG_STR, &s_wd, 0, 0, 0, "X", H(7, "AdamW weight decay, matrices only (%g)", def.weight_decay)},
        {"--beta1", NULL, ARG_STR, &s_b1, 0, 0, 0, "X", H(8, "AdamW beta1 (%g)", def.beta1)},
        {"--beta2", NULL, ARG_STR, &s_b2, 0, 0, 0, "X", H(9, "AdamW beta2 (%g)", def.beta2)},
        {"--eps", NULL, ARG_STR, &s_eps, 0, 0, 0, "X", H(10, "AdamW epsilon (%g)", def.eps)},
        {"--clip", NULL, ARG_STR, &s_clip, 0, 0, 0, "X", H(11, "global gradient norm limit, 0 = off (%g)", def.clip)},
        {"--aux", NULL, ARG_FLOAT, &o.aux_coef, 0, 1e6, 0, "X", H(12, "load-balancing loss coefficient (%g)", def.aux_coef)},
        {"--z", NULL, ARG_FLOAT, &o.z_coef, 0, 1e6, 0, "X", H(13, "router z-loss coefficient (%g)", def.z_coef)},
        {"--kl", NULL, ARG_FLOAT, &o.kl_coef, 0, 1e6, 0, "X", H(14, "KL(uniform || router mean) coefficient (%g)", def.kl_coef)},
        {"--mod-aux", NULL, ARG_FLOAT, &o.mod_coef, 0, 1e6, 0, "X",
         H(22, "Mixture-of-Depths router BCE coefficient (%g)", def.mod_coef)},
        {"--bias-rate", NULL, ARG_FLOAT, &o.bias_rate, 0, 1, 0, "X",
         H(15, "selection-bias step, sigmoid routers with select_bias (%g)", def.bias_rate)},
        {"--seed", NULL, ARG_U64, &o.seed, 0, 0, 0, "S", H(16, "seed of the init and the data order (%llu)", (unsigned long long)def.seed)},
        {"--init-std", NULL, ARG_FLOAT, &o.init_std, 0, 10, 1, "X", H(17, "std of fresh weights (%g); norms start at 1", def.init_std)},
        {"--eval-every", NULL, ARG_INT, &eval_every, 0, INT_MAX, 0, "N",
         H(18, "steps between evaluations, 0 = only at the end (%lld)", (long long)def.eval_every)},
        {"--eval-batches", NULL, ARG_INT, &o.eval_batches, 1, 1 << 20, 0, "N",
         H(19, "validation micro-batches per evaluation (%d)", def.eval_batches)},
        {"--save-every", NULL, ARG_INT, &save_every, 0, INT_MAX, 0, "N",
         H(20, "steps between checkpoints, 0 = only at the end (%lld)", (long long)def.save_every)},
        {"--keep", NULL, ARG_INT, &o.keep, 1, 1 << 20, 0, "N", H(21, "checkpoints kept, oldest removed (%d)", def.keep)},
        {"--recompute", NULL, ARG_FLAG, &o.recompute, 0, 0, 0, NULL,
         "keep each layer's input only, redo its forward in the backward: less memory, same bits"},
        ARG_THREADS(&o.n_threads, "-t", "threads (0 = all CPUs, the default)"),
        {"--log", NULL, ARG_STR, &o.log_path, 0, 0, 0, "FILE", "JSONL log, appended (default OUT/log.jsonl)"},
        {"--stop-after", NULL, ARG_INT, &stop_after, 0, INT_MAX, 0, "N",
         "stop with a checkpoint after N steps of this run (0 = off); --resume goes on"},
        {"--print-every", NULL, ARG_INT, &print_every, 0, INT_MAX, 0, "N",
         "without a terminal: a progress line every N steps (0 = about 20 a run)"},
        {"--quiet", "-q", ARG_FLAG, &quiet, 0, 0, 0, NULL, "no progress lines on stderr"},
        {"--lora-rank", NULL, ARG_INT, &o.lora_rank, 1, 65536, 0, "R",
         "train rank-R LoRA adapters only, the --init model frozen (see below)"},
        {"--lora-alpha", NULL, ARG_STR, &s_lora_alpha, 0, 0, 0, "A",
         "LoRA scale alpha / R (default 2 x R)"},
        {"--lora-targets", NULL, ARG_STR, &o.lora_targets, 0, 0, 0, "LIST",
         "LoRA targets (default attn,experts; see below)"},
    };
#undef H
    const arg_cmd c = {
        "train", "--data DIR --out DIR (--config CONFIG.json | --init MODEL | --upcycle DENSE) [options]",
        "Train a Mixture-of-Experts model on the CPU from token shards made by `moe data`:\n"
        "loss = cross-entropy + aux x load-balancing + z x router z-loss + kl x KL, AdamW,\n"
        "linear warmup then cosine decay to --min-lr, global-norm clipping. Checkpoints are\n"
        "Hugging Face directories (config.json, model.safetensors in f32, tokenizer) that\n"
        "`moe` and transformers load; a kill never leaves OUT/latest half written.",
        "The model: --config gives a config.json (mixtral, qwen2_moe, qwen3_moe or olmoe\n"
        "layout) whose weights start random; --init starts from a model directory. How the\n"
        "experts are routed is set in config.json, in a \"moe\" object next to the usual keys:\n"
        "  \"score\": \"softmax\" | \"sigmoid\"  router probabilities (default softmax)\n"
        "  \"router\": \"token_choice\" | \"expert_choice\" | \"hash\"\n"
        "      token_choice: each token picks its top-k experts (default);\n"
        "      expert_choice: each expert picks its capacity's worth of tokens;\n"
        "      hash: expert = hash(token id) mod E, weight 1, nothing learned (use k = 1)\n"
        "  \"capacity_factor\": F     per-expert capacity F x N x k / E tokens; a token\n"
        "      past it is dropped (token_choice) - 0 = no limit (default)\n"
        "  \"norm_topk\": true|false   renormalize the chosen weights to sum 1 (mixtral:\n"
        "      true; others: norm_topk_prob). Top-1 with true gives the router no gradient\n"
        "      from the LM loss: a Switch router is k = 1 with false\n"
        "  \"noise\": X                noisy top-k: learned softplus noise scale times X\n"
        "      (training only)\n"
        "  \"select_bias\": true      sigmoid routers: a per-expert bias added for the\n"
        "      choice only, moved by --bias-rate toward equal load after each step\n"
        "  \"group\": \"max\" | \"top2_sum\", \"n_group\": G, \"topk_group\": g\n"
        "      group-limited routing (DeepSeek): a token picks its top-k among the experts\n"
        "      of its g best of G groups, scored by their best (max) or two best (top2_sum)\n"
        "  \"mod\": {\"capacity\": c, \"layers\": \"all\" | \"odd\" | \"even\" | [i, ...]}\n"
        "      Mixture-of-Depths (dense or MoE layers): in those layers a router takes the\n"
        "      top ceil(c x T) tokens of each sequence through the layer, the others skip\n"
        "      it; inference takes the tokens whose router logit is > 0, which --mod-aux\n"
        "      trains (a BCE against the top-c choice; the log's mod_bce, mod_acc,\n"
        "      mod_frac). Not with --recompute, latent or linear attention, windows\n"
        "deepseek_v2/v3, kimi_k2 and glm4_moe models train with their own routing (latent\n"
        "attention, partial rotary); qwen3_next's linear attention is refused.\n"
        "E experts (num_local_experts / num_experts) and k (num_experts_per_tok) are the\n"
        "usual keys. --aux, --z and --kl weigh the balancing losses; a hash router has none.\n"
        "\n"
        "--freeze LIST keeps parameter groups fixed (no update, no AdamW moments):\n"
        "  router (gate rows, shared-expert gate), experts (every FFN weight), attention,\n"
        "  embeddings (and the output head), norms; old-experts and old-router: all of\n"
        "  experts / router but the experts --add-experts appended.\n"
        "--upcycle DENSE --experts E starts from a dense model (num_experts 0, or one\n"
        "expert): a Mixtral-layout MoE whose E experts per layer are copies of that\n"
        "layer's FFN, with a fresh small random router; the rest is copied.\n"
        "--init MOE --add-experts N appends N experts per MoE layer, copies of the old\n"
        "ones (expert E+i of expert i mod E) with zero router rows; train only them\n"
        "with --freeze old-experts,old-router. docs/TRAINING.md has the details.\n"
        "\n"
        "Each step logs one JSON line (step, loss, ce, aux_loss, z_loss, kl_loss, lr,\n"
        "grad_norm, tokens_per_s, ...) to --log. Run the same command with --resume to\n"
        "continue after a stop: the rest of the run is bit-identical. Example in\n"
        "docs/TRAINING.md (\"Running moe train\").\n"
        "\n"
        "LoRA: --init MODEL --lora-rank R trains W + (alpha/R) B A on the targets only,\n"
        "--lora-targets from q_proj,k_proj,v_proj,o_proj (attn), gate (the router),\n"
        "gate_up_proj,down_proj (experts), all\n"
        "(mixtral, qwen2_moe, qwen3_moe, olmoe): each expert gets its own A and B on its\n"
        "gate/up rows (gate_up_proj) and down_proj, as peft's target_parameters lays them\n"
        "out. Checkpoints hold adapter_config.json + adapter_model.safetensors, which\n"
        "peft loads; apply one with `moe logits|generate|ppl MODEL --lora DIR`, or fold it\n"
        "into a model directory with `moe lora merge`. OUT/base keeps the f32 base.",
        opts, (int)(sizeof opts / sizeof opts[0]), 0, 0, ""};
    const char *pos[1];
    int np = 0;
    int r = args_parse(&c, argc, argv, pos, &np);
    if (r != ARGS_OK) return args_exit(r);

    const dbl_opt dbl[] = {
        {"--lr", s_lr, &o.lr, 0, 10, 1, 0},
        {"--min-lr", s_min_lr, &o.min_lr, 0, 10, 0, 0},
        {"--wd", s_wd, &o.weight_decay, 0, 10, 0, 0},
        {"--beta1", s_b1, &o.beta1, 0, 1, 0, 1},
        {"--beta2", s_b2, &o.beta2, 0, 1, 0, 1},
        {"--eps", s_eps, &o.eps, 0, 1, 1, 0},
        {"--clip", s_clip, &o.clip, 0, 1e30, 0, 0},
        {"--upcycle-noise", s_noise, &noise, 0, 10, 0, 0},
        {"--lora-alpha", s_lora_alpha, &o.lora_alpha, 0, 1e6, 1, 0},
    };
    for (size_t i = 0; i < sizeof dbl / sizeof dbl[0]; i++)
        if (parse_dbl(&dbl[i])) return 2;
    if (!o.data_dir) {
        cli_error("train", "--data DIR is required (the output of `moe data`)");
        return 2;
    }
    if (!o.out_dir) {
        cli_error("train", "--out DIR is required");
        return 2;
    }
    o.expert_noise = (float)noise;
    if (o.config && o.init) {
        cli_error("train", "--config and --init exclude each other (a fresh model or a start)");
        return 2;
    }
    if (o.upcycle && (o.config || o.init)) {
        cli_error("train", "--upcycle is the start: not with --config or --init");
        return 2;
    }
    if (!o.config && !o.init && !o.upcycle && !o.resume) {
        cli_error("train", "--config CONFIG.json or --init MODEL is required (or --resume)");
        return 2;
    }
    if (o.upcycle && !o.upcycle_experts) {
        cli_error("train", "--upcycle needs --experts E");
        return 2;
    }
    if ((o.upcycle_experts || o.top_k) && !o.upcycle) {
        cli_error("train", "--experts and --top-k size an upcycled model (--upcycle DENSE)");
        return 2;
    }
    if (o.add_experts && !o.init) {
        cli_error("train", "--add-experts N needs --init MODEL (the model to add them to)");
        return 2;
    }
    if (s_noise && !o.upcycle && !o.add_experts) {
        cli_error("train", "--upcycle-noise goes with --upcycle or --add-experts");
        return 2;
    }
    if (o.resume && (o.upcycle || o.add_experts)) {
        cli_error("train", "--resume continues a run: --upcycle and --add-experts only start one");
        return 2;
    }
    if ((o.lora_alpha > 0 || o.lora_targets) && o.lora_rank == 0) {
        cli_error("train", "--lora-alpha and --lora-targets need --lora-rank R");
        return 2;
    }
    if (o.lora_rank > 0 && !o.init) {
        cli_error("train", "--lora-rank adapts a model: give it with --init MODEL");
        return 2;
    }
    if (o.lora_rank > 0 && (o.freeze || o.add_experts)) {
        cli_error("train", "--lora-rank trains adapters on a frozen base: not with --freeze or --add-experts");
        return 2;
    }
    if (o.min_lr > o.lr) {
        cli_error("train", "--min-lr %g is above --lr %g", o.min_lr, o.lr);
        return 2;
    }
    o.steps = steps;
    o.warmup = warmup;
    o.eval_every = eval_every;
    o.save_every = save_every;
    o.stop_after = stop_after;

    train_ui ui = {.tty = isatty(2), .quiet = quiet, .first_step = -1, .t0 = cli_now()};
    ui.every = print_every > 0 ? print_every : (int)(((int64_t)steps + 19) / 20);
    if (ui.every < 1) ui.every = 1;
    o.progress = on_progress;
    o.user = &ui;

    moe_err err = {{0}};
    int rc = moe_train(&o, &err);
    clear_line(&ui);
    if (rc) {
        cli_error("train", "%s", err.msg[0] ? err.msg : "training failed");
        return 1;
    }
    double secs = cli_now() - ui.t0;
    if (ui.have_last) {
        const moe_train_progress *p = &ui.last;
        int64_t done = p->step - ui.first_step + 1;
        double tokens = (double)done * o.batch * o.seq * o.accum;
        printf("trained steps %lld..%lld of %lld in %.1f s (%.0f tokens/s overall): "
               "loss %.4f (ce %.4f, aux %.4f, z %.4f)\n",
               (long long)ui.first_step, (long long)p->step, (long long)p->steps, secs,
               secs > 0 ? tokens / secs : 0.0, p->loss, p->ce, p->aux, p->z);
    } else {
        printf("nothing to do: the run already has its %lld steps\n", (long long)o.steps);
    }
    printf("latest checkpoint: %s/latest\n", o.out_dir);
    return 0;
}
