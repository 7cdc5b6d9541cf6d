/*
 * test_util.h - helpers several test files share: a JSON file parsed whole,
 * and the logits of a model on a fixed list of ids.
 */
#ifndef MOE_TEST_UTIL_H
#define MOE_TEST_UTIL_H

#include <stdint.h>

#include <cjson/cJSON.h>

/* The file parsed as JSON (up to 64 MiB), or NULL; cJSON_Delete it. */
cJSON *test_load_json(const char *path);

/* logits [n][V] of the model at path run on ids from an empty cache (malloc'd),
 * or NULL after a failed check naming the model and the error. */
float *test_model_logits(const char *path, const int32_t *ids, int n, int *V);

#endif
