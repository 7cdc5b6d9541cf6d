#!/usr/bin/env bash
# c_routing_ablation.sh - experiment c: routers and balancing on one budget
# (8 experts of 256 = 2048 FFN width per layer in total, the same tokens
# and seeds). Top-2 (active width 512), softmax unless said:
#   nobal      no balancing loss at all (--aux 0 --z 0)
#   aux        Switch/GShard load-balancing loss only (--aux 0.01 --z 0)
#   e8k2       aux + router z-loss (--aux 0.01 --z 0.001)  [the shared baseline]
#   bias       aux-loss-free: sigmoid scores + selection bias moved by
#              --bias-rate 0.001 (DeepSeek-V3's rate), no aux, no z
#   bias01     the same with --bias-rate 0.01 (a run of 400 steps moves a
#              bias by at most 400 x rate)
#   noisy      noisy top-k (Shazeer et al.): learned softplus noise scale,
#              noise 1.0, aux + z
#   ec         expert choice, capacity factor 1 (each expert takes
#              N x 2 / 8 tokens), aux + z
# Top-1 (active width 256, the DeepSeekMoE paper's Hash/Switch rows):
#   hash       expert = hash(token id) mod 8, nothing learned
#   top1       softmax top-1, aux + z, weight = the router probability p_i
#              as in Switch ("moe": {"norm_topk": false}). The Mixtral
#              layout's default renormalizes it to exactly 1, which leaves
#              the router no gradient from the LM loss (docs/TRAINING.md);
#              the top1 runs in docs/RESULTS.md were made that way (remove
#              EXP_DIR/runs/top1-s* to rerun them)
# Fine-grained + shared (DeepSeekMoE style, Qwen2-MoE layout, same
# attention): 15 routed experts of 128, top-3, + 1 shared expert of 128
# every token uses (its sigmoid gate is Qwen2-MoE's): active width
# 4 x 128 = 512 and total 16 x 128 = 2048, both equal to the baseline's.
#   fgshared   aux + z
# ~9 runs a seed, 15-17 minutes a seed with one thread. SEEDS="1 2" for a
# second seed (e8k2-s2 is experiment a's).
#
#   BUILD=build experiments/c_routing_ablation.sh  (after experiments/prep.sh)
#   BUILD=build SEEDS="1 2" experiments/c_routing_ablation.sh
cd "$(dirname "$0")/.."
. experiments/common.sh
need_prep
C=$EXP_DIR/cfg
config_mixtral "$C/e8k2.json" 8 2 256
config_mixtral "$C/bias.json" 8 2 256 '{"score": "sigmoid", "select_bias": true}'
config_mixtral "$C/noisy.json" 8 2 256 '{"noise": 1.0}'
config_mixtral "$C/ec.json" 8 2 256 '{"router": "expert_choice", "capacity_factor": 1.0}'
config_mixtral "$C/hash.json" 8 1 256 '{"router": "hash"}'
config_mixtral "$C/top1.json" 8 1 256 '{"norm_topk": false}'
config_qwen2 "$C/fgshared.json" 15 3 128 128 512
for s in ${SEEDS:-1}; do
    run_base "$s"
    train_run "nobal-s$s" "$C/e8k2.json" "$s" --aux 0 --z 0
    train_run "aux-s$s" "$C/e8k2.json" "$s" --aux 0.01 --z 0
    train_run "bias-s$s" "$C/bias.json" "$s" --aux 0 --z 0 --bias-rate 0.001
    train_run "bias01-s$s" "$C/bias.json" "$s" --aux 0 --z 0 --bias-rate 0.01
    train_run "noisy-s$s" "$C/noisy.json" "$s" --aux 0.01 --z 0.001
    train_run "ec-s$s" "$C/ec.json" "$s" --aux 0.01 --z 0.001
    train_run "hash-s$s" "$C/hash.json" "$s" --aux 0 --z 0
    train_run "top1-s$s" "$C/top1.json" "$s" --aux 0.01 --z 0.001
    train_run "fgshared-s$s" "$C/fgshared.json" "$s" --aux 0.01 --z 0.001
done
