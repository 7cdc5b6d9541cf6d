/*
 * chat_load.c - finding the chat template a model ships. In a model
 * directory, as transformers looks: chat_template.jinja, else
 * chat_template.json {"chat_template": ...}, else tokenizer_config.json
 * "chat_template" (a string, or a list of {"name", "template"} of which
 * "default" is used). In a GGUF file: tokenizer.chat_template.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/err.h"
#include "base/mapfile.h"
#include "formats/gguf.h"
#include "tokenizer/chat_internal.h"

#define CHAT_MAX_TEMPLATE_FILE ((size_t)64 << 20)

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* The template in a JSON file's "chat_template" field; *src NULL if none. */
static int template_from_json(const char *path, char **src, moe_err *err) {
    char *buf;
    size_t len;
    *src = NULL;
    if (read_file(path, CHAT_MAX_TEMPLATE_FILE, &buf, &len, err)) return -1;
    cJSON *j = cJSON_ParseWithLength(buf, len);
    free(buf);
    if (!j) return moe_fail(err, "%s: not valid JSON", path);
    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(j, "chat_template");
    int rc = 0;
    if (cJSON_IsString(ct)) {
        *src = strdup(ct->valuestring);
    } else if (cJSON_IsArray(ct)) {
        const cJSON *e;
        cJSON_ArrayForEach(e, ct) {
            const cJSON *name = cJSON_GetObjectItemCaseSensitive(e, "name");
            const cJSON *tpl = cJSON_GetObjectItemCaseSensitive(e, "template");
            if (cJSON_IsString(name) && !strcmp(name->valuestring, "default")) {
                if (!cJSON_IsString(tpl)) rc = moe_fail(err, "%s: chat_template \"default\" has no string \"template\"", path);
                else *src = strdup(tpl->valuestring);
                break;
            }
        }
    } else if (ct && !cJSON_IsNull(ct)) {
        rc = moe_fail(err, "%s: chat_template is neither a string nor a list", path);
    }
    cJSON_Delete(j);
    if (!rc && ct && !*src && (cJSON_IsString(ct))) rc = moe_fail(err, "%s: out of memory", path);
    return rc;
}

int moe_chat_template_load(moe_chat_template **out, const char *model_path, moe_err *err) {
    *out = NULL;
    struct stat st;
    if (stat(model_path, &st) != 0) return moe_fail(err, "%s: no such file or directory", model_path);
    char *src = NULL;
    size_t len = 0;
    char name[4200];
    if (S_ISREG(st.st_mode)) {
        gguf_file g;
        if (gguf_open(&g, model_path, err)) return -1;
        const char *s;
        uint64_t n;
        if (gguf_find_kv(&g, "tokenizer.chat_template")) {
            if (gguf_get_str(&g, "tokenizer.chat_template", &s, &n, err)) {
                gguf_close(&g);
                return -1;
            }
            src = malloc(n + 1);
            if (src) {
                memcpy(src, s, n);
                src[n] = 0;
                len = n;
            }
        }
        gguf_close(&g);
        if (!src) return 0;
        snprintf(name, sizeof name, "%s:tokenizer.chat_template", model_path);
    } else {
        snprintf(name, sizeof name, "%s/chat_template.jinja", model_path);
        if (exists(name)) {
            if (read_file(name, CHAT_MAX_TEMPLATE_FILE, &src, &len, err)) return -1;
        } else {
            static const char *const files[] = {"chat_template.json", "tokenizer_config.json"};
            for (int i = 0; i < 2 && !src; i++) {
                snprintf(name, sizeof name, "%s/%s", model_path, files[i]);
                if (!exists(name)) continue;
                if (template_from_json(name, &src, err)) return -1;
                if (src) len = strlen(src);
            }
            if (!src) return 0;
        }
    }
    int rc = moe_chat_template_parse(out, src, len, name, err);
    free(src);
    return rc;
}
