/*
 * cmd_info.c - `moe info MODEL`: what a model is (architecture, sizes,
 * heads, experts per layer), how big (total and active parameters, bytes),
 * and what it will cost in memory to run.
 */
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"

static const char *arch_name(moe_arch a) {
    switch (a) {
    case MOE_ARCH_MIXTRAL: return "mixtral";
    case MOE_ARCH_QWEN2_MOE: return "qwen2_moe";
    case MOE_ARCH_QWEN3_MOE: return "qwen3_moe";
    case MOE_ARCH_OLMOE: return "olmoe";
    case MOE_ARCH_GPT_OSS: return "gpt_oss";
    case MOE_ARCH_QWEN3_NEXT: return "qwen3_next";
    case MOE_ARCH_QWEN3_5_MOE: return "qwen3_5_moe";
    case MOE_ARCH_DEEPSEEK_V2: return "deepseek_v2";
    case MOE_ARCH_DEEPSEEK_V3: return "deepseek_v3";
    case MOE_ARCH_GLM4_MOE: return "glm4_moe";
    }
    return "?";
}

static const char *qknorm_name(moe_qknorm q) {
    switch (q) {
    case MOE_QKNORM_NONE: return "none";
    case MOE_QKNORM_HEAD: return "per head";
    case MOE_QKNORM_FULL: return "full projection";
    }
    return "?";
}

static const char *route_name(moe_route_kind k) {
    switch (k) {
    case MOE_ROUTE_TOKEN_CHOICE: return "token choice";
    case MOE_ROUTE_EXPERT_CHOICE: return "expert choice";
    case MOE_ROUTE_HASH: return "hash";
    }
    return "?";
}

/* One line describing a layer's FFN; layers with equal lines are grouped. */
static void ffn_text(const moe_layer_config *l, char *buf, size_t n) {
    if (!l->moe) {
        snprintf(buf, n, "dense FFN %d", l->ffn_dim);
        return;
    }
    int o = snprintf(buf, n, "MoE %d experts, top-%d, expert FFN %d, %s, %s%s", l->n_experts,
                     l->top_k, l->expert_dim,
                     l->score == MOE_SCORE_SIGMOID        ? "sigmoid"
                     : l->score == MOE_SCORE_TOPK_SOFTMAX ? "softmax over the top-k"
                                                          : "softmax",
                     route_name(l->kind), l->norm_topk ? ", renormalized top-k" : "");
    if (o >= 0 && (size_t)o < n && l->router_bias)
        o += snprintf(buf + o, n - (size_t)o, ", router bias");
    if (o >= 0 && (size_t)o < n && l->expert_bias)
        o += snprintf(buf + o, n - (size_t)o, ", expert biases");
    if (o >= 0 && (size_t)o < n && l->act == MOE_ACT_OSS_GLU)
        o += snprintf(buf + o, n - (size_t)o, ", clamped SwiGLU (alpha %g, limit %g)",
                      (double)l->act_alpha, (double)l->act_limit);
    if (o >= 0 && (size_t)o < n && l->full_attention)
        o += snprintf(buf + o, n - (size_t)o, ", full attention");
    if (o < 0 || (size_t)o >= n) return;
    if (l->n_shared)
        o += snprintf(buf + o, n - (size_t)o, ", %d shared (FFN %d%s)", l->n_shared, l->shared_dim,
                      l->shared_gate ? ", sigmoid gate" : "");
    if (o >= 0 && (size_t)o < n && l->routed_scale != 1.0f)
        o += snprintf(buf + o, n - (size_t)o, ", scale %g", (double)l->routed_scale);
    if (o >= 0 && (size_t)o < n && l->select_bias)
        o += snprintf(buf + o, n - (size_t)o, ", selection bias");
    if (o >= 0 && (size_t)o < n && l->group != MOE_GROUP_NONE)
        o += snprintf(buf + o, n - (size_t)o, ", best %d of %d groups (by %s)", l->topk_group,
                      l->n_group, l->group == MOE_GROUP_MAX ? "best expert" : "sum of best two");
    if (o >= 0 && (size_t)o < n && l->noise > 0)
        o += snprintf(buf + o, n - (size_t)o, ", noisy top-k (x%g, training only)", (double)l->noise);
    if (o >= 0 && (size_t)o < n && l->capacity_factor > 0)
        snprintf(buf + o, n - (size_t)o, ", capacity %g", (double)l->capacity_factor);
}

int cmd_info(int argc, char **argv) {
    int json = 0;
    const arg_opt opts[] = {
        {"--json", NULL, ARG_FLAG, &json, 0, 0, 0, NULL, "print one JSON object instead of text"},
    };
    const arg_cmd c = {"info", "MODEL [--json]",
                       "Describe a model: architecture, layers, dimensions, heads, experts and\n"
                       "top-k per layer, total and active parameters, dtypes, memory.",
                       "Active parameters are those one token touches (shared weights plus top-k\n"
                       "experts per layer); active bytes are what one decode step reads.",
                       opts, 1, 1, 1, "MODEL"};
    const char *pos[1];
    int np;
    int r = args_parse(&c, argc, argv, pos, &np);
    if (r != ARGS_OK) return args_exit(r);

    moe_model *m;
    /* info reads no weight: map them rather than read them all in */
    setenv("MOE_LOAD", "mmap", 0);
    if (cli_load_model("info", pos[0], &m)) return 1;
    const moe_config *cfg = moe_model_config(m);
    moe_model_stats st;
    moe_model_stats_get(m, &st);
    /* f32 K and V per position per attention layer (what the session allocates;
     * linear-attention layers keep a fixed-size state instead) */
    int n_lin = 0;
    for (int i = 0; i < cfg->n_layers; i++) n_lin += cfg->layer[i].linear_attn;
    int64_t kv_per_tok = (int64_t)2 * (cfg->n_layers - n_lin) * cfg->n_kv_heads * cfg->head_dim * 4;
    /* latent attention caches the latent and the rotary key: against the keys
     * and values it stands for (H x (Dn + Dr) + H x Dv floats) */
    int64_t kv_full_per_tok = kv_per_tok;
    if (cfg->kv_lora_rank > 0) {
        kv_per_tok = (int64_t)(cfg->n_layers - n_lin) * (cfg->kv_lora_rank + cfg->qk_rope_dim) * 4;
        kv_full_per_tok = (int64_t)(cfg->n_layers - n_lin) * cfg->n_heads *
                          (cfg->head_dim + cfg->v_head_dim) * 4;
    }
    int64_t total_experts = 0;
    for (int i = 0; i < cfg->n_layers; i++)
        if (cfg->layer[i].moe) total_experts += cfg->layer[i].n_experts;

    if (json) {
        printf("{\"path\": ");
        cli_json_str(stdout, pos[0]);
        printf(", \"model_type\": \"%s\", \"vocab\": %d, \"dim\": %d, "
               "\"layers\": %d, \"heads\": %d, \"kv_heads\": %d, \"head_dim\": %d, "
               "\"max_pos\": %d, \"rope_theta\": %g, \"qk_norm\": \"%s\", \"experts_total\": %lld, "
               "\"params_total\": %lld, \"params_active\": %lld, \"bytes_total\": %lld, "
               "\"bytes_active\": %lld, \"kv_bytes_per_token\": %lld, "
               "\"kv_bytes_per_token_full\": %lld, \"dtypes\": \"%s\", "
               "\"vision_tower\": %s}\n",
               arch_name(cfg->arch), cfg->vocab, cfg->dim, cfg->n_layers, cfg->n_heads,
               cfg->n_kv_heads, cfg->head_dim, cfg->max_pos, (double)cfg->rope_theta,
               qknorm_name(cfg->qk_norm), (long long)total_experts, (long long)st.params_total,
               (long long)st.params_active, (long long)st.bytes_total, (long long)st.bytes_active,
               (long long)kv_per_tok, (long long)kv_full_per_tok, st.dtypes, cfg->vision_tower ? "\"not loaded\"" : "null");
        moe_model_free(m);
        return 0;
    }

    char b1[32], b2[32], b3[32];
    printf("model         %s\n", pos[0]);
    printf("architecture  %s\n", arch_name(cfg->arch));
    if (cfg->vision_tower)
        printf("vision tower  in the checkpoint, not loaded: the text model runs alone\n");
    printf("layers        %d\n", cfg->n_layers);
    printf("dim           %d (vocab %d, max positions %d)\n", cfg->dim, cfg->vocab, cfg->max_pos);
    printf("attention     %d heads, %d kv heads, head dim %d, rope theta %g, qk-norm %s%s%s\n",
           cfg->n_heads, cfg->n_kv_heads, cfg->head_dim, (double)cfg->rope_theta,
           qknorm_name(cfg->qk_norm), cfg->qkv_bias ? ", qkv bias" : "",
           cfg->o_bias ? ", o bias" : "");
    if (cfg->kv_lora_rank > 0) {
        char q[48] = "q_proj";
        if (cfg->q_lora_rank) snprintf(q, sizeof q, "q through rank %d", cfg->q_lora_rank);
        printf("latent attn   %s, kv latent %d, head %d non-rotary + %d rotary (%s), "
               "value %d, softmax scale %g\n", q, cfg->kv_lora_rank, cfg->qk_nope_dim,
               cfg->qk_rope_dim, cfg->rope_interleave ? "interleaved pairs" : "two halves",
               cfg->v_head_dim, (double)cfg->attn_scale);
    }
    if (cfg->n_mtp_layers > 0)
        printf("mtp layers    %d multi-token-prediction layer%s (num_nextn_predict_layers): "
               "not loaded, their tensors are skipped\n",
               cfg->n_mtp_layers, cfg->n_mtp_layers == 1 ? "" : "s");
    if (cfg->sliding_window > 0) {
        int full = 0;
        for (int i = 0; i < cfg->n_layers; i++) full += cfg->layer[i].full_attention;
        if (full) printf("window        %d (on %d of %d layers; the others full attention)\n",
                         cfg->sliding_window, cfg->n_layers - full, cfg->n_layers);
        else printf("window        %d\n", cfg->sliding_window);
    }
    if (cfg->attn_sinks) printf("sinks         a learned logit per head in each softmax\n");
    if (cfg->attn_out_gate || (cfg->rope_dim && !cfg->kv_lora_rank) || cfg->norm_offset)
        printf("attn extras   %s%s%d of %d dims rotated\n",
               cfg->attn_out_gate ? "sigmoid output gate, " : "",
               cfg->norm_offset ? "zero-centred norms (1 + w), " : "",
               cfg->rope_dim ? cfg->rope_dim : cfg->head_dim, cfg->head_dim);
    if (n_lin) {
        printf("linear attn   %d of %d layers (", n_lin, cfg->n_layers);
        for (int i = 0, first = 1; i < cfg->n_layers; i++)
            if (cfg->layer[i].linear_attn) printf("%s%d", first ? "" : " ", i), first = 0;
        printf("): Gated DeltaNet, %d key heads x %d, %d value heads x %d, conv kernel %d\n",
               cfg->lin_k_heads, cfg->lin_k_dim, cfg->lin_v_heads, cfg->lin_v_dim, cfg->lin_conv);
    }
    if (cfg->rope_kind == MOE_ROPE_YARN)
        printf("rope          YaRN: factor %g, beta fast %g, beta slow %g, original context %d, "
               "attention factor %g%s\n", (double)cfg->rope_factor, (double)cfg->rope_beta_fast,
               (double)cfg->rope_beta_slow, cfg->rope_orig_max_pos, (double)cfg->rope_attn_factor,
               cfg->rope_truncate ? ", truncated range" : "");
    if (cfg->mod_capacity > 0) {
        int n_mod = 0;
        for (int i = 0; i < cfg->n_layers; i++) n_mod += cfg->layer[i].mod;
        printf("depth routing Mixture-of-Depths on %d of %d layers (", n_mod, cfg->n_layers);
        for (int i = 0, first = 1; i < cfg->n_layers; i++)
            if (cfg->layer[i].mod) printf("%s%d", first ? "" : " ", i), first = 0;
        printf("): capacity %g in training, router logit > 0 at inference\n",
               (double)cfg->mod_capacity);
    }
    if (cfg->clip_qkv > 0) printf("clip qkv      %g\n", (double)cfg->clip_qkv);
    printf("embeddings    %s, norm eps %g\n", cfg->tied_embeddings ? "tied" : "untied",
           (double)cfg->norm_eps);
    printf("ffn           ");
    for (int i = 0; i < cfg->n_layers;) {
        char t[256], u[256];
        ffn_text(&cfg->layer[i], t, sizeof t);
        int j = i + 1;
        while (j < cfg->n_layers && (ffn_text(&cfg->layer[j], u, sizeof u), !strcmp(t, u))) j++;
        if (i > 0) printf("              ");
        if (j - i == 1) printf("layer %d: %s\n", i, t);
        else printf("layers %d-%d: %s\n", i, j - 1, t);
        i = j;
    }
    printf("experts       %lld in total\n", (long long)total_experts);
    printf("parameters    %s total, %s active per token (%.1f%%)\n",
           cli_count(st.params_total, b1, sizeof b1), cli_count(st.params_active, b2, sizeof b2),
           st.params_total ? 100.0 * (double)st.params_active / (double)st.params_total : 0.0);
    printf("dtypes        %s\n", st.dtypes);
    printf("memory        weights %s, %s read per decoded token\n",
           cli_bytes(st.bytes_total, b1, sizeof b1), cli_bytes(st.bytes_active, b2, sizeof b2));
    printf("kv cache      %s per position, %s at %d positions\n",
           cli_bytes(kv_per_tok, b1, sizeof b1),
           cli_bytes(kv_per_tok * (cfg->max_pos < 4096 ? cfg->max_pos : 4096), b3, sizeof b3),
           cfg->max_pos < 4096 ? cfg->max_pos : 4096);
    if (cfg->kv_lora_rank > 0)
        printf("              latent + rotary key only: %s per position against %s for full "
               "keys and values (%.1fx smaller)\n", cli_bytes(kv_per_tok, b1, sizeof b1),
               cli_bytes(kv_full_per_tok, b2, sizeof b2),
               (double)kv_full_per_tok / (double)kv_per_tok);
    if (cfg->bos_id >= 0 || cfg->eos_id >= 0) {
        char bos[16] = "none", eos[16] = "none";
        if (cfg->bos_id >= 0) snprintf(bos, sizeof bos, "%d", cfg->bos_id);
        if (cfg->eos_id >= 0) snprintf(eos, sizeof eos, "%d", cfg->eos_id);
        printf("special ids   bos %s, eos %s\n", bos, eos);
    }
    moe_model_free(m);
    return 0;
}
