/*
 * freeze.h - parameter groups kept fixed while the rest trains (`moe train
 * --freeze LIST`). A frozen tensor is left out of the optimizer's list: it
 * is never updated (nor decayed), its gradient is not counted in the global
 * norm that clipping uses (as PyTorch's clip_grad_norm_ over the parameters
 * that require a gradient), and it has no AdamW moments (they are packed,
 * train_params_pack_state). The backward still computes its gradient (the
 * gradients flow through it to what trains), so a freeze saves memory and
 * optimizer time, not backward time.
 *
 * The groups (every weight of the weight-role table is in exactly one of the
 * first five):
 *   router      the router (gate rows [E][D]), its bias and noise projection,
 *               the shared expert's gate; with a selection bias, the load
 *               rule that moves it is off too
 *   experts     every FFN weight: the routed experts, the shared expert(s),
 *               the dense FFN of dense layers
 *   attention   the token mixer: q/k/v/o and their biases, sinks, latent
 *               attention's projections, Gated DeltaNet's
 *   embeddings  the token embedding and the output head
 *   norms       every RMSNorm weight (q/k norms included)
 *   old-experts the experts group but the routed experts appended by
 *               --add-experts (experts E_old .. E - 1 of each MoE layer)
 *   old-router  the router group but the rows of the appended experts
 * old-experts and old-router need a run that added experts (the count is
 * kept in the checkpoints' trainer_state.json, so a resumed run freezes the
 * same rows).
 */
#ifndef MOE_TRAIN_FREEZE_H
#define MOE_TRAIN_FREEZE_H

#include <stddef.h>

#include "train/params.h"

enum {
    FREEZE_ROUTER = 1 << 0,
    FREEZE_EXPERTS = 1 << 1,
    FREEZE_ATTENTION = 1 << 2,
    FREEZE_EMBEDDINGS = 1 << 3,
    FREEZE_NORMS = 1 << 4,
    FREEZE_OLD_EXPERTS = 1 << 5,
    FREEZE_OLD_ROUTER = 1 << 6,
};

/* "router,old-experts" -> FREEZE_* bits; NULL or "" -> 0. An unknown or
 * empty name is an error naming it and listing the groups. */
int freeze_parse(const char *list, unsigned *groups, moe_err *err);

/* The canonical list of groups ("" for none) into buf[n], in the order of
 * the enum; the text freeze_parse reads back to the same bits. */
void freeze_format(unsigned groups, char *buf, size_t n);

/* Takes the frozen groups out of P's optimizer list and packs the moments
 * (P->n_state shrinks). added: the routed experts appended at the end of
 * each MoE layer (--add-experts), which old-experts and old-router leave
 * training; 0 when none were. Fails when old-* is asked without added
 * experts, or when nothing would be left to train. */
int freeze_apply(train_params *P, const moe_model *m, unsigned groups, int added, moe_err *err);

#endif
