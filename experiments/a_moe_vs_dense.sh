#!/usr/bin/env bash
# a_moe_vs_dense.sh - experiment a: MoE vs dense at equal active parameters
# and equal tokens. Dense: a SwiGLU FFN of 512 per layer. MoE: 8 experts of
# 256, top-2 (active FFN width 2 x 256 = 512), softmax router, aux 0.01 +
# z 0.001. Seeds 1 and 2 each (the seed sets the init and the data order),
# validation every 50 steps. ~4 runs, ~10 minutes with one thread.
#
#   BUILD=build experiments/a_moe_vs_dense.sh      (after experiments/prep.sh)
cd "$(dirname "$0")/.."
. experiments/common.sh
need_prep
for seed in 1 2; do
    run_dense "$seed"
    run_base "$seed"
done
