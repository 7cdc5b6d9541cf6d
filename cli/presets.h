/*
 * presets.h - the shapes of real MoE models (and tiny ones for tests), as
 * moe_config, for `moe init`.
 */
#ifndef MOE_CLI_PRESETS_H
#define MOE_CLI_PRESETS_H

#include "moe.h"

typedef struct preset {
    const char *name;  /* "olmoe-1b-7b" */
    const char *about; /* one line for --help */
    void (*fill)(moe_config *cfg);
} preset;

extern const preset presets[];
extern const int n_presets;

/* The preset called name, or NULL. */
const preset *preset_find(const char *name);

#endif
