/*
 * lora_io.c - an adapter's two files, as peft writes and reads them:
 *
 *   adapter_config.json        peft's LoraConfig: r, lora_alpha, use_rslora,
 *                              target_modules (linear layers by name),
 *                              target_parameters (the router and the fused
 *                              expert parameters), base_model_name_or_path
 *   adapter_model.safetensors  lora_A / lora_B of every target (lora.h)
 *
 * Reading refuses what would change the math silently: DoRA, LoRA biases,
 * per-layer rank or alpha patterns, layer subsets, pattern (regex) targets,
 * fully trained extra modules, tensors no target accounts for.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/err.h"
#include "base/mapfile.h"
#include "formats/safetensors.h"
#include "train/lora.h"

/* target_modules names and target_parameters paths, by LORA_T_* bit */
static const struct {
    unsigned bit;
    const char *module;    /* target_modules entry, or NULL */
    const char *parameter; /* target_parameters entry, or NULL */
} k_names[] = {
    {LORA_T_Q, "q_proj", NULL},
    {LORA_T_K, "k_proj", NULL},
    {LORA_T_V, "v_proj", NULL},
    {LORA_T_O, "o_proj", NULL},
    {LORA_T_ROUTER, NULL, "mlp.gate.weight"},
    {LORA_T_GATE_UP, NULL, "mlp.experts.gate_up_proj"},
    {LORA_T_DOWN, NULL, "mlp.experts.down_proj"},
};
#define N_NAMES ((int)(sizeof k_names / sizeof k_names[0]))

static int write_atomic(const char *path, const char *text, moe_err *err) {
    char tmp[4300];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return moe_fail(err, "%s: path too long", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return moe_fail(err, "%s: cannot create: %s", tmp, strerror(errno));
    size_t n = strlen(text);
    int ok = fwrite(text, 1, n, f) == n && fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return moe_fail(err, "%s: write failed: %s", path, strerror(errno));
    }
    return 0;
}

int lora_save(const lora_adapter *a, const char *dir, moe_err *err) {
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return moe_fail(err, "%s: cannot create: %s", dir, strerror(errno));
    st_write_tensor *w = calloc((size_t)(2 * a->n), sizeof *w);
    if (!w) return moe_fail(err, "out of memory");
    for (int i = 0; i < a->n; i++) {
        const lora_target *t = &a->t[i];
        int64_t Er = (int64_t)t->E * a->r;
        w[2 * i] = (st_write_tensor){t->name_a, DT_F32, 2, {Er, t->in}, a->p + t->a_off};
        w[2 * i + 1] = (st_write_tensor){t->name_b, DT_F32, 2, {t->out, Er}, a->p + t->b_off};
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    int rc = st_write(path, w, 2 * a->n, "{\"format\":\"pt\"}", err);
    free(w);
    if (rc) return -1;

    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "peft_type", "LORA");
    cJSON_AddStringToObject(j, "task_type", "CAUSAL_LM");
    if (a->base[0]) cJSON_AddStringToObject(j, "base_model_name_or_path", a->base);
    else cJSON_AddNullToObject(j, "base_model_name_or_path");
    cJSON_AddNumberToObject(j, "r", a->r);
    cJSON_AddNumberToObject(j, "lora_alpha", a->alpha);
    cJSON_AddNumberToObject(j, "lora_dropout", 0.0);
    cJSON_AddBoolToObject(j, "use_rslora", a->rslora);
    cJSON_AddBoolToObject(j, "use_dora", 0);
    cJSON_AddBoolToObject(j, "fan_in_fan_out", 0);
    cJSON_AddStringToObject(j, "bias", "none");
    cJSON_AddBoolToObject(j, "init_lora_weights", 1);
    cJSON_AddBoolToObject(j, "inference_mode", 1);
    cJSON *mods = cJSON_CreateArray(), *pars = cJSON_CreateArray();
    for (int i = 0; i < N_NAMES; i++) {
        if (!(a->targets & k_names[i].bit)) continue;
        if (k_names[i].module) cJSON_AddItemToArray(mods, cJSON_CreateString(k_names[i].module));
        else cJSON_AddItemToArray(pars, cJSON_CreateString(k_names[i].parameter));
    }
    if (cJSON_GetArraySize(mods)) cJSON_AddItemToObject(j, "target_modules", mods);
    else {
        cJSON_Delete(mods);
        cJSON_AddNullToObject(j, "target_modules");
    }
    if (cJSON_GetArraySize(pars)) cJSON_AddItemToObject(j, "target_parameters", pars);
    else {
        cJSON_Delete(pars);
        cJSON_AddNullToObject(j, "target_parameters");
    }
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    if (!text) return moe_fail(err, "out of memory");
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    rc = write_atomic(path, text, err);
    free(text);
    return rc;
}

/* ------------------------------------------------------------- reading */

static const cJSON *field(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return v && !cJSON_IsNull(v) ? v : NULL;
}

/* A field that must be absent, null, false, "none", empty or its default. */
static int refuse_if_set(const cJSON *j, const char *path, const char *k, const char *what,
                         moe_err *err) {
    const cJSON *v = field(j, k);
    if (!v || cJSON_IsFalse(v)) return 0;
    if (cJSON_IsString(v) && !strcmp(v->valuestring, "none")) return 0;
    if ((cJSON_IsArray(v) || cJSON_IsObject(v)) && cJSON_GetArraySize(v) == 0) return 0;
    return moe_fail(err, "%s: \"%s\" is set: %s is not supported", path, k, what);
}

/* The LORA_T_* bit of a target_modules or target_parameters entry (peft
 * matches a name equal to the entry or ending in "." + entry). */
static unsigned entry_bit(const char *s, int parameter) {
    for (int i = 0; i < N_NAMES; i++) {
        const char *full = parameter ? k_names[i].parameter : k_names[i].module;
        if (!full) continue;
        size_t n = strlen(full), m = strlen(s);
        if (!strcmp(full, s) ||
            (m < n && full[n - m - 1] == '.' && !strcmp(full + n - m, s) && strcmp(s, "weight")))
            return k_names[i].bit;
    }
    return 0;
}

static int read_targets(const cJSON *j, const char *path, unsigned *bits, moe_err *err) {
    const char *keys[2] = {"target_modules", "target_parameters"};
    for (int p = 0; p < 2; p++) {
        const cJSON *v = field(j, keys[p]);
        if (!v) continue;
        if (cJSON_IsString(v))
            return moe_fail(err, "%s: %s is the pattern \"%s\"; only a list of names is supported",
                            path, keys[p], v->valuestring);
        if (!cJSON_IsArray(v)) return moe_fail(err, "%s: %s is not a list", path, keys[p]);
        const cJSON *e;
        cJSON_ArrayForEach(e, v) {
            unsigned b = cJSON_IsString(e) ? entry_bit(e->valuestring, p) : 0;
            if (!b)
                return moe_fail(err, "%s: %s entry %s is not a target moe can apply (%s)", path,
                                keys[p], cJSON_IsString(e) ? e->valuestring : "(not a string)",
                                p ? "mlp.gate.weight, mlp.experts.gate_up_proj, mlp.experts.down_proj"
                                  : "q_proj, k_proj, v_proj, o_proj");
            *bits |= b;
        }
    }
    if (!*bits) return moe_fail(err, "%s: no target_modules or target_parameters", path);
    return 0;
}

/* Copy tensor `name` of shape [rows][cols] (any float type) into dst. */
static int take(const st_store *s, const char *file, const char *name, int64_t rows, int64_t cols,
                int r, float *dst, unsigned char *used, moe_err *err) {
    const st_tensor *t = st_find(s, name);
    if (!t) return moe_fail(err, "%s: no tensor %s", file, name);
    used[t - s->tensors] = 1;
    if (t->type >= DT_COUNT)
        return moe_fail(err, "%s: tensor %s is not a float tensor", file, name);
    if (t->n_dims != 2 || t->shape[0] != rows || t->shape[1] != cols)
        return moe_fail(err, "%s: tensor %s has shape [%lld, %lld], expected [%lld, %lld] "
                        "(r = %d in adapter_config.json)", file, name,
                        (long long)t->shape[0], (long long)(t->n_dims > 1 ? t->shape[1] : 0),
                        (long long)rows, (long long)cols, r);
    mat m = {t->data, t->type, 1, t->n_elems};
    mat_row_f32(dst, &m, 0);
    return 0;
}

int lora_load(lora_adapter *a, moe_model *m, const char *dir, moe_err *err) {
    memset(a, 0, sizeof *a);
    char path[4200], *text = NULL;
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    if (read_file(path, 1 << 20, &text, NULL, err)) return -1;
    cJSON *j = cJSON_Parse(text);
    free(text);
    if (!j || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return moe_fail(err, "%s: not a JSON object", path);
    }
    int rc = -1;
    unsigned bits = 0;
    const cJSON *pt = field(j, "peft_type"), *r = field(j, "r"), *al = field(j, "lora_alpha");
    const cJSON *rs = field(j, "use_rslora"), *base = field(j, "base_model_name_or_path");
    if (pt && (!cJSON_IsString(pt) || strcmp(pt->valuestring, "LORA"))) {
        moe_fail(err, "%s: peft_type is %s, not LORA", path,
                 cJSON_IsString(pt) ? pt->valuestring : "not a string");
        goto done;
    }
    if (!cJSON_IsNumber(r) || !(r->valuedouble >= 1 && r->valuedouble <= 65536) ||
        r->valuedouble != floor(r->valuedouble)) {
        moe_fail(err, "%s: r must be an integer in [1, 65536]", path);
        goto done;
    }
    if (!cJSON_IsNumber(al) || !(al->valuedouble > 0)) {
        moe_fail(err, "%s: lora_alpha must be a positive number", path);
        goto done;
    }
    if (refuse_if_set(j, path, "use_dora", "DoRA", err) ||
        refuse_if_set(j, path, "fan_in_fan_out", "fan_in_fan_out", err) ||
        refuse_if_set(j, path, "lora_bias", "a LoRA bias", err) ||
        refuse_if_set(j, path, "bias", "training biases", err) ||
        refuse_if_set(j, path, "rank_pattern", "a rank per layer", err) ||
        refuse_if_set(j, path, "alpha_pattern", "an alpha per layer", err) ||
        refuse_if_set(j, path, "layers_to_transform", "a subset of layers", err) ||
        refuse_if_set(j, path, "modules_to_save", "fully trained modules", err) ||
        refuse_if_set(j, path, "trainable_token_indices", "trained token embeddings", err) ||
        read_targets(j, path, &bits, err))
        goto done;
    if (lora_plan(a, m, r->valueint, al->valuedouble, cJSON_IsTrue(rs), bits, err)) {
        moe_fail_prefix(err, "%s", path);
        goto done;
    }
    if (cJSON_IsString(base)) snprintf(a->base, sizeof a->base, "%s", base->valuestring);

    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    st_store s;
    if (st_open_file(&s, path, err)) goto done;
    unsigned char *used = calloc((size_t)s.n_tensors + 1, 1);
    rc = used ? 0 : moe_fail(err, "out of memory");
    for (int i = 0; i < a->n && !rc; i++) {
        const lora_target *t = &a->t[i];
        int64_t Er = (int64_t)t->E * a->r;
        rc = take(&s, path, t->name_a, Er, t->in, a->r, a->p + t->a_off, used, err) ||
             take(&s, path, t->name_b, t->out, Er, a->r, a->p + t->b_off, used, err);
    }
    for (int i = 0; i < s.n_tensors && !rc; i++)
        if (!used[i])
            rc = moe_fail(err, "%s: tensor %s is not one of adapter_config.json's targets", path,
                          s.tensors[i].name);
    free(used);
    st_close(&s);
done:
    if (rc) lora_free(a);
    cJSON_Delete(j);
    return rc;
}
