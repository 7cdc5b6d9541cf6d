/*
 * report_header.h - the head of `moe report`'s page: what the run was. The
 * model and router settings from the run's config.json, the training shape
 * (steps, tokens trained, batch x seq) from its log and trainer state, and
 * its wall time.
 */
#ifndef MOE_CLI_REPORT_HEADER_H
#define MOE_CLI_REPORT_HEADER_H

#include <stdio.h>

#include "report_log.h"

/* Rows (<tr>) of the page's head table to f. config.json: RUN/config.json,
 * else RUN/latest/config.json (the newest checkpoint's); batch x seq:
 * RUN/latest/trainer_state.json, else tokens a step from the log. What
 * cannot be read is said in its row; nothing here fails. */
void report_header_rows(FILE *f, const report_log *r, const char *run);

#endif
