/*
 * test_lora_bad.c - malformed LoRA adapters refused with a message that
 * names the file and the tensor or field: a rank that disagrees with the
 * tensors, a missing, extra or misshapen tensor, r <= 0, unknown or
 * pattern targets, DoRA, an adapter for another model, another
 * architecture, a missing directory; and bad --lora-targets lists.
 */
#include "test.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "moe_train.h"
#include "base/mapfile.h"
#include "formats/safetensors.h"
#include "train/lora.h"

/* An adapter directory: the mixtral fixture's config edited by edit(), its
 * tensors with `drop` left out, `grow` widened by one column and `extra`
 * added (each NULL for none). */
typedef void (*config_edit)(cJSON *j);

static void make_adapter(const char *out, config_edit edit, const char *drop, const char *grow,
                         const char *extra) {
    char src[600], path[700], *text = NULL;
    moe_err err = {{0}};
    snprintf(src, sizeof src, "%s/lora/mixtral/adapter", test_fixtures());
    mkdir(out, 0755);
    snprintf(path, sizeof path, "%s/adapter_config.json", src);
    if (read_file(path, 1 << 20, &text, NULL, &err)) {
        test_fail_at(__FILE__, __LINE__, "%s", err.msg);
        return;
    }
    cJSON *j = cJSON_Parse(text);
    free(text);
    if (edit) edit(j);
    char *o = cJSON_Print(j);
    cJSON_Delete(j);
    snprintf(path, sizeof path, "%s/adapter_config.json", out);
    FILE *f = fopen(path, "w");
    CHECK(f && o);
    if (f && o) fputs(o, f);
    if (f) fclose(f);
    free(o);

    st_store s;
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", src);
    if (st_open_file(&s, path, &err)) {
        test_fail_at(__FILE__, __LINE__, "%s", err.msg);
        return;
    }
    st_write_tensor *w = calloc((size_t)s.n_tensors + 1, sizeof *w);
    float *wide = NULL;
    int n = 0;
    for (int i = 0; i < s.n_tensors; i++) {
        const st_tensor *t = &s.tensors[i];
        if (drop && !strcmp(t->name, drop)) continue;
        w[n] = (st_write_tensor){t->name, t->type, t->n_dims, {t->shape[0], t->shape[1]}, t->data};
        if (grow && !strcmp(t->name, grow)) {
            wide = calloc((size_t)(t->shape[0] * (t->shape[1] + 1)), sizeof(float));
            w[n].shape[1] = t->shape[1] + 1;
            w[n].data = wide;
        }
        n++;
    }
    static const float zeros[4];
    if (extra) w[n++] = (st_write_tensor){extra, DT_F32, 2, {2, 2}, zeros};
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", out);
    CHECK_MSG(st_write(path, w, n, NULL, &err) == 0, "%s", err.msg);
    free(wide);
    free(w);
    st_close(&s);
}

static void set_r3(cJSON *j) { cJSON_ReplaceItemInObject(j, "r", cJSON_CreateNumber(3)); }
static void set_r0(cJSON *j) { cJSON_ReplaceItemInObject(j, "r", cJSON_CreateNumber(0)); }
static void set_dora(cJSON *j) { cJSON_ReplaceItemInObject(j, "use_dora", cJSON_CreateTrue()); }
static void set_foo(cJSON *j) {
    cJSON *a = cJSON_CreateArray();
    cJSON_AddItemToArray(a, cJSON_CreateString("q_proj"));
    cJSON_AddItemToArray(a, cJSON_CreateString("foo_proj"));
    cJSON_ReplaceItemInObject(j, "target_modules", a);
}
static void set_regex(cJSON *j) {
    cJSON_ReplaceItemInObject(j, "target_modules", cJSON_CreateString(".*_proj"));
}
static void set_layers(cJSON *j) {
    cJSON *a = cJSON_CreateArray();
    cJSON_AddItemToArray(a, cJSON_CreateNumber(0));
    cJSON_ReplaceItemInObject(j, "layers_to_transform", a);
}

/* Applying dir (an adapter) to base fails with a message holding each of
 * the needles. */
static void expect_refused(const char *base, const char *dir, const char *n1, const char *n2) {
    moe_err err = {{0}};
    moe_model *m = NULL;
    moe_lora *l = NULL;
    CHECK_MSG(moe_model_load(&m, base, &err) == 0, "%s", err.msg);
    if (!m) return;
    int rc = moe_lora_apply(m, dir, &l, &err);
    CHECK_MSG(rc == -1 && l == NULL, "%s: accepted", dir);
    if (rc == -1) {
        CHECK_STR_CONTAINS(err.msg, n1);
        if (n2) CHECK_STR_CONTAINS(err.msg, n2);
    }
    moe_lora_free(l);
    moe_model_free(m);
}

TEST(lora_bad_adapters) {
    char base[600], d[700];
    snprintf(base, sizeof base, "%s/lora/mixtral/base", test_fixtures());
    const char *tmp = test_tmpdir();
    const char *qa = "base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight";
    const char *eb = "base_model.model.model.layers.0.mlp.experts.base_layer.lora_B.weight";

    snprintf(d, sizeof d, "%s/r3", tmp);
    make_adapter(d, set_r3, NULL, NULL, NULL);
    expect_refused(base, d, "q_proj.lora_A.weight has shape [2, 32], expected [3, 32]", "r = 3");

    snprintf(d, sizeof d, "%s/r0", tmp);
    make_adapter(d, set_r0, NULL, NULL, NULL);
    expect_refused(base, d, "adapter_config.json: r must be an integer", NULL);

    snprintf(d, sizeof d, "%s/missing", tmp);
    make_adapter(d, NULL, qa, NULL, NULL);
    expect_refused(base, d, "adapter_model.safetensors: no tensor", qa);

    snprintf(d, sizeof d, "%s/wide", tmp);
    make_adapter(d, NULL, NULL, eb, NULL);
    expect_refused(base, d, eb, "has shape [32, 9], expected [32, 8]");

    snprintf(d, sizeof d, "%s/extra", tmp);
    make_adapter(d, NULL, NULL, NULL, "base_model.model.lm_head.lora_A.weight");
    expect_refused(base, d, "lm_head.lora_A.weight is not one of adapter_config.json's targets",
                   NULL);

    snprintf(d, sizeof d, "%s/foo", tmp);
    make_adapter(d, set_foo, NULL, NULL, NULL);
    expect_refused(base, d, "target_modules entry foo_proj is not a target", NULL);

    snprintf(d, sizeof d, "%s/regex", tmp);
    make_adapter(d, set_regex, NULL, NULL, NULL);
    expect_refused(base, d, "target_modules is the pattern", NULL);

    snprintf(d, sizeof d, "%s/dora", tmp);
    make_adapter(d, set_dora, NULL, NULL, NULL);
    expect_refused(base, d, "\"use_dora\" is set: DoRA is not supported", NULL);

    snprintf(d, sizeof d, "%s/layers", tmp);
    make_adapter(d, set_layers, NULL, NULL, NULL);
    expect_refused(base, d, "layers_to_transform", NULL);

    snprintf(d, sizeof d, "%s/none", tmp);
    expect_refused(base, d, "adapter_config.json", NULL);

    /* another model's adapter: qwen3_moe's q_proj is [48][32] */
    snprintf(d, sizeof d, "%s/lora/qwen3_moe/adapter", test_fixtures());
    expect_refused(base, d, "self_attn.q_proj.lora_B.weight has shape [48, 3], expected [32, 3]",
                   NULL);

    /* an architecture peft lays out otherwise */
    char oss[600];
    snprintf(oss, sizeof oss, "%s/train/gpt_oss", test_fixtures());
    snprintf(d, sizeof d, "%s/lora/mixtral/adapter", test_fixtures());
    expect_refused(oss, d, "LoRA adapters are supported on mixtral", "not on gpt_oss");
}

TEST(lora_bad_targets) {
    unsigned bits = 0;
    moe_err err = {{0}};
    CHECK(lora_parse_targets("q_proj,experts", &bits, &err) == 0);
    CHECK_EQ_INT(bits, LORA_T_Q | LORA_T_GATE_UP | LORA_T_DOWN);
    CHECK(lora_parse_targets("q_proj,w1", &bits, &err) == -1);
    CHECK_STR_CONTAINS(err.msg, "'w1' is not one of");
    CHECK(lora_parse_targets("", &bits, &err) == -1);
    CHECK_STR_CONTAINS(err.msg, "empty");
}
