/*
 * cmd_tokenize.c - `moe tokenize MODEL TEXT` and `moe detokenize MODEL IDS`:
 * the model's tokenizer alone (the weights are not loaded).
 */
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"

int cmd_tokenize(int argc, char **argv) {
    int no_special = 0;
    const arg_opt opts[] = {
        {"--no-special", NULL, ARG_FLAG, &no_special, 0, 0, 0, NULL,
         "do not add special tokens (BOS) as the tokenizer's post-processor would"},
    };
    const arg_cmd c = {"tokenize", "MODEL TEXT [--no-special]",
                       "Print the token ids of TEXT, comma separated. Special tokens are added as\n"
                       "Hugging Face does with add_special_tokens=True unless --no-special.",
                       "A TEXT starting with '-' goes after '--': moe tokenize MODEL -- -text",
                       opts, 1, 2, 2, "MODEL TEXT"};
    const char *pos[2];
    int np;
    int r = args_parse(&c, argc, argv, pos, &np);
    if (r != ARGS_OK) return args_exit(r);

    moe_tokenizer *t;
    if (cli_load_tokenizer("tokenize", pos[0], &t)) return 1;
    int32_t *ids = NULL;
    int n = 0;
    moe_err err = {{0}};
    if (moe_tokenize(t, pos[1], strlen(pos[1]), !no_special, &ids, &n, &err)) {
        cli_error("tokenize", "%s", err.msg);
        moe_tokenizer_free(t);
        return 1;
    }
    for (int i = 0; i < n; i++) printf("%s%d", i ? "," : "", ids[i]);
    printf("\n");
    free(ids);
    moe_tokenizer_free(t);
    return 0;
}

int cmd_detokenize(int argc, char **argv) {
    int skip_special = 0;
    const arg_opt opts[] = {
        {"--skip-special", NULL, ARG_FLAG, &skip_special, 0, 0, 0, NULL,
         "drop special tokens (BOS, EOS, ...) from the text"},
    };
    const arg_cmd c = {"detokenize", "MODEL IDS [--skip-special]",
                       "Print the text of IDS (comma separated token ids) followed by a newline.",
                       NULL, opts, 1, 2, 2, "MODEL IDS"};
    const char *pos[2];
    int np;
    int r = args_parse(&c, argc, argv, pos, &np);
    if (r != ARGS_OK) return args_exit(r);

    int32_t *ids;
    int n;
    if (cli_parse_ids("detokenize", "IDS", pos[1], &ids, &n)) return 2;
    moe_tokenizer *t;
    if (cli_load_tokenizer("detokenize", pos[0], &t)) {
        free(ids);
        return 1;
    }
    int V = moe_tokenizer_vocab(t);
    for (int i = 0; i < n; i++) {
        if (ids[i] >= V) {
            cli_error("detokenize", "token id %d is out of range [0, %d)", ids[i], V);
            free(ids);
            moe_tokenizer_free(t);
            return 2;
        }
    }
    char *text = NULL;
    size_t len = 0;
    moe_err err = {{0}};
    if (moe_detokenize(t, ids, n, skip_special, &text, &len, &err)) {
        cli_error("detokenize", "%s", err.msg);
        free(ids);
        moe_tokenizer_free(t);
        return 1;
    }
    fwrite(text, 1, len, stdout);
    printf("\n");
    free(text);
    free(ids);
    moe_tokenizer_free(t);
    return 0;
}
