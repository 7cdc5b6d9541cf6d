/*
 * test_chat_template.c - the Jinja chat-template interpreter against Python
 * jinja2 as transformers runs it (fixtures written by
 * tools/gen_chat_template_fixtures.py): every collected template over every
 * conversation, byte for byte, including the conversations a template
 * refuses; small templates for each language feature; the limits that stop
 * hostile templates; finding a model's template on disk and in GGUF.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/mapfile.h"
#include "formats/gguf.h"
#include "moe_chat.h"
#include "test.h"
#include "test_util.h"

static char *fixture_text(const char *rel, size_t *len) {
    char path[1024];
    snprintf(path, sizeof path, "%s/chat_templates/%s", test_fixtures(), rel);
    char *buf = NULL;
    moe_err err = {{0}};
    if (read_file(path, (size_t)64 << 20, &buf, len, &err)) {
        test_fail_at(__FILE__, __LINE__, "%s", err.msg);
        return NULL;
    }
    return buf;
}

/* Render src over the context file contexts/CTX.json; compare with case c's
 * "output" or expect an error when it has "error". Returns 1 if it matched. */
static int check_case(const char *label, moe_chat_template *t, const char *ctx, const cJSON *c) {
    size_t clen;
    char rel[256];
    snprintf(rel, sizeof rel, "contexts/%s.json", ctx);
    char *cj = fixture_text(rel, &clen);
    if (!cj) return 0;
    char *out = NULL;
    size_t n = 0;
    moe_err err = {{0}};
    int rc = moe_chat_template_render(t, cj, clen, &out, &n, &err);
    free(cj);
    const cJSON *want = cJSON_GetObjectItemCaseSensitive(c, "output");
    int ok;
    if (cJSON_IsString(want)) {
        ok = rc == 0 && n == strlen(want->valuestring) && !memcmp(out, want->valuestring, n);
        if (!ok) {
            size_t i = 0, wn = strlen(want->valuestring);
            while (rc == 0 && i < n && i < wn && out[i] == want->valuestring[i]) i++;
            test_fail_at(__FILE__, __LINE__, "%s / %s: %s; differs at byte %zu: got \"%.60s\" want \"%.60s\"", label, ctx,
                         rc ? err.msg : "rendered", i, rc ? "" : out + i, want->valuestring + (i < wn ? i : wn));
        }
    } else {
        ok = rc != 0;
        if (!ok) test_fail_at(__FILE__, __LINE__, "%s / %s: rendered, but jinja2 raises %s", label, ctx,
                              cJSON_GetObjectItemCaseSensitive(c, "error")->valuestring);
        else CHECK(strlen(err.msg) > 0);
    }
    free(out);
    return ok;
}

TEST(chat_template_fixtures) {
    char path[1024];
    snprintf(path, sizeof path, "%s/chat_templates/expected.json", test_fixtures());
    cJSON *e = test_load_json(path);
    CHECK(e);
    if (!e) return;
    int64_t fixed = (int64_t)cJSON_GetObjectItemCaseSensitive(e, "fixed_time")->valuedouble;
    const cJSON *c;
    int n_ok = 0, n = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(e, "cases")) {
        const char *name = cJSON_GetObjectItemCaseSensitive(c, "template")->valuestring;
        const char *ctx = cJSON_GetObjectItemCaseSensitive(c, "context")->valuestring;
        char rel[512];
        snprintf(rel, sizeof rel, "templates/%s.jinja", name);
        size_t len;
        char *src = fixture_text(rel, &len);
        if (!src) break;
        moe_chat_template *t = NULL;
        moe_err err = {{0}};
        if (moe_chat_template_parse(&t, src, len, name, &err)) {
            test_fail_at(__FILE__, __LINE__, "%s: %s", name, err.msg);
        } else {
            moe_chat_template_set_time(t, fixed);
            n_ok += check_case(name, t, ctx, c);
        }
        n++;
        moe_chat_template_free(t);
        free(src);
    }
    CHECK(n >= 700);
    CHECK_EQ_INT(n_ok, n);
    cJSON_Delete(e);
}

TEST(chat_template_units) {
    char path[1024];
    snprintf(path, sizeof path, "%s/chat_templates/expected.json", test_fixtures());
    cJSON *e = test_load_json(path);
    CHECK(e);
    if (!e) return;
    int64_t fixed = (int64_t)cJSON_GetObjectItemCaseSensitive(e, "fixed_time")->valuedouble;
    const cJSON *c;
    int n = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(e, "units")) {
        const char *src = cJSON_GetObjectItemCaseSensitive(c, "template")->valuestring;
        moe_chat_template *t = NULL;
        moe_err err = {{0}};
        n++;
        if (moe_chat_template_parse(&t, src, strlen(src), "unit", &err)) {
            /* refused when parsed: jinja2 must refuse it too (when compiling or running) */
            CHECK_MSG(!cJSON_GetObjectItemCaseSensitive(c, "output"), "%s: refused (%s) but jinja2 renders it", src, err.msg);
            continue;
        }
        moe_chat_template_set_time(t, fixed);
        check_case(src, t, "units", c);
        moe_chat_template_free(t);
    }
    CHECK(n >= 80);
    cJSON_Delete(e);
}

static int render_str(const char *src, const char *ctx, char **out, moe_err *err) {
    moe_chat_template *t = NULL;
    *out = NULL;
    if (moe_chat_template_parse(&t, src, strlen(src), "inline", err)) return -1;
    size_t n;
    int rc = moe_chat_template_render(t, ctx, ctx ? strlen(ctx) : 0, out, &n, err);
    moe_chat_template_free(t);
    return rc;
}

/* a refusal names the feature and the line */
TEST(chat_template_refusals) {
    static const struct { const char *src, *want; } cases[] = {
        {"a\nb\n{% include 'x.jinja' %}", "inline:3: unsupported feature: {% include %}"},
        {"{% extends 'base' %}", "{% extends %}"},
        {"x\n{{ messages|groupby('role') }}", "inline:2: unsupported feature: filter 'groupby'"},
        {"{{ x is nosuchtest }}", "test 'nosuchtest'"},
        {"{% for x in xs recursive %}{% endfor %}", "recursive for loop"},
        {"{{ f(*args) }}", "*args"},
        {"{% if true %}", "missing {% endif %}"},
        {"{{ 'open", "unterminated string"},
        {"{% do x %}", "{% do %}"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *out;
        moe_err err = {{0}};
        CHECK(render_str(cases[i].src, "{}", &out, &err) != 0);
        CHECK_STR_CONTAINS(err.msg, cases[i].want);
        free(out);
    }
    /* a filter this interpreter lacks is refused when it runs if it sits in an if, as in jinja2 */
    char *out;
    moe_err err = {{0}};
    CHECK(render_str("{% if false %}{{ x|groupby('a') }}{% endif %}ok", "{}", &out, &err) == 0);
    CHECK(out && !strcmp(out, "ok"));
    free(out);
    CHECK(render_str("\n{% if true %}{{ x|groupby('a') }}{% endif %}", "{}", &out, &err) != 0);
    CHECK_STR_CONTAINS(err.msg, "inline:2: unsupported feature: filter 'groupby'");
    /* raise_exception: its message and line */
    CHECK(render_str("one\n{{ raise_exception('roles must alternate') }}", "{}", &out, &err) != 0);
    CHECK_STR_CONTAINS(err.msg, "inline:2: raise_exception: roles must alternate");
    /* the context must be a JSON object */
    CHECK(render_str("x", "[1]", &out, &err) != 0);
    CHECK_STR_CONTAINS(err.msg, "not a JSON object");
    CHECK(render_str("x", "{\"a\": ", &out, &err) != 0);
}

/* hostile templates end with an error, quickly, without exhausting memory */
TEST(chat_template_limits) {
    static const char *const cases[] = {
        "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
        "{% macro r(n) %}{{ r(n + 1) }}{% endmacro %}{{ r(0) }}",
        "{% for i in range(100000) %}{{ 'x' * 100000 }}{% endfor %}",
        "{% set ns = namespace(s='x') %}{% for i in range(100) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
        "{{ 'x' * 10000000000 }}",
        "{{ range(1000000)|list }}",
        "{{ 2 ** 64 }}",
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *out;
        moe_err err = {{0}};
        CHECK_MSG(render_str(cases[i], "{}", &out, &err) != 0, "%s rendered", cases[i]);
        CHECK(strlen(err.msg) > 0);
        free(out);
    }
    /* deep nesting is refused when parsed, not by a crash */
    size_t n = 20000;
    char *deep = malloc(3 * n + 16);
    strcpy(deep, "{{ ");
    for (size_t i = 0; i < n; i++) strcat(deep + 3 + i, "(");
    strcat(deep, "1");
    for (size_t i = 0; i < n; i++) strcat(deep + 4 + n + i, ")");
    strcat(deep, " }}");
    moe_chat_template *t = NULL;
    moe_err err = {{0}};
    CHECK(moe_chat_template_parse(&t, deep, strlen(deep), "deep", &err) != 0);
    CHECK_STR_CONTAINS(err.msg, "nested too deep");
    free(deep);
}

static void write_text(const char *dir, const char *name, const char *text) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    CHECK(f);
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

static void expect_loaded(const char *path, const char *want) {
    moe_chat_template *t = NULL;
    moe_err err = {{0}};
    CHECK_MSG(moe_chat_template_load(&t, path, &err) == 0, "%s: %s", path, err.msg);
    CHECK_MSG(t && !strcmp(moe_chat_template_source(t), want), "%s: got %s", path, t ? moe_chat_template_source(t) : "none");
    moe_chat_template_free(t);
}

TEST(chat_template_load) {
    const char *tmp = test_tmpdir();
    char dir[1024];
    moe_chat_template *t = NULL;
    moe_err err = {{0}};
    /* none: NULL, not an error */
    snprintf(dir, sizeof dir, "%s/none", tmp);
    CHECK(mkdir(dir, 0755) == 0);
    write_text(dir, "tokenizer_config.json", "{\"bos_token\": \"<s>\"}");
    CHECK(moe_chat_template_load(&t, dir, &err) == 0 && t == NULL);
    /* a string in tokenizer_config.json */
    snprintf(dir, sizeof dir, "%s/str", tmp);
    CHECK(mkdir(dir, 0755) == 0);
    write_text(dir, "tokenizer_config.json", "{\"chat_template\": \"{{ bos_token }}A\"}");
    expect_loaded(dir, "{{ bos_token }}A");
    /* a list: "default" is used */
    snprintf(dir, sizeof dir, "%s/list", tmp);
    CHECK(mkdir(dir, 0755) == 0);
    write_text(dir, "tokenizer_config.json",
               "{\"chat_template\": [{\"name\": \"tool_use\", \"template\": \"T\"}, {\"name\": \"default\", \"template\": \"D\"}]}");
    expect_loaded(dir, "D");
    /* chat_template.json, then chat_template.jinja take precedence */
    write_text(dir, "chat_template.json", "{\"chat_template\": \"J\"}");
    expect_loaded(dir, "J");
    write_text(dir, "chat_template.jinja", "K{{ x }}\n");
    expect_loaded(dir, "K{{ x }}\n");
    /* a template that does not parse fails the load, naming the file */
    write_text(dir, "chat_template.jinja", "{% if %}");
    CHECK(moe_chat_template_load(&t, dir, &err) != 0);
    CHECK_STR_CONTAINS(err.msg, "chat_template.jinja:1:");
    /* GGUF metadata */
    char gpath[1100];
    snprintf(gpath, sizeof gpath, "%s/t.gguf", tmp);
    gguf_wkv kv[] = {gguf_wstr("general.architecture", "llama"), gguf_wstr("tokenizer.chat_template", "G{{ 1 + 1 }}")};
    CHECK(gguf_write(gpath, kv, 2, NULL, 0, &err) == 0);
    expect_loaded(gpath, "G{{ 1 + 1 }}");
    snprintf(gpath, sizeof gpath, "%s/none.gguf", tmp);
    CHECK(gguf_write(gpath, kv, 1, NULL, 0, &err) == 0);
    CHECK(moe_chat_template_load(&t, gpath, &err) == 0 && t == NULL);
    /* a missing path is an error */
    snprintf(dir, sizeof dir, "%s/nowhere", tmp);
    CHECK(moe_chat_template_load(&t, dir, &err) != 0);
}
