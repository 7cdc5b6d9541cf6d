/*
 * gguf_api.c - include/moe_gguf.h over formats/gguf_vocab_write.c: which
 * directory's tokenizer a GGUF written from a model carries, and the
 * vocabulary built from it.
 */
#include "moe_gguf.h"

#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/err.h"
#include "formats/gguf.h"
#include "formats/gguf_vocab_write.h"
#include "model/quantize.h"
#include "model/tensor_map.h"

struct moe_gguf_vocab {
    tok_gguf_vocab v;
    int writes;      /* v holds pairs to write */
    char dir[4096];  /* the tokenizer directory */
};

static int is_dir(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
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

/* The directory whose tokenizer becomes the vocabulary, into buf; 0 if none:
 * tok (a directory or a tokenizer.json in one), else IN when a directory. */
static int vocab_dir(const char *in, const char *tok, char *buf, size_t n) {
    if (tok && is_dir(tok)) snprintf(buf, n, "%s", tok);
    else if (tok && ends_with(tok, "tokenizer.json")) {
        char t[4096];
        snprintf(t, sizeof t, "%s", tok);
        snprintf(buf, n, "%s", dirname(t));
    } else if (is_dir(in)) snprintf(buf, n, "%s", in);
    else return 0;
    return 1;
}

int moe_gguf_vocab_for(moe_gguf_vocab **out, const moe_model *m, const char *in, const char *tok,
                       moe_err *err) {
    *out = NULL;
    char dir[4096];
    if (!vocab_dir(in, tok, dir, sizeof dir) || (!is_dir(in) && gguf_has_vocab(in))) return 0;
    moe_gguf_vocab *v = calloc(1, sizeof *v);
    if (!v) return moe_fail(err, "out of memory");
    snprintf(v->dir, sizeof v->dir, "%s", dir);
    const moe_config *c = moe_model_config(m);
    int rc = tok_gguf_vocab_build(&v->v, v->dir, tm_gguf_arch(c->arch), c->vocab, err);
    if (rc < 0) {
        moe_gguf_vocab_free(v);
        return -1;
    }
    v->writes = rc == 0;
    *out = v;
    return 0;
}

void moe_gguf_vocab_free(moe_gguf_vocab *v) {
    if (!v) return;
    tok_gguf_vocab_free(&v->v);
    free(v);
}

int moe_gguf_vocab_writes(const moe_gguf_vocab *v) { return v && v->writes; }

const struct tok_gguf_vocab *qz_vocab_pairs(const moe_gguf_vocab *v) {
    return v && v->writes ? &v->v : NULL;
}

void moe_gguf_vocab_info_get(const moe_gguf_vocab *v, moe_gguf_vocab_info *info) {
    memset(info, 0, sizeof *info);
    info->note = "";
    if (!v) return;
    info->dir = v->dir;
    info->model = v->v.model ? v->v.model : "";
    info->pre = v->v.pre;
    info->pre_how = v->v.pre_how ? v->v.pre_how : "";
    info->n_tokens = v->v.n_tokens;
    info->n_padded = v->v.n_padded;
    info->note = v->v.note;
}

int moe_gguf_vocab_check(const char *gguf_path, const char *dir, int *same, int *total,
                         moe_err *err) {
    return tok_gguf_vocab_check(gguf_path, dir, same, total, err);
}

int moe_gguf_to_tokenizer_json(const char *gguf_path, const char *dir, char *note,
                               size_t note_size, moe_err *err) {
    return tok_gguf_to_json(gguf_path, dir, note, note_size, err);
}
