# arms.sh - sourced after common.sh: the configurations ("arms") the router
# and baseline comparison trains (experiments/routers.sh), each one model
# config plus its `moe train` flags. All use the budget of common.sh; the
# MoE arms have 8 x 256 (or 16 x 128) FFN width a layer in total.
#
#   dense      dense SwiGLU FFN 512: equal ACTIVE parameters to top-2 of 8 x 256
#   dense4x    dense SwiGLU FFN 2048: equal TOTAL parameters to 8 x 256
#   top2       softmax top-2, weights renormalized (Mixtral; GShard's gate
#              without its random second expert), aux 0.01 + z 0.001
#   switch     Switch Transformer: softmax top-1 with the weight p_i (not
#              renormalized, so the LM loss trains the router), capacity
#              factor 1.25 with dropping in training (a dropped token skips
#              the FFN through the residual), aux 0.01, no z-loss;
#              active width 256
#   hash       Hash layers: expert = hash(token id) mod 8, weight 1, top-1,
#              nothing learned; active width 256
#   fgshared   DeepSeekMoE: 15 routed experts of 128, top-3, + 1 shared
#              expert of 128 (Qwen2-MoE layout and gate); active width 512,
#              total 2048, aux 0.01 + z 0.001
#   ec         expert choice, capacity factor 1 (each expert takes
#              N x 2 / 8 tokens), aux 0.01 + z 0.001
#   noisy      noisy top-2 (Shazeer et al.): learned softplus noise scale,
#              noise 1.0, aux 0.01 + z 0.001
#   bias       auxiliary-loss-free balancing (DeepSeek-V3): sigmoid scores,
#              a per-expert selection bias moved by 0.001 a step, no aux, no z
#   nobal      softmax top-2 with no balancing loss at all
#   e4 e16 e32 top2 with 4, 16 or 32 experts of 256 (the number of experts
#              at equal active width; e8 is top2)
#   cf050 cf100 cf125 cf200
#              top2 with a capacity factor of 0.5, 1.0, 1.25 or 2.0: at most
#              F x N x 2 / 8 pairs an expert per batch of N tokens, the rest
#              dropped in training (the token keeps its residual)
#   mod        Mixture-of-Depths at the FLOPs of `dense`: 8 layers (dense
#              FFN 512), every one a MoD layer at capacity 0.5 (half of each
#              sequence's tokens go through it in training), router BCE 0.01
#   modmoe     the same at the FLOPs of `top2`: 8 layers of top-2 of 8 x 256,
#              every one MoD at capacity 0.5
#   mododd     MoD interleaved with whole layers, as the paper does, at the
#              FLOPs of `dense`: 6 dense layers, the odd ones (1, 3, 5) MoD at
#              capacity 0.333 (43 of 128 tokens: 3 + 3 x 43/128 = 4.01 layers)
#
# Evaluation is always dropless and noise-free (moe train's eval mode); a
# MoD layer takes the tokens whose router logit is above 0 there (the causal
# rule inference uses).
ARMS_ALL="dense top2 switch dense4x fgshared hash bias ec noisy nobal e4 e16 e32 cf050 cf100 cf125 cf200 mod modmoe mododd"

# arm ARM: writes ARM's config.json under EXP_DIR/cfg and sets ARM_CFG and
# the array ARM_FLAGS; fails on an unknown name
arm() {
    local c=$EXP_DIR/cfg/$1.json
    ARM_CFG=$c
    case $1 in
    dense) config_qwen2 "$c" 0 2 256 256 512; ARM_FLAGS=(--aux 0 --z 0) ;;
    dense4x) config_qwen2 "$c" 0 2 256 256 2048; ARM_FLAGS=(--aux 0 --z 0) ;;
    top2) config_mixtral "$c" 8 2 256; ARM_FLAGS=(--aux 0.01 --z 0.001) ;;
    switch)
        config_mixtral "$c" 8 1 256 '{"norm_topk": false, "capacity_factor": 1.25}'
        ARM_FLAGS=(--aux 0.01 --z 0)
        ;;
    hash) config_mixtral "$c" 8 1 256 '{"router": "hash"}'; ARM_FLAGS=(--aux 0 --z 0) ;;
    fgshared) config_qwen2 "$c" 15 3 128 128 512; ARM_FLAGS=(--aux 0.01 --z 0.001) ;;
    ec)
        config_mixtral "$c" 8 2 256 '{"router": "expert_choice", "capacity_factor": 1.0}'
        ARM_FLAGS=(--aux 0.01 --z 0.001)
        ;;
    noisy) config_mixtral "$c" 8 2 256 '{"noise": 1.0}'; ARM_FLAGS=(--aux 0.01 --z 0.001) ;;
    bias)
        config_mixtral "$c" 8 2 256 '{"score": "sigmoid", "select_bias": true}'
        ARM_FLAGS=(--aux 0 --z 0 --bias-rate 0.001)
        ;;
    nobal) config_mixtral "$c" 8 2 256; ARM_FLAGS=(--aux 0 --z 0) ;;
    e4 | e16 | e32) config_mixtral "$c" "${1#e}" 2 256; ARM_FLAGS=(--aux 0.01 --z 0.001) ;;
    cf050 | cf100 | cf125 | cf200)
        local f=${1#cf}
        config_mixtral "$c" 8 2 256 "{\"capacity_factor\": ${f:0:1}.${f:1}}"
        ARM_FLAGS=(--aux 0.01 --z 0.001)
        ;;
    mod)
        LAYERS=8 config_qwen2 "$c" 0 2 256 256 512 '{"mod": {"capacity": 0.5, "layers": "all"}}'
        ARM_FLAGS=(--aux 0 --z 0 --mod-aux 0.01)
        ;;
    modmoe)
        LAYERS=8 config_mixtral "$c" 8 2 256 '{"mod": {"capacity": 0.5, "layers": "all"}}'
        ARM_FLAGS=(--aux 0.01 --z 0.001 --mod-aux 0.01)
        ;;
    mododd)
        LAYERS=6 config_qwen2 "$c" 0 2 256 256 512 '{"mod": {"capacity": 0.333, "layers": "odd"}}'
        ARM_FLAGS=(--aux 0 --z 0 --mod-aux 0.01)
        ;;
    *) die "unknown arm '$1' (known: $ARMS_ALL)" ;;
    esac
}
