/*
 * cmd_logits.c - `moe logits MODEL --ids 1,2,3 [--out FILE]`: the raw
 * little-endian float32 logits of exactly those ids (no BOS added), one row
 * of V values per position, for comparing with other implementations.
 * Positions are run in chunks (--chunk, at most 64) so memory stays at
 * chunk * V floats however long the input is.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "cli.h"
#include "moe_train.h"

#define LOGITS_CHUNK 64

static int is_little_endian(void) {
    const uint16_t x = 1;
    return *(const unsigned char *)&x == 1;
}

int cmd_logits(int argc, char **argv) {
    const char *ids_s = NULL, *out_path = NULL, *lora_dir = NULL;
    int threads = 0, chunk = LOGITS_CHUNK;
    cli_cache cc = CLI_CACHE_INIT;
    const arg_opt opts[] = {
        {"--ids", NULL, ARG_STR, &ids_s, 0, 0, 0, "1,2,3", "token ids, comma separated (required)"},
        {"--out", "-o", ARG_STR, &out_path, 0, 0, 0, "FILE", "write to FILE instead of stdout"},
        ARG_THREADS(&threads, "-t", "threads (0 = all CPUs)"),
        {"--chunk", NULL, ARG_INT, &chunk, 1, LOGITS_CHUNK, 0, "N",
         "positions per forward call (default 64; 1: token by token, as decoding runs)"},
        ARG_CACHE(&cc),
        {"--lora", NULL, ARG_STR, &lora_dir, 0, 0, 0, "DIR",
         "apply a peft LoRA adapter directory (merged into the weights at load)"},
    };
    const arg_cmd c = {"logits", "MODEL --ids 1,2,3 [--out FILE] [--lora DIR]",
                       "Write the logits of the given token ids (no BOS added) as raw little-endian\n"
                       "float32: one row of vocab-size values per position, n_ids * V * 4 bytes.",
                       NULL, opts, (int)(sizeof opts / sizeof opts[0]), 1, 1, "MODEL"};
    const char *pos[1];
    int np;
    int r = args_parse(&c, argc, argv, pos, &np);
    if (r != ARGS_OK) return args_exit(r);
    moe_load_opts lo;
    if (cli_cache_parse("logits", &cc, &lo)) return 2;
    if (!ids_s) {
        cli_error("logits", "--ids is required (e.g. --ids 1,2,3)");
        return 2;
    }
    int32_t *ids;
    int n;
    if (cli_parse_ids("logits", "--ids", ids_s, &ids, &n)) return 2;
    if (!out_path && isatty(STDOUT_FILENO)) {
        cli_error("logits", "refusing to write binary logits to a terminal; use --out FILE or a pipe");
        free(ids);
        return 2;
    }
    if (!is_little_endian()) {
        cli_error("logits", "this build writes host-order floats and the host is big-endian");
        free(ids);
        return 1;
    }

    int rc = 1;
    moe_model *m = NULL;
    moe_lora *lora = NULL;
    moe_session *s = NULL;
    float *rows = NULL;
    FILE *f = NULL;
    moe_err err = {{0}};
    if (cli_load_model_opts("logits", pos[0], &lo, &m) ||
        cli_apply_lora("logits", m, lora_dir, &lora))
        goto done;
    const moe_config *cfg = moe_model_config(m);
    const int V = cfg->vocab;
    for (int i = 0; i < n; i++) {
        if (ids[i] >= V) {
            cli_error("logits", "--ids: token id %d at position %d is out of range [0, %d)", ids[i],
                      i, V);
            rc = 2;
            goto done;
        }
    }
    moe_session_opts so = {.n_ctx = n, .n_threads = threads, .max_batch = chunk};
    if (moe_session_new(&s, m, &so, &err)) {
        cli_error("logits", "%s", err.msg);
        goto done;
    }
    cli_cache_attach(m, s);
    rows = malloc((size_t)LOGITS_CHUNK * (size_t)V * sizeof *rows);
    if (!rows) {
        cli_error("logits", "out of memory for %d x %d logits", LOGITS_CHUNK, V);
        goto done;
    }
    f = out_path ? fopen(out_path, "wb") : stdout;
    if (!f) {
        cli_error("logits", "cannot write %s: %s", out_path, strerror(errno));
        goto done;
    }
    for (int i = 0; i < n; i += chunk) {
        int k = n - i < chunk ? n - i : chunk;
        if (moe_forward(s, ids + i, k, rows, 1, &err)) {
            cli_error("logits", "%s", err.msg);
            goto done;
        }
        cli_cache_tokens(m, k);
        if (fwrite(rows, sizeof *rows * (size_t)V, (size_t)k, f) != (size_t)k) {
            cli_error("logits", "writing %s: %s", out_path ? out_path : "stdout", strerror(errno));
            goto done;
        }
    }
    if (fflush(f) != 0) {
        cli_error("logits", "writing %s: %s", out_path ? out_path : "stdout", strerror(errno));
        goto done;
    }
    rc = 0;
    cli_cache_line("logits", m, stderr);
done:
    if (f && f != stdout && fclose(f) != 0 && rc == 0) {
        cli_error("logits", "writing %s: %s", out_path, strerror(errno));
        rc = 1;
    }
    free(rows);
    free(ids);
    moe_session_free(s);
    moe_model_free(m);
    moe_lora_free(lora);
    return rc;
}
