/*
 * test_data.c - token shards (src/train/data.h): moe_data_prepare on small
 * corpora with the committed trained tokenizer (tests/fixtures/
 * tokenizer_train/trained), checked document by document against
 * moe_tokenize; the split rule (deterministic, seed-dependent, thread-count
 * independent, last document to val); uint16 and uint32 ids; the reader's
 * random and sequential windows, resumable RNG state and domain lookup;
 * and every class of bad shard and bad option.
 */
#include "test.h"
#include "test_util.h"
#include "base/mapfile.h"
#include "base/rng.h"
#include "moe.h"
#include "train/data.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------- helpers */

static char g_tok[1024];

static const char *tokenizer_dir(void) {
    snprintf(g_tok, sizeof g_tok, "%s/tokenizer_train/trained", test_fixtures());
    return g_tok;
}

static const char *tmp_path(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "%s/%s", test_tmpdir(), name);
    return buf;
}

static int write_text(const char *path, const char *s, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(s, 1, n, f);
    return fclose(f) == 0 && w == n ? 0 : -1;
}

static char *slurp(const char *path, size_t *n) {
    char *buf = NULL;
    size_t len = 0;
    moe_err err;
    if (read_file(path, (size_t)64 << 20, &buf, &len, &err) != 0) return NULL;
    if (n) *n = len;
    return buf;
}

static int same_file(const char *a, const char *b) {
    size_t na, nb;
    char *x = slurp(a, &na), *y = slurp(b, &nb);
    int same = x && y && na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return same;
}

/* A corpus of n_docs blank-line separated documents with some variety. */
static char *make_corpus(int n_docs, int salt, size_t *len) {
    static const char *const lines[] = {
        "The experts were routed and the router was trained.",
        "def f(x):\n    return x * 2",
        "Café, naïve, 日本語のテキスト, 🙂",
        "numbers 12 345 6789 and <|im_start|>special<|im_end|> tokens",
        "  indented line\twith a tab",
    };
    size_t cap = (size_t)n_docs * 256 + 64, n = 0;
    char *s = malloc(cap);
    for (int d = 0; d < n_docs; d++) {
        int k = 1 + (d + salt) % 3;
        for (int l = 0; l < k; l++)
            n += (size_t)snprintf(s + n, cap - n, "%s %d\n", lines[(d * 7 + l + salt) % 5], d);
        n += (size_t)snprintf(s + n, cap - n, d % 4 == 0 ? "\n  \n\n" : "\n");
    }
    *len = n;
    return s;
}

/* Prepare files (one domain per entry of names) into dir. */
static int prepare(const char *dir, const char *const *names, const char *const *files, int n,
                   double val_frac, uint64_t seed, int threads, moe_data_docs docs, moe_data_prep_progress *p,
                   moe_err *err) {
    moe_data_domain_spec spec[8];
    for (int i = 0; i < n; i++) spec[i] = (moe_data_domain_spec){names[i], &files[i], 1};
    moe_data_prep_opts o = {.tokenizer = tokenizer_dir(), .out_dir = dir, .domain = spec, .n_domains = n,
                        .val_frac = val_frac, .seed = seed, .docs = docs, .n_threads = threads,
                        .list_docs = 1};
    return moe_data_prepare(&o, p, err);
}

static cJSON *load_json(const char *path) { return test_load_json(path); }

/* Every line of documents.jsonl: its bytes tokenized + EOS equal the
 * shard's tokens at its start. Returns the number of documents checked. */
static int check_docs_against_tokenizer(const char *dir) {
    char path[1100];
    snprintf(path, sizeof path, "%s/documents.jsonl", dir);
    size_t n;
    char *list = slurp(path, &n);
    CHECK(list != NULL);
    if (!list) return 0;
    moe_tokenizer *t = NULL;
    moe_err err = {{0}};
    CHECK(moe_tokenizer_load(&t, tokenizer_dir(), &err) == 0);
    data_shard sh[2];
    for (int s = 0; s < 2; s++) {
        snprintf(path, sizeof path, "%s/%s", dir, s ? "val.bin" : "train.bin");
        CHECK_MSG(data_open(&sh[s], path, &err) == 0, "open: %s", err.msg);
    }
    int docs = 0;
    uint64_t next[2] = {0, 0};
    for (char *line = strtok(list, "\n"); line && t; line = strtok(NULL, "\n")) {
        cJSON *j = cJSON_Parse(line);
        CHECK(j != NULL);
        if (!j) break;
        const char *file = cJSON_GetObjectItem(j, "file")->valuestring;
        size_t off = (size_t)cJSON_GetObjectItem(j, "offset")->valuedouble;
        size_t len = (size_t)cJSON_GetObjectItem(j, "bytes")->valuedouble;
        int s = !strcmp(cJSON_GetObjectItem(j, "split")->valuestring, "val");
        uint64_t start = (uint64_t)cJSON_GetObjectItem(j, "start")->valuedouble;
        int64_t ntok = (int64_t)cJSON_GetObjectItem(j, "tokens")->valuedouble;
        CHECK_EQ_INT(start, next[s]); /* documents lie back to back in list order */
        next[s] = start + (uint64_t)ntok;
        size_t fl;
        char *text = slurp(file, &fl);
        int32_t *ids = NULL;
        int m = 0;
        CHECK(text && off + len <= fl);
        if (text && moe_tokenize(t, text + off, len, 0, &ids, &m, &err) == 0) {
            CHECK_EQ_INT(m + 1, ntok);
            int32_t *got = malloc(((size_t)ntok + 1) * sizeof *got);
            CHECK(data_read(&sh[s], start, ntok, got, &err) == 0);
            int same = m + 1 == ntok;
            for (int i = 0; same && i < m; i++) same = got[i] == ids[i];
            CHECK_MSG(same, "document at %s:%zu differs from moe_tokenize", file, off);
            CHECK_EQ_INT(got[ntok - 1], moe_tokenizer_eos(t));
            free(got);
        }
        free(ids);
        free(text);
        cJSON_Delete(j);
        docs++;
    }
    for (int s = 0; s < 2; s++) {
        CHECK_EQ_INT(next[s], data_n_tokens(&sh[s])); /* the listing covers the shards */
        data_close(&sh[s]);
    }
    moe_tokenizer_free(t);
    free(list);
    return docs;
}

/* ------------------------------------------------------------ preparing */

TEST(data_prepare_documents_equal_tokenizer) {
    char a[1024], b[1024], dir[1024], path[1100];
    size_t na, nb;
    char *ca = make_corpus(40, 0, &na), *cb = make_corpus(25, 3, &nb);
    CHECK(write_text(tmp_path(a, sizeof a, "a.txt"), ca, na) == 0);
    CHECK(write_text(tmp_path(b, sizeof b, "b.txt"), cb, nb) == 0);
    const char *names[] = {"prose", "code"}, *files[] = {a, b};
    moe_data_prep_progress p;
    moe_err err = {{0}};
    tmp_path(dir, sizeof dir, "out");
    CHECK_MSG(prepare(dir, names, files, 2, 0.2, 7, 2, MOE_DATA_DOCS_BLANK, &p, &err) == 0, "prepare: %s", err.msg);
    CHECK_EQ_INT(p.docs[0] + p.docs[1], 65);
    CHECK(p.docs[1] > 0 && p.docs[0] > p.docs[1]);
    CHECK_EQ_INT(p.bytes_done, (int64_t)(na + nb));
    CHECK_EQ_INT(check_docs_against_tokenizer(dir), 65);
    /* meta.json and the shard headers agree */
    snprintf(path, sizeof path, "%s/meta.json", dir);
    cJSON *m = load_json(path);
    CHECK(m != NULL);
    data_shard tr;
    snprintf(path, sizeof path, "%s/train.bin", dir);
    CHECK(data_open(&tr, path, &err) == 0);
    if (m) {
        CHECK_EQ_INT(cJSON_GetObjectItem(m, "vocab")->valueint, 500);
        CHECK_EQ_INT(cJSON_GetObjectItem(m, "eos_id")->valueint, 497);
        CHECK(!strcmp(cJSON_GetObjectItem(m, "dtype")->valuestring, "uint16"));
        CHECK_STR_CONTAINS(cJSON_GetObjectItem(m, "tokenizer")->valuestring, "trained/tokenizer.json");
        CHECK_EQ_INT(cJSON_GetObjectItem(cJSON_GetObjectItem(m, "train"), "tokens")->valuedouble, p.tokens[0]);
        const cJSON *d1 = cJSON_GetArrayItem(cJSON_GetObjectItem(m, "domains"), 1);
        CHECK(!strcmp(cJSON_GetObjectItem(d1, "name")->valuestring, "code"));
        CHECK_EQ_INT(cJSON_GetObjectItem(cJSON_GetObjectItem(d1, "train"), "start")->valuedouble, tr.domain[1].start);
        CHECK_EQ_INT(cJSON_GetObjectItem(cJSON_GetObjectItem(d1, "train"), "end")->valuedouble, tr.domain[1].end);
        const cJSON *f0 = cJSON_GetArrayItem(cJSON_GetObjectItem(d1, "files"), 0);
        CHECK_EQ_INT(cJSON_GetObjectItem(f0, "documents")->valueint, 25);
    }
    CHECK_EQ_INT(tr.n_domains, 2);
    CHECK(!strcmp(tr.domain[0].name, "prose") && !strcmp(tr.domain[1].name, "code"));
    CHECK_EQ_INT(data_domain_of(&tr, 0), 0);
    CHECK_EQ_INT(data_domain_of(&tr, tr.domain[1].start - 1), 0);
    CHECK_EQ_INT(data_domain_of(&tr, tr.domain[1].start), 1);
    CHECK_EQ_INT(data_domain_of(&tr, tr.n_tokens - 1), 1);
    CHECK_EQ_INT(data_domain_of(&tr, tr.n_tokens), -1);
    data_close(&tr);
    cJSON_Delete(m);
    /* no temporary file left */
    snprintf(path, sizeof path, "%s/train.bin.tmp", dir);
    struct stat st;
    CHECK(stat(path, &st) != 0);
    free(ca);
    free(cb);
}

TEST(data_prepare_document_boundaries) {
    char f[1024], dir[1024];
    /* blank lines may hold spaces/tabs/CR; a doc keeps inner newlines, drops the last (and its CR) */
    const char *text = "\n\nfirst doc\nline two\n \t\n\nsecond\r\n\r\n\r\nthird, no newline at the end";
    CHECK(write_text(tmp_path(f, sizeof f, "b.txt"), text, strlen(text)) == 0);
    const char *names[] = {"x"}, *files[] = {f};
    moe_err err = {{0}};
    moe_data_prep_progress p;
    tmp_path(dir, sizeof dir, "out");
    CHECK_MSG(prepare(dir, names, files, 1, 0, 0, 1, MOE_DATA_DOCS_BLANK, &p, &err) == 0, "%s", err.msg);
    CHECK_EQ_INT(p.docs[0], 3);
    CHECK_EQ_INT(p.docs[1], 0); /* val_frac 0: nothing in val */
    char path[1100];
    snprintf(path, sizeof path, "%s/documents.jsonl", dir);
    size_t n;
    char *list = slurp(path, &n);
    CHECK(list && strstr(list, "\"offset\":2,\"bytes\":18") && strstr(list, "\"bytes\":6,") &&
          strstr(list, "\"bytes\":28,"));
    free(list);
    CHECK_EQ_INT(check_docs_against_tokenizer(dir), 3);
    /* file mode: the whole file is one document, as is */
    CHECK(prepare(dir, names, files, 1, 0, 0, 1, MOE_DATA_DOCS_FILE, &p, &err) == 0);
    CHECK_EQ_INT(p.docs[0], 1);
    CHECK_EQ_INT(check_docs_against_tokenizer(dir), 1);
    /* an empty file and a blank-only file give no documents (an empty domain range) */
    char e[1024], blank[1024];
    CHECK(write_text(tmp_path(e, sizeof e, "empty.txt"), "", 0) == 0);
    CHECK(write_text(tmp_path(blank, sizeof blank, "blank.txt"), "\n \n\t\n", 5) == 0);
    const char *n3[] = {"a", "empty", "b"}, *f3[] = {f, e, blank};
    CHECK(prepare(dir, n3, f3, 3, 0, 0, 1, MOE_DATA_DOCS_BLANK, &p, &err) == 0);
    data_shard tr;
    snprintf(path, sizeof path, "%s/train.bin", dir);
    CHECK(data_open(&tr, path, &err) == 0);
    CHECK(tr.n_domains == 3 && tr.domain[1].start == tr.domain[1].end && tr.domain[2].end == tr.n_tokens);
    CHECK_EQ_INT(data_domain_of(&tr, tr.n_tokens - 1), 0);
    data_close(&tr);
}

TEST(data_prepare_long_document_in_pieces) {
    char f[1024], dir[1024];
    size_t n;
    char *text = make_corpus(30, 1, &n);
    for (size_t i = 0; i < n; i++)
        if (text[i] == '\n' && i + 1 < n && text[i + 1] == '\n') text[i + 1] = '.'; /* one long doc */
    CHECK(write_text(tmp_path(f, sizeof f, "long.txt"), text, n) == 0);
    moe_data_domain_spec spec = {"long", (const char *const[]){f}, 1};
    moe_data_prep_opts o = {.tokenizer = tokenizer_dir(), .out_dir = tmp_path(dir, sizeof dir, "out"),
                        .domain = &spec, .n_domains = 1, .docs = MOE_DATA_DOCS_FILE, .n_threads = 2,
                        .piece_bytes = 300};
    moe_data_prep_progress p;
    moe_err err = {{0}};
    CHECK_MSG(moe_data_prepare(&o, &p, &err) == 0, "%s", err.msg);
    CHECK_EQ_INT(p.docs[0], 1);
    /* the pieces end after newlines, so the ids are the whole text's ids */
    moe_tokenizer *t = NULL;
    CHECK(moe_tokenizer_load(&t, tokenizer_dir(), &err) == 0);
    int32_t *ids = NULL;
    int m = 0;
    CHECK(t && moe_tokenize(t, text, n, 0, &ids, &m, &err) == 0);
    data_shard sh;
    char path[1100];
    snprintf(path, sizeof path, "%s/train.bin", dir);
    CHECK(data_open(&sh, path, &err) == 0);
    CHECK_EQ_INT(data_n_tokens(&sh), m + 1);
    int same = data_n_tokens(&sh) == (uint64_t)m + 1;
    for (int i = 0; same && i < m; i++) same = data_token(&sh, (uint64_t)i) == ids[i];
    CHECK(same);
    CHECK_EQ_INT(data_token(&sh, (uint64_t)m), 497);
    data_close(&sh);
    free(ids);
    moe_tokenizer_free(t);
    free(text);
}

TEST(data_prepare_split_is_deterministic) {
    char f[1024], d1[1024], d2[1024], d3[1024], a[1100], b[1100];
    size_t n;
    char *text = make_corpus(200, 2, &n);
    CHECK(write_text(tmp_path(f, sizeof f, "c.txt"), text, n) == 0);
    free(text);
    const char *names[] = {"c"}, *files[] = {f};
    moe_data_prep_progress p1, p2, p3;
    moe_err err = {{0}};
    CHECK(prepare(tmp_path(d1, sizeof d1, "s1"), names, files, 1, 0.1, 42, 1, MOE_DATA_DOCS_BLANK, &p1, &err) == 0);
    CHECK(prepare(tmp_path(d2, sizeof d2, "s2"), names, files, 1, 0.1, 42, 2, MOE_DATA_DOCS_BLANK, &p2, &err) == 0);
    CHECK(prepare(tmp_path(d3, sizeof d3, "s3"), names, files, 1, 0.1, 43, 2, MOE_DATA_DOCS_BLANK, &p3, &err) == 0);
    for (int s = 0; s < 2; s++) {
        const char *name = s ? "val.bin" : "train.bin";
        snprintf(a, sizeof a, "%s/%s", d1, name);
        snprintf(b, sizeof b, "%s/%s", d2, name);
        CHECK_MSG(same_file(a, b), "%s: 1 and 2 threads differ", name);
        snprintf(b, sizeof b, "%s/%s", d3, name);
        CHECK_MSG(!same_file(a, b), "%s: seeds 42 and 43 gave the same split", name);
    }
    /* about 10% in val (200 documents: 20 expected; binomial sd ~4.2) */
    CHECK(p1.docs[1] >= 6 && p1.docs[1] <= 36);
    CHECK_EQ_INT(p1.docs[0] + p1.docs[1], 200);
    CHECK_EQ_INT(p3.docs[0] + p3.docs[1], 200);
}

TEST(data_prepare_val_edge_cases) {
    char f[1024], dir[1024], path[1100];
    const char *text = "one\n\ntwo\n\nthree\n";
    CHECK(write_text(tmp_path(f, sizeof f, "t.txt"), text, strlen(text)) == 0);
    const char *names[] = {"t"}, *files[] = {f};
    moe_data_prep_progress p;
    moe_err err = {{0}};
    tmp_path(dir, sizeof dir, "out");
    /* 3 documents, val_frac tiny: none would go to val, so the last one does */
    CHECK(prepare(dir, names, files, 1, 1e-9, 0, 1, MOE_DATA_DOCS_BLANK, &p, &err) == 0);
    CHECK_EQ_INT(p.docs[0], 2);
    CHECK_EQ_INT(p.docs[1], 1);
    CHECK_EQ_INT(check_docs_against_tokenizer(dir), 3);
    data_shard va;
    snprintf(path, sizeof path, "%s/val.bin", dir);
    CHECK(data_open(&va, path, &err) == 0);
    CHECK(va.domain[0].start == 0 && va.domain[0].end == va.n_tokens && va.n_tokens == (uint64_t)p.tokens[1]);
    data_close(&va);
    /* everything to val */
    CHECK(prepare(dir, names, files, 1, 1.0, 0, 1, MOE_DATA_DOCS_BLANK, &p, &err) == 0);
    CHECK(p.docs[0] == 0 && p.docs[1] == 3);
    data_shard tr;
    snprintf(path, sizeof path, "%s/train.bin", dir);
    CHECK(data_open(&tr, path, &err) == 0);
    CHECK_EQ_INT(data_n_tokens(&tr), 0);
    int32_t w[8];
    rng r;
    rng_init(&r, 1);
    CHECK(data_random_window(&tr, &r, 4, w, NULL, &err) != 0);
    CHECK_STR_CONTAINS(err.msg, "0 tokens, fewer than one window");
    CHECK_EQ_INT(data_n_windows(&tr, 4), 0);
    data_close(&tr);
}

/* A tokenizer with more than 65536 ids: the shards hold uint32. */
TEST(data_prepare_uint32_ids) {
    char dir[1024], tj[1100], f[1024], path[1100];
    tmp_path(dir, sizeof dir, "tok70k");
    mkdir(dir, 0777);
    snprintf(tj, sizeof tj, "%s/tokenizer.json", dir);
    FILE *o = fopen(tj, "wb");
    CHECK(o != NULL);
    if (!o) return;
    fputs("{\"added_tokens\":[{\"id\":70000,\"content\":\"<eos>\",\"special\":true,\"normalized\":false}],"
          "\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":true},"
          "\"decoder\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\",\"merges\":[],\"vocab\":{",
          o);
    for (int i = 0; i < 70000; i++) {
        int b = i < 256 ? i : -1;
        char name[16];
        if (b >= 0) { /* the 256 ByteLevel chars */
            int32_t cp = (b <= 32) ? 256 + b : (b >= 127 && b <= 160) ? 289 + (b - 127) : b == 173 ? 323 : b;
            char u[5] = {0};
            if (cp < 0x80) u[0] = (char)cp;
            else u[0] = (char)(0xC0 | (cp >> 6)), u[1] = (char)(0x80 | (cp & 0x3F));
            if (cp == '"' || cp == '\\') snprintf(name, sizeof name, "\\%c", cp);
            else snprintf(name, sizeof name, "%s", u);
        } else {
            snprintf(name, sizeof name, "pad%d", i);
        }
        fprintf(o, "%s\"%s\":%d", i ? "," : "", name, i);
    }
    fputs("}}}", o);
    fclose(o);
    CHECK(write_text(tmp_path(f, sizeof f, "u.txt"), "hi\n\nthere", 9) == 0);
    moe_data_domain_spec spec = {"u", (const char *const[]){f}, 1};
    moe_data_prep_opts op = {.tokenizer = dir, .out_dir = tmp_path(path, sizeof path, "out"), .domain = &spec,
                         .n_domains = 1, .val_frac = 0, .n_threads = 1};
    moe_data_prep_progress p;
    moe_err err = {{0}};
    CHECK_MSG(moe_data_prepare(&op, &p, &err) == 0, "%s", err.msg);
    char tb[1200];
    snprintf(tb, sizeof tb, "%s/train.bin", path);
    data_shard sh;
    CHECK_MSG(data_open(&sh, tb, &err) == 0, "%s", err.msg);
    CHECK_EQ_INT(sh.dtype, 4);
    CHECK_EQ_INT(sh.vocab, 70001);
    CHECK_EQ_INT(sh.eos_id, 70000);
    CHECK(sh.n_tokens >= 2 && data_token(&sh, sh.n_tokens - 1) == 70000);
    int32_t ids[4];
    CHECK(data_read(&sh, sh.n_tokens - 1, 1, ids, &err) == 0 && ids[0] == 70000);
    data_close(&sh);
}

/* -------------------------------------------------------------- reading */

TEST(data_reader_windows) {
    enum { N = 50, T = 4 };
    uint32_t ids[N];
    for (int i = 0; i < N; i++) ids[i] = (uint32_t)(i * 3 % 97);
    uint64_t ends[] = {20, 20, N};
    char path[1024];
    for (int dtype = 2; dtype <= 4; dtype += 2) {
        test_write_shard(tmp_path(path, sizeof path, "w.bin"), ids, N, dtype, 100, ends, 3);
        data_shard s;
        moe_err err = {{0}};
        CHECK_MSG(data_open(&s, path, &err) == 0, "%s", err.msg);
        CHECK_EQ_INT(data_n_tokens(&s), N);
        /* random windows: content, range, every start reached, resumable */
        rng r, saved;
        rng_init(&r, 123);
        int hit[N] = {0};
        int32_t w[T + 1], w2[T + 1];
        for (int k = 0; k < 3000; k++) {
            uint64_t at;
            CHECK(data_random_window(&s, &r, T, w, &at, &err) == 0);
            CHECK(at + T + 1 <= N);
            hit[at]++;
            for (int i = 0; i <= T; i++) CHECK(w[i] == (int32_t)ids[at + i]);
        }
        for (int i = 0; i + T + 1 <= N; i++) CHECK_MSG(hit[i] > 0, "start %d never drawn", i);
        saved = r;
        uint64_t st[3], st2[3];
        int32_t batch[3][T + 1], batch2[3][T + 1];
        CHECK(data_random_batch(&s, &r, 3, T, &batch[0][0], st, &err) == 0);
        rng after = r;
        r = saved; /* resume from the saved state: the same windows, the same next state */
        CHECK(data_random_batch(&s, &r, 3, T, &batch2[0][0], st2, &err) == 0);
        CHECK(!memcmp(batch, batch2, sizeof batch) && !memcmp(st, st2, sizeof st));
        CHECK(!memcmp(&after, &r, sizeof r));
        (void)w2;
        /* sequential windows: each token after the first is a target once */
        uint64_t nw = data_n_windows(&s, T);
        CHECK_EQ_INT(nw, (N - 1) / T);
        for (uint64_t k = 0; k < nw; k++) {
            CHECK(data_window(&s, k, T, w, &err) == 0);
            for (int i = 0; i <= T; i++) CHECK(w[i] == (int32_t)ids[k * T + (uint64_t)i]);
        }
        CHECK(data_window(&s, nw, T, w, &err) != 0);
        CHECK_STR_CONTAINS(err.msg, "past the last");
        /* domains: an empty one in the middle */
        CHECK_EQ_INT(data_domain_of(&s, 0), 0);
        CHECK_EQ_INT(data_domain_of(&s, 19), 0);
        CHECK_EQ_INT(data_domain_of(&s, 20), 2);
        CHECK_EQ_INT(data_domain_of(&s, N - 1), 2);
        CHECK_EQ_INT(data_domain_of(&s, N), -1);
        CHECK(data_read(&s, N - 2, 3, w, &err) != 0);
        CHECK(data_random_window(&s, &r, N, w, NULL, &err) != 0); /* longer than the shard */
        CHECK(data_random_window(&s, &r, 0, w, NULL, &err) != 0);
        data_close(&s);
    }
    /* data_rng_below is unbiased enough to hit both ends and never n */
    rng r;
    rng_init(&r, 5);
    int lo = 0, hi = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t v = data_rng_below(&r, 3);
        CHECK(v < 3);
        lo += v == 0, hi += v == 2;
    }
    CHECK(lo > 250 && hi > 250);
}

/* Patch bytes of a good shard and expect data_open to fail with msg. */
static void expect_bad(const char *good, size_t n, size_t at, const void *bytes, size_t len,
                       long new_size, const char *msg) {
    char path[1024];
    unsigned char *b = malloc(n + 16);
    memcpy(b, good, n);
    memset(b + n, 0, 16);
    if (bytes) memcpy(b + at, bytes, len);
    size_t size = new_size >= 0 ? (size_t)new_size : n;
    write_text(tmp_path(path, sizeof path, "bad.bin"), (const char *)b, size);
    data_shard s;
    moe_err err = {{0}};
    CHECK_MSG(data_open(&s, path, &err) != 0, "accepted a shard that should fail with \"%s\"", msg);
    CHECK_STR_CONTAINS(err.msg, msg);
    free(b);
}

TEST(data_reader_bad_shards) {
    uint32_t ids[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 0};
    uint64_t ends[] = {4, 10};
    char path[1024];
    test_write_shard(tmp_path(path, sizeof path, "good.bin"), ids, 10, 2, 16, ends, 2);
    size_t n;
    char *good = slurp(path, &n);
    CHECK(good && n == 192 + 20); /* header + 2 domains, rounded to 64 */
    if (!good) return;
    uint32_t v;
    uint64_t q;
    expect_bad(good, n, 0, NULL, 0, 10, "shorter than the 64-byte header");
    expect_bad(good, n, 0, "MOETOKX", 7, -1, "bad magic");
    v = 2;
    expect_bad(good, n, 8, &v, 4, -1, "format version 2");
    v = 3;
    expect_bad(good, n, 12, &v, 4, -1, "dtype 3 bytes per token");
    expect_bad(good, n, 0, NULL, 0, (long)n - 1, "file holds 9"); /* truncated */
    q = 11;
    expect_bad(good, n, 16, &q, 8, -1, "header says 11 tokens"); /* count past EOF */
    q = UINT64_MAX / 2;
    expect_bad(good, n, 16, &q, 8, -1, "header says"); /* a huge count */
    expect_bad(good, n, 0, NULL, 0, (long)n + 2, "trailing bytes");
    v = 0;
    expect_bad(good, n, 28, &v, 4, -1, "0 domains");
    v = 5000;
    expect_bad(good, n, 28, &v, 4, -1, "5000 domains");
    q = 96;
    expect_bad(good, n, 32, &q, 8, -1, "data offset 96");
    q = 100;
    expect_bad(good, n, 32, &q, 8, -1, "not a multiple of 64");
    q = 1 << 20;
    expect_bad(good, n, 32, &q, 8, -1, "data offset");
    v = 70000;
    expect_bad(good, n, 24, &v, 4, -1, "vocab 70000 does not fit 2-byte ids");
    v = 9;
    expect_bad(good, n, 24, &v, 4, -1, "token 8 is id 9, not below the vocab size 9");
    v = 16;
    expect_bad(good, n, 40, &v, 4, -1, "eos id 16");
    q = 3;
    expect_bad(good, n, 64 + 40, &q, 8, -1, "range [4, 10) does not follow 3"); /* a gap */
    q = 9;
    expect_bad(good, n, 64 + 48 + 40, &q, 8, -1, "cover 9 of 10 tokens");
    expect_bad(good, n, 64, "0123456789012345678901234567890123", 32, -1, "not NUL-terminated");
    expect_bad(good, n, 64, "\0", 1, -1, "name empty");
    data_shard s;
    moe_err err = {{0}};
    CHECK(data_open(&s, tmp_path(path, sizeof path, "missing.bin"), &err) != 0);
    CHECK_STR_CONTAINS(err.msg, "cannot open");
    free(good);
}

/* A model's vocabulary against a shard's ids: the largest id, where it first
 * is, and the shard are named (the trainer checks train and val this way). */
TEST(data_check_vocab) {
    uint32_t ids[8] = {3, 9, 1, 12, 0, 12, 5, 2};
    uint64_t ends[] = {8};
    char path[1024];
    for (int dtype = 2; dtype <= 4; dtype += 2) {
        test_write_shard(tmp_path(path, sizeof path, "v.bin"), ids, 8, dtype, 20, ends, 1);
        data_shard s;
        moe_err err = {{0}};
        CHECK_MSG(data_open(&s, path, &err) == 0, "%s", err.msg);
        CHECK_MSG(data_check_vocab(&s, 13, &err) == 0, "%s", err.msg);
        CHECK(data_check_vocab(&s, 12, &err) != 0);
        CHECK_STR_CONTAINS(err.msg, "v.bin: token 3 is id 12, not below the model's vocabulary size 12");
        CHECK(data_check_vocab(&s, 0, &err) != 0);
        data_close(&s);
    }
    /* ids are int32_t: a vocab past 2^31 - 1 is refused (found by fuzz_data) */
    test_write_shard(tmp_path(path, sizeof path, "v4.bin"), ids, 8, 4, 0x80000000u, ends, 1);
    data_shard s;
    moe_err err = {{0}};
    CHECK(data_open(&s, path, &err) != 0);
    CHECK_STR_CONTAINS(err.msg, "vocab 2147483648 does not fit 4-byte ids");
}

TEST(data_prepare_bad_options) {
    char f[1024], dir[1024], plain[1024];
    CHECK(write_text(tmp_path(f, sizeof f, "t.txt"), "a\n\nb\n", 5) == 0);
    CHECK(write_text(tmp_path(plain, sizeof plain, "plain"), "x", 1) == 0);
    tmp_path(dir, sizeof dir, "out");
    moe_err err = {{0}};
    const char *names[] = {"a", "a"}, *files[] = {f, f};
    CHECK(prepare(dir, names, files, 2, 0.1, 0, 1, MOE_DATA_DOCS_BLANK, NULL, &err) != 0);
    CHECK_STR_CONTAINS(err.msg, "domain \"a\" given twice");
    const char *bad_name[] = {"has space"};
    CHECK(prepare(dir, bad_name, files, 1, 0.1, 0, 1, MOE_DATA_DOCS_BLANK, NULL, &err) != 0);
    CHECK_STR_CONTAINS(err.msg, "domain name \"has space\"");
    CHECK(prepare(dir, names, files, 1, 1.5, 0, 1, MOE_DATA_DOCS_BLANK, NULL, &err) != 0);
    CHECK_STR_CONTAINS(err.msg, "val_frac 1.5");
    CHECK(prepare(dir, names, files, 1, 0.1, 0, MOE_MAX_THREADS + 1, MOE_DATA_DOCS_BLANK, NULL, &err) != 0);
    CHECK_STR_CONTAINS(err.msg, "257 threads (expected 0..256)");
    const char *missing[] = {"/nonexistent/file.txt"};
    CHECK(prepare(dir, names, missing, 1, 0.1, 0, 1, MOE_DATA_DOCS_BLANK, NULL, &err) != 0);
    CHECK_STR_CONTAINS(err.msg, "No such file");
    CHECK(prepare(plain, names, files, 1, 0.1, 0, 1, MOE_DATA_DOCS_BLANK, NULL, &err) != 0);
    CHECK_STR_CONTAINS(err.msg, "exists and is not a directory");
    /* a tokenizer without EOS */
    char tdir[1024], cfg[1100], tj[1100], cmd[3000];
    tmp_path(tdir, sizeof tdir, "noeos");
    mkdir(tdir, 0777);
    snprintf(tj, sizeof tj, "%s/tokenizer.json", tdir);
    snprintf(cfg, sizeof cfg, "%s/tokenizer_config.json", tdir);
    snprintf(cmd, sizeof cmd, "%s/tokenizer.json", tokenizer_dir());
    size_t n;
    char *t = slurp(cmd, &n);
    CHECK(t && write_text(tj, t, n) == 0);
    free(t);
    CHECK(write_text(cfg, "{\"eos_token\": null}", 19) == 0);
    moe_data_domain_spec spec = {"a", files, 1};
    moe_data_prep_opts o = {.tokenizer = tdir, .out_dir = dir, .domain = &spec, .n_domains = 1};
    CHECK(moe_data_prepare(&o, NULL, &err) != 0);
    CHECK_STR_CONTAINS(err.msg, "has no EOS token");
    o.tokenizer = "/nonexistent";
    CHECK(moe_data_prepare(&o, NULL, &err) != 0);
    CHECK(moe_data_prepare(NULL, NULL, &err) != 0);
    /* nothing half-written was left in the output directory */
    char p[1100];
    snprintf(p, sizeof p, "%s/train.bin.tmp", dir);
    struct stat st;
    CHECK(stat(p, &st) != 0);
}

/* Random corruption of a good shard: data_open refuses it or accepts a
 * shard whose every range and id is in bounds (ASan watches the reads). */
TEST(data_reader_fuzz_headers) {
    uint32_t ids[40];
    for (int i = 0; i < 40; i++) ids[i] = (uint32_t)(i % 7);
    uint64_t ends[] = {10, 25, 40};
    char path[1024];
    test_write_shard(tmp_path(path, sizeof path, "good.bin"), ids, 40, 2, 7, ends, 3);
    size_t n;
    unsigned char *good = (unsigned char *)slurp(path, &n), *b = malloc(n + 64);
    CHECK(good != NULL);
    if (!good) return;
    rng r;
    rng_init(&r, 99);
    int accepted = 0;
    for (int it = 0; it < 1500; it++) {
        memcpy(b, good, n);
        size_t size = n;
        int flips = 1 + (int)(rng_next(&r) % 3);
        for (int f = 0; f < flips; f++) {
            size_t at = (size_t)(rng_next(&r) % (DATA_HEADER_BYTES + 3 * DATA_DOMAIN_BYTES));
            b[at] = (unsigned char)rng_next(&r);
        }
        if (rng_next(&r) % 4 == 0) size = (size_t)(rng_next(&r) % (n + 64));
        if (size > n) memset(b + n, 0, size - n);
        write_text(path, (const char *)b, size);
        data_shard s;
        moe_err err = {{0}};
        if (data_open(&s, path, &err) != 0) {
            CHECK(err.msg[0] != 0);
            continue;
        }
        accepted++;
        CHECK(s.n_tokens * (uint64_t)s.dtype <= size);
        int32_t all[64];
        CHECK(s.n_tokens <= 64 && data_read(&s, 0, (int64_t)s.n_tokens, all, &err) == 0);
        for (uint64_t i = 0; i < s.n_tokens; i++) CHECK(all[i] >= 0 && (uint32_t)all[i] < s.vocab);
        for (uint64_t i = 0; i < s.n_tokens; i++) {
            int d = data_domain_of(&s, i);
            CHECK(d >= 0 && d < s.n_domains && s.domain[d].start <= i && i < s.domain[d].end);
        }
        data_close(&s);
    }
    CHECK(accepted > 0); /* some flips land in reserved or name bytes */
    free(good);
    free(b);
}

/* Sampled windows of a shard made of two domains back to back come from
 * both, in proportion; asking for every window gives each once, in order. */
TEST(data_spread_window_reaches_every_domain) {
    enum { HALF = 1000, T = 10 };
    uint32_t *ids = malloc(sizeof *ids * 2 * HALF);
    for (int i = 0; i < 2 * HALF; i++) ids[i] = (uint32_t)(i % 50);
    uint64_t ends[] = {HALF, 2 * HALF};
    char path[1024];
    test_write_shard(tmp_path(path, sizeof path, "two.bin"), ids, 2 * HALF, 2, 50, ends, 2);
    free(ids);
    data_shard s;
    moe_err err = {{0}};
    CHECK_MSG(data_open(&s, path, &err) == 0, "%s", err.msg);
    uint64_t W = data_n_windows(&s, T); /* 199 */
    int in[2] = {0, 0};
    uint64_t prev = 0;
    for (uint64_t i = 0; i < 8; i++) {
        uint64_t k = data_spread_window(&s, T, i, 8);
        CHECK(k < W && (i == 0 || k > prev));
        prev = k;
        in[data_domain_of(&s, k * T)]++;
    }
    CHECK_MSG(in[0] >= 3 && in[1] >= 3, "windows per domain: %d, %d", in[0], in[1]);
    for (uint64_t i = 0; i < W + 5; i++) CHECK_EQ_INT(data_spread_window(&s, T, i, W + 5), i);
    for (uint64_t i = 0; i < W; i++) CHECK_EQ_INT(data_spread_window(&s, T, i, W), i);
    data_close(&s);
}
