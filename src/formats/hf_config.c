/*
 * hf_config.c - config.json <-> moe_config for mixtral, qwen2_moe, qwen3_moe
 * and olmoe, with the semantics of transformers 5.23 (configuration_*.py and
 * modeling_*.py): a field absent from config.json takes that class's default,
 * and every switch that changes the computation is either mapped or refused.
 *
 * What each architecture means, as transformers computes it:
 *   mixtral    every layer MoE: num_local_experts (alias num_experts, which
 *              wins) x intermediate_size, top-k renormalized always; no bias;
 *              sliding_window (null = none) on every layer; head_dim 0/null
 *              = hidden / heads.
 *   qwen2_moe  layer i MoE iff i not in mlp_only_layers, num_experts > 0 and
 *              (i+1) % decoder_sparse_step == 0, else a dense MLP of
 *              intermediate_size; experts of moe_intermediate_size; one shared
 *              expert of shared_expert_intermediate_size gated by sigmoid;
 *              q/k/v bias = qkv_bias (default true), o without bias; sliding
 *              windows are per layer (layer_types) and refused unless uniform.
 *   qwen3_moe  the same layer rule, no shared expert, RMSNorm over each head
 *              of q and k, attention_bias gives q, k, v AND o a bias,
 *              use_sliding_window puts sliding_window on every layer;
 *              num_local_experts wins over num_experts.
 *   olmoe      every layer MoE: num_experts x intermediate_size; RMSNorm over
 *              the whole q and k projections; clip_qkv; attention_bias on
 *              q, k, v and o; sliding_window is never used.
 *   gpt_oss    hf_config_gpt_oss.c.
 *   qwen3_next qwen2_moe's feed-forward rule (shared expert, norm_topk_prob
 *              default true); attention and Gated DeltaNet layers in
 *              hf_config_qwen3_next.c.
 *   deepseek_v2, deepseek_v3 (kimi_k2), glm4_moe  hf_config_deepseek.c.
 *   qwen3_5_moe  its text model ("qwen3_5_moe_text", alone or as text_config):
 *              qwen3_next's layers, every one MoE with the shared expert, the
 *              top-k always renormalized; hf_config_qwen3_next.c.
 * RoPE: rope_scaling (if a non-empty object) else rope_parameters; rope_type
 * (or "type") must be "default"; rope_theta from there, else top level, else
 * the class default (mixtral 1e6, others 1e4).
 * Our own fields live under "moe": score, router, capacity_factor, noise,
 * routed_scaling_factor, select_bias, norm_topk, group, n_group, topk_group
 * (all MoE layers). group ("max": a group scores by its best expert, as
 * deepseek_v2's group_limited_greedy; "top2_sum": by the sum of its two best
 * selection scores, as deepseek_v3's noaux_tc) needs n_group and topk_group;
 * it gives other layouts the group-limited routing of deepseek. norm_topk
 * (true/false) overrides the layout's renormalization of the top-k weights:
 * mixtral always renormalizes, the others follow norm_topk_prob. It is
 * written back only where the layout cannot say it (mixtral without
 * renormalization); the others write it as norm_topk_prob. The writer is
 * hf_config_write.c.
 */
#include "formats/hf_config.h"
#include "formats/hf_config_impl.h"
#include "base/atomic.h"
#include "base/err.h"
#include "base/mapfile.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* config.json of real models is a few kB; parsed into a cJSON tree (up to
 * ~45 bytes of memory per byte), so 1 MiB bounds that at ~45 MiB. */
#define HF_MAX_CONFIG_BYTES ((size_t)1 << 20)

/* ------------------------------------------------------ per-class defaults */

static const hf_arch hf_archs[] = {
    {"mixtral", "MixtralForCausalLM", MOE_ARCH_MIXTRAL, 32000, 4096, 14336, 32, 32, 8, 131072,
     1e-5, 1e6, 1, 2, 8, 2, 0, 0},
    {"qwen2_moe", "Qwen2MoeForCausalLM", MOE_ARCH_QWEN2_MOE, 151936, 2048, 5632, 24, 16, 16,
     32768, 1e-6, 1e4, -1, -1, 60, 4, 1408, 5632},
    {"qwen3_moe", "Qwen3MoeForCausalLM", MOE_ARCH_QWEN3_MOE, 151936, 2048, 6144, 24, 32, 4, 32768,
     1e-6, 1e4, -1, -1, 128, 8, 768, 0},
    {"olmoe", "OlmoeForCausalLM", MOE_ARCH_OLMOE, 50304, 2048, 2048, 16, 16, 0, 4096, 1e-5, 1e4,
     -1, 50279, 64, 8, 0, 0},
    {"gpt_oss", "GptOssForCausalLM", MOE_ARCH_GPT_OSS, 201088, 2880, 2880, 36, 64, 8, 131072,
     1e-5, 150000, -1, -1, 128, 4, 0, 0},
    {"qwen3_next", "Qwen3NextForCausalLM", MOE_ARCH_QWEN3_NEXT, 151936, 2048, 5632, 48, 16, 2,
     32768, 1e-6, 1e4, -1, -1, 512, 10, 512, 512},
    {"qwen3_5_moe_text", "Qwen3_5MoeForCausalLM", MOE_ARCH_QWEN3_5_MOE, 248320, 2048, 512, 40, 16,
     2, 32768, 1e-6, 1e4, -1, -1, 256, 8, 512, 512},
    {"deepseek_v2", "DeepseekV2ForCausalLM", MOE_ARCH_DEEPSEEK_V2, 102400, 4096, 11008, 32, 32, 0,
     2048, 1e-6, 1e4, 1, 2, 64, -1, 1407, 0},
    {"deepseek_v3", "DeepseekV3ForCausalLM", MOE_ARCH_DEEPSEEK_V3, 129280, 7168, 18432, 61, 128,
     128, 4096, 1e-6, 1e4, 0, 1, 256, 8, 2048, 0},
    {"kimi_k2", "DeepseekV3ForCausalLM", MOE_ARCH_DEEPSEEK_V3, 129280, 7168, 18432, 61, 128, 128,
     4096, 1e-6, 1e4, 0, 1, 256, 8, 2048, 0},
    {"glm4_moe", "Glm4MoeForCausalLM", MOE_ARCH_GLM4_MOE, 151552, 4096, 10944, 46, 96, 8, 131072,
     1e-5, 1e4, -1, -1, 128, 8, 1408, 0},
};
#define HF_N_ARCHS ((int)(sizeof hf_archs / sizeof hf_archs[0]))

const hf_arch *hf_arch_of(moe_arch a) {
    for (int i = 0; i < HF_N_ARCHS; i++)
        if (hf_archs[i].arch == a) return &hf_archs[i];
    return NULL;
}

/* ------------------------------------------------------------ field access */

/* Present and not null. */
const cJSON *hf_get(const cJSON *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return v && !cJSON_IsNull(v) ? v : NULL;
}

int hf_has(const cJSON *obj, const char *key) {
    return cJSON_GetObjectItemCaseSensitive(obj, key) != NULL;
}

int hf_as_int(const hf_in *in, const char *key, const cJSON *v, int *out) {
    if (!cJSON_IsNumber(v))
        return moe_fail(in->err, "%s: field %s: wrong JSON type (expected an integer)", in->where,
                        key);
    double d = v->valuedouble;
    if (!(d >= INT_MIN && d <= INT_MAX))
        return moe_fail(in->err, "%s: field %s: %g out of range", in->where, key, d);
    if (floor(d) != d)
        return moe_fail(in->err, "%s: field %s: %g is not an integer", in->where, key, d);
    *out = (int)d;
    return 0;
}

/* Integer field; absent -> def. null is an error (transformers would crash). */
int hf_int(const hf_in *in, const char *key, int def, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(in->root, key);
    if (!v) {
        *out = def;
        return 0;
    }
    if (cJSON_IsNull(v)) return moe_fail(in->err, "%s: field %s: is null", in->where, key);
    return hf_as_int(in, key, v, out);
}

int hf_num(const hf_in *in, const cJSON *obj, const char *key, double def, double *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v) {
        *out = def;
        return 0;
    }
    if (!cJSON_IsNumber(v))
        return moe_fail(in->err, "%s: field %s: wrong JSON type (expected a number)", in->where,
                        key);
    if (!isfinite(v->valuedouble))
        return moe_fail(in->err, "%s: field %s: not finite", in->where, key);
    *out = v->valuedouble;
    return 0;
}

int hf_bool(const hf_in *in, const cJSON *obj, const char *key, int def, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v) {
        *out = def;
        return 0;
    }
    if (!cJSON_IsBool(v))
        return moe_fail(in->err, "%s: field %s: wrong JSON type (expected true/false)", in->where,
                        key);
    *out = cJSON_IsTrue(v) ? 1 : 0;
    return 0;
}

/* bos/eos: int, null (-1), or a list (its first element). */
static int hf_token_id(const hf_in *in, const char *key, int def, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(in->root, key);
    if (!v) {
        *out = def;
        return 0;
    }
    if (cJSON_IsArray(v)) v = v->child;
    if (!v || cJSON_IsNull(v)) {
        *out = -1;
        return 0;
    }
    if (hf_as_int(in, key, v, out)) return -1;
    if (*out < 0) return moe_fail(in->err, "%s: field %s: negative id %d", in->where, key, *out);
    return 0;
}

/* ------------------------------------------------------------------- RoPE */

static int hf_rope(const hf_in *in, const hf_arch *a, moe_config *cfg) {
    float *theta = &cfg->rope_theta;
    const cJSON *rp = hf_get(in->root, "rope_scaling");
    const char *src = "rope_scaling";
    if (rp && (!cJSON_IsObject(rp) || !rp->child)) {
        if (!cJSON_IsObject(rp))
            return moe_fail(in->err, "%s: field rope_scaling: wrong JSON type (expected an object)",
                            in->where);
        rp = NULL; /* {} is falsy in Python: rope_parameters is used */
    }
    if (!rp) {
        rp = hf_get(in->root, "rope_parameters");
        src = "rope_parameters";
        if (rp && !cJSON_IsObject(rp))
            return moe_fail(in->err, "%s: field rope_parameters: wrong JSON type (expected an "
                            "object)", in->where);
    }
    double t;
    if (hf_num(in, in->root, "rope_theta", a->theta, &t)) return -1;
    if (rp) {
        if (hf_has(rp, "full_attention") || hf_has(rp, "sliding_attention"))
            return moe_fail(in->err, "%s: field %s: per-layer-type RoPE is not supported",
                            in->where, src);
        const cJSON *ty = cJSON_GetObjectItemCaseSensitive(rp, "rope_type");
        if (!ty) ty = cJSON_GetObjectItemCaseSensitive(rp, "type");
        if (ty && !cJSON_IsString(ty))
            return moe_fail(in->err, "%s: field %s.rope_type: wrong JSON type (expected a string)",
                            in->where, src);
        int yarn_ok = a->arch == MOE_ARCH_GPT_OSS || hf_ds_arch(a->arch);
        int yarn = ty && !strcmp(ty->valuestring, "yarn") && yarn_ok;
        if (ty && strcmp(ty->valuestring, "default") && !yarn)
            return moe_fail(in->err, "%s: field %s: rope_type \"%.40s\" is not supported (only "
                            "\"default\"%s)", in->where, src, ty->valuestring,
                            yarn_ok ? " and \"yarn\"" : "");
        if (hf_num(in, rp, "rope_theta", t, &t)) return -1;
        if (yarn && hf_yarn(in, rp, src, cfg)) return -1;
    } else if (a->arch == MOE_ARCH_GPT_OSS && hf_yarn(in, NULL, "rope_parameters", cfg)) {
        return -1; /* GptOssConfig's default: YaRN */
    }
    if (!(t > 0 && t < 1e30))
        return moe_fail(in->err, "%s: field rope_theta: %g out of range", in->where, t);
    *theta = (float)t;
    return 0;
}

/* -------------------------------------------------------------- "moe" key */

/* The "moe" object into tpl; *norm_topk = moe.norm_topk (0/1), -1 when absent
 * (the layout decides). */
static int hf_moe_extras(const hf_in *in, moe_layer_config *tpl, int *norm_topk) {
    *norm_topk = -1;
    const cJSON *m = hf_get(in->root, "moe");
    if (!m) return 0;
    if (!cJSON_IsObject(m))
        return moe_fail(in->err, "%s: field moe: wrong JSON type (expected an object)", in->where);
    static const char *const known[] = {"score", "router", "capacity_factor", "noise",
                                        "routed_scaling_factor", "select_bias", "norm_topk",
                                        "group", "n_group", "topk_group", "mod"};
    for (const cJSON *c = m->child; c; c = c->next) {
        int ok = 0;
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) ok |= !strcmp(c->string, known[i]);
        if (!ok)
            return moe_fail(in->err, "%s: field moe.%s: unknown (known: score, router, "
                            "capacity_factor, noise, routed_scaling_factor, select_bias, "
                            "norm_topk, group, n_group, topk_group, mod)",
                            in->where, c->string);
    }
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, "score");
    if (v) {
        if (!cJSON_IsString(v))
            return moe_fail(in->err, "%s: field moe.score: wrong JSON type (expected a string)",
                            in->where);
        if (!strcmp(v->valuestring, "softmax")) tpl->score = MOE_SCORE_SOFTMAX;
        else if (!strcmp(v->valuestring, "sigmoid")) tpl->score = MOE_SCORE_SIGMOID;
        else return moe_fail(in->err, "%s: field moe.score: unknown value \"%.32s\" (softmax, "
                             "sigmoid)", in->where, v->valuestring);
    }
    v = cJSON_GetObjectItemCaseSensitive(m, "router");
    if (v) {
        if (!cJSON_IsString(v))
            return moe_fail(in->err, "%s: field moe.router: wrong JSON type (expected a string)",
                            in->where);
        if (!strcmp(v->valuestring, "token_choice")) tpl->kind = MOE_ROUTE_TOKEN_CHOICE;
        else if (!strcmp(v->valuestring, "expert_choice")) tpl->kind = MOE_ROUTE_EXPERT_CHOICE;
        else if (!strcmp(v->valuestring, "hash")) tpl->kind = MOE_ROUTE_HASH;
        else return moe_fail(in->err, "%s: field moe.router: unknown value \"%.32s\" "
                             "(token_choice, expert_choice, hash)", in->where, v->valuestring);
    }
    v = cJSON_GetObjectItemCaseSensitive(m, "group");
    if (v) {
        if (!cJSON_IsString(v))
            return moe_fail(in->err, "%s: field moe.group: wrong JSON type (expected a string)",
                            in->where);
        if (!strcmp(v->valuestring, "max")) tpl->group = MOE_GROUP_MAX;
        else if (!strcmp(v->valuestring, "top2_sum")) tpl->group = MOE_GROUP_TOP2_SUM;
        else return moe_fail(in->err, "%s: field moe.group: unknown value \"%.32s\" (max, "
                             "top2_sum)", in->where, v->valuestring);
    }
    double d;
    for (int i = 0; i < 2; i++) {
        const char *key = i ? "topk_group" : "n_group";
        int present = cJSON_GetObjectItemCaseSensitive(m, key) != NULL;
        if (present != (v != NULL))
            return moe_fail(in->err, "%s: field moe.%s: %s", in->where, key,
                            v ? "missing (moe.group needs n_group and topk_group)"
                              : "given without moe.group");
        if (!present) continue;
        if (hf_num(in, m, key, 0, &d)) return -1;
        if (d != (int)d || d < 1 || d > 1024)
            return moe_fail(in->err, "%s: field moe.%s: %g is not an integer in 1..1024",
                            in->where, key, d);
        *(i ? &tpl->topk_group : &tpl->n_group) = (int)d;
    }
    if (hf_num(in, m, "capacity_factor", 0, &d)) return -1;
    tpl->capacity_factor = (float)d;
    if (hf_num(in, m, "noise", 0, &d)) return -1;
    tpl->noise = (float)d;
    if (hf_num(in, m, "routed_scaling_factor", 1, &d)) return -1;
    tpl->routed_scale = (float)d;
    if (cJSON_GetObjectItemCaseSensitive(m, "norm_topk") &&
        hf_bool(in, m, "norm_topk", 0, norm_topk))
        return -1;
    return hf_bool(in, m, "select_bias", 0, &tpl->select_bias);
}

/* moe.mod (Mixture-of-Depths, docs/TRAINING.md): {"capacity": c in (0, 1],
 * "layers": "all" | "odd" | "even" | [layer indices]} ("layers" defaults to
 * "all"; "odd" is layers 1, 3, 5 ...: every other layer, the first one whole).
 * Sets cfg->mod_capacity and layer[i].mod; absent: no MoD layer. */
static int hf_mod(const hf_in *in, moe_config *cfg) {
    const cJSON *m = hf_get(in->root, "moe");
    const cJSON *d = m && cJSON_IsObject(m) ? hf_get(m, "mod") : NULL;
    if (!d) return 0;
    if (!cJSON_IsObject(d))
        return moe_fail(in->err, "%s: field moe.mod: wrong JSON type (expected an object with "
                        "capacity and layers)", in->where);
    for (const cJSON *c = d->child; c; c = c->next)
        if (strcmp(c->string, "capacity") && strcmp(c->string, "layers"))
            return moe_fail(in->err, "%s: field moe.mod.%s: unknown (known: capacity, layers)",
                            in->where, c->string);
    const cJSON *cap = hf_get(d, "capacity");
    if (!cap || !cJSON_IsNumber(cap))
        return moe_fail(in->err, "%s: field moe.mod.capacity: %s", in->where,
                        cap ? "wrong JSON type (expected a number)"
                            : "missing (the share of a sequence's tokens a MoD layer takes)");
    if (!(cap->valuedouble > 0 && cap->valuedouble <= 1))
        return moe_fail(in->err, "%s: field moe.mod.capacity: %g is not in (0, 1]", in->where,
                        cap->valuedouble);
    cfg->mod_capacity = (float)cap->valuedouble;
    const cJSON *ly = hf_get(d, "layers");
    for (int i = 0; i < cfg->n_layers; i++) cfg->layer[i].mod = 0;
    if (!ly || cJSON_IsString(ly)) {
        const char *k = ly ? ly->valuestring : "all";
        int every = !strcmp(k, "all"), odd = !strcmp(k, "odd"), even = !strcmp(k, "even");
        if (!every && !odd && !even)
            return moe_fail(in->err, "%s: field moe.mod.layers: unknown value \"%.32s\" (all, odd, "
                            "even, or a list of layer indices)", in->where, k);
        for (int i = 0; i < cfg->n_layers; i++) cfg->layer[i].mod = every || (i % 2 == 1) == odd;
    } else if (cJSON_IsArray(ly)) {
        for (const cJSON *c = ly->child; c; c = c->next) {
            int li;
            if (hf_as_int(in, "moe.mod.layers", c, &li)) return -1;
            if (li < 0 || li >= cfg->n_layers)
                return moe_fail(in->err, "%s: field moe.mod.layers: layer %d out of range (the "
                                "model has %d layers, 0..%d)", in->where, li, cfg->n_layers,
                                cfg->n_layers - 1);
            cfg->layer[li].mod = 1;
        }
    } else {
        return moe_fail(in->err, "%s: field moe.mod.layers: wrong JSON type (expected \"all\", "
                        "\"odd\", \"even\" or a list)", in->where);
    }
    int any = 0;
    for (int i = 0; i < cfg->n_layers; i++) any |= cfg->layer[i].mod;
    if (!any)
        return moe_fail(in->err, "%s: field moe.mod.layers: names no layer", in->where);
    return 0;
}

/* ---------------------------------------------------------------- parsing */

/* Positive integer field. */
static int hf_pos(const hf_in *in, const char *key, int def, int *out) {
    if (hf_int(in, key, def, out)) return -1;
    if (*out <= 0)
        return moe_fail(in->err, "%s: field %s: must be positive (got %d)", in->where, key, *out);
    return 0;
}

int hf_layer_types(const hf_in *in, int L, const char *const *names, int n, int *kind) {
    const cJSON *lt = hf_get(in->root, "layer_types");
    if (!lt) return 1;
    if (L < 0 || L > MOE_MAX_LAYERS) /* kind[] holds MOE_MAX_LAYERS */
        return moe_fail(in->err, "%s: field num_hidden_layers: %d layers (at most %d)", in->where,
                        L, MOE_MAX_LAYERS);
    if (!cJSON_IsArray(lt))
        return moe_fail(in->err, "%s: field layer_types: wrong JSON type (expected a list)",
                        in->where);
    if (cJSON_GetArraySize(lt) != L)
        return moe_fail(in->err, "%s: field layer_types: %d entries for %d layers", in->where,
                        cJSON_GetArraySize(lt), L);
    const cJSON *c = lt->child;
    for (int i = 0; i < L; i++, c = c->next) {
        if (!cJSON_IsString(c))
            return moe_fail(in->err, "%s: field layer_types[%d]: wrong JSON type (expected a "
                            "string)", in->where, i);
        int k = 0;
        while (k < n && strcmp(c->valuestring, names[k])) k++;
        if (k == n) /* every caller accepts two kinds: both are named */
            return moe_fail(in->err, "%s: field layer_types[%d]: unsupported layer type \"%.32s\" "
                            "(%s, %s)", in->where, i, c->valuestring, names[0], names[n - 1]);
        kind[i] = k;
    }
    return 0;
}

/* Sliding window of qwen2_moe: per layer (layer_types); we run one window
 * for all layers, so it must be all-or-nothing. */
static int hf_qwen2_sliding(const hf_in *in, moe_config *cfg) {
    int use, max_window, window = 0;
    if (hf_bool(in, in->root, "use_sliding_window", 0, &use)) return -1;
    if (hf_int(in, "max_window_layers", 28, &max_window)) return -1;
    if (use) {
        const cJSON *w = hf_get(in->root, "sliding_window");
        if (!w && !hf_has(in->root, "sliding_window")) window = 4096;
        else if (w && hf_as_int(in, "sliding_window", w, &window)) return -1;
    }
    int n_slide = 0, L = cfg->n_layers;
    static const char *const kinds[] = {"full_attention", "sliding_attention"};
    int kind[MOE_MAX_LAYERS];
    int rc = hf_layer_types(in, L, kinds, 2, kind);
    if (rc < 0) return -1;
    if (rc == 0) {
        for (int i = 0; i < L; i++) n_slide += kind[i];
    } else {
        for (int i = 0; i < L; i++) n_slide += ((i + 1) % 2) && i < max_window && use;
    }
    if (n_slide == 0) return 0;
    if (n_slide != L)
        return moe_fail(in->err, "%s: field use_sliding_window: a sliding window on some layers "
                        "only (%d of %d) is not supported", in->where, n_slide, L);
    if (window <= 0)
        return moe_fail(in->err, "%s: field sliding_window: %d is not a usable window", in->where,
                        window);
    cfg->sliding_window = window;
    return 0;
}

/* Which of num_experts / num_local_experts transformers ends up using. */
static int hf_experts(const hf_in *in, const hf_arch *a, int *E) {
    const char *first = "num_local_experts", *second = "num_experts";
    if (a->arch == MOE_ARCH_MIXTRAL || a->arch == MOE_ARCH_GPT_OSS)
        first = "num_experts", second = "num_local_experts"; /* attribute_map alias wins */
    if (a->arch == MOE_ARCH_QWEN2_MOE || a->arch == MOE_ARCH_QWEN3_NEXT ||
        a->arch == MOE_ARCH_QWEN3_5_MOE)
        first = second = "num_experts";
    const char *key = hf_has(in->root, first) ? first : second;
    if (hf_int(in, key, a->experts, E)) return -1;
    if (*E < 0) return moe_fail(in->err, "%s: field %s: negative (%d)", in->where, key, *E);
    if (*E == 0 && a->arch != MOE_ARCH_QWEN2_MOE && a->arch != MOE_ARCH_QWEN3_MOE &&
        a->arch != MOE_ARCH_QWEN3_NEXT)
        return moe_fail(in->err, "%s: field %s: must be positive (got 0)", in->where, key);
    return 0;
}

static int hf_parse_root(moe_config *cfg, const hf_in *in) {
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(in->root, "model_type");
    if (!mt) return moe_fail(in->err, "%s: missing required field model_type", in->where);
    if (!cJSON_IsString(mt))
        return moe_fail(in->err, "%s: field model_type: wrong JSON type (expected a string)",
                        in->where);
    const hf_arch *a = NULL;
    for (int i = 0; i < HF_N_ARCHS; i++)
        if (!strcmp(mt->valuestring, hf_archs[i].name)) a = &hf_archs[i];
    if (!a)
        return moe_fail(in->err, "%s: unknown model_type \"%.40s\" (supported: mixtral, qwen2_moe, "
                        "qwen3_moe, olmoe, gpt_oss, qwen3_next, qwen3_5_moe, deepseek_v2, "
                        "deepseek_v3, kimi_k2, glm4_moe)", in->where,
                        mt->valuestring);
    memset(cfg, 0, sizeof *cfg);
    cfg->arch = a->arch;
    snprintf(cfg->model_type, sizeof cfg->model_type, "%s", a->name);

    const cJSON *act = hf_get(in->root, "hidden_act");
    if (act && (!cJSON_IsString(act) || strcmp(act->valuestring, "silu")))
        return moe_fail(in->err, "%s: field hidden_act: only \"silu\" is supported", in->where);

    if (hf_pos(in, "vocab_size", a->vocab, &cfg->vocab)) return -1;
    if (hf_pos(in, "hidden_size", a->dim, &cfg->dim)) return -1;
    if (hf_pos(in, "num_hidden_layers", a->layers, &cfg->n_layers)) return -1;
    if (cfg->n_layers > MOE_MAX_LAYERS)
        return moe_fail(in->err, "%s: field num_hidden_layers: %d, more than the %d supported",
                        in->where, cfg->n_layers, MOE_MAX_LAYERS);
    if (hf_pos(in, "num_attention_heads", a->heads, &cfg->n_heads)) return -1;
    if (hf_get(in->root, "num_key_value_heads")) {
        if (hf_pos(in, "num_key_value_heads", 0, &cfg->n_kv_heads)) return -1;
    } else if (!a->kv_heads) {
        cfg->n_kv_heads = cfg->n_heads; /* olmoe: absent or null = heads */
    } else if (hf_has(in->root, "num_key_value_heads")) {
        return moe_fail(in->err, "%s: field num_key_value_heads: is null", in->where);
    } else {
        cfg->n_kv_heads = a->kv_heads;
    }
    const cJSON *hd = hf_get(in->root, "head_dim");
    cfg->head_dim = cfg->dim / cfg->n_heads;
    if (a->arch == MOE_ARCH_GPT_OSS && !hf_has(in->root, "head_dim")) cfg->head_dim = 64;
    if (hf_lin_arch(a->arch) && !hf_has(in->root, "head_dim")) cfg->head_dim = 256;
    if (hd) {
        int h;
        if (hf_as_int(in, "head_dim", hd, &h)) return -1;
        if (h < 0 || (h == 0 && a->arch != MOE_ARCH_MIXTRAL && a->arch != MOE_ARCH_GPT_OSS))
            return moe_fail(in->err, "%s: field head_dim: must be positive (got %d)", in->where, h);
        if (h > 0) cfg->head_dim = h; /* mixtral: `head_dim or hidden // heads` */
    }
    if (cfg->head_dim <= 0)
        return moe_fail(in->err, "%s: field hidden_size: %d smaller than num_attention_heads %d",
                        in->where, cfg->dim, cfg->n_heads);
    if (hf_pos(in, "max_position_embeddings", a->max_pos, &cfg->max_pos)) return -1;
    double eps;
    if (hf_num(in, in->root, "rms_norm_eps", a->eps, &eps)) return -1;
    if (!(eps > 0 && eps < 1))
        return moe_fail(in->err, "%s: field rms_norm_eps: %g out of range", in->where, eps);
    cfg->norm_eps = (float)eps;
    if (hf_rope(in, a, cfg)) return -1;
    if (hf_bool(in, in->root, "tie_word_embeddings", 0, &cfg->tied_embeddings)) return -1;
    if (a->arch == MOE_ARCH_GPT_OSS) { /* attention and feed-forward: hf_config_gpt_oss.c */
        if (hf_gpt_oss(in, cfg)) return -1;
        if (hf_token_id(in, "bos_token_id", a->bos, &cfg->bos_id)) return -1;
        if (hf_token_id(in, "eos_token_id", a->eos, &cfg->eos_id)) return -1;
        int E, inter;
        if (hf_experts(in, a, &E)) return -1;
        if (hf_pos(in, "intermediate_size", a->inter, &inter)) return -1;
        moe_layer_config *l0 = &cfg->layer[0];
        l0->n_experts = E;
        l0->expert_dim = inter;
        if (hf_pos(in, "num_experts_per_tok", a->top_k, &l0->top_k)) return -1;
        if (l0->top_k > E)
            return moe_fail(in->err, "%s: field num_experts_per_tok: %d more than the %d experts",
                            in->where, l0->top_k, E);
        for (int i = 1; i < cfg->n_layers; i++) {
            int full = cfg->layer[i].full_attention;
            cfg->layer[i] = *l0;
            cfg->layer[i].full_attention = full;
        }
        if (hf_mod(in, cfg)) return -1;
        return moe_config_validate(cfg, in->where, in->err);
    }
    if (hf_token_id(in, "bos_token_id", a->bos, &cfg->bos_id)) return -1;
    if (hf_token_id(in, "eos_token_id", a->eos, &cfg->eos_id)) return -1;
    if (hf_ds_arch(a->arch)) { /* attention and feed-forward: hf_config_deepseek.c */
        if (hf_deepseek(in, a, cfg)) return -1;
        if (hf_mod(in, cfg)) return -1;
        return moe_config_validate(cfg, in->where, in->err);
    }

    /* Attention switches. */
    int bias = 0;
    switch (a->arch) {
    case MOE_ARCH_MIXTRAL: {
        const cJSON *w = hf_get(in->root, "sliding_window");
        if (w) {
            if (hf_as_int(in, "sliding_window", w, &cfg->sliding_window)) return -1;
            if (cfg->sliding_window <= 0)
                return moe_fail(in->err, "%s: field sliding_window: must be positive or null "
                                "(got %d)", in->where, cfg->sliding_window);
        }
        break;
    }
    case MOE_ARCH_QWEN2_MOE:
        if (hf_bool(in, in->root, "qkv_bias", 1, &cfg->qkv_bias)) return -1;
        if (hf_qwen2_sliding(in, cfg)) return -1;
        break;
    case MOE_ARCH_QWEN3_MOE: {
        cfg->qk_norm = MOE_QKNORM_HEAD;
        if (hf_bool(in, in->root, "attention_bias", 0, &bias)) return -1;
        int use;
        if (hf_bool(in, in->root, "use_sliding_window", 0, &use)) return -1;
        const cJSON *w = hf_get(in->root, "sliding_window");
        if (use && (w || !hf_has(in->root, "sliding_window"))) {
            cfg->sliding_window = 4096;
            if (w && hf_as_int(in, "sliding_window", w, &cfg->sliding_window)) return -1;
            if (cfg->sliding_window <= 0)
                return moe_fail(in->err, "%s: field sliding_window: must be positive (got %d)",
                                in->where, cfg->sliding_window);
        }
        break;
    }
    case MOE_ARCH_GPT_OSS: /* handled above */
    case MOE_ARCH_DEEPSEEK_V2:
    case MOE_ARCH_DEEPSEEK_V3:
    case MOE_ARCH_GLM4_MOE: break;
    case MOE_ARCH_QWEN3_NEXT: /* hf_config_qwen3_next.c */
    case MOE_ARCH_QWEN3_5_MOE:
        if (hf_qwen3_next(in, cfg)) return -1;
        break;
    case MOE_ARCH_OLMOE: {
        cfg->qk_norm = MOE_QKNORM_FULL;
        if (hf_bool(in, in->root, "attention_bias", 0, &bias)) return -1;
        const cJSON *c = hf_get(in->root, "clip_qkv");
        if (c) {
            if (!cJSON_IsNumber(c))
                return moe_fail(in->err, "%s: field clip_qkv: wrong JSON type (expected a number)",
                                in->where);
            if (!(c->valuedouble > 0 && c->valuedouble < 3e38))
                return moe_fail(in->err, "%s: field clip_qkv: must be positive or null (got %g)",
                                in->where, c->valuedouble);
            cfg->clip_qkv = (float)c->valuedouble;
        }
        break;
    }
    }
    if (bias) cfg->qkv_bias = cfg->o_bias = 1;

    /* Feed-forward layers. */
    moe_layer_config moe = {.moe = 1, .score = MOE_SCORE_SOFTMAX, .routed_scale = 1.0f,
                            .kind = MOE_ROUTE_TOKEN_CHOICE};
    int E, inter = a->inter, q35 = a->arch == MOE_ARCH_QWEN3_5_MOE;
    if (hf_experts(in, a, &E)) return -1;
    if (!q35 && hf_pos(in, "intermediate_size", a->inter, &inter)) return -1; /* q35: no field */
    moe.n_experts = E;
    if (hf_pos(in, "num_experts_per_tok", a->top_k, &moe.top_k)) return -1;
    if (E > 0 && moe.top_k > E)
        return moe_fail(in->err, "%s: field num_experts_per_tok: %d more than the %d experts",
                        in->where, moe.top_k, E);
    int norm_override;
    if (hf_moe_extras(in, &moe, &norm_override)) return -1;
    if (a->arch == MOE_ARCH_MIXTRAL || a->arch == MOE_ARCH_OLMOE) {
        moe.expert_dim = inter;
        moe.norm_topk = 1;
        if (a->arch == MOE_ARCH_OLMOE && hf_bool(in, in->root, "norm_topk_prob", 0, &moe.norm_topk))
            return -1;
        if (norm_override >= 0) moe.norm_topk = norm_override;
        for (int i = 0; i < cfg->n_layers; i++) cfg->layer[i] = moe;
    } else {
        if (hf_pos(in, "moe_intermediate_size", a->moe_inter, &moe.expert_dim)) return -1;
        moe.norm_topk = 1; /* qwen3_5_moe's router always renormalizes; it has no such field */
        if (!q35 && hf_bool(in, in->root, "norm_topk_prob", a->arch == MOE_ARCH_QWEN3_NEXT,
                            &moe.norm_topk))
            return -1;
        if (norm_override >= 0) moe.norm_topk = norm_override;
        if (a->arch == MOE_ARCH_QWEN2_MOE || hf_lin_arch(a->arch)) {
            moe.n_shared = 1;
            moe.shared_gate = 1;
            if (hf_pos(in, "shared_expert_intermediate_size", a->shared_inter, &moe.shared_dim))
                return -1;
        }
        int step = 1; /* qwen3_5_moe: every layer MoE (no decoder_sparse_step, mlp_only_layers) */
        if (!q35 && hf_pos(in, "decoder_sparse_step", 1, &step)) return -1;
        const cJSON *only = q35 ? NULL : hf_get(in->root, "mlp_only_layers");
        if (only && !cJSON_IsArray(only))
            return moe_fail(in->err, "%s: field mlp_only_layers: wrong JSON type (expected a "
                            "list)", in->where);
        unsigned char dense[MOE_MAX_LAYERS] = {0};
        for (const cJSON *c = only ? only->child : NULL; c; c = c->next) {
            int li;
            if (hf_as_int(in, "mlp_only_layers", c, &li)) return -1;
            if (li >= 0 && li < cfg->n_layers) dense[li] = 1; /* others match no layer */
        }
        moe.ffn_dim = inter; /* kept so hf_config_write can give it back */
        for (int i = 0; i < cfg->n_layers; i++) {
            int lin = cfg->layer[i].linear_attn; /* set by hf_qwen3_next */
            if (!dense[i] && E > 0 && (i + 1) % step == 0) {
                cfg->layer[i] = moe;
            } else {
                cfg->layer[i] = (moe_layer_config){.moe = 0, .ffn_dim = inter, .routed_scale = 1.0f};
            }
            cfg->layer[i].linear_attn = lin;
        }
    }
    if (hf_mod(in, cfg)) return -1;
    return moe_config_validate(cfg, in->where, in->err);
}

/* Line and column of byte `pos` in json. */
static void hf_line_col(const char *json, size_t pos, int *line, int *col) {
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < pos; i++) {
        if (json[i] == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

int hf_config_parse(moe_config *cfg, const char *json, size_t len, const char *where,
                    moe_err *err) {
    if (!where) where = "config.json";
    if (!json) return moe_fail(err, "%s: no text", where);
    /* cJSON reads past a length-bounded buffer in some versions: give it a NUL. */
    char *txt = malloc(len + 1);
    if (!txt) return moe_fail(err, "%s: out of memory", where);
    memcpy(txt, json, len);
    txt[len] = 0;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(txt, len, &end, 0);
    int rc = -1;
    if (!root) {
        size_t pos = end && end >= txt && end <= txt + len ? (size_t)(end - txt) : len;
        int line, col;
        hf_line_col(txt, pos, &line, &col);
        moe_fail(err, "%s: not valid JSON (error at byte %zu, line %d column %d)", where, pos, line,
                 col);
        goto done;
    }
    for (const char *p = end; p && p < txt + len; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            moe_fail(err, "%s: not valid JSON (trailing text at byte %zu)", where,
                     (size_t)(p - txt));
            goto done;
        }
    }
    if (!cJSON_IsObject(root)) {
        moe_fail(err, "%s: not a JSON object", where);
        goto done;
    }
    hf_in in = {root, where, err};
    char text_where[600];
    int vision = 0;
    if (hf_qwen3_5_text(&in, &in, text_where, sizeof text_where, &vision)) goto done;
    rc = hf_parse_root(cfg, &in);
    if (rc == 0) cfg->vision_tower = vision;
done:
    cJSON_Delete(root);
    free(txt);
    return rc;
}

int hf_config_load(moe_config *cfg, const char *dir, moe_err *err) {
    char path[4096];
    if (snprintf(path, sizeof path, "%s/config.json", dir) >= (int)sizeof path)
        return moe_fail(err, "%s: path too long", dir);
    char *txt;
    size_t len;
    if (read_file(path, HF_MAX_CONFIG_BYTES, &txt, &len, err)) return -1;
    int rc = hf_config_parse(cfg, txt, len, path, err);
    free(txt);
    return rc;
}
