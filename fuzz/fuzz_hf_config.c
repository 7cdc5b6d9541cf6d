/*
 * fuzz_hf_config.c - libFuzzer target for config.json parsing
 * (src/formats/hf_config.c, hf_config_validate.c). The input is the JSON
 * text. An accepted config must validate, be written back by
 * hf_config_write (or be of a layout it refuses by name), and that file must
 * parse to the same shape.
 */
#include "formats/hf_config.h"
#include "fuzz_util.h"

static void same(const moe_config *a, const moe_config *b) {
    if (a->arch != b->arch || a->vocab != b->vocab || a->dim != b->dim || a->n_layers != b->n_layers ||
        a->n_heads != b->n_heads || a->n_kv_heads != b->n_kv_heads || a->head_dim != b->head_dim ||
        a->qk_norm != b->qk_norm || a->qkv_bias != b->qkv_bias ||
        a->tied_embeddings != b->tied_embeddings || a->sliding_window != b->sliding_window)
        fuzz_die("round trip", "model shape differs");
    for (int i = 0; i < a->n_layers && i < MOE_MAX_LAYERS; i++) {
        const moe_layer_config *x = &a->layer[i], *y = &b->layer[i];
        if (x->moe != y->moe || x->ffn_dim != y->ffn_dim || x->n_experts != y->n_experts ||
            x->top_k != y->top_k || x->expert_dim != y->expert_dim || x->n_shared != y->n_shared ||
            x->shared_dim != y->shared_dim || x->score != y->score || x->kind != y->kind ||
            x->norm_topk != y->norm_topk)
            fuzz_die("round trip", "a layer differs");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *copy = malloc(size ? size : 1); /* exactly sized: ASan sees an overread */
    if (size) memcpy(copy, data, size);
    static moe_config cfg, back;
    moe_err err = {{0}};
    int rc = hf_config_parse(&cfg, copy, size, "fuzz.json", &err);
    free(copy);
    if (rc != 0) {
        fuzz_rejected("hf_config_parse", err.msg);
        return 0;
    }
    if (moe_config_validate(&cfg, "fuzz.json", &err) != 0) fuzz_die("accepted but invalid", err.msg);
    const char *path = fuzz_path("config.json");
    if (hf_config_write(&cfg, path, "float32", &err) != 0) {
        /* layouts that cannot be written back yet say so by name (gpt_oss) */
        if (strstr(err.msg, "config.json is not supported")) return 0;
        fuzz_die("hf_config_write", err.msg);
    }
    if (hf_config_load(&back, fuzz_dir(), &err) != 0) fuzz_die("re-read", err.msg);
    same(&cfg, &back);
    return 0;
}
