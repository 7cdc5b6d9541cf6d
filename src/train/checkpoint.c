/*
 * checkpoint.c - training checkpoints on disk, written so that a kill at
 * any moment leaves a loadable one:
 *
 *   OUT/.tmp-step-N/           everything is written here first:
 *       config.json            the model (Hugging Face layout, f32)
 *       model.safetensors
 *       optimizer.safetensors  AdamW moments, "m.NAME" and "v.NAME" per tensor
 *       trainer_state.json     step, data RNG state, run settings (batch, seq,
 *                              accum; frozen groups, experts added)
 *       tokenizer.json, tokenizer_config.json (when the run has them)
 *   each file fsynced, the directory fsynced, then renamed to OUT/step-N;
 *   OUT/latest is a symlink switched by rename(latest.tmp, latest).
 */
#include "train/checkpoint.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/err.h"
#include "base/mapfile.h"
#include "formats/hf_config.h"

static int fsync_path(const char *path, moe_err *err) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return moe_fail(err, "%s: cannot open to sync: %s", path, strerror(errno));
    int r = fsync(fd);
    close(fd);
    if (r) return moe_fail(err, "%s: fsync failed: %s", path, strerror(errno));
    return 0;
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb; (void)flag; (void)ftw;
    return remove(p);
}

void ckpt_remove_dir(const char *dir) { nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS); }

static int write_text(const char *path, const char *text, moe_err *err) {
    FILE *f = fopen(path, "wb");
    if (!f) return moe_fail(err, "%s: cannot create: %s", path, strerror(errno));
    size_t n = strlen(text);
    int ok = fwrite(text, 1, n, f) == n && fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok = (fclose(f) == 0) && ok;
    return ok ? 0 : moe_fail(err, "%s: write failed: %s", path, strerror(errno));
}

static int copy_file(const char *from, const char *to, moe_err *err) {
    char *text = NULL;
    size_t len = 0;
    if (read_file(from, (size_t)1 << 30, &text, &len, err)) return -1;
    FILE *f = fopen(to, "wb");
    int ok = f && fwrite(text, 1, len, f) == len && fflush(f) == 0 && fsync(fileno(f)) == 0;
    if (f) ok = (fclose(f) == 0) && ok;
    free(text);
    return ok ? 0 : moe_fail(err, "%s: cannot write a copy of %s", to, from);
}

/* Tokenizer files next to a tokenizer.json path or in a directory. */
static int copy_tokenizer(const char *tok, const char *dir, moe_err *err) {
    struct stat sb;
    char src_dir[4096], from[4200], to[4200];
    if (stat(tok, &sb) != 0) return moe_fail(err, "%s: tokenizer not found", tok);
    if (S_ISDIR(sb.st_mode)) {
        snprintf(src_dir, sizeof src_dir, "%s", tok);
    } else {
        snprintf(src_dir, sizeof src_dir, "%s", tok);
        char *slash = strrchr(src_dir, '/');
        if (slash) *slash = 0;
        else snprintf(src_dir, sizeof src_dir, ".");
    }
    const char *names[2] = {"tokenizer.json", "tokenizer_config.json"};
    for (int i = 0; i < 2; i++) {
        if (i == 0 && !S_ISDIR(sb.st_mode)) snprintf(from, sizeof from, "%s", tok);
        else snprintf(from, sizeof from, "%s/%s", src_dir, names[i]);
        snprintf(to, sizeof to, "%s/%s", dir, names[i]);
        if (stat(from, &sb) != 0) {
            if (i == 0) return moe_fail(err, "%s: tokenizer.json not found", from);
            continue;
        }
        if (copy_file(from, to, err)) return -1;
    }
    return 0;
}

static int write_state(const char *path, const ckpt_state *st, moe_err *err) {
    cJSON *j = cJSON_CreateObject();
    char buf[32];
    cJSON_AddNumberToObject(j, "step", (double)st->step);
    cJSON *r = cJSON_AddArrayToObject(j, "data_rng");
    for (int i = 0; i < 4; i++) {
        snprintf(buf, sizeof buf, "%016" PRIx64, st->rng[i]);
        cJSON_AddItemToArray(r, cJSON_CreateString(buf));
    }
    cJSON *nr = cJSON_AddArrayToObject(j, "noise_rng");
    for (int i = 0; i < 4; i++) {
        snprintf(buf, sizeof buf, "%016" PRIx64, st->noise_rng[i]);
        cJSON_AddItemToArray(nr, cJSON_CreateString(buf));
    }
    cJSON_AddNumberToObject(j, "batch", st->batch);
    cJSON_AddNumberToObject(j, "seq", st->seq);
    cJSON_AddNumberToObject(j, "accum", st->accum);
    cJSON_AddNumberToObject(j, "loss", st->loss);
    if (st->freeze[0]) cJSON_AddStringToObject(j, "freeze", st->freeze);
    if (st->added_experts) cJSON_AddNumberToObject(j, "added_experts", st->added_experts);
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    if (!text) return moe_fail(err, "%s: out of memory", path);
    int rc = write_text(path, text, err);
    free(text);
    return rc;
}

int ckpt_read_state(const char *dir, ckpt_state *st, moe_err *err) {
    char path[4200], *text = NULL;
    snprintf(path, sizeof path, "%s/trainer_state.json", dir);
    if (read_file(path, 1 << 20, &text, NULL, err)) return -1;
    cJSON *j = cJSON_Parse(text);
    free(text);
    const cJSON *step = cJSON_GetObjectItemCaseSensitive(j, "step");
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "data_rng");
    const cJSON *nr = cJSON_GetObjectItemCaseSensitive(j, "noise_rng");
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(j, "batch");
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "seq");
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "accum");
    const cJSON *fz = cJSON_GetObjectItemCaseSensitive(j, "freeze");      /* optional */
    const cJSON *ad = cJSON_GetObjectItemCaseSensitive(j, "added_experts"); /* optional */
    /* step becomes an int64: range-check the double first (1e300 or 0.5 are
     * no step count, and converting an out-of-range double is undefined) */
    if (cJSON_IsNumber(step) && !(step->valuedouble >= 0 && step->valuedouble <= 9007199254740992.0 &&
                                  step->valuedouble == floor(step->valuedouble))) {
        moe_fail(err, "%s: \"step\": %g is not an integer in [0, 2^53]", path, step->valuedouble);
        cJSON_Delete(j);
        return -1;
    }
    int ok = j && cJSON_IsNumber(step) && cJSON_IsArray(r) &&
             cJSON_GetArraySize(r) == 4 && cJSON_IsArray(nr) && cJSON_GetArraySize(nr) == 4 &&
             cJSON_IsNumber(b) && cJSON_IsNumber(s) && cJSON_IsNumber(a) &&
             (!fz || (cJSON_IsString(fz) && strlen(fz->valuestring) < sizeof st->freeze)) &&
             (!ad || (cJSON_IsNumber(ad) && ad->valuedouble >= 0 && ad->valuedouble <= 1 << 16));
    for (int i = 0; ok && i < 8; i++) {
        const cJSON *x = cJSON_GetArrayItem(i < 4 ? r : nr, i % 4);
        char *end = NULL;
        ok = cJSON_IsString(x) && strlen(x->valuestring) == 16;
        if (ok) (i < 4 ? st->rng : st->noise_rng)[i % 4] = strtoull(x->valuestring, &end, 16);
        ok = ok && *end == 0;
    }
    if (ok) {
        st->step = (int64_t)step->valuedouble;
        st->batch = b->valueint;
        st->seq = s->valueint;
        st->accum = a->valueint;
        snprintf(st->freeze, sizeof st->freeze, "%s", fz ? fz->valuestring : "");
        st->added_experts = ad ? ad->valueint : 0;
    }
    cJSON_Delete(j);
    return ok ? 0 : moe_fail(err, "%s: not a valid trainer state (step, data_rng, noise_rng, batch, "
                                  "seq, accum; freeze, added_experts)",
                             path);
}

/* Where the string value of key k starts in text at a key position
 * (after '{' or ','), from *at on; advances *at. NULL when none is left. */
static const char *next_string_value(const char *text, const char *k, const char **at) {
    char quoted[32];
    snprintf(quoted, sizeof quoted, "\"%s\"", k);
    for (const char *p = strstr(*at, quoted); p; p = strstr(p + 1, quoted)) {
        const char *b = p;
        while (b > text && (b[-1] == ' ' || b[-1] == '\t' || b[-1] == '\n' || b[-1] == '\r')) b--;
        const char *v = p + strlen(quoted);
        while (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r') v++;
        if (b == text || (b[-1] != '{' && b[-1] != ',') || *v != ':') continue;
        v++;
        while (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r') v++;
        if (*v != '"') continue;
        *at = v + 1;
        return v + 1;
    }
    return NULL;
}

/* The text is edited, not rebuilt from a parse: a parse prints 1.0 as 1,
 * which transformers refuses where it wants a float. */
int ckpt_config_f32(const char *src, char **out, moe_err *err) {
    char *text = NULL;
    size_t len = 0;
    *out = NULL;
    if (read_file(src, 1 << 22, &text, &len, err)) return -1;
    cJSON *j = cJSON_ParseWithLength(text, len);
    int obj = cJSON_IsObject(j), quant = obj && cJSON_GetObjectItemCaseSensitive(j, "quantization_config");
    const cJSON *td = obj ? cJSON_GetObjectItemCaseSensitive(j, "torch_dtype") : NULL;
    const cJSON *dt = obj ? cJSON_GetObjectItemCaseSensitive(j, "dtype") : NULL;
    int odd = (td && !cJSON_IsString(td)) || (dt && !cJSON_IsString(dt));
    cJSON_Delete(j);
    if (!obj || quant || odd) {
        free(text);
        return moe_fail(err, "%s: %s", src, quant ? "has a quantization_config; training starts "
                                                    "from float weights only"
                                            : odd ? "torch_dtype or dtype is not a string"
                                                  : "not a JSON object");
    }
    const char *keys[2] = {"torch_dtype", "dtype"};
    char *o = malloc(len + 2 * 32 + 40), *w = o; /* at most one value per key is replaced */
    if (!o) {
        free(text);
        return moe_fail(err, "%s: out of memory", src);
    }
    const char *r = text, *v[2];
    for (int k = 0; k < 2; k++) {
        const char *at = text;
        v[k] = next_string_value(text, keys[k], &at);
    }
    int first = v[0] && (!v[1] || v[0] < v[1]) ? 0 : 1;
    for (int i = 0; i < 2; i++) {
        int k = i == 0 ? first : 1 - first;
        if (!v[k]) continue;
        const char *end = v[k];
        while (*end && *end != '"') end += *end == '\\' && end[1] ? 2 : 1;
        memcpy(w, r, (size_t)(v[k] - r));
        w += v[k] - r;
        w += sprintf(w, "float32");
        r = end;
    }
    if (!v[0] && !v[1]) { /* none: one after the opening brace */
        const char *brace = strchr(text, '{');
        memcpy(w, text, (size_t)(brace + 1 - text));
        w += brace + 1 - text;
        w += sprintf(w, "\n  \"torch_dtype\": \"float32\",");
        r = brace + 1;
    }
    memcpy(w, r, len - (size_t)(r - text));
    w[len - (size_t)(r - text)] = '\0';
    free(text);
    *out = o;
    return 0;
}

int ckpt_copy_config_f32(const char *src, const char *dst, moe_err *err) {
    char *text = NULL;
    if (ckpt_config_f32(src, &text, err)) return -1;
    int rc = write_text(dst, text, err);
    free(text);
    return rc;
}

/* The written directory tmp becomes fin (OUT/step-N), then OUT/latest. */
static int publish(const char *out_dir, const char *tmp, const char *fin, int64_t step, char *saved,
                   size_t saved_len, moe_err *err) {
    if (fsync_path(tmp, err)) return -1;
    ckpt_remove_dir(fin); /* a stale one from an interrupted run */
    if (rename(tmp, fin) != 0)
        return moe_fail(err, "%s: cannot rename to %s: %s", tmp, fin, strerror(errno));
    if (fsync_path(out_dir, err)) return -1;
    char link_tmp[4200], link[4200], target[64];
    snprintf(link_tmp, sizeof link_tmp, "%s/latest.tmp", out_dir);
    snprintf(link, sizeof link, "%s/latest", out_dir);
    snprintf(target, sizeof target, "step-%08lld", (long long)step);
    unlink(link_tmp);
    if (symlink(target, link_tmp) != 0 || rename(link_tmp, link) != 0)
        return moe_fail(err, "%s: cannot point at %s: %s", link, target, strerror(errno));
    if (fsync_path(out_dir, err)) return -1;
    if (saved) snprintf(saved, saved_len, "%s", fin);
    return 0;
}

int ckpt_save(const char *out_dir, const moe_model *m, const train_params *P, const float *adam_m,
              const float *adam_v, const ckpt_state *st, const char *tokenizer,
              const char *config_text, char *saved, size_t saved_len, moe_err *err) {
    const st_store *S = &m->st;
    char tmp[4096], fin[4096], path[4200];
    snprintf(tmp, sizeof tmp, "%s/.tmp-step-%08lld", out_dir, (long long)st->step);
    snprintf(fin, sizeof fin, "%s/step-%08lld", out_dir, (long long)st->step);
    ckpt_remove_dir(tmp);
    if (mkdir(tmp, 0755) != 0)
        return moe_fail(err, "%s: cannot create: %s", tmp, strerror(errno));
    int n = S->n_tensors, rc = -1;
    st_write_tensor *w = calloc((size_t)(2 * n), sizeof *w);
    char(*names)[200] = calloc((size_t)(2 * n), sizeof *names);
    if (!w || !names) {
        moe_fail(err, "out of memory writing a checkpoint");
        goto done;
    }
    for (int i = 0; i < n; i++) {
        const st_tensor *t = &S->tensors[i];
        w[i] = (st_write_tensor){t->name, DT_F32, t->n_dims, {0}, t->data};
        memcpy(w[i].shape, t->shape, sizeof t->shape);
    }
    snprintf(path, sizeof path, "%s/model.safetensors", tmp);
    if (st_write(path, w, n, "{\"format\":\"pt\"}", err)) goto done;
    int k = 0;
    for (int i = 0; i < P->n_tensors; i++) {
        const optim_tensor *t = &P->tensors[i];
        for (int mv = 0; mv < 2; mv++) {
            snprintf(names[k], sizeof names[k], "%c.%s", mv ? 'v' : 'm', t->name);
            w[k] = (st_write_tensor){names[k], DT_F32, 1, {t->size},
                                     (mv ? adam_v : adam_m) + t->offset - t->state_gap};
            k++;
        }
    }
    snprintf(path, sizeof path, "%s/optimizer.safetensors", tmp);
    if (st_write(path, w, k, NULL, err)) goto done;
    snprintf(path, sizeof path, "%s/config.json", tmp);
    if (config_text ? write_text(path, config_text, err)
                    : hf_config_write(&m->cfg, path, "float32", err))
        goto done;
    if (fsync_path(path, err)) goto done;
    snprintf(path, sizeof path, "%s/trainer_state.json", tmp);
    if (write_state(path, st, err)) goto done;
    if (tokenizer && copy_tokenizer(tokenizer, tmp, err)) goto done;
    if (publish(out_dir, tmp, fin, st->step, saved, saved_len, err)) goto done;
    rc = 0;
done:
    if (rc) ckpt_remove_dir(tmp);
    free(w);
    free(names);
    return rc;
}

int ckpt_save_with(const char *out_dir, const ckpt_state *st, const char *tokenizer,
                   int (*write)(void *ctx, const char *dir, moe_err *err), void *ctx,
                   char *saved, size_t saved_len, moe_err *err) {
    char tmp[4096], fin[4096], path[4200];
    snprintf(tmp, sizeof tmp, "%s/.tmp-step-%08lld", out_dir, (long long)st->step);
    snprintf(fin, sizeof fin, "%s/step-%08lld", out_dir, (long long)st->step);
    ckpt_remove_dir(tmp);
    if (mkdir(tmp, 0755) != 0) return moe_fail(err, "%s: cannot create: %s", tmp, strerror(errno));
    snprintf(path, sizeof path, "%s/trainer_state.json", tmp);
    if (write(ctx, tmp, err) || write_state(path, st, err) ||
        (tokenizer && copy_tokenizer(tokenizer, tmp, err)) ||
        publish(out_dir, tmp, fin, st->step, saved, saved_len, err)) {
        ckpt_remove_dir(tmp);
        return -1;
    }
    return 0;
}

int ckpt_load_optimizer(const char *dir, const train_params *P, float *adam_m, float *adam_v,
                        moe_err *err) {
    char path[4200], name[220];
    snprintf(path, sizeof path, "%s/optimizer.safetensors", dir);
    st_store o;
    if (st_open_file(&o, path, err)) return -1;
    int rc = 0;
    for (int i = 0; i < P->n_tensors && !rc; i++) {
        const optim_tensor *t = &P->tensors[i];
        for (int mv = 0; mv < 2 && !rc; mv++) {
            snprintf(name, sizeof name, "%c.%s", mv ? 'v' : 'm', t->name);
            const st_tensor *x = st_find(&o, name);
            if (!x || x->type != DT_F32 || x->n_elems != t->size) {
                rc = moe_fail(err, "%s: %s is missing or of the wrong size", path, name);
                break;
            }
            memcpy((mv ? adam_v : adam_m) + t->offset - t->state_gap, x->data, (size_t)t->size * sizeof(float));
        }
    }
    st_close(&o);
    return rc;
}

void ckpt_prune(const char *out_dir, int keep, int64_t newest) {
    DIR *d = opendir(out_dir);
    if (!d) return;
    int64_t steps[4096];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 4096) {
        long long s;
        char tail;
        if (sscanf(e->d_name, "step-%lld%c", &s, &tail) == 1 && s <= newest) steps[n++] = s;
    }
    closedir(d);
    for (int i = 0; i < n; i++) {
        int newer = 0;
        for (int j = 0; j < n; j++) newer += steps[j] > steps[i];
        if (newer >= keep) {
            char p[4200];
            snprintf(p, sizeof p, "%s/step-%08lld", out_dir, (long long)steps[i]);
            ckpt_remove_dir(p);
        }
    }
}
